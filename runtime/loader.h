/* loader.h: a background thread that prepares the next batch while the
 * current one trains (double buffering).
 *
 * Training mode: every rank computes the same seeded permutation per epoch;
 * a step covers global sample positions [pos, pos + world*batch) and rank r
 * takes [pos + r*batch, pos + (r+1)*batch).  Positions count samples, not
 * steps, so a checkpoint taken at one world size resumes at another.  The
 * last incomplete global batch of an epoch is dropped.
 *
 * Evaluation mode: no shuffle, no augmentation; rank r reads the contiguous
 * shard [r*n/world, (r+1)*n/world), the last batch may be short. */
#ifndef DL_LOADER_H
#define DL_LOADER_H

#include <pthread.h>

#include "data.h"
#include "trace.h"

typedef struct dl_batch {
    float *images;   /* [batch, c, h, w] host */
    int32_t *labels; /* [batch] */
    int n;           /* samples in this batch (<= batch) */
    size_t end_pos;  /* global position after this step (training) */
} dl_batch;

typedef struct dl_loader {
    const dl_dataset *ds;
    int batch, rank, world, training, augment;
    uint64_t seed;
    int epoch;
    size_t *perm;      /* [n] this epoch's order */
    size_t start_pos;  /* first position of this epoch's remaining steps */
    size_t shard_lo, shard_hi; /* evaluation shard */
    long total;        /* batches in this epoch (from start_pos) */
    long ready, taken; /* batches produced / handed out */
    long generation;   /* bumped by start_epoch so stale work is dropped */
    int busy, stop;
    dl_batch slots[2];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int thread_started;
    /* Set before the first dl_loader_start_epoch, or not at all: the thread
     * records a span per batch it prepares on this track. */
    dl_tracer *trace;
    int trace_track;
} dl_loader;

dl_status dl_loader_init(dl_loader *ld, const dl_dataset *ds, int batch, int rank, int world,
                         uint64_t seed, int training, int augment);
/* Begin an epoch (training: resume at global sample position start_pos). */
void dl_loader_start_epoch(dl_loader *ld, int epoch, size_t start_pos);
/* Next batch, or NULL at the end of the epoch.  Valid until the next call. */
const dl_batch *dl_loader_next(dl_loader *ld);
/* Whether dl_loader_next would return a batch (training thread only). */
int dl_loader_has_next(const dl_loader *ld);
/* Steps in a full training epoch for this world size. */
long dl_loader_steps_per_epoch(const dl_loader *ld);
void dl_loader_free(dl_loader *ld);

#endif
