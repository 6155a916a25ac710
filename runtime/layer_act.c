/* layer_act.c: ReLU and the residual add (y = a + b). */
#include "net.h"

static dl_status same_shape_infer(dl_layer *l, const dl_tensor *a, const dl_tensor *b,
                                  dl_tensor *y)
{
    if (b && (a->c != b->c || a->h != b->h || a->w != b->w))
        return dl_fail(DL_ERR_ARG, "%s: shapes differ (%dx%dx%d vs %dx%dx%d)", l->name, a->c,
                       a->h, a->w, b->c, b->h, b->w);
    *y = (dl_tensor){.c = a->c, .h = a->h, .w = a->w};
    return DL_OK;
}

static size_t batch_elems(const dl_layer *l, const dl_net *net)
{
    return (size_t)net->batch * dl_tensor_size(&net->tensors[l->out]);
}

static void relu_forward(dl_layer *l, dl_net *net, int training)
{
    (void)training;
    net->dev->relu_forward(net->dev, dl_layer_input(l, net, 0)->val,
                           dl_layer_output(l, net)->val, batch_elems(l, net));
}

static void relu_backward(dl_layer *l, dl_net *net)
{
    dl_tensor *x = dl_layer_input(l, net, 0), *y = dl_layer_output(l, net);
    if (x->grad)
        net->dev->relu_backward(net->dev, y->val, y->grad, x->grad, batch_elems(l, net),
                                l->acc[0]);
}

static void add_forward(dl_layer *l, dl_net *net, int training)
{
    (void)training;
    net->dev->add_forward(net->dev, dl_layer_input(l, net, 0)->val,
                          dl_layer_input(l, net, 1)->val, dl_layer_output(l, net)->val,
                          batch_elems(l, net));
}

static void add_backward(dl_layer *l, dl_net *net)
{
    const float *dy = dl_layer_output(l, net)->grad;
    for (int i = 0; i < 2; i++) {
        dl_tensor *x = dl_layer_input(l, net, i);
        if (x->grad)
            net->dev->copy(net->dev, x->grad, dy, batch_elems(l, net), l->acc[i]);
    }
}

static double elementwise_macs(const dl_layer *l, const dl_net *net)
{
    return (double)dl_tensor_size(&net->tensors[l->out]);
}

const dl_layer_kind dl_layer_relu = {"relu", same_shape_infer, NULL, NULL, relu_forward,
                                     relu_backward, elementwise_macs};
const dl_layer_kind dl_layer_add = {"add", same_shape_infer, NULL, NULL, add_forward,
                                    add_backward, elementwise_macs};
