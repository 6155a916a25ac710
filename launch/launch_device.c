/* launch_device.c: which device this rank computes on (--device, --gpus,
 * --precision) and which backend averages its gradients (--comm).
 *
 * Decided once at start-up; afterwards every layer dispatches through the
 * device's op table and every collective through the comm table, so nothing
 * below launch/ asks "am I on a GPU".  Every refusal is one line naming the
 * option, never a silent fallback: auto may pick the CPU, but says why. */
#include "launch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/device_cuda.h"
#include "../runtime/parse.h"
#include "gpu_choice.h"

#define MAX_LISTED_GPUS 256

int dl_launch_check_device_names(const char *device, const char *precision, const char *comm,
                                 const char *gpus, const char *cmd)
{
    int listed[MAX_LISTED_GPUS];
    if (gpus && gpus[0] && dl_gpu_parse_list(gpus, listed, MAX_LISTED_GPUS) <= 0) {
        fprintf(stderr, "dltrain %s: --gpus '%s' is not a list of GPU indices like 0,2\n", cmd,
                gpus);
        return DL_EXIT_USAGE;
    }
    if (strcmp(device, "auto") && strcmp(device, "cpu") && strcmp(device, "cuda")) {
        fprintf(stderr, "dltrain %s: unknown --device '%s' (choose auto, cpu or cuda)\n", cmd,
                device);
        return DL_EXIT_USAGE;
    }
    if (strcmp(precision, "auto") && strcmp(precision, "fp32") && strcmp(precision, "tf32") &&
        strcmp(precision, "bf16")) {
        fprintf(stderr, "dltrain %s: unknown --precision '%s' (choose auto, fp32, tf32 or bf16)\n",
                cmd, precision);
        return DL_EXIT_USAGE;
    }
    if (comm && strcmp(comm, "auto") && strcmp(comm, "mpi") && strcmp(comm, "nccl")) {
        fprintf(stderr, "dltrain %s: unknown --comm '%s' (choose auto, mpi or nccl)\n", cmd, comm);
        return DL_EXIT_USAGE;
    }
    return -1;
}

/* The GPU this rank uses (gpu_choice.c); -1 after printing why. */
static int choose_gpu(const dl_ctx *ctx, const char *gpus, int count, const char *cmd,
                      char *how, size_t cap)
{
    dl_gpu_choice_in in = {.local_rank = ctx->local_rank,
                           .local_size = ctx->comm ? ctx->comm->local_size : 1,
                           .visible = count, .gpus = gpus,
                           .cuda_visible = getenv("CUDA_VISIBLE_DEVICES")};
    int gpu = dl_gpu_choose(&in, how, cap);
    if (gpu < 0)
        fprintf(stderr, "dltrain %s: %s\n", cmd, how);
    return gpu;
}

int dl_launch_listed_gpu(const dl_ctx *ctx, const char *gpus)
{
    int local_size = ctx->comm && ctx->comm->local_size > 0 ? ctx->comm->local_size : 1;
    return dl_gpu_machine_index(ctx->local_rank, local_size, gpus,
                                getenv("CUDA_VISIBLE_DEVICES"));
}

/* --precision auto: on CUDA, PyTorch's default (TF32 convolutions, fp32
 * fully connected layers); on the CPU, fp32. */
static const char *precision_note(const dl_ctx *ctx, const char *precision)
{
    if (strcmp(precision, "auto") != 0)
        return precision;
    return ctx->dev->kind == DL_DEVICE_CUDA ? "auto (tf32 convolutions, fp32 fully connected)"
                                            : "fp32";
}

static int set_precision(dl_ctx *ctx, const char *precision, const char *cmd)
{
    if (ctx->dev->kind != DL_DEVICE_CUDA) {
        if (strcmp(precision, "fp32") == 0 || strcmp(precision, "auto") == 0)
            return 0;
        fprintf(stderr, "dltrain %s: --precision %s needs --device cuda; the CPU device computes "
                "in fp32 only\n", cmd, precision);
        return DL_EXIT_USAGE;
    }
    dl_cuda_precision p = strcmp(precision, "tf32") == 0   ? DL_CUDA_TF32
                          : strcmp(precision, "bf16") == 0 ? DL_CUDA_BF16
                          : strcmp(precision, "auto") == 0 ? DL_CUDA_TF32_CONV
                                                           : DL_CUDA_FP32;
    if (dl_device_cuda_set_precision(ctx->dev, p) != DL_OK) {
        fprintf(stderr, "dltrain %s: %s\n", cmd, dl_error_message());
        return DL_EXIT_ERROR;
    }
    return 0;
}

static int open_cuda(dl_ctx *ctx, const char *gpus, const char *cmd, const char *why_auto)
{
    char why[512];
    int count = dl_device_cuda_count(why, sizeof why);
    if (count < 0) {
        fprintf(stderr, "dltrain %s: --device cuda: %s\n", cmd, why);
        return DL_EXIT_ERROR;
    }
    char how[256];
    int gpu = choose_gpu(ctx, gpus, count, cmd, how, sizeof how);
    if (gpu < 0)
        return DL_EXIT_USAGE;
    ctx->dev = dl_device_cuda(gpu, why, sizeof why);
    if (!ctx->dev) {
        fprintf(stderr, "dltrain %s: --device cuda: %s\n", cmd, why);
        return DL_EXIT_ERROR;
    }
    snprintf(ctx->device_note, sizeof ctx->device_note, "%s (%s%s)", ctx->dev->name, why_auto,
             how);
    return 0;
}

int dl_launch_device(dl_ctx *ctx, const char *device, const char *gpus, const char *precision,
                     int threads, const char *cmd)
{
    ctx->dev = NULL;
    int rc = 0;
    if (strcmp(device, "cuda") == 0) {
        rc = open_cuda(ctx, gpus, cmd, "");
    } else if (strcmp(device, "auto") == 0) {
        char why[512];
        if (dl_device_cuda_count(why, sizeof why) > 0) {
            rc = open_cuda(ctx, gpus, cmd, "auto: CUDA GPU usable; ");
        } else {
            ctx->dev = dl_device_cpu(threads);
            snprintf(ctx->device_note, sizeof ctx->device_note, "cpu (auto: %s)", why);
        }
    } else {
        ctx->dev = dl_device_cpu(threads);
        snprintf(ctx->device_note, sizeof ctx->device_note, "cpu (--device cpu)");
    }
    if (rc == 0 && ctx->dev->kind != DL_DEVICE_CUDA && gpus[0]) {
        fprintf(stderr, "dltrain %s: --gpus '%s' given, but the device is the CPU\n", cmd, gpus);
        rc = DL_EXIT_USAGE;
    }
    if (rc == 0)
        rc = set_precision(ctx, precision, cmd);
    if (rc == 0) {
        size_t len = strlen(ctx->device_note);
        snprintf(ctx->device_note + len, sizeof ctx->device_note - len, ", precision %s",
                 precision_note(ctx, precision));
    }
    return rc;
}

void dl_launch_device_close(dl_ctx *ctx)
{
    if (ctx->dev && ctx->dev->kind == DL_DEVICE_CUDA)
        dl_device_cuda_destroy(ctx->dev);
    ctx->dev = NULL;
}

static int wrap_comm(dl_ctx *ctx, dl_comm *c, const char *cmd, const char *what)
{
    if (!c) {
        fprintf(stderr, "dltrain %s: %s: %s\n", cmd, what, dl_error_message());
        return DL_EXIT_ERROR;
    }
    ctx->comm = c;
    return 0;
}

int dl_launch_comm_backend(dl_ctx *ctx, const char *choice, const char *cmd)
{
    int cuda = ctx->dev->kind == DL_DEVICE_CUDA;
    const char *pick = choice;
    if (strcmp(choice, "auto") == 0)
        pick = cuda && ctx->world > 1 && dl_comm_nccl_available() ? "nccl" : "mpi";
    if (strcmp(pick, "nccl") == 0) {
        if (!cuda) {
            fprintf(stderr, "dltrain %s: --comm nccl needs --device cuda\n", cmd);
            return DL_EXIT_USAGE;
        }
        if (!dl_comm_nccl_available()) {
            fprintf(stderr, "dltrain %s: --comm nccl: this dltrain was built without NCCL (set "
                    "NCCL_ROOT at configure time, or use --comm mpi)\n", cmd);
            return DL_EXIT_USAGE;
        }
        int rc = wrap_comm(ctx, dl_comm_nccl(ctx->comm, ctx->dev), cmd, "NCCL set-up failed");
        if (rc == 0)
            snprintf(ctx->comm_note, sizeof ctx->comm_note, "nccl (%s; host collectives over %s)",
                     strcmp(choice, "auto") ? "--comm nccl" : "auto: CUDA device and NCCL",
                     ctx->world > 1 ? "MPI" : "one rank");
        return rc;
    }
    if (ctx->world == 1) {
        snprintf(ctx->comm_note, sizeof ctx->comm_note, "local (one rank: nothing to average)");
        return 0;
    }
    if (!cuda) {
        snprintf(ctx->comm_note, sizeof ctx->comm_note, "%s", ctx->comm->name);
        return 0;
    }
    int rc = wrap_comm(ctx, dl_comm_staged(ctx->comm, ctx->dev), cmd, "MPI staging set-up failed");
    if (rc == 0)
        snprintf(ctx->comm_note, sizeof ctx->comm_note, "%s (%s)", ctx->comm->name,
                 strcmp(choice, "auto") ? "--comm mpi" : "auto: no NCCL in this build");
    return rc;
}
