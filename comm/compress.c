/* compress.c: the compressed, error-feedback average of gradient buckets
 * over a comm (see compress.h and docs/compression.md). */
#include "compress.h"
#include "compress_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* ---- PowerSGD's small matrix products ------------------------------------- */

void dl_powersgd_orthonormalize(float *p, size_t m, int r)
{
    /* PyTorch adds an epsilon to the norm so a zero column stays zero. */
    const double eps = 1e-8;
    for (int c = 0; c < r; c++) {
        for (int j = 0; j < c; j++) {
            double dot = 0.0;
            for (size_t i = 0; i < m; i++)
                dot += (double)p[i * r + c] * p[i * r + j];
            for (size_t i = 0; i < m; i++)
                p[i * r + c] -= (float)(dot * p[i * r + j]);
        }
        double norm = 0.0;
        for (size_t i = 0; i < m; i++)
            norm += (double)p[i * r + c] * p[i * r + c];
        double inv = 1.0 / (sqrt(norm) + eps);
        for (size_t i = 0; i < m; i++)
            p[i * r + c] = (float)(p[i * r + c] * inv);
    }
}

void dl_powersgd_mul(const float *a, const float *b, float *out, size_t m, size_t k, int r)
{
    for (size_t i = 0; i < m; i++)
        for (int c = 0; c < r; c++) {
            float s = 0.0f;
            for (size_t j = 0; j < k; j++)
                s += a[i * k + j] * b[j * r + c];
            out[i * r + c] = s;
        }
}

void dl_powersgd_mul_t(const float *a, const float *b, float *out, size_t m, size_t k, int r)
{
    memset(out, 0, k * (size_t)r * sizeof *out);
    for (size_t i = 0; i < m; i++) /* row by row: a is read in memory order */
        for (size_t j = 0; j < k; j++)
            for (int c = 0; c < r; c++)
                out[j * r + c] += a[i * k + j] * b[i * r + c];
}

void dl_powersgd_outer(const float *p, const float *q, float *out, size_t m, size_t k, int r)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < k; j++) {
            float s = 0.0f;
            for (int c = 0; c < r; c++)
                s += p[i * r + c] * q[j * r + c];
            out[i * k + j] = s;
        }
}

/* ---- set-up --------------------------------------------------------------- */

/* PowerSGD buckets with nothing low-rank and nothing skipped: one plain
 * all-reduce of the bucket in place. */
static int is_plain(const dl_compressor *c, int i)
{
    const dl_psgd_plan *pl = &c->plans[i];
    return c->spec.kind == DL_COMPRESS_POWERSGD && pl->n_pieces == 0 && pl->skip == 0;
}

/* A bucket that lies wholly inside a matrix an earlier bucket sends
 * (dl_psgd_plan's skip): no collective at all. */
static int sends_nothing(const dl_compressor *c, int i)
{
    return c->spec.kind == DL_COMPRESS_POWERSGD && c->plans[i].round1 == 0;
}

dl_status dl_compressor_reserve(const dl_compressor *c, dl_comm *comm)
{
    for (int i = 0; comm->reserve && i < c->n_buckets; i++) {
        const dl_psgd_plan *pl = &c->plans[i];
        size_t f = sizeof(float);
        dl_status st =
            c->spec.kind != DL_COMPRESS_POWERSGD
                ? comm->reserve(comm, i, c->enc_bytes[i], 1)
            : is_plain(c, i) ? comm->reserve(comm, i, c->bucket_n[i] * f, 0)
                             : comm->reserve(comm, i, DL_MAX(pl->round1, pl->q_floats) * f, 0);
        if (st != DL_OK)
            return st;
    }
    return DL_OK;
}

dl_status dl_compressor_check_rank(const dl_compressor *c)
{
    if (c->spec.kind != DL_COMPRESS_POWERSGD)
        return DL_OK;
    size_t largest = 0;
    for (int i = 0; i < c->n_buckets; i++) {
        if (c->plans[i].n_pieces > 0)
            return DL_OK;
        largest = DL_MAX(largest, c->bucket_n[i]);
    }
    if (c->per_layer)
        return dl_fail(DL_ERR_ARG, "--compress powersgd:%d: no layer's weight matrix would "
                       "shrink with rank-%d factors (PyTorch's rule: (rows + cols) x rank x 2 < "
                       "rows x cols); use a lower rank", c->spec.rank, c->spec.rank);
    size_t m, k;
    dl_powersgd_shape(largest, &m, &k);
    return dl_fail(DL_ERR_ARG, "--compress powersgd:%d: the largest bucket holds %zu values, a "
                   "%zu x %zu matrix, which rank-%d factors would not shrink; use a lower rank "
                   "or larger buckets (--bucket-mb)", c->spec.rank, largest, m, k, c->spec.rank);
}

/* An element-wise codec's runs of bucket i (dl_codec_segments) and its
 * encoded size. */
static dl_status make_segments(dl_compressor *c, int i, const dl_grad_matrix *mats, int n_mats)
{
    dl_compress_kind kind = c->spec.kind;
    size_t lo = c->bucket_lo[i], n = c->bucket_n[i];
    size_t count = dl_codec_segments(kind, lo, n, c->n, mats, n_mats, NULL, 0, &c->enc_bytes[i]);
    c->segs[i] = dl_alloc((count + 1) * sizeof *c->segs[i], "a bucket's codec runs");
    if (!c->segs[i])
        return DL_ERR_OOM;
    c->n_segs[i] = dl_codec_segments(kind, lo, n, c->n, mats, n_mats, c->segs[i], count, NULL);
    return DL_OK;
}

/* Each bucket's plan (PowerSGD) or runs (the element-wise codecs), the
 * offsets of its Qs after the residual, and the state's size. */
static dl_status make_plans(dl_compressor *c, const dl_grad_matrix *mats, int n_mats)
{
    size_t off = c->n;
    for (int i = 0; i < c->n_buckets; i++) {
        c->q_off[i] = off;
        if (c->spec.kind != DL_COMPRESS_POWERSGD) {
            dl_status st = make_segments(c, i, mats, n_mats);
            if (st != DL_OK)
                return st;
            continue;
        }
        dl_status st = dl_psgd_plan_make(&c->plans[i], c->bucket_lo[i], c->bucket_n[i], mats,
                                         n_mats, c->spec.rank);
        if (st != DL_OK)
            return st;
        off += c->plans[i].q_floats;
    }
    c->n_state = off;
    c->n_shared = off - c->n;
    return DL_OK;
}

/* Q starts as the same normal draws on every rank (from the seed), drawn
 * on the host and copied to where the state lives. */
static dl_status init_q(dl_compressor *c, uint64_t seed)
{
    if (c->n_shared == 0)
        return DL_OK;
    float *q = dl_alloc(c->n_shared * sizeof *q, "PowerSGD's Q");
    if (!q)
        return DL_ERR_OOM;
    for (int i = 0; i < c->n_buckets; i++) {
        dl_rng rng;
        dl_rng_seed(&rng, seed, 0x5053474fu /* "PSGO" */, (uint64_t)i);
        size_t end = i + 1 < c->n_buckets ? c->q_off[i + 1] : c->n_state;
        for (size_t j = c->q_off[i]; j < end; j++)
            q[j - c->n] = (float)dl_rng_normal(&rng);
    }
    c->ops->from_host(c, c->state + c->n, q, c->n_shared * sizeof *q);
    free(q);
    return DL_OK;
}

static dl_status alloc_buffers(dl_compressor *c, int world)
{
    const dl_compress_ops *o = c->ops;
    size_t largest = 0;
    for (int i = 0; i < c->n_buckets; i++) {
        size_t n = c->bucket_n[i];
        if (is_plain(c, i))
            continue;
        if (c->spec.kind == DL_COMPRESS_POWERSGD) {
            const dl_psgd_plan *pl = &c->plans[i];
            n = pl->largest;
            c->work[i] = o->alloc(c, (pl->mat_floats + pl->round1) * sizeof(float), "PowerSGD");
            if (!c->work[i])
                return DL_ERR_OOM;
        } else {
            size_t bytes = c->enc_bytes[i];
            c->send[i] = o->alloc(c, bytes, "compressed bucket");
            c->recv[i] = o->alloc(c, bytes * (size_t)world, "compressed buckets of every rank");
            if (!c->send[i] || !c->recv[i])
                return DL_ERR_OOM;
        }
        largest = DL_MAX(largest, n);
    }
    c->scratch = o->alloc(c, (largest + 1) * sizeof(float), "decompressed bucket");
    return c->scratch ? DL_OK : DL_ERR_OOM;
}

const char *dl_compress_placement(const dl_device *dev)
{
    if (!dev || dev->kind == DL_DEVICE_CPU)
        return dl_compress_host_ops()->where;
    const dl_compress_ops *o = dl_compress_cuda_ops();
    return dev->kind == DL_DEVICE_CUDA && o ? o->where : NULL;
}

const char *dl_compressor_where(const dl_compressor *c) { return c->ops->where; }

static const dl_compress_ops *ops_for(const dl_device *dev)
{
    if (!dev || dev->kind == DL_DEVICE_CPU)
        return dl_compress_host_ops();
    return dev->kind == DL_DEVICE_CUDA ? dl_compress_cuda_ops() : NULL;
}

dl_status dl_compressor_init_on(dl_compressor *c, dl_compress_spec spec, size_t n,
                                const size_t *bucket_lo, const size_t *bucket_n, int n_buckets,
                                int world, uint64_t seed, dl_device *dev,
                                const dl_grad_matrix *mats, int n_mats)
{
    memset(c, 0, sizeof *c);
    const dl_compress_ops *ops = ops_for(dev);
    if (!ops)
        return dl_fail(DL_ERR_ARG, "gradient compression on the %s device is not built into "
                       "this dltrain", dev->name);
    c->spec = spec, c->n = n, c->n_buckets = n_buckets, c->ops = ops;
    c->dev = dev && dev->kind != DL_DEVICE_CPU ? dev : NULL;
    size_t nb = (size_t)n_buckets;
    c->bucket_lo = malloc(nb * sizeof *c->bucket_lo);
    c->bucket_n = malloc(nb * sizeof *c->bucket_n);
    c->q_off = malloc(nb * sizeof *c->q_off);
    c->send = calloc(nb, sizeof *c->send);
    c->recv = calloc(nb, sizeof *c->recv);
    c->work = calloc(nb, sizeof *c->work);
    c->plans = calloc(nb, sizeof *c->plans);
    c->segs = calloc(nb, sizeof *c->segs);
    c->n_segs = calloc(nb, sizeof *c->n_segs);
    c->enc_bytes = calloc(nb, sizeof *c->enc_bytes);
    if (!c->bucket_lo || !c->bucket_n || !c->q_off || !c->send || !c->recv || !c->work ||
        !c->plans || !c->segs || !c->n_segs || !c->enc_bytes) {
        dl_compressor_free(c);
        return dl_fail(DL_ERR_OOM, "out of memory for compression of %d buckets", n_buckets);
    }
    memcpy(c->bucket_lo, bucket_lo, nb * sizeof *bucket_lo);
    memcpy(c->bucket_n, bucket_n, nb * sizeof *bucket_n);
    c->per_layer = mats != NULL && dl_compress_by_layer(spec.kind);
    dl_status st = make_plans(c, mats, n_mats);
    if (st == DL_OK)
        c->state = ops->alloc(c, (c->n_state + 1) * sizeof *c->state, "error-feedback residual");
    if (st == DL_OK)
        st = c->state ? alloc_buffers(c, world) : DL_ERR_OOM;
    if (st == DL_OK)
        st = init_q(c, seed);
    if (st != DL_OK)
        dl_compressor_free(c);
    return st;
}

dl_status dl_compressor_init(dl_compressor *c, dl_compress_spec spec, size_t n,
                             const size_t *bucket_lo, const size_t *bucket_n, int n_buckets,
                             int world, uint64_t seed)
{
    return dl_compressor_init_on(c, spec, n, bucket_lo, bucket_n, n_buckets, world, seed, NULL,
                                 NULL, 0);
}

void dl_compressor_free(dl_compressor *c)
{
    const dl_compress_ops *o = c->ops;
    for (int i = 0; o && i < c->n_buckets && c->send; i++) {
        o->release(c, c->send[i]);
        o->release(c, c->recv[i]);
        o->release(c, c->work[i]);
    }
    if (o)
        o->release(c, c->state), o->release(c, c->scratch);
    for (int i = 0; c->plans && i < c->n_buckets; i++)
        dl_psgd_plan_free(&c->plans[i]);
    for (int i = 0; c->segs && i < c->n_buckets; i++)
        free(c->segs[i]);
    free(c->segs), free(c->n_segs), free(c->enc_bytes);
    free(c->bucket_lo), free(c->bucket_n), free(c->q_off), free(c->plans);
    free(c->send), free(c->recv), free(c->work);
    memset(c, 0, sizeof *c);
}

void dl_compressor_get_state(dl_compressor *c, float *host)
{
    c->ops->to_host(c, host, c->state, c->n_state * sizeof *host);
}

void dl_compressor_set_state(dl_compressor *c, const float *residual, const float *shared)
{
    if (residual)
        c->ops->from_host(c, c->state, residual, c->n * sizeof *residual);
    if (shared && c->n_shared)
        c->ops->from_host(c, c->state + c->n, shared, c->n_shared * sizeof *shared);
}

dl_status dl_compressor_zero_residual(dl_compressor *c)
{
    return c->ops->zero(c, c->state, c->n);
}

/* ---- the exchange --------------------------------------------------------- */

/* A GPU compressor needs a backend that takes GPU memory (nccl, staged MPI).
 * On one rank any backend will do: the average of one rank is the identity
 * and the all-gather a copy the table makes itself, so no collective runs
 * (the local backend would memmove GPU pointers on the host). */
static int one_rank_alone(const dl_compressor *c, const dl_comm *comm)
{
    return c->dev && !comm->device_memory && comm->world == 1;
}

static dl_status check_backend(const dl_compressor *c, const dl_comm *comm)
{
    if (c->dev && !comm->device_memory && comm->world > 1)
        return dl_fail(DL_ERR_ARG, "the %s backend exchanges host memory, and these compressed "
                       "gradients are in GPU memory (use NCCL or the staged MPI backend)",
                       comm->name);
    if (!one_rank_alone(c, comm) && !comm->allgather_start &&
        c->spec.kind != DL_COMPRESS_POWERSGD)
        return dl_fail(DL_ERR_ARG, "the %s backend cannot all-gather compressed gradients yet; "
                       "use --compress none", comm->name);
    return DL_OK;
}

static dl_status avg_start(dl_compressor *c, dl_comm *comm, float *x, size_t n, int i)
{
    return one_rank_alone(c, comm) ? DL_OK : comm->allreduce_avg_start(comm, x, n, i);
}

static dl_status exchange_wait(dl_compressor *c, dl_comm *comm, int i, double *done_at)
{
    if (!one_rank_alone(c, comm))
        return comm->allreduce_wait(comm, i, done_at);
    if (done_at)
        *done_at = dl_now();
    return DL_OK;
}

/* Error feedback and encoding run by run into the bucket's send buffer,
 * then one all-gather of it. */
static dl_status codec_start(dl_compressor *c, dl_comm *comm, float *x, int i)
{
    size_t bytes = c->enc_bytes[i];
    float *res = c->state + c->bucket_lo[i];
    for (size_t j = 0; j < c->n_segs[i]; j++) {
        const dl_codec_seg *sg = &c->segs[i][j];
        dl_status st = c->ops->feedback(c, sg->kind, x + sg->off, res + sg->off, sg->n,
                                        c->send[i] + sg->at);
        if (st != DL_OK)
            return st;
    }
    if (one_rank_alone(c, comm)) {
        c->ops->copy(c, c->recv[i], c->send[i], bytes);
        return DL_OK;
    }
    return comm->allgather_start(comm, c->send[i], c->recv[i], bytes, i);
}

/* PowerSGD's first half: each piece's M = x + residual and P = M Q, the
 * plain runs gathered after the Ps; one all-reduce averages both. */
static dl_status powersgd_start(dl_compressor *c, dl_comm *comm, float *x, int i)
{
    const dl_psgd_plan *pl = &c->plans[i];
    float *res = c->state + c->bucket_lo[i], *q = c->state + c->q_off[i];
    float *mat = c->work[i], *round1 = mat + pl->mat_floats;
    int r = c->spec.rank;
    for (int j = 0; j < pl->n_pieces; j++) {
        const dl_psgd_piece *pc = &pl->pieces[j];
        dl_status st = c->ops->psgd_project(c, x + pc->off, res + pc->off, pc->n, mat + pc->mat,
                                            q + pc->q, round1 + pc->p, pc->rows, pc->cols, r);
        if (st != DL_OK)
            return st;
    }
    for (int j = 0; j < pl->n_runs; j++)
        c->ops->copy(c, round1 + pl->runs[j].at, x + pl->runs[j].off,
                     pl->runs[j].n * sizeof *x);
    return avg_start(c, comm, round1, pl->round1, i);
}

/* PowerSGD's second half: the plain means back into the bucket; each P
 * orthonormalized, Q = M^T P, the Qs averaged (and kept: the next step
 * starts from them); each piece becomes P Q^T, its residual M - P Q^T. */
static dl_status powersgd_finish(dl_compressor *c, dl_comm *comm, float *x, int i,
                                 double *done_at)
{
    const dl_psgd_plan *pl = &c->plans[i];
    float *res = c->state + c->bucket_lo[i], *q = c->state + c->q_off[i];
    float *mat = c->work[i], *round1 = mat + pl->mat_floats;
    int r = c->spec.rank;
    for (int j = 0; j < pl->n_runs; j++)
        c->ops->copy(c, x + pl->runs[j].off, round1 + pl->runs[j].at,
                     pl->runs[j].n * sizeof *x);
    dl_status st = DL_OK;
    for (int j = 0; j < pl->n_pieces && st == DL_OK; j++) {
        const dl_psgd_piece *pc = &pl->pieces[j];
        st = c->ops->psgd_back(c, mat + pc->mat, round1 + pc->p, q + pc->q, pc->rows, pc->cols, r);
    }
    if (pl->q_floats == 0) /* only plain runs here (next to a skip) */
        return st;
    if (st == DL_OK)
        st = avg_start(c, comm, q, pl->q_floats, i);
    if (st == DL_OK)
        st = exchange_wait(c, comm, i, done_at);
    for (int j = 0; j < pl->n_pieces && st == DL_OK; j++) {
        const dl_psgd_piece *pc = &pl->pieces[j];
        st = c->ops->psgd_apply(c, mat + pc->mat, round1 + pc->p, q + pc->q, x + pc->off,
                                res + pc->off, pc->n, pc->rows, pc->cols, r);
    }
    return st;
}

dl_status dl_compressor_start(dl_compressor *c, dl_comm *comm, float *x, int i)
{
    dl_status st = check_backend(c, comm);
    if (st != DL_OK || sends_nothing(c, i))
        return st;
    if (is_plain(c, i))
        return avg_start(c, comm, x, c->bucket_n[i], i);
    if (c->spec.kind == DL_COMPRESS_POWERSGD)
        return powersgd_start(c, comm, x, i);
    return codec_start(c, comm, x, i);
}

dl_status dl_compressor_wait(dl_compressor *c, dl_comm *comm, float *x, int i, double *done_at)
{
    if (sends_nothing(c, i)) {
        if (done_at)
            *done_at = dl_now();
        return DL_OK;
    }
    dl_status st = exchange_wait(c, comm, i, done_at);
    if (st != DL_OK || is_plain(c, i))
        return st;
    if (c->spec.kind == DL_COMPRESS_POWERSGD)
        return powersgd_finish(c, comm, x, i, done_at);
    for (size_t j = 0; j < c->n_segs[i] && st == DL_OK; j++) {
        const dl_codec_seg *sg = &c->segs[i][j];
        st = c->ops->mean(c, sg->kind, c->recv[i] + sg->at, c->enc_bytes[i], sg->n, comm->world,
                          x + sg->off);
    }
    return st;
}
