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
 * averages once, and compares every element with the exact average.
 *
 *   mpirun -np 4 dltrain bench allreduce --max-bytes 268435456 --json ar.json
 *   dltrain predict --allreduce-json ar.json ...   (calibrates the model)
 *
 * --device cuda puts the buffer in GPU memory: --backend nccl reduces it
 * with NCCL (the training path), --backend mpi stages it through pinned host
 * memory (comm_staged.c).  The clock stops when the GPU has the result
 * (the device is synchronised after each wait). */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "context.h"
#include "launch.h"
#include "options.h"

int dl_bench_allreduce(int argc, char **argv);

typedef struct {
    long min_bytes, max_bytes;
    double factor, timeout_s;
    int iters, warmup;
    char backend[16], json[512], device[16], gpus[256];
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
    {"timeout", DL_OPT_DOUBLE, O(timeout_s), 0, "S", 1, 1e6,
     "abort when one all-reduce makes no progress this long (default 60)"},
    {"json", DL_OPT_STRING, O(json), S(json), "FILE", 0, 0,
     "also write the results as JSON ('-': on stdout instead of the table)"},
    DL_OPT_END,
};

static const char ar_usage[] =
    "All-reduce (float32 average, the gradient path) over message sizes: time, algorithm\n"
    "and bus bandwidth (nccl-tests definitions), and a correctness check.\n"
    "  mpirun -np 4 dltrain bench allreduce [options]\n"
    "--device cuda: the buffer in GPU memory, reduced by NCCL or staged through MPI.\n"
    "Exit status 1 when any element came back wrong.";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The value rank r puts at index i: small integers, so the sum over ranks is
 * exact in float and only the final scaling by 1/n rounds. */
static float pattern(size_t i, int r)
{
    return (float)((i * 7 + (size_t)r * 13) % 1024);
}

static double expected(size_t i, int world)
{
    double s = 0;
    for (int r = 0; r < world; r++)
        s += pattern(i, r);
    return s / world;
}

typedef struct {
    double bytes, time_us, time_us_mean, algbw, busbw;
    long errors;
} ar_result;

/* One message size: warm-up, timed iterations, correctness.  Every rank
 * returns the same result (times and errors are shared). */
/* One all-reduce of x (host or device memory), complete when it returns:
 * with a GPU buffer, wait only orders the device's stream, so sync it. */
static dl_status reduce_once(dl_comm *c, dl_device *dev, float *x, size_t count)
{
    dl_status st = c->allreduce_avg_start(c, x, count, 0);
    if (st == DL_OK)
        st = c->allreduce_wait(c, 0, NULL);
    if (st == DL_OK && dev)
        dev->sync(dev);
    return st;
}

/* buf is host memory; dbuf is the buffer reduced (== buf without a device). */
static dl_status run_size(dl_comm *c, dl_device *dev, const ar_opts *o, float *buf, float *dbuf,
                          size_t count, double *times, double *shared, ar_result *res)
{
    dl_status st = DL_OK;
    for (int i = 0; st == DL_OK && i < o->warmup; i++)
        st = reduce_once(c, dev, dbuf, count);
    for (int i = 0; st == DL_OK && i < o->iters; i++) {
        st = c->barrier(c);
        double t0 = dl_now();
        if (st == DL_OK)
            st = reduce_once(c, dev, dbuf, count);
        times[i] = dl_now() - t0;
    }
    if (st != DL_OK)
        return st;
    qsort(times, (size_t)o->iters, sizeof *times, cmp_double);
    double median = o->iters % 2 ? times[o->iters / 2]
                                  : 0.5 * (times[o->iters / 2 - 1] + times[o->iters / 2]);

    for (size_t i = 0; i < count; i++)
        buf[i] = pattern(i, c->rank);
    if (dev)
        dev->upload(dev, dbuf, buf, sizeof(float) * count);
    st = reduce_once(c, dev, dbuf, count);
    if (st != DL_OK)
        return st;
    if (dev)
        dev->download(dev, buf, dbuf, sizeof(float) * count);
    long errors = 0;
    for (size_t i = 0; i < count; i++) {
        double want = expected(i, c->world);
        if (!(fabs((double)buf[i] - want) <= 4 * FLT_EPSILON * fmax(1.0, fabs(want))))
            errors++;
    }

    /* shared[0, world): every rank's median; shared[world]: errors summed */
    memset(shared, 0, sizeof(double) * (size_t)(c->world + 1));
    shared[c->rank] = median;
    shared[c->world] = (double)errors;
    st = c->allreduce_sum_f64(c, shared, c->world + 1);
    if (st != DL_OK)
        return st;
    double worst = 0, sum = 0;
    for (int r = 0; r < c->world; r++)
        worst = fmax(worst, shared[r]), sum += shared[r];
    res->bytes = (double)count * sizeof(float);
    res->time_us = worst * 1e6;
    res->time_us_mean = sum / c->world * 1e6;
    res->algbw = worst > 0 ? res->bytes / worst / 1e9 : 0;
    res->busbw = res->algbw * (c->world > 1 ? 2.0 * (c->world - 1) / c->world : 0.0);
    res->errors = (long)llround(shared[c->world]);
    return DL_OK;
}

static void print_header(FILE *f, const dl_ctx *ctx, const ar_opts *o)
{
    const dl_comm *c = ctx->comm;
    fprintf(f, "bench allreduce: backend %s, %d rank%s, float32 average (allreduce_avg_start/"
               "wait), %s memory\n", c->name, c->world, c->world == 1 ? "" : "s",
            ctx->dev ? ctx->dev->name : "host");
    fprintf(f, "  %d warm-up and %d timed iterations per size, barrier before each; time = the "
               "slowest rank's median\n", o->warmup, o->iters);
    fprintf(f, "  busbw = algbw x 2(n-1)/n = algbw x %.4g\n",
            c->world > 1 ? 2.0 * (c->world - 1) / c->world : 0.0);
    if (strcmp(c->name, "local") == 0)
        fprintf(f, "  (local backend: one rank, the all-reduce is the identity; times are the "
                   "call's overhead)\n");
    fprintf(f, "\n  %12s %11s %11s %11s %11s %11s %7s\n", "bytes", "count", "time us", "mean us",
            "algbw GB/s", "busbw GB/s", "errors");
}

static void print_row(FILE *f, const ar_result *r)
{
    fprintf(f, "  %12.0f %11.0f %11.2f %11.2f %11.3f %11.3f %7ld\n", r->bytes, r->bytes / 4,
            r->time_us, r->time_us_mean, r->algbw, r->busbw, r->errors);
    fflush(f);
}

static int write_json(FILE *f, const dl_comm *c, const ar_opts *o, const ar_result *res, int n,
                      long errors, int on_gpu)
{
    fprintf(f, "{\"bench\":\"allreduce\",\"version\":1,\"backend\":\"%s\",\"world\":%d,"
               "\"local_size\":%d,\"op\":\"avg\",\"dtype\":\"float32\",\"memory\":\"%s\","
               "\"iters\":%d,\"warmup\":%d,\"min_bytes\":%ld,\"max_bytes\":%ld,\"factor\":%.6g,"
               "\"time\":\"slowest rank's median\",\"bus_factor\":%.17g,\"results\":[",
            c->name, c->world, c->local_size, on_gpu ? "device" : "host", o->iters, o->warmup, o->min_bytes, o->max_bytes,
            o->factor, c->world > 1 ? 2.0 * (c->world - 1) / c->world : 0.0);
    for (int i = 0; i < n; i++)
        fprintf(f, "%s{\"bytes\":%.0f,\"count\":%.0f,\"time_us\":%.6g,\"time_us_mean\":%.6g,"
                   "\"algbw_gbps\":%.9g,\"busbw_gbps\":%.9g,\"errors\":%ld}",
                i ? "," : "", res[i].bytes, res[i].bytes / 4, res[i].time_us, res[i].time_us_mean,
                res[i].algbw, res[i].busbw, res[i].errors);
    fprintf(f, "],\"errors\":%ld}\n", errors);
    return ferror(f) ? -1 : 0;
}

static int bench(dl_ctx *ctx, const ar_opts *o)
{
    dl_comm *c = ctx->comm;
    size_t max_count = (size_t)(o->max_bytes / 4);
    float *buf = dl_alloc(sizeof(float) * max_count, "all-reduce buffer (reduce --max-bytes)");
    double *times = dl_alloc(sizeof(double) * (size_t)o->iters, "timings");
    double *shared = dl_alloc(sizeof(double) * (size_t)(c->world + 1), "rank timings");
    enum { MAX_SIZES = 512 };
    ar_result *res = dl_alloc(sizeof(ar_result) * MAX_SIZES, "results");
    dl_device *dev = ctx->dev;
    float *dbuf = dev ? dev->alloc(dev, sizeof(float) * max_count, "all-reduce buffer (reduce "
                                   "--max-bytes)") : buf;
    int failed = !buf || !dbuf || !times || !shared || !res, n_failed = 0, first = -1;
    if (dl_comm_agree(c, failed, &n_failed, &first) != DL_OK || n_failed) {
        if (failed)
            fprintf(stderr, "dltrain bench allreduce rank %d: %s\n", ctx->rank,
                    dl_error_message());
        if (dev)
            dev->free(dev, dbuf);
        free(buf), free(times), free(shared), free(res);
        return DL_EXIT_ERROR;
    }
    for (size_t i = 0; i < max_count; i++)
        buf[i] = pattern(i, c->rank);
    int json_stdout = strcmp(o->json, "-") == 0;
    FILE *out = ctx->rank == 0 && !json_stdout ? stdout : NULL;
    if (out)
        print_header(out, ctx, o);
    int n = 0;
    long errors = 0;
    dl_status st = DL_OK;
    for (double b = (double)o->min_bytes; b <= (double)o->max_bytes && n < MAX_SIZES;) {
        size_t count = (size_t)(b / 4);
        st = run_size(c, dev, o, buf, dbuf, count, times, shared, &res[n]);
        if (st != DL_OK)
            break;
        errors += res[n].errors;
        if (out)
            print_row(out, &res[n]);
        n++;
        double next = floor(b * o->factor / 4) * 4; /* whole floats, always growing */
        b = next > b ? next : b + 4;
    }
    int rc = DL_EXIT_OK;
    if (st != DL_OK) {
        fprintf(stderr, "dltrain bench allreduce rank %d: %s\n", ctx->rank, dl_error_message());
        rc = DL_EXIT_ERROR;
    } else if (ctx->rank == 0) {
        if (out)
            fprintf(out, "\n  %ld element%s wrong in all (%s)\n", errors, errors == 1 ? "" : "s",
                    errors ? "FAILED" : "every size correct");
        if (o->json[0]) {
            FILE *f = json_stdout ? stdout : fopen(o->json, "w");
            if (!f || write_json(f, c, o, res, n, errors, dev != NULL) != 0 ||
                (!json_stdout && fclose(f))) {
                fprintf(stderr, "dltrain bench allreduce: cannot write %s\n", o->json);
                rc = DL_EXIT_ERROR;
            }
        }
    }
    if (errors && rc == DL_EXIT_OK)
        rc = DL_EXIT_ERROR;
    if (dev)
        dev->free(dev, dbuf);
    free(buf), free(times), free(shared), free(res);
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

int dl_bench_allreduce(int argc, char **argv)
{
    ar_opts o = {.min_bytes = 4, .max_bytes = 128L << 20, .factor = 2, .iters = 20, .warmup = 5,
                 .timeout_s = 60, .backend = "auto", .device = "cpu"};
    /* Options first: every rank parses the same command line, so all stop alike
     * before MPI is started. */
    int r = dl_options_parse(ar_options, &o, argc, argv, "bench allreduce", ar_usage);
    if (r)
        return r == 1 ? DL_EXIT_OK : r;
    if (strcmp(o.backend, "auto") && strcmp(o.backend, "mpi") && strcmp(o.backend, "local") &&
        strcmp(o.backend, "nccl")) {
        fprintf(stderr, "dltrain bench allreduce: unknown backend '%s' (choose from auto, mpi, "
                "nccl, local)\n", o.backend);
        return DL_EXIT_USAGE;
    }
    if (strcmp(o.device, "cpu") && strcmp(o.device, "cuda")) {
        fprintf(stderr, "dltrain bench allreduce: unknown --device '%s' (choose cpu or cuda)\n",
                o.device);
        return DL_EXIT_USAGE;
    }
    int on_gpu = strcmp(o.device, "cuda") == 0;
    if (!on_gpu && (strcmp(o.backend, "nccl") == 0 || o.gpus[0])) {
        fprintf(stderr, "dltrain bench allreduce: %s needs --device cuda\n",
                o.gpus[0] ? "--gpus" : "--backend nccl");
        return DL_EXIT_USAGE;
    }
    r = dl_launch_check_device_names("cuda", "fp32", NULL, o.gpus, "bench allreduce");
    if (r >= 0)
        return r;
    if (o.min_bytes % 4 || o.max_bytes % 4 || o.min_bytes > o.max_bytes) {
        fprintf(stderr, "dltrain bench allreduce: --min-bytes and --max-bytes must be multiples of "
                "4 (float32) with min <= max, got %ld and %ld\n", o.min_bytes, o.max_bytes);
        return DL_EXIT_USAGE;
    }
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
    r = on_gpu ? open_gpu(&ctx, &o) : 0;
    if (r == 0)
        r = bench(&ctx, &o);
    if (ctx.comm != dl_comm_local())
        dl_launch_finish(&ctx);
    dl_launch_device_close(&ctx);
    return r;
}
