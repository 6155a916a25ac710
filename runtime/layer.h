/* layer.h: one layer = a small typed config plus a per-kind function table.
 *
 * Adding a layer kind touches one file (layer_<kind>.c, holding its table)
 * and one builder function in net.c.  A layer reads one or two tensors and
 * writes one; its parameters are a slice of the network's flat parameter
 * buffer (weight first, then bias) and its gradients the same slice of the
 * gradient buffer. */
#ifndef DL_LAYER_H
#define DL_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "device.h"
#include "rng.h"

typedef struct dl_net dl_net;

/* An activation: per-sample shape plus arena slices sized for the largest batch. */
typedef struct dl_tensor {
    int c, h, w;
    float *val;  /* [batch, c, h, w] */
    float *grad; /* [batch, c, h, w]; NULL for the network input */
} dl_tensor;

static inline size_t dl_tensor_size(const dl_tensor *t) { return (size_t)t->c * t->h * t->w; }

typedef struct dl_layer dl_layer;

typedef struct dl_layer_kind {
    const char *name;
    /* Output shape and the sizes the layer needs: sets out->c/h/w,
     * l->n_params, l->n_buffers and l->saved_per_sample / saved_fixed (bytes). */
    dl_status (*infer)(dl_layer *l, const dl_tensor *in0, const dl_tensor *in1, dl_tensor *out);
    /* Device workspace in floats for a batch of n (shared by all layers). */
    size_t (*workspace)(const dl_layer *l, const dl_net *net, int n);
    /* Fill host copies of the parameters and buffers (seeded). */
    void (*init)(const dl_layer *l, const dl_net *net, float *params, float *buffers, dl_rng *rng);
    void (*forward)(dl_layer *l, dl_net *net, int training);
    void (*backward)(dl_layer *l, dl_net *net);
    /* Multiply-adds per sample in forward, for FLOP accounting. */
    double (*macs)(const dl_layer *l, const dl_net *net);
} dl_layer_kind;

struct dl_layer {
    const dl_layer_kind *kind;
    char name[96];
    int in[2], n_in, out;      /* tensor ids */
    int step;                  /* position in the unfused layer sequence: the
                                  number in the name and the initialisation
                                  seed, so fusing a layer changes neither */
    int acc[2];                /* backward adds to in[i]'s gradient (it has several readers) */
    size_t n_params, param_off;   /* floats in net->params / net->grads */
    size_t n_buffers, buffer_off; /* non-trained state, e.g. running statistics */
    size_t saved_per_sample;      /* bytes of arena kept from forward for backward, */
    size_t saved_fixed;           /* per sample plus fixed */
    void *saved;
    union {
        struct { int cout, k, stride, pad, bias; } conv;
        struct { int out, bias; } fc;
        struct { int k, stride, pad; } pool;
        struct { float eps, momentum; int relu; } bn; /* relu: fused ReLU after */
    } cfg;
};

extern const dl_layer_kind dl_layer_conv, dl_layer_fc, dl_layer_maxpool, dl_layer_avgpool,
    dl_layer_gap, dl_layer_bn, dl_layer_relu, dl_layer_add;

/* Helpers used by the layer files. */
dl_tensor *dl_layer_input(const dl_layer *l, dl_net *net, int i);
dl_tensor *dl_layer_output(const dl_layer *l, dl_net *net);
float *dl_layer_params(const dl_layer *l, dl_net *net);
float *dl_layer_grads(const dl_layer *l, dl_net *net);
float *dl_layer_buffers(const dl_layer *l, dl_net *net);
/* He/Kaiming normal initialisation, std = sqrt(2 / fan_in). */
void dl_init_he_normal(float *w, size_t n, int fan_in, dl_rng *rng);

#endif
