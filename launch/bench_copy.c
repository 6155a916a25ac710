/* bench_copy.c: `dltrain bench copy` — host-to-GPU and GPU-to-host copy
 * bandwidth of each GPU, from pinned and from pageable host memory.  This is
 * the single-GPU figure the PCIe lanes set directly (an x16 gen4 link carries
 * at most 31.5 GB/s each way, x8 half of it), so each row is printed beside
 * the link the GPU sits on, read right after its copies (an idle GPU may
 * have dropped to a lower link speed to save power). */
#define _DEFAULT_SOURCE
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../comm/topo/topo.h"
#include "../runtime/device_cuda.h"
#include "../runtime/parse.h"
#include "bench.h"
#include "context.h"
#include "options.h"
#include "run_env.h"

typedef struct copy_opts {
    long bytes;
    int iters, warmup;
    char gpus[256], json[512];
} copy_opts;

#define O(f) offsetof(copy_opts, f)
#define S(f) sizeof(((copy_opts *)0)->f)

static const dl_option copy_options[] = {
    {"bytes", DL_OPT_LONG, O(bytes), 0, "B", 4096, 1L << 36, "bytes per copy (default 64 MiB)"},
    {"iters", DL_OPT_INT, O(iters), 0, "N", 1, 100000, "timed copies per case (default 20)"},
    {"warmup", DL_OPT_INT, O(warmup), 0, "N", 0, 100000, "untimed copies per case (default 3)"},
    {"gpus", DL_OPT_STRING, O(gpus), S(gpus), "I,J,..", 0, 0, "GPUs to measure (default: all)"},
    {"json", DL_OPT_STRING, O(json), S(json), "FILE", 0, 0, "also write the results as JSON"},
    DL_OPT_END,
};

/* Reports the failed call with file:line and CUDA's message; the caller gives up. */
#define CUDA_OK(call) cuda_ok((call), #call, __FILE__, __LINE__)
static int cuda_ok(cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess)
        return 1;
    fprintf(stderr, "dltrain bench copy: %s failed at %s:%d: %s\n", call, file, line,
            cudaGetErrorString(e));
    return 0;
}

typedef struct copy_row {
    int gpu;
    char name[256], bdf[24], link[96];
    double link_gbs;   /* the link's rated bandwidth one way; 0 unknown */
    double gbs[4];     /* h2d pinned, d2h pinned, h2d pageable, d2h pageable */
} copy_row;

static const char *case_names[4] = {"h2d_pinned", "d2h_pinned", "h2d_pageable", "d2h_pageable"};

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median GB/s of o->iters copies, each timed by events on one stream. */
static int time_copy(const copy_opts *o, void *dst, const void *src, enum cudaMemcpyKind kind,
                     cudaStream_t s, cudaEvent_t t0, cudaEvent_t t1, float *ms, double *gbs)
{
    for (int i = 0; i < o->warmup; i++)
        if (!CUDA_OK(cudaMemcpyAsync(dst, src, (size_t)o->bytes, kind, s)))
            return 0;
    for (int i = 0; i < o->iters; i++) {
        if (!CUDA_OK(cudaEventRecord(t0, s)) ||
            !CUDA_OK(cudaMemcpyAsync(dst, src, (size_t)o->bytes, kind, s)) ||
            !CUDA_OK(cudaEventRecord(t1, s)) || !CUDA_OK(cudaEventSynchronize(t1)) ||
            !CUDA_OK(cudaEventElapsedTime(&ms[i], t0, t1)))
            return 0;
    }
    qsort(ms, (size_t)o->iters, sizeof *ms, cmp_float);
    double median = ms[o->iters / 2] * 1e-3;
    *gbs = median > 0 ? (double)o->bytes / median / 1e9 : 0;
    return 1;
}

/* The GPU's own PCIe link, as the topology reads it now. */
static void read_link(copy_row *row)
{
    dl_topo t;
    if (dl_topo_discover("/sys", &t) != DL_OK)
        return;
    for (int i = 0; i < t.n_gpus; i++) {
        const dl_topo_link *l = &t.gpus[i].link;
        if (strcasecmp(t.gpus[i].bdf, row->bdf) != 0 || l->cur_width <= 0)
            continue;
        row->link_gbs = dl_topo_link_gbps(l->cur_gts, l->cur_width);
        snprintf(row->link, sizeof row->link, "x%d gen%d now (x%d gen%d max), %.1f GB/s",
                 l->cur_width, dl_topo_gen_from_gts(l->cur_gts), l->max_width,
                 dl_topo_gen_from_gts(l->max_gts), row->link_gbs);
    }
    dl_topo_free(&t);
}

static int measure_gpu(const copy_opts *o, int gpu, copy_row *row, float *ms)
{
    void *dev = NULL, *pinned = NULL, *pageable = NULL;
    cudaStream_t s = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    struct cudaDeviceProp prop;
    int ok = CUDA_OK(cudaSetDevice(gpu)) && CUDA_OK(cudaGetDeviceProperties(&prop, gpu)) &&
             CUDA_OK(cudaDeviceGetPCIBusId(row->bdf, sizeof row->bdf, gpu)) &&
             CUDA_OK(cudaMalloc(&dev, (size_t)o->bytes)) &&
             CUDA_OK(cudaMallocHost(&pinned, (size_t)o->bytes)) &&
             CUDA_OK(cudaStreamCreate(&s)) && CUDA_OK(cudaEventCreate(&t0)) &&
             CUDA_OK(cudaEventCreate(&t1));
    pageable = ok ? malloc((size_t)o->bytes) : NULL;
    if (ok && !pageable) {
        fprintf(stderr, "dltrain bench copy: out of host memory for %ld bytes\n", o->bytes);
        ok = 0;
    }
    if (ok) { /* touch every page, so the first copy does not pay for faults */
        memset(pageable, 1, (size_t)o->bytes), memset(pinned, 1, (size_t)o->bytes);
        row->gpu = gpu;
        snprintf(row->name, sizeof row->name, "%s", prop.name);
        void *src[4] = {pinned, dev, pageable, dev}, *dst[4] = {dev, pinned, dev, pageable};
        enum cudaMemcpyKind kind[4] = {cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost,
                                       cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost};
        for (int c = 0; ok && c < 4; c++)
            ok = time_copy(o, dst[c], src[c], kind[c], s, t0, t1, ms, &row->gbs[c]);
        read_link(row); /* right after the copies: the link has not dropped to idle yet */
    }
    if (t0) cudaEventDestroy(t0);
    if (t1) cudaEventDestroy(t1);
    if (s) cudaStreamDestroy(s);
    if (dev) cudaFree(dev);
    if (pinned) cudaFreeHost(pinned);
    free(pageable);
    return ok;
}

static void print_rows(const copy_opts *o, const copy_row *rows, int n)
{
    printf("bench copy: %ld bytes per copy, median of %d (after %d warm-up), CUDA events\n",
           o->bytes, o->iters, o->warmup);
    printf("\n  %3s %-28s %-13s %10s %10s %10s %10s  %s\n", "gpu", "name", "bus id",
           "H2D pin", "D2H pin", "H2D page", "D2H page", "PCIe link (GB/s one way)");
    for (int i = 0; i < n; i++) {
        const copy_row *r = &rows[i];
        printf("  %3d %-28.28s %-13s %10.2f %10.2f %10.2f %10.2f  %s\n", r->gpu, r->name, r->bdf,
               r->gbs[0], r->gbs[1], r->gbs[2], r->gbs[3], r->link[0] ? r->link : "unknown");
        if (r->link_gbs > 0)
            printf("      pinned H2D is %.0f%% of the link's rated bandwidth\n",
                   100.0 * r->gbs[0] / r->link_gbs);
    }
}

static int write_json(const copy_opts *o, const copy_row *rows, int n)
{
    FILE *f = fopen(o->json, "w");
    if (!f)
        return -1;
    fprintf(f, "{\"bench\":\"copy\",\"version\":1,\"bytes\":%ld,\"iters\":%d,\"gpus\":[", o->bytes,
            o->iters);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s{\"gpu\":%d,\"name\":", i ? "," : "", rows[i].gpu);
        dl_json_string(f, rows[i].name);
        fprintf(f, ",\"bus_id\":");
        dl_json_string(f, rows[i].bdf);
        fprintf(f, ",\"link\":");
        dl_json_string(f, rows[i].link);
        fprintf(f, ",\"link_gbps\":%.6g", rows[i].link_gbs);
        for (int c = 0; c < 4; c++)
            fprintf(f, ",\"%s_gbps\":%.6g", case_names[c], rows[i].gbs[c]);
        fprintf(f, "}");
    }
    fprintf(f, "],\"env\":");
    dl_run_env_json(f);
    fprintf(f, "}\n");
    return fclose(f) == 0 ? 0 : -1;
}

/* "0,2" -> {0, 2}, checked against the GPUs present; returns the count or -1. */
static int parse_gpus(const char *text, int n_present, int *out, int max)
{
    if (!text[0]) {
        for (int i = 0; i < n_present && i < max; i++)
            out[i] = i;
        return n_present < max ? n_present : max;
    }
    int n = n_present > 0 ? dl_parse_int_list(text, 0, n_present - 1, out, max) : -1;
    if (n < 0)
        fprintf(stderr, "dltrain bench copy: --gpus '%s': expected GPU numbers 0..%d, "
                "comma-separated\n", text, n_present - 1);
    return n;
}

int dl_bench_copy(int argc, char **argv)
{
    copy_opts o = {.bytes = 64L << 20, .iters = 20, .warmup = 3};
    int r = dl_options_parse(copy_options, &o, argc, argv, "bench copy",
                             "Host<->GPU copy bandwidth per GPU, pinned and pageable, beside "
                             "the PCIe link each GPU sits on.");
    if (r)
        return r == 1 ? DL_EXIT_OK : r;
    char why[512];
    int n_present = dl_device_cuda_count(why, sizeof why); /* "no GPU" told from "old driver" */
    if (n_present < 1) {
        fprintf(stderr, "dltrain bench copy: %s\n", why);
        return DL_EXIT_ERROR;
    }
    int gpus[64];
    int n = parse_gpus(o.gpus, n_present, gpus, 64);
    if (n < 0)
        return DL_EXIT_USAGE;
    copy_row rows[64];
    float *ms = malloc(sizeof(float) * (size_t)o.iters);
    memset(rows, 0, sizeof rows);
    int ok = ms != NULL;
    for (int i = 0; ok && i < n; i++)
        ok = measure_gpu(&o, gpus[i], &rows[i], ms);
    free(ms);
    if (!ok)
        return DL_EXIT_ERROR;
    print_rows(&o, rows, n);
    if (o.json[0] && write_json(&o, rows, n) != 0) {
        fprintf(stderr, "dltrain bench copy: cannot write %s\n", o.json);
        return DL_EXIT_ERROR;
    }
    return DL_EXIT_OK;
}
