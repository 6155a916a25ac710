/* cpu_conv.c: 2-D convolution as im2col + one GEMM per chunk of images.
 *
 * Small feature maps (28x28 and below) make per-image GEMMs too thin for BLAS
 * to use its threads well, so a chunk of `nb` images is unfolded side by side:
 *   col [cin*k*k, nb*oh*ow]   (the unfolded input of nb images)
 *   tmp [cout,    nb*oh*ow]   (= W[cout, cin*k*k] x col)
 * and tmp is then scattered into NCHW.  Backward gathers dy the same way:
 *   dW += tmp x col^T,   dcol = W^T x tmp,   col2im(dcol) -> dx. */
#include "cpu_ops.h"

#include <string.h>

/* Workspace target per chunk, in floats (4 MiB): large enough for wide
 * GEMMs, small enough to stay near the last-level cache. */
#define CONV_CHUNK_FLOATS (1u << 20)

static int conv_chunk(const dl_conv_desc *c)
{
    size_t per_image = ((size_t)c->cin * c->k * c->k + (size_t)c->cout) * c->oh * c->ow;
    size_t nb = CONV_CHUNK_FLOATS / (per_image ? per_image : 1);
    if (nb < 1)
        nb = 1;
    if (nb > (size_t)c->n)
        nb = (size_t)c->n;
    return (int)nb;
}

size_t cpu_conv_workspace(dl_device *d, const dl_conv_desc *c)
{
    (void)d;
    size_t nb = (size_t)conv_chunk(c);
    return nb * ((size_t)c->cin * c->k * c->k + (size_t)c->cout) * c->oh * c->ow;
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
        else
            for (int ox = lo; ox < hi; ox++)
                out[ox] = in[ox * s];
        for (int ox = hi; ox < c->ow; ox++)
            out[ox] = 0.0f;
    }
}

/* col[(ci*k + ki)*k + kj][j*ohw + oy*ow + ox] = x[j][ci][oy*s - p + ki][ox*s - p + kj] */
static void im2col(const dl_conv_desc *c, const float *x, int nb, float *col)
{
    int k = c->k, ohw = c->oh * c->ow, rows = c->cin * k * k;
    size_t ld = (size_t)nb * ohw, plane_size = (size_t)c->h * c->w;
#pragma omp parallel for collapse(2) schedule(static) if (ld * rows > CPU_PARALLEL_MIN)
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < nb; j++) {
            int ci = r / (k * k), ki = (r / k) % k, kj = r % k;
            im2col_plane(c, x + ((size_t)j * c->cin + ci) * plane_size, ki, kj,
                         col + r * ld + (size_t)j * ohw);
        }
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

/* Sums every column entry back into its input pixel.  Parallel over
 * (image, channel) planes, which no two threads share. */
static void col2im(const dl_conv_desc *c, const float *col, int nb, float *dx, int acc)
{
    int k = c->k, ohw = c->oh * c->ow;
    size_t ld = (size_t)nb * ohw, plane_size = (size_t)c->h * c->w;
#pragma omp parallel for schedule(static) if (ld * c->cin * k * k > CPU_PARALLEL_MIN)
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

/* tmp[co][j*ohw + p] <-> y[j][co][p] */
static void chunk_to_nchw(const float *tmp, float *y, int nb, int cout, int ohw)
{
#pragma omp parallel for schedule(static) if ((size_t)nb * cout * ohw > CPU_PARALLEL_MIN)
    for (int jc = 0; jc < nb * cout; jc++) {
        int j = jc / cout, co = jc % cout;
        memcpy(y + (size_t)jc * ohw, tmp + ((size_t)co * nb + j) * ohw, sizeof(float) * ohw);
    }
}

static void nchw_to_chunk(const float *y, float *tmp, int nb, int cout, int ohw)
{
#pragma omp parallel for schedule(static) if ((size_t)nb * cout * ohw > CPU_PARALLEL_MIN)
    for (int jc = 0; jc < nb * cout; jc++) {
        int j = jc / cout, co = jc % cout;
        memcpy(tmp + ((size_t)co * nb + j) * ohw, y + (size_t)jc * ohw, sizeof(float) * ohw);
    }
}

void cpu_conv_forward(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                      const float *bias, float *y, float *ws)
{
    int nb_max = conv_chunk(c), ohw = c->oh * c->ow, kdim = c->cin * c->k * c->k;
    size_t in_size = (size_t)c->cin * c->h * c->w, out_size = (size_t)c->cout * ohw;
    for (int i0 = 0; i0 < c->n; i0 += nb_max) {
        int nb = DL_MIN(nb_max, c->n - i0);
        float *col = ws, *tmp = ws + (size_t)kdim * nb * ohw;
        float *yi = y + i0 * out_size;
        im2col(c, x + i0 * in_size, nb, col);
        /* one image: the GEMM result is already NCHW */
        float *dst = nb == 1 ? yi : tmp;
        cpu_gemm(d, 0, 0, c->cout, nb * ohw, kdim, 1.0f, w, kdim, col, nb * ohw, 0.0f, dst,
                 nb * ohw);
        if (nb > 1)
            chunk_to_nchw(tmp, yi, nb, c->cout, ohw);
    }
    if (bias)
        cpu_bias_add(d, y, bias, c->n, c->cout, ohw);
}

void cpu_conv_backward(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                       const float *dy, float *dx, int acc, float *dw, float *db, float *ws)
{
    int nb_max = conv_chunk(c), ohw = c->oh * c->ow, kdim = c->cin * c->k * c->k;
    size_t in_size = (size_t)c->cin * c->h * c->w, out_size = (size_t)c->cout * ohw;
    if (db)
        cpu_bias_grad(d, dy, db, c->n, c->cout, ohw);
    for (int i0 = 0; i0 < c->n; i0 += nb_max) {
        int nb = DL_MIN(nb_max, c->n - i0);
        float *col = ws, *tmp = ws + (size_t)kdim * nb * ohw;
        const float *g = dy + i0 * out_size;
        if (nb > 1) {
            nchw_to_chunk(g, tmp, nb, c->cout, ohw);
            g = tmp;
        }
        im2col(c, x + i0 * in_size, nb, col);
        cpu_gemm(d, 0, 1, c->cout, kdim, nb * ohw, 1.0f, g, nb * ohw, col, nb * ohw, 1.0f, dw,
                 kdim);
        if (!dx)
            continue;
        cpu_gemm(d, 1, 0, kdim, nb * ohw, c->cout, 1.0f, w, kdim, g, nb * ohw, 0.0f, col,
                 nb * ohw);
        col2im(c, col, nb, dx + i0 * in_size, acc);
    }
}
