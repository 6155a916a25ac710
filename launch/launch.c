/* launch.c: start-up as a single process or as one rank of an MPI job. */
#define _GNU_SOURCE
#include "launch.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef DLTRAIN_HAVE_TOPO
#include "../comm/topo/topo.h"
#endif

int dl_launcher_world(const char **var)
{
    /* Open MPI, MPICH/Hydra and Slurm's srun each announce the job size. */
    static const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE",
                                 "SLURM_STEP_NUM_TASKS", "MV2_COMM_WORLD_SIZE", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 0) {
            if (var)
                *var = vars[i];
            return atoi(v);
        }
    }
    return 0;
}

int dl_launch_comm(dl_ctx *ctx, int *argc, char ***argv)
{
    const char *var = NULL;
    int world = dl_launcher_world(&var);
    ctx->comm = dl_comm_local();
    if (world == 0 || (world == 1 && !dl_comm_mpi_available())) {
        ctx->rank = 0, ctx->world = 1, ctx->local_rank = 0;
        return 0;
    }
    if (!dl_comm_mpi_available()) {
        fprintf(stderr, "dltrain: started as one of %d ranks (%s=%d), but this dltrain was built "
                "without MPI; install libopenmpi-dev and rebuild, or run it without a launcher\n",
                world, var, world);
        return 2;
    }
    dl_comm *c = dl_comm_mpi(argc, argv);
    if (!c) {
        fprintf(stderr, "dltrain: %s\n", dl_error_message());
        return 1;
    }
    ctx->comm = c;
    ctx->rank = c->rank, ctx->world = c->world, ctx->local_rank = c->local_rank;
    ctx->nodes = c->nodes, ctx->local_size = c->local_size;
    dl_comm_layout(c, ctx->layout, sizeof ctx->layout);
    return 0;
}

int dl_launch_allreduce_name(const char *name, dl_allreduce_algo *out, const char *cmd)
{
    static const char *names[] = {"auto", "flat", "hier"};
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (dl_allreduce_algo)i;
            return 1;
        }
    fprintf(stderr, "dltrain %s: unknown --allreduce '%s' (choose auto, flat or hier)\n", cmd,
            name);
    return 0;
}

int dl_launch_allreduce(dl_ctx *ctx, const char *choice, const char *cmd)
{
    dl_allreduce_algo algo;
    if (!dl_launch_allreduce_name(choice, &algo, cmd))
        return DL_EXIT_USAGE;
    if (dl_comm_set_allreduce(ctx->comm, algo, ctx->allreduce_note,
                              sizeof ctx->allreduce_note) != DL_OK) {
        fprintf(stderr, "dltrain %s: %s\n", cmd, dl_error_message());
        return DL_EXIT_USAGE;
    }
    return 0;
}

int dl_launch_default_threads(const dl_ctx *ctx)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int per_node = ctx->comm && ctx->comm->local_size > 0 ? ctx->comm->local_size : 1;
    long t = cores / per_node;
    /* never more than the cores this process may run on: a launcher's
     * binding, a batch system's cpuset, or a share of a machine that hosts
     * several nodes (scripts/vcluster.sh) */
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) < t)
        t = CPU_COUNT(&allowed);
    return t > 0 ? (int)t : 1;
}

void dl_launch_finish(dl_ctx *ctx)
{
    if (ctx->comm && ctx->comm->free)
        ctx->comm->free(ctx->comm);
    ctx->comm = NULL;
}

void dl_launch_place(dl_ctx *ctx, int bind, int gpu)
{
    /* the topology maps "local rank" r to GPU r modulo the GPUs, so an
     * explicit GPU (from --gpus) is placed by passing it as the rank */
    int slot = gpu >= 0 ? gpu : ctx->local_rank;
    ctx->placement[0] = 0;
#ifdef DLTRAIN_HAVE_TOPO
    dl_topo topo;
    if (dl_topo_discover("/sys", &topo) == DL_OK && topo.n_gpus > 0) {
        dl_topo_placement p;
        if (dl_topo_place_local_rank(&topo, slot, bind, &p) != DL_OK)
            fprintf(stderr, "dltrain rank %d: warning: %s\n", ctx->rank, dl_error_message());
        snprintf(ctx->placement, sizeof ctx->placement, "%s", p.line);
    }
    dl_topo_free(&topo);
#else
    (void)bind, (void)slot;
#endif
}
