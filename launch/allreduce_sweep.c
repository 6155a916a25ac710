/* allreduce_sweep.c: timing and checking the float32 average all-reduce
 * (allreduce_avg_start/wait, the gradient path) over message sizes. */
#include "allreduce_sweep.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double dl_sweep_bus_factor(int ranks) { return ranks > 1 ? 2.0 * (ranks - 1) / ranks : 0.0; }

/* The value rank r puts at index i: small integers, so the sum over ranks is
 * exact in float and only the final scaling by 1/n rounds. */
static float pattern(size_t i, int r) { return (float)((i * 7 + (size_t)r * 13) % 1024); }

static double expected(size_t i, int world)
{
    double s = 0;
    for (int r = 0; r < world; r++)
        s += pattern(i, r);
    return s / world;
}

/* The buffer reduced: host memory, or GPU memory (dev) with a host copy for
 * filling and checking it. */
typedef struct sweep_mem {
    dl_device *dev; /* NULL: host memory */
    float *host;    /* [max_count] */
    float *reduced; /* == host, or the device buffer */
    dl_compressor *comp; /* NULL: float average */
} sweep_mem;

/* One complete all-reduce: with a GPU buffer, wait only orders the device's
 * stream, so the clock stops after a device sync. */
static dl_status avg_once(dl_comm *c, const sweep_mem *m, size_t count)
{
    dl_status st;
    if (m->comp) {
        st = dl_compressor_start(m->comp, c, m->reduced, 0);
        if (st == DL_OK)
            st = dl_compressor_wait(m->comp, c, m->reduced, 0, NULL);
    } else {
        st = c->allreduce_avg_start(c, m->reduced, count, 0);
        if (st == DL_OK)
            st = c->allreduce_wait(c, 0, NULL);
    }
    if (st == DL_OK && m->dev)
        m->dev->sync(m->dev);
    return st;
}

/* This rank's median time of o->iters timed iterations, in seconds. */
static dl_status time_size(dl_comm *c, const dl_sweep_opts *o, const sweep_mem *m, size_t count,
                           double *times, double *median)
{
    dl_status st = DL_OK;
    for (int i = 0; st == DL_OK && i < o->warmup; i++)
        st = avg_once(c, m, count);
    for (int i = 0; st == DL_OK && i < o->iters; i++) {
        st = c->barrier(c);
        double t0 = dl_now();
        if (st == DL_OK)
            st = avg_once(c, m, count);
        times[i] = dl_now() - t0;
    }
    if (st != DL_OK)
        return st;
    dl_sort_doubles(times, (size_t)o->iters);
    int k = o->iters / 2;
    *median = o->iters % 2 ? times[k] : 0.5 * (times[k - 1] + times[k]);
    return DL_OK;
}

/* want[i] = the mean in rank order of every rank's pattern encoded and
 * decoded: what a compressed average with zero residuals must return. */
static dl_status replay_codec(dl_comm *c, dl_compress_kind kind, size_t count, float *want)
{
    float *x = dl_alloc(sizeof(float) * (2 * count + 1), "compression check");
    unsigned char *enc = dl_alloc(dl_codec_bytes(kind, count) + 8, "compression check");
    if (!x || !enc) {
        free(x), free(enc);
        return DL_ERR_OOM;
    }
    memset(want, 0, sizeof(float) * count);
    for (int r = 0; r < c->world; r++) {
        for (size_t i = 0; i < count; i++)
            x[i] = pattern(i, r);
        dl_codec_encode(kind, x, count, enc);
        dl_codec_decode(kind, enc, count, x + count);
        for (size_t i = 0; i < count; i++)
            want[i] += x[count + i];
    }
    for (size_t i = 0; i < count; i++)
        want[i] *= 1.0f / (float)c->world;
    free(x), free(enc);
    return DL_OK;
}

/* The compressed average of the pattern, residuals zero: equal to the
 * replayed mean (element-wise codecs) or to rank 0's result (PowerSGD). */
static dl_status check_compressed(dl_comm *c, const sweep_mem *m, size_t count, long *errors)
{
    float *buf = m->host, *want = dl_alloc(sizeof(float) * (count + 1), "compression check");
    if (!want)
        return DL_ERR_OOM;
    dl_status st = dl_compressor_zero_residual(m->comp);
    for (size_t i = 0; i < count; i++)
        buf[i] = pattern(i, c->rank);
    if (m->dev)
        m->dev->upload(m->dev, m->reduced, buf, sizeof(float) * count);
    if (st == DL_OK)
        st = avg_once(c, m, count);
    if (st == DL_OK && m->dev)
        m->dev->download(m->dev, buf, m->reduced, sizeof(float) * count);
    if (st == DL_OK && m->comp->spec.kind == DL_COMPRESS_POWERSGD) {
        memcpy(want, buf, sizeof(float) * count);
        st = c->broadcast(c, want, sizeof(float) * count, 0);
    } else if (st == DL_OK) {
        st = replay_codec(c, m->comp->spec.kind, count, want);
    }
    *errors = 0;
    for (size_t i = 0; st == DL_OK && i < count; i++)
        *errors += buf[i] != want[i];
    free(want);
    return st;
}

static dl_status check_size(dl_comm *c, const sweep_mem *m, size_t count, long *errors)
{
    if (m->comp)
        return check_compressed(c, m, count, errors);
    float *buf = m->host;
    for (size_t i = 0; i < count; i++)
        buf[i] = pattern(i, c->rank);
    if (m->dev)
        m->dev->upload(m->dev, m->reduced, buf, sizeof(float) * count);
    dl_status st = avg_once(c, m, count);
    if (st == DL_OK && m->dev)
        m->dev->download(m->dev, buf, m->reduced, sizeof(float) * count);
    *errors = 0;
    for (size_t i = 0; st == DL_OK && i < count; i++) {
        double want = expected(i, c->world);
        if (!(fabs((double)buf[i] - want) <= 4 * FLT_EPSILON * fmax(1.0, fabs(want))))
            (*errors)++;
    }
    return st;
}

/* One message size; shared[0, world] is scratch for the ranks' results. */
static dl_status run_size(dl_comm *c, const dl_sweep_opts *o, const sweep_mem *mem,
                          size_t count, double *times, double *shared, dl_sweep_point *p)
{
    double median = 0;
    long errors = 0;
    sweep_mem m1 = *mem, *m = &m1;
    dl_compressor comp;
    size_t lo = 0;
    dl_status st = DL_OK;
    if (o->compress.kind != DL_COMPRESS_NONE) {
        /* no layers here: PowerSGD folds the buffer (PyTorch's batched hook) */
        st = dl_compressor_init_on(&comp, o->compress, count, &lo, &count, 1, c->world, 1, o->dev,
                                   NULL, 0);
        m->comp = st == DL_OK ? &comp : NULL;
    }
    if (st == DL_OK)
        st = time_size(c, o, m, count, times, &median);
    if (st == DL_OK)
        st = check_size(c, m, count, &errors);
    if (m->comp)
        dl_compressor_free(&comp);
    if (st != DL_OK)
        return st;
    p->wire_bytes = dl_compress_wire_bytes(o->compress, c->world, &count, 1, NULL, 0);
    /* shared[0, world): every rank's median; shared[world]: errors summed */
    memset(shared, 0, sizeof(double) * (size_t)(c->world + 1));
    shared[c->rank] = median;
    shared[c->world] = (double)errors;
    if ((st = c->allreduce_sum_f64(c, shared, c->world + 1)) != DL_OK)
        return st;
    double worst = 0, sum = 0;
    for (int r = 0; r < c->world; r++)
        worst = fmax(worst, shared[r]), sum += shared[r];
    p->bytes = (double)count * sizeof(float);
    p->time_us = worst * 1e6;
    p->time_us_mean = sum / c->world * 1e6;
    p->algbw_gbs = worst > 0 ? p->bytes / worst / 1e9 : 0;
    p->busbw_gbs = p->algbw_gbs * dl_sweep_bus_factor(c->world);
    p->errors = (long)llround(shared[c->world]);
    return DL_OK;
}

dl_status dl_allreduce_sweep(dl_comm *c, const dl_sweep_opts *o, dl_sweep_point *points,
                             int max_points, int *n, dl_sweep_point_fn on_point, void *user)
{
    *n = 0;
    if (o->min_bytes < 4 || o->min_bytes % 4 || o->max_bytes % 4 || o->min_bytes > o->max_bytes ||
        !(o->factor > 1) || o->iters < 1 || o->warmup < 0)
        return dl_fail(DL_ERR_ARG, "all-reduce sweep: sizes must be multiples of 4 with "
                       "4 <= min <= max, factor > 1 and at least one timed iteration");
    size_t max_count = (size_t)(o->max_bytes / 4);
    sweep_mem m = {o->dev, dl_alloc(sizeof(float) * max_count, "all-reduce buffer (reduce "
                                    "--max-bytes)"), NULL, NULL};
    m.reduced = !o->dev ? m.host
                        : o->dev->alloc(o->dev, sizeof(float) * max_count,
                                        "all-reduce GPU buffer (reduce --max-bytes)");
    double *times = dl_alloc(sizeof(double) * (size_t)o->iters, "timings");
    double *shared = dl_alloc(sizeof(double) * (size_t)(c->world + 1), "rank timings");
    int failed = !m.host || !m.reduced || !times || !shared, n_failed = 0, first = -1;
    char why[256] = "";
    if (failed)
        snprintf(why, sizeof why, "%s", dl_error_message());
    dl_status st = dl_comm_agree(c, failed, &n_failed, &first);
    if (st == DL_OK && n_failed)
        st = dl_fail(DL_ERR_OOM, "all-reduce sweep: rank %d could not allocate its buffers%s%s",
                     first, failed ? ": " : "", why);
    for (size_t i = 0; st == DL_OK && i < max_count; i++)
        m.host[i] = pattern(i, c->rank);
    if (st == DL_OK && m.dev)
        m.dev->upload(m.dev, m.reduced, m.host, sizeof(float) * max_count);
    for (double b = (double)o->min_bytes; st == DL_OK && b <= (double)o->max_bytes &&
                                          *n < max_points;) {
        st = run_size(c, o, &m, (size_t)(b / 4), times, shared, &points[*n]);
        if (st != DL_OK)
            break;
        if (on_point)
            on_point(user, &points[*n]);
        (*n)++;
        double next = floor(b * o->factor / 4) * 4; /* whole floats, always growing */
        b = next > b ? next : b + 4;
    }
    if (m.dev && m.reduced)
        m.dev->free(m.dev, m.reduced);
    free(m.host), free(times), free(shared);
    return st;
}
