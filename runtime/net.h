/* net.h: a network = layers over tensors, one flat parameter buffer, one flat
 * gradient buffer and one activation arena, all allocated by dl_net_finalize.
 *
 * Parameters are laid out in the order backward produces their gradients
 * (last layer first), so "the gradients of the first K floats are final" is
 * a single watermark that rises during backward, and all-reduce buckets are
 * plain slices [off, off+len) of the gradient buffer.
 *
 * Building: the model calls dl_net_init, then builder functions that each
 * return the id of the new output tensor (or -1 after the first error, which
 * dl_net_finalize then reports), then dl_net_finalize. */
#ifndef DL_NET_H
#define DL_NET_H

#include "device.h"
#include "layer.h"
#include "trace.h"

#define DL_NET_MAX_LAYERS 256
#define DL_NET_LOSS_SLOTS 2 /* loss reads in flight at once (dl_net_loss_start) */
/* Every layer's parameters start on a multiple of this many floats (256
 * bytes) in the flat buffers, so each layer's weights are as aligned as
 * NCCL and tensor-core GEMMs like; the floats between layers are padding,
 * always zero in parameters, gradients and momentum. */
#define DL_NET_PARAM_ALIGN 64

/* Called during backward: grads[0, ready) are final and will not change. */
typedef void (*dl_grads_ready_fn)(void *user, size_t ready);

struct dl_net {
    dl_device *dev;
    int in_c, in_h, in_w, classes;
    dl_layer layers[DL_NET_MAX_LAYERS];
    int n_layers;
    int n_steps; /* layers counting a fused one as the layers it replaces (dl_layer.step) */
    dl_tensor tensors[DL_NET_MAX_LAYERS + 1];
    int n_tensors;
    int input, logits; /* tensor ids */
    dl_status build_status;
    char scope[40]; /* name prefix for layers being added */

    /* n_params: the length of the flat parameter, gradient and momentum
     * buffers in floats, padding included (what buckets, checkpoints,
     * replica checks and compression see); n_trainable: the parameters the
     * layers have (the sum of their n_params: what "parameters" prints). */
    size_t n_params, n_trainable, n_buffers;
    float *params;  /* [n_params]  device */
    float *grads;   /* [n_params]  device, same layout */
    float *buffers; /* [n_buffers] device, running statistics */

    int max_batch, batch; /* arena size; batch of the current step */
    void *arena;
    size_t arena_bytes;
    float *workspace; /* [ws_floats] shared scratch (im2col) */
    size_t ws_floats;
    int32_t *labels; /* [max_batch] device: inside batch_bufs[batch_cur] */
    /* The input pipeline: two device buffers, each [images | labels], used in
     * turn, so the copy of the next batch overlaps the step on this one. */
    void *batch_bufs[2];
    size_t labels_off; /* bytes from a batch buffer's start to its labels */
    int batch_cur;
    float *probs;    /* [max_batch, classes] device */
    float *loss;     /* [max_batch] device, per-sample loss */
    double *stats;   /* [DL_NET_LOSS_SLOTS][2] device: loss sum and correct count per read slot */

    dl_grads_ready_fn on_grads_ready;
    void *on_grads_ready_user;
    dl_tracer *trace; /* NULL, or per-layer spans of training forward and backward */
};

dl_status dl_net_init(dl_net *net, int c, int h, int w, int classes);
int dl_net_conv(dl_net *net, int x, int cout, int k, int stride, int pad, int bias);
int dl_net_fc(dl_net *net, int x, int out, int bias);
int dl_net_maxpool(dl_net *net, int x, int k, int stride, int pad);
int dl_net_avgpool(dl_net *net, int x, int k, int stride, int pad);
int dl_net_gap(dl_net *net, int x);
int dl_net_bn(dl_net *net, int x);
/* relu(bn(x)) as one layer: one pass over memory less each way */
int dl_net_bn_relu(dl_net *net, int x);
int dl_net_relu(dl_net *net, int x);
int dl_net_add(dl_net *net, int a, int b);
/* Prefix for the names of layers added from now on ("stage2.block1."). */
void dl_net_set_scope(dl_net *net, const char *scope);

/* Lays out the flat parameter buffer (each layer's param_off, n_params)
 * without allocating anything: what dl_net_finalize does first, for a net
 * that is only described (predict's gradient matrices). */
void dl_net_layout(dl_net *net);
/* Lay out parameters, allocate everything on `dev` for batches up to
 * max_batch, and initialise parameters from `seed`. */
dl_status dl_net_finalize(dl_net *net, dl_device *dev, int max_batch, uint64_t seed);
void dl_net_free(dl_net *net);

/* One step.  set_batch uploads n images [n, c, h, w] and labels from host
 * (device.h upload_batch: asynchronous on CUDA; the host arrays may be reused
 * as soon as it returns). */
void dl_net_set_batch(dl_net *net, const float *images, const int32_t *labels, int n);
/* With net->trace set, training forward and backward record one span per
 * layer, and synchronise the device after each so a span covers its work. */
void dl_net_forward(dl_net *net, int training);
/* The loss summed over the batch and the number of correct predictions
 * (sums, so ranks can add them up), reduced on the device (xent_stats) and
 * read back in two halves, so the host need not wait for the device where
 * forward ends: loss_start queues the reduction and an asynchronous copy
 * into read slot `slot` (0 .. DL_NET_LOSS_SLOTS-1) and returns at once;
 * loss_finish waits for that copy only (a GPU may be further on by then)
 * and returns the figures of the forward the slot was started after.  A
 * slot holds one read: finish it before starting it again.  dl_net_loss
 * does both at once (slot 0): a synchronising read of 16 bytes. */
void dl_net_loss_start(dl_net *net, int slot);
void dl_net_loss_finish(dl_net *net, int slot, double *loss_sum, int *correct);
void dl_net_loss(dl_net *net, double *loss_sum, int *correct);
/* Zeroes the gradients and runs backward, calling on_grads_ready as layers finish. */
void dl_net_backward(dl_net *net);

/* Zeroes the padding between layers in a flat device buffer of n_params
 * floats (gradients after a compressed average, which need not keep zeros
 * zero: docs/engine.md). */
void dl_net_zero_padding(dl_net *net, float *flat);
/* The first padding float of a host copy of a flat buffer that is not
 * zero, or -1 when all are (checkpoints check parameters and momentum). */
long long dl_net_padding_nonzero(const dl_net *net, const float *flat);

/* Forward multiply-adds per sample (training costs about 3x this). */
double dl_net_macs_per_sample(const dl_net *net);
/* Print the layer table (name, output shape, parameters) to a stream. */
void dl_net_print(const dl_net *net, void *stream);

#endif
