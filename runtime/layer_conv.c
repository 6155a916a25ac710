/* layer_conv.c: 2-D convolution (square kernel, stride, zero padding) and the
 * fully connected layer, the two layers whose work is GEMM.
 *   conv: W [cout, cin, k, k], optional bias [cout]
 *   fc:   W [out, in] (PyTorch's nn.Linear layout), optional bias [out] */
#include "net.h"

static dl_conv_desc conv_desc(const dl_layer *l, const dl_net *net, int n)
{
    const dl_tensor *x = &net->tensors[l->in[0]], *y = &net->tensors[l->out];
    return (dl_conv_desc){.n = n, .cin = x->c, .h = x->h, .w = x->w, .cout = y->c, .oh = y->h,
                          .ow = y->w, .k = l->cfg.conv.k, .stride = l->cfg.conv.stride,
                          .pad = l->cfg.conv.pad};
}

static dl_status conv_infer(dl_layer *l, const dl_tensor *x, const dl_tensor *unused,
                            dl_tensor *y)
{
    (void)unused;
    int k = l->cfg.conv.k, s = l->cfg.conv.stride, p = l->cfg.conv.pad;
    if (k < 1 || s < 1 || p < 0 || l->cfg.conv.cout < 1)
        return dl_fail(DL_ERR_ARG, "%s: invalid convolution settings", l->name);
    if (x->h + 2 * p < k || x->w + 2 * p < k)
        return dl_fail(DL_ERR_ARG, "%s: %dx%d kernel does not fit a %dx%d input", l->name, k, k,
                       x->h, x->w);
    y->c = l->cfg.conv.cout;
    y->h = (x->h + 2 * p - k) / s + 1;
    y->w = (x->w + 2 * p - k) / s + 1;
    l->n_params = (size_t)y->c * x->c * k * k + (l->cfg.conv.bias ? (size_t)y->c : 0);
    return DL_OK;
}

static size_t conv_workspace(const dl_layer *l, const dl_net *net, int n)
{
    dl_conv_desc c = conv_desc(l, net, n);
    return net->dev->conv_workspace(net->dev, &c);
}

static void conv_init(const dl_layer *l, const dl_net *net, float *params, float *buffers,
                      dl_rng *rng)
{
    (void)buffers;
    int fan_in = net->tensors[l->in[0]].c * l->cfg.conv.k * l->cfg.conv.k;
    size_t nw = (size_t)l->cfg.conv.cout * fan_in;
    dl_init_he_normal(params, nw, fan_in, rng);
    for (size_t i = nw; i < l->n_params; i++)
        params[i] = 0.0f;
}

static void conv_forward(dl_layer *l, dl_net *net, int training)
{
    (void)training;
    dl_conv_desc c = conv_desc(l, net, net->batch);
    float *w = dl_layer_params(l, net);
    float *b = l->cfg.conv.bias ? w + (size_t)c.cout * c.cin * c.k * c.k : NULL;
    net->dev->conv_forward(net->dev, &c, dl_layer_input(l, net, 0)->val, w, b,
                           dl_layer_output(l, net)->val, net->workspace);
}

static void conv_backward(dl_layer *l, dl_net *net)
{
    dl_conv_desc c = conv_desc(l, net, net->batch);
    float *w = dl_layer_params(l, net), *dw = dl_layer_grads(l, net);
    size_t nw = (size_t)c.cout * c.cin * c.k * c.k;
    dl_tensor *x = dl_layer_input(l, net, 0);
    net->dev->conv_backward(net->dev, &c, x->val, w, dl_layer_output(l, net)->grad, x->grad,
                            l->acc[0], dw, l->cfg.conv.bias ? dw + nw : NULL, net->workspace);
}

static double conv_macs(const dl_layer *l, const dl_net *net)
{
    const dl_tensor *x = &net->tensors[l->in[0]], *y = &net->tensors[l->out];
    return (double)y->c * y->h * y->w * x->c * l->cfg.conv.k * l->cfg.conv.k;
}

const dl_layer_kind dl_layer_conv = {"conv", conv_infer, conv_workspace, conv_init,
                                     conv_forward, conv_backward, conv_macs};

static dl_status fc_infer(dl_layer *l, const dl_tensor *x, const dl_tensor *unused, dl_tensor *y)
{
    (void)unused;
    if (l->cfg.fc.out < 1)
        return dl_fail(DL_ERR_ARG, "%s: invalid output size", l->name);
    y->c = l->cfg.fc.out;
    y->h = y->w = 1;
    l->n_params = (size_t)y->c * dl_tensor_size(x) + (l->cfg.fc.bias ? (size_t)y->c : 0);
    return DL_OK;
}

static void fc_init(const dl_layer *l, const dl_net *net, float *params, float *buffers,
                    dl_rng *rng)
{
    (void)buffers;
    int fan_in = (int)dl_tensor_size(&net->tensors[l->in[0]]);
    size_t nw = (size_t)l->cfg.fc.out * fan_in;
    dl_init_he_normal(params, nw, fan_in, rng);
    for (size_t i = nw; i < l->n_params; i++)
        params[i] = 0.0f;
}

/* y[n, out] = x[n, in] W^T + b */
static void fc_forward(dl_layer *l, dl_net *net, int training)
{
    (void)training;
    dl_tensor *x = dl_layer_input(l, net, 0), *y = dl_layer_output(l, net);
    int in = (int)dl_tensor_size(x), out = y->c, n = net->batch;
    float *w = dl_layer_params(l, net);
    net->dev->gemm(net->dev, 0, 1, n, out, in, 1.0f, x->val, in, w, in, 0.0f, y->val, out);
    if (l->cfg.fc.bias)
        net->dev->bias_add(net->dev, y->val, w + (size_t)out * in, n, out, 1);
}

/* dW += dy^T x;  db += sum dy;  dx (+)= dy W */
static void fc_backward(dl_layer *l, dl_net *net)
{
    dl_tensor *x = dl_layer_input(l, net, 0), *y = dl_layer_output(l, net);
    int in = (int)dl_tensor_size(x), out = y->c, n = net->batch;
    float *w = dl_layer_params(l, net), *dw = dl_layer_grads(l, net);
    net->dev->gemm(net->dev, 1, 0, out, in, n, 1.0f, y->grad, out, x->val, in, 1.0f, dw, in);
    if (l->cfg.fc.bias)
        net->dev->bias_grad(net->dev, y->grad, dw + (size_t)out * in, n, out, 1);
    if (x->grad)
        net->dev->gemm(net->dev, 0, 0, n, in, out, 1.0f, y->grad, out, w, in,
                       l->acc[0] ? 1.0f : 0.0f, x->grad, in);
}

static double fc_macs(const dl_layer *l, const dl_net *net)
{
    return (double)l->cfg.fc.out * (double)dl_tensor_size(&net->tensors[l->in[0]]);
}

const dl_layer_kind dl_layer_fc = {"fc", fc_infer, NULL, fc_init, fc_forward, fc_backward,
                                   fc_macs};
