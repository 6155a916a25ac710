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
/* Default CPU threads for this rank: the node's cores shared by its ranks, at
 * most the cores it may run on (its CPU affinity). */
int dl_launch_default_threads(const dl_ctx *ctx);
void dl_launch_finish(dl_ctx *ctx);
/* --allreduce NAME: 1 for auto, flat or hier (into *out), else 0 after
 * printing one line naming cmd. */
int dl_launch_allreduce_name(const char *name, dl_allreduce_algo *out, const char *cmd);
/* Sets how the MPI backend sums gradients (collective: every rank, same
 * choice, before dl_launch_comm_backend wraps the backend) and fills
 * ctx->allreduce_note.  Returns 0 or an exit status after one line. */
int dl_launch_allreduce(dl_ctx *ctx, const char *choice, const char *cmd);
/* Chooses this rank's GPU by node-local rank (or takes `gpu` when >= 0, from
 * --gpus) and, when bind is set, binds the process to the CPUs local to that
 * GPU (before any thread starts, so all inherit it).  Fills ctx->placement;
 * nothing happens on a machine without GPUs. */
void dl_launch_place(dl_ctx *ctx, int bind, int gpu);
/* The GPU --gpus gives this rank (its node-local rank's entry), or -1 when
 * the list is empty, malformed or too short (dl_launch_device says why). */
int dl_launch_listed_gpu(const dl_ctx *ctx, const char *gpus);

/* Rejects unknown --device/--precision/--comm names and a malformed --gpus
 * list (comm and gpus may be NULL); returns -1 to go on or an exit status
 * after printing why. */
int dl_launch_check_device_names(const char *device, const char *precision, const char *comm,
                                 const char *gpus, const char *cmd);
/* Opens this rank's device: --device auto|cpu|cuda, the GPU from --gpus or
 * the node-local rank, the --precision mode.  Fills ctx->dev and
 * ctx->device_note; returns 0, or an exit status after one line on stderr. */
int dl_launch_device(dl_ctx *ctx, const char *device, const char *gpus, const char *precision,
                     int threads, const char *cmd);
void dl_launch_device_close(dl_ctx *ctx);
/* --conv: rejects an unknown name (-1 to go on, or an exit status after
 * printing why); then, after dl_launch_device and before the network is
 * built, sets how a CUDA device convolves: auto = cuDNN when it initialises
 * (GEMMs under --precision bf16), cudnn (or stop), gemm.  Appends ", conv
 * cudnn 9.19.0" (or why not) to ctx->device_note.  The CPU device accepts
 * auto and gemm.  Returns 0 or an exit status after one line on stderr. */
int dl_launch_check_conv_name(const char *conv, const char *cmd);
int dl_launch_conv(dl_ctx *ctx, const char *conv, const char *precision, const char *cmd);
/* Puts the gradient backend for ctx->dev in place over the host backend:
 * --comm auto|mpi|nccl.  Collective: every rank must call it with the same
 * choice and the same kind of device.  Returns 0 or an exit status. */
int dl_launch_comm_backend(dl_ctx *ctx, const char *choice, const char *cmd);

#endif
