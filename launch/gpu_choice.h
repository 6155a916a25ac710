/* gpu_choice.h: which CUDA device a rank opens (a pure function, unit-tested
 * without a GPU in tests/test_gpu_choice.c). */
#ifndef DL_GPU_CHOICE_H
#define DL_GPU_CHOICE_H
#include <stddef.h>

typedef struct dl_gpu_choice_in {
    int local_rank, local_size; /* this rank within its node */
    int visible;                /* CUDA devices this process sees */
    const char *gpus;           /* --gpus "I,J,.." or "" */
    const char *cuda_visible;   /* $CUDA_VISIBLE_DEVICES, NULL when unset */
} dl_gpu_choice_in;

/* The device index to open, or -1 with the reason (one line, naming the
 * option) in msg.  On success msg says how it was chosen.
 *  - --gpus: local rank r takes the r-th entry.
 *  - else, with at least one device per local rank: device local_rank.
 *  - else, when the launcher set CUDA_VISIBLE_DEVICES and fewer devices are
 *    visible than there are local ranks (Slurm --gpus-per-task, a wrapper
 *    per rank): the launcher already gave this rank its GPU(s): device 0.
 *  - else: refused (more ranks than GPUs). */
int dl_gpu_choose(const dl_gpu_choice_in *in, char *msg, size_t cap);

/* The GPU a rank will use as the machine numbers them (nvidia-smi's and
 * `dltrain topo`'s index), known before CUDA is asked, for CPU binding and
 * `scale`'s pairs: the choice dl_gpu_choose will make, translated through
 * $CUDA_VISIBLE_DEVICES when that is a list of indices (with
 * CUDA_VISIBLE_DEVICES=3 the rank's device 0 is GPU 3).  -1 when it cannot
 * be known this way (UUIDs; no --gpus and no CUDA_VISIBLE_DEVICES): the
 * caller then falls back to the local rank. */
int dl_gpu_machine_index(int local_rank, int local_size, const char *gpus,
                         const char *cuda_visible);

/* "0,2,3" -> {0, 2, 3}; the count, or -1 on a malformed list. */
int dl_gpu_parse_list(const char *text, int *out, int max);
#endif
