/* cuda_cudnn.cu: convolution through cuDNN (built when CMake finds cuDNN;
 * cuda_nocudnn.cu stands in otherwise).  dl_device_cuda_set_conv() puts
 * these three functions in the device table in place of the im2col + cuBLAS
 * ones of cuda_conv.cu, which stay the reference and the fallback.
 *
 * A plan per convolution shape (and math mode) holds cuDNN's descriptors
 * and its three algorithms (forward, backward data, backward filter), chosen
 * once with cudnnGet*Algorithm_v7 (cuDNN's heuristics, which is what
 * PyTorch uses unless torch.backends.cudnn.benchmark is set).  The network
 * asks for every layer's workspace when it is built (conv_workspace), so
 * the plans of the training shapes are made then, before the first step,
 * and the workspace is allocated once.  A call with another batch size (the
 * last partial batch, evaluation) makes its plan at that first call: host
 * work only, no allocation.
 *
 * Only deterministic algorithms are taken (perf.determinism), so a step
 * gives bit-identical results run to run on a given GPU and library, as on
 * the GEMM path.  Each algorithm's workspace is held to what the GEMM path
 * would need for the same shape, and conv_workspace reports that, so a
 * shape cuDNN cannot serve within it (or bf16 precision, which this path
 * does not implement) falls back to the GEMM path in the same workspace.
 *
 * Math: fp32 sets CUDNN_FMA_MATH (no tensor cores, strict fp32), tf32 sets
 * CUDNN_DEFAULT_MATH, which lets cuDNN use TF32 tensor cores for fp32 data,
 * as PyTorch does with torch.backends.cudnn.allow_tf32 (its default). */
#include "cuda_internal.cuh"

#include <cudnn.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUDNN_CHECK(call)                                                                        \
    do {                                                                                         \
        cudnnStatus_t s_ = (call);                                                               \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                                        \
            char detail_[512] = "";                                                              \
            cudnnGetLastErrorString(detail_, sizeof detail_);                                    \
            cuda_fatal(__FILE__, __LINE__, #call, cudnnGetErrorString(s_),                       \
                       detail_[0] ? detail_ : "(no detail from cuDNN)");                         \
        }                                                                                        \
    } while (0)

typedef struct conv_plan {
    dl_conv_desc shape;
    int tf32;     /* math mode the algorithms were chosen for */
    int use_gemm; /* no deterministic cuDNN algorithm fits the workspace */
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    size_t ws_bytes; /* the workspace the GEMM path needs: the limit for every algorithm */
} conv_plan;

typedef struct cudnn_state {
    cudnnHandle_t handle; /* bound to the device's compute stream */
    conv_plan **plans;
    int n_plans, cap;
} cudnn_state;

static cudnn_state *state_of(dl_device *d) { return (cudnn_state *)cuda_of(d)->cudnn; }

/* ---- algorithm choice ------------------------------------------------------------- */

/* The first (best-ranked) deterministic algorithm that cuDNN supports here
 * and that fits the workspace; -1 when none does.  The workspace is asked of
 * cuDNN again for the chosen algorithm: the heuristics' figure may be 0. */
template <typename Perf, typename Algo, typename SizeFn>
static int pick(const Perf *perf, int got, size_t limit, Algo *algo, SizeFn size_of)
{
    for (int i = 0; i < got; i++) {
        size_t need = 0;
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].determinism != CUDNN_DETERMINISTIC)
            continue;
        if (size_of(perf[i].algo, &need) != CUDNN_STATUS_SUCCESS || need > limit)
            continue;
        *algo = perf[i].algo;
        return 0;
    }
    return -1;
}

static int choose_algorithms(cudnnHandle_t h, conv_plan *p)
{
    int got = 0, bad = 0;
    cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
        h, p->x, p->w, p->conv, p->y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, fwd));
    bad |= pick(fwd, got, p->ws_bytes, &p->fwd,
                [&](cudnnConvolutionFwdAlgo_t a, size_t *need) {
                    return cudnnGetConvolutionForwardWorkspaceSize(h, p->x, p->w, p->conv, p->y,
                                                                   a, need);
                });
    cudnnConvolutionBwdDataAlgoPerf_t bd[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
        h, p->w, p->y, p->conv, p->x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &got, bd));
    bad |= pick(bd, got, p->ws_bytes, &p->bwd_data,
                [&](cudnnConvolutionBwdDataAlgo_t a, size_t *need) {
                    return cudnnGetConvolutionBackwardDataWorkspaceSize(h, p->w, p->y, p->conv,
                                                                        p->x, a, need);
                });
    cudnnConvolutionBwdFilterAlgoPerf_t bf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        h, p->x, p->y, p->conv, p->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &got, bf));
    bad |= pick(bf, got, p->ws_bytes, &p->bwd_filter,
                [&](cudnnConvolutionBwdFilterAlgo_t a, size_t *need) {
                    return cudnnGetConvolutionBackwardFilterWorkspaceSize(h, p->x, p->y, p->conv,
                                                                          p->w, a, need);
                });
    return bad ? -1 : 0;
}

/* ---- plans -------------------------------------------------------------------------- */

static void plan_free(conv_plan *p)
{
    if (!p)
        return;
    if (p->x)
        cudnnDestroyTensorDescriptor(p->x);
    if (p->y)
        cudnnDestroyTensorDescriptor(p->y);
    if (p->w)
        cudnnDestroyFilterDescriptor(p->w);
    if (p->conv)
        cudnnDestroyConvolutionDescriptor(p->conv);
    free(p);
}

static void plan_describe(conv_plan *p, const dl_conv_desc *c)
{
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, c->n,
                                           c->cin, c->h, c->w));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, c->n,
                                           c->cout, c->oh, c->ow));
    /* W[cout][cin][k][k]: the row-major [cout, cin*k*k] matrix of cpu_conv.c */
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, c->cout,
                                           c->cin, c->k, c->k));
    /* cross-correlation, as every CNN framework (and cpu_conv.c) */
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, c->pad, c->pad, c->stride, c->stride, 1,
                                                1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, p->tf32 ? CUDNN_DEFAULT_MATH
                                                             : CUDNN_FMA_MATH));
    int n, ch, oh, ow;
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &n, &ch, &oh, &ow));
    if (n != c->n || ch != c->cout || oh != c->oh || ow != c->ow)
        cuda_fatal(__FILE__, __LINE__, "cudnnGetConvolution2dForwardOutputDim", "shape mismatch",
                   "cuDNN's output shape differs from the layer's (a wiring bug)");
}

static conv_plan *plan_make(dl_device *d, const dl_conv_desc *c)
{
    cuda_impl *g = cuda_of(d);
    conv_plan *p = (conv_plan *)calloc(1, sizeof *p);
    if (!p)
        cuda_fatal(__FILE__, __LINE__, "calloc", "out of host memory", "a cuDNN plan");
    p->shape = *c;
    p->tf32 = g->tf32;
    p->ws_bytes = cuda_conv_workspace(d, c) * sizeof(float);
    plan_describe(p, c);
    p->use_gemm = choose_algorithms(state_of(d)->handle, p) != 0;
    return p;
}

static int same_shape(const dl_conv_desc *a, const dl_conv_desc *b)
{
    return a->n == b->n && a->cin == b->cin && a->h == b->h && a->w == b->w &&
           a->cout == b->cout && a->oh == b->oh && a->ow == b->ow && a->k == b->k &&
           a->stride == b->stride && a->pad == b->pad;
}

/* The plan for c in the current math mode, made on first use. */
static conv_plan *plan_for(dl_device *d, const dl_conv_desc *c)
{
    cudnn_state *s = state_of(d);
    int tf32 = cuda_of(d)->tf32;
    for (int i = 0; i < s->n_plans; i++)
        if (s->plans[i]->tf32 == tf32 && same_shape(&s->plans[i]->shape, c))
            return s->plans[i];
    if (s->n_plans == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        conv_plan **grown = (conv_plan **)realloc(s->plans, sizeof *grown * (size_t)cap);
        if (!grown)
            cuda_fatal(__FILE__, __LINE__, "realloc", "out of host memory", "cuDNN plans");
        s->plans = grown, s->cap = cap;
    }
    return s->plans[s->n_plans++] = plan_make(d, c);
}

/* ---- the table's convolution ops ------------------------------------------------------ */

static size_t cudnn_conv_workspace(dl_device *d, const dl_conv_desc *c)
{
    if (c->n >= 1 && c->oh * c->ow >= 1 && !cuda_of(d)->bf16)
        (void)plan_for(d, c); /* choose the algorithms now, at start-up */
    return cuda_conv_workspace_any(d, c);
}

static conv_plan *usable_plan(dl_device *d, const dl_conv_desc *c)
{
    if (c->n < 1 || c->oh * c->ow < 1 || cuda_of(d)->bf16)
        return NULL;
    conv_plan *p = plan_for(d, c);
    return p->use_gemm ? NULL : p;
}

static void cudnn_conv_forward(dl_device *d, const dl_conv_desc *c, const float *x,
                               const float *w, const float *bias, float *y, float *ws)
{
    conv_plan *p = usable_plan(d, c);
    if (!p) {
        cuda_conv_forward_any(d, c, x, w, bias, y, ws);
        return;
    }
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnConvolutionForward(state_of(d)->handle, &one, p->x, x, p->w, w, p->conv,
                                        p->fwd, ws, p->ws_bytes, &zero, p->y, y));
    if (bias)
        cuda_bias_add(d, y, bias, c->n, c->cout, c->oh * c->ow);
    if (cuda_of(d)->sync_each_launch)
        CUDA_CHECK(cudaStreamSynchronize(cuda_stream(d)));
}

/* dW and db accumulate (beta 1); dx is overwritten (beta 0: cuDNN then does
 * not read it) or accumulated. */
static void cudnn_conv_backward(dl_device *d, const dl_conv_desc *c, const float *x,
                                const float *w, const float *dy, float *dx, int acc, float *dw,
                                float *db, float *ws)
{
    conv_plan *p = usable_plan(d, c);
    if (!p) {
        cuda_conv_backward_any(d, c, x, w, dy, dx, acc, dw, db, ws);
        return;
    }
    cudnnHandle_t h = state_of(d)->handle;
    const float one = 1.0f, zero = 0.0f;
    if (db)
        cuda_bias_grad(d, dy, db, c->n, c->cout, c->oh * c->ow);
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, p->x, x, p->y, dy, p->conv, p->bwd_filter,
                                               ws, p->ws_bytes, &one, p->w, dw));
    if (dx)
        CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p->w, w, p->y, dy, p->conv,
                                                 p->bwd_data, ws, p->ws_bytes,
                                                 acc ? &one : &zero, p->x, dx));
    if (cuda_of(d)->sync_each_launch)
        CUDA_CHECK(cudaStreamSynchronize(cuda_stream(d)));
}

/* ---- attach / detach -------------------------------------------------------------------- */

int cuda_cudnn_attach(dl_device *d, char *why, size_t why_size)
{
    cuda_impl *g = cuda_of(d);
    if (!g->cudnn) {
        cudnn_state *s = (cudnn_state *)calloc(1, sizeof *s);
        if (!s) {
            snprintf(why, why_size, "out of host memory");
            return -1;
        }
        cudnnStatus_t st = cudnnCreate(&s->handle);
        if (st == CUDNN_STATUS_SUCCESS)
            st = cudnnSetStream(s->handle, g->stream);
        if (st != CUDNN_STATUS_SUCCESS) {
            char detail[256] = "";
            cudnnGetLastErrorString(detail, sizeof detail);
            snprintf(why, why_size, "cuDNN %zu (built with %d) did not initialise: %s%s%s",
                     cudnnGetVersion(), CUDNN_VERSION, cudnnGetErrorString(st),
                     detail[0] ? ": " : "", detail);
            if (s->handle)
                cudnnDestroy(s->handle);
            free(s);
            return -1;
        }
        g->cudnn = s;
    }
    d->conv_workspace = cudnn_conv_workspace;
    d->conv_forward = cudnn_conv_forward;
    d->conv_backward = cudnn_conv_backward;
    return 0;
}

void cuda_cudnn_detach(dl_device *d)
{
    cuda_impl *g = cuda_of(d);
    cudnn_state *s = (cudnn_state *)g->cudnn;
    d->conv_workspace = cuda_conv_workspace_any;
    d->conv_forward = cuda_conv_forward_any;
    d->conv_backward = cuda_conv_backward_any;
    if (!s)
        return;
    for (int i = 0; i < s->n_plans; i++)
        plan_free(s->plans[i]);
    free(s->plans);
    cudnnDestroy(s->handle);
    free(s);
    g->cudnn = NULL;
}

size_t cuda_cudnn_version(void) { return cudnnGetVersion(); }
