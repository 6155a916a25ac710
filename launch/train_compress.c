/* train_compress.c: --compress in a training run (see train_compress.h). */
#include "train_compress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dl_train_compress_parse(const char *text, const char *cmd, dl_compress_spec *out)
{
    if (dl_compress_parse(text, out) == DL_OK)
        return 0;
    fprintf(stderr, "dltrain %s: %s\n", cmd, dl_error_message());
    return 2;
}

/* "compress int8": the checkpoint section that holds the state of s. */
static void section_name(dl_compress_spec s, char *out, size_t size)
{
    char name[24];
    dl_compress_name(s, name, sizeof name);
    snprintf(out, size, "compress %.20s", name);
}

dl_status dl_train_compress_check_resume(dl_train_compress *tc, const char *path, int world,
                                         int verbose)
{
    char want[32], name[24];
    section_name(tc->spec, want, sizeof want);
    dl_compress_name(tc->spec, name, sizeof name);
    const char *saved = tc->loaded.data ? tc->loaded.name : NULL;
    if (saved && strncmp(saved, "compress ", 9) != 0)
        return dl_fail(DL_ERR_FORMAT, "%s holds an unknown section '%s'", path, saved);
    if (saved && strcmp(saved, want) != 0)
        return dl_fail(DL_ERR_ARG, "%s was saved with --compress %s and this run has --compress "
                       "%s: its error-feedback residuals belong to %s; resume with --compress %s",
                       path, saved + 9, name, saved + 9, saved + 9);
    if (saved && tc->loaded.world != world)
        return dl_fail(DL_ERR_ARG, "%s holds the error-feedback residuals of %d rank(s), this run "
                       "has %d: resume on %d rank(s)", path, tc->loaded.world, world,
                       tc->loaded.world);
    if (!saved && tc->active && verbose)
        printf("note: %s holds no compression state; error feedback starts from zero\n", path);
    return DL_OK;
}

/* The net's weight matrices into tc (none for a net without conv or fc). */
static dl_status take_matrices(dl_train_compress *tc, const dl_net *net)
{
    tc->mats = dl_net_grad_matrices_new(net, &tc->n_mats);
    return tc->mats ? DL_OK : DL_ERR_OOM;
}

dl_status dl_train_compress_setup(dl_train_compress *tc, dl_buckets *b, dl_ctx *ctx,
                                  const dl_net *net, uint64_t seed)
{
    if (!tc->active)
        return DL_OK;
    dl_status st = take_matrices(tc, net);
    if (st != DL_OK)
        return st;
    if (!dl_compress_placement(ctx->dev))
        return dl_fail(DL_ERR_ARG, "--compress on the %s device is not built into this dltrain; "
                       "use --compress none", ctx->dev->name);
    if (!ctx->comm->allgather_start)
        return dl_fail(DL_ERR_ARG, "the %s backend has no all-gather for compressed gradients "
                       "yet; use --compress none", ctx->comm->name);
    if (ctx->dev->kind != DL_DEVICE_CPU && !ctx->comm->device_memory && ctx->world > 1)
        return dl_fail(DL_ERR_ARG, "--compress on GPU gradients needs the NCCL or staged MPI "
                       "backend; the %s backend exchanges host memory", ctx->comm->name);
    st = dl_buckets_compress(b, &tc->comp, tc->spec, seed, ctx->dev, tc->mats, tc->n_mats);
    if (st != DL_OK)
        return st;
    size_t want = (size_t)ctx->world * tc->comp.n + tc->comp.n_shared;
    if (tc->loaded.data && tc->loaded.count != want)
        return dl_fail(DL_ERR_ARG, "the checkpoint's compression state has %llu values, this run "
                       "needs %zu (%s?)", (unsigned long long)tc->loaded.count, want,
                       tc->spec.kind == DL_COMPRESS_POWERSGD
                           ? "PowerSGD's state from a dltrain that folded each bucket into one "
                             "matrix" : "another bucket size");
    return DL_OK;
}

dl_status dl_train_compress_share(dl_train_compress *tc, dl_ctx *ctx)
{
    if (!tc->active)
        return DL_OK;
    int have = tc->loaded.data != NULL;
    dl_status st = ctx->comm->broadcast(ctx->comm, &have, sizeof have, 0);
    if (st != DL_OK || !have)
        return st;
    dl_compressor *c = &tc->comp;
    size_t count = (size_t)ctx->world * c->n + c->n_shared;
    float *all = tc->loaded.data;
    if (!all && !(all = tc->loaded.data = dl_alloc((count + 1) * sizeof *all, "resumed state")))
        return DL_ERR_OOM;
    st = ctx->comm->broadcast(ctx->comm, all, count * sizeof *all, 0);
    if (st != DL_OK)
        return st;
    /* to GPU memory too, where the compressor runs on the GPU */
    dl_compressor_set_state(c, all + (size_t)ctx->rank * c->n, all + (size_t)ctx->world * c->n);
    free(tc->loaded.data);
    tc->loaded.data = NULL;
    return DL_OK;
}

dl_status dl_train_compress_gather(dl_train_compress *tc, dl_ctx *ctx, dl_ckpt_extra *out)
{
    memset(out, 0, sizeof *out);
    dl_compressor *c = &tc->comp;
    size_t count = (size_t)ctx->world * c->n + c->n_shared;
    float *all = dl_alloc((count + 1) * sizeof *all, "compression state for the checkpoint");
    if (!all)
        return DL_ERR_OOM;
    /* This rank's state to host memory (from the GPU: after the queued
     * steps), then every rank's residual to every rank by broadcasts, which
     * every backend runs on host memory (an all-gather of NCCL's or the
     * staged backend's would want GPU memory). */
    float *mine = all + (size_t)ctx->rank * c->n, *shared = all + (size_t)ctx->world * c->n;
    float *state = dl_alloc((c->n_state + 1) * sizeof *state, "compression state");
    if (!state) {
        free(all);
        return DL_ERR_OOM;
    }
    dl_compressor_get_state(c, state);
    memcpy(mine, state, c->n * sizeof *all);
    memcpy(shared, state + c->n, c->n_shared * sizeof *all);
    free(state);
    dl_status st = DL_OK;
    for (int r = 0; r < ctx->world && st == DL_OK; r++)
        st = ctx->comm->broadcast(ctx->comm, all + (size_t)r * c->n, c->n * sizeof *all, r);
    if (st != DL_OK) {
        free(all);
        return st;
    }
    section_name(tc->spec, out->name, sizeof out->name);
    out->world = ctx->world, out->count = count, out->data = all;
    return DL_OK;
}

/* The weight matrices sent low-rank (each whole, in one bucket). */
static int low_rank_matrices(const dl_compressor *c)
{
    int count = 0;
    for (int i = 0; i < c->n_buckets; i++)
        count += c->plans[i].n_pieces;
    return count;
}

/* onebit per layer: the values of the tensors sent as exact fp32. */
static size_t exact_values(const dl_compressor *c)
{
    size_t count = 0;
    for (int i = 0; c->segs && i < c->n_buckets; i++)
        for (size_t j = 0; j < c->n_segs[i]; j++)
            count += c->segs[i][j].kind == DL_COMPRESS_NONE ? c->segs[i][j].n : 0;
    return count;
}

void dl_train_compress_summary(const dl_train_compress *tc, const dl_buckets *b, dl_ctx *ctx,
                               dl_metrics *m)
{
    if (!tc->active || !ctx->verbose)
        return;
    size_t *n = malloc((size_t)b->count * sizeof *n), *lo = malloc((size_t)b->count * sizeof *lo);
    if (!n || !lo) {
        free(n), free(lo);
        return;
    }
    dl_buckets_layout(b, lo, n);
    dl_compress_spec none = {DL_COMPRESS_NONE, 0};
    double wire = dl_compress_wire_bytes(tc->spec, ctx->world, n, b->count, tc->mats, tc->n_mats);
    double fp32 = dl_compress_wire_bytes(none, ctx->world, n, b->count, NULL, 0);
    double ratio = dl_compress_ratio(tc->spec, n, b->count, tc->mats, tc->n_mats);
    free(n), free(lo);
    char name[24], body[360], how[128] = "";
    dl_compress_name(tc->spec, name, sizeof name);
    if (tc->spec.kind == DL_COMPRESS_POWERSGD)
        snprintf(how, sizeof how, " per layer (%d of %d weight matrices low-rank)",
                 low_rank_matrices(&tc->comp), tc->n_mats);
    size_t exact = exact_values(&tc->comp);
    if (tc->spec.kind == DL_COMPRESS_ONEBIT && tc->comp.per_layer)
        snprintf(how, sizeof how, " per layer (%zu of %zu values exact: the tensors under %d)",
                 exact, tc->comp.n, DL_ONEBIT_EXACT_BELOW);
    printf("  gradient compression %s%s with error feedback: %.3f MB on the wire per rank per "
           "step (fp32 all-reduce: %.3f MB), compression ratio %.2f\n", name, how, wire * 1e-6,
           fp32 * 1e-6, ratio);
    if (tc->from_step)
        printf("  the first %llu steps uncompressed (--compress-warmup)\n",
               (unsigned long long)tc->from_step);
    else if (tc->spec.kind == DL_COMPRESS_ONEBIT) /* the one compressor measured to need it */
        printf("  note: onebit from the first step; on lenet (docs/compression.md) it stayed "
               "within 1 point of none only with --compress-warmup 1 (one uncompressed epoch "
               "first)\n");
    snprintf(body, sizeof body, "\"type\":\"compression\",\"compress\":\"%s\",\"ranks\":%d,"
             "\"wire_bytes_per_step\":%.0f,\"fp32_wire_bytes_per_step\":%.0f,"
             "\"compression_ratio\":%.6g,\"uncompressed_steps\":%llu,\"exact_values\":%zu", name,
             ctx->world, wire, fp32, ratio, (unsigned long long)tc->from_step, exact);
    dl_metrics_json_line(m, body);
}

void dl_train_compress_step(dl_train_compress *tc, dl_buckets *b, uint64_t step)
{
    if (tc->active)
        b->compress = step >= tc->from_step ? &tc->comp : NULL;
}

void dl_train_compress_free(dl_train_compress *tc)
{
    if (tc->active)
        dl_compressor_free(&tc->comp);
    free(tc->loaded.data);
    tc->loaded.data = NULL;
    free(tc->mats);
    tc->mats = NULL, tc->n_mats = 0;
}
