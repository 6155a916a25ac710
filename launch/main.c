/* main.c: the dltrain command.  `dltrain` alone (as under a bare
 * `mpirun -np 4 dltrain`) trains the default model on the default data. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../runtime/device.h"
#include "bench.h"
#include "cmd_predict.h"
#ifdef DLTRAIN_HAVE_TOPO
#include "cmd_topo.h"
#endif
#include "context.h"
#include "launch.h"
#include "scale.h"
#include "train.h"
#include "train_sync.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dltrain [COMMAND] [options]\n"
            "\n"
            "commands:\n"
            "  train     train a model (the default: lenet on Fashion-MNIST)\n"
            "  bench     benchmarks: 'dltrain bench train', 'bench allreduce', 'bench copy'\n"
            "  scale     training throughput on 1, 2, 4 .. N ranks: speedup, efficiency, breakdown\n"
            "  predict   model a data-parallel step on N GPUs: all-reduce cost, overlap, PCIe lanes\n"
            "  topo      how each GPU is attached: PCIe lanes, generation, switches, NUMA, NVLink\n"
            "\n"
            "  dltrain COMMAND --help   options of a command\n"
            "  dltrain --version        version and build configuration\n");
}

static void version(void)
{
    printf("dltrain %s (CPU%s%s%s%s)\n", DLTRAIN_VERSION,
#ifdef DLTRAIN_HAVE_BLAS
           " + OpenBLAS",
#else
           " with built-in GEMM",
#endif
#ifdef DLTRAIN_HAVE_MPI
           ", MPI",
#else
           "",
#endif
#ifdef DLTRAIN_HAVE_CUDA
           ", CUDA + cuBLAS",
#else
           "",
#endif
#ifdef DLTRAIN_HAVE_NCCL
           ", NCCL"
#else
           ""
#endif
    );
}

/* Rank r > 0 logs to OUT/rank-r.log under --log-all, so logs do not interleave. */
static int redirect_rank_log(const dl_train_opts *o, const dl_ctx *ctx)
{
    char path[600];
    snprintf(path, sizeof path, "%s/rank-%d.log", o->out_dir, ctx->rank);
    mkdir(o->out_dir, 0755);
    if (!freopen(path, "w", stdout)) {
        fprintf(stderr, "dltrain rank %d: cannot write %s\n", ctx->rank, path);
        return 1;
    }
    return 0;
}

/* Collective: a rank that cannot open its GPU stops every rank, and all
 * ranks must end up on the same kind of device before choosing a backend. */
static int open_device_and_comm(dl_ctx *ctx, const dl_train_opts *o)
{
    int rc = dl_train_agree_options(ctx, o);
    if (rc)
        return rc;
    int threads = o->threads ? o->threads : dl_launch_default_threads(ctx);
    rc = dl_launch_device(ctx, o->device, o->gpus, o->precision, threads, "train");
    if (rc == 0)
        rc = dl_launch_conv(ctx, o->conv, o->precision, "train");
    rc = dl_train_agree_start(ctx, rc, "to open their device");
    if (rc)
        return rc;
    int kind = (int)ctx->dev->kind, kind0 = kind;
    if (ctx->world > 1 && ctx->comm->broadcast(ctx->comm, &kind0, sizeof kind0, 0) != DL_OK)
        ctx->comm->abort(ctx->comm, DL_EXIT_ERROR);
    if (kind != kind0)
        fprintf(stderr, "dltrain rank %d: --device %s chose %s here but rank 0 uses %s; say "
                "--device cpu or --device cuda explicitly\n", ctx->rank, o->device,
                kind == DL_DEVICE_CUDA ? "a GPU" : "the CPU",
                kind0 == DL_DEVICE_CUDA ? "a GPU" : "the CPU");
    rc = dl_train_agree_start(ctx, kind != kind0 ? DL_EXIT_USAGE : 0, "to agree on the device");
    if (rc)
        return rc;
    return dl_launch_comm_backend(ctx, o->comm, "train");
}

int dl_cmd_train(int argc, char **argv)
{
    dl_ctx ctx = {.rank = 0, .world = 1, .local_rank = 0};
    int rc = dl_launch_comm(&ctx, &argc, &argv);
    if (rc)
        return rc;
    dl_train_opts o;
    dl_train_defaults(&o);
    int parsed = dl_train_parse(&o, argc, argv); /* -1: go on; else an exit status */
    /* a flag rejected on one rank only must stop all of them */
    rc = dl_train_agree_start(&ctx, parsed > 0 ? parsed : 0, "to parse their options");
    if (rc == 0 && parsed < 0) {
        ctx.comm->timeout_s = o.timeout_s;
        ctx.verbose = ctx.rank == 0 || o.log_all;
        ctx.is_tty = ctx.rank == 0 && isatty(2);
        if (ctx.rank > 0 && o.log_all && redirect_rank_log(&o, &ctx))
            ctx.comm->abort(ctx.comm, 1);
        dl_launch_place(&ctx, !o.no_bind, dl_launch_listed_gpu(&ctx, o.gpus));
        rc = dl_launch_allreduce(&ctx, o.allreduce, "train");
        if (rc == 0)
            rc = open_device_and_comm(&ctx, &o);
        if (rc == 0 && strncmp(ctx.comm->name, "mpi", 3) != 0)
            ctx.allreduce_note[0] = 0; /* NCCL's own algorithms sum the gradients */
        if (rc == 0)
            rc = dl_train_run(&o, &ctx);
    }
    dl_launch_finish(&ctx); /* before the device: the comm's streams live on it */
    dl_launch_device_close(&ctx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            usage(stdout);
            return 0;
        }
        if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
            version();
            return 0;
        }
        /* options without a command belong to train */
        argv[0] = "train";
        return dl_cmd_train(argc, argv);
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "train") == 0)
        return dl_cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return dl_cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "scale") == 0)
        return dl_cmd_scale(argc - 1, argv + 1);
    if (strcmp(cmd, "predict") == 0)
        return dl_cmd_predict(argc - 1, argv + 1);
#ifdef DLTRAIN_HAVE_TOPO
    if (strcmp(cmd, "topo") == 0)
        return dl_cmd_topo(argc - 1, argv + 1);
#endif
    if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "dltrain: unknown command '%s' (commands: train, bench, scale, predict, topo; see dltrain --help)\n", cmd);
    return 2;
}
