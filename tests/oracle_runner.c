/* oracle_runner: the C half of the PyTorch oracle test (test_torch_oracle.py).
 *
 * Builds a model (lenet, resnet20, resnet50) or a small layer network, sets
 * its own seeded parameters, running statistics, input and labels, runs
 *   1. a training forward + loss + backward (gradients of the mean loss,
 *      including the input gradient),
 *   2. an evaluation forward (with the running statistics step 1 updated),
 *   3. an SGD step (momentum 0.9, Nesterov, weight decay 5e-4, lr 0.01),
 *   4. a second training forward + backward at the new parameters,
 *   5. a second SGD step,
 * and writes every input and result to OUTDIR as raw little-endian float32 /
 * int32 files plus manifest.txt, which describes the network layer by layer
 * (kind, tensors, configuration and the offsets of each layer's slice of the
 * flat parameter and buffer arrays) so Python can map the flat layout onto
 * torch modules explicitly.
 *
 * usage: oracle_runner CASE OUTDIR     (oracle_runner --list: the cases) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../models/models.h"
#include "net.h"
#include "optim.h"
#include "rng.h"

#define SGD_LR 0.01f
#define SGD_MOMENTUM 0.9f
#define SGD_WD 5e-4f
#define SGD_NESTEROV 1

typedef struct oracle_case {
    const char *name;
    int c, h, w, classes, batch;
    const char *model;        /* a registered model, or NULL: build() */
    void (*build)(dl_net *net);
    const char *what;
} oracle_case;

static void b_conv(dl_net *n) { dl_net_fc(n, dl_net_conv(n, 0, 6, 3, 2, 1, 1), n->classes, 1); }
static void b_conv5(dl_net *n) { dl_net_fc(n, dl_net_conv(n, 0, 4, 5, 1, 2, 0), n->classes, 1); }
static void b_conv1(dl_net *n) { dl_net_fc(n, dl_net_conv(n, 0, 6, 1, 2, 0, 0), n->classes, 1); }
static void b_conv7(dl_net *n)
{
    dl_net_fc(n, dl_net_gap(n, dl_net_conv(n, 0, 8, 7, 2, 3, 0)), n->classes, 1);
}
static void b_fc(dl_net *n) { dl_net_fc(n, dl_net_fc(n, 0, 7, 1), n->classes, 0); }
static void b_maxpool(dl_net *n)
{
    int x = dl_net_conv(n, 0, 4, 3, 1, 1, 1);
    dl_net_fc(n, dl_net_maxpool(n, x, 3, 2, 1), n->classes, 1);
}
static void b_maxpool2(dl_net *n) { dl_net_fc(n, dl_net_maxpool(n, 0, 2, 2, 0), n->classes, 1); }
static void b_avgpool(dl_net *n) { dl_net_fc(n, dl_net_avgpool(n, 0, 3, 2, 1), n->classes, 1); }
static void b_gap(dl_net *n) { dl_net_fc(n, dl_net_gap(n, 0), n->classes, 1); }
static void b_bn(dl_net *n)
{
    int x = dl_net_relu(n, dl_net_bn(n, dl_net_conv(n, 0, 5, 3, 1, 1, 0)));
    dl_net_fc(n, x, n->classes, 1);
}
static void b_bn_relu(dl_net *n)
{
    dl_net_fc(n, dl_net_bn_relu(n, dl_net_conv(n, 0, 5, 3, 1, 1, 0)), n->classes, 1);
}
static void b_bn_input(dl_net *n) { dl_net_fc(n, dl_net_bn(n, 0), n->classes, 1); }
static void b_bn_fc(dl_net *n)
{
    int x = dl_net_relu(n, dl_net_bn(n, dl_net_fc(n, 0, 8, 1)));
    dl_net_fc(n, x, n->classes, 1);
}
static void b_residual(dl_net *n)
{
    int y = dl_net_bn(n, dl_net_conv(n, 0, 4, 3, 1, 1, 0));
    int x = dl_net_relu(n, dl_net_add(n, y, 0));
    dl_net_fc(n, dl_net_gap(n, x), n->classes, 1);
}

static const oracle_case cases[] = {
    {"conv3x3_s2_bias", 3, 9, 9, 5, 4, NULL, b_conv, "conv 3x3 s2 p1 + bias, fc"},
    {"conv5x5_nobias", 2, 11, 11, 5, 3, NULL, b_conv5, "conv 5x5 p2 no bias, fc"},
    {"conv1x1_s2", 4, 8, 8, 5, 3, NULL, b_conv1, "conv 1x1 s2, fc"},
    {"conv7x7_s2", 3, 15, 15, 5, 2, NULL, b_conv7, "conv 7x7 s2 p3, gap, fc"},
    {"fc", 3, 4, 4, 5, 4, NULL, b_fc, "fc + bias, fc no bias"},
    {"maxpool3x3", 3, 9, 9, 5, 3, NULL, b_maxpool, "conv, maxpool 3x3 s2 p1, fc"},
    {"maxpool2x2_odd", 3, 7, 7, 5, 3, NULL, b_maxpool2, "maxpool 2x2 on 7x7 input, fc"},
    {"avgpool3x3", 3, 9, 9, 5, 3, NULL, b_avgpool, "avgpool 3x3 s2 p1 (pad counted), fc"},
    {"gap", 4, 5, 5, 5, 3, NULL, b_gap, "global average pool, fc"},
    {"bn", 4, 6, 6, 5, 4, NULL, b_bn, "conv, bn, relu, fc"},
    {"bn_relu", 4, 6, 6, 5, 4, NULL, b_bn_relu, "conv, bn + relu fused, fc"},
    {"bn_input", 3, 5, 5, 5, 4, NULL, b_bn_input, "bn on the network input, fc"},
    {"bn_fc", 3, 4, 4, 5, 6, NULL, b_bn_fc, "fc, bn (1x1), relu, fc"},
    {"residual", 4, 6, 6, 5, 4, NULL, b_residual, "conv, bn, add(input), relu, gap, fc"},
    {"lenet", 1, 28, 28, 10, 4, "lenet", NULL, "models/lenet.c on 1x28x28"},
    {"resnet20", 3, 16, 16, 10, 4, "resnet20", NULL, "models/resnet.c ResNet-20 on 3x16x16"},
    {"resnet50", 3, 64, 64, 10, 4, "resnet50", NULL, "models/resnet.c ResNet-50 on 3x64x64"},
};

static int write_file(const char *dir, const char *name, const void *data, size_t bytes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || (bytes && fwrite(data, 1, bytes, f) != bytes) || fclose(f) != 0) {
        fprintf(stderr, "oracle_runner: cannot write %s\n", path);
        exit(1);
    }
    return 0;
}

/* Device array -> file. */
static void dump(dl_net *net, const char *dir, const char *name, const void *dev, size_t bytes)
{
    void *h = malloc(bytes ? bytes : 1);
    if (!h)
        exit(1);
    net->dev->sync(net->dev);
    if (bytes)
        net->dev->download(net->dev, h, dev, bytes);
    write_file(dir, name, h, bytes);
    free(h);
}

static double train_step(dl_net *net)
{
    double sum;
    int correct;
    dl_net_forward(net, 1);
    dl_net_loss(net, &sum, &correct);
    dl_net_backward(net);
    return sum / net->batch;
}

static void write_manifest(const dl_net *net, const oracle_case *oc, const char *dir,
                           double loss1, double loss_eval, double loss2)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "oracle_runner: cannot write %s\n", path);
        exit(1);
    }
    fprintf(f, "case %s\n", oc->name);
    fprintf(f, "model %s\n", oc->model ? oc->model : "-");
    fprintf(f, "input %d %d %d\n", net->in_c, net->in_h, net->in_w);
    fprintf(f, "classes %d\nbatch %d\n", net->classes, net->batch);
    fprintf(f, "n_params %zu\nn_trainable %zu\nn_buffers %zu\n", net->n_params, net->n_trainable,
            net->n_buffers);
    fprintf(f, "sgd %.9g %.9g %.9g %d\n", (double)SGD_LR, (double)SGD_MOMENTUM, (double)SGD_WD,
            SGD_NESTEROV);
    fprintf(f, "loss1 %.17g\nloss_eval %.17g\nloss2 %.17g\n", loss1, loss_eval, loss2);
    for (int t = 0; t < net->n_tensors; t++)
        fprintf(f, "tensor %d %d %d %d\n", t, net->tensors[t].c, net->tensors[t].h,
                net->tensors[t].w);
    /* layer IDX KIND IN0 IN1 OUT PARAM_OFF N_PARAMS BUFFER_OFF N_BUFFERS A B C D E
     *   conv: A=cout B=k C=stride D=pad E=bias;  fc: A=out E=bias;
     *   pools: B=k C=stride D=pad;  then the layer's name.  A batch-norm layer
     *   is followed by "bn IDX EPS MOMENTUM RELU" (RELU 1: a ReLU fused in). */
    for (int i = 0; i < net->n_layers; i++) {
        const dl_layer *l = &net->layers[i];
        int a = 0, b = 0, c = 0, d = 0, e = 0;
        if (l->kind == &dl_layer_conv)
            a = l->cfg.conv.cout, b = l->cfg.conv.k, c = l->cfg.conv.stride, d = l->cfg.conv.pad,
            e = l->cfg.conv.bias;
        else if (l->kind == &dl_layer_fc)
            a = l->cfg.fc.out, e = l->cfg.fc.bias;
        else if (l->kind == &dl_layer_maxpool || l->kind == &dl_layer_avgpool ||
                 l->kind == &dl_layer_gap)
            b = l->cfg.pool.k, c = l->cfg.pool.stride, d = l->cfg.pool.pad;
        fprintf(f, "layer %d %s %d %d %d %zu %zu %zu %zu %d %d %d %d %d %s\n", i, l->kind->name,
                l->in[0], l->n_in > 1 ? l->in[1] : -1, l->out, l->param_off, l->n_params,
                l->buffer_off, l->n_buffers, a, b, c, d, e, l->name);
        if (l->kind == &dl_layer_bn)
            fprintf(f, "bn %d %.9g %.9g %d\n", i, (double)l->cfg.bn.eps,
                    (double)l->cfg.bn.momentum, l->cfg.bn.relu);
    }
    fclose(f);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < DL_ARRAY_LEN(cases); i++)
            printf("%s\t%s\n", cases[i].name, cases[i].what);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: oracle_runner CASE OUTDIR | --list\n");
        return 2;
    }
    const oracle_case *oc = NULL;
    for (size_t i = 0; i < DL_ARRAY_LEN(cases); i++)
        if (strcmp(cases[i].name, argv[1]) == 0)
            oc = &cases[i];
    if (!oc) {
        fprintf(stderr, "oracle_runner: unknown case %s (try --list)\n", argv[1]);
        return 2;
    }
    const char *dir = argv[2];
    dl_device *dev = dl_device_cpu(2);
    dl_net net;
    dl_status st;
    if (oc->model) {
        st = dl_model_build(dl_model_find(oc->model), &net, oc->c, oc->h, oc->w, oc->classes);
    } else {
        st = dl_net_init(&net, oc->c, oc->h, oc->w, oc->classes);
        if (st == DL_OK) {
            oc->build(&net);
            st = net.build_status;
        }
    }
    if (st == DL_OK)
        st = dl_net_finalize(&net, dev, oc->batch, 42);
    if (st != DL_OK) {
        fprintf(stderr, "oracle_runner: %s: %s\n", oc->name, dl_error_message());
        return 1;
    }
    int n = oc->batch;
    size_t nin = (size_t)n * oc->c * oc->h * oc->w;
    float *in_grad = dev->alloc(dev, sizeof(float) * (nin + 1), "input gradient");
    net.tensors[net.input].grad = in_grad;

    /* Seeded state.  Weights keep the runtime's He initialisation; biases,
     * batch-norm affine parameters and running statistics get non-trivial
     * values so that every mapping error shows. */
    dl_rng rng;
    dl_rng_seed(&rng, 7, 0, 0);
    float *p = malloc(sizeof(float) * (net.n_params + 1));
    float *b = malloc(sizeof(float) * (net.n_buffers + 1));
    float *x = malloc(sizeof(float) * nin);
    int32_t *labels = malloc(sizeof(int32_t) * n);
    if (!p || !b || !x || !labels)
        return 1;
    dev->download(dev, p, net.params, sizeof(float) * net.n_params);
    dev->download(dev, b, net.buffers, sizeof(float) * net.n_buffers);
    for (int i = 0; i < net.n_layers; i++) {
        const dl_layer *l = &net.layers[i];
        float *lp = p + l->param_off, *lb = b + l->buffer_off;
        if (l->kind == &dl_layer_bn) {
            size_t c = l->n_params / 2;
            for (size_t j = 0; j < c; j++) {
                lp[j] = (float)(0.5 + dl_rng_uniform(&rng));
                lp[c + j] = (float)(0.2 * dl_rng_normal(&rng));
                lb[j] = (float)(0.2 * dl_rng_normal(&rng));
                lb[c + j] = (float)(0.5 + dl_rng_uniform(&rng));
            }
        } else if ((l->kind == &dl_layer_conv && l->cfg.conv.bias) ||
                   (l->kind == &dl_layer_fc && l->cfg.fc.bias)) {
            int out = l->kind == &dl_layer_conv ? l->cfg.conv.cout : l->cfg.fc.out;
            for (int j = 0; j < out; j++)
                lp[l->n_params - out + j] = (float)(0.1 * dl_rng_normal(&rng));
        }
    }
    for (size_t i = 0; i < nin; i++)
        x[i] = (float)dl_rng_normal(&rng);
    for (int i = 0; i < n; i++)
        labels[i] = (int32_t)dl_rng_below(&rng, (uint64_t)oc->classes);
    dev->upload(dev, net.params, p, sizeof(float) * net.n_params);
    dev->upload(dev, net.buffers, b, sizeof(float) * net.n_buffers);
    dl_net_set_batch(&net, x, labels, n);
    write_file(dir, "x.bin", x, sizeof(float) * nin);
    write_file(dir, "labels.bin", labels, sizeof(int32_t) * n);
    write_file(dir, "params0.bin", p, sizeof(float) * net.n_params);
    write_file(dir, "buffers0.bin", b, sizeof(float) * net.n_buffers);

    size_t nlog = (size_t)n * oc->classes;
    /* 1. training step */
    double loss1 = train_step(&net);
    dump(&net, dir, "logits1.bin", net.tensors[net.logits].val, sizeof(float) * nlog);
    dump(&net, dir, "probs1.bin", net.probs, sizeof(float) * nlog);
    dump(&net, dir, "loss1.bin", net.loss, sizeof(float) * n);
    dump(&net, dir, "grads1.bin", net.grads, sizeof(float) * net.n_params);
    dump(&net, dir, "dx1.bin", in_grad, sizeof(float) * nin);
    dump(&net, dir, "buffers1.bin", net.buffers, sizeof(float) * net.n_buffers);
    /* 2. evaluation forward with the updated running statistics */
    double sum;
    int correct;
    dl_net_forward(&net, 0);
    dl_net_loss(&net, &sum, &correct);
    double loss_eval = sum / n;
    dump(&net, dir, "logits_eval.bin", net.tensors[net.logits].val, sizeof(float) * nlog);
    /* 3. SGD step */
    dl_sgd opt;
    if (dl_sgd_init(&opt, dev, net.n_params, SGD_MOMENTUM, SGD_WD, SGD_NESTEROV) != DL_OK)
        return 1;
    dl_sgd_step(&opt, net.params, net.grads, SGD_LR);
    dump(&net, dir, "params1.bin", net.params, sizeof(float) * net.n_params);
    dump(&net, dir, "velocity1.bin", opt.velocity, sizeof(float) * net.n_params);
    /* 4. second training step at the new parameters */
    double loss2 = train_step(&net);
    dump(&net, dir, "logits2.bin", net.tensors[net.logits].val, sizeof(float) * nlog);
    dump(&net, dir, "grads2.bin", net.grads, sizeof(float) * net.n_params);
    dump(&net, dir, "dx2.bin", in_grad, sizeof(float) * nin);
    dump(&net, dir, "buffers2.bin", net.buffers, sizeof(float) * net.n_buffers);
    /* 5. second SGD step */
    dl_sgd_step(&opt, net.params, net.grads, SGD_LR);
    dump(&net, dir, "params2.bin", net.params, sizeof(float) * net.n_params);
    dump(&net, dir, "velocity2.bin", opt.velocity, sizeof(float) * net.n_params);

    write_manifest(&net, oc, dir, loss1, loss_eval, loss2);
    dl_sgd_free(&opt);
    net.tensors[net.input].grad = NULL;
    dev->free(dev, in_grad);
    dl_net_free(&net);
    free(p), free(b), free(x), free(labels);
    return 0;
}
