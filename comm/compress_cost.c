/* compress_cost.c: what compression costs one rank's CPU per step, timed
 * by running the host table's own steps (compress_host.c; see
 * dl_compress_cpu_ms in compress.h).
 *
 * `predict --compress` and `scale`'s predicted column need this: on a slow
 * link compression saves wire time, but the rank pays for it in compute,
 * and on a fast link that cost can exceed the saving.  A step's cost is
 * linear in the gradient count (per bucket: error feedback and one encode
 * and decode, then one decode-and-add per rank; PowerSGD: M Q, M^T P and
 * P Q^T, whatever the rank count), so one timed bucket per compressor,
 * scaled, gives every world size and model without timing each. */
#include "bucket.h"
#include "compress.h"
#include "compress_ops.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "rng.h"

/* The bucket timed: 1 Mi floats (4 MiB) keeps the timing near 0.1 s; other
 * sizes are scaled per float (cache effects ignored). */
#define TIMED_FLOATS ((size_t)1 << 20)
#define MIN_TIMED_S 0.05

typedef struct {
    int timed;
    size_t floats;       /* bucket size timed */
    double start_ms;     /* per bucket: error feedback and encoding (PowerSGD: all of it) */
    double per_rank_ms;  /* per bucket and rank: decoding and adding a shard */
} codec_cost;

static void fill_gradients(float *x, size_t n)
{
    dl_rng rng;
    dl_rng_seed(&rng, 7, 0x636f7374u /* "cost" */, 0);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(1e-3 * dl_rng_normal(&rng));
}

/* Runs body(args) until MIN_TIMED_S has passed; milliseconds per call. */
#define TIME_MS(out, body)                                                                  \
    do {                                                                                    \
        int reps_ = 0;                                                                      \
        double t0_ = dl_now(), t_;                                                          \
        do {                                                                                \
            body;                                                                           \
            reps_++;                                                                        \
        } while ((t_ = dl_now() - t0_) < MIN_TIMED_S);                                      \
        (out) = 1e3 * t_ / reps_;                                                           \
    } while (0)

/* Shards averaged per timing of the host table's mean: enough that its
 * zeroing and scaling passes weigh little against the per-shard decode. */
#define TIMED_SHARDS 4

/* Times the host table's own steps (compress_host.c), the code a CPU rank
 * runs: error feedback with encoding, and the rank-ordered mean of shards. */
static void time_codec(dl_compress_kind kind, size_t n, codec_cost *cost)
{
    const dl_compress_ops *ops = dl_compress_host_ops();
    size_t bytes = dl_codec_bytes(kind, n);
    dl_compressor c = {.spec = {.kind = kind, .rank = 0}, .ops = ops};
    float *x = malloc(n * sizeof *x), *residual = calloc(n, sizeof *residual);
    unsigned char *shards = malloc(bytes * TIMED_SHARDS);
    c.scratch = malloc(n * sizeof *c.scratch);
    if (!x || !residual || !shards || !c.scratch)
        goto out;
    fill_gradients(x, n);
    TIME_MS(cost->start_ms, ops->feedback(&c, kind, x, residual, n, shards));
    for (int r = 1; r < TIMED_SHARDS; r++)
        memcpy(shards + (size_t)r * bytes, shards, bytes);
    double mean_ms;
    TIME_MS(mean_ms, ops->mean(&c, kind, shards, bytes, n, TIMED_SHARDS, x));
    cost->per_rank_ms = mean_ms / TIMED_SHARDS;
    cost->floats = n, cost->timed = 1;
out:
    free(x), free(residual), free(shards), free(c.scratch);
}

/* PowerSGD's three host steps for one bucket: M Q, Gram-Schmidt and M^T P,
 * P Q^T with the new residual; the same whatever the rank count. */
static void time_powersgd(int rank, size_t n, codec_cost *cost)
{
    const dl_compress_ops *ops = dl_compress_host_ops();
    size_t m, k;
    dl_powersgd_shape(n, &m, &k);
    dl_compressor c = {.spec = {.kind = DL_COMPRESS_POWERSGD, .rank = rank}, .ops = ops};
    float *x = malloc(n * sizeof *x), *residual = calloc(n, sizeof *residual);
    float *mat = malloc(m * k * sizeof *mat), *p = malloc(m * (size_t)rank * sizeof *p);
    float *q = malloc(k * (size_t)rank * sizeof *q);
    c.scratch = malloc(m * k * sizeof *c.scratch);
    if (!x || !residual || !mat || !p || !q || !c.scratch)
        goto out;
    fill_gradients(x, n);
    fill_gradients(q, k * (size_t)rank);
    TIME_MS(cost->start_ms, {
        ops->psgd_project(&c, x, residual, n, mat, q, p, m, k, rank);
        ops->psgd_back(&c, mat, p, q, m, k, rank);
        ops->psgd_apply(&c, mat, p, q, x, residual, n, m, k, rank);
    });
    cost->per_rank_ms = 0.0;
    cost->floats = n, cost->timed = 1;
out:
    free(x), free(residual), free(mat), free(p), free(q), free(c.scratch);
}

/* A bucket of TIMED_FLOATS, timed on first use. */
static const codec_cost *cost_of(dl_compress_spec s)
{
    static codec_cost cache[DL_COMPRESS_POWERSGD + DL_POWERSGD_MAX_RANK + 1];
    int slot = s.kind == DL_COMPRESS_POWERSGD ? DL_COMPRESS_POWERSGD + s.rank - 1 : (int)s.kind;
    codec_cost *c = &cache[slot];
    if (!c->timed) {
        if (s.kind == DL_COMPRESS_POWERSGD)
            time_powersgd(s.rank, TIMED_FLOATS, c);
        else
            time_codec(s.kind, TIMED_FLOATS, c);
    }
    return c;
}

/* n values coded with s at `world` ranks, scaled from the timed bucket. */
static double floats_ms(dl_compress_spec s, int world, size_t n)
{
    const codec_cost *c = n ? cost_of(s) : NULL;
    if (!c || !c->timed)
        return 0.0;
    /* per float: PowerSGD's products grow as m k r = n r, linear in n too
     * (per layer: each matrix's rows x cols x r, the same per value) */
    return (c->start_ms + world * c->per_rank_ms) * (double)n / (double)c->floats;
}

/* One bucket [lo, lo + n) of total at `world` ranks.  PowerSGD's plain
 * floats cost a copy and are not charged; onebit per layer's exact runs go
 * through the same feedback and mean as plain fp32 shards, so they are
 * charged at that codec's timed cost, not at onebit's. */
static double bucket_ms(dl_compress_spec s, int world, size_t lo, size_t n, size_t total,
                        const dl_grad_matrix *mats, int n_mats)
{
    if (s.kind == DL_COMPRESS_POWERSGD)
        return floats_ms(s, world, dl_psgd_low_rank_floats(lo, n, mats, n_mats, s.rank));
    size_t count = dl_codec_segments(s.kind, lo, n, total, mats, n_mats, NULL, 0, NULL);
    dl_codec_seg *runs = malloc((count + 1) * sizeof *runs);
    if (!runs) /* a cost estimate: without memory for it, every value as coded */
        return floats_ms(s, world, n);
    dl_codec_segments(s.kind, lo, n, total, mats, n_mats, runs, count, NULL);
    size_t exact = 0;
    for (size_t j = 0; j < count; j++)
        exact += runs[j].kind == DL_COMPRESS_NONE ? runs[j].n : 0;
    free(runs);
    dl_compress_spec plain = {DL_COMPRESS_NONE, 0};
    return floats_ms(s, world, n - exact) + floats_ms(plain, world, exact);
}

double dl_compress_cpu_ms(dl_compress_spec s, int world, size_t n_params, size_t bucket_floats,
                          const dl_grad_matrix *mats, int n_mats)
{
    if (s.kind == DL_COMPRESS_NONE || world <= 1 || n_params == 0 || bucket_floats == 0)
        return 0.0;
    /* bucket by bucket where dl_buckets_init cuts (per layer, where a cut
     * falls in a layer matters; the codecs that do not go by layer ignore mats) */
    size_t step = dl_bucket_stride(bucket_floats);
    double ms = 0.0;
    for (size_t lo = 0; lo < n_params; lo += step)
        ms += bucket_ms(s, world, lo, DL_MIN(step, n_params - lo), n_params, mats, n_mats);
    return ms;
}
