/* comm_local.c: the one-rank backend.  Collectives over one rank are the
 * identity, so training code never special-cases world == 1. */
#include "comm.h"

#include <stdlib.h>
#include <string.h>

static dl_status local_broadcast(dl_comm *c, void *buf, size_t bytes, int root)
{
    (void)c, (void)buf, (void)bytes, (void)root;
    return DL_OK;
}

static dl_status local_sum(dl_comm *c, double *x, int n)
{
    (void)c, (void)x, (void)n;
    return DL_OK;
}

static dl_status local_avg_start(dl_comm *c, float *x, size_t n, int slot)
{
    (void)c, (void)x, (void)n, (void)slot;
    return DL_OK;
}

static dl_status local_allgather_start(dl_comm *c, const void *send, void *recv, size_t bytes,
                                       int slot)
{
    (void)c, (void)slot;
    memmove(recv, send, bytes);
    return DL_OK;
}

static dl_status local_wait(dl_comm *c, int slot, double *done_at)
{
    (void)c, (void)slot;
    if (done_at)
        *done_at = dl_now();
    return DL_OK;
}

static dl_status local_barrier(dl_comm *c)
{
    (void)c;
    return DL_OK;
}

static void local_abort(dl_comm *c, int code)
{
    (void)c;
    exit(code);
}

static void local_free(dl_comm *c) { (void)c; }

static dl_status local_split(dl_comm *c, int color, int key, dl_comm **out)
{
    (void)key;
    *out = color >= 0 ? c : NULL; /* one rank: the group is this rank alone; free is a no-op */
    return DL_OK;
}

dl_comm *dl_comm_local(void)
{
    static dl_comm local = {
        .name = "local",
        .rank = 0,
        .world = 1,
        .local_rank = 0,
        .local_size = 1,
        .broadcast = local_broadcast,
        .allreduce_sum_f64 = local_sum,
        .allreduce_avg_start = local_avg_start,
        .allreduce_wait = local_wait,
        .allgather_start = local_allgather_start,
        .barrier = local_barrier,
        .abort = local_abort,
        .split = local_split,
        .free = local_free,
    };
    return &local;
}

dl_status dl_comm_agree(dl_comm *c, int failed, int *n_failed, int *first_failed)
{
    double *flags = calloc((size_t)c->world, sizeof *flags);
    if (!flags)
        return dl_fail(DL_ERR_OOM, "out of memory for %d rank flags", c->world);
    flags[c->rank] = failed ? 1.0 : 0.0;
    dl_status st = c->allreduce_sum_f64(c, flags, c->world);
    *n_failed = 0, *first_failed = -1;
    for (int r = 0; st == DL_OK && r < c->world; r++)
        if (flags[r] > 0.5) {
            if (*first_failed < 0)
                *first_failed = r;
            (*n_failed)++;
        }
    free(flags);
    return st;
}

void dl_comm_set_patience(dl_comm *c, double patience_s)
{
    if (c->set_patience)
        c->set_patience(c, patience_s);
    else
        c->patience_s = patience_s;
}
