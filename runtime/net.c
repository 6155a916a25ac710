/* net.c: network builder, memory layout and the forward/backward passes. */
#include "net.h"
#include "grad_matrix.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers for layer files -------------------------------------------- */

dl_tensor *dl_layer_input(const dl_layer *l, dl_net *net, int i) { return &net->tensors[l->in[i]]; }
dl_tensor *dl_layer_output(const dl_layer *l, dl_net *net) { return &net->tensors[l->out]; }
float *dl_layer_params(const dl_layer *l, dl_net *net) { return net->params + l->param_off; }
float *dl_layer_grads(const dl_layer *l, dl_net *net) { return net->grads + l->param_off; }
float *dl_layer_buffers(const dl_layer *l, dl_net *net) { return net->buffers + l->buffer_off; }

void dl_init_he_normal(float *w, size_t n, int fan_in, dl_rng *rng)
{
    double std = sqrt(2.0 / (double)(fan_in > 0 ? fan_in : 1));
    for (size_t i = 0; i < n; i++)
        w[i] = (float)(std * dl_rng_normal(rng));
}

/* ---- building ------------------------------------------------------------ */

dl_status dl_net_init(dl_net *net, int c, int h, int w, int classes)
{
    memset(net, 0, sizeof *net);
    if (c < 1 || h < 1 || w < 1 || classes < 2)
        return net->build_status = dl_fail(DL_ERR_ARG, "invalid input shape %dx%dx%d or class count %d",
                                           c, h, w, classes);
    net->in_c = c, net->in_h = h, net->in_w = w, net->classes = classes;
    net->tensors[0] = (dl_tensor){.c = c, .h = h, .w = w};
    net->n_tensors = 1;
    net->input = 0;
    net->logits = -1;
    return DL_OK;
}

void dl_net_set_scope(dl_net *net, const char *scope)
{
    snprintf(net->scope, sizeof net->scope, "%s", scope ? scope : "");
}

/* Append a layer reading tensors a (and b), infer its output, return its id. */
static int add_layer(dl_net *net, const dl_layer_kind *kind, int a, int b, const dl_layer *cfg)
{
    if (net->build_status != DL_OK)
        return -1;
    if (a < 0 || a >= net->n_tensors || b >= net->n_tensors) {
        net->build_status = dl_fail(DL_ERR_ARG, "layer %s: invalid input tensor", kind->name);
        return -1;
    }
    if (net->n_layers == DL_NET_MAX_LAYERS) {
        net->build_status = dl_fail(DL_ERR_ARG, "network has more than %d layers", DL_NET_MAX_LAYERS);
        return -1;
    }
    dl_layer *l = &net->layers[net->n_layers];
    *l = *cfg;
    l->kind = kind;
    l->step = net->n_steps;
    snprintf(l->name, sizeof l->name, "%s%s%d", net->scope, kind->name, l->step);
    l->in[0] = a, l->in[1] = b, l->n_in = b >= 0 ? 2 : 1;
    l->out = net->n_tensors;
    dl_tensor *y = &net->tensors[l->out];
    dl_status st = kind->infer(l, &net->tensors[a], b >= 0 ? &net->tensors[b] : NULL, y);
    if (st == DL_OK && (y->c < 1 || y->h < 1 || y->w < 1))
        st = dl_fail(DL_ERR_ARG, "layer %s: empty output", l->name);
    if (st != DL_OK) {
        net->build_status = st;
        return -1;
    }
    net->n_layers++;
    net->n_steps += l->kind == &dl_layer_bn && l->cfg.bn.relu ? 2 : 1;
    net->logits = l->out;
    return net->n_tensors++;
}

int dl_net_conv(dl_net *net, int x, int cout, int k, int stride, int pad, int bias)
{
    dl_layer cfg = {.cfg.conv = {cout, k, stride, pad, bias}};
    return add_layer(net, &dl_layer_conv, x, -1, &cfg);
}

int dl_net_fc(dl_net *net, int x, int out, int bias)
{
    dl_layer cfg = {.cfg.fc = {out, bias}};
    return add_layer(net, &dl_layer_fc, x, -1, &cfg);
}

int dl_net_maxpool(dl_net *net, int x, int k, int stride, int pad)
{
    dl_layer cfg = {.cfg.pool = {k, stride, pad}};
    return add_layer(net, &dl_layer_maxpool, x, -1, &cfg);
}

int dl_net_avgpool(dl_net *net, int x, int k, int stride, int pad)
{
    dl_layer cfg = {.cfg.pool = {k, stride, pad}};
    return add_layer(net, &dl_layer_avgpool, x, -1, &cfg);
}

int dl_net_gap(dl_net *net, int x)
{
    dl_layer cfg = {0};
    return add_layer(net, &dl_layer_gap, x, -1, &cfg);
}

int dl_net_bn(dl_net *net, int x)
{
    dl_layer cfg = {.cfg.bn = {1e-5f, 0.1f, 0}}; /* PyTorch defaults */
    return add_layer(net, &dl_layer_bn, x, -1, &cfg);
}

int dl_net_bn_relu(dl_net *net, int x)
{
    dl_layer cfg = {.cfg.bn = {1e-5f, 0.1f, 1}};
    return add_layer(net, &dl_layer_bn, x, -1, &cfg);
}

int dl_net_relu(dl_net *net, int x)
{
    dl_layer cfg = {0};
    return add_layer(net, &dl_layer_relu, x, -1, &cfg);
}

int dl_net_add(dl_net *net, int a, int b)
{
    dl_layer cfg = {0};
    if (b < 0) {
        net->build_status = net->build_status ? net->build_status
                                              : dl_fail(DL_ERR_ARG, "add: invalid input tensor");
        return -1;
    }
    return add_layer(net, &dl_layer_add, a, b, &cfg);
}

/* ---- layout and allocation ----------------------------------------------- */

static size_t align_params(size_t off)
{
    return (off + DL_NET_PARAM_ALIGN - 1) / DL_NET_PARAM_ALIGN * DL_NET_PARAM_ALIGN;
}

/* Offsets in reverse layer order: backward finishes the last layer first.
 * Each layer with parameters starts on DL_NET_PARAM_ALIGN floats. */
static void layout_params(dl_net *net)
{
    net->n_params = net->n_trainable = net->n_buffers = 0;
    for (int i = net->n_layers - 1; i >= 0; i--) {
        dl_layer *l = &net->layers[i];
        if (l->n_params)
            net->n_params = align_params(net->n_params);
        l->param_off = net->n_params;
        net->n_params += l->n_params;
        net->n_trainable += l->n_params;
        l->buffer_off = net->n_buffers;
        net->n_buffers += l->n_buffers;
    }
}

void dl_net_layout(dl_net *net) { layout_params(net); }

/* Calls fn on each gap [lo, hi) of padding, in buffer order. */
static void for_each_gap(const dl_net *net, void (*fn)(void *user, size_t lo, size_t hi),
                         void *user)
{
    size_t end = 0;
    for (int i = net->n_layers - 1; i >= 0; i--) {
        const dl_layer *l = &net->layers[i];
        if (!l->n_params)
            continue;
        if (l->param_off > end)
            fn(user, end, l->param_off);
        end = l->param_off + l->n_params;
    }
}

typedef struct gap_fill {
    dl_net *net;
    float *flat;
} gap_fill;

static void fill_gap(void *user, size_t lo, size_t hi)
{
    gap_fill *g = user;
    g->net->dev->fill(g->net->dev, g->flat + lo, hi - lo, 0.0f);
}

void dl_net_zero_padding(dl_net *net, float *flat)
{
    gap_fill g = {net, flat};
    for_each_gap(net, fill_gap, &g);
}

typedef struct gap_check {
    const float *flat;
    long long first;
} gap_check;

static void check_gap(void *user, size_t lo, size_t hi)
{
    gap_check *g = user;
    for (size_t i = lo; i < hi && g->first < 0; i++)
        if (g->flat[i] != 0.0f)
            g->first = (long long)i;
}

long long dl_net_padding_nonzero(const dl_net *net, const float *flat)
{
    gap_check g = {flat, -1};
    for_each_gap(net, check_gap, &g);
    return g.first;
}

/* conv and fc weights: rows = output channels, cols = the rest (the bias,
 * when there is one, follows the weights). */
static int weight_matrix(const dl_layer *l, dl_grad_matrix *m)
{
    size_t rows, bias;
    if (l->kind == &dl_layer_conv)
        rows = (size_t)l->cfg.conv.cout, bias = l->cfg.conv.bias ? rows : 0;
    else if (l->kind == &dl_layer_fc)
        rows = (size_t)l->cfg.fc.out, bias = l->cfg.fc.bias ? rows : 0;
    else
        return 0;
    if (rows == 0 || l->n_params <= bias)
        return 0;
    *m = (dl_grad_matrix){.off = l->param_off, .rows = rows, .cols = (l->n_params - bias) / rows};
    return 1;
}

int dl_net_grad_matrices(const dl_net *net, dl_grad_matrix *out, int max)
{
    int count = 0;
    for (int i = 0; i < net->n_layers; i++) {
        dl_grad_matrix m;
        if (!weight_matrix(&net->layers[i], &m))
            continue;
        if (count < max) { /* insertion by offset: a few hundred layers at most */
            int j = count;
            for (; j > 0 && out[j - 1].off > m.off; j--)
                out[j] = out[j - 1];
            out[j] = m;
        }
        count++;
    }
    return count;
}

dl_grad_matrix *dl_net_grad_matrices_new(const dl_net *net, int *count)
{
    int n = dl_net_grad_matrices(net, NULL, 0);
    dl_grad_matrix *m = dl_alloc(((size_t)n + 1) * sizeof *m, "the gradient matrices");
    *count = m ? dl_net_grad_matrices(net, m, n) : 0;
    return m;
}

/* The first reader of a tensor in backward order overwrites its gradient;
 * later readers add to it. */
static void mark_gradient_accumulation(dl_net *net)
{
    char seen[DL_NET_MAX_LAYERS + 1] = {0};
    for (int i = net->n_layers - 1; i >= 0; i--) {
        dl_layer *l = &net->layers[i];
        for (int j = 0; j < l->n_in; j++) {
            l->acc[j] = seen[l->in[j]];
            seen[l->in[j]] = 1;
        }
    }
}

#define ALIGN64(x) (((x) + 63) & ~(size_t)63)

/* Walk the arena once to size it (base == NULL) and once to hand out slices. */
static size_t carve_arena(dl_net *net, char *base)
{
    size_t off = 0, batch = (size_t)net->max_batch;
#define TAKE(ptr, bytes)                                                                         \
    do {                                                                                         \
        size_t b_ = (bytes);                                                                     \
        if (base)                                                                                \
            (ptr) = (void *)(base + off);                                                        \
        off += ALIGN64(b_);                                                                      \
    } while (0)
    for (int t = 0; t < net->n_tensors; t++) {
        dl_tensor *x = &net->tensors[t];
        size_t bytes = sizeof(float) * batch * dl_tensor_size(x);
        if (t == net->input)
            continue; /* the input lives in batch_bufs */
        TAKE(x->val, bytes);
        TAKE(x->grad, bytes);
    }
    for (int i = 0; i < net->n_layers; i++) {
        dl_layer *l = &net->layers[i];
        if (l->saved_per_sample || l->saved_fixed)
            TAKE(l->saved, l->saved_per_sample * batch + l->saved_fixed);
    }
    TAKE(net->workspace, sizeof(float) * net->ws_floats);
    TAKE(net->probs, sizeof(float) * batch * net->classes);
    TAKE(net->loss, sizeof(float) * batch);
#undef TAKE
    return off;
}

static dl_status init_params(dl_net *net, uint64_t seed)
{
    float *p = dl_alloc_zero(sizeof(float) * (net->n_params + 1), "initial parameters");
    float *b = dl_alloc_zero(sizeof(float) * (net->n_buffers + 1), "initial buffers");
    if (!p || !b) {
        free(p), free(b);
        return DL_ERR_OOM;
    }
    for (int i = 0; i < net->n_layers; i++) {
        dl_layer *l = &net->layers[i];
        dl_rng rng;
        /* per layer: adding (or fusing) a layer moves no other */
        dl_rng_seed(&rng, seed, 0x1417, (uint64_t)l->step);
        if (l->kind->init)
            l->kind->init(l, net, p + l->param_off, b + l->buffer_off, &rng);
    }
    net->dev->upload(net->dev, net->params, p, sizeof(float) * net->n_params);
    net->dev->upload(net->dev, net->buffers, b, sizeof(float) * net->n_buffers);
    free(p), free(b);
    return DL_OK;
}

dl_status dl_net_finalize(dl_net *net, dl_device *dev, int max_batch, uint64_t seed)
{
    if (net->build_status != DL_OK)
        return net->build_status;
    if (net->n_layers == 0 || net->tensors[net->logits].c != net->classes ||
        dl_tensor_size(&net->tensors[net->logits]) != (size_t)net->classes)
        return dl_fail(DL_ERR_ARG, "model output is not a vector of %d classes", net->classes);
    if (max_batch < 1)
        return dl_fail(DL_ERR_ARG, "batch size must be at least 1");
    net->dev = dev;
    net->max_batch = net->batch = max_batch;
    layout_params(net);
    mark_gradient_accumulation(net);
    net->ws_floats = 1;
    for (int i = 0; i < net->n_layers; i++) {
        dl_layer *l = &net->layers[i];
        if (l->kind->workspace)
            net->ws_floats = DL_MAX(net->ws_floats, l->kind->workspace(l, net, max_batch));
    }
    net->arena_bytes = carve_arena(net, NULL);
    size_t pbytes = sizeof(float) * (net->n_params + 1);
    net->params = dev->alloc(dev, pbytes, "parameters");
    net->grads = dev->alloc(dev, pbytes, "gradients");
    net->buffers = dev->alloc(dev, sizeof(float) * (net->n_buffers + 1), "running statistics");
    net->arena = dev->alloc(dev, net->arena_bytes, "activations (reduce --batch)");
    net->labels_off = ALIGN64(sizeof(float) * (size_t)max_batch *
                              dl_tensor_size(&net->tensors[net->input]));
    for (int b = 0; b < 2; b++)
        net->batch_bufs[b] = dev->alloc(dev, net->labels_off + sizeof(int32_t) * (size_t)max_batch,
                                        "input batch (reduce --batch)");
    if (dev->reserve_batch && net->batch_bufs[0] && net->batch_bufs[1])
        dev->reserve_batch(dev, net->labels_off + sizeof(int32_t) * (size_t)max_batch);
    net->stats = dev->alloc(dev, 2 * DL_NET_LOSS_SLOTS * sizeof(double), "loss statistics");
    if (!net->params || !net->grads || !net->buffers || !net->arena || !net->stats ||
        !net->batch_bufs[0] || !net->batch_bufs[1]) {
        dl_net_free(net);
        return DL_ERR_OOM;
    }
    carve_arena(net, net->arena);
    net->batch_cur = 0;
    net->tensors[net->input].val = net->batch_bufs[0];
    net->labels = (int32_t *)((char *)net->batch_bufs[0] + net->labels_off);
    return init_params(net, seed);
}

void dl_net_free(dl_net *net)
{
    if (!net->dev)
        return;
    net->dev->free(net->dev, net->params);
    net->dev->free(net->dev, net->grads);
    net->dev->free(net->dev, net->buffers);
    net->dev->free(net->dev, net->arena);
    for (int b = 0; b < 2; b++)
        net->dev->free(net->dev, net->batch_bufs[b]), net->batch_bufs[b] = NULL;
    net->dev->free(net->dev, net->stats);
    net->stats = NULL;
    net->params = net->grads = net->buffers = NULL;
    net->arena = NULL;
    net->dev = NULL;
}

/* ---- running ------------------------------------------------------------- */

void dl_net_set_batch(dl_net *net, const float *images, const int32_t *labels, int n)
{
    if (n < 1 || n > net->max_batch) { /* a caller's bug: the arena would overflow */
        fprintf(stderr, "dltrain: internal error: batch of %d, network sized for 1..%d\n", n,
                net->max_batch);
        abort();
    }
    net->batch = n;
    net->batch_cur ^= 1;
    char *buf = net->batch_bufs[net->batch_cur];
    size_t per = dl_tensor_size(&net->tensors[net->input]);
    net->tensors[net->input].val = (float *)buf;
    net->labels = (int32_t *)(buf + net->labels_off);
    dl_host_part parts[2] = {{images, sizeof(float) * per * (size_t)n, 0},
                             {labels, sizeof(int32_t) * (size_t)n, net->labels_off}};
    net->dev->upload_batch(net->dev, net->batch_cur, buf, parts, 2);
}

static void trace_layer_begin(dl_net *net, const dl_layer *l, const char *cat)
{
    const dl_tensor *y = &net->tensors[l->out];
    dl_trace_begin_args(net->trace, DL_TRACK_COMPUTE, cat, l->name,
                        "\"kind\":\"%s\",\"out\":\"%dx%dx%dx%d\",\"params\":%zu", l->kind->name,
                        net->batch, y->c, y->h, y->w, l->n_params);
}

static void trace_layer_end(dl_net *net)
{
    net->dev->sync(net->dev); /* on a GPU, the layer's kernels have run only now */
    dl_trace_end(net->trace, DL_TRACK_COMPUTE);
}

void dl_net_forward(dl_net *net, int training)
{
    int traced = training && net->trace;
    for (int i = 0; i < net->n_layers; i++) {
        if (traced)
            trace_layer_begin(net, &net->layers[i], "forward");
        net->layers[i].kind->forward(&net->layers[i], net, training);
        if (traced)
            trace_layer_end(net);
    }
    net->dev->xent_forward(net->dev, net->tensors[net->logits].val, net->labels, net->probs,
                           net->loss, net->batch, net->classes);
}

/* Reduced on the device (xent_stats) into the slot's own 2 doubles, so the
 * next step's statistics cannot overwrite them before they are read, and
 * copied back asynchronously: 16 bytes, not the batch's losses,
 * probabilities and labels. */
void dl_net_loss_start(dl_net *net, int slot)
{
    double *stats = net->stats + 2 * (slot & 1);
    net->dev->xent_stats(net->dev, net->probs, net->loss, net->labels, net->batch, net->classes,
                         stats);
    net->dev->read_start(net->dev, slot & 1, stats, 2 * sizeof(double));
}

void dl_net_loss_finish(dl_net *net, int slot, double *loss_sum, int *correct)
{
    double stats[2];
    net->dev->read_finish(net->dev, slot & 1, stats, net->stats + 2 * (slot & 1), sizeof stats);
    *loss_sum = stats[0], *correct = (int)stats[1];
}

void dl_net_loss(dl_net *net, double *loss_sum, int *correct)
{
    dl_net_loss_start(net, 0);
    dl_net_loss_finish(net, 0, loss_sum, correct);
}

void dl_net_backward(dl_net *net)
{
    dl_device *dev = net->dev;
    dev->fill(dev, net->grads, net->n_params, 0.0f);
    dev->xent_backward(dev, net->probs, net->labels, net->tensors[net->logits].grad, net->batch,
                       net->classes);
    for (int i = net->n_layers - 1; i >= 0; i--) {
        dl_layer *l = &net->layers[i];
        if (net->trace)
            trace_layer_begin(net, l, "backward");
        l->kind->backward(l, net);
        if (net->trace)
            trace_layer_end(net);
        if (l->n_params && net->on_grads_ready)
            net->on_grads_ready(net->on_grads_ready_user, l->param_off + l->n_params);
    }
}

double dl_net_macs_per_sample(const dl_net *net)
{
    double macs = 0.0;
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].kind->macs)
            macs += net->layers[i].kind->macs(&net->layers[i], net);
    return macs;
}

void dl_net_print(const dl_net *net, void *stream)
{
    FILE *f = stream;
    fprintf(f, "  %-28s %-16s %12s\n", "layer", "output", "parameters");
    for (int i = 0; i < net->n_layers; i++) {
        const dl_layer *l = &net->layers[i];
        const dl_tensor *y = &net->tensors[l->out];
        char shape[32];
        snprintf(shape, sizeof shape, "%dx%dx%d", y->c, y->h, y->w);
        fprintf(f, "  %-28s %-16s %12zu\n", l->name, shape, l->n_params);
    }
    fprintf(f, "  total %zu parameters (%.2f MB), %.1f MMAC forward per sample\n",
            net->n_trainable, 4e-6 * (double)net->n_trainable, 1e-6 * dl_net_macs_per_sample(net));
}
