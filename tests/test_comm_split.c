/* test_comm_split.c: the MPI backend's split, run under mpiexec with 4 ranks
 * (tests/scale.cmake).  Groups must behave like a world of their own: ranks
 * ordered by key, all-reduce averaging over the members only (several
 * buckets in flight, as the gradient path uses them), metrics sums,
 * broadcast, barrier, nested splits, ranks left out (NULL), the world still
 * usable while groups exist and after they are freed, and many split/free
 * rounds without a hang or a leak of slots. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "comm.h"

static int failures;

#include "expect.h"

#define OK(call) EXPECT((call) == DL_OK, "%s failed: %s", #call, dl_error_message())

enum { COUNT = 3000, BUCKETS = 3 };

/* Averages job-rank-dependent values over g with BUCKETS requests in flight
 * and checks them against the members' job ranks listed in members[]. */
static void check_avg(dl_comm *g, int job_rank, const int *members, int n_members)
{
    static float x[COUNT];
    for (int i = 0; i < COUNT; i++)
        x[i] = (float)(job_rank * 100 + i % 50);
    for (int b = 0; b < BUCKETS; b++)
        OK(g->allreduce_avg_start(g, x + b * (COUNT / BUCKETS), COUNT / BUCKETS, b));
    for (int b = BUCKETS - 1; b >= 0; b--) {
        double done = -1;
        OK(g->allreduce_wait(g, b, &done));
        EXPECT(done > 0, "bucket %d: no completion time", b);
    }
    double member_mean = 0;
    for (int k = 0; k < n_members; k++)
        member_mean += members[k] * 100.0 / n_members;
    int bad = 0;
    for (int i = 0; i < COUNT; i++)
        bad += fabs(x[i] - (member_mean + i % 50)) > 1e-3;
    EXPECT(bad == 0, "job rank %d: %d of %d averaged elements wrong (x[0]=%g, want %g)", job_rank,
           bad, COUNT, x[0], member_mean);
}

/* Even and odd ranks in two groups, ordered by descending job rank. */
static void check_parity_groups(dl_comm *w)
{
    dl_comm *g = NULL;
    OK(w->split(w, w->rank % 2, -w->rank, &g));
    EXPECT(g != NULL, "rank %d got no group", w->rank);
    if (!g)
        return;
    int members[8], n = 0;
    for (int r = w->world - 1; r >= 0; r--)
        if (r % 2 == w->rank % 2)
            members[n++] = r;
    EXPECT(g->world == n, "group of %d ranks, want %d", g->world, n);
    int want_rank = 0;
    while (members[want_rank] != w->rank)
        want_rank++;
    EXPECT(g->rank == want_rank, "job rank %d is group rank %d, want %d", w->rank, g->rank,
           want_rank);
    EXPECT(g->local_size == n, "local size %d, want %d (one node)", g->local_size, n);
    check_avg(g, w->rank, members, n);

    double sum[2] = {1.0, (double)w->rank};
    OK(g->allreduce_sum_f64(g, sum, 2));
    double want_sum = 0;
    for (int k = 0; k < n; k++)
        want_sum += members[k];
    EXPECT(sum[0] == n && sum[1] == want_sum, "sum %g %g, want %d %g", sum[0], sum[1], n, want_sum);

    int token = g->rank == 0 ? 1000 + w->rank : -1;
    OK(g->broadcast(g, &token, sizeof token, 0));
    EXPECT(token == 1000 + members[0], "broadcast gave %d, want %d", token, 1000 + members[0]);

    /* the world works while the group exists */
    double one = 1.0;
    OK(w->allreduce_sum_f64(w, &one, 1));
    EXPECT(one == w->world, "world sum %g during a group, want %d", one, w->world);

    /* a split of the group: each member alone */
    dl_comm *solo = NULL;
    OK(g->split(g, g->rank, 0, &solo));
    EXPECT(solo && solo->world == 1 && solo->rank == 0, "nested split: not a group of one");
    if (solo) {
        int me[1] = {w->rank};
        check_avg(solo, w->rank, me, 1);
        solo->free(solo);
    }
    OK(g->barrier(g));
    g->free(g);
}

/* The groups `dltrain scale` makes: the first `size` ranks, the rest out. */
static void check_prefix_groups(dl_comm *w, int rounds)
{
    for (int round = 0; round < rounds; round++)
        for (int size = 1; size <= w->world; size *= 2) {
            dl_comm *g = NULL;
            int in = w->rank < size;
            OK(w->split(w, in ? 0 : -1, w->rank, &g));
            EXPECT(in == (g != NULL), "rank %d: in=%d but group %p", w->rank, in, (void *)g);
            if (g) {
                int members[64];
                for (int k = 0; k < size; k++)
                    members[k] = k;
                EXPECT(g->world == size && g->rank == w->rank, "prefix group %d/%d, want %d/%d",
                       g->rank, g->world, w->rank, size);
                check_avg(g, w->rank, members, size);
                g->free(g);
            }
            OK(w->barrier(w));
        }
}

int main(int argc, char **argv)
{
    dl_comm *w = dl_comm_mpi(&argc, &argv);
    if (!w) {
        fprintf(stderr, "test_comm_split: %s\n", dl_error_message());
        return 1;
    }
    w->timeout_s = 30;
    check_parity_groups(w);
    check_prefix_groups(w, 10);
    int all[64];
    for (int k = 0; k < w->world; k++)
        all[k] = k;
    check_avg(w, w->rank, all, w->world); /* the world after its groups are gone */
    int n_failed = 0, first = -1;
    OK(dl_comm_agree(w, failures > 0, &n_failed, &first));
    if (w->rank == 0)
        printf("test_comm_split: %d ranks, %s\n", w->world,
               n_failed ? "FAILED (see above)" : "every group check passed");
    w->free(w);
    return n_failed ? 1 : 0;
}
