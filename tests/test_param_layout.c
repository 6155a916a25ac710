/* test_param_layout.c: the flat parameter layout of every model in models/.
 *
 * Every layer's parameters start on DL_NET_PARAM_ALIGN floats (256 bytes);
 * the slices lie in reverse layer order without overlap inside n_params;
 * n_trainable is the layers' sum.  The padding between layers stays exactly
 * zero in parameters, gradients and momentum through training steps with
 * momentum and weight decay (plain and Nesterov), and the two padding
 * helpers find and clear a value planted there.  dl_net_grad_matrices gives
 * each conv and fc layer's weights as one matrix. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../models/models.h"
#include "../runtime/grad_matrix.h"
#include "../runtime/optim.h"

static int failures;

#include "expect.h"

typedef struct shape {
    const char *model;
    int c, h, w, classes;
} shape;

/* small inputs each model takes (resnet50 at 64x64 keeps the CPU steps short) */
static const shape shapes[] = {
    {"lenet", 1, 28, 28, 10}, {"resnet20", 3, 32, 32, 10}, {"resnet50", 3, 64, 64, 1000}};

static const shape *shape_of(const char *model)
{
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (strcmp(shapes[i].model, model) == 0)
            return &shapes[i];
    return NULL;
}

/* Offsets aligned, slices disjoint and in reverse layer order; returns the
 * padding floats. */
static size_t check_offsets(const char *model, const dl_net *net)
{
    size_t end = 0, sum = 0;
    for (int i = net->n_layers - 1; i >= 0; i--) {
        const dl_layer *l = &net->layers[i];
        if (!l->n_params)
            continue;
        EXPECT(l->param_off % DL_NET_PARAM_ALIGN == 0, "%s %s: parameters at float %zu", model,
              l->name, l->param_off);
        EXPECT(l->param_off >= end && l->param_off - end < DL_NET_PARAM_ALIGN,
              "%s %s: at %zu after the last slice's end %zu", model, l->name, l->param_off, end);
        end = l->param_off + l->n_params;
        sum += l->n_params;
    }
    EXPECT(end == net->n_params, "%s: slices end at %zu, n_params %zu", model, end, net->n_params);
    EXPECT(sum == net->n_trainable, "%s: layers hold %zu, n_trainable %zu", model, sum,
          net->n_trainable);
    return net->n_params - net->n_trainable;
}

static void random_batch(dl_net *net, const shape *s, int batch, unsigned seed)
{
    size_t per = (size_t)s->c * s->h * s->w;
    float *x = malloc(sizeof(float) * per * batch);
    int32_t *y = malloc(sizeof(int32_t) * batch);
    srand(seed);
    for (size_t i = 0; i < per * batch; i++)
        x[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < batch; i++)
        y[i] = rand() % s->classes;
    dl_net_set_batch(net, x, y, batch);
    free(x), free(y);
}

/* CPU device: the flat buffers are host memory. */
static void check_padding_zero(const char *model, const char *what, const dl_net *net,
                               const float *flat, int step)
{
    long long at = dl_net_padding_nonzero(net, flat);
    EXPECT(at < 0, "%s step %d: %s padding float %lld is %g", model, step, what, at,
          at >= 0 ? (double)flat[at] : 0.0);
}

static void train_steps(const char *model, dl_net *net, const shape *s, int nesterov)
{
    dl_sgd opt;
    if (dl_sgd_init(&opt, net->dev, net->n_params, 0.9f, 5e-2f, nesterov) != DL_OK) {
        EXPECT(0, "%s: dl_sgd_init: %s", model, dl_error_message());
        return;
    }
    for (int step = 1; step <= 3; step++) {
        double loss;
        int correct;
        random_batch(net, s, 2, (unsigned)step);
        dl_net_forward(net, 1);
        dl_net_loss(net, &loss, &correct);
        dl_net_backward(net);
        dl_sgd_step(&opt, net->params, net->grads, 0.1f);
        check_padding_zero(model, "gradient", net, net->grads, step);
        check_padding_zero(model, "parameter", net, net->params, step);
        check_padding_zero(model, "momentum", net, opt.velocity, step);
    }
    dl_sgd_free(&opt);
}

/* dl_net_grad_matrices: one matrix per conv and fc layer, its weights
 * (the layer's slice less the bias) as out-channels x the rest, in
 * ascending offset. */
static void check_grad_matrices(const char *model, const dl_net *net)
{
    int count = 0, weighted = 0;
    dl_grad_matrix *m = dl_net_grad_matrices_new(net, &count);
    for (int i = 0; m && i < net->n_layers; i++) {
        const dl_layer *l = &net->layers[i];
        int conv = l->kind == &dl_layer_conv, fc = l->kind == &dl_layer_fc;
        if (!conv && !fc)
            continue;
        weighted++;
        size_t rows = conv ? (size_t)l->cfg.conv.cout : (size_t)l->cfg.fc.out;
        int bias = conv ? l->cfg.conv.bias : l->cfg.fc.bias;
        int found = 0;
        for (int j = 0; j < count; j++)
            found += m[j].off == l->param_off && m[j].rows == rows &&
                     m[j].rows * m[j].cols == l->n_params - (bias ? rows : 0);
        EXPECT(found == 1, "%s %s: no matrix of %zu rows over its weights", model, l->name, rows);
    }
    EXPECT(m && count == weighted, "%s: %d matrices for %d conv and fc layers", model, count,
          weighted);
    for (int j = 1; m && j < count; j++)
        EXPECT(m[j - 1].off + m[j - 1].rows * m[j - 1].cols <= m[j].off,
              "%s: matrices %d and %d out of order or overlapping", model, j - 1, j);
    free(m);
}

/* The helpers themselves: a planted value is found, then cleared. */
static void check_helpers(const char *model, dl_net *net)
{
    for (int i = net->n_layers - 1; i >= 0; i--) {
        const dl_layer *l = &net->layers[i];
        if (!l->n_params || l->param_off == 0 || net->params[l->param_off - 1] != 0.0f)
            continue;
        size_t gap = l->param_off - 1; /* the last padding float before this layer */
        net->grads[gap] = 1.0f;
        EXPECT(dl_net_padding_nonzero(net, net->grads) == (long long)gap,
              "%s: a value planted at %zu not found", model, gap);
        dl_net_zero_padding(net, net->grads);
        EXPECT(net->grads[gap] == 0.0f && dl_net_padding_nonzero(net, net->grads) < 0,
              "%s: dl_net_zero_padding left %zu", model, gap);
        return;
    }
}

int main(void)
{
    dl_device *cpu = dl_device_cpu(1);
    size_t padded_models = 0;
    for (const dl_model *m = dl_models; m->name; m++) {
        const shape *s = shape_of(m->name);
        EXPECT(s != NULL, "model %s has no test input shape here: add one", m->name);
        if (!s)
            continue;
        dl_net *net = calloc(1, sizeof *net);
        dl_status st = dl_model_build(m, net, s->c, s->h, s->w, s->classes);
        if (st == DL_OK)
            st = dl_net_finalize(net, cpu, 2, 7);
        EXPECT(st == DL_OK, "%s: %s", m->name, dl_error_message());
        if (st == DL_OK) {
            size_t pad = check_offsets(m->name, net);
            padded_models += pad > 0;
            printf("%-9s %10zu parameters, %10zu floats with padding (%zu padding)\n", m->name,
                   net->n_trainable, net->n_params, pad);
            for (int nesterov = 0; nesterov <= 1; nesterov++)
                train_steps(m->name, net, s, nesterov);
            check_helpers(m->name, net);
            check_grad_matrices(m->name, net);
        }
        dl_net_free(net);
        free(net);
    }
    EXPECT(padded_models > 0, "no model has any padding: the steps above tested nothing");
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    else
        printf("every layer's parameters start on %d floats; the padding stays zero\n",
               DL_NET_PARAM_ALIGN);
    return failures ? 1 : 0;
}
