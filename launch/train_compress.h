/* train_compress.h: `--compress` in a training run — set-up over the
 * gradient buckets, the start-up summary, and the error-feedback state in
 * checkpoints (see docs/compression.md). */
#ifndef DL_TRAIN_COMPRESS_H
#define DL_TRAIN_COMPRESS_H

#include "../comm/bucket.h"
#include "../comm/compress.h"
#include "../runtime/checkpoint.h"
#include "../runtime/net.h"
#include "context.h"
#include "metrics.h"

typedef struct dl_train_compress {
    dl_compress_spec spec;
    int active;            /* spec is not none */
    uint64_t from_step;    /* --compress-warmup: the first compressed step (0-based) */
    dl_compressor comp;
    dl_grad_matrix *mats;  /* the net's weight matrices (per-layer PowerSGD) */
    int n_mats;
    dl_ckpt_extra loaded;  /* rank 0: the state read from --resume (data NULL if none) */
} dl_train_compress;

/* Parses --compress for `cmd` ("train"); prints the message and returns 2
 * on a bad name, else 0. */
int dl_train_compress_parse(const char *text, const char *cmd, dl_compress_spec *out);
/* Rank 0, after loading a checkpoint into tc->loaded: refuses (DL_ERR_ARG)
 * a checkpoint whose residuals belong to another compressor or rank count. */
dl_status dl_train_compress_check_resume(dl_train_compress *tc, const char *path, int world,
                                         int verbose);
/* After the buckets exist: makes the compressor (PowerSGD over net's weight
 * matrices, layer by layer) and hands it to them. */
dl_status dl_train_compress_setup(dl_train_compress *tc, dl_buckets *b, dl_ctx *ctx,
                                  const dl_net *net, uint64_t seed);
/* Collective: rank 0's loaded state to every rank, each taking its residual. */
dl_status dl_train_compress_share(dl_train_compress *tc, dl_ctx *ctx);
/* Collective: every rank's residual (and the shared state) into *out for
 * the checkpoint (out->data allocated; free it). */
dl_status dl_train_compress_gather(dl_train_compress *tc, dl_ctx *ctx, dl_ckpt_extra *out);
/* The start-up line and a "compression" JSON record: bytes on the wire per
 * rank per step and the compression ratio. */
void dl_train_compress_summary(const dl_train_compress *tc, const dl_buckets *b, dl_ctx *ctx,
                               dl_metrics *m);
/* Before each step: compress from tc->from_step on, plain fp32 averaging
 * before (the residuals stay zero until then). */
void dl_train_compress_step(dl_train_compress *tc, dl_buckets *b, uint64_t step);
void dl_train_compress_free(dl_train_compress *tc);

#endif
