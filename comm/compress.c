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

static size_t work_floats(const dl_compressor *c, size_t n)
{
    if (c->spec.kind != DL_COMPRESS_POWERSGD)
        return n;
    size_t m, k;
    dl_powersgd_shape(n, &m, &k);
    return m * k + m * (size_t)c->spec.rank; /* M, then P */
}

dl_status dl_compressor_check_rank(const dl_compressor *c)
{
    if (c->spec.kind != DL_COMPRESS_POWERSGD)
        return DL_OK;
    size_t largest = 0;
    for (int i = 0; i < c->n_buckets; i++) {
        if (!dl_powersgd_plain(c->bucket_n[i], c->spec.rank))
            return DL_OK;
        largest = DL_MAX(largest, c->bucket_n[i]);
    }
    size_t m, k;
    dl_powersgd_shape(largest, &m, &k);
    return dl_fail(DL_ERR_ARG, "--compress powersgd:%d: the largest bucket holds %zu values, a "
                   "%zu x %zu matrix, which rank-%d factors would not shrink; use a lower rank "
                   "or larger buckets (--bucket-mb)", c->spec.rank, largest, m, k, c->spec.rank);
}

static int is_plain(const dl_compressor *c, int i)
{
    return c->spec.kind == DL_COMPRESS_POWERSGD && dl_powersgd_plain(c->bucket_n[i], c->spec.rank);
}

/* Offsets of each bucket's Q (k x rank) after the residual; returns the end. */
static size_t layout_q(dl_compressor *c)
{
    size_t off = c->n;
    for (int i = 0; i < c->n_buckets; i++) {
        size_t m, k;
        dl_powersgd_shape(c->bucket_n[i], &m, &k);
        c->q_off[i] = off;
        off += c->spec.kind == DL_COMPRESS_POWERSGD && !is_plain(c, i) ? k * (size_t)c->spec.rank
                                                                        : 0;
    }
    return off;
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
            size_t m, k;
            dl_powersgd_shape(n, &m, &k);
            n = m * k;
            c->work[i] = o->alloc(c, work_floats(c, c->bucket_n[i]) * sizeof(float), "PowerSGD");
            if (!c->work[i])
                return DL_ERR_OOM;
        } else {
            size_t bytes = dl_codec_bytes(c->spec.kind, n);
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
                                int world, uint64_t seed, dl_device *dev)
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
    if (!c->bucket_lo || !c->bucket_n || !c->q_off || !c->send || !c->recv || !c->work) {
        dl_compressor_free(c);
        return dl_fail(DL_ERR_OOM, "out of memory for compression of %d buckets", n_buckets);
    }
    memcpy(c->bucket_lo, bucket_lo, nb * sizeof *bucket_lo);
    memcpy(c->bucket_n, bucket_n, nb * sizeof *bucket_n);
    c->n_state = layout_q(c);
    c->n_shared = c->n_state - n;
    c->state = ops->alloc(c, (c->n_state + 1) * sizeof *c->state, "error-feedback residual");
    dl_status st = c->state ? alloc_buffers(c, world) : DL_ERR_OOM;
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
    return dl_compressor_init_on(c, spec, n, bucket_lo, bucket_n, n_buckets, world, seed, NULL);
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
    free(c->bucket_lo), free(c->bucket_n), free(c->q_off);
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

static dl_status codec_start(dl_compressor *c, dl_comm *comm, float *x, int i)
{
    size_t n = c->bucket_n[i], bytes = dl_codec_bytes(c->spec.kind, n);
    dl_status st = c->ops->feedback(c, x, c->state + c->bucket_lo[i], n, c->send[i]);
    if (st != DL_OK)
        return st;
    if (one_rank_alone(c, comm)) {
        c->ops->copy(c, c->recv[i], c->send[i], bytes);
        return DL_OK;
    }
    return comm->allgather_start(comm, c->send[i], c->recv[i], bytes, i);
}

static dl_status powersgd_start(dl_compressor *c, dl_comm *comm, float *x, int i)
{
    size_t n = c->bucket_n[i], m, k;
    int r = c->spec.rank;
    dl_powersgd_shape(n, &m, &k);
    float *mat = c->work[i], *p = mat + m * k, *q = c->state + c->q_off[i];
    dl_status st = c->ops->psgd_project(c, x, c->state + c->bucket_lo[i], n, mat, q, p, m, k, r);
    return st == DL_OK ? avg_start(c, comm, p, m * (size_t)r, i) : st;
}

/* PowerSGD's second half: P averaged, orthonormalized; Q = M^T P averaged
 * (and kept: the next step starts from it); the bucket becomes P Q^T. */
static dl_status powersgd_finish(dl_compressor *c, dl_comm *comm, float *x, int i,
                                 double *done_at)
{
    size_t n = c->bucket_n[i], m, k;
    int r = c->spec.rank;
    dl_powersgd_shape(n, &m, &k);
    float *mat = c->work[i], *p = mat + m * k, *q = c->state + c->q_off[i];
    dl_status st = c->ops->psgd_back(c, mat, p, q, m, k, r);
    if (st == DL_OK)
        st = avg_start(c, comm, q, k * (size_t)r, i);
    if (st == DL_OK)
        st = exchange_wait(c, comm, i, done_at);
    if (st != DL_OK)
        return st;
    return c->ops->psgd_apply(c, mat, p, q, x, c->state + c->bucket_lo[i], n, m, k, r);
}

dl_status dl_compressor_start(dl_compressor *c, dl_comm *comm, float *x, int i)
{
    dl_status st = check_backend(c, comm);
    if (st != DL_OK)
        return st;
    if (is_plain(c, i))
        return avg_start(c, comm, x, c->bucket_n[i], i);
    if (c->spec.kind == DL_COMPRESS_POWERSGD)
        return powersgd_start(c, comm, x, i);
    return codec_start(c, comm, x, i);
}

dl_status dl_compressor_wait(dl_compressor *c, dl_comm *comm, float *x, int i, double *done_at)
{
    dl_status st = exchange_wait(c, comm, i, done_at);
    if (st != DL_OK || is_plain(c, i))
        return st;
    if (c->spec.kind == DL_COMPRESS_POWERSGD)
        return powersgd_finish(c, comm, x, i, done_at);
    return c->ops->mean(c, c->recv[i], c->bucket_n[i], comm->world, x);
}
