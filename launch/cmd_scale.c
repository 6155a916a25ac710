/* cmd_scale.c: `mpirun -np N dltrain scale` — how training throughput grows
 * with the number of ranks, measured in one launch (see scale.h and
 * docs/scaling.md).  Every rank parses the same command line and checks it
 * against the job size the launcher announced before MPI starts, so bad input
 * stops all ranks alike, with one message (from rank 0). */
#include <fcntl.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../comm/bucket.h"
#include "../comm/compress.h"
#include "../comm/topo/topo.h"
#include "../models/models.h"
#include "../runtime/data.h"
#include "../runtime/device.h"
#include "launch.h"
#include "options.h"
#include "predict_model.h"
#include "run_env.h"
#include "scale.h"
#include "step.h"

#define O(f) offsetof(scale_opts, f)
#define S(f) sizeof(((scale_opts *)0)->f)

static const dl_option scale_options[] = {
    {"model", DL_OPT_STRING, O(model), S(model), "NAME", 0, 0, "lenet (default), resnet20, resnet50"},
    {"data", DL_OPT_STRING, O(data), S(data), "SPEC", 0, 0,
     "synthetic:CxHxW[:classes] (default synthetic:1x28x28:10) or an IDX directory; one fixed "
     "batch is used"},
    {"batch", DL_OPT_INT, O(batch), 0, "N", 1, 1 << 20, "batch per rank (default 64)"},
    {"warmup", DL_OPT_INT, O(warmup), 0, "N", 0, 1e9, "untimed steps per group (default 3)"},
    {"steps", DL_OPT_INT, O(steps), 0, "N", 1, 1e9, "timed steps per repeat (default 10)"},
    {"repeats", DL_OPT_INT, O(repeats), 0, "N", 1, DL_SCALE_MAX_REPEATS,
     "timed repeats; the median is reported, min and max as the spread (default 3)"},
    {"sizes", DL_OPT_STRING, O(sizes), S(sizes), "LIST", 0, 0,
     "group sizes, e.g. 1,2,4 (default 1,2,4,... up to the ranks, and all ranks)"},
    {"bucket-mb", DL_OPT_DOUBLE, O(bucket_mb), 0, "MB", 0.001, 1e6,
     "gradient bucket size in MiB (default: an eighth of the gradients, 0.25 to 25)"},
    {"no-overlap", DL_OPT_FLAG, O(no_overlap), 0, NULL, 0, 0,
     "start the all-reduce after backward instead of during it"},
    {"compress", DL_OPT_STRING, O(compress), S(compress), "KIND", 0, 0,
     "gradient compression with error feedback: none (default), fp16, bf16, int8, onebit, "
     "powersgd[:RANK] (see docs/compression.md)"},
    {"threads", DL_OPT_INT, O(threads), 0, "N", 0, 1024,
     "CPU threads per rank (default: the node's cores shared by its ranks)"},
    {"timeout", DL_OPT_DOUBLE, O(timeout_s), 0, "S", 1, 1e6,
     "abort when a collective, or the idle ranks' wait for a group, makes no progress this "
     "long (default 600)"},
    {"sweep-max-mb", DL_OPT_DOUBLE, O(sweep_max_mb), 0, "MB", 0, 1e6,
     "largest message of the all-reduce sweep over all ranks, MiB; 0: no sweep and no "
     "prediction (default 16)"},
    {"device", DL_OPT_STRING, O(device), S(device), "KIND", 0, 0,
     "auto (default: CUDA when a GPU is usable, else CPU), cpu or cuda"},
    {"precision", DL_OPT_STRING, O(precision), S(precision), "MODE", 0, 0,
     "auto (default: CUDA tf32 convolutions + fp32 fully connected; CPU fp32), fp32; CUDA "
     "only: tf32 or bf16"},
    {"gpus", DL_OPT_STRING, O(gpus), S(gpus), "I,J,..", 0, 0,
     "GPU of each node-local rank (default: GPU i for local rank i)"},
    {"comm", DL_OPT_STRING, O(comm), S(comm), "KIND", 0, 0,
     "gradient all-reduce: auto (default: nccl on CUDA where built with it), mpi or nccl"},
    {"allreduce", DL_OPT_STRING, O(allreduce), S(allreduce), "KIND", 0, 0,
     "MPI all-reduce of each group: flat, hier (within each node, then among one rank per "
     "node) or auto (default: hier when the group spans nodes and a node holds several)"},
    {"seed", DL_OPT_LONG, O(seed), 0, "N", 0, 9.0e15, "random seed (default 1)"},
    {"json", DL_OPT_STRING, O(json), S(json), "FILE", 0, 0, "also write every figure as JSON"},
    {"report", DL_OPT_STRING, O(report), S(report), "FILE", 0, 0,
     "also write a self-contained HTML report"},
    DL_OPT_END,
};

static const char scale_usage[] =
    "Training throughput on 1, 2, 4 .. N ranks of one job: the first k ranks form a group and\n"
    "train on a fixed synthetic batch while the others wait.  Reports images/s, speedup,\n"
    "efficiency, the per-step breakdown, a prediction and the circulating claims.\n"
    "  mpirun -np 4 dltrain scale [options]";

/* This process's rank as the launcher announced it, before MPI starts (-1: none). */
static int launcher_rank(void)
{
    dl_topo_launch l;
    dl_topo_launch_read(&l, NULL);
    return l.rank;
}

/* Parses options with rank > 0's messages silenced: all ranks see the same
 * command line and stop alike, and one copy of the message is enough. */
static int silence_stderr(int quiet)
{
    if (!quiet)
        return -1;
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    if (null >= 0)
        dup2(null, 2), close(null);
    return saved;
}

static void restore_stderr(int saved)
{
    if (saved >= 0)
        dup2(saved, 2), close(saved);
}

static int parse_quietly(scale_opts *o, int argc, char **argv, int quiet)
{
    int saved = silence_stderr(quiet);
    int r = dl_options_parse(scale_options, o, argc, argv, "scale", scale_usage);
    if (r == 0) { /* device names too, before MPI starts: -1 is "go on" */
        int names = dl_launch_check_device_names(o->device, o->precision, o->comm, o->gpus,
                                                 "scale");
        r = names >= 0 ? names : 0;
    }
    restore_stderr(saved);
    return r;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* --sizes against the job size; 1 is always measured (the baseline). */
static int parse_sizes(const char *text, int world, int *sizes, int *n, int *added_one,
                       char *why, size_t cap)
{
    *n = 0, *added_one = 0;
    if (!text[0]) {
        for (int s = 1; s < world && *n < DL_SCALE_MAX_SIZES - 1; s *= 2)
            sizes[(*n)++] = s;
        sizes[(*n)++] = world;
        return 0;
    }
    for (const char *p = text; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',')) {
            snprintf(why, cap, "--sizes '%s': expected a comma-separated list of rank counts "
                     "such as 1,2,4", text);
            return -1;
        }
        if (v < 1 || v > world) {
            snprintf(why, cap, "--sizes: %ld is not a group size this job can have: %s", v,
                     world == 1 ? "it has 1 rank (start more with mpirun -np N)"
                                : "sizes must be between 1 and the job's ranks");
            if (world > 1)
                snprintf(why + strlen(why), cap - strlen(why), " (%d)", world);
            return -1;
        }
        if (*n == DL_SCALE_MAX_SIZES - 1) {
            snprintf(why, cap, "--sizes: at most %d sizes", DL_SCALE_MAX_SIZES - 1);
            return -1;
        }
        sizes[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    qsort(sizes, (size_t)*n, sizeof *sizes, cmp_int);
    int m = 0;
    for (int i = 0; i < *n; i++)
        if (m == 0 || sizes[m - 1] != sizes[i])
            sizes[m++] = sizes[i];
    *n = m;
    if (sizes[0] != 1) {
        memmove(sizes + 1, sizes, sizeof *sizes * (size_t)m);
        sizes[0] = 1, (*n)++, *added_one = 1;
    }
    return 0;
}

/* Checks that need no MPI: the same verdict on every rank. */
static int validate(scale_opts *o, int world, scale_run *r, char *why, size_t cap)
{
    if (!dl_model_find(o->model)) {
        snprintf(why, cap, "unknown model '%s' (choose from %s)", o->model, dl_model_names());
        return -1;
    }
    dl_compress_spec spec;
    if (dl_compress_parse(o->compress, &spec) != DL_OK) {
        snprintf(why, cap, "%s", dl_error_message());
        return -1;
    }
    if (strcmp(o->allreduce, "auto") && strcmp(o->allreduce, "flat") &&
        strcmp(o->allreduce, "hier")) {
        snprintf(why, cap, "unknown --allreduce '%s' (choose auto, flat or hier)", o->allreduce);
        return -1;
    }
    if (strcmp(o->device, "cpu") == 0 && strcmp(o->precision, "fp32") != 0 &&
        strcmp(o->precision, "auto") != 0) {
        snprintf(why, cap, "--precision %s needs --device cuda; the CPU device computes in fp32 "
                 "only", o->precision);
        return -1;
    }
    return parse_sizes(o->sizes, world, r->sizes, &r->n_sizes, &r->added_one, why, cap);
}

static dl_status setup_model(scale_run *r)
{
    const scale_opts *o = r->o;
    dl_dataset train, test;
    memset(&train, 0, sizeof train), memset(&test, 0, sizeof test);
    dl_status st = dl_data_open(o->data, (uint64_t)o->seed, &train, &test);
    if (st == DL_OK)
        st = dl_model_build(dl_model_find(o->model), &r->net, train.c, train.h, train.w,
                            train.classes);
    if (st == DL_OK)
        st = dl_net_finalize(&r->net, r->ctx->dev, o->batch, (uint64_t)o->seed);
    if (st == DL_OK)
        st = dl_sgd_init(&r->opt, r->ctx->dev, r->net.n_params, 0.9f, 5e-4f, 0);
    if (st == DL_OK)
        st = dl_step_load_fixed_batch(&r->net, &train, o->batch);
    if (st == DL_OK)
        dl_dataset_free(&train), dl_dataset_free(&test);
    return st;
}

/* The all-reduce over the whole world, and the link it implies for the model. */
static dl_status sweep_world(scale_run *r)
{
    dl_comm *c = r->ctx->comm;
    if (c->world < 2 || r->o->sweep_max_mb <= 0)
        return DL_OK;
    long max_bytes = (long)(r->o->sweep_max_mb * 1048576.0) / 4 * 4;
    /* the fp32 all-reduce: it calibrates the link for the prediction */
    dl_sweep_opts so = {4, max_bytes < 4 ? 4 : max_bytes, 4, 5, 1, r->ctx->dev,
                        {DL_COMPRESS_NONE, 0}};
    dl_status st = dl_allreduce_sweep(c, &so, r->sweep, DL_SCALE_MAX_SWEEP, &r->n_sweep, NULL,
                                      NULL);
    if (st != DL_OK)
        return st;
    double bytes[DL_SCALE_MAX_SWEEP], us[DL_SCALE_MAX_SWEEP];
    for (int i = 0; i < r->n_sweep; i++)
        bytes[i] = r->sweep[i].bytes, us[i] = r->sweep[i].time_us;
    if (dl_link_calibrate(c->world, bytes, us, r->n_sweep, &r->link_gbps,
                             &r->link_alpha_us) != 0)
        r->link_gbps = r->link_alpha_us = 0;
    return DL_OK;
}

static void command_line(scale_run *r, int argc, char **argv)
{
    size_t len = 0, cap = sizeof r->command;
    if (r->ctx->world > 1)
        len += (size_t)snprintf(r->command, cap, "mpirun -np %d ", r->ctx->world);
    len += (size_t)snprintf(r->command + len, cap - len, "dltrain");
    for (int i = 0; i < argc && len < cap; i++)
        len += (size_t)snprintf(r->command + len, cap - len, " %s", argv[i]);
}

static void print_start(const scale_run *r)
{
    const scale_opts *o = r->o;
    printf("dltrain scale: model %s (%zu parameters, %.2f MB of gradients), data %s, batch %d "
           "per rank\n", o->model, r->net.n_trainable, 4e-6 * (double)r->net.n_params, o->data,
           o->batch);
    printf("  %d ranks, backend %s, device %s, %d thread(s) per rank; %d warm-up, %d x %d timed "
           "steps per group; buckets of %g MiB, %s\n", r->ctx->world, r->ctx->comm->name,
           r->ctx->dev->name, r->threads, o->warmup, o->repeats, o->steps, r->bucket_mb,
           o->no_overlap ? "after backward (--no-overlap)" : "overlapping backward");
    if (strcmp(o->compress, "none") != 0)
        printf("  gradients compressed with --compress %s and error feedback (bytes on the wire "
               "in the JSON; the predicted column charges the compressed bytes and the codecs' time)\n",
               o->compress);
    if (r->added_one)
        printf("  (1 rank added to --sizes: the baseline of the speedup)\n");
    char env[2048];
    if (dl_run_env_text(env, sizeof env)) {
        printf("  environment:\n");
        for (char *line = strtok(env, "\n"); line; line = strtok(NULL, "\n"))
            printf("    %s\n", line);
    }
    fflush(stdout);
}

static int outputs(scale_run *r)
{
    int rc = DL_EXIT_OK;
    dl_scale_print(stdout, r);
    if (r->o->json[0] && dl_scale_write_json(r->o->json, r) != 0) {
        fprintf(stderr, "dltrain scale: cannot write %s\n", r->o->json);
        rc = DL_EXIT_ERROR;
    }
    if (r->o->report[0] && dl_scale_write_report(r->o->report, r) != 0) {
        fprintf(stderr, "dltrain scale: cannot write the report %s: %s\n", r->o->report,
                dl_error_message());
        rc = DL_EXIT_ERROR;
    }
    return rc;
}

/* Every size in turn; a failure past set-up leaves ranks out of step, so it ends the job. */
static int measure_all(scale_run *r)
{
    dl_status st = sweep_world(r);
    for (int i = 0; st == DL_OK && i < r->n_sizes; i++) {
        scale_point p;
        memset(&p, 0, sizeof p);
        st = dl_scale_measure(r, r->sizes[i], &p);
        if (st == DL_OK && r->ctx->rank == 0) {
            r->points[r->n_points++] = p;
            printf("  %d rank%s: %.1f images/s\n", p.ranks, p.ranks == 1 ? "" : "s",
                   p.ips_median);
            fflush(stdout);
        }
    }
    if (st == DL_OK)
        st = dl_scale_measure_pairs(r);
    if (st != DL_OK) {
        fprintf(stderr, "dltrain scale rank %d: %s\n", r->ctx->rank, dl_error_message());
        r->ctx->comm->abort(r->ctx->comm, DL_EXIT_ERROR);
        return DL_EXIT_ERROR;
    }
    r->n_gpus = dl_run_gpu_links(r->gpu_links, sizeof r->gpu_links, NULL); /* read after the work */
    if (r->ctx->rank != 0)
        return DL_EXIT_OK;
    dl_scale_derive(r);
    return outputs(r);
}

/* Collective, as in `dltrain train`: a rank that cannot open its device
 * stops all, and all ranks must use the same kind of device. */
static int open_device_and_comm(dl_ctx *ctx, const scale_opts *o)
{
    int threads = o->threads ? o->threads : dl_launch_default_threads(ctx);
    int rc = dl_launch_device(ctx, o->device, o->gpus, o->precision, threads, "scale");
    if (rc == 0) /* convolutions as `train` does by default: cuDNN when it initialises */
        rc = dl_launch_conv(ctx, "auto", o->precision, "scale");
    int n_failed = 0, first = -1;
    if (dl_comm_agree(ctx->comm, rc != 0, &n_failed, &first) != DL_OK)
        return DL_EXIT_ERROR;
    if (n_failed)
        return rc ? rc : DL_EXIT_ERROR;
    double kinds[2] = {ctx->dev->kind == DL_DEVICE_CUDA, 1};
    if (ctx->comm->allreduce_sum_f64(ctx->comm, kinds, 2) != DL_OK)
        return DL_EXIT_ERROR;
    if (kinds[0] != 0 && kinds[0] != kinds[1]) {
        if (ctx->rank == 0)
            fprintf(stderr, "dltrain scale: --device %s chose a GPU on %g rank(s) and the CPU on "
                    "the others; say --device cpu or --device cuda explicitly\n", o->device,
                    kinds[0]);
        return DL_EXIT_USAGE;
    }
    return dl_launch_comm_backend(ctx, o->comm, "scale");
}

static int run(scale_run *r, int argc, char **argv)
{
    dl_ctx *ctx = r->ctx;
    const scale_opts *o = r->o;
    dl_launch_place(ctx, 1, dl_launch_listed_gpu(ctx, o->gpus));
    int rc = open_device_and_comm(ctx, o);
    if (rc)
        return rc;
    r->threads = omp_get_max_threads();
    r->n_gpus = dl_run_gpu_links(r->gpu_links, sizeof r->gpu_links, NULL);
    command_line(r, argc, argv);
    dl_status st = setup_model(r);
    r->bucket_mb = o->bucket_mb > 0 ? o->bucket_mb : dl_buckets_default_mb(r->net.n_params);
    int failed = st != DL_OK, n_failed = 0, first = -1;
    char why[512];
    snprintf(why, sizeof why, "%s", failed ? dl_error_message() : "");
    if (dl_comm_agree(ctx->comm, failed, &n_failed, &first) != DL_OK)
        return DL_EXIT_ERROR;
    if (n_failed) {
        if (ctx->rank == first)
            fprintf(stderr, "dltrain scale: %s\n", why);
        return DL_EXIT_ERROR;
    }
    if (ctx->rank == 0)
        print_start(r);
    return measure_all(r);
}

int dl_cmd_scale(int argc, char **argv)
{
    static scale_opts o; /* static: the run keeps a pointer; one run per process */
    o = (scale_opts){.model = "lenet", .data = "synthetic:1x28x28:10", .batch = 64, .warmup = 3,
                     .steps = 10, .repeats = 3, .bucket_mb = 0, .timeout_s = 600,
                     .sweep_max_mb = 16, .seed = 1, .device = "auto", .precision = "auto",
                     .comm = "auto", .compress = "none", .allreduce = "auto"};
    int quiet = launcher_rank() > 0;
    /* A quiet rank leaves the failing status to rank 0: were it to fail too,
     * mpirun could kill rank 0 before its message is out. */
    int r = parse_quietly(&o, argc, argv, quiet);
    if (r)
        return r == 1 || quiet ? DL_EXIT_OK : r;
    int world = dl_launcher_world(NULL);
    world = world > 0 ? world : 1;
    scale_run *run_state = calloc(1, sizeof *run_state);
    if (!run_state) {
        fprintf(stderr, "dltrain scale: out of memory\n");
        return DL_EXIT_ERROR;
    }
    char why[512];
    if (validate(&o, world, run_state, why, sizeof why) != 0) {
        if (!quiet)
            fprintf(stderr, "dltrain scale: %s\n", why);
        free(run_state);
        return quiet ? DL_EXIT_OK : DL_EXIT_USAGE;
    }
    dl_ctx ctx = {.rank = 0, .world = 1, .local_rank = 0};
    if ((r = dl_launch_comm(&ctx, &argc, &argv))) {
        free(run_state);
        return r;
    }
    ctx.comm->timeout_s = o.timeout_s;
    run_state->o = &o, run_state->ctx = &ctx;
    r = run(run_state, argc, argv);
    dl_sgd_free(&run_state->opt);
    dl_net_free(&run_state->net);
    free(run_state);
    dl_launch_finish(&ctx); /* before the device: the comm's streams live on it */
    dl_launch_device_close(&ctx);
    return r;
}
