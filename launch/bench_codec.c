/* bench_codec.c: `dltrain bench train --compress KIND` — what gradient
 * compression costs one rank's device per step, for `predict --compress-ms`.
 *
 * predict can time dltrain's C codecs (`--compress-ms cpu`), but on a GPU
 * the codecs are CUDA kernels, launched run by run (onebit per layer) or
 * piece by piece (PowerSGD per layer), and only the GPU itself can say what
 * they cost.  So this times the compressor itself, on the model's own
 * buckets and layers and on the device the step ran on: every bucket's
 * error feedback and encoding, the exchange (one rank: a copy), and the
 * decoding and mean of its shard, exactly the calls a training step makes,
 * apart from the step so that no forward or backward time blurs it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../comm/bucket.h"
#include "../comm/compress.h"
#include "../runtime/common.h"
#include "bench.h"

/* `iters` compressed averages of every bucket, as one step makes them. */
static dl_status run_codecs(dl_buckets *b, dl_device *dev, int iters)
{
    for (int k = 0; k < iters; k++) {
        double last_done;
        dl_buckets_begin_step(b);
        dl_buckets_ready(b, b->n_params);
        dl_status st = dl_buckets_finish(b, &last_done);
        if (st != DL_OK)
            return st;
    }
    dev->sync(dev); /* a GPU may still be running the last bucket's kernels */
    return DL_OK;
}

static dl_status time_codecs(dl_buckets *b, dl_device *dev, const dl_bench_codec_opts *o,
                             dl_bench_codec *out)
{
    double ms[1000];
    int repeats = o->repeats < 1000 ? o->repeats : 1000;
    dl_status st = run_codecs(b, dev, o->warmup);
    for (int i = 0; st == DL_OK && i < repeats; i++) {
        double t0 = dl_now();
        st = run_codecs(b, dev, o->steps);
        ms[i] = 1e3 * (dl_now() - t0) / o->steps;
    }
    if (st != DL_OK)
        return st;
    dl_sort_doubles(ms, (size_t)repeats);
    out->ms = ms[repeats / 2], out->min_ms = ms[0], out->max_ms = ms[repeats - 1];
    return DL_OK;
}

dl_status dl_bench_codec_time(dl_net *net, dl_comm *comm, dl_compress_spec spec,
                              const dl_bench_codec_opts *o, dl_bench_codec *out)
{
    memset(out, 0, sizeof *out);
    dl_buckets b;
    memset(&b, 0, sizeof b);
    dl_compressor c;
    memset(&c, 0, sizeof c);
    int n_mats = 0;
    dl_grad_matrix *mats = dl_net_grad_matrices_new(net, &n_mats);
    double mb = dl_buckets_default_mb(net->n_params);
    dl_status st = mats ? DL_OK : DL_ERR_OOM;
    if (st == DL_OK)
        st = dl_buckets_init(&b, comm, net->grads, net->n_params,
                             (size_t)(mb * 1048576.0 / sizeof(float)));
    if (st == DL_OK)
        st = dl_buckets_compress(&b, &c, spec, (uint64_t)o->seed, net->dev, mats, n_mats);
    if (st == DL_OK) {
        out->kind = spec.kind, out->buckets = b.count, out->bucket_mb = mb;
        st = time_codecs(&b, net->dev, o, out);
    }
    free(mats);
    dl_compressor_free(&c);
    dl_buckets_free(&b);
    return st;
}
