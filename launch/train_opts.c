/* train_opts.c: the options of `dltrain train`, their defaults and checks. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../models/models.h"
#include "../runtime/data.h"
#include "../runtime/optim.h"
#include "../runtime/parse.h"
#include "launch.h"
#include "options.h"
#include "train.h"
#include "train_compress.h"

#define O(field) offsetof(dl_train_opts, field)
#define S(field) sizeof(((dl_train_opts *)0)->field)

static const dl_option train_options[] = {
    {"model", DL_OPT_STRING, O(model), S(model), "NAME", 0, 0, "lenet (default), resnet20, resnet50"},
    {"data", DL_OPT_STRING, O(data), S(data), "DIR|SPEC", 0, 0,
     "IDX directory (default " DL_DEFAULT_DATA_DIR ") or synthetic:CxHxW[:classes]"},
    {"epochs", DL_OPT_INT, O(epochs), 0, "N", 1, 100000, "epochs to train (default 5)"},
    {"batch", DL_OPT_INT, O(batch), 0, "N", 1, 1 << 20, "per-rank batch size (default 128)"},
    {"lr", DL_OPT_DOUBLE, O(lr), 0, "X", 1e-12, 1e6, "base learning rate (default 0.05)"},
    {"momentum", DL_OPT_DOUBLE, O(momentum), 0, "X", 0, 0.999999, "SGD momentum (default 0.9)"},
    {"nesterov", DL_OPT_FLAG, O(nesterov), 0, NULL, 0, 0, "use Nesterov momentum"},
    {"weight-decay", DL_OPT_DOUBLE, O(weight_decay), 0, "X", 0, 1, "L2 weight decay (default 5e-4)"},
    {"schedule", DL_OPT_STRING, O(schedule), S(schedule), "KIND", 0, 0,
     "learning-rate schedule: constant, step, cosine (default)"},
    {"warmup", DL_OPT_DOUBLE, O(warmup_epochs), 0, "EPOCHS", 0, 1e5,
     "linear warm-up length in epochs, may be fractional (default 0)"},
    {"lr-steps", DL_OPT_STRING, O(lr_steps), S(lr_steps), "E1,E2", 0, 0,
     "step schedule milestones in epochs (default 50% and 75% of --epochs)"},
    {"lr-gamma", DL_OPT_DOUBLE, O(lr_gamma), 0, "X", 1e-9, 1, "step schedule factor (default 0.1)"},
    {"seed", DL_OPT_LONG, O(seed), 0, "N", 0, 9.0e15, "random seed (default 1)"},
    {"threads", DL_OPT_INT, O(threads), 0, "N", 0, 1024, "CPU threads (default: all cores)"},
    {"out", DL_OPT_STRING, O(out_dir), S(out_dir), "DIR", 0, 0,
     "output directory for checkpoint.bin (default dltrain-run)"},
    {"resume", DL_OPT_STRING, O(resume), S(resume), "FILE", 0, 0, "continue from a checkpoint"},
    {"json", DL_OPT_STRING, O(json), S(json), "FILE", 0, 0, "write metrics as JSON lines"},
    {"checkpoint-every", DL_OPT_INT, O(checkpoint_every), 0, "N", 0, 1e9,
     "also checkpoint every N steps (default: end of each epoch only)"},
    {"augment", DL_OPT_FLAG, O(augment), 0, NULL, 0, 0, "random crop and horizontal flip"},
    {"max-steps", DL_OPT_LONG, O(max_steps), 0, "N", 0, 1e15,
     "stop after N steps in total, saving a checkpoint"},
    {"train-samples", DL_OPT_LONG, O(train_samples), 0, "N", 0, 1e12,
     "train on the first N samples only (0 = all)"},
    {"log-every", DL_OPT_INT, O(log_every), 0, "N", 1, 1e9, "JSON step record every N steps (default 50)"},
    {"eval-batch", DL_OPT_INT, O(eval_batch), 0, "N", 1, 1 << 20, "evaluation batch (default: --batch)"},
    {"no-progress", DL_OPT_FLAG, O(no_progress), 0, NULL, 0, 0, "no live progress line"},
    {"bucket-mb", DL_OPT_DOUBLE, O(bucket_mb), 0, "MB", 0.001, 4096,
     "gradient all-reduce bucket size in MiB (default: an eighth of the gradients, "
     "0.25 to 25)"},
    {"no-overlap", DL_OPT_FLAG, O(no_overlap), 0, NULL, 0, 0,
     "all-reduce after backward instead of overlapping it (for comparison)"},
    {"sync-loss", DL_OPT_FLAG, O(sync_loss), 0, NULL, 0, 0,
     "read each step's loss before its backward, the host waiting for forward (the loss is "
     "otherwise read one step late; for comparison)"},
    {"check-every", DL_OPT_LONG, O(check_every), 0, "N", 0, 1e15,
     "compare parameter hashes across ranks every N steps (default 200; 0 = only at the end)"},
    {"timeout", DL_OPT_DOUBLE, O(timeout_s), 0, "SECONDS", 1, 1e6,
     "abort when ranks stop responding for this long (default 60)"},
    {"log-all", DL_OPT_FLAG, O(log_all), 0, NULL, 0, 0,
     "every rank logs (rank r > 0 to OUT/rank-r.log), not only rank 0"},
    {"scale-lr", DL_OPT_FLAG, O(scale_lr), 0, NULL, 0, 0,
     "linear scaling rule: multiply --lr by the number of ranks"},
    {"no-bind", DL_OPT_FLAG, O(no_bind), 0, NULL, 0, 0,
     "do not bind each rank to the CPUs near its GPU"},
    {"trace", DL_OPT_STRING, O(trace_dir), S(trace_dir), "DIR", 0, 0,
     "write a timeline per rank to DIR/trace-rank-R.json (Perfetto, chrome://tracing)"},
    {"trace-steps", DL_OPT_INT, O(trace_steps), 0, "N", 1, 1000000,
     "steps kept in the trace, after the first (default 20)"},
    {"device", DL_OPT_STRING, O(device), S(device), "KIND", 0, 0,
     "auto (default: CUDA when a GPU is usable, else CPU), cpu or cuda"},
    {"precision", DL_OPT_STRING, O(precision), S(precision), "MODE", 0, 0,
     "auto (default: CUDA tf32 convolutions + fp32 fully connected, as PyTorch; CPU fp32), "
     "fp32; CUDA only: tf32 or bf16 tensor-core GEMMs, fp32 weights and gradients"},
    {"conv", DL_OPT_STRING, O(conv), S(conv), "KIND", 0, 0,
     "CUDA convolutions: auto (default: cuDNN when it loads), cudnn or gemm (im2col + cuBLAS)"},
    {"gpus", DL_OPT_STRING, O(gpus), S(gpus), "I,J,..", 0, 0,
     "GPU of each node-local rank (default: GPU i for local rank i)"},
    {"comm", DL_OPT_STRING, O(comm), S(comm), "KIND", 0, 0,
     "gradient all-reduce: auto (default: nccl on CUDA where built with it), mpi or nccl"},
    {"compress", DL_OPT_STRING, O(compress), S(compress), "KIND", 0, 0,
     "gradient compression with error feedback: none (default), fp16, bf16, int8, onebit, "
     "powersgd[:RANK] (see docs/compression.md)"},
    {"compress-warmup", DL_OPT_DOUBLE, O(compress_warmup_epochs), 0, "EPOCHS", 0, 1e5,
     "with --compress: train this many epochs uncompressed first, may be fractional (default 0)"},
    {"allreduce", DL_OPT_STRING, O(allreduce), S(allreduce), "KIND", 0, 0,
     "MPI gradient all-reduce: flat, hier (within each node, then among one rank per node) "
     "or auto (default: hier when ranks span nodes and a node holds several)"},
    DL_OPT_END,
};

void dl_train_defaults(dl_train_opts *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->model, sizeof o->model, "lenet");
    snprintf(o->data, sizeof o->data, "%s", DL_DEFAULT_DATA_DIR);
    snprintf(o->schedule, sizeof o->schedule, "cosine");
    snprintf(o->out_dir, sizeof o->out_dir, "dltrain-run");
    snprintf(o->device, sizeof o->device, "auto");
    snprintf(o->precision, sizeof o->precision, "auto");
    snprintf(o->comm, sizeof o->comm, "auto");
    snprintf(o->conv, sizeof o->conv, "auto");
    snprintf(o->compress, sizeof o->compress, "none");
    snprintf(o->allreduce, sizeof o->allreduce, "auto");
    o->epochs = 5;
    o->batch = 128;
    o->lr = 0.05;
    o->momentum = 0.9;
    o->weight_decay = 5e-4;
    o->lr_gamma = 0.1;
    o->seed = 1;
    o->log_every = 50;
    o->bucket_mb = 0; /* dl_buckets_default_mb of the model */
    o->check_every = 200;
    o->timeout_s = 60;
    o->trace_steps = 20;
}

int dl_train_option_is_local(const char *name)
{
    static const char *local[] = {"threads", "out", "json", "resume", "no-progress", "log-all",
                                  "eval-batch", "no-bind", "trace", "trace-steps", "gpus", NULL};
    for (int i = 0; local[i]; i++)
        if (strcmp(name, local[i]) == 0)
            return 1;
    return 0;
}

static void format_value(const dl_option *opt, const dl_train_opts *o, char *out, size_t size)
{
    const char *p = (const char *)o + opt->offset;
    switch (opt->type) {
    case DL_OPT_STRING: snprintf(out, size, "'%s'", p); break;
    case DL_OPT_INT: snprintf(out, size, "%d", *(const int *)p); break;
    case DL_OPT_LONG: snprintf(out, size, "%ld", *(const long *)p); break;
    case DL_OPT_DOUBLE: snprintf(out, size, "%.17g", *(const double *)p); break;
    case DL_OPT_FLAG: snprintf(out, size, "%s", *(const int *)p ? "on" : "off"); break;
    }
}

int dl_train_options_differ(const dl_train_opts *mine, const dl_train_opts *rank0, char *what,
                            size_t size)
{
    for (const dl_option *opt = train_options; opt->name; opt++) {
        if (dl_train_option_is_local(opt->name))
            continue;
        char a[600], b[600];
        format_value(opt, mine, a, sizeof a);
        format_value(opt, rank0, b, sizeof b);
        if (strcmp(a, b) != 0) {
            snprintf(what, size, "--%s is %.200s here but %.200s on rank 0", opt->name, a, b);
            return 1;
        }
    }
    return 0;
}

/* Parse "30,60" into milestones; returns 0 on a malformed list. */
int dl_train_milestones(const char *text, dl_schedule *s)
{
    s->n_milestones = 0;
    for (const char *p = text; *p;) {
        char item[64];
        size_t len = strcspn(p, ",");
        double v;
        if (len >= sizeof item || s->n_milestones == DL_MAX_MILESTONES)
            return 0;
        memcpy(item, p, len);
        item[len] = '\0';
        /* decimal only: strtod would also take "inf", "nan" and hex */
        if (!dl_parse_double(item, &v) || !(v > 0) || v > 1e9)
            return 0;
        s->milestones[s->n_milestones++] = v;
        p += len;
        if (*p == ',' && !*++p)
            return 0;
    }
    return s->n_milestones > 0;
}

static int check_train_opts(const dl_train_opts *o)
{
    dl_schedule_kind kind;
    int rc = dl_launch_check_device_names(o->device, o->precision, o->comm, o->gpus, "train");
    if (rc < 0)
        rc = dl_launch_check_conv_name(o->conv, "train");
    if (rc >= 0)
        return rc;
    dl_compress_spec spec;
    if (dl_train_compress_parse(o->compress, "train", &spec))
        return 2;
    dl_allreduce_algo algo;
    if (!dl_launch_allreduce_name(o->allreduce, &algo, "train"))
        return 2;
    if (!dl_model_find(o->model)) {
        fprintf(stderr, "dltrain train: unknown model '%s' (choose from %s)\n", o->model,
                dl_model_names());
        return 2;
    }
    if (!dl_schedule_parse_kind(o->schedule, &kind)) {
        fprintf(stderr, "dltrain train: unknown schedule '%s' (choose constant, step or cosine)\n",
                o->schedule);
        return 2;
    }
    dl_schedule milestones;
    if (o->lr_steps[0] && !dl_train_milestones(o->lr_steps, &milestones)) {
        fprintf(stderr, "dltrain train: --lr-steps '%s' is not a list of positive epochs like 30,60\n",
                o->lr_steps);
        return 2;
    }
    if (o->compress_warmup_epochs > 0 && strcmp(o->compress, "none") == 0) {
        fprintf(stderr, "dltrain train: --compress-warmup goes with --compress\n");
        return 2;
    }
    if (o->compress_warmup_epochs > o->epochs) {
        fprintf(stderr, "dltrain train: --compress-warmup (%g epochs) is longer than --epochs "
                "(%d)\n", o->compress_warmup_epochs, o->epochs);
        return 2;
    }
    if (o->warmup_epochs > o->epochs) {
        fprintf(stderr, "dltrain train: --warmup (%g epochs) is longer than --epochs (%d)\n",
                o->warmup_epochs, o->epochs);
        return 2;
    }
    return -1;
}

int dl_train_parse(dl_train_opts *o, int argc, char **argv)
{
    static const char usage[] =
        "Train a model.  With no options: lenet on Fashion-MNIST for 5 epochs.\n"
        "Under mpirun, each rank trains on its share of every global batch.";
    int r = dl_options_parse(train_options, o, argc, argv, "train", usage);
    if (r == 1)
        return 0;
    if (r)
        return r;
    return check_train_opts(o);
}

