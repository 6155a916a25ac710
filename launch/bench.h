/* bench.h: `dltrain bench` subcommands. */
#ifndef DL_BENCH_H
#define DL_BENCH_H

#include "../comm/comm.h"
#include "../comm/compress.h"
#include "../runtime/net.h"

int dl_cmd_bench(int argc, char **argv);

/* bench train --compress (bench_codec.c): the compressor's time per step on
 * net's device, over net's default buckets and its layers, at comm's ranks
 * (one: the exchange is a copy): the median of `repeats` timings of `steps`
 * compressed averages of every bucket, after `warmup` untimed ones. */
typedef struct dl_bench_codec_opts {
    int warmup, steps, repeats;
    long seed;
} dl_bench_codec_opts;
typedef struct dl_bench_codec {
    dl_compress_kind kind;     /* what was timed (DL_COMPRESS_NONE: nothing) */
    double ms, min_ms, max_ms; /* per step: median, min and max of the repeats */
    double bucket_mb;
    int buckets;
} dl_bench_codec;
dl_status dl_bench_codec_time(dl_net *net, dl_comm *comm, dl_compress_spec spec,
                              const dl_bench_codec_opts *o, dl_bench_codec *out);

#endif
