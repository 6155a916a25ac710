/* bucket.h: gradient buckets.
 *
 * The gradient buffer is laid out in the order backward writes it (the last
 * layer's gradients first), so "the gradients written so far" is always a
 * prefix [0, ready).  Buckets are consecutive slices of about `bucket_floats`
 * each; bucket i's all-reduce starts as soon as `ready` passes its end, and
 * runs while backward continues with earlier layers. */
#ifndef DL_BUCKET_H
#define DL_BUCKET_H

#include <stddef.h>

#include "comm.h"
#include "compress.h"

typedef struct dl_buckets {
    dl_comm *comm;
    float *grads;
    size_t n_params;
    int count;          /* number of buckets */
    size_t *end;        /* [count] end offset of each bucket */
    double *start_at;   /* [count] when each bucket was handed to comm this step (dl_now) */
    double *done_at;    /* [count] when comm reported it finished (after finish) */
    int started;        /* buckets handed to comm this step */
    double first_start; /* when the first bucket of this step started */
    dl_status status;   /* first failure of a start in this step */
    dl_compressor *compress; /* NULL: plain float all-reduce; else compressed (compress.h) */
} dl_buckets;

/* Bucket boundaries fall on multiples of this many floats (256 bytes): NCCL
 * and the copy engines take their fast paths on aligned buffers, and
 * kernels reading a bucket can use 16-byte vector loads. */
#define DL_BUCKET_ALIGN_FLOATS 64

/* bucket_floats rounded up to DL_BUCKET_ALIGN_FLOATS: where dl_buckets_init
 * puts each bucket boundary (what models of the buckets cut by). */
size_t dl_bucket_stride(size_t bucket_floats);
/* Splits n_params into buckets of at most bucket_floats rounded up to
 * DL_BUCKET_ALIGN_FLOATS (at least one bucket): every bucket but the last
 * starts and ends on a 256-byte boundary of grads. */
dl_status dl_buckets_init(dl_buckets *b, dl_comm *comm, float *grads, size_t n_params,
                          size_t bucket_floats);
void dl_buckets_begin_step(dl_buckets *b);
/* Starts every bucket that lies entirely in [0, ready); fits dl_grads_ready_fn. */
void dl_buckets_ready(void *buckets, size_t ready);
/* Starts what is left and waits for all; *last_done is when the last one finished. */
dl_status dl_buckets_finish(dl_buckets *b, double *last_done);
void dl_buckets_free(dl_buckets *b);
/* Buckets i's offset and length, for dl_compressor_init (arrays of b->count). */
void dl_buckets_layout(const dl_buckets *b, size_t *lo, size_t *n);
/* Makes c a compressor of b's buckets over b's comm (dl_compressor_init_on
 * with the net's weight matrices, its rank check and dl_compressor_reserve)
 * and hands it to b (b->compress).  On failure c may hold what was made:
 * dl_compressor_free it. */
dl_status dl_buckets_compress(dl_buckets *b, dl_compressor *c, dl_compress_spec spec,
                              uint64_t seed, dl_device *dev, const dl_grad_matrix *mats,
                              int n_mats);

/* The default bucket size for n_params gradients, in MiB: an eighth of them,
 * at least 0.25 and at most 25 MiB.  With one bucket nothing can overlap
 * backward (it is ready only when backward ends), so small models need
 * buckets smaller than the customary 25 MiB to hide their all-reduce. */
double dl_buckets_default_mb(size_t n_params);

#endif
