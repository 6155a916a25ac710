/* cuda_conv1x1.cu: the GEMM path's entry points (the device table's conv
 * ops without cuDNN, and cuDNN's fallback).  Most of ResNet-50's
 * convolutions are 1x1 with stride 1 and no padding, for which im2col is a
 * copy of the input and the chunked formulation of cuda_conv.cu adds two
 * layout permutes.  On NCHW such a convolution is, image by image,
 *   y_j[cout, hw]  = W[cout, cin] x_j[cin, hw]
 *   dx_j[cin, hw] (+)= W^T[cin, cout] dy_j[cout, hw]
 * i.e. one strided batched GEMM over the images (W shared, stride 0) that
 * reads and writes the tensors in place: no im2col, no permute, no col2im.
 * The weight gradient sums over the images, dW += sum_j dy_j x_j^T, which
 * needs the images side by side in one matrix: it stays on cuda_conv.cu's
 * chunked GEMM (dx = NULL there).  In bf16 the batched GEMM rounds x (or
 * dy) once, with no column buffer in between. */
#include "cuda_internal.cuh"

static int conv_is_pointwise(const dl_conv_desc *c)
{
    return c->k == 1 && c->stride == 1 && c->pad == 0 && c->oh == c->h && c->ow == c->w;
}

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* The bf16 scratch every GEMM of this convolution needs (cuda_gemm's
 * layout: operand a rounded up to 8 elements, then b).  The chunked path
 * multiplies over cols = images-per-chunk x oh*ow columns, which its
 * workspace (cols x (kdim + cout) floats) gives. */
static size_t bf16_need(const dl_conv_desc *c, size_t ws)
{
    size_t kdim = (size_t)c->cin * c->k * c->k, cout = (size_t)c->cout;
    size_t cols = ws / (kdim + cout);
    size_t fwd = align8(cout * kdim) + kdim * cols;  /* W x col */
    size_t dw = align8(cout * cols) + kdim * cols;   /* dy x col^T */
    size_t dcol = align8(kdim * cout) + cout * cols; /* W^T x dy */
    size_t need = DL_MAX(fwd, DL_MAX(dw, dcol));
    if (conv_is_pointwise(c)) { /* W x x_j, W^T x dy_j over the whole batch */
        size_t per = (size_t)DL_MAX(c->cin, c->cout) * c->h * c->w;
        need = DL_MAX(need, align8(cout * kdim) + (size_t)c->n * per);
    }
    return need;
}

size_t cuda_conv_workspace_any(dl_device *d, const dl_conv_desc *c)
{
    size_t ws = cuda_conv_workspace(d, c);
    if (cuda_of(d)->bf16 && c->n >= 1 && c->oh * c->ow >= 1)
        cuda_bf16_reserve(d, bf16_need(c, ws));
    return ws;
}

void cuda_conv_forward_any(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                           const float *bias, float *y, float *ws)
{
    if (!conv_is_pointwise(c)) {
        cuda_conv_forward(d, c, x, w, bias, y, ws);
        return;
    }
    int hw = c->h * c->w;
    if (c->n < 1 || hw < 1)
        return;
    cuda_gemm_batched(d, 0, 0, c->cout, hw, c->cin, 1.0f, w, c->cin, 0, x, hw,
                      (long long)c->cin * hw, 0.0f, y, hw, (long long)c->cout * hw, c->n);
    if (bias)
        cuda_bias_add(d, y, bias, c->n, c->cout, hw);
}

void cuda_conv_backward_any(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                            const float *dy, float *dx, int acc, float *dw, float *db, float *ws)
{
    if (!conv_is_pointwise(c)) {
        cuda_conv_backward(d, c, x, w, dy, dx, acc, dw, db, ws);
        return;
    }
    int hw = c->h * c->w;
    if (c->n < 1 || hw < 1)
        return;
    cuda_conv_backward(d, c, x, w, dy, NULL, 0, dw, db, ws); /* dW += ..., db += ... */
    if (dx) /* beta 0: cuBLAS does not read dx (it may hold NaN) */
        cuda_gemm_batched(d, 1, 0, c->cin, hw, c->cout, 1.0f, w, c->cin, 0, dy, hw,
                          (long long)c->cout * hw, acc ? 1.0f : 0.0f, dx, hw,
                          (long long)c->cin * hw, c->n);
}
