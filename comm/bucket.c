/* bucket.c: cutting the gradient buffer into all-reduce buckets. */
#include "bucket.h"

#include <stdlib.h>

size_t dl_bucket_stride(size_t bucket_floats)
{
    return (bucket_floats + DL_BUCKET_ALIGN_FLOATS - 1) / DL_BUCKET_ALIGN_FLOATS *
           DL_BUCKET_ALIGN_FLOATS;
}

dl_status dl_buckets_init(dl_buckets *b, dl_comm *comm, float *grads, size_t n_params,
                          size_t bucket_floats)
{
    if (bucket_floats == 0)
        return dl_fail(DL_ERR_ARG, "bucket size must be positive");
    /* every boundary on 256 bytes (the buffer itself is allocated so) */
    bucket_floats = dl_bucket_stride(bucket_floats);
    size_t count = (n_params + bucket_floats - 1) / bucket_floats;
    if (count == 0)
        count = 1;
    if (count > DL_COMM_SLOTS)
        return dl_fail(DL_ERR_ARG, "%zu buckets are more than the %d a step can have in flight; "
                       "use a larger --bucket-mb", count, DL_COMM_SLOTS);
    *b = (dl_buckets){.comm = comm, .grads = grads, .n_params = n_params, .count = (int)count};
    b->end = malloc(count * sizeof *b->end);
    b->start_at = calloc(count, sizeof *b->start_at);
    b->done_at = calloc(count, sizeof *b->done_at);
    if (!b->end || !b->start_at || !b->done_at) {
        dl_buckets_free(b);
        return dl_fail(DL_ERR_OOM, "out of memory for %zu buckets", count);
    }
    for (size_t i = 0; i < count; i++) {
        size_t e = (i + 1) * bucket_floats;
        b->end[i] = e < n_params ? e : n_params;
        size_t floats = b->end[i] - i * bucket_floats; /* the staged backend pins them now */
        dl_status st = DL_OK;
        if (comm && comm->reserve)
            st = comm->reserve(comm, (int)i, floats * sizeof(float), 0);
        if (st != DL_OK) {
            dl_buckets_free(b);
            return st;
        }
    }
    return DL_OK;
}

void dl_buckets_begin_step(dl_buckets *b)
{
    b->started = 0;
    b->status = DL_OK;
}

static void start_next(dl_buckets *b)
{
    int i = b->started++;
    size_t lo = i ? b->end[i - 1] : 0;
    b->start_at[i] = dl_now();
    if (i == 0)
        b->first_start = b->start_at[i];
    dl_status st = b->compress
                       ? dl_compressor_start(b->compress, b->comm, b->grads + lo, i)
                       : b->comm->allreduce_avg_start(b->comm, b->grads + lo, b->end[i] - lo, i);
    if (st != DL_OK && b->status == DL_OK)
        b->status = st;
}

void dl_buckets_ready(void *buckets, size_t ready)
{
    dl_buckets *b = buckets;
    while (b->started < b->count && b->end[b->started] <= ready)
        start_next(b);
}

dl_status dl_buckets_finish(dl_buckets *b, double *last_done)
{
    while (b->started < b->count)
        start_next(b);
    dl_status st = b->status;
    *last_done = b->first_start;
    for (int i = 0; i < b->count; i++) {
        double done;
        size_t lo = i ? b->end[i - 1] : 0;
        dl_status w = b->compress
                          ? dl_compressor_wait(b->compress, b->comm, b->grads + lo, i, &done)
                          : b->comm->allreduce_wait(b->comm, i, &done);
        if (st == DL_OK)
            st = w;
        b->done_at[i] = done;
        if (done > *last_done)
            *last_done = done;
    }
    return st;
}

void dl_buckets_free(dl_buckets *b)
{
    free(b->end);
    free(b->start_at);
    free(b->done_at);
    b->end = NULL;
    b->start_at = b->done_at = NULL;
}

dl_status dl_buckets_compress(dl_buckets *b, dl_compressor *c, dl_compress_spec spec,
                              uint64_t seed, dl_device *dev, const dl_grad_matrix *mats,
                              int n_mats)
{
    size_t *lo = malloc((size_t)b->count * sizeof *lo), *n = malloc((size_t)b->count * sizeof *n);
    if (!lo || !n) {
        free(lo), free(n);
        return dl_fail(DL_ERR_OOM, "out of memory for the bucket layout");
    }
    dl_buckets_layout(b, lo, n);
    dl_status st = dl_compressor_init_on(c, spec, b->n_params, lo, n, b->count, b->comm->world,
                                         seed, dev, mats, n_mats);
    free(lo), free(n);
    if (st == DL_OK && (st = dl_compressor_check_rank(c)) == DL_OK &&
        (st = dl_compressor_reserve(c, b->comm)) == DL_OK)
        b->compress = c;
    return st;
}

void dl_buckets_layout(const dl_buckets *b, size_t *lo, size_t *n)
{
    for (int i = 0; i < b->count; i++) {
        lo[i] = i ? b->end[i - 1] : 0;
        n[i] = b->end[i] - lo[i];
    }
}

double dl_buckets_default_mb(size_t n_params)
{
    double mb = (double)n_params * sizeof(float) / 8.0 / 1048576.0;
    return mb < 0.25 ? 0.25 : mb > 25.0 ? 25.0 : mb;
}
