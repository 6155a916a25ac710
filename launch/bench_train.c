/* bench_train.c: `dltrain bench train` — training-step throughput of a model
 * on a fixed batch (data loading excluded, as in the PyTorch peer script
 * scripts/bench_torch.py), after warm-up steps.  Prints images/s, the time
 * per phase and the achieved GFLOP/s; with --compress also the codecs'
 * time per step on the same device (bench_codec.c). */
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../models/models.h"
#include "../runtime/data.h"
#include "../runtime/optim.h"
#include "bench.h"
#include "context.h"
#include "launch.h"
#include "options.h"
#include "step.h"

typedef struct bench_opts {
    char model[32], data[512], json[512], trace_dir[512];
    char device[16], precision[16], gpus[16], conv[16], compress[24];
    int batch, steps, warmup, threads, repeats, trace_steps;
    long seed;
} bench_opts;

#define O(f) offsetof(bench_opts, f)
#define S(f) sizeof(((bench_opts *)0)->f)

static const dl_option bench_train_options[] = {
    {"model", DL_OPT_STRING, O(model), S(model), "NAME", 0, 0, "lenet (default), resnet20, resnet50"},
    {"data", DL_OPT_STRING, O(data), S(data), "SPEC", 0, 0,
     "synthetic:CxHxW[:classes] (default synthetic:1x28x28:10) or an IDX directory"},
    {"batch", DL_OPT_INT, O(batch), 0, "N", 1, 1 << 20, "batch size (default 128)"},
    {"steps", DL_OPT_INT, O(steps), 0, "N", 1, 1e9, "timed steps per repeat (default 20)"},
    {"warmup", DL_OPT_INT, O(warmup), 0, "N", 0, 1e9, "untimed warm-up steps (default 3)"},
    {"repeats", DL_OPT_INT, O(repeats), 0, "N", 1, 1000, "timed repeats; the median is reported (default 3)"},
    {"threads", DL_OPT_INT, O(threads), 0, "N", 0, 1024, "CPU threads (default: all cores)"},
    {"seed", DL_OPT_LONG, O(seed), 0, "N", 0, 9.0e15, "random seed (default 1)"},
    {"json", DL_OPT_STRING, O(json), S(json), "FILE", 0, 0, "also write the result as JSON"},
    {"trace", DL_OPT_STRING, O(trace_dir), S(trace_dir), "DIR", 0, 0,
     "write a timeline to DIR/trace-rank-0.json (Perfetto, chrome://tracing)"},
    {"trace-steps", DL_OPT_INT, O(trace_steps), 0, "N", 1, 1000000,
     "steps kept in the trace, after the first (default 20)"},
    {"device", DL_OPT_STRING, O(device), S(device), "KIND", 0, 0,
     "auto (default: CUDA when a GPU is usable, else CPU), cpu or cuda"},
    {"precision", DL_OPT_STRING, O(precision), S(precision), "MODE", 0, 0,
     "auto (default: CUDA tf32 convolutions + fp32 fully connected; CPU fp32), fp32; CUDA "
     "only: tf32, bf16 (GEMM inputs; fp32 weights)"},
    {"conv", DL_OPT_STRING, O(conv), S(conv), "KIND", 0, 0,
     "CUDA convolutions: auto (default: cuDNN when it loads), cudnn or gemm (im2col + cuBLAS)"},
    {"gpus", DL_OPT_STRING, O(gpus), S(gpus), "I", 0, 0, "the GPU to use (default 0)"},
    {"compress", DL_OPT_STRING, O(compress), S(compress), "KIND", 0, 0,
     "also time gradient compression per step on this device (fp16, bf16, int8, onebit, "
     "powersgd[:RANK]; default none): what to give `predict --compress-ms`"},
    DL_OPT_END,
};

static void run_steps(dl_net *net, dl_sgd *opt, int steps, dl_phase_times *tm)
{
    dl_tracer *tr = net->trace;
    dl_stepper stepper = {.net = net, .overlap = 1, .trace = tr};
    for (int s = 0; s < steps; s++) {
        dl_trace_next_step(tr);
        dl_trace_begin(tr, DL_TRACK_COMPUTE, "step", "step");
        dl_step_forward_backward(&stepper, tm);
        double t0 = dl_now();
        dl_trace_begin(tr, DL_TRACK_COMPUTE, "step", "optimizer");
        dl_sgd_step(opt, net->params, net->grads, 0.01f);
        if (tr)
            net->dev->sync(net->dev);
        dl_trace_end(tr, DL_TRACK_COMPUTE);
        tm->optimizer += dl_now() - t0;
        dl_trace_end(tr, DL_TRACK_COMPUTE);
    }
}

/* --trace: the benchmark's steps, warm-up included, on one compute track. */
static dl_status start_trace(const bench_opts *o, dl_net *net)
{
    if (!o->trace_dir[0])
        return DL_OK;
    dl_status st = dl_make_dirs(o->trace_dir);
    if (st == DL_OK)
        st = dl_trace_init(&net->trace, 0, o->trace_steps, 1, 4 * (size_t)net->n_layers + 16);
    return st;
}

static int finish_trace(const bench_opts *o, dl_net *net, int rc)
{
    if (!net->trace)
        return rc;
    dl_status st = dl_trace_write(net->trace, o->trace_dir);
    if (st == DL_OK)
        printf("  trace: %s/trace-rank-0.json, %zu events\n", o->trace_dir,
               dl_trace_events(net->trace));
    else
        fprintf(stderr, "dltrain bench: %s\n", dl_error_message());
    dl_trace_free(net->trace);
    net->trace = NULL;
    return st == DL_OK ? rc : DL_EXIT_ERROR;
}

/* --compress: the codecs' line; compress_json gets the JSON's fields. */
static void report_codec(const bench_opts *o, const dl_bench_codec *codec, char *compress_json,
                         size_t size)
{
    compress_json[0] = '\0';
    if (codec->kind == DL_COMPRESS_NONE)
        return;
    const char *what = codec->kind == DL_COMPRESS_POWERSGD
                           ? "error feedback, the products and Gram-Schmidt, the same at any "
                             "rank count"
                           : "error feedback, encoding and one shard decoded; each further rank "
                             "adds a decode";
    printf("  --compress %s: %.3f ms per step (median of %d; min %.3f, max %.3f) on this device, "
           "%d buckets of %.2f MB, one rank: %s (predict --compress-ms)\n", o->compress,
           codec->ms, o->repeats, codec->min_ms, codec->max_ms, codec->buckets, codec->bucket_mb,
           what);
    snprintf(compress_json, size, ",\"compress\":\"%s\",\"codec_ms\":%.4f,\"codec_min_ms\":%.4f,"
             "\"codec_max_ms\":%.4f", o->compress, codec->ms, codec->min_ms, codec->max_ms);
}

static int report(const bench_opts *o, const dl_net *net, double *ips, const dl_phase_times *tm,
                  long steps, const char *device_note, const dl_bench_codec *codec)
{
    char compress_json[160];
    dl_sort_doubles(ips, (size_t)o->repeats);
    double median = ips[o->repeats / 2], gflops = median * 6.0 * dl_net_macs_per_sample(net) * 1e-9;
    printf("bench train: model %s, data %dx%dx%d, batch %d, threads %d, precision %s\n", o->model,
           net->in_c, net->in_h, net->in_w, o->batch, o->threads, o->precision);
    printf("  device %s\n", device_note);
    printf("  %.1f images/s (median of %d; min %.1f, max %.1f), %.2f ms/step, %.1f GFLOP/s\n",
           median, o->repeats, ips[0], ips[o->repeats - 1], 1e3 * o->batch / median, gflops);
    printf("  per step (ms): forward %.2f  backward %.2f  optimizer %.2f\n",
           1e3 * tm->forward / steps, 1e3 * tm->backward / steps, 1e3 * tm->optimizer / steps);
    report_codec(o, codec, compress_json, sizeof compress_json);
    if (o->json[0]) {
        FILE *f = fopen(o->json, "w");
        if (!f) {
            fprintf(stderr, "dltrain bench: cannot write %s\n", o->json);
            return DL_EXIT_ERROR;
        }
        fprintf(f, "{\"bench\":\"train\",\"model\":\"%s\",\"batch\":%d,\"threads\":%d,"
                   "\"device\":\"%s\",\"precision\":\"%s\","
                   "\"images_per_s\":%.2f,\"min\":%.2f,\"max\":%.2f,\"gflops\":%.2f%s}\n",
                o->model, o->batch, o->threads, net->dev->name, o->precision, median, ips[0],
                ips[o->repeats - 1], gflops, compress_json);
        fclose(f);
    }
    return DL_EXIT_OK;
}

static int bench_train(int argc, char **argv)
{
    bench_opts o = {.model = "lenet", .data = "synthetic:1x28x28:10", .batch = 128, .steps = 20,
                    .warmup = 3, .repeats = 3, .seed = 1, .trace_steps = 20, .device = "auto",
                    .precision = "auto", .conv = "auto", .compress = "none"};
    int r = dl_options_parse(bench_train_options, &o, argc, argv, "bench train",
                             "Training-step throughput on a fixed batch (compare: scripts/bench_compare.py).");
    if (r)
        return r == 1 ? 0 : r;
    /* Under a launcher every rank would time its own copy of the model and
     * print N unlabeled figures; data-parallel throughput is what scale measures. */
    const char *launcher_var = NULL;
    int launched = dl_launcher_world(&launcher_var);
    if (launched > 1) {
        fprintf(stderr, "dltrain bench train: started as one of %d ranks (%s); bench train times "
                "one process. For data-parallel throughput across ranks use `mpirun -np %d "
                "dltrain scale` (docs/scaling.md), or `dltrain train` for a run\n", launched,
                launcher_var, launched);
        return DL_EXIT_USAGE;
    }
    r = dl_launch_check_device_names(o.device, o.precision, NULL, o.gpus, "bench train");
    if (r < 0)
        r = dl_launch_check_conv_name(o.conv, "bench train");
    if (r >= 0)
        return r;
    const dl_model *m = dl_model_find(o.model);
    if (!m) {
        fprintf(stderr, "dltrain bench: unknown model '%s' (choose from %s)\n", o.model, dl_model_names());
        return DL_EXIT_USAGE;
    }
    dl_compress_spec spec;
    if (dl_compress_parse(o.compress, &spec) != DL_OK) {
        fprintf(stderr, "dltrain bench train: %s\n", dl_error_message());
        return DL_EXIT_USAGE;
    }
    dl_dataset train, test;
    dl_net net;
    dl_sgd opt;
    memset(&net, 0, sizeof net);
    memset(&opt, 0, sizeof opt);
    dl_ctx ctx = {.rank = 0, .world = 1, .local_rank = 0, .comm = dl_comm_local()};
    r = dl_launch_device(&ctx, o.device, o.gpus, o.precision, o.threads, "bench train");
    if (r == 0 && (r = dl_launch_conv(&ctx, o.conv, o.precision, "bench train")) != 0)
        dl_launch_device_close(&ctx);
    if (r)
        return r;
    dl_device *dev = ctx.dev;
    o.threads = omp_get_max_threads();
    dl_status st = dl_data_open(o.data, (uint64_t)o.seed, &train, &test);
    if (st == DL_OK)
        st = dl_model_build(m, &net, train.c, train.h, train.w, train.classes);
    if (st == DL_OK)
        st = dl_net_finalize(&net, dev, o.batch, (uint64_t)o.seed);
    if (st == DL_OK)
        st = dl_sgd_init(&opt, dev, net.n_params, 0.9f, 5e-4f, 0);
    if (st == DL_OK)
        st = dl_step_load_fixed_batch(&net, &train, o.batch);
    if (st == DL_OK)
        st = start_trace(&o, &net);
    if (st != DL_OK) {
        fprintf(stderr, "dltrain bench: %s\n", dl_error_message());
        dl_sgd_free(&opt);
        dl_net_free(&net);
        dl_launch_device_close(&ctx);
        /* a bad --data spec or data file is bad input, as for train */
        return st == DL_ERR_ARG || st == DL_ERR_FORMAT ? DL_EXIT_USAGE : DL_EXIT_ERROR;
    }
    dl_phase_times tm = {0};
    double ips[1000];
    run_steps(&net, &opt, o.warmup, &tm);
    /* On a GPU the host queues ahead: without this the first repeat's clock
     * would also time the warm-up steps still running (and their one-off
     * costs: module loading, cuBLAS/cuDNN set-up). */
    dev->sync(dev);
    memset(&tm, 0, sizeof tm);
    for (int i = 0; i < o.repeats; i++) {
        double t0 = dl_now();
        run_steps(&net, &opt, o.steps, &tm);
        dev->sync(dev); /* a GPU may still be running the last optimizer step */
        ips[i] = (double)o.steps * o.batch / (dl_now() - t0);
    }
    dl_bench_codec codec = {0};
    dl_bench_codec_opts co = {.warmup = o.warmup, .steps = o.steps, .repeats = o.repeats,
                              .seed = o.seed};
    st = spec.kind == DL_COMPRESS_NONE ? DL_OK
                                       : dl_bench_codec_time(&net, ctx.comm, spec, &co, &codec);
    int rc = DL_EXIT_OK;
    if (st != DL_OK) { /* e.g. a PowerSGD rank no layer of this model shrinks with */
        fprintf(stderr, "dltrain bench train: --compress %s: %s\n", o.compress,
                dl_error_message());
        rc = st == DL_ERR_ARG ? DL_EXIT_USAGE : DL_EXIT_ERROR;
    }
    if (rc == DL_EXIT_OK)
        rc = report(&o, &net, ips, &tm, (long)o.steps * o.repeats, ctx.device_note, &codec);
    rc = finish_trace(&o, &net, rc);
    dl_sgd_free(&opt);
    dl_net_free(&net);
    dl_launch_device_close(&ctx);
    dl_dataset_free(&train);
    dl_dataset_free(&test);
    return rc;
}

int dl_bench_allreduce(int argc, char **argv); /* bench_allreduce.c */
int dl_bench_copy(int argc, char **argv);      /* bench_copy.c */

int dl_cmd_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        printf("usage: dltrain bench train [options]       training-step throughput\n"
               "       dltrain bench allreduce [options]   all-reduce time and bandwidth "
               "(under mpirun)\n"
               "       dltrain bench copy [options]        host<->GPU copy bandwidth per GPU, "
               "pinned and pageable\n");
        return argc < 2 ? DL_EXIT_USAGE : DL_EXIT_OK;
    }
    if (strcmp(argv[1], "train") == 0)
        return bench_train(argc - 1, argv + 1);
    if (strcmp(argv[1], "allreduce") == 0)
        return dl_bench_allreduce(argc - 1, argv + 1);
    if (strcmp(argv[1], "copy") == 0)
        return dl_bench_copy(argc - 1, argv + 1);
    fprintf(stderr, "dltrain bench: unknown benchmark '%s' (try: train, allreduce, copy)\n", argv[1]);
    return DL_EXIT_USAGE;
}
