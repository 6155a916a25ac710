/* test_ops: every op of the CPU device table against the naive direct
 * implementations in op_cases.c (table-driven; a CUDA build can run the same
 * cases with the CUDA table under test and the CPU as a second reference).
 *
 * Then a self-test: the same cases on copies of the CPU table with one op
 * subtly broken ("mutants"); each must be caught, or the cases have no teeth.
 *
 * usage: test_ops [-v] [-t THREADS] [FAMILY]   (FAMILY: gemm, conv, bn, ...) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_cases.h"

static dl_device *cpu;

static void m_conv_acc(dl_device *d, const dl_conv_desc *c, const float *x, const float *w,
                       const float *dy, float *dx, int acc, float *dw, float *db, float *ws)
{
    (void)acc; /* always overwrites dx */
    cpu->conv_backward(d, c, x, w, dy, dx, 0, dw, db, ws);
}

static void m_gemm_beta(dl_device *d, int ta, int tb, int m, int n, int k, float alpha,
                        const float *a, int lda, const float *b, int ldb, float beta, float *c,
                        int ldc)
{
    (void)beta; /* ignores beta: C is overwritten */
    cpu->gemm(d, ta, tb, m, n, k, alpha, a, lda, b, ldb, 0.0f, c, ldc);
}

static void m_sgd_nesterov(dl_device *d, const dl_sgd_args *a, float *p, const float *g,
                           float *v, size_t n)
{
    dl_sgd_args b = *a;
    b.nesterov = 0; /* classical momentum whatever was asked */
    cpu->sgd_update(d, &b, p, g, v, n);
}

static void m_bn_biased(dl_device *d, const dl_bn_desc *b, const float *x, const float *gamma,
                        const float *beta, float *y, float *mean, float *invstd, float *rm,
                        float *rv)
{
    float *old = malloc(sizeof(float) * b->c);
    memcpy(old, rv, sizeof(float) * b->c);
    cpu->bn_forward_train(d, b, x, gamma, beta, y, mean, invstd, rm, rv);
    double m = (double)b->n * b->hw;
    for (int ch = 0; ch < b->c; ch++) /* biased variance in the running statistic */
        rv[ch] = (float)((1.0 - b->momentum) * old[ch] +
                         (rv[ch] - (1.0 - b->momentum) * old[ch]) * (m - 1) / m);
    free(old);
}

static void m_xent_sum(dl_device *d, const float *probs, const int32_t *labels, float *dz, int n,
                       int k)
{
    cpu->xent_backward(d, probs, labels, dz, n, k);
    if (n > 1) /* gradient of the sum, not the mean */
        cpu->scale(d, dz, (size_t)n * k, (float)n);
}

static void m_maxpool_last(dl_device *d, const dl_pool_desc *p, const float *x, float *y,
                           int32_t *am)
{
    /* last maximum wins on ties (>= instead of >): same values, other argmax */
    cpu->maxpool_forward(d, p, x, y, am);
    size_t planes = (size_t)p->n * p->c, out = (size_t)p->oh * p->ow;
    for (size_t pl = 0; pl < planes; pl++)
        for (size_t o = 0; o < out; o++) {
            int oy = (int)(o / p->ow), ox = (int)(o % p->ow);
            const float *in = x + pl * p->h * p->w;
            for (int ky = 0; ky < p->k; ky++)
                for (int kx = 0; kx < p->k; kx++) {
                    int iy = oy * p->stride - p->pad + ky, ix = ox * p->stride - p->pad + kx;
                    if (iy >= 0 && iy < p->h && ix >= 0 && ix < p->w &&
                        in[iy * p->w + ix] == y[pl * out + o])
                        am[pl * out + o] = iy * p->w + ix;
                }
        }
}

typedef struct mutant {
    const char *name, *family;
    void (*apply)(dl_device *m);
} mutant;

static void a_conv(dl_device *m) { m->conv_backward = m_conv_acc; }
static void a_gemm(dl_device *m) { m->gemm = m_gemm_beta; }
static void a_sgd(dl_device *m) { m->sgd_update = m_sgd_nesterov; }
static void a_bn(dl_device *m) { m->bn_forward_train = m_bn_biased; }
static void a_xent(dl_device *m) { m->xent_backward = m_xent_sum; }
static void a_pool(dl_device *m) { m->maxpool_forward = m_maxpool_last; }

static const mutant mutants[] = {
    {"conv backward ignores acc", "conv", a_conv},
    {"gemm ignores beta", "gemm", a_gemm},
    {"sgd ignores nesterov", "sgd", a_sgd},
    {"bn running variance biased", "bn", a_bn},
    {"xent backward sums instead of averaging", "xent", a_xent},
    {"maxpool keeps the last of tied maxima", "maxpool", a_pool},
};

int main(int argc, char **argv)
{
    op_ctx c = {.tol_scale = 1.0, .seed = 20240611};
    int threads = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0)
            c.verbose = 1;
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else
            c.filter = argv[i];
    }
    cpu = c.dev = dl_device_cpu(threads);
    int failed = op_run_all(&c);

    int missed = 0;
    for (size_t i = 0; i < DL_ARRAY_LEN(mutants); i++) {
        if (c.filter && *c.filter && !strstr(mutants[i].family, c.filter))
            continue;
        dl_device mut = *cpu;
        mut.name = "cpu-mutant";
        mutants[i].apply(&mut);
        op_ctx mc = {.dev = &mut, .tol_scale = 1.0, .seed = c.seed, .quiet = 1,
                     .filter = mutants[i].family};
        op_run_all(&mc);
        missed += mc.failures == 0;
        printf("mutant %-42s %s (%d of %d checks failed)\n", mutants[i].name,
               mc.failures ? "caught" : "NOT CAUGHT", mc.failures, mc.checks);
    }
    printf("%s\n", failed || missed ? "FAILED" : "passed");
    return failed || missed ? 1 : 0;
}
