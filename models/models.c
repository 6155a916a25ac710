/* models.c: the model registry. */
#include "models.h"

#include <stdio.h>
#include <string.h>

void dl_build_lenet(dl_net *net);
void dl_build_resnet20(dl_net *net);
void dl_build_resnet50(dl_net *net);

const dl_model dl_models[] = {
    {"lenet", "2 conv (5x5, 32/64) + 2 fc (256, classes); the default", dl_build_lenet},
    {"resnet20", "CIFAR ResNet-20, 16/32/64 channels, batch norm", dl_build_resnet20},
    {"resnet50", "ImageNet ResNet-50, bottleneck blocks, for 3x224x224", dl_build_resnet50},
    {NULL, NULL, NULL},
};

const dl_model *dl_model_find(const char *name)
{
    for (const dl_model *m = dl_models; m->name; m++)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

const char *dl_model_names(void) { return "lenet, resnet20, resnet50"; }

dl_status dl_model_build(const dl_model *m, dl_net *net, int c, int h, int w, int classes)
{
    dl_status st = dl_net_init(net, c, h, w, classes);
    if (st != DL_OK)
        return st;
    m->build(net);
    if (net->build_status != DL_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", dl_error_message());
        return dl_fail(net->build_status, "model %s cannot take %dx%dx%d input: %s", m->name, c,
                       h, w, why);
    }
    return DL_OK;
}
