/* resnet.c: ResNet-20 (He et al. 2016, CIFAR variant) and ResNet-50 (ImageNet
 * bottleneck variant, stride on the 3x3 convolution as in torchvision).
 * Convolutions before batch norm carry no bias; shortcuts are identity, or a
 * 1x1 convolution + batch norm where the shape changes. */
#include "models.h"

#include <stdio.h>

void dl_build_resnet20(dl_net *net);
void dl_build_resnet50(dl_net *net);

static int conv_bn(dl_net *net, int x, int cout, int k, int stride, int relu)
{
    x = dl_net_conv(net, x, cout, k, stride, k / 2, 0);
    return relu ? dl_net_bn_relu(net, x) : dl_net_bn(net, x);
}

static int shortcut(dl_net *net, int x, int cout, int stride)
{
    const dl_tensor *t = x >= 0 ? &net->tensors[x] : NULL;
    if (t && t->c == cout && stride == 1)
        return x;
    return conv_bn(net, x, cout, 1, stride, 0);
}

static int basic_block(dl_net *net, int x, int cout, int stride)
{
    int y = conv_bn(net, x, cout, 3, stride, 1);
    y = conv_bn(net, y, cout, 3, 1, 0);
    return dl_net_relu(net, dl_net_add(net, y, shortcut(net, x, cout, stride)));
}

static int bottleneck(dl_net *net, int x, int width, int stride)
{
    int y = conv_bn(net, x, width, 1, 1, 1);
    y = conv_bn(net, y, width, 3, stride, 1);
    y = conv_bn(net, y, 4 * width, 1, 1, 0);
    return dl_net_relu(net, dl_net_add(net, y, shortcut(net, x, 4 * width, stride)));
}

static void set_scope(dl_net *net, int stage, int block)
{
    char scope[32];
    snprintf(scope, sizeof scope, "layer%d.%d.", stage, block);
    dl_net_set_scope(net, scope);
}

void dl_build_resnet20(dl_net *net)
{
    int x = conv_bn(net, net->input, 16, 3, 1, 1);
    for (int stage = 0; stage < 3; stage++)
        for (int block = 0; block < 3; block++) {
            set_scope(net, stage + 1, block);
            x = basic_block(net, x, 16 << stage, stage > 0 && block == 0 ? 2 : 1);
        }
    dl_net_set_scope(net, "");
    dl_net_fc(net, dl_net_gap(net, x), net->classes, 1);
}

void dl_build_resnet50(dl_net *net)
{
    static const int blocks[4] = {3, 4, 6, 3};
    int x = conv_bn(net, net->input, 64, 7, 2, 1);
    x = dl_net_maxpool(net, x, 3, 2, 1);
    for (int stage = 0; stage < 4; stage++)
        for (int block = 0; block < blocks[stage]; block++) {
            set_scope(net, stage + 1, block);
            x = bottleneck(net, x, 64 << stage, stage > 0 && block == 0 ? 2 : 1);
        }
    dl_net_set_scope(net, "");
    dl_net_fc(net, dl_net_gap(net, x), net->classes, 1);
}
