/* models.h: the network definitions dltrain knows, by name.  Each is written
 * against the net builder and takes its input shape and class count from the
 * data set, so peers (tests/torch_models.py) can build exactly the same net. */
#ifndef DL_MODELS_H
#define DL_MODELS_H

#include "../runtime/net.h"

typedef struct dl_model {
    const char *name;
    const char *summary;
    void (*build)(dl_net *net); /* after dl_net_init; errors land in net->build_status */
} dl_model;

/* NULL-terminated table of every model. */
extern const dl_model dl_models[];
const dl_model *dl_model_find(const char *name);
/* "lenet, resnet20, resnet50" for messages */
const char *dl_model_names(void);
/* dl_net_init + build; the message names the model on a shape mismatch. */
dl_status dl_model_build(const dl_model *m, dl_net *net, int c, int h, int w, int classes);

#endif
