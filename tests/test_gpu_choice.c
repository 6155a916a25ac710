/* test_gpu_choice.c: which GPU a rank opens (launch/gpu_choice.c), for every
 * way a launcher can hand out GPUs; no GPU needed. */
#include <stdio.h>
#include <string.h>

#include "gpu_choice.h"

static int failures;

static void expect(const char *name, dl_gpu_choice_in in, int want, const char *needle)
{
    char msg[512] = "";
    int got = dl_gpu_choose(&in, msg, sizeof msg);
    int ok = got == want && strstr(msg, needle) != NULL;
    printf("%s %s: %d (%s)\n", ok ? "ok  " : "FAIL", name, got, msg);
    if (!ok) {
        printf("     expected %d and a message with '%s'\n", want, needle);
        failures++;
    }
}

int main(void)
{
    /* one node, 4 GPUs visible to every rank: device = local rank */
    expect("4 ranks, 4 GPUs, rank 2", (dl_gpu_choice_in){2, 4, 4, "", NULL}, 2, "local rank");
    expect("2 ranks, 8 GPUs, rank 1", (dl_gpu_choice_in){1, 2, 8, "", "0,1,2,3,4,5,6,7"}, 1,
           "local rank");
    expect("one rank, one GPU", (dl_gpu_choice_in){0, 1, 1, "", NULL}, 0, "local rank");
    /* Slurm --gpus-per-task=1: each rank sees only its own GPU */
    expect("4 ranks, per-rank CUDA_VISIBLE_DEVICES=3, rank 3", (dl_gpu_choice_in){3, 4, 1, "", "3"},
           0, "CUDA_VISIBLE_DEVICES=3");
    expect("4 ranks, per-rank CUDA_VISIBLE_DEVICES=GPU-uuid, rank 1",
           (dl_gpu_choice_in){1, 4, 1, "", "GPU-8c2f"}, 0, "GPU-8c2f");
    expect("4 ranks, 2 GPUs each (--gpus-per-task=2), rank 3",
           (dl_gpu_choice_in){3, 4, 2, "", "6,7"}, 0, "first of");
    /* too few GPUs and nothing narrowed the view: refused, naming the ways out */
    expect("4 ranks, 1 GPU, no CUDA_VISIBLE_DEVICES", (dl_gpu_choice_in){1, 4, 1, "", NULL}, -1,
           "4 ranks on this node but only 1 GPU");
    expect("4 ranks, 2 GPUs, empty CUDA_VISIBLE_DEVICES", (dl_gpu_choice_in){0, 4, 2, "", ""}, -1,
           "CUDA_VISIBLE_DEVICES");
    expect("no device visible", (dl_gpu_choice_in){0, 1, 0, "", "0"}, -1, "no CUDA device");
    /* --gpus wins over everything */
    expect("--gpus 0,0,1,1 rank 2", (dl_gpu_choice_in){2, 4, 2, "0,0,1,1", NULL}, 1, "--gpus");
    expect("--gpus with per-rank visibility", (dl_gpu_choice_in){1, 2, 1, "0,0", "5"}, 0, "--gpus");
    expect("--gpus beyond the visible", (dl_gpu_choice_in){0, 1, 2, "3", NULL}, -1, "lists GPU 3");
    expect("--gpus too short", (dl_gpu_choice_in){0, 4, 4, "0,1", NULL}, -1, "lists 2 GPU(s)");
    expect("--gpus malformed", (dl_gpu_choice_in){0, 1, 4, "0,,1", NULL}, -1, "not a list");
    /* the same choices as the machine numbers GPUs, for CPU binding */
    struct {
        const char *name;
        int local_rank, local_size;
        const char *gpus, *visible;
        int want;
    } m[] = {
        {"no --gpus, no CUDA_VISIBLE_DEVICES: unknown", 1, 4, "", NULL, -1},
        {"--gpus 2,3 rank 1", 1, 2, "2,3", NULL, 3},
        {"per-rank CUDA_VISIBLE_DEVICES=3", 3, 4, "", "3", 3},
        {"CUDA_VISIBLE_DEVICES=4,5,6,7 for all, rank 2", 2, 4, "", "4,5,6,7", 6},
        {"CUDA_VISIBLE_DEVICES=6,7 per rank, rank 3", 3, 4, "", "6,7", 6},
        {"--gpus 1 through CUDA_VISIBLE_DEVICES=2,5", 0, 1, "1", "2,5", 5},
        {"--gpus beyond CUDA_VISIBLE_DEVICES", 0, 1, "2", "2,5", -1},
        {"UUIDs: unknown", 0, 2, "", "GPU-8c2f,GPU-77aa", -1},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        int got = dl_gpu_machine_index(m[i].local_rank, m[i].local_size, m[i].gpus, m[i].visible);
        printf("%s machine index, %s: %d\n", got == m[i].want ? "ok  " : "FAIL", m[i].name, got);
        if (got != m[i].want) {
            printf("     expected %d\n", m[i].want);
            failures++;
        }
    }
    printf("%s\n", failures ? "FAILED" : "all GPU choices as expected");
    return failures ? 1 : 0;
}
