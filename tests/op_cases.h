/* op_cases.h: table-driven tests of the device op table (runtime/device.h).
 *
 * Every op of a device under test runs on the cases below and is compared
 * with a naive direct implementation written here (plain loops, sums in
 * double).  When a second, reference device is given (the CPU device when a
 * later test_cuda_ops checks the CUDA table) the same case also runs there and
 * the two devices are compared with each other as well.  All buffers go
 * through the device's alloc/upload/download, so the device may keep its
 * memory anywhere.
 *
 * Errors are relative per tensor: max|got - want| / max(max|want|, tiny).
 * Tolerances are chosen for fp32 against a double reference on the CPU;
 * op_ctx.tol_scale loosens them all at once for another device. */
#ifndef DL_TEST_OP_CASES_H
#define DL_TEST_OP_CASES_H

#include <stddef.h>
#include <stdint.h>

#include "device.h"

typedef struct op_ctx {
    dl_device *dev;     /* device under test */
    dl_device *ref;     /* optional second reference (e.g. the CPU); NULL: naive only */
    double tol_scale;   /* multiplies every tolerance (1 for the CPU) */
    const char *filter; /* run only families whose name contains this; NULL: all */
    int verbose;        /* print every check, not only failures */
    int quiet;          /* print nothing per check (self-tests that expect failures) */
    uint64_t seed;
    /* results */
    int checks, failures;
    double worst;         /* worst error / tolerance over all checks */
    char worst_what[192]; /* which check that was */
} op_ctx;

/* ---- case tables ---------------------------------------------------------- */

typedef struct op_gemm_case {
    int trans_a, trans_b, m, n, k;
    int pad_ld; /* leading dimensions this much larger than the minimum */
    float alpha, beta;
} op_gemm_case;

typedef struct op_conv_case {
    int n, cin, h, w, cout, k, stride, pad, bias;
    const char *note;
} op_conv_case;

typedef struct op_pool_case {
    int n, c, h, w, k, stride, pad;
    int ties; /* integer-valued input: many equal maxima (first one wins) */
    const char *note;
} op_pool_case;

typedef struct op_bn_case {
    int n, c, hw;
    float eps, momentum;
    float offset; /* added to x: a large mean tests the variance's stability */
    double tol;   /* 0: the default; larger for ill-conditioned cases */
} op_bn_case;

typedef struct op_xent_case {
    int n, classes;
    float scale; /* logits ~ scale * N(0,1); large values test stability */
} op_xent_case;

typedef struct op_sgd_case {
    size_t n;
    float lr, momentum, weight_decay;
    int nesterov, steps;
} op_sgd_case;

typedef struct op_elem_case {
    size_t n; /* elementwise ops: fill/copy/scale/relu/add */
    int c, hw; /* bias_add/bias_grad: n images of c x hw (n = count / (c*hw)) */
} op_elem_case;

extern const op_gemm_case op_gemm_cases[];
extern const int op_n_gemm_cases;
extern const op_conv_case op_conv_cases[];
extern const int op_n_conv_cases;
extern const op_pool_case op_pool_cases[];
extern const int op_n_pool_cases;
extern const op_bn_case op_bn_cases[];
extern const int op_n_bn_cases;
extern const op_xent_case op_xent_cases[];
extern const int op_n_xent_cases;
extern const op_sgd_case op_sgd_cases[];
extern const int op_n_sgd_cases;
extern const op_elem_case op_elem_cases[];
extern const int op_n_elem_cases;

/* ---- comparison helpers --------------------------------------------------- */

/* max|got - want| / max(max|want|, 1e-30); infinity where got holds a NaN or
 * infinity that want does not.  *at (optional) receives the worst index. */
double op_rel_err(const float *got, const float *want, size_t n, size_t *at);
/* One check: counts it, prints a line on failure (or always when verbose),
 * records the worst error/tolerance ratio.  Returns 1 when it passed. */
int op_check(op_ctx *c, const char *what, const float *got, const float *want, size_t n,
             double tol);
/* Exact comparison of integer arrays (argmax indices). */
int op_check_int(op_ctx *c, const char *what, const int32_t *got, const int32_t *want, size_t n);

/* ---- families -------------------------------------------------------------- */

typedef struct op_family {
    const char *name;
    void (*run)(op_ctx *c);
} op_family;

/* NULL-terminated: elementwise, bias, gemm, conv, maxpool, avgpool, bn, xent, sgd */
extern const op_family op_families[];

/* Run every family matching c->filter; prints a summary line and returns the
 * number of failed checks. */
int op_run_all(op_ctx *c);

#endif
