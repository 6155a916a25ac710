/* predict_compress.c: `dltrain predict --compress` (docs/compression.md).
 *
 * A compressor changes two things in the step model: the bytes each bucket
 * puts on the wire (dl_compress_wire_factor: the compressed payload with
 * its collective, all-gather or all-reduce, over the fp32 all-reduce's) and
 * the compute each rank spends compressing and decompressing.  The bytes
 * are modelled as an all-reduce of the gradient bytes times that factor, so
 * the ring's bandwidth, bottleneck and overlap rules apply unchanged; the
 * buckets shrink by the same factor and stay as many.  The codecs run on the
 * rank's compute path (on the CPU, in the backward hook and after it), so
 * their time is added to the step's compute, where nothing hides it.
 * PowerSGD's bytes follow --model's layers (per layer, as train runs it);
 * with --grad-mb alone there are no layers, and each bucket is folded into
 * one matrix (PyTorch's batched hook), which the output says. */
#include <stdio.h>

#include "predict.h"

/* Gradient floats the model sends: its parameters, or --grad-mb / 4. */
static size_t gradient_floats(const prediction *p)
{
    return (size_t)(p->grad_bytes / 4.0 + 0.5);
}

void predict_compress_row(const prediction *p, int n, dl_step_inputs *in, predict_row *row)
{
    row->wire_factor = 1.0, row->compress_ms = 0.0;
    if (p->compress.kind == DL_COMPRESS_NONE || n < 2)
        return; /* one GPU sends nothing and compresses nothing */
    size_t floats = gradient_floats(p), bucket = (size_t)(p->bucket_bytes / 4.0);
    if (bucket == 0)
        bucket = 1;
    /* PowerSGD and onebit per layer over --model's matrices, in its padded
     * layout; folded buckets (one run of onebit's blocks) with --grad-mb
     * alone (no layers to go by) */
    const dl_grad_matrix *mats = p->n_mats ? p->mats : NULL;
    if (mats && dl_compress_by_layer(p->compress.kind))
        floats = p->layout_floats;
    row->wire_factor = dl_compress_wire_factor(p->compress, n, floats, bucket, mats, p->n_mats);
    row->compress_ms = p->compress_ms >= 0 ? p->compress_ms
                       : p->compress_ms == -1
                           ? dl_compress_cpu_ms(p->compress, n, floats, bucket, mats, p->n_mats)
                           : 0.0;
    in->grad_bytes *= row->wire_factor;
    in->bucket_bytes *= row->wire_factor;
    in->compute_ms += row->compress_ms;
}

const char *predict_compress_source(const prediction *p)
{
    if (p->compress_ms >= 0)
        return "given by --compress-ms";
    if (p->compress_ms == -1)
        return "dltrain's C codecs, timed here: what its CPU path costs";
    return "not charged: give --compress-ms MS, or 'cpu' for the C codecs timed here; on a GPU "
           "they are memory-bound kernels, about 16 bytes of traffic per value";
}
