/* test_cuda_ops: the CUDA device table against the CPU reference.
 *
 *  1. Every op case of op_cases.c (forward and backward, acc = 0 / 1, NaN
 *     pre-filled outputs, argmax indices) with the CUDA table under test,
 *     checked against the naive double-precision references and against the
 *     CPU table run on the same inputs.
 *  2. A whole-network step: lenet (1x28x28) and resnet20 (3x16x16) built on
 *     both devices from the same seed; one training forward, backward and
 *     SGD step (momentum, Nesterov, weight decay), then an evaluation forward.
 *     Compared per layer: loss, softmax, gradients, the SGD update, running
 *     statistics, and the evaluation loss.
 *  3. Determinism: the resnet20 step run twice on the GPU must give
 *     bit-identical gradients (no atomics in any reduction).
 *
 * Tolerances (fp32; relative to the largest magnitude of each tensor, see
 * op_rel_err):
 *  - op cases: op_cases.c's own tolerances times TOL_SCALE = 2.  The CUDA
 *    ops use strict fp32 (cuBLAS default math, no TF32) and the same formulas
 *    as the CPU; only the summation order of GEMMs and reductions differs
 *    (reductions are in double), plus FMA contraction in elementwise
 *    formulas, each worth ~1e-7 per rounding.  Exact ops (fill, copy, scale,
 *    relu, add, max pooling forward, argmax) stay exact: 0 * 2 = 0.
 *  - whole network: NET_TOL = 1e-3 per layer tensor.  Rounding differences of
 *    ~1e-6 grow through ~20 conv/bn layers to ~1e-5; a ReLU input or a max
 *    pooling tie within that distance of flipping moves a gradient locally.
 *    Wiring bugs (a wrong index, a dropped accumulation, a missed term) give
 *    errors of 1e-2 .. 1.  Losses: NET_TOL_LOSS = 1e-4.
 *
 * Without a usable GPU (no driver, no device) it prints
 * "SKIPPED: no CUDA GPU (<reason>)" and exits 77, which CTest reports as
 * skipped (SKIP_RETURN_CODE, tests/cuda.cmake).  With DLTRAIN_REQUIRE_GPU=1
 * in the environment a missing GPU is a failure instead (for GPU runners).
 *
 * Reduced precision (-p tf32 | bf16, tests/cuda.cmake runs the gemm and conv
 * families so): only GEMMs change, so the op tolerances are scaled to what
 * rounding the inputs costs.  TF32 keeps 10 mantissa bits (unit roundoff
 * 2^-11 ~ 4.9e-4), bf16 8 bits (2^-9 ~ 2e-3); each product carries two such
 * roundings and a K-term sum of random-sign products grows like sqrt(K)
 * while the largest output grows alike, so the error relative to the largest
 * output stays a few roundoffs: -s 100 (1e-3) for tf32, -s 1000 (1e-2) for
 * bf16.  A wrong index or a dropped term still gives errors of 1e-1 .. 1.
 *
 * cuDNN convolutions (-c cudnn, tests/cuda.cmake runs the conv family and
 * the whole-network step so, in fp32 and tf32, when the build has cuDNN):
 * the same cases and tolerances as the GEMM path, against the same naive
 * and CPU references; the resnet20 determinism check then covers cuDNN's
 * algorithm choice (deterministic algorithms only).
 *
 * -p auto (DL_CUDA_TF32_CONV, the launcher's default on CUDA): the conv
 * family runs at the tf32 scale, and the gemm family at the fp32 scale 2,
 * which a TF32 GEMM (error ~1e-3) fails: proof that fully connected layers
 * stay strict fp32 while convolutions use TF32.
 *
 * Convolution chunks (-k FLOATS, tests/cuda.cmake): a small workspace per
 * chunk makes these small batches take the several-chunk path (and a last,
 * shorter chunk) that full-size models take with the default 2^25 floats.
 *
 * usage: test_cuda_ops [-v] [-g GPU] [-s TOL_SCALE] [-p fp32|tf32|bf16|auto] [-c gemm|cudnn]
 *                      [-k FLOATS]
 *                      [FAMILY | net]
 *   (FAMILY: elementwise, bias, gemm, conv, maxpool, avgpool, bn, xent, sgd) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../models/models.h"
#include "device_cuda.h"
#include "gpu_skip.h"
#include "op_cases.h"
#include "optim.h"
#include "rng.h"

#define TOL_SCALE 2.0
#define NET_TOL 1e-3
#define NET_TOL_LOSS 1e-4
#define NET_SEED 20240611u

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test_cuda_ops: out of memory\n");
        exit(2);
    }
    return p;
}

static float *download(dl_device *d, const float *src, size_t n)
{
    float *h = xmalloc(sizeof(float) * (n ? n : 1));
    d->sync(d);
    if (n)
        d->download(d, h, src, sizeof(float) * n);
    return h;
}

/* ---- whole-network step ------------------------------------------------------ */

typedef struct net_result {
    double loss, loss_eval;
    float *params0, *params1, *grads, *buffers, *probs, *update;
} net_result;

static void net_result_free(net_result *r)
{
    free(r->params0), free(r->params1), free(r->grads), free(r->buffers), free(r->probs);
    free(r->update);
    memset(r, 0, sizeof *r);
}

/* Build `m` on `dev`, run one training step on the batch and an evaluation
 * forward.  Leaves the net built (the caller reads its layer table). */
static int net_step(dl_net *net, dl_device *dev, const dl_model *m, int c, int h, int w,
                    int classes, int batch, const float *images, const int32_t *labels,
                    net_result *r)
{
    memset(r, 0, sizeof *r);
    if (dl_model_build(m, net, c, h, w, classes) != DL_OK ||
        dl_net_finalize(net, dev, batch, NET_SEED) != DL_OK) {
        printf("FAIL %s on %s: %s\n", m->name, dev->name, dl_error_message());
        return -1;
    }
    dl_sgd opt;
    if (dl_sgd_init(&opt, dev, net->n_params, 0.9f, 5e-4f, 1) != DL_OK) {
        printf("FAIL %s on %s: %s\n", m->name, dev->name, dl_error_message());
        dl_net_free(net);
        return -1;
    }
    int correct;
    r->params0 = download(dev, net->params, net->n_params);
    dl_net_set_batch(net, images, labels, batch);
    dl_net_forward(net, 1);
    dl_net_loss(net, &r->loss, &correct);
    r->probs = download(dev, net->probs, (size_t)batch * classes);
    dl_net_backward(net);
    r->grads = download(dev, net->grads, net->n_params);
    r->buffers = download(dev, net->buffers, net->n_buffers);
    dl_sgd_step(&opt, net->params, net->grads, 0.1f);
    r->params1 = download(dev, net->params, net->n_params);
    r->update = xmalloc(sizeof(float) * (net->n_params ? net->n_params : 1));
    for (size_t i = 0; i < net->n_params; i++)
        r->update[i] = r->params1[i] - r->params0[i];
    dl_net_forward(net, 0);
    dl_net_loss(net, &r->loss_eval, &correct);
    dl_sgd_free(&opt);
    return 0;
}

static void check_scalar(op_ctx *c, const char *what, double got, double want, double tol)
{
    float g = (float)got, w = (float)want;
    op_check(c, what, &g, &w, 1, tol / (c->tol_scale > 0 ? c->tol_scale : 1.0));
}

/* op_check with the net tolerance as given (op_check multiplies by tol_scale). */
static void check_net(op_ctx *c, const char *what, const float *got, const float *want, size_t n,
                      double tol)
{
    op_check(c, what, got, want, n, tol / (c->tol_scale > 0 ? c->tol_scale : 1.0));
}

static void net_case(op_ctx *c, dl_device *gpu, dl_device *cpu, const char *model, int ch,
                     int h, int w, int classes, int batch)
{
    const dl_model *m = dl_model_find(model);
    if (!m) {
        printf("FAIL model %s not found\n", model);
        c->failures++;
        return;
    }
    size_t per = (size_t)ch * h * w;
    float *images = xmalloc(sizeof(float) * per * batch);
    int32_t *labels = xmalloc(sizeof(int32_t) * batch);
    dl_rng r;
    dl_rng_seed(&r, NET_SEED, 0x6e6574, (uint64_t)h);
    for (size_t i = 0; i < per * batch; i++)
        images[i] = (float)dl_rng_normal(&r);
    for (int i = 0; i < batch; i++)
        labels[i] = (int32_t)dl_rng_below(&r, (uint64_t)classes);

    static dl_net ngpu, ncpu; /* large: keep them off the stack */
    net_result rg, rc;
    int before = c->failures;
    if (net_step(&ncpu, cpu, m, ch, h, w, classes, batch, images, labels, &rc) != 0) {
        c->failures++;
        free(images), free(labels);
        return;
    }
    if (net_step(&ngpu, gpu, m, ch, h, w, classes, batch, images, labels, &rg) != 0) {
        c->failures++;
        net_result_free(&rc);
        dl_net_free(&ncpu);
        free(images), free(labels);
        return;
    }
    char what[200];
    snprintf(what, sizeof what, "net %s: initial parameters identical", model);
    check_net(c, what, rg.params0, rc.params0, ncpu.n_params, 0.0);
    snprintf(what, sizeof what, "net %s: training loss (sum over %d)", model, batch);
    check_scalar(c, what, rg.loss, rc.loss, NET_TOL_LOSS);
    snprintf(what, sizeof what, "net %s: softmax", model);
    check_net(c, what, rg.probs, rc.probs, (size_t)batch * classes, NET_TOL_LOSS);
    for (int i = 0; i < ncpu.n_layers; i++) {
        const dl_layer *l = &ncpu.layers[i];
        if (l->n_params) {
            snprintf(what, sizeof what, "net %s: %s gradient", model, l->name);
            check_net(c, what, rg.grads + l->param_off, rc.grads + l->param_off, l->n_params,
                      NET_TOL);
            snprintf(what, sizeof what, "net %s: %s SGD update", model, l->name);
            check_net(c, what, rg.update + l->param_off, rc.update + l->param_off, l->n_params,
                      NET_TOL);
        }
        if (l->n_buffers) {
            snprintf(what, sizeof what, "net %s: %s running statistics", model, l->name);
            check_net(c, what, rg.buffers + l->buffer_off, rc.buffers + l->buffer_off,
                      l->n_buffers, NET_TOL);
        }
    }
    snprintf(what, sizeof what, "net %s: parameters after the step", model);
    check_net(c, what, rg.params1, rc.params1, ncpu.n_params, NET_TOL);
    snprintf(what, sizeof what, "net %s: evaluation loss after the step", model);
    check_scalar(c, what, rg.loss_eval, rc.loss_eval, NET_TOL_LOSS);

    /* determinism: the same step again on the GPU, bit for bit */
    if (strcmp(model, "resnet20") == 0) {
        net_result r2;
        static dl_net again;
        if (net_step(&again, gpu, m, ch, h, w, classes, batch, images, labels, &r2) == 0) {
            snprintf(what, sizeof what, "net %s: GPU gradients bit-identical run to run", model);
            check_net(c, what, r2.grads, rg.grads, ngpu.n_params, 0.0);
            snprintf(what, sizeof what, "net %s: GPU running statistics bit-identical", model);
            check_net(c, what, r2.buffers, rg.buffers, ngpu.n_buffers, 0.0);
            net_result_free(&r2);
            dl_net_free(&again);
        } else {
            c->failures++;
        }
    }
    printf("net %-8s (batch %d, %dx%dx%d, %zu parameters): %s, mean loss %.6f (cpu %.6f)\n",
           model, batch, ch, h, w, ncpu.n_params,
           c->failures == before ? "ok" : "FAILED", rg.loss / batch, rc.loss / batch);
    net_result_free(&rg), net_result_free(&rc);
    dl_net_free(&ngpu), dl_net_free(&ncpu);
    free(images), free(labels);
}

/* ---- main ------------------------------------------------------------------------ */

static int usage(const char *what, const char *arg)
{
    fprintf(stderr, "test_cuda_ops: %s '%s'\nusage: test_cuda_ops [-v] [-g GPU] [-s TOL_SCALE] "
                    "[-p fp32|tf32|bf16|auto] [-c gemm|cudnn] [-k FLOATS] [FAMILY | net]\n"
                    "  FAMILY (or part of its name):", what, arg);
    for (const op_family *f = op_families; f->name; f++)
        fprintf(stderr, " %s", f->name);
    fputc('\n', stderr);
    return 2;
}

/* Whether the filter selects anything: "net", or part of a family's name
 * (op_run_all's match); one that selects nothing would pass with no check. */
static int filter_selects(const char *filter)
{
    if (strcmp(filter, "net") == 0)
        return 1;
    for (const op_family *f = op_families; f->name; f++)
        if (*filter && strstr(f->name, filter))
            return 1;
    return 0;
}

/* Whether `name` is one of the space-separated words of `list`. */
static int name_in(const char *name, const char *list)
{
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        size_t word = strcspn(p, " ");
        if (len && word == len && strncmp(p, name, len) == 0)
            return 1;
        p += word;
        p += *p == ' ';
    }
    return 0;
}

int main(int argc, char **argv)
{
    op_ctx c = {.tol_scale = TOL_SCALE, .seed = 20240611};
    int gpu_index = 0;
    const char *filter = NULL, *precision = "fp32", *conv = "gemm";
    size_t chunk_floats = 0; /* 0: the device's default */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0)
            c.verbose = 1;
        else if (strcmp(argv[i], "-g") == 0 && i + 1 < argc)
            gpu_index = atoi(argv[++i]);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            c.tol_scale = atof(argv[++i]);
        else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc)
            precision = argv[++i];
        else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            conv = argv[++i];
        else if (strcmp(argv[i], "-k") == 0 && i + 1 < argc) {
            char *end;
            chunk_floats = (size_t)strtoull(argv[++i], &end, 10);
            if (end == argv[i] || *end)
                return usage("-k takes a number of floats, not", argv[i]);
        }
        else if (argv[i][0] == '-')
            return usage("unknown option", argv[i]);
        else
            filter = argv[i];
    }
    /* Checked before the device is opened, so that a wrong command line
     * fails (exit 2) on a machine without a GPU too, where every GPU test
     * would otherwise skip and hide it (scripts/gpu_check.sh DRY_RUN=1). */
    if (!name_in(precision, "fp32 tf32 bf16 auto"))
        return usage("unknown precision", precision);
    if (!name_in(conv, "gemm cudnn"))
        return usage("unknown convolution path", conv);
    if (filter && !filter_selects(filter))
        return usage("no op family or net matches", filter);

    char why[512] = "";
    dl_device *gpu = dl_device_cuda(gpu_index, why, sizeof why);
    if (!gpu)
        return dl_test_no_gpu(why);
    dl_cuda_precision prec = strcmp(precision, "tf32") == 0   ? DL_CUDA_TF32
                             : strcmp(precision, "bf16") == 0 ? DL_CUDA_BF16
                             : strcmp(precision, "auto") == 0 ? DL_CUDA_TF32_CONV
                                                              : DL_CUDA_FP32;
    if (dl_device_cuda_set_precision(gpu, prec) != DL_OK) {
        printf("FAIL: precision '%s': %s\n", precision, dl_error_message());
        dl_device_cuda_destroy(gpu);
        return 1;
    }
    dl_cuda_conv conv_kind = strcmp(conv, "cudnn") == 0 ? DL_CUDA_CONV_CUDNN : DL_CUDA_CONV_GEMM;
    if (dl_device_cuda_set_conv(gpu, conv_kind) != DL_OK) {
        printf("FAIL: convolutions by '%s': %s\n", conv, dl_error_message());
        dl_device_cuda_destroy(gpu);
        return 1;
    }
    dl_device_cuda_set_conv_chunk(gpu, chunk_floats);
    dl_device *cpu = dl_device_cpu(2);
    printf("device under test: %s, GEMMs in %s, convolutions by %s; reference: %s; tolerance "
           "scale %g; convolution chunk workspace %zu floats (0 = default)\n", gpu->name,
           precision, conv, cpu->name, c.tol_scale, chunk_floats);
    c.dev = gpu;
    c.ref = cpu;

    if (!filter || strcmp(filter, "net") != 0) {
        c.filter = filter;
        op_run_all(&c);
    }
    if (!filter || strcmp(filter, "net") == 0) {
        int before = c.failures, checks = c.checks;
        net_case(&c, gpu, cpu, "lenet", 1, 28, 28, 10, 8);
        net_case(&c, gpu, cpu, "resnet20", 3, 16, 16, 10, 8);
        printf("%-12s %4d checks, %d failed\n", "net", c.checks - checks, c.failures - before);
    }
    printf("%s: %d checks, %d failed; worst error/tolerance %.3g: %s\n", gpu->name, c.checks,
           c.failures, c.worst, c.worst_what);
    dl_device_cuda_destroy(gpu);
    return c.failures ? 1 : 0;
}
