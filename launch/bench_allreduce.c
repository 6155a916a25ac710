/* bench_allreduce.c: `dltrain bench allreduce` — the gradient all-reduce
 * (dl_comm's allreduce_avg_start/wait, float32 average) over message sizes,
 * timed and checked, in the definitions of nccl-tests:
 *
 *   algbw = bytes / time
 *   busbw = algbw x 2(n-1)/n   (what each rank's link carries in a ring,
 *                               comparable with the link's bandwidth)
 *
 * Every timed iteration starts after a barrier; each rank takes the median of
 * its iterations and the time reported is the slowest rank's median (the
 * collective is done when the last rank has its result).  After timing, each
 * rank fills a pattern that depends on its rank and the element index,
 * averages once, and compares every element with the exact average
 * (allreduce_sweep.c, shared with `dltrain scale`).
 *
 *   mpirun -np 4 dltrain bench allreduce --max-bytes 268435456 --json ar.json
 *   dltrain predict --allreduce-json ar.json ...   (calibrates the model)
 *
 * --device cuda puts the buffer in GPU memory: --backend nccl reduces it
 * with NCCL (the training path), --backend mpi stages it through pinned host
 * memory (comm_staged.c).  The clock stops when the GPU has the result
 * (the device is synchronised after each wait). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allreduce_sweep.h"
#include "bench.h"
#include "context.h"
#include "launch.h"
#include "options.h"
#include "report.h"
#include "run_env.h"

int dl_bench_allreduce(int argc, char **argv);

typedef struct {
    long min_bytes, max_bytes;
    double factor, timeout_s;
    int iters, warmup;
    char backend[16], json[512], report[512], device[16], gpus[256], compress[24];
    char allreduce[8]; /* asked for; after start-up, what was chosen (flat or hier) */
} ar_opts;

#define O(f) offsetof(ar_opts, f)
#define S(f) sizeof(((ar_opts *)0)->f)

static const dl_option ar_options[] = {
    {"min-bytes", DL_OPT_LONG, O(min_bytes), 0, "B", 4, 1L << 40,
     "smallest message in bytes, a multiple of 4 (default 4)"},
    {"max-bytes", DL_OPT_LONG, O(max_bytes), 0, "B", 4, 1L << 40,
     "largest message in bytes (default 134217728 = 128 MiB)"},
    {"factor", DL_OPT_DOUBLE, O(factor), 0, "F", 1.01, 1e6, "next size = size x F (default 2)"},
    {"iters", DL_OPT_INT, O(iters), 0, "N", 1, 1000000, "timed iterations per size (default 20)"},
    {"warmup", DL_OPT_INT, O(warmup), 0, "N", 0, 1000000,
     "untimed iterations per size (default 5)"},
    {"backend", DL_OPT_STRING, O(backend), S(backend), "NAME", 0, 0,
     "auto (default: nccl with --device cuda under mpirun where built with NCCL, else mpi "
     "under mpirun/srun, else local), mpi, nccl, local (one rank)"},
    {"device", DL_OPT_STRING, O(device), S(device), "KIND", 0, 0,
     "where the buffer lives: cpu (default, host memory) or cuda (GPU memory)"},
    {"gpus", DL_OPT_STRING, O(gpus), S(gpus), "I,J,..", 0, 0,
     "--device cuda: GPU of each node-local rank (default: GPU i for local rank i)"},
    {"compress", DL_OPT_STRING, O(compress), S(compress), "KIND", 0, 0,
     "compressed average with error feedback: none (default), fp16, bf16, int8, onebit, "
     "powersgd[:RANK]; with --device cuda encoded and decoded on the GPU (see "
     "docs/compression.md)"},
    {"allreduce", DL_OPT_STRING, O(allreduce), S(allreduce), "KIND", 0, 0,
     "MPI backend: flat, hier (within each node, then among one rank per node) or auto "
     "(default: hier when ranks span nodes and a node holds several)"},
    {"timeout", DL_OPT_DOUBLE, O(timeout_s), 0, "S", 1, 1e6,
     "abort when one all-reduce makes no progress this long (default 60)"},
    {"json", DL_OPT_STRING, O(json), S(json), "FILE", 0, 0,
     "also write the results as JSON ('-': on stdout instead of the table)"},
    {"report", DL_OPT_STRING, O(report), S(report), "FILE", 0, 0,
     "also write a self-contained HTML report (bus bandwidth against message size)"},
    DL_OPT_END,
};

static const char ar_usage[] =
    "All-reduce (float32 average, the gradient path) over message sizes: time, algorithm\n"
    "and bus bandwidth (nccl-tests definitions), and a correctness check.\n"
    "  mpirun -np 4 dltrain bench allreduce [options]\n"
    "--device cuda: the buffer in GPU memory, reduced by NCCL or staged through MPI.\n"
    "Exit status 1 when any element came back wrong.";

static void print_header(FILE *f, const dl_ctx *ctx, const ar_opts *o)
{
    const dl_comm *c = ctx->comm;
    fprintf(f, "bench allreduce: backend %s, %d rank%s, float32 average (allreduce_avg_start/"
               "wait), %s memory\n", c->name, c->world, c->world == 1 ? "" : "s",
            ctx->dev ? ctx->dev->name : "host");
    if (ctx->layout[0])
        fprintf(f, "  %s; all-reduce %s\n", ctx->layout, ctx->allreduce_note);
    fprintf(f, "  %d warm-up and %d timed iterations per size, barrier before each; time = the "
               "slowest rank's median\n", o->warmup, o->iters);
    fprintf(f, "  busbw = algbw x 2(n-1)/n = algbw x %.4g\n",
            c->world > 1 ? 2.0 * (c->world - 1) / c->world : 0.0);
    if (strcmp(o->compress, "none") != 0)
        fprintf(f, "  compressed with --compress %s and error feedback (compress start/wait): "
                   "bytes and bandwidths count the float32 message; wire = bytes each rank sends "
                   "(ring model)\n", o->compress);
    if (strcmp(c->name, "local") == 0)
        fprintf(f, "  (local backend: one rank, the all-reduce is the identity; times are the "
                   "call's overhead)\n");
    fprintf(f, "\n  %12s %11s %11s %11s %11s %11s %7s %12s\n", "bytes", "count", "time us",
            "mean us", "algbw GB/s", "busbw GB/s", "errors", "wire bytes");
}

static void print_row(void *user, const dl_sweep_point *r)
{
    FILE *f = user;
    if (!f)
        return;
    fprintf(f, "  %12.0f %11.0f %11.2f %11.2f %11.3f %11.3f %7ld %12.0f\n", r->bytes, r->bytes / 4,
            r->time_us, r->time_us_mean, r->algbw_gbs, r->busbw_gbs, r->errors, r->wire_bytes);
    fflush(f);
}

static int write_json(FILE *f, const dl_comm *c, const ar_opts *o, const dl_sweep_point *res,
                      int n, long errors, int on_gpu)
{
    fprintf(f, "{\"bench\":\"allreduce\",\"version\":1,\"backend\":\"%s\",\"world\":%d,"
               "\"local_size\":%d,\"nodes\":%d,\"allreduce\":\"%s\",\"op\":\"avg\",\"dtype\":\"float32\","
               "\"compress\":\"%s\",\"memory\":\"%s\","
               "\"iters\":%d,\"warmup\":%d,\"min_bytes\":%ld,\"max_bytes\":%ld,\"factor\":%.6g,"
               "\"time\":\"slowest rank's median\",\"bus_factor\":%.17g,\"env\":",
            c->name, c->world, c->local_size, c->nodes, o->allreduce, o->compress,
            on_gpu ? "device" : "host", o->iters, o->warmup,
            o->min_bytes, o->max_bytes, o->factor, dl_sweep_bus_factor(c->world));
    dl_run_env_json(f);
    fprintf(f, ",\"nccl\":");
    dl_run_nccl_json(f);
    char links[4096];
    fprintf(f, ",\"gpus\":");
    dl_run_gpu_links(links, sizeof links, f);
    fprintf(f, ",\"results\":[");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s{\"bytes\":%.0f,\"count\":%.0f,\"time_us\":%.6g,\"time_us_mean\":%.6g,"
                   "\"algbw_gbps\":%.9g,\"busbw_gbps\":%.9g,\"errors\":%ld,\"wire_bytes\":%.0f}",
                i ? "," : "", res[i].bytes, res[i].bytes / 4, res[i].time_us, res[i].time_us_mean,
                res[i].algbw_gbs, res[i].busbw_gbs, res[i].errors, res[i].wire_bytes);
    fprintf(f, "],\"errors\":%ld}\n", errors);
    return ferror(f) ? -1 : 0;
}

/* The exact command line, as this rank saw it. */
static void command_line(char *out, size_t cap, int world, int argc, char **argv)
{
    size_t len = 0;
    out[0] = 0;
    if (world > 1)
        len += (size_t)snprintf(out, cap, "mpirun -np %d ", world);
    len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "dltrain bench");
    for (int i = 0; i < argc && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, " %s", argv[i]);
}

static int write_report(const ar_opts *o, const dl_comm *c, const dl_sweep_point *res, int n,
                        const char *command, int on_gpu)
{
    dl_report *r = calloc(1, sizeof *r);
    if (!r)
        return -1;
    snprintf(r->title, sizeof r->title, "dltrain bench allreduce: %d rank%s, backend %s",
             c->world, c->world == 1 ? "" : "s", c->name);
    time_t now = time(NULL);
    strftime(r->generated, sizeof r->generated, "%Y-%m-%d %H:%M:%S", localtime(&now));
    char machine[400];
    dl_run_machine(machine, sizeof machine);
    snprintf(r->machine, sizeof r->machine, "%s; backend %s, %d rank(s), %s memory, float32",
             machine, c->name, c->world, on_gpu ? "GPU" : "host");
    snprintf(r->commands, sizeof r->commands, "%s", command);
    int n_gpus = dl_run_gpu_links(r->topology, sizeof r->topology, NULL);
    if (n_gpus == 0)
        snprintf(r->topology, sizeof r->topology, "no GPUs found under /sys: host memory and "
                 "CPU processes only\n");
    char env[2048], nccl[1024];
    int n_env = dl_run_env_text(env, sizeof env);
    dl_run_nccl_text(nccl, sizeof nccl);
    snprintf(r->notes, sizeof r->notes, "time = the slowest rank's median of %d timed iterations "
             "(%d warm-up), a barrier before each; busbw = algbw x 2(n-1)/n = algbw x %.4g.\n"
             "%sEnvironment variables recorded (%d):\n%s%s", o->iters, o->warmup,
             dl_sweep_bus_factor(c->world), nccl, n_env, n_env ? env : "(none set)\n",
             n > DL_REPORT_MAX_POINTS ? "Only the first 64 sizes are drawn; the JSON has all.\n"
                                      : "");
    r->bw_ranks = c->world;
    snprintf(r->bw_backend, sizeof r->bw_backend, "%s", c->name);
    for (int i = 0; i < n && r->n_bw < DL_REPORT_MAX_POINTS; i++)
        r->bw[r->n_bw++] = (dl_report_bw_point){res[i].bytes, res[i].time_us, res[i].algbw_gbs,
                                                res[i].busbw_gbs};
    int rc = dl_report_write_html(o->report, r);
    free(r);
    return rc;
}

static int write_outputs(const ar_opts *o, const dl_comm *c, const dl_sweep_point *res, int n,
                         long errors, const char *command, int on_gpu)
{
    int rc = DL_EXIT_OK, json_stdout = strcmp(o->json, "-") == 0;
    if (o->json[0]) {
        FILE *f = json_stdout ? stdout : fopen(o->json, "w");
        if (!f || write_json(f, c, o, res, n, errors, on_gpu) != 0 || (!json_stdout && fclose(f))) {
            fprintf(stderr, "dltrain bench allreduce: cannot write %s\n", o->json);
            rc = DL_EXIT_ERROR;
        }
    }
    if (o->report[0] && write_report(o, c, res, n, command, on_gpu) != 0) {
        fprintf(stderr, "dltrain bench allreduce: cannot write the report %s: %s\n", o->report,
                dl_error_message());
        rc = DL_EXIT_ERROR;
    }
    return rc;
}

static int bench(dl_ctx *ctx, const ar_opts *o, const char *command)
{
    dl_comm *c = ctx->comm;
    enum { MAX_SIZES = 512 };
    static dl_sweep_point res[MAX_SIZES];
    int json_stdout = strcmp(o->json, "-") == 0;
    FILE *out = ctx->rank == 0 && !json_stdout ? stdout : NULL;
    if (out)
        print_header(out, ctx, o);
    dl_sweep_opts so = {o->min_bytes, o->max_bytes, o->factor, o->iters, o->warmup, ctx->dev,
                        {DL_COMPRESS_NONE, 0}};
    dl_compress_parse(o->compress, &so.compress); /* checked before MPI started */
    int n = 0;
    dl_status st = dl_allreduce_sweep(c, &so, res, MAX_SIZES, &n, print_row, out);
    long errors = 0;
    for (int i = 0; i < n; i++)
        errors += res[i].errors;
    int rc = DL_EXIT_OK;
    if (st != DL_OK) {
        fprintf(stderr, "dltrain bench allreduce rank %d: %s\n", ctx->rank, dl_error_message());
        rc = DL_EXIT_ERROR;
    } else if (ctx->rank == 0) {
        if (out)
            fprintf(out, "\n  %ld element%s wrong in all (%s)\n", errors, errors == 1 ? "" : "s",
                    errors ? "FAILED" : "every size correct");
        rc = write_outputs(o, c, res, n, errors, command, ctx->dev != NULL);
    }
    if (errors && rc == DL_EXIT_OK)
        rc = DL_EXIT_ERROR;
    return rc;
}

/* Collective: every rank opens its GPU; if one cannot, all stop.  Then the
 * backend for GPU buffers goes on top of the host one. */
static int open_gpu(dl_ctx *ctx, const ar_opts *o)
{
    int rc = dl_launch_device(ctx, "cuda", o->gpus, "fp32", 0, "bench allreduce");
    int n_failed = 0, first = -1;
    if (dl_comm_agree(ctx->comm, rc != 0, &n_failed, &first) != DL_OK)
        return DL_EXIT_ERROR;
    if (n_failed) {
        if (ctx->rank == 0 && rc == 0)
            fprintf(stderr, "dltrain bench allreduce: rank %d could not open its GPU (its "
                    "message is above)\n", first);
        return rc ? rc : DL_EXIT_ERROR;
    }
    const char *choice = strcmp(o->backend, "nccl") == 0 ? "nccl"
                         : strcmp(o->backend, "auto") == 0 ? "auto" : "mpi";
    return dl_launch_comm_backend(ctx, choice, "bench allreduce");
}

/* Device, backend and size checks, before MPI starts; an exit status or -1. */
static int check_options(const ar_opts *o)
{
    if (strcmp(o->backend, "auto") && strcmp(o->backend, "mpi") && strcmp(o->backend, "local") &&
        strcmp(o->backend, "nccl")) {
        fprintf(stderr, "dltrain bench allreduce: unknown backend '%s' (choose from auto, mpi, "
                "nccl, local)\n", o->backend);
        return DL_EXIT_USAGE;
    }
    if (strcmp(o->device, "cpu") && strcmp(o->device, "cuda")) {
        fprintf(stderr, "dltrain bench allreduce: unknown --device '%s' (choose cpu or cuda)\n",
                o->device);
        return DL_EXIT_USAGE;
    }
    if (strcmp(o->device, "cuda") && (strcmp(o->backend, "nccl") == 0 || o->gpus[0])) {
        fprintf(stderr, "dltrain bench allreduce: %s needs --device cuda\n",
                o->gpus[0] ? "--gpus" : "--backend nccl");
        return DL_EXIT_USAGE;
    }
    dl_compress_spec spec;
    if (dl_compress_parse(o->compress, &spec) != DL_OK) {
        fprintf(stderr, "dltrain bench allreduce: %s\n", dl_error_message());
        return DL_EXIT_USAGE;
    }
    dl_allreduce_algo algo;
    if (!dl_launch_allreduce_name(o->allreduce, &algo, "bench allreduce"))
        return DL_EXIT_USAGE;
    int r = dl_launch_check_device_names("cuda", "fp32", NULL, o->gpus, "bench allreduce");
    if (r >= 0)
        return r;
    if (o->min_bytes % 4 || o->max_bytes % 4 || o->min_bytes > o->max_bytes) {
        fprintf(stderr, "dltrain bench allreduce: --min-bytes and --max-bytes must be multiples of "
                "4 (float32) with min <= max, got %ld and %ld\n", o->min_bytes, o->max_bytes);
        return DL_EXIT_USAGE;
    }
    return -1;
}

int dl_bench_allreduce(int argc, char **argv)
{
    ar_opts o = {.min_bytes = 4, .max_bytes = 128L << 20, .factor = 2, .iters = 20, .warmup = 5,
                 .timeout_s = 60, .backend = "auto", .device = "cpu", .compress = "none",
                 .allreduce = "auto"};
    /* Options first: every rank parses the same command line, so all stop alike
     * before MPI is started. */
    int r = dl_options_parse(ar_options, &o, argc, argv, "bench allreduce", ar_usage);
    if (r)
        return r == 1 ? DL_EXIT_OK : r;
    if ((r = check_options(&o)) >= 0)
        return r;
    int world = dl_launcher_world(NULL);
    if (strcmp(o.backend, "mpi") == 0 && world == 0) {
        fprintf(stderr, "dltrain bench allreduce: --backend mpi needs a launcher: "
                "mpirun -np N dltrain bench allreduce\n");
        return DL_EXIT_USAGE;
    }
    if (strcmp(o.backend, "local") == 0 && world > 1) {
        fprintf(stderr, "dltrain bench allreduce: --backend local is one rank, but the launcher "
                "started %d\n", world);
        return DL_EXIT_USAGE;
    }
    dl_ctx ctx = {.rank = 0, .world = 1, .local_rank = 0};
    if (strcmp(o.backend, "local") == 0)
        ctx.comm = dl_comm_local();
    else if ((r = dl_launch_comm(&ctx, &argc, &argv)))
        return r;
    ctx.comm->timeout_s = o.timeout_s;
    char command[1024];
    command_line(command, sizeof command, ctx.world, argc, argv);
    r = dl_launch_allreduce(&ctx, o.allreduce, "bench allreduce");
    if (r == 0) /* the JSON records the choice: its first word */
        snprintf(o.allreduce, sizeof o.allreduce, "%.4s", ctx.allreduce_note);
    if (r == 0 && strcmp(o.device, "cuda") == 0)
        r = open_gpu(&ctx, &o);
    if (r == 0)
        r = bench(&ctx, &o, command);
    if (ctx.comm != dl_comm_local())
        dl_launch_finish(&ctx);
    dl_launch_device_close(&ctx);
    return r;
}
