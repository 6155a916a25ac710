/* cuda_conv.cu: bias ops and 2-D convolution as im2col + one cuBLAS GEMM per
 * chunk of images, the same formulation as cpu_conv.c:
 *   col [cin*k*k, nb*oh*ow]   the unfolded input of nb images side by side
 *   tmp [cout,    nb*oh*ow]   W[cout, cin*k*k] x col
 *   forward:  y(NCHW) <- tmp (+ bias, fused into the scatter)
 *   backward: tmp <- dy(NCHW);  dW += tmp x col^T;  dcol = W^T x tmp;
 *             dx (+)= col2im(dcol)
 * A chunk holds as many images as fit CUDA_CONV_CHUNK_FLOATS of workspace,
 * so the GEMMs are wide even for small feature maps.  Under --precision
 * bf16, col and tmp are written in bf16 directly and W is rounded once per
 * call (conv_forward_bf16, conv_backward_bf16 below).
 *
 * col2im is a gather (one thread per input pixel summing the columns that
 * read it, in a fixed order), not a scatter with atomics: deterministic, and
 * no zeroing pass for acc = 0.  Reductions (bias_grad) are fixed-order block
 * trees in double.  cuBLAS SGEMM is deterministic for a given GPU and library
 * version (atomics mode is left at its default, not allowed). */
#include "cuda_internal.cuh"

/* Workspace target per chunk, in floats (128 MiB).  The workspace is shared
 * by all layers (the largest is allocated once), so this bounds the extra
 * memory; larger chunks give cuBLAS longer GEMMs. */
#define CUDA_CONV_CHUNK_FLOATS ((size_t)1 << 25)

/* ---- bias ---------------------------------------------------------------------- */

__global__ void bias_add_kernel(float *y, const float *b, int c, int hw, size_t total)
{
    GRID_STRIDE_LOOP(i, total)
    y[i] += b[(i / hw) % c];
}

void cuda_bias_add(dl_device *d, float *y, const float *b, int n, int c, int hw)
{
    size_t total = (size_t)n * c * hw;
    if (total)
        CUDA_LAUNCH(d, bias_add_kernel, cuda_grid(total), CUDA_THREADS, 0, y, b, c, hw, total);
}

#define REDUCE_THREADS 256

/* One block per channel: db[ch] += sum over images and positions, in double. */
__global__ void bias_grad_kernel(const float *dy, float *db, int n, int c, int hw)
{
    __shared__ double sh[REDUCE_THREADS];
    int ch = blockIdx.x;
    size_t m = (size_t)n * hw;
    double s = 0.0;
    for (size_t e = threadIdx.x; e < m; e += REDUCE_THREADS) {
        size_t i = e / hw, j = e % hw;
        s += dy[(i * c + ch) * hw + j];
    }
    s = block_sum<REDUCE_THREADS>(s, sh);
    if (threadIdx.x == 0)
        db[ch] += (float)s;
}

void cuda_bias_grad(dl_device *d, const float *dy, float *db, int n, int c, int hw)
{
    if (c > 0)
        CUDA_LAUNCH(d, bias_grad_kernel, c, REDUCE_THREADS, 0, dy, db, n, c, hw);
}

/* ---- convolution ------------------------------------------------------------------ */

/* Geometry passed by value to the kernels. */
struct conv_geom {
    int cin, h, w, cout, oh, ow, k, stride, pad;
    int nb; /* images in this chunk */
};

static conv_geom geom_of(const dl_conv_desc *c, int nb)
{
    conv_geom g = {c->cin, c->h, c->w, c->cout, c->oh, c->ow, c->k, c->stride, c->pad, nb};
    return g;
}

/* Images per chunk (dl_device_cuda_set_conv_chunk lets tests force several). */
static int conv_chunk(dl_device *d, const dl_conv_desc *c)
{
    size_t per_image = ((size_t)c->cin * c->k * c->k + (size_t)c->cout) * c->oh * c->ow;
    size_t target = cuda_of(d)->conv_chunk_floats ? cuda_of(d)->conv_chunk_floats
                                                  : CUDA_CONV_CHUNK_FLOATS;
    size_t nb = target / (per_image ? per_image : 1);
    if (nb < 1)
        nb = 1;
    if (nb > (size_t)c->n)
        nb = (size_t)c->n;
    return (int)nb;
}

size_t cuda_conv_workspace(dl_device *d, const dl_conv_desc *c)
{
    size_t nb = (size_t)conv_chunk(d, c);
    return nb * ((size_t)c->cin * c->k * c->k + (size_t)c->cout) * c->oh * c->ow;
}

/* A value as the column buffer stores it: fp32, or rounded to bf16 for a
 * bf16 GEMM (the rounding cuda_gemm's conversion pass would apply). */
__device__ __forceinline__ float col_value(float v, float *) { return v; }
__device__ __forceinline__ __nv_bfloat16 col_value(float v, __nv_bfloat16 *)
{
    return __float2bfloat16_rn(v);
}

/* col[r][j*ohw + oy*ow + ox] = x[j][ci][oy*s - p + ki][ox*s - p + kj], r = (ci*k + ki)*k + kj,
 * zero outside the image.  One thread per column entry: coalesced writes.
 * T: float, or __nv_bfloat16 under --precision bf16 (written once, in the
 * GEMM's input type: no fp32 column buffer and conversion pass). */
template <typename T>
__global__ void im2col_kernel(conv_geom g, const float *x, T *col)
{
    size_t ohw = (size_t)g.oh * g.ow, ld = (size_t)g.nb * ohw;
    size_t total = (size_t)g.cin * g.k * g.k * ld;
    GRID_STRIDE_LOOP(e, total)
    {
        size_t r = e / ld, rem = e % ld;
        int j = (int)(rem / ohw), q = (int)(rem % ohw);
        int oy = q / g.ow, ox = q % g.ow;
        int ci = (int)(r / (g.k * g.k)), ki = (int)(r / g.k) % g.k, kj = (int)(r % g.k);
        int iy = oy * g.stride - g.pad + ki, ix = ox * g.stride - g.pad + kj;
        float v = 0.0f;
        if (iy >= 0 && iy < g.h && ix >= 0 && ix < g.w)
            v = x[(((size_t)j * g.cin + ci) * g.h + iy) * g.w + ix];
        col[e] = col_value(v, col);
    }
}

/* The adjoint of im2col as a gather: each input pixel sums, over the kernel
 * taps (ki, kj) in row-major order, the one column entry that read it (if
 * any).  acc 0 overwrites dx without reading it. */
__global__ void col2im_kernel(conv_geom g, const float *col, float *dx, int acc)
{
    size_t ohw = (size_t)g.oh * g.ow, ld = (size_t)g.nb * ohw;
    size_t total = (size_t)g.nb * g.cin * g.h * g.w;
    GRID_STRIDE_LOOP(e, total)
    {
        int ix = (int)(e % g.w), iy = (int)((e / g.w) % g.h);
        size_t jc = e / ((size_t)g.h * g.w);
        int ci = (int)(jc % g.cin), j = (int)(jc / g.cin);
        float s = acc ? dx[e] : 0.0f;
        for (int ki = 0; ki < g.k; ki++) {
            int ty = iy + g.pad - ki; /* = oy * stride */
            if (ty < 0 || ty % g.stride)
                continue;
            int oy = ty / g.stride;
            if (oy >= g.oh)
                continue;
            for (int kj = 0; kj < g.k; kj++) {
                int tx = ix + g.pad - kj;
                if (tx < 0 || tx % g.stride)
                    continue;
                int ox = tx / g.stride;
                if (ox >= g.ow)
                    continue;
                size_t r = ((size_t)ci * g.k + ki) * g.k + kj;
                s += col[r * ld + (size_t)j * ohw + (size_t)oy * g.ow + ox];
            }
        }
        dx[e] = s;
    }
}

/* y[j][co][q] = tmp[co][j*ohw + q] (+ bias[co]); one thread per output element. */
__global__ void chunk_to_nchw_kernel(conv_geom g, const float *tmp, const float *bias, float *y)
{
    size_t ohw = (size_t)g.oh * g.ow, total = (size_t)g.nb * g.cout * ohw;
    GRID_STRIDE_LOOP(e, total)
    {
        size_t q = e % ohw, jc = e / ohw;
        int co = (int)(jc % g.cout), j = (int)(jc / g.cout);
        float v = tmp[((size_t)co * g.nb + j) * ohw + q];
        y[e] = bias ? v + bias[co] : v;
    }
}

/* tmp[co][j*ohw + q] = dy[j][co][q]; one thread per tmp element (coalesced
 * writes).  T as for im2col_kernel. */
template <typename T>
__global__ void nchw_to_chunk_kernel(conv_geom g, const float *dy, T *tmp)
{
    size_t ohw = (size_t)g.oh * g.ow, total = (size_t)g.nb * g.cout * ohw;
    GRID_STRIDE_LOOP(e, total)
    {
        size_t q = e % ohw, cj = e / ohw;
        int j = (int)(cj % g.nb), co = (int)(cj / g.nb);
        tmp[e] = col_value(dy[((size_t)j * g.cout + co) * ohw + q], tmp);
    }
}

template <typename T>
static void im2col(dl_device *d, const conv_geom &g, const float *x, T *col)
{
    size_t total = (size_t)g.cin * g.k * g.k * g.nb * g.oh * g.ow;
    CUDA_LAUNCH(d, im2col_kernel<T>, cuda_grid(total), CUDA_THREADS, 0, g, x, col);
}

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* ---- bf16: operands written in bf16 where they are made -------------------------
 * Under --precision bf16 the GEMM operands are rounded where they are
 * produced, not by cuda_gemm's conversion passes: im2col writes the column
 * buffer in bf16 (into the fp32 workspace's column region, half of it), the
 * permute of dy writes bf16, and the weights are rounded once per call, not
 * per chunk and GEMM.  The bf16 scratch (sized at start-up,
 * cuda_conv1x1.cu bf16_need) holds [W: align8(cout*kdim)][dy chunk:
 * cout*cols].  The values rounded are the same, so the products are those
 * of the conversion-pass formulation. */

static void conv_forward_bf16(dl_device *d, const dl_conv_desc *c, const float *x,
                              const float *w, const float *bias, float *y, float *ws)
{
    int nb_max = conv_chunk(d, c), ohw = c->oh * c->ow, kdim = c->cin * c->k * c->k;
    size_t in_size = (size_t)c->cin * c->h * c->w, out_size = (size_t)c->cout * ohw;
    __nv_bfloat16 *w16 = cuda_bf16_scratch(d, align8((size_t)c->cout * kdim));
    cuda_to_bf16(d, w, w16, (size_t)c->cout * kdim);
    for (int i0 = 0; i0 < c->n; i0 += nb_max) {
        int nb = DL_MIN(nb_max, c->n - i0);
        conv_geom g = geom_of(c, nb);
        __nv_bfloat16 *col16 = (__nv_bfloat16 *)ws;
        float *tmp = ws + (size_t)kdim * nb * ohw, *yi = y + i0 * out_size;
        im2col(d, g, x + i0 * in_size, col16);
        float *out = nb == 1 ? yi : tmp; /* one image: the GEMM result is already NCHW */
        cuda_gemm_bf16(d, 0, 0, c->cout, nb * ohw, kdim, 1.0f, w16, kdim, col16, nb * ohw, 0.0f,
                       out, nb * ohw);
        if (nb == 1 && bias)
            cuda_bias_add(d, yi, bias, 1, c->cout, ohw);
        else if (nb > 1)
            CUDA_LAUNCH(d, chunk_to_nchw_kernel, cuda_grid((size_t)nb * out_size), CUDA_THREADS,
                        0, g, tmp, bias, yi);
    }
}

static void conv_backward_bf16(dl_device *d, const dl_conv_desc *c, const float *x,
                               const float *w, const float *dy, float *dx, int acc, float *dw,
                               float *ws)
{
    int nb_max = conv_chunk(d, c), ohw = c->oh * c->ow, kdim = c->cin * c->k * c->k;
    size_t in_size = (size_t)c->cin * c->h * c->w, out_size = (size_t)c->cout * ohw;
    size_t w_room = align8((size_t)c->cout * kdim);
    __nv_bfloat16 *w16 = cuda_bf16_scratch(d, w_room + out_size * nb_max), *gy16 = w16 + w_room;
    if (dx)
        cuda_to_bf16(d, w, w16, (size_t)c->cout * kdim);
    for (int i0 = 0; i0 < c->n; i0 += nb_max) {
        int nb = DL_MIN(nb_max, c->n - i0);
        conv_geom g = geom_of(c, nb);
        __nv_bfloat16 *col16 = (__nv_bfloat16 *)ws;
        float *dcol = ws; /* after the dW GEMM has read col16 (stream order) */
        if (nb > 1)
            CUDA_LAUNCH(d, nchw_to_chunk_kernel<__nv_bfloat16>,
                        cuda_grid((size_t)nb * out_size), CUDA_THREADS, 0, g, dy + i0 * out_size,
                        gy16);
        else
            cuda_to_bf16(d, dy + i0 * out_size, gy16, out_size);
        im2col(d, g, x + i0 * in_size, col16);
        cuda_gemm_bf16(d, 0, 1, c->cout, kdim, nb * ohw, 1.0f, gy16, nb * ohw, col16, nb * ohw,
                       1.0f, dw, kdim);
        if (!dx)
            continue;
        cuda_gemm_bf16(d, 1, 0, kdim, nb * ohw, c->cout, 1.0f, w16, kdim, gy16, nb * ohw, 0.0f,
                       dcol, nb * ohw);
        CUDA_LAUNCH(d, col2im_kernel, cuda_grid((size_t)nb * in_size), CUDA_THREADS, 0, g, dcol,
                    dx + i0 * in_size, acc);
    }
}

void cuda_conv_forward(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                       const float *bias, float *y, float *ws)
{
    int nb_max = conv_chunk(d, c), ohw = c->oh * c->ow, kdim = c->cin * c->k * c->k;
    size_t in_size = (size_t)c->cin * c->h * c->w, out_size = (size_t)c->cout * ohw;
    if (c->n < 1 || ohw < 1)
        return;
    if (cuda_of(d)->bf16) {
        conv_forward_bf16(d, c, x, w, bias, y, ws);
        return;
    }
    for (int i0 = 0; i0 < c->n; i0 += nb_max) {
        int nb = DL_MIN(nb_max, c->n - i0);
        conv_geom g = geom_of(c, nb);
        float *col = ws, *tmp = ws + (size_t)kdim * nb * ohw;
        float *yi = y + i0 * out_size;
        im2col(d, g, x + i0 * in_size, col);
        if (nb == 1) { /* one image: the GEMM result is already NCHW */
            cuda_gemm(d, 0, 0, c->cout, ohw, kdim, 1.0f, w, kdim, col, ohw, 0.0f, yi, ohw);
            if (bias)
                cuda_bias_add(d, yi, bias, 1, c->cout, ohw);
        } else {
            cuda_gemm(d, 0, 0, c->cout, nb * ohw, kdim, 1.0f, w, kdim, col, nb * ohw, 0.0f, tmp,
                      nb * ohw);
            CUDA_LAUNCH(d, chunk_to_nchw_kernel, cuda_grid((size_t)nb * out_size), CUDA_THREADS,
                        0, g, tmp, bias, yi);
        }
    }
}

void cuda_conv_backward(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                        const float *dy, float *dx, int acc, float *dw, float *db, float *ws)
{
    int nb_max = conv_chunk(d, c), ohw = c->oh * c->ow, kdim = c->cin * c->k * c->k;
    size_t in_size = (size_t)c->cin * c->h * c->w, out_size = (size_t)c->cout * ohw;
    if (c->n < 1 || ohw < 1)
        return;
    if (db)
        cuda_bias_grad(d, dy, db, c->n, c->cout, ohw);
    if (cuda_of(d)->bf16) {
        conv_backward_bf16(d, c, x, w, dy, dx, acc, dw, ws);
        return;
    }
    for (int i0 = 0; i0 < c->n; i0 += nb_max) {
        int nb = DL_MIN(nb_max, c->n - i0);
        conv_geom g = geom_of(c, nb);
        float *col = ws, *tmp = ws + (size_t)kdim * nb * ohw;
        const float *gy = dy + i0 * out_size;
        if (nb > 1) {
            CUDA_LAUNCH(d, nchw_to_chunk_kernel<float>, cuda_grid((size_t)nb * out_size),
                        CUDA_THREADS, 0, g, gy, tmp);
            gy = tmp;
        }
        im2col(d, g, x + i0 * in_size, col);
        cuda_gemm(d, 0, 1, c->cout, kdim, nb * ohw, 1.0f, gy, nb * ohw, col, nb * ohw, 1.0f, dw,
                  kdim);
        if (!dx)
            continue;
        /* col is free again (stream order): reuse it for dcol */
        cuda_gemm(d, 1, 0, kdim, nb * ohw, c->cout, 1.0f, w, kdim, gy, nb * ohw, 0.0f, col,
                  nb * ohw);
        CUDA_LAUNCH(d, col2im_kernel, cuda_grid((size_t)nb * in_size), CUDA_THREADS, 0, g, col,
                    dx + i0 * in_size, acc);
    }
}
