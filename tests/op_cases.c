/* op_cases.c: case tables, naive reference implementations and the drivers
 * that run one device's ops (and optionally a reference device's) on them.
 * See op_cases.h. */
#include "op_cases.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* ---- tolerances ------------------------------------------------------------
 * Relative per tensor (see op_rel_err).  The naive references sum in double,
 * so these bound the fp32 rounding of the op under test: GEMM-shaped sums of
 * up to a few thousand terms stay near 1e-6 with OpenBLAS; 1e-5 leaves room
 * for other summation orders without hiding a wrong index or a missed term,
 * which give errors of order 1e-2 .. 1. */
#define TOL_EXACT 0.0    /* fill, copy, relu, max pooling forward: no rounding */
#define TOL_ELEM 1e-6    /* one or two roundings per element */
#define TOL_SUM 1e-5     /* dot products, reductions, batch norm */

/* ---- case tables ---------------------------------------------------------- */

const op_gemm_case op_gemm_cases[] = {
    /* ta tb   m    n    k  pad  alpha  beta */
    {0, 0, 37, 29, 53, 0, 1.0f, 0.0f},
    {0, 1, 37, 29, 53, 0, 1.0f, 0.0f},
    {1, 0, 37, 29, 53, 0, 1.0f, 0.0f},
    {1, 1, 37, 29, 53, 0, 1.0f, 0.0f},
    {0, 0, 17, 33, 9, 5, 0.5f, 1.5f},
    {0, 1, 17, 33, 9, 5, -0.75f, 1.0f},
    {1, 0, 17, 33, 9, 3, 2.0f, -0.5f},
    {1, 1, 17, 33, 9, 7, 1.25f, 0.25f},
    {0, 0, 1, 64, 300, 0, 1.0f, 1.0f},  /* one row (fc with batch 1) */
    {1, 0, 64, 1, 300, 1, 1.0f, 0.0f},  /* one column */
    {0, 1, 13, 11, 1, 2, 1.0f, 1.0f},   /* rank one update */
    {0, 1, 128, 96, 600, 0, 1.0f, 1.0f}, /* conv-backward-like dW += dy x col^T */
    {1, 0, 150, 196, 64, 4, 1.0f, 0.0f}, /* conv-backward-like dcol = W^T dy */
};
const int op_n_gemm_cases = (int)DL_ARRAY_LEN(op_gemm_cases);

const op_conv_case op_conv_cases[] = {
    /* n cin  h   w cout k s p bias */
    {2, 3, 8, 8, 4, 3, 1, 1, 1, "3x3 pad 1"},
    {2, 3, 7, 9, 5, 3, 2, 1, 0, "3x3 stride 2 pad 1, odd non-square"},
    {3, 4, 9, 9, 6, 1, 2, 0, 0, "1x1 stride 2 (shortcut), odd size"},
    {2, 4, 8, 8, 6, 1, 1, 0, 1, "1x1"},
    /* 1x1 stride 1 unpadded: the CUDA GEMM path's direct batched GEMMs */
    {3, 32, 7, 7, 16, 1, 1, 0, 1, "1x1 on 7x7 planes, 32 -> 16 (resnet50 stage 4)"},
    {1, 5, 3, 5, 7, 1, 1, 0, 0, "1x1, one image, 15-pixel plane"},
    {4, 24, 14, 14, 40, 1, 1, 0, 0, "1x1 24 -> 40 on 14x14 (bottleneck)"},
    {2, 2, 11, 11, 3, 5, 1, 2, 1, "5x5 pad 2 (lenet)"},
    {2, 3, 13, 10, 4, 5, 2, 2, 0, "5x5 stride 2 pad 2, odd"},
    {1, 3, 15, 15, 8, 7, 2, 3, 0, "7x7 stride 2 pad 3 (resnet50 stem)"},
    {2, 2, 3, 3, 3, 5, 1, 2, 1, "kernel larger than the input"},
    {2, 3, 6, 7, 2, 4, 3, 2, 1, "even kernel, stride 3, pad 2"},
    {2, 1, 5, 5, 1, 3, 1, 0, 0, "one channel, no padding"},
    {3, 2, 9, 9, 3, 3, 2, 0, 1, "3x3 stride 2 unpadded, last column dropped"},
    {8, 16, 32, 32, 16, 3, 1, 1, 0, "several images per chunk, ragged last chunk"},
    {2, 64, 32, 32, 64, 3, 1, 1, 0, "one image per chunk"},
    {5, 32, 16, 16, 32, 3, 2, 1, 1, "3x3 stride 2, 5 images"},
    /* resnet20's 3x3 shapes at each stage, and odd ones around them */
    {3, 16, 7, 7, 32, 3, 1, 1, 1, "3x3 pad 1 on 7x7 planes, 16 -> 32"},
    {2, 1, 28, 28, 16, 3, 1, 1, 0, "3x3 pad 1, one input channel (the 28x28 stem)"},
    {2, 32, 14, 14, 16, 3, 1, 1, 1, "3x3 pad 1, 14x14, 32 -> 16"},
    {1, 16, 5, 3, 16, 3, 1, 1, 1, "3x3 pad 1, plane of 15 pixels"},
    {2, 16, 6, 11, 48, 3, 1, 1, 0, "3x3 pad 1, non-square, 16 -> 48"},
    {2, 24, 9, 9, 16, 3, 1, 1, 0, "3x3 pad 1, 24 -> 16"},
    /* the packed AVX-512 kernels' edges (cpu_conv_packed.c): weight-gradient
     * row tiles of 16/12/8/4 and plain rows, 1 to 3 channel vectors, output
     * rows not a multiple of 8, panels straddling images */
    {3, 3, 17, 17, 32, 3, 1, 1, 1, "3x3 pad 1, 3 -> 32, kdim 27"},
    {2, 16, 8, 8, 64, 3, 1, 1, 0, "3x3 pad 1, 16 -> 64 (3 + 1 channel vectors)"},
    {3, 12, 6, 6, 24, 3, 1, 1, 1, "3x3 pad 1, 12 -> 24 (BLAS weight gradient)"},
    {4, 20, 5, 4, 13, 3, 1, 1, 0, "3x3 pad 1, 20 -> 13, 20-pixel planes"},
};
const int op_n_conv_cases = (int)DL_ARRAY_LEN(op_conv_cases);

const op_pool_case op_pool_cases[] = {
    /* n c  h   w  k s p ties */
    {2, 3, 8, 8, 2, 2, 0, 0, "2x2 stride 2"},
    {2, 3, 7, 9, 2, 2, 0, 0, "2x2 stride 2, odd (last row/col dropped)"},
    {2, 3, 8, 8, 2, 2, 0, 1, "2x2 stride 2, ties"},
    {2, 3, 9, 9, 3, 2, 1, 0, "3x3 stride 2 pad 1 (resnet50)"},
    {2, 3, 9, 9, 3, 2, 1, 1, "3x3 stride 2 pad 1, ties"},
    {2, 2, 6, 5, 3, 1, 1, 0, "3x3 stride 1 pad 1 (overlapping)"},
    {3, 4, 7, 7, 7, 7, 0, 0, "global (7x7 window)"},
    {2, 2, 10, 10, 4, 3, 2, 0, "4x4 stride 3 pad 2"},
    {1, 1, 1, 1, 1, 1, 0, 0, "1x1 identity"},
    {16, 32, 16, 16, 2, 2, 0, 0, "large (multi-threaded)"},
};
const int op_n_pool_cases = (int)DL_ARRAY_LEN(op_pool_cases);

const op_bn_case op_bn_cases[] = {
    /*  n   c   hw  eps    mom  offset */
    {4, 3, 25, 1e-5f, 0.1f, 0.0f, 0},
    {5, 7, 1, 1e-5f, 0.1f, 0.0f, 0},    /* after a fully connected layer */
    {1, 2, 9, 1e-5f, 0.1f, 0.0f, 0},    /* one image */
    /* Two values per channel: xhat = +-1 up to eps, so the exact dx is
     * ~1e-2 while its terms are ~1: fp32 cancellation leaves ~1e-4 relative
     * error in any implementation (the CPU's measured 8e-5). */
    {2, 3, 1, 1e-5f, 0.1f, 0.0f, 5e-4},
    {3, 4, 49, 1e-3f, 0.3f, 0.5f, 0},
    {8, 16, 64, 1e-5f, 0.1f, 100.0f, 0}, /* mean 100 >> std 1 */
    {16, 32, 256, 1e-5f, 0.1f, 0.0f, 0}, /* multi-threaded */
    /* Shapes for the CUDA kernels' split reductions (cuda_norm.cu): few
     * channels with many values each (many blocks per channel, float4
     * planes), many channels (one block each, scalar and float4 planes,
     * more than one launch group of 4096 channels), odd plane lengths. */
    {24, 2, 3136, 1e-5f, 0.1f, 0.0f, 0},  /* 2 channels of 56x56 */
    {3, 1, 20000, 1e-5f, 0.1f, 2.0f, 0},  /* one channel, 60000 values */
    {4, 600, 49, 1e-5f, 0.1f, 0.0f, 0},   /* 7x7, many channels */
    /* More channels than one launch group.  family_bn's channel means grow
     * as 0.3 * channel, to ~1230 here, where the fp32 ulp of the saved mean
     * (1.2e-4) alone moves y and dx by ~5e-5 relative in any implementation
     * (the CPU's measured 4.7e-5): hence 2e-4. */
    {16, 4100, 1, 1e-5f, 0.1f, 0.0f, 2e-4},
    {4, 4099, 4, 1e-5f, 0.1f, 0.0f, 2e-4}, /* the same with float4 planes */
    {5, 9, 15, 1e-5f, 0.1f, 0.0f, 0},     /* odd plane: 3x5 */
    {7, 3, 1022, 1e-5f, 0.1f, 50.0f, 0},  /* even but not a multiple of 4; mean 50 */
};
const int op_n_bn_cases = (int)DL_ARRAY_LEN(op_bn_cases);

const op_xent_case op_xent_cases[] = {
    {4, 10, 1.0f},
    {1, 2, 3.0f},
    {7, 13, 0.01f},
    {5, 10, 60.0f},  /* exp overflows without max subtraction */
    {64, 1000, 4.0f},
    {300, 10, 2.0f}, /* more samples than the CUDA xent_stats block has threads */
};
const int op_n_xent_cases = (int)DL_ARRAY_LEN(op_xent_cases);

const op_sgd_case op_sgd_cases[] = {
    /*    n     lr    mom    wd   nest steps */
    {1000, 0.1f, 0.9f, 5e-4f, 1, 3},
    {1000, 0.1f, 0.9f, 5e-4f, 0, 3},
    {257, 0.05f, 0.0f, 1e-2f, 0, 2},  /* plain SGD with weight decay */
    {33, 0.2f, 0.5f, 0.0f, 1, 2},     /* no weight decay */
    {100003, 0.01f, 0.9f, 1e-4f, 1, 2}, /* multi-threaded */
    {64, 0.0f, 0.9f, 1e-4f, 1, 1},    /* lr 0: parameters unchanged */
};
const int op_n_sgd_cases = (int)DL_ARRAY_LEN(op_sgd_cases);

const op_elem_case op_elem_cases[] = {
    {1, 1, 1},
    {17, 17, 1},
    {1000, 10, 25},
    {40000, 8, 100},  /* above the CPU's parallel threshold */
    {65536, 64, 256},
};
const int op_n_elem_cases = (int)DL_ARRAY_LEN(op_elem_cases);

/* ---- comparison helpers --------------------------------------------------- */

double op_rel_err(const float *got, const float *want, size_t n, size_t *at)
{
    double maxref = 0.0, maxdiff = 0.0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double w = want[i], g = got[i];
        if (isfinite(w) && fabs(w) > maxref)
            maxref = fabs(w);
        double d;
        if (isnan(w) && isnan(g))
            d = 0.0;
        else if (!isfinite(g) || !isfinite(w))
            d = (g == w) ? 0.0 : INFINITY;
        else
            d = fabs(g - w);
        if (d > maxdiff || (i == 0 && d >= maxdiff)) {
            maxdiff = d;
            worst = i;
        }
    }
    if (at)
        *at = worst;
    if (maxdiff == 0.0)
        return 0.0;
    return maxdiff / (maxref > 1e-30 ? maxref : 1e-30);
}

static void record(op_ctx *c, const char *what, double err, double tol, int ok)
{
    double ratio = tol > 0 ? err / tol : (err > 0 ? INFINITY : 0.0);
    if (isnan(ratio))
        ratio = INFINITY;
    c->checks++;
    if (!ok)
        c->failures++;
    if (ratio > c->worst || c->checks == 1) {
        c->worst = ratio;
        snprintf(c->worst_what, sizeof c->worst_what, "%s (err %.3g, tol %.3g)", what, err, tol);
    }
}

int op_check(op_ctx *c, const char *what, const float *got, const float *want, size_t n,
             double tol)
{
    size_t at = 0;
    double err = op_rel_err(got, want, n, &at);
    double t = tol * (c->tol_scale > 0 ? c->tol_scale : 1.0);
    int ok = err <= t; /* NaN fails */
    record(c, what, err, t, ok);
    if (c->quiet)
        return ok;
    if (!ok)
        printf("FAIL %-58s rel err %.3g > tol %.3g  (at %zu: got %.9g want %.9g)\n", what, err, t,
               at, n ? (double)got[at] : 0.0, n ? (double)want[at] : 0.0);
    else if (c->verbose)
        printf("ok   %-58s rel err %.3g (tol %.3g)\n", what, err, t);
    return ok;
}

int op_check_int(op_ctx *c, const char *what, const int32_t *got, const int32_t *want, size_t n)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i] && bad++ == 0)
            first = i;
    record(c, what, bad ? 1.0 : 0.0, 0.0, bad == 0);
    if (c->quiet)
        return bad == 0;
    if (bad)
        printf("FAIL %-58s %zu of %zu differ (at %zu: got %d want %d)\n", what, bad, n, first,
               got[first], want[first]);
    else if (c->verbose)
        printf("ok   %-58s exact\n", what);
    return bad == 0;
}

/* ---- host and device buffers ---------------------------------------------- */

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "op_cases: out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static float *hnormal(dl_rng *r, size_t n, double scale, double offset)
{
    float *h = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        h[i] = (float)(offset + scale * dl_rng_normal(r));
    return h;
}

static float *huniform(dl_rng *r, size_t n, double lo, double hi)
{
    float *h = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        h[i] = (float)(lo + (hi - lo) * dl_rng_uniform(r));
    return h;
}

static float *hconst(size_t n, float v)
{
    float *h = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++)
        h[i] = v;
    return h;
}

static float *hdup(const float *src, size_t n)
{
    float *h = xmalloc(sizeof(float) * n);
    memcpy(h, src, sizeof(float) * n);
    return h;
}

/* Device copy of a host array (one spare element: no zero-size allocations). */
static void *dput(dl_device *d, const void *host, size_t bytes)
{
    void *p = d->alloc(d, bytes + 16, "op test buffer");
    if (!p) {
        fprintf(stderr, "op_cases: device %s cannot allocate %zu bytes\n", d->name, bytes);
        exit(2);
    }
    if (host && bytes)
        d->upload(d, p, host, bytes);
    return p;
}

static float *dputf(dl_device *d, const float *host, size_t n)
{
    return dput(d, host, sizeof(float) * n);
}

/* Host copy of a device array (after the device has finished). */
static float *dgetf(dl_device *d, const float *dev, size_t n)
{
    float *h = xmalloc(sizeof(float) * n);
    d->sync(d);
    if (n)
        d->download(d, h, dev, sizeof(float) * n);
    return h;
}

static int32_t *dgeti(dl_device *d, const int32_t *dev, size_t n)
{
    int32_t *h = xmalloc(sizeof(int32_t) * (n ? n : 1));
    d->sync(d);
    if (n)
        d->download(d, h, dev, sizeof(int32_t) * n);
    return h;
}

static void dfree(dl_device *d, void *p) { d->free(d, p); }

/* Compare the device under test with the naive result and, when the context
 * has a reference device, with that device's result too. */
static void check2(op_ctx *c, const char *what, const float *got, const float *refdev,
                   const float *naive, size_t n, double tol)
{
    op_check(c, what, got, naive, n, tol);
    if (refdev) {
        char w[256];
        snprintf(w, sizeof w, "%.190s [vs %.40s]", what, c->ref->name);
        op_check(c, w, got, refdev, n, tol);
    }
}

static int family_seed_rng(op_ctx *c, dl_rng *r, uint64_t family, uint64_t idx)
{
    dl_rng_seed(r, c->seed ? c->seed : 12345, family, idx);
    return 0;
}

/* ---- elementwise ops: fill, copy, scale, relu, add ------------------------- */

typedef struct elem_out {
    float *fill, *copy0, *copy1, *scale, *relu_y, *relu_dx0, *relu_dx1, *add;
} elem_out;

static elem_out elem_run(dl_device *d, size_t n, const float *x, const float *b, const float *dy,
                         const float *prefill)
{
    elem_out o;
    float *dx = dputf(d, x, n), *db = dputf(d, b, n), *ddy = dputf(d, dy, n);
    float *t = dputf(d, prefill, n);
    d->fill(d, t, n, 0.375f);
    o.fill = dgetf(d, t, n);
    d->upload(d, t, prefill, sizeof(float) * n);
    d->copy(d, t, dx, n, 0); /* dx: the device copy of x */
    o.copy0 = dgetf(d, t, n);
    d->upload(d, t, prefill, sizeof(float) * n);
    d->copy(d, t, dx, n, 1);
    o.copy1 = dgetf(d, t, n);
    d->upload(d, t, x, sizeof(float) * n);
    d->scale(d, t, n, -1.75f);
    o.scale = dgetf(d, t, n);
    float *y = dputf(d, prefill, n);
    d->relu_forward(d, dx, y, n);
    o.relu_y = dgetf(d, y, n);
    d->upload(d, t, prefill, sizeof(float) * n);
    float *nanbuf = hconst(n, NAN);
    d->upload(d, t, nanbuf, sizeof(float) * n); /* acc 0 must not read dx */
    d->relu_backward(d, y, ddy, t, n, 0);
    o.relu_dx0 = dgetf(d, t, n);
    d->upload(d, t, prefill, sizeof(float) * n);
    d->relu_backward(d, y, ddy, t, n, 1);
    o.relu_dx1 = dgetf(d, t, n);
    d->upload(d, t, nanbuf, sizeof(float) * n);
    d->add_forward(d, dx, db, t, n);
    o.add = dgetf(d, t, n);
    free(nanbuf);
    dfree(d, dx), dfree(d, db), dfree(d, ddy), dfree(d, t), dfree(d, y);
    return o;
}

static void elem_free(elem_out *o)
{
    free(o->fill), free(o->copy0), free(o->copy1), free(o->scale), free(o->relu_y);
    free(o->relu_dx0), free(o->relu_dx1), free(o->add);
}

static void family_elementwise(op_ctx *c)
{
    for (int ci = 0; ci < op_n_elem_cases; ci++) {
        size_t n = op_elem_cases[ci].n;
        dl_rng r;
        family_seed_rng(c, &r, 1, (uint64_t)ci);
        float *x = hnormal(&r, n, 1.0, 0.0), *b = hnormal(&r, n, 1.0, 0.0);
        float *dy = hnormal(&r, n, 1.0, 0.0), *pre = hnormal(&r, n, 1.0, 0.0);
        if (n > 4)
            x[1] = 0.0f, x[2] = -0.0f; /* relu at exactly zero: gradient 0 (y > 0 test) */
        float *w_fill = hconst(n, 0.375f), *w_copy1 = xmalloc(sizeof(float) * n);
        float *w_scale = xmalloc(sizeof(float) * n), *w_relu = xmalloc(sizeof(float) * n);
        float *w_dx0 = xmalloc(sizeof(float) * n), *w_dx1 = xmalloc(sizeof(float) * n);
        float *w_add = xmalloc(sizeof(float) * n);
        for (size_t i = 0; i < n; i++) {
            w_copy1[i] = pre[i] + x[i];
            w_scale[i] = x[i] * -1.75f;
            w_relu[i] = x[i] > 0 ? x[i] : 0.0f;
            w_dx0[i] = x[i] > 0 ? dy[i] : 0.0f;
            w_dx1[i] = pre[i] + w_dx0[i];
            w_add[i] = x[i] + b[i];
        }
        elem_out g = elem_run(c->dev, n, x, b, dy, pre), rr = {0};
        if (c->ref)
            rr = elem_run(c->ref, n, x, b, dy, pre);
        char w[160];
#define EL(field, want, tol, label)                                                              \
    snprintf(w, sizeof w, "elementwise[%d] n=%zu %s", ci, n, label);                            \
    check2(c, w, g.field, c->ref ? rr.field : NULL, want, n, tol)
        EL(fill, w_fill, TOL_EXACT, "fill");
        EL(copy0, x, TOL_EXACT, "copy acc=0");
        EL(copy1, w_copy1, TOL_EXACT, "copy acc=1");
        EL(scale, w_scale, TOL_EXACT, "scale");
        EL(relu_y, w_relu, TOL_EXACT, "relu forward");
        EL(relu_dx0, w_dx0, TOL_EXACT, "relu backward acc=0 (dx pre-filled NaN)");
        EL(relu_dx1, w_dx1, TOL_EXACT, "relu backward acc=1");
        EL(add, w_add, TOL_EXACT, "add forward");
#undef EL
        elem_free(&g);
        if (c->ref)
            elem_free(&rr);
        free(x), free(b), free(dy), free(pre), free(w_fill), free(w_copy1), free(w_scale);
        free(w_relu), free(w_dx0), free(w_dx1), free(w_add);
    }
}

/* ---- bias_add, bias_grad --------------------------------------------------- */

static void bias_run(dl_device *d, const float *y0, const float *b, const float *db0, int n,
                     int ch, int hw, float **y_out, float **db_out)
{
    size_t total = (size_t)n * ch * hw;
    float *y = dputf(d, y0, total), *bb = dputf(d, b, (size_t)ch), *db = dputf(d, db0, (size_t)ch);
    d->bias_add(d, y, bb, n, ch, hw);
    *y_out = dgetf(d, y, total);
    d->upload(d, y, y0, sizeof(float) * total);
    d->bias_grad(d, y, db, n, ch, hw);
    *db_out = dgetf(d, db, (size_t)ch);
    dfree(d, y), dfree(d, bb), dfree(d, db);
}

static void family_bias(op_ctx *c)
{
    for (int ci = 0; ci < op_n_elem_cases; ci++) {
        int ch = op_elem_cases[ci].c, hw = op_elem_cases[ci].hw;
        int n = (int)DL_MAX((size_t)1, op_elem_cases[ci].n / ((size_t)ch * hw));
        size_t total = (size_t)n * ch * hw;
        dl_rng r;
        family_seed_rng(c, &r, 2, (uint64_t)ci);
        float *y0 = hnormal(&r, total, 1.0, 0.0), *b = hnormal(&r, (size_t)ch, 1.0, 0.0);
        float *db0 = hnormal(&r, (size_t)ch, 1.0, 0.0);
        float *wy = xmalloc(sizeof(float) * total), *wdb = xmalloc(sizeof(float) * ch);
        for (int co = 0; co < ch; co++) {
            double s = db0[co];
            for (int i = 0; i < n; i++)
                for (int j = 0; j < hw; j++) {
                    size_t at = ((size_t)i * ch + co) * hw + j;
                    wy[at] = y0[at] + b[co];
                    s += y0[at];
                }
            wdb[co] = (float)s;
        }
        float *gy, *gdb, *ry = NULL, *rdb = NULL;
        bias_run(c->dev, y0, b, db0, n, ch, hw, &gy, &gdb);
        if (c->ref)
            bias_run(c->ref, y0, b, db0, n, ch, hw, &ry, &rdb);
        char w[160];
        snprintf(w, sizeof w, "bias[%d] %dx%dx%d bias_add", ci, n, ch, hw);
        check2(c, w, gy, ry, wy, total, TOL_ELEM);
        snprintf(w, sizeof w, "bias[%d] %dx%dx%d bias_grad (+=)", ci, n, ch, hw);
        check2(c, w, gdb, rdb, wdb, (size_t)ch, TOL_SUM);
        free(y0), free(b), free(db0), free(wy), free(wdb), free(gy), free(gdb), free(ry), free(rdb);
    }
}

/* ---- gemm ------------------------------------------------------------------ */

static float *gemm_run(dl_device *d, const op_gemm_case *g, int lda, int ldb, int ldc,
                       const float *a, size_t na, const float *b, size_t nb, const float *c0,
                       size_t nc)
{
    float *da = dputf(d, a, na), *db = dputf(d, b, nb), *dc = dputf(d, c0, nc);
    d->gemm(d, g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, da, lda, db, ldb, g->beta, dc,
            ldc);
    float *out = dgetf(d, dc, nc);
    dfree(d, da), dfree(d, db), dfree(d, dc);
    return out;
}

static void family_gemm(op_ctx *c)
{
    for (int ci = 0; ci < op_n_gemm_cases; ci++) {
        const op_gemm_case *g = &op_gemm_cases[ci];
        int m = g->m, n = g->n, k = g->k;
        /* row-major storage: op(A) = A [m,k] or A^T with A [k,m] */
        int arows = g->trans_a ? k : m, acols = g->trans_a ? m : k;
        int brows = g->trans_b ? n : k, bcols = g->trans_b ? k : n;
        int lda = acols + g->pad_ld, ldb = bcols + g->pad_ld, ldc = n + g->pad_ld;
        size_t na = (size_t)arows * lda, nb = (size_t)brows * ldb, nc = (size_t)m * ldc;
        dl_rng r;
        family_seed_rng(c, &r, 3, (uint64_t)ci);
        float *a = hnormal(&r, na, 1.0, 0.0), *b = hnormal(&r, nb, 1.0, 0.0);
        float *c0 = hnormal(&r, nc, 1.0, 0.0);
        if (g->beta == 0.0f) /* beta 0: C is write-only (BLAS semantics) */
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                    c0[(size_t)i * ldc + j] = NAN;
        float *want = hdup(c0, nc); /* padding columns must stay untouched */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0.0;
                for (int p = 0; p < k; p++) {
                    double av = g->trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                    double bv = g->trans_b ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                    s += av * bv;
                }
                double cv = g->beta == 0.0f ? 0.0 : (double)g->beta * c0[(size_t)i * ldc + j];
                want[(size_t)i * ldc + j] = (float)(g->alpha * s + cv);
            }
        float *got = gemm_run(c->dev, g, lda, ldb, ldc, a, na, b, nb, c0, nc);
        float *rg = c->ref ? gemm_run(c->ref, g, lda, ldb, ldc, a, na, b, nb, c0, nc) : NULL;
        char w[160];
        snprintf(w, sizeof w, "gemm[%d] %c%c m=%d n=%d k=%d ld+%d alpha=%g beta=%g", ci,
                 g->trans_a ? 'T' : 'N', g->trans_b ? 'T' : 'N', m, n, k, g->pad_ld,
                 (double)g->alpha, (double)g->beta);
        check2(c, w, got, rg, want, nc, TOL_SUM);
        free(a), free(b), free(c0), free(want), free(got), free(rg);
    }
}

/* ---- convolution ----------------------------------------------------------- */

static void conv_naive_forward(const dl_conv_desc *c, const float *x, const float *w,
                               const float *bias, float *y)
{
    for (int i = 0; i < c->n; i++)
        for (int co = 0; co < c->cout; co++)
            for (int oy = 0; oy < c->oh; oy++)
                for (int ox = 0; ox < c->ow; ox++) {
                    double s = bias ? bias[co] : 0.0;
                    for (int ci = 0; ci < c->cin; ci++)
                        for (int ki = 0; ki < c->k; ki++) {
                            int iy = oy * c->stride - c->pad + ki;
                            if (iy < 0 || iy >= c->h)
                                continue;
                            for (int kj = 0; kj < c->k; kj++) {
                                int ix = ox * c->stride - c->pad + kj;
                                if (ix < 0 || ix >= c->w)
                                    continue;
                                s += (double)w[((co * c->cin + ci) * c->k + ki) * c->k + kj] *
                                     x[(((size_t)i * c->cin + ci) * c->h + iy) * c->w + ix];
                            }
                        }
                    y[(((size_t)i * c->cout + co) * c->oh + oy) * c->ow + ox] = (float)s;
                }
}

/* dx = sum over outputs (scatter), dw = sum_n,o dy * x, db = sum dy; in double,
 * added to the given initial values. */
static void conv_naive_backward(const dl_conv_desc *c, const float *x, const float *w,
                                const float *dy, const float *dx0, float *dx, const float *dw0,
                                float *dw, const float *db0, float *db)
{
    size_t nx = (size_t)c->n * c->cin * c->h * c->w, nw = (size_t)c->cout * c->cin * c->k * c->k;
    double *ax = calloc(nx, sizeof(double)), *aw = calloc(nw, sizeof(double));
    double *ab = calloc((size_t)c->cout, sizeof(double));
    if (!ax || !aw || !ab) {
        fprintf(stderr, "op_cases: out of memory\n");
        exit(2);
    }
    for (int i = 0; i < c->n; i++)
        for (int co = 0; co < c->cout; co++)
            for (int oy = 0; oy < c->oh; oy++)
                for (int ox = 0; ox < c->ow; ox++) {
                    double g = dy[(((size_t)i * c->cout + co) * c->oh + oy) * c->ow + ox];
                    ab[co] += g;
                    for (int ci = 0; ci < c->cin; ci++)
                        for (int ki = 0; ki < c->k; ki++) {
                            int iy = oy * c->stride - c->pad + ki;
                            if (iy < 0 || iy >= c->h)
                                continue;
                            for (int kj = 0; kj < c->k; kj++) {
                                int ix = ox * c->stride - c->pad + kj;
                                if (ix < 0 || ix >= c->w)
                                    continue;
                                size_t xi = (((size_t)i * c->cin + ci) * c->h + iy) * c->w + ix;
                                size_t wi = (((size_t)co * c->cin + ci) * c->k + ki) * c->k + kj;
                                ax[xi] += g * w[wi];
                                aw[wi] += g * x[xi];
                            }
                        }
                }
    for (size_t i = 0; i < nx; i++)
        dx[i] = (float)((dx0 ? dx0[i] : 0.0) + ax[i]);
    for (size_t i = 0; i < nw; i++)
        dw[i] = (float)(dw0[i] + aw[i]);
    for (int i = 0; i < c->cout; i++)
        db[i] = (float)(db0[i] + ab[i]);
    free(ax), free(aw), free(ab);
}

typedef struct conv_out {
    float *y;           /* forward */
    float *dx0, *dw0, *db0; /* backward acc=0, dx pre-filled NaN, dw/db pre-filled */
    float *dx1, *dw1;   /* backward acc=1, dx pre-filled */
    float *dwn, *dbn;   /* backward with dx = NULL */
} conv_out;

static conv_out conv_run(dl_device *d, const dl_conv_desc *cd, int bias, const float *x,
                         const float *w, const float *b, const float *dy, const float *dxpre,
                         const float *dwpre, const float *dbpre)
{
    size_t nx = (size_t)cd->n * cd->cin * cd->h * cd->w;
    size_t ny = (size_t)cd->n * cd->cout * cd->oh * cd->ow;
    size_t nw = (size_t)cd->cout * cd->cin * cd->k * cd->k, nb = (size_t)cd->cout;
    size_t nws = d->conv_workspace(d, cd);
    conv_out o;
    float *nanx = hconst(DL_MAX(nx, DL_MAX(ny, nws)), NAN);
    float *gx = dputf(d, x, nx), *gw = dputf(d, w, nw), *gb = dputf(d, b, nb);
    float *gy = dputf(d, nanx, ny), *gdy = dputf(d, dy, ny);
    float *ws = dputf(d, nanx, nws); /* the workspace's contents must not matter */
    float *gdx = dputf(d, nanx, nx), *gdw = dputf(d, dwpre, nw), *gdb = dputf(d, dbpre, nb);

    d->conv_forward(d, cd, gx, gw, bias ? gb : NULL, gy, ws);
    o.y = dgetf(d, gy, ny);

    d->upload(d, ws, nanx, sizeof(float) * nws);
    d->conv_backward(d, cd, gx, gw, gdy, gdx, 0, gdw, bias ? gdb : NULL, ws);
    o.dx0 = dgetf(d, gdx, nx);
    o.dw0 = dgetf(d, gdw, nw);
    o.db0 = dgetf(d, gdb, nb);

    d->upload(d, gdx, dxpre, sizeof(float) * nx);
    d->upload(d, gdw, dwpre, sizeof(float) * nw);
    d->upload(d, gdb, dbpre, sizeof(float) * nb);
    d->conv_backward(d, cd, gx, gw, gdy, gdx, 1, gdw, bias ? gdb : NULL, ws);
    o.dx1 = dgetf(d, gdx, nx);
    o.dw1 = dgetf(d, gdw, nw);

    d->upload(d, gdw, dwpre, sizeof(float) * nw);
    d->upload(d, gdb, dbpre, sizeof(float) * nb);
    d->conv_backward(d, cd, gx, gw, gdy, NULL, 0, gdw, bias ? gdb : NULL, ws);
    o.dwn = dgetf(d, gdw, nw);
    o.dbn = dgetf(d, gdb, nb);

    free(nanx);
    dfree(d, gx), dfree(d, gw), dfree(d, gb), dfree(d, gy), dfree(d, gdy), dfree(d, ws);
    dfree(d, gdx), dfree(d, gdw), dfree(d, gdb);
    return o;
}

static void conv_out_free(conv_out *o)
{
    free(o->y), free(o->dx0), free(o->dw0), free(o->db0), free(o->dx1), free(o->dw1);
    free(o->dwn), free(o->dbn);
}

static void family_conv(op_ctx *c)
{
    for (int ci = 0; ci < op_n_conv_cases; ci++) {
        const op_conv_case *cc = &op_conv_cases[ci];
        dl_conv_desc cd = {.n = cc->n, .cin = cc->cin, .h = cc->h, .w = cc->w, .cout = cc->cout,
                           .k = cc->k, .stride = cc->stride, .pad = cc->pad};
        cd.oh = (cc->h + 2 * cc->pad - cc->k) / cc->stride + 1;
        cd.ow = (cc->w + 2 * cc->pad - cc->k) / cc->stride + 1;
        size_t nx = (size_t)cd.n * cd.cin * cd.h * cd.w, ny = (size_t)cd.n * cd.cout * cd.oh * cd.ow;
        size_t nw = (size_t)cd.cout * cd.cin * cd.k * cd.k, nb = (size_t)cd.cout;
        dl_rng r;
        family_seed_rng(c, &r, 4, (uint64_t)ci);
        float *x = hnormal(&r, nx, 1.0, 0.0), *w = hnormal(&r, nw, 1.0, 0.0);
        float *b = hnormal(&r, nb, 1.0, 0.0), *dy = hnormal(&r, ny, 1.0, 0.0);
        float *dxpre = hnormal(&r, nx, 1.0, 0.0), *dwpre = hnormal(&r, nw, 1.0, 0.0);
        float *dbpre = hnormal(&r, nb, 1.0, 0.0);

        float *wy = xmalloc(sizeof(float) * ny);
        float *wdx0 = xmalloc(sizeof(float) * nx), *wdx1 = xmalloc(sizeof(float) * nx);
        float *wdw = xmalloc(sizeof(float) * nw), *wdb = xmalloc(sizeof(float) * nb);
        conv_naive_forward(&cd, x, w, cc->bias ? b : NULL, wy);
        conv_naive_backward(&cd, x, w, dy, NULL, wdx0, dwpre, wdw, dbpre, wdb);
        conv_naive_backward(&cd, x, w, dy, dxpre, wdx1, dwpre, wdw, dbpre, wdb);
        if (!cc->bias)
            memcpy(wdb, dbpre, sizeof(float) * nb); /* db NULL: untouched */

        conv_out g = conv_run(c->dev, &cd, cc->bias, x, w, b, dy, dxpre, dwpre, dbpre), rr = {0};
        if (c->ref)
            rr = conv_run(c->ref, &cd, cc->bias, x, w, b, dy, dxpre, dwpre, dbpre);
        char what[192];
        const char *note = cc->note ? cc->note : "";
#define CV(field, want, count, label)                                                            \
    snprintf(what, sizeof what, "conv[%d] %s: %s", ci, note, label);                            \
    check2(c, what, g.field, c->ref ? rr.field : NULL, want, count, TOL_SUM)
        CV(y, wy, ny, cc->bias ? "forward (bias)" : "forward");
        CV(dx0, wdx0, nx, "backward dx acc=0");
        CV(dw0, wdw, nw, "backward dw (+=)");
        CV(db0, wdb, nb, cc->bias ? "backward db (+=)" : "backward db NULL untouched");
        CV(dx1, wdx1, nx, "backward dx acc=1");
        CV(dw1, wdw, nw, "backward dw (+=), acc=1 call");
        CV(dwn, wdw, nw, "backward dw with dx=NULL");
        CV(dbn, wdb, nb, "backward db with dx=NULL");
#undef CV
        conv_out_free(&g);
        if (c->ref)
            conv_out_free(&rr);
        free(x), free(w), free(b), free(dy), free(dxpre), free(dwpre), free(dbpre);
        free(wy), free(wdx0), free(wdx1), free(wdw), free(wdb);
    }
}

/* ---- pooling --------------------------------------------------------------- */

static dl_pool_desc pool_desc_of(const op_pool_case *pc)
{
    dl_pool_desc p = {.n = pc->n, .c = pc->c, .h = pc->h, .w = pc->w, .k = pc->k,
                      .stride = pc->stride, .pad = pc->pad};
    p.oh = (pc->h + 2 * pc->pad - pc->k) / pc->stride + 1;
    p.ow = (pc->w + 2 * pc->pad - pc->k) / pc->stride + 1;
    return p;
}

/* Max pooling: the first maximum in row-major window order wins (PyTorch). */
static void maxpool_naive(const dl_pool_desc *p, const float *x, float *y, int32_t *am)
{
    for (int nc = 0; nc < p->n * p->c; nc++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++) {
                float best = 0.0f;
                int32_t where = -1;
                for (int ky = 0; ky < p->k; ky++)
                    for (int kx = 0; kx < p->k; kx++) {
                        int iy = oy * p->stride - p->pad + ky, ix = ox * p->stride - p->pad + kx;
                        if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)
                            continue;
                        float v = x[((size_t)nc * p->h + iy) * p->w + ix];
                        if (where < 0 || v > best) {
                            best = v;
                            where = iy * p->w + ix;
                        }
                    }
                size_t o = ((size_t)nc * p->oh + oy) * p->ow + ox;
                y[o] = best;
                am[o] = where;
            }
}

/* Average pooling counts the zero padding (PyTorch's count_include_pad). */
static void avgpool_naive(const dl_pool_desc *p, const float *x, float *y, const float *dy,
                          const float *dx0, float *dx)
{
    size_t nx = (size_t)p->n * p->c * p->h * p->w;
    double *ax = calloc(nx ? nx : 1, sizeof(double));
    if (!ax)
        exit(2);
    for (int nc = 0; nc < p->n * p->c; nc++)
        for (int oy = 0; oy < p->oh; oy++)
            for (int ox = 0; ox < p->ow; ox++) {
                size_t o = ((size_t)nc * p->oh + oy) * p->ow + ox;
                double s = 0.0;
                for (int ky = 0; ky < p->k; ky++)
                    for (int kx = 0; kx < p->k; kx++) {
                        int iy = oy * p->stride - p->pad + ky, ix = ox * p->stride - p->pad + kx;
                        if (iy < 0 || iy >= p->h || ix < 0 || ix >= p->w)
                            continue;
                        size_t xi = ((size_t)nc * p->h + iy) * p->w + ix;
                        s += x[xi];
                        ax[xi] += (double)dy[o] / (p->k * p->k);
                    }
                y[o] = (float)(s / (p->k * p->k));
            }
    for (size_t i = 0; i < nx; i++)
        dx[i] = (float)((dx0 ? dx0[i] : 0.0) + ax[i]);
    free(ax);
}

typedef struct pool_out {
    float *y, *dx0, *dx1;
    int32_t *am;
} pool_out;

static pool_out pool_run(dl_device *d, const dl_pool_desc *p, int max, const float *x,
                         const float *dy, const float *dxpre)
{
    size_t nx = (size_t)p->n * p->c * p->h * p->w, ny = (size_t)p->n * p->c * p->oh * p->ow;
    pool_out o = {0};
    float *nanbuf = hconst(DL_MAX(nx, ny), NAN);
    float *gx = dputf(d, x, nx), *gy = dputf(d, nanbuf, ny), *gdy = dputf(d, dy, ny);
    float *gdx = dputf(d, nanbuf, nx);
    int32_t *gam = dput(d, NULL, sizeof(int32_t) * ny);
    if (max) {
        d->maxpool_forward(d, p, gx, gy, gam);
        o.y = dgetf(d, gy, ny);
        o.am = dgeti(d, gam, ny);
        d->maxpool_backward(d, p, gdy, gam, gdx, 0);
        o.dx0 = dgetf(d, gdx, nx);
        d->upload(d, gdx, dxpre, sizeof(float) * nx);
        d->maxpool_backward(d, p, gdy, gam, gdx, 1);
        o.dx1 = dgetf(d, gdx, nx);
    } else {
        d->avgpool_forward(d, p, gx, gy);
        o.y = dgetf(d, gy, ny);
        d->avgpool_backward(d, p, gdy, gdx, 0);
        o.dx0 = dgetf(d, gdx, nx);
        d->upload(d, gdx, dxpre, sizeof(float) * nx);
        d->avgpool_backward(d, p, gdy, gdx, 1);
        o.dx1 = dgetf(d, gdx, nx);
    }
    free(nanbuf);
    dfree(d, gx), dfree(d, gy), dfree(d, gdy), dfree(d, gdx), dfree(d, gam);
    return o;
}

static void pool_out_free(pool_out *o) { free(o->y), free(o->dx0), free(o->dx1), free(o->am); }

static void family_pool(op_ctx *c, int max)
{
    for (int ci = 0; ci < op_n_pool_cases; ci++) {
        const op_pool_case *pc = &op_pool_cases[ci];
        if (!max && pc->ties)
            continue;
        dl_pool_desc p = pool_desc_of(pc);
        size_t nx = (size_t)p.n * p.c * p.h * p.w, ny = (size_t)p.n * p.c * p.oh * p.ow;
        dl_rng r;
        family_seed_rng(c, &r, max ? 5 : 6, (uint64_t)ci);
        float *x = hnormal(&r, nx, 1.0, 0.0);
        if (pc->ties)
            for (size_t i = 0; i < nx; i++)
                x[i] = (float)dl_rng_below(&r, 3); /* 0, 1, 2: most windows tie */
        float *dy = hnormal(&r, ny, 1.0, 0.0), *dxpre = hnormal(&r, nx, 1.0, 0.0);
        float *wy = xmalloc(sizeof(float) * ny), *wdx0 = xmalloc(sizeof(float) * nx);
        float *wdx1 = xmalloc(sizeof(float) * nx);
        int32_t *wam = xmalloc(sizeof(int32_t) * (ny ? ny : 1));
        if (max) {
            maxpool_naive(&p, x, wy, wam);
            double *a0 = calloc(nx, sizeof(double));
            if (!a0)
                exit(2);
            for (size_t o = 0; o < ny; o++) {
                size_t plane = o / ((size_t)p.oh * p.ow);
                a0[plane * p.h * p.w + (size_t)wam[o]] += dy[o];
            }
            for (size_t i = 0; i < nx; i++) {
                wdx0[i] = (float)a0[i];
                wdx1[i] = (float)(a0[i] + dxpre[i]);
            }
            free(a0);
        } else {
            avgpool_naive(&p, x, wy, dy, NULL, wdx0);
            avgpool_naive(&p, x, wy, dy, dxpre, wdx1);
        }
        pool_out g = pool_run(c->dev, &p, max, x, dy, dxpre), rr = {0};
        if (c->ref)
            rr = pool_run(c->ref, &p, max, x, dy, dxpre);
        char what[192];
        const char *kind = max ? "maxpool" : "avgpool";
        snprintf(what, sizeof what, "%s[%d] %s: forward", kind, ci, pc->note);
        check2(c, what, g.y, c->ref ? rr.y : NULL, wy, ny, max ? TOL_EXACT : TOL_ELEM);
        if (max) {
            snprintf(what, sizeof what, "%s[%d] %s: argmax", kind, ci, pc->note);
            op_check_int(c, what, g.am, wam, ny);
        }
        snprintf(what, sizeof what, "%s[%d] %s: backward acc=0 (dx pre-filled NaN)", kind, ci,
                 pc->note);
        check2(c, what, g.dx0, c->ref ? rr.dx0 : NULL, wdx0, nx, TOL_ELEM);
        snprintf(what, sizeof what, "%s[%d] %s: backward acc=1", kind, ci, pc->note);
        check2(c, what, g.dx1, c->ref ? rr.dx1 : NULL, wdx1, nx, TOL_ELEM);
        pool_out_free(&g);
        if (c->ref)
            pool_out_free(&rr);
        free(x), free(dy), free(dxpre), free(wy), free(wdx0), free(wdx1), free(wam);
    }
}

static void family_maxpool(op_ctx *c) { family_pool(c, 1); }
static void family_avgpool(op_ctx *c) { family_pool(c, 0); }

/* ---- batch normalisation --------------------------------------------------- */

typedef struct bn_out {
    float *y, *mean, *invstd, *rmean, *rvar; /* training forward */
    float *ye;                               /* evaluation forward */
    float *dx0, *dx1, *dg, *db;              /* backward acc=0 / acc=1; dgamma, dbeta (+=) */
} bn_out;

static bn_out bn_run(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                     const float *beta, const float *rm0, const float *rv0, const float *dy,
                     const float *dxpre, const float *dgpre, const float *dbpre)
{
    size_t nx = (size_t)b->n * b->c * b->hw, nc = (size_t)b->c;
    bn_out o;
    float *nanbuf = hconst(nx, NAN);
    float *gx = dputf(d, x, nx), *gg = dputf(d, gamma, nc), *gb = dputf(d, beta, nc);
    float *gy = dputf(d, nanbuf, nx), *gm = dputf(d, nanbuf, nc), *gi = dputf(d, nanbuf, nc);
    float *grm = dputf(d, rm0, nc), *grv = dputf(d, rv0, nc), *gdy = dputf(d, dy, nx);
    float *gdx = dputf(d, nanbuf, nx), *gdg = dputf(d, dgpre, nc), *gdb = dputf(d, dbpre, nc);
    d->bn_forward_train(d, b, gx, gg, gb, gy, gm, gi, grm, grv);
    o.y = dgetf(d, gy, nx);
    o.mean = dgetf(d, gm, nc);
    o.invstd = dgetf(d, gi, nc);
    o.rmean = dgetf(d, grm, nc);
    o.rvar = dgetf(d, grv, nc);
    d->upload(d, gy, nanbuf, sizeof(float) * nx);
    d->bn_forward_eval(d, b, gx, gg, gb, gy, grm, grv); /* the updated running statistics */
    o.ye = dgetf(d, gy, nx);
    d->bn_backward(d, b, gx, gg, gb, gm, gi, gdy, gdx, 0, gdg, gdb);
    o.dx0 = dgetf(d, gdx, nx);
    o.dg = dgetf(d, gdg, nc);
    o.db = dgetf(d, gdb, nc);
    d->upload(d, gdx, dxpre, sizeof(float) * nx);
    d->upload(d, gdg, dgpre, sizeof(float) * nc);
    d->upload(d, gdb, dbpre, sizeof(float) * nc);
    d->bn_backward(d, b, gx, gg, gb, gm, gi, gdy, gdx, 1, gdg, gdb);
    o.dx1 = dgetf(d, gdx, nx);
    free(nanbuf);
    dfree(d, gx), dfree(d, gg), dfree(d, gb), dfree(d, gy), dfree(d, gm), dfree(d, gi);
    dfree(d, grm), dfree(d, grv), dfree(d, gdy), dfree(d, gdx), dfree(d, gdg), dfree(d, gdb);
    return o;
}

static void bn_out_free(bn_out *o)
{
    free(o->y), free(o->mean), free(o->invstd), free(o->rmean), free(o->rvar), free(o->ye);
    free(o->dx0), free(o->dx1), free(o->dg), free(o->db);
}

/* dy where the fused ReLU passed its pre-activation z, else 0 */
static double bn_naive_grad_in(double z, double dy, int relu) { return relu && z <= 0.0 ? 0.0 : dy; }

/* Every case twice: plain, and with the ReLU after it fused in (b.relu). */
static void family_bn(op_ctx *c)
{
    for (int cr = 0; cr < 2 * op_n_bn_cases; cr++) {
        int ci = cr / 2, relu = cr % 2;
        const op_bn_case *bc = &op_bn_cases[ci];
        dl_bn_desc b = {.n = bc->n, .c = bc->c, .hw = bc->hw, .eps = bc->eps,
                        .momentum = bc->momentum, .relu = relu};
        size_t nx = (size_t)b.n * b.c * b.hw, nc = (size_t)b.c;
        double m = (double)b.n * b.hw;
        dl_rng r;
        family_seed_rng(c, &r, 7, (uint64_t)ci);
        float *x = xmalloc(sizeof(float) * nx);
        for (size_t i = 0; i < nx; i++) /* per-channel scale and mean differ */
            x[i] = (float)(bc->offset + 0.3 * (double)((i / b.hw) % nc) +
                           (0.5 + (double)((i / b.hw) % nc) / nc) * dl_rng_normal(&r));
        float *gamma = huniform(&r, nc, -1.5, 1.5), *beta = hnormal(&r, nc, 0.5, 0.0);
        float *rm0 = hnormal(&r, nc, 0.5, 0.0), *rv0 = huniform(&r, nc, 0.5, 2.0);
        float *dy = hnormal(&r, nx, 1.0, 0.0), *dxpre = hnormal(&r, nx, 1.0, 0.0);
        float *dgpre = hnormal(&r, nc, 1.0, 0.0), *dbpre = hnormal(&r, nc, 1.0, 0.0);

        float *wy = xmalloc(sizeof(float) * nx), *wye = xmalloc(sizeof(float) * nx);
        float *wdx0 = xmalloc(sizeof(float) * nx), *wdx1 = xmalloc(sizeof(float) * nx);
        float *wm = xmalloc(sizeof(float) * nc), *wi = xmalloc(sizeof(float) * nc);
        float *wrm = xmalloc(sizeof(float) * nc), *wrv = xmalloc(sizeof(float) * nc);
        float *wdg = xmalloc(sizeof(float) * nc), *wdb = xmalloc(sizeof(float) * nc);
        for (int ch = 0; ch < b.c; ch++) {
            double s = 0.0, ss = 0.0;
            for (int i = 0; i < b.n; i++)
                for (int j = 0; j < b.hw; j++)
                    s += x[((size_t)i * b.c + ch) * b.hw + j];
            double mu = s / m;
            for (int i = 0; i < b.n; i++)
                for (int j = 0; j < b.hw; j++) {
                    double t = x[((size_t)i * b.c + ch) * b.hw + j] - mu;
                    ss += t * t;
                }
            double var = ss / m, is = 1.0 / sqrt(var + b.eps);
            double unbiased = m > 1 ? ss / (m - 1) : var;
            double rm = (1.0 - b.momentum) * rm0[ch] + b.momentum * mu;
            double rv = (1.0 - b.momentum) * rv0[ch] + b.momentum * unbiased;
            wm[ch] = (float)mu, wi[ch] = (float)is, wrm[ch] = (float)rm, wrv[ch] = (float)rv;
            double eis = 1.0 / sqrt((double)wrv[ch] + b.eps);
            double sdy = 0.0, sdyx = 0.0;
            for (int i = 0; i < b.n; i++)
                for (int j = 0; j < b.hw; j++) {
                    size_t at = ((size_t)i * b.c + ch) * b.hw + j;
                    double xhat = (x[at] - mu) * is, z = gamma[ch] * xhat + beta[ch];
                    double ze = gamma[ch] * (x[at] - (double)wrm[ch]) * eis + beta[ch];
                    wy[at] = (float)(relu && z <= 0.0 ? 0.0 : z);
                    wye[at] = (float)(relu && ze <= 0.0 ? 0.0 : ze);
                    sdy += bn_naive_grad_in(z, dy[at], relu);
                    sdyx += bn_naive_grad_in(z, dy[at], relu) * xhat;
                }
            wdg[ch] = (float)(dgpre[ch] + sdyx);
            wdb[ch] = (float)(dbpre[ch] + sdy);
            for (int i = 0; i < b.n; i++)
                for (int j = 0; j < b.hw; j++) {
                    size_t at = ((size_t)i * b.c + ch) * b.hw + j;
                    double xhat = (x[at] - mu) * is, z = gamma[ch] * xhat + beta[ch];
                    double gin = bn_naive_grad_in(z, dy[at], relu);
                    double g = gamma[ch] * is / m * (m * gin - sdy - xhat * sdyx);
                    wdx0[at] = (float)g;
                    wdx1[at] = (float)(dxpre[at] + g);
                }
        }
        bn_out g = bn_run(c->dev, &b, x, gamma, beta, rm0, rv0, dy, dxpre, dgpre, dbpre), rr = {0};
        if (c->ref)
            rr = bn_run(c->ref, &b, x, gamma, beta, rm0, rv0, dy, dxpre, dgpre, dbpre);
        char what[192];
        double tol = bc->tol > 0 ? bc->tol : TOL_SUM;
#define BN(field, want, count, label)                                                            \
    snprintf(what, sizeof what, "bn[%d]%s %dx%dx%d offset %g: %s", ci, relu ? " +relu" : "",   \
             b.n, b.c, b.hw, (double)bc->offset, label);                                                         \
    check2(c, what, g.field, c->ref ? rr.field : NULL, want, count, tol)
        BN(y, wy, nx, "train forward y");
        BN(mean, wm, nc, "train saved mean");
        BN(invstd, wi, nc, "train saved invstd");
        BN(rmean, wrm, nc, "running mean update");
        BN(rvar, wrv, nc, "running var update (unbiased)");
        BN(ye, wye, nx, "eval forward y");
        BN(dx0, wdx0, nx, "backward dx acc=0 (dx pre-filled NaN)");
        BN(dg, wdg, nc, "backward dgamma (+=)");
        BN(db, wdb, nc, "backward dbeta (+=)");
        BN(dx1, wdx1, nx, "backward dx acc=1");
#undef BN
        bn_out_free(&g);
        if (c->ref)
            bn_out_free(&rr);
        free(x), free(gamma), free(beta), free(rm0), free(rv0), free(dy), free(dxpre);
        free(dgpre), free(dbpre), free(wy), free(wye), free(wdx0), free(wdx1), free(wm);
        free(wi), free(wrm), free(wrv), free(wdg), free(wdb);
    }
}

/* ---- softmax cross-entropy ------------------------------------------------- */

static void xent_run(dl_device *d, const float *z, const int32_t *lab, int n, int k,
                     float **probs, float **loss, float **dz)
{
    size_t nz = (size_t)n * k;
    float *nanbuf = hconst(nz, NAN);
    float *gz = dputf(d, z, nz), *gp = dputf(d, nanbuf, nz), *gl = dputf(d, nanbuf, (size_t)n);
    float *gdz = dputf(d, nanbuf, nz);
    int32_t *glab = dput(d, lab, sizeof(int32_t) * n);
    d->xent_forward(d, gz, glab, gp, gl, n, k);
    *probs = dgetf(d, gp, nz);
    *loss = dgetf(d, gl, (size_t)n);
    d->xent_backward(d, gp, glab, gdz, n, k);
    *dz = dgetf(d, gdz, nz);
    free(nanbuf);
    dfree(d, gz), dfree(d, gp), dfree(d, gl), dfree(d, gdz), dfree(d, glab);
}

/* xent_stats on the naive probabilities and losses, with ties planted
 * (every third sample's class 0 raised to its largest probability, so the
 * first maximum decides).  The loss sum, compared in float: relative 1e-6
 * (a dropped or doubled term moves it by ~1/n); the correct count: exact. */
static void xent_stats_check(op_ctx *c, const float *probs, const float *loss,
                             const int32_t *lab, int n, int k, int ci)
{
    size_t nz = (size_t)n * k;
    float *p = xmalloc(sizeof(float) * nz);
    memcpy(p, probs, sizeof(float) * nz);
    double want_sum = 0.0;
    int want_right = 0;
    for (int i = 0; i < n; i++) {
        float *pi = p + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            best = pi[j] > pi[best] ? j : best;
        if (i % 3 == 0)
            pi[0] = pi[best], best = 0;
        want_sum += loss[i];
        want_right += best == lab[i];
    }
    float *gp = dputf(c->dev, p, nz), *gl = dputf(c->dev, loss, (size_t)n);
    int32_t *glab = dput(c->dev, lab, sizeof(int32_t) * (size_t)n);
    double *gout = c->dev->alloc(c->dev, 2 * sizeof(double), "xent stats"), got[2];
    c->dev->xent_stats(c->dev, gp, gl, glab, n, k, gout);
    c->dev->sync(c->dev);
    c->dev->download(c->dev, got, gout, sizeof got);
    float gs[1] = {(float)got[0]}, ws[1] = {(float)want_sum};
    char what[128]; /* + " (err ...)" fits op_ctx.worst_what */
    snprintf(what, sizeof what, "xent[%d] n=%d classes=%d: xent_stats loss sum", ci, n, k);
    op_check(c, what, gs, ws, 1, 1e-6);
    int32_t gr[1] = {(int32_t)got[1]}, wr[1] = {want_right};
    snprintf(what, sizeof what, "xent[%d] n=%d classes=%d: xent_stats correct count (%d)", ci, n,
             k, want_right);
    op_check_int(c, what, gr, wr, 1);
    dfree(c->dev, gp), dfree(c->dev, gl), dfree(c->dev, glab), dfree(c->dev, gout);
    free(p);
}

static void family_xent(op_ctx *c)
{
    for (int ci = 0; ci < op_n_xent_cases; ci++) {
        const op_xent_case *xc = &op_xent_cases[ci];
        int n = xc->n, k = xc->classes;
        size_t nz = (size_t)n * k;
        dl_rng r;
        family_seed_rng(c, &r, 8, (uint64_t)ci);
        float *z = hnormal(&r, nz, xc->scale, 0.0);
        int32_t *lab = xmalloc(sizeof(int32_t) * n);
        for (int i = 0; i < n; i++)
            lab[i] = (int32_t)dl_rng_below(&r, (uint64_t)k);
        float *wp = xmalloc(sizeof(float) * nz), *wl = xmalloc(sizeof(float) * n);
        float *wdz = xmalloc(sizeof(float) * nz);
        for (int i = 0; i < n; i++) {
            const float *zi = z + (size_t)i * k;
            double zmax = zi[0], s = 0.0;
            for (int j = 1; j < k; j++)
                zmax = zi[j] > zmax ? zi[j] : zmax;
            for (int j = 0; j < k; j++)
                s += exp(zi[j] - zmax);
            double lse = zmax + log(s);
            wl[i] = (float)(lse - zi[lab[i]]);
            for (int j = 0; j < k; j++) {
                double p = exp(zi[j] - lse);
                wp[(size_t)i * k + j] = (float)p;
                wdz[(size_t)i * k + j] = (float)((p - (j == lab[i])) / n);
            }
        }
        float *gp, *gl, *gdz, *rp = NULL, *rl = NULL, *rdz = NULL;
        xent_run(c->dev, z, lab, n, k, &gp, &gl, &gdz);
        if (c->ref)
            xent_run(c->ref, z, lab, n, k, &rp, &rl, &rdz);
        char what[192];
        snprintf(what, sizeof what, "xent[%d] n=%d classes=%d scale=%g: probs", ci, n, k,
                 (double)xc->scale);
        check2(c, what, gp, rp, wp, nz, TOL_ELEM * 4);
        snprintf(what, sizeof what, "xent[%d] n=%d classes=%d scale=%g: loss", ci, n, k,
                 (double)xc->scale);
        check2(c, what, gl, rl, wl, (size_t)n, TOL_ELEM * 4);
        snprintf(what, sizeof what, "xent[%d] n=%d classes=%d scale=%g: dlogits", ci, n, k,
                 (double)xc->scale);
        check2(c, what, gdz, rdz, wdz, nz, TOL_ELEM * 4);
        xent_stats_check(c, wp, wl, lab, n, k, ci);
        free(z), free(lab), free(wp), free(wl), free(wdz), free(gp), free(gl), free(gdz);
        free(rp), free(rl), free(rdz);
    }
}

/* ---- SGD update ------------------------------------------------------------ */

/* `steps` updates with fresh gradients each step; returns the parameters and
 * velocity after each step (concatenated). */
static void sgd_run(dl_device *d, const op_sgd_case *sc, const float *p0, const float *v0,
                    float *const *grads, float **p_out, float **v_out)
{
    size_t n = sc->n;
    dl_sgd_args a = {sc->lr, sc->momentum, sc->weight_decay, sc->nesterov};
    float *gp = dputf(d, p0, n), *gv = dputf(d, v0, n), *gg = dputf(d, grads[0], n);
    for (int s = 0; s < sc->steps; s++) {
        d->upload(d, gg, grads[s], sizeof(float) * n);
        d->sgd_update(d, &a, gp, gg, gv, n);
        p_out[s] = dgetf(d, gp, n);
        v_out[s] = dgetf(d, gv, n);
    }
    dfree(d, gp), dfree(d, gv), dfree(d, gg);
}

static void family_sgd(op_ctx *c)
{
    for (int ci = 0; ci < op_n_sgd_cases; ci++) {
        const op_sgd_case *sc = &op_sgd_cases[ci];
        size_t n = sc->n;
        dl_rng r;
        family_seed_rng(c, &r, 9, (uint64_t)ci);
        float *p0 = hnormal(&r, n, 1.0, 0.0), *v0 = hnormal(&r, n, 0.5, 0.0);
        float *grads[8], *gp[8], *gv[8], *rp[8] = {0}, *rv[8] = {0};
        int steps = DL_MIN(sc->steps, 8);
        for (int s = 0; s < steps; s++)
            grads[s] = hnormal(&r, n, 1.0, 0.0);
        op_sgd_case capped = *sc;
        capped.steps = steps;
        sgd_run(c->dev, &capped, p0, v0, grads, gp, gv);
        if (c->ref)
            sgd_run(c->ref, &capped, p0, v0, grads, rp, rv);
        float *wp = xmalloc(sizeof(float) * n), *wv = xmalloc(sizeof(float) * n);
        float *gdelta = xmalloc(sizeof(float) * n), *wdelta = xmalloc(sizeof(float) * n);
        for (int s = 0; s < steps; s++) {
            /* each step starts from the device's own state, so errors do not compound */
            const float *pp = s ? gp[s - 1] : p0, *pv = s ? gv[s - 1] : v0;
            for (size_t i = 0; i < n; i++) {
                double g = (double)grads[s][i] + (double)sc->weight_decay * pp[i];
                double v = (double)sc->momentum * pv[i] + g;
                double step = sc->nesterov ? g + (double)sc->momentum * v : v;
                double pn = pp[i] - (double)sc->lr * step;
                wv[i] = (float)v;
                wp[i] = (float)pn;
                wdelta[i] = (float)(pn - pp[i]);
                gdelta[i] = (float)((double)gp[s][i] - pp[i]);
            }
            char what[192];
            snprintf(what, sizeof what, "sgd[%d] n=%zu lr=%g mu=%g wd=%g%s step %d: params", ci,
                     n, (double)sc->lr, (double)sc->momentum, (double)sc->weight_decay,
                     sc->nesterov ? " nesterov" : "", s + 1);
            check2(c, what, gp[s], rp[s], wp, n, TOL_ELEM);
            snprintf(what, sizeof what, "sgd[%d] n=%zu lr=%g mu=%g wd=%g%s step %d: velocity", ci,
                     n, (double)sc->lr, (double)sc->momentum, (double)sc->weight_decay,
                     sc->nesterov ? " nesterov" : "", s + 1);
            check2(c, what, gv[s], rv[s], wv, n, TOL_ELEM);
            /* the update itself (p_new - p_old), so a wrong step is not hidden
             * behind the size of the parameters; fp32 rounding of p_new is
             * ulp(|p|)/2 ~ 2e-7 against steps of ~0.1 */
            snprintf(what, sizeof what, "sgd[%d] n=%zu lr=%g mu=%g wd=%g%s step %d: update", ci,
                     n, (double)sc->lr, (double)sc->momentum, (double)sc->weight_decay,
                     sc->nesterov ? " nesterov" : "", s + 1);
            check2(c, what, gdelta, NULL, wdelta, n, sc->lr > 0 ? TOL_SUM : TOL_EXACT);
        }
        for (int s = 0; s < steps; s++)
            free(grads[s]), free(gp[s]), free(gv[s]), free(rp[s]), free(rv[s]);
        free(p0), free(v0), free(wp), free(wv), free(gdelta), free(wdelta);
    }
}

/* ---- driver ---------------------------------------------------------------- */

const op_family op_families[] = {
    {"elementwise", family_elementwise},
    {"bias", family_bias},
    {"gemm", family_gemm},
    {"conv", family_conv},
    {"maxpool", family_maxpool},
    {"avgpool", family_avgpool},
    {"bn", family_bn},
    {"xent", family_xent},
    {"sgd", family_sgd},
    {NULL, NULL},
};

int op_run_all(op_ctx *c)
{
    for (const op_family *f = op_families; f->name; f++) {
        if (c->filter && *c->filter && !strstr(f->name, c->filter))
            continue;
        int before = c->failures, checks = c->checks;
        f->run(c);
        if (!c->quiet)
            printf("%-12s %4d checks, %d failed\n", f->name, c->checks - checks,
                   c->failures - before);
        fflush(stdout);
    }
    if (!c->quiet)
        printf("%s: %d checks, %d failed; worst error/tolerance %.3g: %s\n",
           c->dev->name, c->checks, c->failures, c->worst, c->worst_what);
    return c->failures;
}
