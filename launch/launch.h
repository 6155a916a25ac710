/* launch.h: how this process was started (alone, or as one rank of a job
 * started by mpirun or srun) and the context that follows from it. */
#ifndef DL_LAUNCH_H
#define DL_LAUNCH_H

#include "context.h"

/* Ranks the launcher says the job has (0 when not started by a launcher);
 * names the variable it read in var. */
int dl_launcher_world(const char **var);
/* Sets ctx->comm/rank/world/local_rank: MPI under a launcher, else local.
 * Returns an exit status (non-zero after printing why) or 0. */
int dl_launch_comm(dl_ctx *ctx, int *argc, char ***argv);
/* Default CPU threads for this rank: the node's cores shared by its ranks. */
int dl_launch_default_threads(const dl_ctx *ctx);
void dl_launch_finish(dl_ctx *ctx);
/* Chooses this rank's GPU by node-local rank and, when bind is set, binds the
 * process to the CPUs local to that GPU (before any thread starts, so all
 * inherit it).  Fills ctx->placement; nothing happens on a machine without GPUs. */
void dl_launch_place(dl_ctx *ctx, int bind);

#endif
