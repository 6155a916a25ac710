/* train_sync.c: consistency across ranks (see train_sync.h). */
#include "train_sync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dl_train_agree_start(dl_ctx *ctx, int my_rc, const char *stage)
{
    int n_failed = 0, first = -1;
    if (ctx->world == 1)
        return my_rc;
    if (dl_comm_agree(ctx->comm, my_rc != 0, &n_failed, &first) != DL_OK) {
        fprintf(stderr, "dltrain rank %d: %s\n", ctx->rank, dl_error_message());
        ctx->comm->abort(ctx->comm, DL_EXIT_ERROR);
    }
    if (n_failed == 0)
        return 0;
    if (ctx->rank == 0 && my_rc == 0)
        fprintf(stderr, "dltrain: %d rank(s) failed %s, first rank %d (its message is above); "
                "every rank stops\n", n_failed, stage, first);
    return my_rc ? my_rc : DL_EXIT_ERROR;
}

int dl_train_agree_options(dl_ctx *ctx, const dl_train_opts *o)
{
    if (ctx->world == 1)
        return 0;
    dl_train_opts rank0 = *o;
    if (ctx->comm->broadcast(ctx->comm, &rank0, sizeof rank0, 0) != DL_OK) {
        fprintf(stderr, "dltrain rank %d: %s\n", ctx->rank, dl_error_message());
        ctx->comm->abort(ctx->comm, DL_EXIT_ERROR);
    }
    char what[600];
    int differ = dl_train_options_differ(o, &rank0, what, sizeof what);
    if (differ)
        fprintf(stderr, "dltrain rank %d: %s; every rank must be started with the same "
                "settings\n", ctx->rank, what);
    return dl_train_agree_start(ctx, differ ? DL_EXIT_USAGE : 0, "the settings check");
}

static uint64_t data_fingerprint(const dl_dataset *d)
{
    int64_t dims[5] = {(int64_t)d->n, d->c, d->h, d->w, d->classes};
    uint64_t h = dl_hash_bytes(0, dims, sizeof dims);
    h = dl_hash_bytes(h, d->labels, d->n);
    if (d->images) /* every 97th byte: sees a different file without reading 47 MB twice */
        for (size_t i = 0, n = d->n * (size_t)d->c * d->h * d->w; i < n; i += 97)
            h = dl_hash_bytes(h, d->images + i, 1);
    return h;
}

static int check_same_data(dl_ctx *ctx, const dl_dataset *train, const dl_dataset *test)
{
    uint64_t mine[2] = {data_fingerprint(train), data_fingerprint(test)}, rank0[2];
    memcpy(rank0, mine, sizeof mine);
    if (ctx->comm->broadcast(ctx->comm, rank0, sizeof rank0, 0) != DL_OK)
        return DL_EXIT_ERROR;
    int differ = memcmp(mine, rank0, sizeof mine) != 0;
    if (differ)
        fprintf(stderr, "dltrain rank %d: the data in %s differs from rank 0's; every rank must "
                "read the same data set\n", ctx->rank, train->source);
    return dl_train_agree_start(ctx, differ ? DL_EXIT_USAGE : 0, "the data check");
}

/* Broadcasts n floats of device memory from rank 0 through a host copy. */
static dl_status share_floats(dl_ctx *ctx, float *dev_ptr, size_t n)
{
    if (n == 0)
        return DL_OK;
    float *host = dl_alloc(n * sizeof *host, "broadcast staging");
    if (!host)
        return DL_ERR_OOM;
    ctx->dev->download(ctx->dev, host, dev_ptr, n * sizeof *host);
    dl_status st = ctx->comm->broadcast(ctx->comm, host, n * sizeof *host, 0);
    if (st == DL_OK)
        ctx->dev->upload(ctx->dev, dev_ptr, host, n * sizeof *host);
    free(host);
    return st;
}

int dl_train_share_state(dl_ctx *ctx, dl_net *net, float *velocity, dl_progress *prog,
                         const dl_dataset *train, const dl_dataset *test)
{
    if (ctx->world == 1)
        return 0;
    int rc = check_same_data(ctx, train, test);
    if (rc)
        return rc;
    dl_status st = share_floats(ctx, net->params, net->n_params);
    if (st == DL_OK)
        st = share_floats(ctx, net->buffers, net->n_buffers);
    if (st == DL_OK)
        st = share_floats(ctx, velocity, net->n_params);
    if (st == DL_OK)
        st = ctx->comm->broadcast(ctx->comm, prog, sizeof *prog, 0);
    if (st != DL_OK) {
        fprintf(stderr, "dltrain rank %d: sharing rank 0's state failed: %s\n", ctx->rank,
                dl_error_message());
        ctx->comm->abort(ctx->comm, DL_EXIT_ERROR);
    }
    return 0;
}

static uint64_t params_hash(const dl_ctx *ctx, const dl_net *net)
{
    float *host = dl_alloc((net->n_params + 1) * sizeof *host, "parameter hash staging");
    if (!host)
        return 0;
    ctx->dev->download(ctx->dev, host, net->params, net->n_params * sizeof *host);
    uint64_t h = dl_hash_bytes(0, host, net->n_params * sizeof *host);
    free(host);
    return h;
}

int dl_train_check_replicas(dl_ctx *ctx, const dl_net *net, long step)
{
    if (ctx->world == 1)
        return 0;
    uint64_t mine = params_hash(ctx, net), rank0 = mine;
    if (ctx->comm->broadcast(ctx->comm, &rank0, sizeof rank0, 0) != DL_OK) {
        fprintf(stderr, "dltrain rank %d: %s\n", ctx->rank, dl_error_message());
        ctx->comm->abort(ctx->comm, DL_EXIT_ERROR);
    }
    int n_failed = 0, first = -1;
    if (dl_comm_agree(ctx->comm, mine != rank0, &n_failed, &first) != DL_OK)
        ctx->comm->abort(ctx->comm, DL_EXIT_ERROR);
    if (n_failed == 0)
        return 0;
    if (ctx->rank == 0)
        fprintf(stderr, "dltrain: replicas diverged at step %ld: %d rank(s), first rank %d, hold "
                "parameters different from rank 0's; stopping every rank\n", step, n_failed, first);
    return DL_EXIT_ERROR;
}
