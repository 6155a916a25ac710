/* scale_pairs.c: where the machine offers GPU pairs that differ in topology
 * (two GPUs under one switch, two on different root complexes or CPUs),
 * `dltrain scale` measures one pair of each kind besides ranks 0 and 1, and
 * labels every pair with its path and bottleneck link. */
#include <stdio.h>
#include <stdlib.h>

#include "launch.h"
#include "scale.h"
#include "scale_subsets.h"

/* Every rank's GPU as the topology numbers them (-1: none), shared by all. */
static dl_status gather_gpus(scale_run *r, const dl_topo *t, int *gpu_of_rank)
{
    dl_ctx *ctx = r->ctx;
    int listed = dl_launch_listed_gpu(ctx, r->o->gpus);
    int mine = dl_topo_gpu_for_local_rank(t, listed >= 0 ? listed : ctx->local_rank);
    double *v = calloc((size_t)ctx->world, sizeof *v);
    if (!v)
        return dl_fail(DL_ERR_OOM, "out of memory for %d ranks' GPUs", ctx->world);
    v[ctx->rank] = mine + 1.0;
    dl_status st = ctx->comm->allreduce_sum_f64(ctx->comm, v, ctx->world);
    for (int i = 0; i < ctx->world; i++)
        gpu_of_rank[i] = (int)v[i] - 1;
    free(v);
    return st;
}

static dl_status measure_pairs(scale_run *r, const dl_topo *t, const dl_scale_pair *pairs, int n)
{
    dl_status st = DL_OK;
    for (int i = 0; st == DL_OK && i < n; i++) {
        char label[160];
        dl_scale_pair_label(t, &pairs[i], label, sizeof label);
        if (pairs[i].rank_a == 0 && pairs[i].rank_b == 1) { /* measured already as size 2 */
            for (int k = 0; r->ctx->rank == 0 && k < r->n_points; k++)
                if (r->points[k].ranks == 2 && r->points[k].first_rank == 0)
                    snprintf(r->points[k].label, sizeof r->points[k].label, "%s", label);
            continue;
        }
        int ranks[2] = {pairs[i].rank_a, pairs[i].rank_b};
        scale_point p = {0};
        st = dl_scale_measure_ranks(r, ranks, 2, label, &p);
        if (st == DL_OK && r->ctx->rank == 0 && r->n_points < DL_SCALE_MAX_POINTS) {
            r->points[r->n_points++] = p;
            printf("  2 ranks (%s): %.1f images/s\n", label, p.ips_median);
            fflush(stdout);
        }
    }
    return st;
}

dl_status dl_scale_measure_pairs(scale_run *r)
{
    dl_ctx *ctx = r->ctx;
    /* Same answer on every rank: the device kind was agreed at start-up. */
    if (ctx->dev->kind != DL_DEVICE_CUDA || ctx->world < 2 || ctx->comm->local_size != ctx->world)
        return DL_OK;
    dl_topo t;
    dl_status st = dl_topo_discover("/sys", &t);
    int *gpu_of_rank = calloc((size_t)ctx->world, sizeof *gpu_of_rank);
    if (!gpu_of_rank)
        st = dl_fail(DL_ERR_OOM, "out of memory for %d ranks' GPUs", ctx->world);
    int n = 0;
    dl_scale_pair pairs[DL_SCALE_MAX_PAIRS];
    /* every rank reads the same /sys, so every rank finds the same pairs */
    if (st == DL_OK && (st = gather_gpus(r, &t, gpu_of_rank)) == DL_OK)
        n = dl_scale_distinct_pairs(&t, gpu_of_rank, ctx->world, pairs, DL_SCALE_MAX_PAIRS);
    if (st == DL_OK)
        st = measure_pairs(r, &t, pairs, n);
    free(gpu_of_rank);
    dl_topo_free(&t);
    return st;
}
