/* device.h: the device op table.
 *
 * A device (cpu, later cuda) is chosen once at start-up and every layer calls
 * its ops through this table, so layers hold no device-specific code.  All
 * tensors are fp32, NCHW, in device memory; `n` is the batch size of the
 * current call (it may be smaller than the batch the arena was sized for).
 *
 * Backward ops that write an input gradient take `acc`: 0 overwrites dx,
 * 1 adds to it.  A tensor read by several layers (a residual block's input)
 * receives the sum of their gradients this way, without a zeroing pass. */
#ifndef DL_DEVICE_H
#define DL_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef struct dl_conv_desc {
    int n, cin, h, w;      /* input  [n, cin, h, w] */
    int cout, oh, ow;      /* output [n, cout, oh, ow] */
    int k, stride, pad;    /* square kernel k x k */
} dl_conv_desc;

typedef struct dl_pool_desc {
    int n, c, h, w;        /* input  [n, c, h, w] */
    int oh, ow;            /* output [n, c, oh, ow] */
    int k, stride, pad;    /* average pooling counts padding (PyTorch default) */
} dl_pool_desc;

typedef struct dl_bn_desc {
    int n, c, hw;          /* x [n, c, hw] */
    float eps, momentum;   /* running = (1-momentum)*running + momentum*batch */
    int relu;              /* fused ReLU: y = max(bn(x), 0) */
} dl_bn_desc;

typedef struct dl_sgd_args {
    float lr, momentum, weight_decay;
    int nesterov;
} dl_sgd_args;

typedef enum { DL_DEVICE_CPU = 0, DL_DEVICE_CUDA } dl_device_kind;

/* One host piece of a batch upload: bytes from src to dst + dst_off. */
typedef struct dl_host_part {
    const void *src;
    size_t bytes, dst_off;
} dl_host_part;

#define DL_DEVICE_MARKS 1024
#define DL_DEVICE_READ_SLOTS 4
#define DL_DEVICE_READ_BYTES 64

typedef struct dl_device dl_device;
struct dl_device {
    const char *name;
    dl_device_kind kind; /* for launch/ and comm/, which pair a device with a backend */
    void *impl; /* backend state: BLAS threads, cuBLAS handle, streams */

    /* memory */
    void *(*alloc)(dl_device *d, size_t bytes, const char *what);
    void (*free)(dl_device *d, void *p);
    void (*upload)(dl_device *d, void *dst, const void *src, size_t bytes);
    void (*download)(dl_device *d, void *dst, const void *src, size_t bytes);
    void (*sync)(dl_device *d);
    /* Small results read without waiting where they are produced (the loss
     * statistics, one step late: docs/gpu.md).  read_start queues a copy of
     * `bytes` (at most DL_DEVICE_READ_BYTES) of device memory src into the
     * device's host slot `slot` (0 .. DL_DEVICE_READ_SLOTS-1) behind the
     * work queued so far, and returns at once; read_finish waits for that
     * copy and hands its bytes to dst.  src must keep its value until then
     * (on the CPU, read_finish reads it: the CPU's ops are done when they
     * return, so its copy waits for nothing and reads the same bytes). */
    void (*read_start)(dl_device *d, int slot, const void *src, size_t bytes);
    void (*read_finish)(dl_device *d, int slot, void *dst, const void *src, size_t bytes);
    /* Timing on the device's own clock (NULL on the CPU, whose ops finish
     * before they return: the host clock is the device's).  mark(slot)
     * records when the device reaches this point of the queued work (a CUDA
     * event on the compute stream); mark_ms(a, b) is the time from mark a to
     * mark b in ms, waiting for b.  Slots 0 .. DL_DEVICE_MARKS-1. */
    void (*mark)(dl_device *d, int slot);
    double (*mark_ms)(dl_device *d, int a, int b);
    /* The input pipeline: copies the parts of one batch into dst (device
     * memory).  The host pieces may be reused as soon as the call returns;
     * device work queued after the call sees the batch.  On CUDA the copy
     * runs on a copy stream from pinned staging memory, overlapping the
     * device work queued before the call, so the caller alternates between
     * two destination buffers, naming which in `buf` (0 or 1): the copy
     * into a buffer waits only for the work queued before the previous call
     * (which used the other buffer), i.e. for the last use of this one. */
    void (*upload_batch)(dl_device *d, int buf, void *dst, const dl_host_part *parts, int n_parts);
    /* Optional (NULL: nothing to prepare): readies upload_batch for batches
     * of up to `bytes` now (CUDA: its pinned staging), so that no training
     * step allocates.  The network calls it once it is sized. */
    void (*reserve_batch)(dl_device *d, size_t bytes);
    void (*fill)(dl_device *d, float *x, size_t n, float value);
    void (*copy)(dl_device *d, float *dst, const float *src, size_t n, int acc);
    void (*scale)(dl_device *d, float *x, size_t n, float s);

    /* C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, row-major. */
    void (*gemm)(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

    /* y[n,c,hw] += b[c];  db[c] += sum over n, hw of dy */
    void (*bias_add)(dl_device *d, float *y, const float *b, int n, int c, int hw);
    void (*bias_grad)(dl_device *d, const float *dy, float *db, int n, int c, int hw);

    /* convolution; `ws` holds dl_conv_workspace() floats.  bias may be NULL.
     * backward: dx may be NULL (first layer); dw/db accumulate (+=). */
    size_t (*conv_workspace)(dl_device *d, const dl_conv_desc *c);
    void (*conv_forward)(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                         const float *bias, float *y, float *ws);
    void (*conv_backward)(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                          const float *dy, float *dx, int acc, float *dw, float *db, float *ws);

    /* pooling; max pooling saves the argmax (index within the input plane) */
    void (*maxpool_forward)(dl_device *d, const dl_pool_desc *p, const float *x, float *y,
                            int32_t *argmax);
    void (*maxpool_backward)(dl_device *d, const dl_pool_desc *p, const float *dy,
                             const int32_t *argmax, float *dx, int acc);
    void (*avgpool_forward)(dl_device *d, const dl_pool_desc *p, const float *x, float *y);
    void (*avgpool_backward)(dl_device *d, const dl_pool_desc *p, const float *dy, float *dx,
                             int acc);

    /* activations and elementwise */
    void (*relu_forward)(dl_device *d, const float *x, float *y, size_t n);
    void (*relu_backward)(dl_device *d, const float *y, const float *dy, float *dx, size_t n,
                          int acc);
    void (*add_forward)(dl_device *d, const float *a, const float *b, float *y, size_t n);

    /* batch normalisation over (n, hw) per channel.  Training saves the batch
     * mean and 1/sqrt(var+eps) and updates the running statistics (unbiased
     * variance, as PyTorch); evaluation uses the running statistics.
     * With b->relu the ReLU that follows is fused in: forward writes
     * max(bn(x), 0), backward masks dy where that was 0, recomputing the
     * pre-activation from x, gamma and beta (y is not read). */
    void (*bn_forward_train)(dl_device *d, const dl_bn_desc *b, const float *x,
                             const float *gamma, const float *beta, float *y, float *mean,
                             float *invstd, float *running_mean, float *running_var);
    void (*bn_forward_eval)(dl_device *d, const dl_bn_desc *b, const float *x,
                            const float *gamma, const float *beta, float *y,
                            const float *running_mean, const float *running_var);
    void (*bn_backward)(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                        const float *beta, const float *mean, const float *invstd,
                        const float *dy, float *dx, int acc, float *dgamma, float *dbeta);

    /* softmax cross-entropy, mean over the batch.  forward writes the per-sample
     * loss into loss[n]; backward writes dlogits = (softmax - onehot) / n. */
    void (*xent_forward)(dl_device *d, const float *logits, const int32_t *labels, float *probs,
                         float *loss, int n, int classes);
    void (*xent_backward)(dl_device *d, const float *probs, const int32_t *labels,
                          float *dlogits, int n, int classes);
    /* What the host reads of a batch, reduced where the batch is: out[0] =
     * the sum of loss[0..n) in double, out[1] = how many samples' largest
     * probability (the first, on ties) is their label's.  out: 2 doubles of
     * device memory. */
    void (*xent_stats)(dl_device *d, const float *probs, const float *loss,
                       const int32_t *labels, int n, int classes, double *out);

    /* SGD with momentum (PyTorch semantics: v = mu*v + (g + wd*p); p -= lr*v,
     * or p -= lr*(g + wd*p + mu*v) with Nesterov). */
    void (*sgd_update)(dl_device *d, const dl_sgd_args *a, float *params, const float *grads,
                       float *velocity, size_t n);
};

/* The CPU reference device.  `threads` sets both OpenMP and BLAS threads. */
dl_device *dl_device_cpu(int threads);

#endif
