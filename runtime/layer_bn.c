/* layer_bn.c: batch normalisation, optionally with the ReLU after it fused
 * in (cfg.bn.relu; dl_net_bn_relu).  Parameters [gamma(c), beta(c)], buffers
 * [running_mean(c), running_var(c)], saved [batch mean(c), invstd(c)]. */
#include "net.h"

static dl_bn_desc bn_desc(const dl_layer *l, const dl_net *net)
{
    const dl_tensor *x = &net->tensors[l->in[0]];
    return (dl_bn_desc){.n = net->batch, .c = x->c, .hw = x->h * x->w, .eps = l->cfg.bn.eps,
                        .momentum = l->cfg.bn.momentum, .relu = l->cfg.bn.relu};
}

static dl_status bn_infer(dl_layer *l, const dl_tensor *x, const dl_tensor *unused, dl_tensor *y)
{
    (void)unused;
    *y = (dl_tensor){.c = x->c, .h = x->h, .w = x->w};
    l->n_params = 2 * (size_t)x->c;
    l->n_buffers = 2 * (size_t)x->c;
    l->saved_fixed = 2 * sizeof(float) * (size_t)x->c;
    return DL_OK;
}

static void bn_init(const dl_layer *l, const dl_net *net, float *params, float *buffers,
                    dl_rng *rng)
{
    (void)rng;
    int c = net->tensors[l->in[0]].c;
    for (int i = 0; i < c; i++) {
        params[i] = 1.0f;     /* gamma */
        params[c + i] = 0.0f; /* beta */
        buffers[i] = 0.0f;    /* running mean */
        buffers[c + i] = 1.0f; /* running variance */
    }
}

static void bn_forward(dl_layer *l, dl_net *net, int training)
{
    dl_bn_desc b = bn_desc(l, net);
    float *p = dl_layer_params(l, net), *buf = dl_layer_buffers(l, net), *saved = l->saved;
    const float *x = dl_layer_input(l, net, 0)->val;
    float *y = dl_layer_output(l, net)->val;
    if (training)
        net->dev->bn_forward_train(net->dev, &b, x, p, p + b.c, y, saved, saved + b.c, buf,
                                   buf + b.c);
    else
        net->dev->bn_forward_eval(net->dev, &b, x, p, p + b.c, y, buf, buf + b.c);
}

static void bn_backward(dl_layer *l, dl_net *net)
{
    dl_bn_desc b = bn_desc(l, net);
    float *p = dl_layer_params(l, net), *g = dl_layer_grads(l, net), *saved = l->saved;
    dl_tensor *x = dl_layer_input(l, net, 0);
    /* The gradient of gamma and beta needs the same sums as dx, so bn backward
     * always runs; with no input gradient it writes into the workspace. */
    float *dx = x->grad ? x->grad : net->workspace;
    net->dev->bn_backward(net->dev, &b, x->val, p, p + b.c, saved, saved + b.c,
                          dl_layer_output(l, net)->grad, dx, x->grad ? l->acc[0] : 0, g, g + b.c);
}

static size_t bn_workspace(const dl_layer *l, const dl_net *net, int n)
{
    /* only needed when normalising the network input directly */
    return l->in[0] == net->input ? (size_t)n * dl_tensor_size(&net->tensors[l->in[0]]) : 0;
}

static double bn_macs(const dl_layer *l, const dl_net *net)
{
    return 2.0 * (double)dl_tensor_size(&net->tensors[l->in[0]]);
}

const dl_layer_kind dl_layer_bn = {"batchnorm", bn_infer, bn_workspace, bn_init, bn_forward,
                                   bn_backward, bn_macs};
