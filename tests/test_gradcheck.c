/* test_gradcheck: finite-difference gradient checks of every layer kind and
 * of a small residual network built with the dl_net builder.
 *
 * How the check is evaluated, and why
 * ------------------------------------
 * The runtime is fp32-only, so the forward pass cannot be evaluated in double.
 * Central differences of an fp32 function have two error sources: truncation,
 * O(eps^2 f'''), and rounding noise, about (ulp-level error of the outputs
 * that depend on the perturbed value) / eps.  Two choices keep both small:
 *
 *  - Layers are checked with the scalar loss L = sum(y * r) for a fixed random
 *    r, accumulated in double from the layer's fp32 output.  Outputs that do
 *    not depend on the perturbed element are recomputed bit for bit, so only
 *    the few dependent outputs contribute rounding noise.  eps = 1e-2 on
 *    values of order 1: conv, fc, pooling, add and relu are piecewise linear,
 *    so their truncation error is zero; batch norm and softmax are smooth on
 *    that scale (truncation ~1e-5 relative).  Rounding noise is then
 *    ~1e-7 * sqrt(#dependent outputs) / 2e-2 ~ 1e-5 relative.  Measured
 *    errors are <= ~1e-4 (they are printed), so the tolerance 1e-3 (relative
 *    to the largest gradient of the tensor) has margin, while the bugs this is
 *    for (a missed term, a wrong index, a dropped accumulation, a 1% scale
 *    error) give 1e-2 .. 1.
 *  - Kinks would break that: inputs to ReLU are kept >= 0.05 away from zero
 *    and max-pooling inputs are distinct values 0.05 apart, so +-eps never
 *    crosses one (2 * eps < 0.05).
 *
 *  - The whole network (conv-bn-relu, an identity and a projection residual
 *    block whose batch norms have the ReLU fused in (the fused layer is
 *    checked here, where kinks are gated, and against the naive reference in
 *    numerics_ops), gap, fc, softmax cross-entropy; run through dl_net_forward /
 *    dl_net_loss / dl_net_backward, loss = mean cross-entropy) has ReLU kinks
 *    everywhere: moving one early weight shifts every unit downstream, and
 *    with eps = 1e-2 most steps flip some ReLU, which makes the central
 *    difference wrong by up to ~1/(2 sqrt(units)) of the gradient.  So every
 *    step is gated on the ReLU activation pattern (downloaded after each
 *    forward): eps starts at 1e-2 and halves (down to 6.25e-4) until neither
 *    side flips a unit; with no flip the loss is smooth along the step.  If
 *    only one side still flips, the one-sided difference on the other side is
 *    used; if both do, the value is skipped (at most half of a tensor may be).
 *    Here the loss itself is fp32 (~2.4e-7 ulp), so the noise is
 *    ~2.4e-7 / (2 eps), up to ~2e-4 absolute at the smallest step.  Measured
 *    errors over 16 seeds are <= 3e-3 of each tensor's largest gradient;
 *    tolerance 1e-2.  Every parameter and every input value is checked.
 *
 * Stale values must not leak into gradients: in the layer checks an input
 * gradient the layer overwrites (acc 0) starts as NaN, and the network runs
 * forward + backward twice before its gradients are read, so a layer that
 * adds to a gradient it should overwrite shows.
 *
 * The test also proves it can fail: it runs the same checks on copies of the
 * CPU device with one backward op deliberately broken ("mutants") and
 * requires every mutant to be caught.
 *
 * usage: test_gradcheck [-v] [-s NETWORK_SEED] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "rng.h"

#define LAYER_EPS 1e-2
#define LAYER_TOL 1e-3
#define NET_EPS 1e-2
#define NET_ATTEMPTS 5 /* eps 1e-2, 5e-3, ..., 6.25e-4 */
#define NET_TOL 1e-2

static int verbose;

typedef struct gc_result {
    int checks, failures;
    double worst; /* error / tolerance */
    char worst_what[160];
    int quiet;
} gc_result;

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "test_gradcheck: out of memory\n");
        exit(2);
    }
    return p;
}

static void report(gc_result *res, const char *what, double err, double tol, const char *detail)
{
    int ok = err <= tol;
    res->checks++;
    if (!ok)
        res->failures++;
    if (err / tol > res->worst || res->checks == 1) {
        res->worst = err / tol;
        snprintf(res->worst_what, sizeof res->worst_what, "%s (err %.3g, tol %.3g)", what, err,
                 tol);
    }
    if (res->quiet)
        return;
    if (!ok)
        printf("FAIL %-48s err %.3g > tol %.3g  %s\n", what, err, tol, detail);
    else if (verbose)
        printf("ok   %-48s err %.3g (tol %.3g) %s\n", what, err, tol, detail);
}

/* ---- device helpers --------------------------------------------------------- */

static float dev_get1(dl_device *d, const float *p)
{
    float v;
    d->sync(d);
    d->download(d, &v, p, sizeof v);
    return v;
}

static void dev_set1(dl_device *d, float *p, float v) { d->upload(d, p, &v, sizeof v); }

static float *dev_get(dl_device *d, const float *p, size_t n)
{
    float *h = xmalloc(sizeof(float) * n);
    d->sync(d);
    d->download(d, h, p, sizeof(float) * n);
    return h;
}

/* ---- layer checks ------------------------------------------------------------ */

enum { INPUT_NORMAL, INPUT_AWAY_FROM_ZERO, INPUT_DISTINCT };

typedef struct layer_spec {
    const char *name;
    int c, h, w, n;
    int input_kind;
    /* adds layers to the net; returns the index of the layer under test */
    int (*build)(dl_net *net);
    size_t bias_count; /* trailing parameters reported as "bias" (0: none) */
} layer_spec;

static int b_conv_bias(dl_net *net) { dl_net_conv(net, 0, 4, 3, 2, 1, 1); return net->n_layers - 1; }
static int b_conv_nobias(dl_net *net) { dl_net_conv(net, 0, 3, 5, 1, 2, 0); return net->n_layers - 1; }
static int b_conv_1x1(dl_net *net) { dl_net_conv(net, 0, 5, 1, 2, 0, 0); return net->n_layers - 1; }
static int b_fc_bias(dl_net *net) { dl_net_fc(net, 0, 6, 1); return net->n_layers - 1; }
static int b_fc_nobias(dl_net *net) { dl_net_fc(net, 0, 4, 0); return net->n_layers - 1; }
static int b_maxpool3(dl_net *net) { dl_net_maxpool(net, 0, 3, 2, 1); return net->n_layers - 1; }
static int b_maxpool2(dl_net *net) { dl_net_maxpool(net, 0, 2, 2, 0); return net->n_layers - 1; }
static int b_avgpool3(dl_net *net) { dl_net_avgpool(net, 0, 3, 2, 1); return net->n_layers - 1; }
static int b_avgpool2(dl_net *net) { dl_net_avgpool(net, 0, 2, 2, 0); return net->n_layers - 1; }
static int b_gap(dl_net *net) { dl_net_gap(net, 0); return net->n_layers - 1; }
static int b_bn(dl_net *net) { dl_net_bn(net, 0); return net->n_layers - 1; }
static int b_relu(dl_net *net) { dl_net_relu(net, 0); return net->n_layers - 1; }
static int b_add(dl_net *net)
{
    int t = dl_net_conv(net, 0, 3, 3, 1, 1, 1);
    dl_net_add(net, t, 0);
    return net->n_layers - 1;
}
static int b_add_same(dl_net *net) { dl_net_add(net, 0, 0); return net->n_layers - 1; }

static const layer_spec layer_specs[] = {
    {"conv 3x3 s2 p1 +bias", 3, 7, 7, 2, INPUT_NORMAL, b_conv_bias, 4},
    {"conv 5x5 p2 no bias, 6x5 input", 2, 6, 5, 2, INPUT_NORMAL, b_conv_nobias, 0},
    {"conv 1x1 s2 no bias", 4, 7, 7, 2, INPUT_NORMAL, b_conv_1x1, 0},
    {"fc +bias", 3, 3, 3, 3, INPUT_NORMAL, b_fc_bias, 6},
    {"fc no bias", 5, 1, 1, 3, INPUT_NORMAL, b_fc_nobias, 0},
    {"maxpool 3x3 s2 p1", 3, 7, 7, 2, INPUT_DISTINCT, b_maxpool3, 0},
    {"maxpool 2x2 s2, odd input", 2, 7, 7, 2, INPUT_DISTINCT, b_maxpool2, 0},
    {"avgpool 3x3 s2 p1", 3, 7, 7, 2, INPUT_NORMAL, b_avgpool3, 0},
    {"avgpool 2x2 s2", 2, 6, 6, 2, INPUT_NORMAL, b_avgpool2, 0},
    {"gap 5x5", 3, 5, 5, 2, INPUT_NORMAL, b_gap, 0},
    {"bn train 3x4x4", 3, 4, 4, 4, INPUT_NORMAL, b_bn, 3},
    {"bn train after fc (1x1)", 5, 1, 1, 6, INPUT_NORMAL, b_bn, 5},
    {"relu", 3, 5, 5, 2, INPUT_AWAY_FROM_ZERO, b_relu, 0},
    {"add (conv(x), x)", 3, 4, 4, 2, INPUT_NORMAL, b_add, 0},
    {"add (x, x)", 2, 3, 3, 2, INPUT_NORMAL, b_add_same, 0},
};

static void fill_input(float *x, size_t n, int kind, dl_rng *r)
{
    if (kind == INPUT_DISTINCT) {
        for (size_t i = 0; i < n; i++)
            x[i] = (float)(0.05 * ((double)i - (double)n / 2));
        for (size_t i = n - 1; i > 0; i--) { /* shuffle */
            size_t j = (size_t)dl_rng_below(r, i + 1);
            float t = x[i];
            x[i] = x[j], x[j] = t;
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double v = dl_rng_normal(r);
        if (kind == INPUT_AWAY_FROM_ZERO)
            v = (v >= 0 ? 1 : -1) * (0.05 + fabs(v));
        x[i] = (float)v;
    }
}

/* L = sum(y * r) over the layer's output, after running only that layer. */
static double layer_loss(dl_net *net, dl_layer *l, const float *r, float *yhost)
{
    dl_device *d = net->dev;
    dl_tensor *y = dl_layer_output(l, net);
    size_t ny = (size_t)net->batch * dl_tensor_size(y);
    l->kind->forward(l, net, 1);
    d->sync(d);
    d->download(d, yhost, y->val, sizeof(float) * ny);
    double s = 0.0;
    for (size_t i = 0; i < ny; i++)
        s += (double)yhost[i] * r[i];
    return s;
}

/* Central differences of every element of `vals` (device, n floats)
 * against the analytic gradient `analytic` (host). */
static void compare_fd(gc_result *res, const char *what, dl_net *net, dl_layer *l, float *vals,
                       size_t n, const float *analytic, const float *r, float *yhost)
{
    dl_device *d = net->dev;
    double maxref = 0.0, maxdiff = 0.0;
    size_t at = 0;
    double num_at = 0.0;
    for (size_t i = 0; i < n; i++) {
        float v0 = dev_get1(d, vals + i);
        dev_set1(d, vals + i, (float)(v0 + LAYER_EPS));
        double lp = layer_loss(net, l, r, yhost);
        dev_set1(d, vals + i, (float)(v0 - LAYER_EPS));
        double lm = layer_loss(net, l, r, yhost);
        dev_set1(d, vals + i, v0);
        /* the actual step, as rounded to fp32 */
        double h = (double)(float)(v0 + LAYER_EPS) - (double)(float)(v0 - LAYER_EPS);
        double num = (lp - lm) / h;
        double diff = fabs(num - analytic[i]);
        if (!(diff <= maxdiff) && !(diff < maxdiff)) { /* also catches NaN */
            maxdiff = isnan(diff) ? INFINITY : diff;
            at = i;
            num_at = num;
        }
        maxref = fmax(maxref, fabs(num));
    }
    layer_loss(net, l, r, yhost); /* leave the forward state as it was */
    double err = maxdiff / fmax(maxref, 1e-12);
    char detail[128];
    snprintf(detail, sizeof detail, "[%zu values; worst at %zu: analytic %.6g numeric %.6g]", n,
             at, n ? (double)analytic[at] : 0.0, num_at);
    report(res, what, err, LAYER_TOL, detail);
}

static void check_layer(gc_result *res, dl_device *dev, const layer_spec *s, uint64_t seed)
{
    dl_net net;
    const int classes = 3;
    if (dl_net_init(&net, s->c, s->h, s->w, classes) != DL_OK) {
        printf("FAIL %s: dl_net_init: %s\n", s->name, dl_error_message());
        res->failures++;
        return;
    }
    int li = s->build(&net);
    dl_net_fc(&net, net.n_tensors - 1, classes, 1); /* head so the net finalises */
    if (net.build_status != DL_OK || dl_net_finalize(&net, dev, s->n, seed) != DL_OK) {
        printf("FAIL %s: build: %s\n", s->name, dl_error_message());
        res->failures++;
        return;
    }
    dl_layer *l = &net.layers[li];
    dl_tensor *in = &net.tensors[net.input];
    size_t nin = (size_t)s->n * dl_tensor_size(in);
    float *in_grad = dev->alloc(dev, sizeof(float) * (nin + 1), "input gradient");
    in->grad = in_grad;

    dl_rng rng;
    dl_rng_seed(&rng, seed, 77, 0);
    float *x = xmalloc(sizeof(float) * nin);
    fill_input(x, nin, s->input_kind, &rng);
    int32_t *labels = xmalloc(sizeof(int32_t) * s->n);
    memset(labels, 0, sizeof(int32_t) * s->n);
    dl_net_set_batch(&net, x, labels, s->n);
    /* parameters of order 1 (batch norm's gamma too, both signs) */
    float *p = xmalloc(sizeof(float) * (net.n_params + 1));
    for (size_t i = 0; i < net.n_params; i++)
        p[i] = (float)(2.0 * dl_rng_uniform(&rng) - 1.0);
    dev->upload(dev, net.params, p, sizeof(float) * net.n_params);
    for (int i = 0; i < li; i++) /* layers feeding the one under test */
        net.layers[i].kind->forward(&net.layers[i], &net, 1);

    dl_tensor *y = dl_layer_output(l, &net);
    size_t ny = (size_t)s->n * dl_tensor_size(y);
    float *r = xmalloc(sizeof(float) * ny), *yhost = xmalloc(sizeof(float) * ny);
    for (size_t i = 0; i < ny; i++)
        r[i] = (float)dl_rng_normal(&rng);

    /* analytic: dL/dy = r, then the layer's backward alone */
    layer_loss(&net, l, r, yhost);
    dev->upload(dev, y->grad, r, sizeof(float) * ny);
    dev->fill(dev, net.grads, net.n_params, 0.0f);
    /* an input gradient the layer overwrites (acc 0) starts as garbage, one
     * it adds to starts at zero */
    for (int j = l->n_in - 1; j >= 0; j--) {
        dl_tensor *t = dl_layer_input(l, &net, j);
        dev->fill(dev, t->grad, (size_t)s->n * dl_tensor_size(t), l->acc[j] ? 0.0f : NAN);
    }
    l->kind->backward(l, &net);

    char what[160];
    for (int j = 0; j < l->n_in; j++) {
        if (j == 1 && l->in[1] == l->in[0])
            break; /* the same tensor twice: its gradient holds both */
        dl_tensor *t = dl_layer_input(l, &net, j);
        size_t nt = (size_t)s->n * dl_tensor_size(t);
        float *g = dev_get(dev, t->grad, nt);
        snprintf(what, sizeof what, "%s: d/d input%d", s->name, j);
        compare_fd(res, what, &net, l, t->val, nt, g, r, yhost);
        free(g);
    }
    if (l->n_params) {
        float *g = dev_get(dev, net.grads + l->param_off, l->n_params);
        size_t nw = l->n_params - s->bias_count;
        float *pp = net.params + l->param_off;
        snprintf(what, sizeof what, "%s: d/d %s", s->name,
                 l->kind == &dl_layer_bn ? "gamma" : "weight");
        compare_fd(res, what, &net, l, pp, nw, g, r, yhost);
        if (s->bias_count) {
            snprintf(what, sizeof what, "%s: d/d %s", s->name,
                     l->kind == &dl_layer_bn ? "beta" : "bias");
            compare_fd(res, what, &net, l, pp + nw, s->bias_count, g + nw, r, yhost);
        }
        free(g);
    }
    in->grad = NULL;
    dev->free(dev, in_grad);
    dl_net_free(&net);
    free(x), free(labels), free(p), free(r), free(yhost);
}

/* ---- softmax cross-entropy ------------------------------------------------- */

static double xent_mean(dl_device *d, const float *z, const int32_t *lab, float *probs,
                        float *loss, int n, int k, float *host)
{
    d->xent_forward(d, z, lab, probs, loss, n, k);
    d->sync(d);
    d->download(d, host, loss, sizeof(float) * n);
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += host[i];
    return s / n;
}

static void check_xent(gc_result *res, dl_device *d, uint64_t seed)
{
    const int n = 5, k = 7;
    size_t nz = (size_t)n * k;
    dl_rng rng;
    dl_rng_seed(&rng, seed, 78, 0);
    float *zh = xmalloc(sizeof(float) * nz), *host = xmalloc(sizeof(float) * nz);
    int32_t lab[5];
    for (size_t i = 0; i < nz; i++)
        zh[i] = (float)(2.0 * dl_rng_normal(&rng));
    for (int i = 0; i < n; i++)
        lab[i] = (int32_t)dl_rng_below(&rng, k);
    float *z = d->alloc(d, sizeof(float) * nz, "logits");
    float *probs = d->alloc(d, sizeof(float) * nz, "probs");
    float *dz = d->alloc(d, sizeof(float) * nz, "dlogits");
    float *loss = d->alloc(d, sizeof(float) * n, "loss");
    int32_t *dlab = d->alloc(d, sizeof lab, "labels");
    d->upload(d, z, zh, sizeof(float) * nz);
    d->upload(d, dlab, lab, sizeof lab);
    xent_mean(d, z, dlab, probs, loss, n, k, host);
    d->xent_backward(d, probs, dlab, dz, n, k);
    float *g = dev_get(d, dz, nz);
    double maxref = 0.0, maxdiff = 0.0;
    for (size_t i = 0; i < nz; i++) {
        float v0 = zh[i];
        dev_set1(d, z + i, (float)(v0 + LAYER_EPS));
        double lp = xent_mean(d, z, dlab, probs, loss, n, k, host);
        dev_set1(d, z + i, (float)(v0 - LAYER_EPS));
        double lm = xent_mean(d, z, dlab, probs, loss, n, k, host);
        dev_set1(d, z + i, v0);
        double h = (double)(float)(v0 + LAYER_EPS) - (double)(float)(v0 - LAYER_EPS);
        double num = (lp - lm) / h;
        maxref = fmax(maxref, fabs(num));
        double diff = fabs(num - g[i]);
        maxdiff = isnan(diff) ? INFINITY : fmax(maxdiff, diff);
    }
    report(res, "softmax cross-entropy (mean): d/d logits", maxdiff / fmax(maxref, 1e-12),
           LAYER_TOL, "");
    free(g), free(zh), free(host);
    d->free(d, z), d->free(d, probs), d->free(d, dz), d->free(d, loss), d->free(d, dlab);
}

/* ---- whole network ------------------------------------------------------------ */

static void build_tiny_resnet(dl_net *net)
{
    int x = dl_net_relu(net, dl_net_bn(net, dl_net_conv(net, net->input, 6, 3, 1, 1, 0)));
    /* identity block (batch norm + ReLU as one fused layer from here on) */
    int y = dl_net_bn_relu(net, dl_net_conv(net, x, 6, 3, 1, 1, 0));
    y = dl_net_bn(net, dl_net_conv(net, y, 6, 3, 1, 1, 0));
    x = dl_net_relu(net, dl_net_add(net, y, x));
    /* downsampling block with a projection shortcut */
    y = dl_net_bn_relu(net, dl_net_conv(net, x, 8, 3, 2, 1, 0));
    y = dl_net_bn(net, dl_net_conv(net, y, 8, 3, 1, 1, 0));
    int s = dl_net_bn(net, dl_net_conv(net, x, 8, 1, 2, 0, 0));
    x = dl_net_relu(net, dl_net_add(net, y, s));
    dl_net_fc(net, dl_net_gap(net, x), net->classes, 1);
}

static double net_loss(dl_net *net)
{
    double sum;
    int correct;
    dl_net_forward(net, 1);
    dl_net_loss(net, &sum, &correct);
    return sum / net->batch;
}

/* The ReLU activation pattern of the whole network (1 where y > 0).  Along a
 * segment on which it does not change, the network is smooth (batch norm,
 * softmax) or linear in every value, so central differences are exact up to
 * O(eps^2) and rounding. */
typedef struct gc_net_stats {
    size_t values, smaller, onesided, skipped;
} gc_net_stats;

typedef struct relu_mask {
    size_t n;
    unsigned char *bits;
    float *tmp;
} relu_mask;

/* a ReLU layer, or a batch norm with the ReLU fused in */
static int ends_in_relu(const dl_layer *l)
{
    return l->kind == &dl_layer_relu || (l->kind == &dl_layer_bn && l->cfg.bn.relu);
}

static size_t relu_units(const dl_net *net)
{
    size_t n = 0;
    for (int i = 0; i < net->n_layers; i++)
        if (ends_in_relu(&net->layers[i]))
            n += (size_t)net->batch * dl_tensor_size(&net->tensors[net->layers[i].out]);
    return n;
}

static void relu_mask_take(dl_net *net, relu_mask *m)
{
    size_t at = 0;
    net->dev->sync(net->dev);
    for (int i = 0; i < net->n_layers; i++) {
        if (!ends_in_relu(&net->layers[i]))
            continue;
        const dl_tensor *y = &net->tensors[net->layers[i].out];
        size_t ny = (size_t)net->batch * dl_tensor_size(y);
        net->dev->download(net->dev, m->tmp, y->val, sizeof(float) * ny);
        for (size_t j = 0; j < ny; j++)
            m->bits[at + j] = m->tmp[j] > 0.0f;
        at += ny;
    }
}

static size_t relu_mask_flips(dl_net *net, const relu_mask *base, relu_mask *scratch)
{
    relu_mask_take(net, scratch);
    size_t flips = 0;
    for (size_t j = 0; j < base->n; j++)
        flips += base->bits[j] != scratch->bits[j];
    return flips;
}

/* Element-wise central differences of the network loss over `n` device
 * floats; a step that flips any ReLU is shrunk (eps/4, up to 4 times) and the
 * element skipped if it still flips.  Error as for the layers: max|num - g|
 * relative to the tensor's largest gradient. */
static void check_net_values(gc_result *res, const char *what, dl_net *net, float *vals,
                             const float *grad, size_t n, double l0, const relu_mask *base,
                             relu_mask *scratch, gc_net_stats *st)
{
    dl_device *d = net->dev;
    double maxref = 0.0, maxdiff = 0.0, wa = 0.0, wn = 0.0;
    size_t skipped = 0, smaller = 0, onesided = 0, at = 0;
    for (size_t i = 0; i < n; i++) {
        float v0 = dev_get1(d, vals + i);
        double eps = NET_EPS, num = NAN;
        for (int attempt = 0; attempt < NET_ATTEMPTS; attempt++, eps /= 2) {
            float vp = (float)(v0 + eps), vm = (float)(v0 - eps);
            dev_set1(d, vals + i, vp);
            double lp = net_loss(net);
            size_t fp = relu_mask_flips(net, base, scratch);
            dev_set1(d, vals + i, vm);
            double lm = net_loss(net);
            size_t fm = relu_mask_flips(net, base, scratch);
            if (fp == 0 && fm == 0) {
                num = (lp - lm) / ((double)vp - (double)vm);
                smaller += attempt > 0;
                break;
            }
            if (attempt == NET_ATTEMPTS - 1 && (fp == 0 || fm == 0)) {
                /* a kink on one side only: the one-sided difference on the
                 * other side (error O(eps f2) instead of O(eps^2 f3)) */
                num = fp == 0 ? (lp - l0) / ((double)vp - v0) : (l0 - lm) / ((double)v0 - vm);
                onesided++;
            }
        }
        dev_set1(d, vals + i, v0);
        maxref = fmax(maxref, fabs((double)grad[i]));
        if (isnan(num)) {
            skipped++;
            continue;
        }
        maxref = fmax(maxref, fabs(num));
        double diff = fabs(num - grad[i]);
        if (isnan(diff))
            diff = INFINITY;
        if (diff > maxdiff || i == 0)
            maxdiff = diff, wa = grad[i], wn = num, at = i;
    }
    net_loss(net); /* restore the forward state */
    double err = maxdiff / fmax(maxref, 1e-12);
    /* a check that skipped most values would have no teeth */
    if (2 * skipped > n)
        err = INFINITY;
    st->values += n, st->smaller += smaller, st->onesided += onesided, st->skipped += skipped;
    char detail[220];
    snprintf(detail, sizeof detail,
             "[%zu values: %zu smaller step, %zu one-sided, %zu skipped; worst at %zu: analytic "
             "%.6g numeric %.6g]",
             n, smaller, onesided, skipped, at, wa, wn);
    report(res, what, err, NET_TOL, detail);
}

static void check_network(gc_result *res, dl_device *dev, uint64_t seed)
{
    const int n = 4, c = 3, classes = 5;
    const int hw = 4; /* few ReLU units: fewer kinks to step around */
    dl_net net;
    dl_net_init(&net, c, hw, hw, classes);
    build_tiny_resnet(&net);
    if (net.build_status != DL_OK || dl_net_finalize(&net, dev, n, seed) != DL_OK) {
        printf("FAIL network: build: %s\n", dl_error_message());
        res->failures++;
        return;
    }
    size_t nin = (size_t)n * c * hw * hw;
    float *in_grad = dev->alloc(dev, sizeof(float) * (nin + 1), "input gradient");
    net.tensors[net.input].grad = in_grad;
    dl_rng rng;
    dl_rng_seed(&rng, seed, 79, 0);
    float *x = xmalloc(sizeof(float) * nin);
    for (size_t i = 0; i < nin; i++)
        x[i] = (float)dl_rng_normal(&rng);
    int32_t labels[4];
    for (int i = 0; i < n; i++)
        labels[i] = (int32_t)dl_rng_below(&rng, classes);
    dl_net_set_batch(&net, x, labels, n);
    /* batch norm with gamma/beta away from 1/0, so their gradients matter */
    float *p = dev_get(dev, net.params, net.n_params);
    for (int i = 0; i < net.n_layers; i++) {
        dl_layer *l = &net.layers[i];
        if (l->kind == &dl_layer_bn)
            for (size_t j = 0; j < l->n_params; j++)
                p[l->param_off + j] = (float)(j < l->n_params / 2 ? 0.5 + dl_rng_uniform(&rng)
                                                                   : 0.3 * dl_rng_normal(&rng));
        if (l->kind == &dl_layer_fc)
            for (size_t j = 0; j < l->n_params; j++)
                p[l->param_off + j] = (float)dl_rng_normal(&rng);
    }
    dev->upload(dev, net.params, p, sizeof(float) * net.n_params);

    /* twice: the second backward finds the first one's activation gradients
     * in the arena, which layers that overwrite (acc 0) must not add to */
    for (int rep = 0; rep < 2; rep++) {
        net_loss(&net);
        dl_net_backward(&net);
    }
    float *g = dev_get(dev, net.grads, net.n_params);
    float *gx = dev_get(dev, in_grad, nin);
    relu_mask base = {.n = relu_units(&net)}, scratch = {.n = base.n};
    base.bits = xmalloc(base.n), scratch.bits = xmalloc(base.n);
    base.tmp = scratch.tmp = xmalloc(sizeof(float) * base.n);
    relu_mask_take(&net, &base);
    char what[160];
    gc_net_stats st = {0};
    double l0 = net_loss(&net);
    for (int i = 0; i < net.n_layers; i++) {
        dl_layer *l = &net.layers[i];
        if (!l->n_params)
            continue;
        snprintf(what, sizeof what, "network: %s (%s) params", l->name, l->kind->name);
        check_net_values(res, what, &net, net.params + l->param_off, g + l->param_off,
                         l->n_params, l0, &base, &scratch, &st);
    }
    check_net_values(res, "network: input", &net, net.tensors[net.input].val, gx, nin, l0,
                     &base, &scratch, &st);
    if (!res->quiet)
        printf("network: %zu values; %zu needed a smaller step, %zu one-sided, %zu skipped "
               "(ReLU pattern changed on both sides)\n",
               st.values, st.smaller, st.onesided, st.skipped);
    free(base.bits), free(scratch.bits), free(base.tmp);
    net.tensors[net.input].grad = NULL;
    dev->free(dev, in_grad);
    dl_net_free(&net);
    free(x), free(p), free(g), free(gx);
}

/* ---- mutants: broken copies of the CPU device that the checks must catch ------ */

static dl_device *cpu;

static void mut_conv_dw_scaled(dl_device *d, const dl_conv_desc *c, const float *x,
                               const float *w, const float *dy, float *dx, int acc, float *dw,
                               float *db, float *ws)
{
    size_t nw = (size_t)c->cout * c->cin * c->k * c->k;
    float *before = xmalloc(sizeof(float) * nw);
    memcpy(before, dw, sizeof(float) * nw);
    cpu->conv_backward(d, c, x, w, dy, dx, acc, dw, db, ws);
    for (size_t i = 0; i < nw; i++) /* a 1% error in the weight gradient */
        dw[i] = before[i] + 1.01f * (dw[i] - before[i]);
    free(before);
}

static void mut_conv_ignores_acc(dl_device *d, const dl_conv_desc *c, const float *x,
                                 const float *w, const float *dy, float *dx, int acc, float *dw,
                                 float *db, float *ws)
{
    (void)acc; /* overwrites a gradient another layer already wrote */
    cpu->conv_backward(d, c, x, w, dy, dx, 0, dw, db, ws);
}

/* the classic mistake: dx = gamma * invstd * dy, forgetting that the batch
 * statistics depend on x */
static void mut_bn_no_stat_terms(dl_device *d, const dl_bn_desc *b, const float *x,
                                 const float *gamma, const float *beta, const float *mean,
                                 const float *invstd, const float *dy, float *dx, int acc,
                                 float *dgamma, float *dbeta)
{
    cpu->bn_backward(d, b, x, gamma, beta, mean, invstd, dy, dx, acc, dgamma, dbeta);
    for (int i = 0; i < b->n; i++)
        for (int ch = 0; ch < b->c; ch++)
            for (int j = 0; j < b->hw; j++) {
                size_t at = ((size_t)i * b->c + ch) * b->hw + j;
                float g = gamma[ch] * invstd[ch] * dy[at];
                dx[at] = acc ? dx[at] + g : g; /* (acc: approximate, unused here) */
            }
}

static void mut_relu_passes_all(dl_device *d, const float *y, const float *dy, float *dx,
                                size_t n, int acc)
{
    (void)y;
    cpu->copy(d, dx, dy, n, acc);
}

static void mut_maxpool_off_by_one(dl_device *d, const dl_pool_desc *p, const float *dy,
                                   const int32_t *argmax, float *dx, int acc)
{
    size_t no = (size_t)p->n * p->c * p->oh * p->ow, plane = (size_t)p->h * p->w;
    int32_t *am = xmalloc(sizeof(int32_t) * no);
    for (size_t i = 0; i < no; i++)
        am[i] = (int32_t)(((size_t)argmax[i] + (i % 7 == 0)) % plane);
    cpu->maxpool_backward(d, p, dy, am, dx, acc);
    free(am);
}

static void mut_avgpool_excl_pad(dl_device *d, const dl_pool_desc *p, const float *dy, float *dx,
                                 int acc)
{
    /* gradient scaled as if padding were excluded near the border (approx.: +20% everywhere) */
    size_t no = (size_t)p->n * p->c * p->oh * p->ow;
    float *g = xmalloc(sizeof(float) * no);
    for (size_t i = 0; i < no; i++)
        g[i] = 1.2f * dy[i];
    cpu->avgpool_backward(d, p, g, dx, acc);
    free(g);
}

static void mut_xent_no_mean(dl_device *d, const float *probs, const int32_t *labels,
                             float *dlogits, int n, int classes)
{
    cpu->xent_backward(d, probs, labels, dlogits, n, classes);
    cpu->scale(d, dlogits, (size_t)n * classes, (float)n);
}

static void mut_add_copy_ignores_acc(dl_device *d, float *dst, const float *src, size_t n,
                                     int acc)
{
    (void)acc;
    cpu->copy(d, dst, src, n, 0);
}

typedef struct mutant {
    const char *name;
    void (*apply)(dl_device *m);
    int run_layers, run_net; /* which checks to run on it */
    const char *layer_filter; /* run only layer specs whose name starts with this */
} mutant;

static void ap_conv_dw(dl_device *m) { m->conv_backward = mut_conv_dw_scaled; }
static void ap_conv_acc(dl_device *m) { m->conv_backward = mut_conv_ignores_acc; }
static void ap_bn(dl_device *m) { m->bn_backward = mut_bn_no_stat_terms; }
static void ap_relu(dl_device *m) { m->relu_backward = mut_relu_passes_all; }
static void ap_maxpool(dl_device *m) { m->maxpool_backward = mut_maxpool_off_by_one; }
static void ap_avgpool(dl_device *m) { m->avgpool_backward = mut_avgpool_excl_pad; }
static void ap_xent(dl_device *m) { m->xent_backward = mut_xent_no_mean; }
static void ap_copy(dl_device *m) { m->copy = mut_add_copy_ignores_acc; }

static const mutant mutants[] = {
    {"conv backward: dw 1% too large", ap_conv_dw, 1, 0, "conv"},
    {"conv backward: ignores acc (residual input)", ap_conv_acc, 0, 1, NULL},
    {"bn backward: drops batch-statistics terms", ap_bn, 1, 1, "bn"},
    {"relu backward: passes every gradient", ap_relu, 1, 1, "relu"},
    {"maxpool backward: some gradients one pixel off", ap_maxpool, 1, 0, "maxpool"},
    {"avgpool backward: wrong divisor", ap_avgpool, 1, 1, "avgpool"},
    {"xent backward: sum instead of mean", ap_xent, 1, 1, "softmax"},
    {"copy (add backward): ignores acc", ap_copy, 1, 0, "add (x, x)"},
};

static void run_layer_checks(gc_result *res, dl_device *dev, const char *prefix)
{
    for (size_t i = 0; i < DL_ARRAY_LEN(layer_specs); i++)
        if (!prefix || strncmp(layer_specs[i].name, prefix, strlen(prefix)) == 0)
            check_layer(res, dev, &layer_specs[i], 1000 + i);
    if (!prefix || strncmp("softmax", prefix, strlen(prefix)) == 0)
        check_xent(res, dev, 2000);
}

int main(int argc, char **argv)
{
    uint64_t net_seed = 3000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0)
            verbose = 1;
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            net_seed = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: test_gradcheck [-v] [-s NETWORK_SEED]\n");
            return 2;
        }
    }
    cpu = dl_device_cpu(2);
    double t0 = dl_now();

    gc_result res = {0};
    run_layer_checks(&res, cpu, NULL);
    printf("layers:  %d checks, %d failed; worst error/tolerance %.3g: %s\n", res.checks,
           res.failures, res.worst, res.worst_what);
    gc_result netres = {0};
    check_network(&netres, cpu, net_seed);
    printf("network: %d checks, %d failed; worst error/tolerance %.3g: %s\n", netres.checks,
           netres.failures, netres.worst, netres.worst_what);

    /* the checks must be able to fail */
    int missed = 0;
    for (size_t m = 0; m < DL_ARRAY_LEN(mutants); m++) {
        dl_device mut = *cpu;
        mut.name = "cpu-mutant";
        mutants[m].apply(&mut);
        gc_result mr = {.quiet = 1};
        if (mutants[m].run_layers)
            run_layer_checks(&mr, &mut, mutants[m].layer_filter);
        if (mutants[m].run_net)
            check_network(&mr, &mut, 3000);
        int caught = mr.failures > 0;
        missed += !caught;
        printf("mutant %-48s %s (%d of %d checks failed, worst error/tolerance %.3g)\n",
               mutants[m].name, caught ? "caught" : "NOT CAUGHT", mr.failures, mr.checks,
               mr.worst);
    }
    printf("%.1f s\n", dl_now() - t0);
    int bad = res.failures + netres.failures + missed;
    printf("%s\n", bad ? "FAILED" : "passed");
    return bad ? 1 : 0;
}
