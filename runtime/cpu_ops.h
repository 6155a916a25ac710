/* cpu_ops.h: the CPU reference ops, shared between the files that implement
 * them and device_cpu.c, which puts them in the table. */
#ifndef DL_CPU_OPS_H
#define DL_CPU_OPS_H

#include "device.h"

/* The thread count the device was created with: ops that keep per-thread
 * partial results size and split them by this, never by the team they get,
 * so results depend on it alone. */
int cpu_threads(void);

/* One single-threaded GEMM (cpu_gemm's arguments, no device), for callers
 * that already run one per thread. */
void cpu_gemm_serial(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a,
                     int lda, const float *b, int ldb, float beta, float *c, int ldc);

void cpu_gemm(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

void cpu_bias_add(dl_device *d, float *y, const float *b, int n, int c, int hw);
void cpu_bias_grad(dl_device *d, const float *dy, float *db, int n, int c, int hw);

size_t cpu_conv_workspace(dl_device *d, const dl_conv_desc *c);
void cpu_conv_forward(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                      const float *bias, float *y, float *ws);
void cpu_conv_backward(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                       const float *dy, float *dx, int acc, float *dw, float *db, float *ws);

/* One row r of im2col (cpu_conv.c) for nb images: dst[j*oh*ow + q]. */
void cpu_im2col_row(const dl_conv_desc *c, const float *x, int nb, int r, float *dst);

/* AVX-512 convolution kernels on packed im2col data (cpu_conv_packed.c).
 * cpu_packed_available() is 0 without AVX-512 or with DLTRAIN_CONV_BLAS=1
 * (then every convolution GEMM goes through BLAS). */
int cpu_packed_available(void);
size_t cpu_packed_col_floats(int kdim, int cols);
size_t cpu_packed_w_floats(int m, int kdim);
size_t cpu_packed_dyt_floats(int cout, int cols);
void cpu_packed_pack_w(const float *w, int m, int kdim, float *wp);
/* masks: cpu_packed_masks for the full group of nb images (the direct path);
 * [lo, hi): the whole tensor around x, which the direct path may read past
 * a plane's edges (the values read there are masked off) */
int cpu_packed_direct(const dl_conv_desc *c);
size_t cpu_packed_mask_count(const dl_conv_desc *c, int nb);
void cpu_packed_masks(const dl_conv_desc *c, int nb, uint32_t *masks);
void cpu_packed_im2col(const dl_conv_desc *c, const float *x, int nb, float *packed, float *row,
                       const uint32_t *masks, const float *lo, const float *hi);
void cpu_packed_transpose(const float *dy, int nb, int cout, int ohw, float *dyt);
/* y[m][q] (+)= sum_r W[m][r] col[r][q], W packed by cpu_packed_pack_w */
void cpu_packed_gemm(const float *wp, int m, int kdim, const float *packed, int cols, float *y,
                     int ldy, int acc);
/* dwt[r][co] (+)= sum_q col[r][q] dy[co][q]; cout a multiple of 16 */
void cpu_packed_dw(const float *packed, int kdim, const float *dyt, int cout, int cols,
                   float *dwt, int acc);

void cpu_maxpool_forward(dl_device *d, const dl_pool_desc *p, const float *x, float *y,
                         int32_t *argmax);
void cpu_maxpool_backward(dl_device *d, const dl_pool_desc *p, const float *dy,
                          const int32_t *argmax, float *dx, int acc);
void cpu_avgpool_forward(dl_device *d, const dl_pool_desc *p, const float *x, float *y);
void cpu_avgpool_backward(dl_device *d, const dl_pool_desc *p, const float *dy, float *dx,
                          int acc);

void cpu_bn_forward_train(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                          const float *beta, float *y, float *mean, float *invstd,
                          float *running_mean, float *running_var);
void cpu_bn_forward_eval(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                         const float *beta, float *y, const float *running_mean,
                         const float *running_var);
void cpu_bn_backward(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                     const float *beta, const float *mean, const float *invstd, const float *dy,
                     float *dx, int acc, float *dgamma, float *dbeta);

void cpu_xent_forward(dl_device *d, const float *logits, const int32_t *labels, float *probs,
                      float *loss, int n, int classes);
void cpu_xent_stats(dl_device *d, const float *probs, const float *loss, const int32_t *labels,
                    int n, int classes, double *out);
void cpu_xent_backward(dl_device *d, const float *probs, const int32_t *labels, float *dlogits,
                       int n, int classes);
void cpu_sgd_update(dl_device *d, const dl_sgd_args *a, float *params, const float *grads,
                    float *velocity, size_t n);

/* Work below this many elements runs on one thread: waking the pool costs more. */
#define CPU_PARALLEL_MIN 32768

#endif
