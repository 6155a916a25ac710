/* layer_pool.c: max pooling, average pooling and global average pooling. */
#include "net.h"

static dl_pool_desc pool_desc(const dl_layer *l, const dl_net *net)
{
    const dl_tensor *x = &net->tensors[l->in[0]], *y = &net->tensors[l->out];
    return (dl_pool_desc){.n = net->batch, .c = x->c, .h = x->h, .w = x->w, .oh = y->h,
                          .ow = y->w, .k = l->cfg.pool.k, .stride = l->cfg.pool.stride,
                          .pad = l->cfg.pool.pad};
}

static dl_status pool_infer(dl_layer *l, const dl_tensor *x, const dl_tensor *unused,
                            dl_tensor *y)
{
    (void)unused;
    int k = l->cfg.pool.k, s = l->cfg.pool.stride, p = l->cfg.pool.pad;
    if (k < 1 || s < 1 || p < 0 || 2 * p > k)
        return dl_fail(DL_ERR_ARG, "%s: invalid pooling settings", l->name);
    if (x->h + 2 * p < k || x->w + 2 * p < k)
        return dl_fail(DL_ERR_ARG, "%s: %dx%d window does not fit a %dx%d input", l->name, k, k,
                       x->h, x->w);
    y->c = x->c;
    y->h = (x->h + 2 * p - k) / s + 1;
    y->w = (x->w + 2 * p - k) / s + 1;
    if (l->kind == &dl_layer_maxpool)
        l->saved_per_sample = sizeof(int32_t) * dl_tensor_size(y);
    return DL_OK;
}

static void maxpool_forward(dl_layer *l, dl_net *net, int training)
{
    (void)training;
    dl_pool_desc p = pool_desc(l, net);
    net->dev->maxpool_forward(net->dev, &p, dl_layer_input(l, net, 0)->val,
                              dl_layer_output(l, net)->val, l->saved);
}

static void maxpool_backward(dl_layer *l, dl_net *net)
{
    dl_pool_desc p = pool_desc(l, net);
    dl_tensor *x = dl_layer_input(l, net, 0);
    if (x->grad)
        net->dev->maxpool_backward(net->dev, &p, dl_layer_output(l, net)->grad, l->saved,
                                   x->grad, l->acc[0]);
}

static void avgpool_forward(dl_layer *l, dl_net *net, int training)
{
    (void)training;
    dl_pool_desc p = pool_desc(l, net);
    net->dev->avgpool_forward(net->dev, &p, dl_layer_input(l, net, 0)->val,
                              dl_layer_output(l, net)->val);
}

static void avgpool_backward(dl_layer *l, dl_net *net)
{
    dl_pool_desc p = pool_desc(l, net);
    dl_tensor *x = dl_layer_input(l, net, 0);
    if (x->grad)
        net->dev->avgpool_backward(net->dev, &p, dl_layer_output(l, net)->grad, x->grad,
                                   l->acc[0]);
}

static double pool_macs(const dl_layer *l, const dl_net *net)
{
    const dl_tensor *y = &net->tensors[l->out];
    return (double)dl_tensor_size(y) * l->cfg.pool.k * l->cfg.pool.k;
}

/* Global average pooling is average pooling with the window set to the
 * whole (square) feature map once the input shape is known. */
static dl_status gap_infer(dl_layer *l, const dl_tensor *x, const dl_tensor *unused,
                           dl_tensor *y)
{
    if (x->h != x->w)
        return dl_fail(DL_ERR_ARG, "%s: global average pooling needs a square input, got %dx%d",
                       l->name, x->h, x->w);
    l->cfg.pool.k = l->cfg.pool.stride = x->h;
    l->cfg.pool.pad = 0;
    return pool_infer(l, x, unused, y);
}

const dl_layer_kind dl_layer_maxpool = {"maxpool", pool_infer, NULL, NULL, maxpool_forward,
                                        maxpool_backward, pool_macs};
const dl_layer_kind dl_layer_avgpool = {"avgpool", pool_infer, NULL, NULL, avgpool_forward,
                                        avgpool_backward, pool_macs};
const dl_layer_kind dl_layer_gap = {"gap", gap_infer, NULL, NULL, avgpool_forward,
                                    avgpool_backward, pool_macs};
