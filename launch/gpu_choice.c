/* gpu_choice.c: the GPU a rank opens (see gpu_choice.h). */
#include "gpu_choice.h"

#include <stdio.h>
#include <stdlib.h>

#include "../runtime/parse.h"

#define MAX_LISTED_GPUS 256

int dl_gpu_parse_list(const char *text, int *out, int max)
{
    return dl_parse_int_list(text, 0, 1 << 20, out, max);
}

int dl_gpu_machine_index(int local_rank, int local_size, const char *gpus,
                         const char *cuda_visible)
{
    int listed[MAX_LISTED_GPUS], visible[MAX_LISTED_GPUS];
    int n_listed = gpus && gpus[0] ? dl_gpu_parse_list(gpus, listed, MAX_LISTED_GPUS) : 0;
    int n_visible = cuda_visible && cuda_visible[0]
                        ? dl_gpu_parse_list(cuda_visible, visible, MAX_LISTED_GPUS) : 0;
    if (n_listed < 0 || n_visible < 0)
        return -1;
    int index; /* among the visible devices, as dl_gpu_choose picks it */
    if (n_listed > 0)
        index = local_rank < n_listed ? listed[local_rank] : -1;
    else if (n_visible > 0)
        index = local_size <= n_visible ? local_rank : 0;
    else
        return -1;
    if (index < 0 || (n_visible > 0 && index >= n_visible))
        return -1;
    return n_visible > 0 ? visible[index] : index;
}

static int choose_listed(const dl_gpu_choice_in *in, char *msg, size_t cap)
{
    int listed[MAX_LISTED_GPUS];
    int n = dl_gpu_parse_list(in->gpus, listed, MAX_LISTED_GPUS);
    if (n <= 0) {
        snprintf(msg, cap, "--gpus '%s' is not a list of GPU indices like 0,2", in->gpus);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (listed[i] >= in->visible) {
            snprintf(msg, cap, "--gpus lists GPU %d, but this node has %d GPU(s) (indices 0..%d)",
                     listed[i], in->visible, in->visible - 1);
            return -1;
        }
    if (in->local_size > n) {
        snprintf(msg, cap, "%d ranks on this node but --gpus lists %d GPU(s); list one per rank "
                 "(repeat an index to share a GPU, with --comm mpi)", in->local_size, n);
        return -1;
    }
    snprintf(msg, cap, "GPU from --gpus");
    return listed[in->local_rank];
}

int dl_gpu_choose(const dl_gpu_choice_in *in, char *msg, size_t cap)
{
    int local_size = in->local_size > 0 ? in->local_size : 1;
    if (in->visible < 1) {
        snprintf(msg, cap, "no CUDA device is visible");
        return -1;
    }
    if (in->gpus && in->gpus[0])
        return choose_listed(in, msg, cap);
    if (local_size <= in->visible) {
        snprintf(msg, cap, "GPU chosen by node-local rank");
        return in->local_rank;
    }
    /* Fewer devices than local ranks, but the launcher narrowed what this
     * process sees: each rank has its own set (one GPU under Slurm's
     * --gpus-per-task=1).  Two ranks given the same GPU this way are NCCL's
     * to refuse ("duplicate GPU"), or fine with --comm mpi. */
    if (in->cuda_visible && in->cuda_visible[0]) {
        snprintf(msg, cap, "the first of the GPU(s) CUDA_VISIBLE_DEVICES=%.64s gives this rank",
                 in->cuda_visible);
        return 0;
    }
    snprintf(msg, cap, "%d ranks on this node but only %d GPU(s): start at most %d rank(s) per "
             "node, give each rank its GPU with CUDA_VISIBLE_DEVICES, or share GPUs with --gpus "
             "and --comm mpi", local_size, in->visible, in->visible);
    return -1;
}
