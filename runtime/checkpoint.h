/* checkpoint.h: one file holds everything needed to continue a run exactly:
 * parameters, optimizer momentum, running statistics, and the position in
 * training (epoch, samples consumed in it, total samples seen).  Random
 * state is not stored because every random draw derives from the seed and
 * the position (see rng.h).
 *
 * Layout: a fixed header (magic, version, model, shapes, sizes, progress,
 * CRC-32 of the payload, CRC-32 of the header), then the payload
 * params[n_params], velocity[n_params], buffers[n_buffers] as fp32.
 * params and velocity have n_params floats each, every layer's slice
 * starting on 256 bytes (net.h DL_NET_PARAM_ALIGN) with zeros between.
 * Version 4 adds one optional section after the payload: a small header
 * (what it holds, the ranks that saved it, count, CRC-32) and count floats;
 * training with --compress keeps its error-feedback state there; version 3
 * files have none.  Versions 1 and 2 (the same without padding, from before
 * the alignment) are refused with a message saying so.
 *
 * Saving writes a temporary file in the same directory, fsyncs it and
 * renames it over the target, so a crash or kill at any moment leaves
 * either the old checkpoint or the new one, never a mix. */
#ifndef DL_CHECKPOINT_H
#define DL_CHECKPOINT_H

#include "net.h"

typedef struct dl_progress {
    int64_t epoch;          /* epoch in progress (0-based); 64-bit so the header has no padding */
    uint64_t epoch_pos;     /* global samples consumed in that epoch */
    uint64_t samples_seen;  /* global samples since the start of training */
    uint64_t step;          /* optimizer steps taken */
    uint64_t seed;
} dl_progress;

/* The optional section (version 4).  name says what it holds and must
 * match on load for the data to be used ("compress int8"). */
typedef struct dl_ckpt_extra {
    char name[32];
    int32_t world;  /* ranks whose state it holds */
    uint64_t count; /* floats in data */
    float *data;    /* host memory; on load allocated (free it), NULL if none */
} dl_ckpt_extra;

dl_status dl_checkpoint_save(const char *path, const char *model, const dl_net *net,
                             const float *velocity, const dl_progress *p);
/* Validates everything before touching the network; the message names the
 * file and what is wrong (not a checkpoint, truncated, checksum, other model,
 * progress fields out of range, a non-finite value).  A path that is not a
 * regular file (a FIFO, a device) is refused without blocking. */
dl_status dl_checkpoint_load(const char *path, const char *model, dl_net *net, float *velocity,
                             dl_progress *p);
/* Save with a section (extra may be NULL: a version-3 file), and load that
 * also returns the section (extra->count 0, data NULL where there is none). */
dl_status dl_checkpoint_save_extra(const char *path, const char *model, const dl_net *net,
                                   const float *velocity, const dl_progress *p,
                                   const dl_ckpt_extra *extra);
dl_status dl_checkpoint_load_extra(const char *path, const char *model, dl_net *net,
                                   float *velocity, dl_progress *p, dl_ckpt_extra *extra);

/* Limits no real run reaches; a checkpoint beyond them is corrupt or forged
 * (the epoch option stops at 100000; 2^53 samples is years of training). */
#define DL_CKPT_MAX_EPOCH 1000000
#define DL_CKPT_MAX_SAMPLES ((uint64_t)1 << 53)

/* The checkpoint's position in its epoch against this run's training set. */
dl_status dl_checkpoint_check_position(const char *path, const dl_progress *p, size_t train_n);

/* Before training: refuses a checkpoint path that is a directory, removes
 * temporary files (path.tmp.PID) left by a dltrain that died mid-save (its
 * PID no longer alive), and checks that the directory is writable, so a
 * read-only --out fails now and not after an epoch of work. */
dl_status dl_checkpoint_prepare(const char *path);

/* For tests and the fuzzer that forge checkpoints: the header size, and
 * recomputing both checksums of a whole checkpoint image in memory
 * (returns 0 if size is smaller than a header). */
size_t dl_checkpoint_header_bytes(void);
int dl_checkpoint_reseal(unsigned char *file, size_t size);

#endif
