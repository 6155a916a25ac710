/* lenet.c: the small LeNet-style convnet (the default model).
 * conv 5x5 32 (pad 2) - ReLU - maxpool 2 - conv 5x5 64 (pad 2) - ReLU -
 * maxpool 2 - fc 256 - ReLU - fc classes.  Convolutions carry biases. */
#include "models.h"

void dl_build_lenet(dl_net *net);

void dl_build_lenet(dl_net *net)
{
    int x = net->input;
    x = dl_net_relu(net, dl_net_conv(net, x, 32, 5, 1, 2, 1));
    x = dl_net_maxpool(net, x, 2, 2, 0);
    x = dl_net_relu(net, dl_net_conv(net, x, 64, 5, 1, 2, 1));
    x = dl_net_maxpool(net, x, 2, 2, 0);
    x = dl_net_relu(net, dl_net_fc(net, x, 256, 1));
    dl_net_fc(net, x, net->classes, 1);
}
