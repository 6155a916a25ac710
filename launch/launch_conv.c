/* launch_conv.c: --conv auto|cudnn|gemm, how a CUDA device computes
 * convolutions (runtime/device_cuda.h dl_device_cuda_set_conv). */
#include <stdio.h>
#include <string.h>

#include "../runtime/device_cuda.h"
#include "launch.h"

int dl_launch_check_conv_name(const char *conv, const char *cmd)
{
    if (strcmp(conv, "auto") && strcmp(conv, "cudnn") && strcmp(conv, "gemm")) {
        fprintf(stderr, "dltrain %s: unknown --conv '%s' (choose auto, cudnn or gemm)\n", cmd,
                conv);
        return DL_EXIT_USAGE;
    }
    return -1;
}

static void note_conv(dl_ctx *ctx, const char *what)
{
    size_t len = strlen(ctx->device_note);
    snprintf(ctx->device_note + len, sizeof ctx->device_note - len, ", conv %s", what);
}

int dl_launch_conv(dl_ctx *ctx, const char *conv, const char *precision, const char *cmd)
{
    if (ctx->dev->kind != DL_DEVICE_CUDA) {
        if (strcmp(conv, "cudnn") != 0)
            return 0;
        fprintf(stderr, "dltrain %s: --conv cudnn needs --device cuda\n", cmd);
        return DL_EXIT_USAGE;
    }
    char what[600];
    if (strcmp(conv, "gemm") == 0 || (strcmp(conv, "auto") == 0 && strcmp(precision, "bf16") == 0)) {
        if (dl_device_cuda_set_conv(ctx->dev, DL_CUDA_CONV_GEMM) != DL_OK) {
            fprintf(stderr, "dltrain %s: %s\n", cmd, dl_error_message());
            return DL_EXIT_ERROR;
        }
        note_conv(ctx, strcmp(conv, "gemm") == 0 ? "gemm" : "gemm (auto: bf16 runs on GEMMs)");
        return 0;
    }
    if (dl_device_cuda_set_conv(ctx->dev, DL_CUDA_CONV_CUDNN) == DL_OK) {
        size_t v = dl_device_cuda_cudnn_version();
        snprintf(what, sizeof what, "cudnn %zu.%zu.%zu", v / 10000, v / 100 % 100, v % 100);
        note_conv(ctx, what);
        return 0;
    }
    if (strcmp(conv, "cudnn") == 0) {
        fprintf(stderr, "dltrain %s: --conv cudnn: %s\n", cmd, dl_error_message());
        return DL_EXIT_ERROR;
    }
    snprintf(what, sizeof what, "gemm (auto: %.500s)", dl_error_message());
    note_conv(ctx, what);
    return 0;
}
