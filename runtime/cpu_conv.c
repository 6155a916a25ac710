/* cpu_conv.c: 2-D convolution as im2col + GEMM, parallel over images.
 *
 * The batch is cut into one fixed, contiguous share per thread (a "slot").
 * Each slot works through its images in groups of `nb` with single-threaded
 * GEMMs on slot-private buffers small enough to stay in its core's L2:
 *   col [kdim, nb*ohw]   the unfolded input, kdim = cin*k*k
 *   y   [cout, nb*ohw]   = W[cout, kdim] x col
 * With nb == 1 the GEMM writes NCHW directly; small feature maps group a few
 * images so the GEMM is wide enough for BLAS, and copy the result into NCHW
 * while it is still in cache.  Backward, per group:
 *   dW_slot^T += col x dy^T             (kept transposed: OpenBLAS packs col
 *                                       far faster this way round than as col^T)
 *   dx = W' x im2col'(dy)               stride 1: dx is the convolution of dy
 *                                       with the flipped kernel W'
 *   dx = col2im(W^T x dy)               otherwise
 * The stride-1 form needs no col2im (a scattered read-modify-write) and its
 * GEMM has the long kdim as inner dimension instead of the short cout.
 * The slots' dW partial sums are added in slot order at the end: the result
 * depends on the thread count only, never on timing.
 *
 * Why not one threaded GEMM over the whole batch: OpenBLAS's threads meet
 * many times per call (and spin badly on shared cores), and the batch-wide
 * column layout needs transposes to and from NCHW through main memory. */
#include "cpu_ops.h"

#include <stddef.h>
#include <string.h>

/* Aim for GEMMs at least this many columns wide (images x output pixels)... */
#define CONV_MIN_COLS 256
/* ...as long as the column buffer stays within this many floats (512 KiB). */
#define CONV_COL_FLOATS (128u * 1024u)

typedef struct conv_plan {
    int slots;              /* threads sharing the batch, each with its own buffers */
    int nb;                 /* images per GEMM */
    int pointwise;          /* 1x1, stride 1, no padding: x is already col */
    int transposed;         /* backward dx as the convolution t of dy */
    int pk_fwd, pk_dw, pk_dx; /* which GEMMs use the packed kernels (cpu_conv_packed.c) */
    dl_conv_desc t;         /* dy [n, cout, oh, ow] -> dx [n, cin, h, w], flipped kernel */
    size_t col, tmp, row, dyt, dw; /* floats of each slot's buffers */
    size_t stride;          /* floats per slot */
    size_t wt, wp;          /* after the slots: flipped kernel, packed kernel, */
    size_t mc, mt;          /* and the packed im2col masks of c and of t */
} conv_plan;

static size_t round_up16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Which GEMMs run on the packed kernels: all but 1x1 stride-1 ones (their
 * operand is x itself, nothing to save) when AVX-512 is there; the weight
 * gradient's kernel holds 16 output channels per vector. */
static void plan_packed(const dl_conv_desc *c, conv_plan *p)
{
    int on = cpu_packed_available() && !p->pointwise;
    p->pk_fwd = on;
    p->pk_dw = on && c->cout % 16 == 0;
    p->pk_dx = on && p->transposed;
}

/* Sizes of the buffers, in floats: the largest any path of the plan needs. */
static void plan_buffers(const dl_conv_desc *c, conv_plan *p)
{
    size_t ohw = (size_t)c->oh * c->ow, hw = (size_t)c->h * c->w;
    int kk = c->k * c->k, kdim = c->cin * kk, tdim = c->cout * kk;
    int cols = (int)(p->nb * ohw), tcols = (int)(p->nb * hw);
    if (!p->pointwise) {
        size_t col = kdim * (size_t)cols;
        if (p->transposed)
            col = DL_MAX(col, (size_t)tdim * tcols);
        if (p->pk_fwd || p->pk_dw)
            col = DL_MAX(col, cpu_packed_col_floats(kdim, cols));
        if (p->pk_dx)
            col = DL_MAX(col, cpu_packed_col_floats(tdim, tcols));
        p->col = round_up16(col);
    }
    if (p->nb > 1)
        p->tmp = round_up16(DL_MAX((size_t)c->cout * ohw, (size_t)c->cin * hw) * p->nb);
    if (p->pk_fwd || p->pk_dx)
        p->row = round_up16(DL_MAX(cols, tcols));
    if (p->pk_dw)
        p->dyt = round_up16(cpu_packed_dyt_floats(c->cout, cols));
    p->dw = round_up16((size_t)c->cout * kdim);
    p->stride = p->col + p->tmp + p->row + p->dyt + p->dw;
    p->wt = p->transposed ? round_up16((size_t)c->cout * kdim) : 0;
    if (p->pk_fwd)
        p->wp = cpu_packed_w_floats(c->cout, kdim);
    if (p->pk_dx)
        p->wp = DL_MAX(p->wp, cpu_packed_w_floats(c->cin, tdim));
    p->mc = p->pk_fwd || p->pk_dw ? round_up16(cpu_packed_mask_count(c, p->nb)) : 0;
    p->mt = p->pk_dx ? round_up16(cpu_packed_mask_count(&p->t, p->nb)) : 0;
}

/* The shared tail of the workspace, after the slots */
typedef struct conv_shared {
    float *wt, *wp;
    uint32_t *mc, *mt;
    /* the whole x and dy tensors, which cpu_packed_im2col may read past a
     * plane's edges */
    const float *x_begin, *x_end, *dy_begin, *dy_end;
} conv_shared;

static conv_shared conv_shared_of(const dl_conv_desc *c, const conv_plan *p, float *ws,
                                  const float *x, const float *dy)
{
    conv_shared sh = {.wt = ws + (size_t)p->slots * p->stride, .x_begin = x, .dy_begin = dy};
    sh.x_end = x + (size_t)c->n * c->cin * c->h * c->w;
    sh.dy_end = dy ? dy + (size_t)c->n * c->cout * c->oh * c->ow : NULL;
    sh.wp = sh.wt + p->wt;
    sh.mc = (uint32_t *)(sh.wp + p->wp);
    sh.mt = sh.mc + p->mc;
    return sh;
}

static conv_plan conv_plan_of(const dl_conv_desc *c)
{
    conv_plan p = {.slots = DL_MAX(1, DL_MIN(cpu_threads(), c->n)), .nb = 1};
    size_t ohw = (size_t)c->oh * c->ow;
    size_t kk = (size_t)c->k * c->k, kdim = c->cin * kk;
    p.pointwise = c->k == 1 && c->stride == 1 && c->pad == 0;
    p.transposed = !p.pointwise && c->stride == 1 && c->pad < c->k;
    p.t = (dl_conv_desc){.n = c->n, .cin = c->cout, .h = c->oh, .w = c->ow, .cout = c->cin,
                         .oh = c->h, .ow = c->w, .k = c->k, .stride = 1,
                         .pad = c->k - 1 - c->pad};
    int share = (c->n + p.slots - 1) / p.slots;
    while (!p.pointwise && p.nb < share && p.nb * ohw < CONV_MIN_COLS &&
           kdim * (p.nb + 1) * ohw <= CONV_COL_FLOATS)
        p.nb++;
    plan_packed(c, &p);
    plan_buffers(c, &p);
    return p;
}

/* Images [*lo, *hi) of slot s: a split that depends on n and slots only. */
static void slot_range(int n, int slots, int s, int *lo, int *hi)
{
    *lo = (int)((long long)n * s / slots);
    *hi = (int)((long long)n * (s + 1) / slots);
}

size_t cpu_conv_workspace(dl_device *d, const dl_conv_desc *c)
{
    (void)d;
    conv_plan p = conv_plan_of(c);
    return (size_t)p.slots * p.stride + p.wt + p.wp + p.mc + p.mt;
}

/* Output columns ox whose input column ox*s - p + kj lies inside [0, w):
 * [*lo, *hi).  Computed once per kernel column so the inner loops have no
 * bounds checks and vectorise. */
static void valid_range(int out, int in, int stride, int offset, int *lo, int *hi)
{
    int a = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    int b = in - offset <= 0 ? 0 : (in - offset - 1) / stride + 1;
    *lo = DL_MIN(a, out);
    *hi = DL_MAX(*lo, DL_MIN(b, out));
}

/* One row of one image: out[oy*ow + ox] = plane[iy][ox*s - p + kj]. */
static void im2col_plane(const dl_conv_desc *c, const float *plane, int ki, int kj, float *dst)
{
    int s = c->stride, xoff = kj - c->pad, lo, hi;
    valid_range(c->ow, c->w, s, xoff, &lo, &hi);
    for (int oy = 0; oy < c->oh; oy++) {
        int iy = oy * s - c->pad + ki;
        float *out = dst + (size_t)oy * c->ow;
        if (iy < 0 || iy >= c->h) {
            memset(out, 0, sizeof(float) * c->ow);
            continue;
        }
        const float *in = plane + (size_t)iy * c->w + xoff;
        /* edges are a pixel or two: plain loops beat memset calls */
        for (int ox = 0; ox < lo; ox++)
            out[ox] = 0.0f;
        if (s == 1)
            memcpy(out + lo, in + lo, sizeof(float) * (hi - lo));
        else if (s == 2) /* a constant stride vectorises */
            for (int ox = lo; ox < hi; ox++)
                out[ox] = in[ox * 2];
        else
            for (int ox = lo; ox < hi; ox++)
                out[ox] = in[ox * s];
        for (int ox = hi; ox < c->ow; ox++)
            out[ox] = 0.0f;
    }
}

/* im2col_plane for stride 1 with ow == w ("same" padding): output rows lie
 * as far apart as input rows, so all valid pixels of a kernel offset are one
 * contiguous copy.  The copy wraps neighbouring row ends into the padding
 * columns; those are cleared after.  One memcpy per plane instead of per row
 * matters for 7..28-pixel rows. */
static void im2col_plane_same(const dl_conv_desc *c, const float *plane, int ki, int kj,
                              float *dst)
{
    int ow = c->ow, xoff = kj - c->pad, lo, hi;
    size_t size = (size_t)c->oh * ow;
    valid_range(ow, c->w, 1, xoff, &lo, &hi);
    int y0 = DL_MAX(0, c->pad - ki), y1 = DL_MIN(c->oh, c->h + c->pad - ki);
    if (y1 <= y0 || hi <= lo) {
        memset(dst, 0, sizeof(float) * size);
        return;
    }
    size_t first = (size_t)y0 * ow + lo, last = (size_t)(y1 - 1) * ow + hi;
    memset(dst, 0, sizeof(float) * first);
    memcpy(dst + first, plane + first + (ptrdiff_t)(ki - c->pad) * c->w + xoff,
           sizeof(float) * (last - first));
    memset(dst + last, 0, sizeof(float) * (size - last));
    /* Between two valid rows the copy filled one run of |xoff| padding
     * entries (a row's right edge and the next row's left edge).  Column by
     * column, so the compiler emits strided stores, not a memset call per row. */
    int run = ow - hi + lo;
    for (int e = 0; e < run; e++)
        for (int oy = y0; oy < y1 - 1; oy++)
            dst[(size_t)oy * ow + hi + e] = 0.0f;
}

void cpu_im2col_row(const dl_conv_desc *c, const float *x, int nb, int r, float *dst)
{
    int k = c->k, ohw = c->oh * c->ow, ci = r / (k * k), ki = (r / k) % k, kj = r % k;
    size_t plane_size = (size_t)c->h * c->w;
    int same = c->stride == 1 && c->ow == c->w;
    for (int j = 0; j < nb; j++) {
        const float *plane = x + ((size_t)j * c->cin + ci) * plane_size;
        if (same)
            im2col_plane_same(c, plane, ki, kj, dst + (size_t)j * ohw);
        else
            im2col_plane(c, plane, ki, kj, dst + (size_t)j * ohw);
    }
}

/* col[(ci*k + ki)*k + kj][j*ohw + oy*ow + ox] = x[j][ci][oy*s - p + ki][ox*s - p + kj]
 * for the nb images at x. */
static void im2col(const dl_conv_desc *c, const float *x, int nb, float *col)
{
    int rows = c->cin * c->k * c->k;
    size_t ld = (size_t)nb * c->oh * c->ow;
    for (int r = 0; r < rows; r++)
        cpu_im2col_row(c, x, nb, r, col + r * ld);
}

/* The adjoint of im2col_plane: plane[iy][ox*s - p + kj] += src[oy*ow + ox]. */
static void col2im_plane(const dl_conv_desc *c, const float *src, int ki, int kj, float *plane)
{
    int s = c->stride, xoff = kj - c->pad, lo, hi;
    valid_range(c->ow, c->w, s, xoff, &lo, &hi);
    for (int oy = 0; oy < c->oh; oy++) {
        int iy = oy * s - c->pad + ki;
        if (iy < 0 || iy >= c->h)
            continue;
        float *row = plane + (size_t)iy * c->w + xoff;
        const float *in = src + (size_t)oy * c->ow;
        if (s == 1)
            for (int ox = lo; ox < hi; ox++)
                row[ox] += in[ox];
        else
            for (int ox = lo; ox < hi; ox++)
                row[ox * s] += in[ox];
    }
}

/* Sums every column entry of nb images back into its input pixel of dx
 * (overwriting dx first unless acc). */
static void col2im(const dl_conv_desc *c, const float *col, int nb, float *dx, int acc)
{
    int k = c->k, ohw = c->oh * c->ow;
    size_t ld = (size_t)nb * ohw, plane_size = (size_t)c->h * c->w;
    for (int jc = 0; jc < nb * c->cin; jc++) {
        int j = jc / c->cin, ci = jc % c->cin;
        float *plane = dx + (size_t)jc * plane_size;
        if (!acc)
            memset(plane, 0, sizeof(float) * plane_size);
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                size_t r = (size_t)(ci * k + ki) * k + kj;
                col2im_plane(c, col + r * ld + (size_t)j * ohw, ki, kj, plane);
            }
    }
}

/* tmp[co][j*ohw + p] <-> y[j][co][p] for a group of nb images; acc adds */
static void group_to_nchw(const float *tmp, float *y, int nb, int cout, int ohw, int acc)
{
    for (int j = 0; j < nb; j++)
        for (int co = 0; co < cout; co++) {
            float *dst = y + ((size_t)j * cout + co) * ohw;
            const float *src = tmp + ((size_t)co * nb + j) * ohw;
            if (acc)
                for (int q = 0; q < ohw; q++)
                    dst[q] += src[q];
            else
                memcpy(dst, src, sizeof(float) * ohw);
        }
}

static void nchw_to_group(const float *y, float *tmp, int nb, int cout, int ohw)
{
    for (int j = 0; j < nb; j++)
        for (int co = 0; co < cout; co++)
            memcpy(tmp + ((size_t)co * nb + j) * ohw, y + ((size_t)j * cout + co) * ohw,
                   sizeof(float) * ohw);
}

/* The GEMM operand for nb images at x: x itself for pointwise convolutions
 * (one image is [cin, h*w] = [kdim, ohw]), else their im2col in col. */
static const float *unfold(const dl_conv_desc *c, const conv_plan *p, const float *x, int nb,
                           float *col)
{
    if (p->pointwise)
        return x;
    im2col(c, x, nb, col);
    return col;
}

/* A slot's buffers (conv_plan sizes them) */
typedef struct slot_bufs {
    float *col, *tmp, *row, *dyt, *dw;
} slot_bufs;

static slot_bufs slot_bufs_of(const conv_plan *p, float *ws, int s)
{
    slot_bufs b = {.col = ws + (size_t)s * p->stride};
    b.tmp = b.col + p->col;
    b.row = b.tmp + p->tmp;
    b.dyt = b.row + p->row;
    b.dw = b.dyt + p->dyt;
    return b;
}

/* y [cout, cols] = W x im2col(nb images at x) */
static void forward_gemm(const dl_conv_desc *c, const conv_plan *p, const float *x, int nb,
                         const float *w, const conv_shared *sh, float *y, slot_bufs *b)
{
    int cols = nb * c->oh * c->ow, kdim = c->cin * c->k * c->k;
    if (p->pk_fwd) {
        cpu_packed_im2col(c, x, nb, b->col, b->row, sh->mc, sh->x_begin, sh->x_end);
        cpu_packed_gemm(sh->wp, c->cout, kdim, b->col, cols, y, cols, 0);
        return;
    }
    const float *col = unfold(c, p, x, nb, b->col);
    cpu_gemm_serial(0, 0, c->cout, cols, kdim, 1.0f, w, kdim, col, cols, 0.0f, y, cols);
}

/* Forward for images [lo, hi) of one slot */
static void forward_images(const dl_conv_desc *c, const conv_plan *p, int lo, int hi,
                           const float *x, const float *w, const conv_shared *sh,
                           const float *bias, float *y, slot_bufs *b)
{
    int ohw = c->oh * c->ow;
    size_t in_size = (size_t)c->cin * c->h * c->w, out_size = (size_t)c->cout * ohw;
    for (int i = lo; i < hi; i += p->nb) {
        int nb = DL_MIN(p->nb, hi - i);
        float *yi = y + i * out_size;
        forward_gemm(c, p, x + i * in_size, nb, w, sh, nb == 1 ? yi : b->tmp, b);
        if (nb > 1)
            group_to_nchw(b->tmp, yi, nb, c->cout, ohw, 0);
        if (bias)
            for (int jc = 0; jc < nb * c->cout; jc++) {
                float v = bias[jc % c->cout], *row = yi + (size_t)jc * ohw;
                for (int q = 0; q < ohw; q++)
                    row[q] += v;
            }
    }
}

void cpu_conv_forward(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                      const float *bias, float *y, float *ws)
{
    (void)d;
    if (c->n < 1)
        return;
    conv_plan p = conv_plan_of(c);
    conv_shared sh = conv_shared_of(c, &p, ws, x, NULL);
    if (p.pk_fwd) {
        cpu_packed_pack_w(w, c->cout, c->cin * c->k * c->k, sh.wp);
        cpu_packed_masks(c, p.nb, sh.mc);
    }
#pragma omp parallel for schedule(static) num_threads(p.slots)
    for (int s = 0; s < p.slots; s++) {
        int lo, hi;
        slot_bufs b = slot_bufs_of(&p, ws, s);
        slot_range(c->n, p.slots, s, &lo, &hi);
        forward_images(c, &p, lo, hi, x, w, &sh, bias, y, &b);
    }
}

/* dx for nb images as the stride-1 convolution of their dy with the flipped
 * kernel sh->wt [cin, cout*k*k] (overwriting dx unless acc). */
static void dx_transposed(const dl_conv_desc *c, const conv_plan *p, const conv_shared *sh,
                          const float *dy, int nb, float *dx, int acc, slot_bufs *b)
{
    int hw = c->h * c->w, tdim = c->cout * c->k * c->k, cols = nb * hw;
    float *dst = nb == 1 ? dx : b->tmp;
    int add = nb == 1 && acc;
    if (p->pk_dx) {
        cpu_packed_im2col(&p->t, dy, nb, b->col, b->row, sh->mt, sh->dy_begin, sh->dy_end);
        cpu_packed_gemm(sh->wp, c->cin, tdim, b->col, cols, dst, cols, add);
    } else {
        im2col(&p->t, dy, nb, b->col);
        cpu_gemm_serial(0, 0, c->cin, cols, tdim, 1.0f, sh->wt, tdim, b->col, cols,
                        add ? 1.0f : 0.0f, dst, cols);
    }
    if (nb > 1)
        group_to_nchw(b->tmp, dx, nb, c->cin, hw, acc);
}

/* This slot's dW^T [kdim, cout] for nb images, written (first) or added */
static void dw_group(const dl_conv_desc *c, const conv_plan *p, const float *x, const float *dy,
                     const float *g, int nb, int first, const conv_shared *sh, slot_bufs *b)
{
    int ohw = c->oh * c->ow, cols = nb * ohw, kdim = c->cin * c->k * c->k;
    if (p->pk_dw) {
        cpu_packed_im2col(c, x, nb, b->col, b->row, sh->mc, sh->x_begin, sh->x_end);
        cpu_packed_transpose(dy, nb, c->cout, ohw, b->dyt);
        cpu_packed_dw(b->col, kdim, b->dyt, c->cout, cols, b->dw, !first);
        return;
    }
    const float *col = unfold(c, p, x, nb, b->col);
    cpu_gemm_serial(0, 1, kdim, c->cout, cols, 1.0f, col, cols, g, cols, first ? 0.0f : 1.0f,
                    b->dw, c->cout);
}

/* Backward for images [lo, hi): this slot's share of dW goes to the slot's
 * partial sum, [kdim, cout] (overwritten), dx is written or accumulated. */
static void backward_images(const dl_conv_desc *c, const conv_plan *p, int lo, int hi,
                            const float *x, const float *w, const conv_shared *sh,
                            const float *dy, float *dx, int acc, slot_bufs *b)
{
    int ohw = c->oh * c->ow, kdim = c->cin * c->k * c->k;
    size_t in_size = (size_t)c->cin * c->h * c->w, out_size = (size_t)c->cout * ohw;
    for (int i = lo; i < hi; i += p->nb) {
        int nb = DL_MIN(p->nb, hi - i), cols = nb * ohw;
        const float *dyi = dy + i * out_size, *g = dyi;
        /* the BLAS paths read dy as one [cout, cols] matrix */
        int grouped = nb > 1 && !(p->pk_dw && (p->transposed || !dx));
        if (grouped) {
            nchw_to_group(dyi, b->tmp, nb, c->cout, ohw);
            g = b->tmp;
        }
        dw_group(c, p, x + i * in_size, dyi, g, nb, i == lo, sh, b);
        if (!dx)
            continue;
        float *dxi = dx + i * in_size;
        if (p->transposed) {
            /* col and tmp are consumed: reuse them */
            dx_transposed(c, p, sh, dyi, nb, dxi, acc, b);
        } else if (p->pointwise) {
            cpu_gemm_serial(1, 0, kdim, cols, c->cout, 1.0f, w, kdim, g, cols, acc ? 1.0f : 0.0f,
                            dxi, cols);
        } else {
            cpu_gemm_serial(1, 0, kdim, cols, c->cout, 1.0f, w, kdim, g, cols, 0.0f, b->col, cols);
            col2im(c, b->col, nb, dxi, acc);
        }
    }
}

/* wt[ci][co][ki][kj] = w[co][ci][k-1-ki][k-1-kj]: the kernel of the transposed
 * convolution, [cin, cout*k*k] as a GEMM operand. */
static void flip_kernel(const dl_conv_desc *c, const float *w, float *wt)
{
    int k = c->k, kk = k * k;
#pragma omp for schedule(static)
    for (int ci = 0; ci < c->cin; ci++)
        for (int co = 0; co < c->cout; co++)
            for (int q = 0; q < kk; q++)
                wt[((size_t)ci * c->cout + co) * kk + q] =
                    w[((size_t)co * c->cin + ci) * kk + (kk - 1 - q)];
}

void cpu_conv_backward(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                       const float *dy, float *dx, int acc, float *dw, float *db, float *ws)
{
    if (c->n < 1)
        return;
    conv_plan p = conv_plan_of(c);
    size_t kdim = (size_t)c->cin * c->k * c->k, nw = c->cout * kdim;
    conv_shared sh = conv_shared_of(c, &p, ws, x, dy);
    float *dw_parts = slot_bufs_of(&p, ws, 0).dw;
    int flip = p.transposed && dx;
    if (db)
        cpu_bias_grad(d, dy, db, c->n, c->cout, c->oh * c->ow);
#pragma omp parallel num_threads(p.slots)
    {
        if (flip)
            flip_kernel(c, w, sh.wt); /* ends in a barrier */
#pragma omp single
        {
            if (flip && p.pk_dx) {
                cpu_packed_pack_w(sh.wt, c->cin, c->cout * c->k * c->k, sh.wp);
                cpu_packed_masks(&p.t, p.nb, sh.mt);
            }
            if (p.pk_dw)
                cpu_packed_masks(c, p.nb, sh.mc);
        }
#pragma omp for schedule(static)
        for (int s = 0; s < p.slots; s++) {
            int lo, hi;
            slot_bufs b = slot_bufs_of(&p, ws, s);
            slot_range(c->n, p.slots, s, &lo, &hi);
            backward_images(c, &p, lo, hi, x, w, &sh, dy, dx, acc, &b);
        }
        /* every slot has at least one image (slots <= n): sum them in order */
#pragma omp for schedule(static)
        for (size_t e = 0; e < nw; e++) {
            size_t co = e / kdim, r = e % kdim, et = r * c->cout + co;
            float sum = dw_parts[et];
            for (int s = 1; s < p.slots; s++)
                sum += dw_parts[s * p.stride + et];
            dw[e] += sum;
        }
    }
}
