/* cmd_predict.c: `dltrain predict`, what a data-parallel step should cost on
 * N GPUs, from the compute time on one GPU, the gradient size and a link.
 *
 *   dltrain predict --model resnet50 --batch 32 --step-ms 100 --link pcie3x16
 *   dltrain predict --grad-mb 97.5 --step-ms 100 --gpus 1,2,4,8,16 --link pcie3x4 --link-share 16
 *   dltrain predict --images 32 --image 3x224x224          input transfer time per batch
 *   dltrain predict ... --allreduce-json ar.json           bandwidth and latency measured
 *   dltrain predict ... --link this                        this machine's narrowest GPU link
 *
 * The arithmetic lives in predict_model.c; this file resolves the inputs,
 * prints the tables and writes the JSON.  See docs/scaling.md. */
#define _GNU_SOURCE
#include "cmd_predict.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../comm/bucket.h"
#include "../models/models.h"
#include "../runtime/parse.h"
#include "context.h"
#include "options.h"
#include "predict.h"

#define O(f) offsetof(predict_opts, f)
#define S(f) sizeof(((predict_opts *)0)->f)

static const dl_option predict_options[] = {
    {"step-ms", DL_OPT_DOUBLE, O(step_ms), 0, "MS", 1e-6, 1e9,
     "compute time of one step on one GPU (forward + backward + optimizer)"},
    {"model", DL_OPT_STRING, O(model), S(model), "NAME",
     0, 0, "lenet, resnet20 or resnet50: gradient size (parameters x 4 bytes) and FLOPs"},
    {"input", DL_OPT_STRING, O(input), S(input), "CxHxW[:K]", 0, 0,
     "the model's input shape and classes (default: lenet 1x28x28:10, resnet20 3x32x32:10, "
     "resnet50 3x224x224:1000)"},
    {"batch", DL_OPT_INT, O(batch), 0, "N", 1, 1 << 24, "batch per GPU (default 32)"},
    {"gpu-tflops", DL_OPT_DOUBLE, O(gpu_tflops), 0, "TF", 1e-6, 1e6,
     "with --model: compute time = 6 x MACs x batch / (TF x 1e12) (the FLOP/s you expect, not the peak)"},
    {"images-per-s", DL_OPT_DOUBLE, O(images_per_s), 0, "X", 1e-6, 1e12,
     "measured one-GPU throughput (dltrain bench train): compute time = batch / X"},
    {"grad-mb", DL_OPT_DOUBLE, O(grad_mb), 0, "MIB", 0, 1e9,
     "gradient size in MiB (instead of counting --model's parameters)"},
    {"bucket-mb", DL_OPT_DOUBLE, O(bucket_mb), 0, "MIB", 1e-6, 1e9,
     "all-reduce bucket size in MiB of fp32 gradients (default as dltrain train: an eighth of "
     "the gradients, at least 0.25 and at most 25 MiB)"},
    {"backward-frac", DL_OPT_DOUBLE, O(backward_frac), 0, "F", 0, 1,
     "share of the step that is backward (default 2/3)"},
    {"no-overlap", DL_OPT_FLAG, O(no_overlap), 0, NULL, 0, 0,
     "start all buckets after backward (as dltrain train --no-overlap)"},
    {"gpus", DL_OPT_STRING, O(gpus), S(gpus), "N[,N...]", 0, 0,
     "GPU counts to predict (default 1,2,4,8; with --link this, up to this machine's GPUs)"},
    {"nodes", DL_OPT_INT, O(nodes), 0, "M", 1, 1 << 20,
     "nodes the largest GPU count spans, filled one after another (default 1; needs --net)"},
    {"link", DL_OPT_STRING, O(link), S(link), "NAME", 0, 0,
     "the ring's narrowest link inside a node (default pcie3x16; see the list below; 'this' = "
     "this machine)"},
    {"net", DL_OPT_STRING, O(net), S(net), "NAME", 0, 0,
     "link between nodes for --nodes > 1 (ib-edr, ib-hdr, ib-ndr, eth-10g, eth-25g, eth-100g)"},
    {"link-share", DL_OPT_INT, O(link_share), 0, "K", 1, 1 << 20,
     "K GPUs use the --link at once: each gets 1/K of it (default 1)"},
    {"alpha-us", DL_OPT_DOUBLE, O(alpha_us), 0, "US", 0, 1e9,
     "latency per ring step (default: the link's, see docs/scaling.md)"},
    {"allreduce-json", DL_OPT_STRING, O(allreduce_json), S(allreduce_json), "FILE", 0, 0,
     "take bandwidth and latency from 'dltrain bench allreduce --json FILE' instead of --link "
     "(with --machine: scale the machine's links to match it)"},
    {"images", DL_OPT_INT, O(images), 0, "N", 1, 1 << 24,
     "input transfer: N images per batch (of --image, or the model's input shape)"},
    {"image", DL_OPT_STRING, O(image), S(image), "CxHxW", 0, 0,
     "input transfer: one image's shape, fp32 (default 3x224x224 without --model)"},
    {"transfer-mb", DL_OPT_DOUBLE, O(transfer_mb), 0, "MIB", 1e-9, 1e9,
     "input transfer: MiB per batch"},
    {"sysfs-root", DL_OPT_STRING, O(sysfs_root), S(sysfs_root), "DIR", 0, 0,
     "with --link this or --machine this: read DIR instead of /sys (fixture trees)"},
    {"machine", DL_OPT_STRING, O(machine), S(machine), "M", 0, 0,
     "model the machine: a description ('8x pcie4x16, 2 sockets, 4 per switch, no-p2p'), a "
     "shipped name (dgx1, ...), 'this', a sysfs tree or a 'dltrain topo --json' file"},
    {"measured", DL_OPT_STRING, O(measured), S(measured), "N:X,...", 0, 0,
     "with --machine: measured images/s at those GPU counts (1:X gives the compute time); the "
     "model is fitted to them"},
    {"grad-dtype", DL_OPT_STRING, O(grad_dtype), S(grad_dtype), "T", 0, 0,
     "gradient type on the wire with --model: fp32 (default), fp16 or bf16"},
    {"compress", DL_OPT_STRING, O(compress), S(compress), "KIND", 0, 0,
     "gradient compression as 'train --compress': none (default), fp16, bf16, int8, onebit, "
     "powersgd[:RANK]; its bytes on the wire and compute (see --compress-ms)"},
    {"compress-ms", DL_OPT_STRING, O(compress_ms), S(compress_ms), "MS|cpu", 0, 0,
     "with --compress: compression compute per step on each GPU (default 0, not charged); "
     "'cpu': dltrain's C codecs timed here, growing with the GPU count as they do"},
    {"json", DL_OPT_STRING, O(json), S(json), "FILE", 0, 0,
     "also write the prediction as JSON into FILE ('-': on stdout instead of the tables)"},
    DL_OPT_END,
};

static const char usage_text[] =
    "Predicts the step time, images/s, speedup and efficiency of data-parallel training\n"
    "on N GPUs: ring all-reduce of the gradients in buckets, overlapped with backward.\n"
    "Compute time: --step-ms, or --images-per-s, or --model with --gpu-tflops.\n"
    "Gradients: --model (its parameters) or --grad-mb.  Without either, --images or\n"
    "--transfer-mb prints only the input transfer time per batch.\n"
    "Links: pcie3x16 pcie3x8 pcie3x4 pcie4x16 pcie4x8 pcie4x4 pcie5x16 pcie5x8 pcie5x4\n"
    "       nvlink2 nvlink3 nvlink4 ib-edr ib-hdr ib-ndr eth-10g eth-25g eth-100g this\n"
    "(GB/s per direction after line encoding; the model is in docs/scaling.md)\n"
    "--machine models the machine instead of one link, the way NCCL does: which hops go\n"
    "peer-to-peer or through the CPU, how often each link is crossed, the bottleneck.\n"
    "Shipped machines: consumer-x8x8 workstation-4gpu dual-socket-8gpu epyc-8gpu dgx1\n"
    "                  nvswitch-8gpu (the grammar is in docs/topology.md)";

static int parse_shape(const char *text, int *c, int *h, int *w, int *classes)
{
    return dl_parse_shape(text, 4096, 1 << 16, 1 << 24, c, h, w, classes) ? 0 : -1;
}

static void model_default_shape(const char *name, int *c, int *h, int *w, int *classes)
{
    if (strcmp(name, "resnet50") == 0)
        *c = 3, *h = 224, *w = 224, *classes = 1000;
    else if (strcmp(name, "resnet20") == 0)
        *c = 3, *h = 32, *w = 32, *classes = 10;
    else
        *c = 1, *h = 28, *w = 28, *classes = 10;
}

static int parse_counts(const char *text, int *counts)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1000000 || n == MAX_COUNTS || (*end && *end != ','))
            return -1;
        counts[n++] = (int)v;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p)
            return -1;
    }
    return n;
}

/* With --machine, "the link" is GPU 0's own PCIe link (NCCL's figure):
 * what input batches cross; the ring's links are the model's business. */
static void machine_link(const dl_machine *m, ring_link *r)
{
    snprintf(r->name, sizeof r->name, "machine");
    snprintf(r->what, sizeof r->what, "GPU 0's PCIe %d.0 x%d link of the machine '%.200s'",
             m->gpu[0].gen, m->gpu[0].lanes, m->desc);
    r->link_gbps = r->gbps = dl_nccl_pcie_gbps(m->gpu[0].gen, m->gpu[0].lanes);
    r->alpha_us = 5.7;
}

/* The link the classic model runs over, and the network between nodes. */
static int resolve_links(const predict_opts *o, prediction *p)
{
    const dl_link *named = NULL;
    int r;
    if (o->machine[0] && (strcmp(o->link, "pcie3x16") != 0 || o->link_share > 1)) {
        fprintf(stderr, "dltrain predict: --machine models the links itself; drop --link and "
                "--link-share (or drop --machine)\n");
        return DL_EXIT_USAGE;
    }
    if (o->measured[0] && o->allreduce_json[0]) {
        fprintf(stderr, "dltrain predict: --measured and --allreduce-json both calibrate the "
                "machine's links; give one\n");
        return DL_EXIT_USAGE;
    }
    if (o->measured[0] && !o->machine[0]) {
        fprintf(stderr, "dltrain predict: --measured calibrates the machine model: add --machine\n");
        return DL_EXIT_USAGE;
    }
    if (strcmp(o->link, "this") != 0 && !(named = predict_find_link("link", o->link)))
        return DL_EXIT_USAGE;
    if (o->net[0] && (r = predict_resolve_net(o->net, &p->net_store)))
        return r;
    if (o->net[0])
        p->net = &p->net_store;
    if (o->nodes > 1 && !p->net) {
        fprintf(stderr, "dltrain predict: --nodes %d needs --net NAME, the link between nodes "
                "(%s)\n", o->nodes, dl_mnet_names());
        return DL_EXIT_USAGE;
    }
    if (o->sysfs_root[0] && named && strcmp(o->machine, "this") != 0) {
        fprintf(stderr, "dltrain predict: --sysfs-root goes with --link this or --machine this\n");
        return DL_EXIT_USAGE;
    }
    if (o->allreduce_json[0]) {
        if ((r = predict_calibrate_sweep(o->allreduce_json, &p->link)))
            return r;
    } else if (named) {
        snprintf(p->link.name, sizeof p->link.name, "%s", named->name);
        snprintf(p->link.what, sizeof p->link.what, "%s", named->what);
        p->link.link_gbps = named->gbps, p->link.alpha_us = named->alpha_us;
    } else if ((r = predict_link_this(o, &p->link))) {
        return r;
    }
    if (o->alpha_us >= 0)
        p->link.alpha_us = o->alpha_us;
    p->link.gbps = dl_link_share_gbps(p->link.link_gbps, o->link_share);
    return 0;
}

/* Parameters and multiply-adds of --model, without allocating it; the
 * input shape for the transfer estimate. */
static int resolve_model(const predict_opts *o, prediction *p, int shape[4], int *have_shape)
{
    if (o->grad_dtype[0] && strcmp(o->grad_dtype, "fp32") && strcmp(o->grad_dtype, "fp16") &&
        strcmp(o->grad_dtype, "bf16")) {
        fprintf(stderr, "dltrain predict: --grad-dtype is fp32, fp16 or bf16, got '%s'\n",
                o->grad_dtype);
        return DL_EXIT_USAGE;
    }
    p->grad_elem_bytes = o->grad_dtype[0] && strcmp(o->grad_dtype, "fp32") ? 2 : 4;
    if (p->grad_elem_bytes != 4 && o->grad_mb > 0) {
        fprintf(stderr, "dltrain predict: --grad-dtype %s goes with --model (it sets the bytes per "
                "parameter); --grad-mb gives the bytes on the wire directly\n", o->grad_dtype);
        return DL_EXIT_USAGE;
    }
    if (!o->model[0]) {
        if (o->input[0]) {
            fprintf(stderr, "dltrain predict: --input goes with --model\n");
            return DL_EXIT_USAGE;
        }
        return 0;
    }
    const dl_model *m = dl_model_find(o->model);
    if (!m) {
        fprintf(stderr, "dltrain predict: unknown model '%s' (choose from %s)\n", o->model,
                dl_model_names());
        return DL_EXIT_USAGE;
    }
    model_default_shape(o->model, &shape[0], &shape[1], &shape[2], &shape[3]);
    if (o->input[0] && parse_shape(o->input, &shape[0], &shape[1], &shape[2], &shape[3])) {
        fprintf(stderr, "dltrain predict: --input needs CxHxW or CxHxW:CLASSES, got '%s'\n",
                o->input);
        return DL_EXIT_USAGE;
    }
    dl_net *net = calloc(1, sizeof *net);
    if (!net || dl_model_build(m, net, shape[0], shape[1], shape[2], shape[3]) != DL_OK) {
        fprintf(stderr, "dltrain predict: %s\n", net ? dl_error_message() : "out of memory");
        free(net);
        return DL_EXIT_ERROR;
    }
    for (int i = 0; i < net->n_layers; i++)
        p->params += (double)net->layers[i].n_params;
    p->macs = dl_net_macs_per_sample(net);
    if (o->grad_mb <= 0) { /* the model's own layers make PowerSGD's matrices */
        dl_net_layout(net);
        p->n_mats = dl_net_grad_matrices(net, p->mats, DL_NET_MAX_LAYERS);
        p->layout_floats = net->n_params;
    }
    free(net);
    *have_shape = 1;
    return 0;
}

/* The bucket a real run would use: --bucket-mb, or train's default for these
 * gradients (dl_buckets_default_mb).  train sizes buckets in fp32 gradient
 * floats whatever goes on the wire, so with 2-byte gradients a bucket carries
 * half its MiB: the number of buckets per step stays train's. */
static double bucket_bytes(const predict_opts *o, const prediction *p)
{
    int from_model = p->params > 0 && o->grad_mb <= 0; /* else --grad-mb: taken as fp32 */
    double fp32_floats = from_model ? p->params : p->grad_bytes / 4;
    double mb = o->bucket_mb > 0 ? o->bucket_mb : dl_buckets_default_mb((size_t)fp32_floats);
    return mb * MIB * (from_model ? p->grad_elem_bytes / 4.0 : 1.0);
}

/* Compute time on one GPU: exactly one source (a 1-GPU --measured point counts). */
static int resolve_compute(const predict_opts *o, prediction *p, double *compute_ms)
{
    double measured1 = 0;
    for (int i = 0; i < p->fit.n_points; i++)
        if (p->fit.gpus[i] == 1)
            measured1 = p->fit.images_per_s[i];
    int sources = (o->step_ms > 0) + (o->images_per_s > 0) + (o->gpu_tflops > 0) + (measured1 > 0);
    if (sources > 1) {
        fprintf(stderr, "dltrain predict: give one of --step-ms, --images-per-s, --gpu-tflops, "
                "--measured 1:X\n");
        return DL_EXIT_USAGE;
    }
    if (o->gpu_tflops > 0 && !o->model[0]) {
        fprintf(stderr, "dltrain predict: --gpu-tflops needs --model (to count its FLOPs)\n");
        return DL_EXIT_USAGE;
    }
    *compute_ms = 0;
    if (o->step_ms > 0)
        *compute_ms = o->step_ms, p->compute_src = "--step-ms";
    else if (o->images_per_s > 0)
        *compute_ms = 1e3 * o->batch / o->images_per_s, p->compute_src = "--batch / --images-per-s";
    else if (measured1 > 0)
        *compute_ms = 1e3 * o->batch / measured1, p->compute_src = "--batch / --measured 1:X";
    else if (o->gpu_tflops > 0)
        *compute_ms = 1e3 * dl_train_flops_per_sample(p->macs) * o->batch / (o->gpu_tflops * 1e12),
        p->compute_src = "6 x MACs x batch / --gpu-tflops";
    return 0;
}

static int resolve_transfer(const predict_opts *o, prediction *p, int shape[4], int have_shape)
{
    if (o->transfer_mb > 0) {
        p->transfer_bytes = o->transfer_mb * MIB;
        snprintf(p->transfer_src, sizeof p->transfer_src, "--transfer-mb %g", o->transfer_mb);
    } else if (o->images > 0 || o->image[0] || have_shape) {
        if (o->image[0] && parse_shape(o->image, &shape[0], &shape[1], &shape[2], NULL)) {
            fprintf(stderr, "dltrain predict: --image needs CxHxW, got '%s'\n", o->image);
            return DL_EXIT_USAGE;
        }
        int n = o->images > 0 ? o->images : o->batch;
        p->transfer_bytes = 4.0 * n * shape[0] * shape[1] * shape[2];
        snprintf(p->transfer_src, sizeof p->transfer_src, "%d images of %dx%dx%d fp32", n,
                 shape[0], shape[1], shape[2]);
    }
    return 0;
}

/* --compress: a name train accepts, over fp32 gradients. */
static int resolve_compress(const predict_opts *o, prediction *p)
{
    if (dl_compress_parse(o->compress, &p->compress) != DL_OK) {
        fprintf(stderr, "dltrain predict: %s\n", dl_error_message());
        return DL_EXIT_USAGE;
    }
    if (p->compress.kind != DL_COMPRESS_NONE && p->grad_elem_bytes != 4) {
        fprintf(stderr, "dltrain predict: --compress %s compresses fp32 gradients; drop "
                "--grad-dtype %s\n", o->compress, o->grad_dtype);
        return DL_EXIT_USAGE;
    }
    p->compress_ms = -2;
    if (!o->compress_ms[0])
        return 0;
    if (p->compress.kind == DL_COMPRESS_NONE) {
        fprintf(stderr, "dltrain predict: --compress-ms goes with --compress\n");
        return DL_EXIT_USAGE;
    }
    if (strcmp(o->compress_ms, "cpu") == 0) {
        p->compress_ms = -1;
        return 0;
    }
    if (!dl_parse_double(o->compress_ms, &p->compress_ms) || !(p->compress_ms >= 0) ||
        p->compress_ms > 1e9) {
        fprintf(stderr, "dltrain predict: --compress-ms takes milliseconds >= 0 or 'cpu', got "
                "'%s'\n", o->compress_ms);
        return DL_EXIT_USAGE;
    }
    return 0;
}

static int check_inputs(const predict_opts *o, const prediction *p)
{
    if (p->have_step && !(p->grad_bytes > 0)) {
        fprintf(stderr, "dltrain predict: a step prediction needs the gradient size: --model NAME "
                "or --grad-mb MIB\n");
        return DL_EXIT_USAGE;
    }
    if (!p->have_step && (o->grad_mb > 0 || o->model[0]) && !(o->images > 0 || o->transfer_mb > 0)) {
        fprintf(stderr, "dltrain predict: a step prediction needs the compute time on one GPU: "
                "--step-ms MS, --images-per-s X, or --gpu-tflops TF with --model\n");
        return DL_EXIT_USAGE;
    }
    if (!p->have_step && !(p->transfer_bytes > 0)) {
        fprintf(stderr, "dltrain predict: nothing to predict: give the compute time (--step-ms) "
                "and gradients (--model or --grad-mb), or an input batch (--images N, "
                "--transfer-mb MIB); see 'dltrain predict --help'\n");
        return DL_EXIT_USAGE;
    }
    return 0;
}

/* GPU counts to predict; the largest sets the GPUs per node. */
static int resolve_counts(const predict_opts *o, prediction *p, int *counts, int *max_n)
{
    int n_counts = 0, machine_gpus = p->machine ? p->machine->n_gpus * o->nodes : 0;
    int top = p->link.this_gpus > 0 ? p->link.this_gpus : machine_gpus;
    if (o->gpus[0]) {
        n_counts = parse_counts(o->gpus, counts);
        if (n_counts <= 0) {
            fprintf(stderr, "dltrain predict: --gpus needs counts such as 8 or 1,2,4,8, got '%s'\n",
                    o->gpus);
            return -DL_EXIT_USAGE;
        }
    } else if (top > 0) {
        for (int n = 1; n < top && n_counts < MAX_COUNTS - 1; n *= 2)
            counts[n_counts++] = n;
        counts[n_counts++] = top;
    } else {
        n_counts = 4, counts[0] = 1, counts[1] = 2, counts[2] = 4, counts[3] = 8;
    }
    *max_n = 0;
    for (int i = 0; i < n_counts; i++)
        *max_n = counts[i] > *max_n ? counts[i] : *max_n;
    if (*max_n % o->nodes) {
        fprintf(stderr, "dltrain predict: --nodes %d must divide the largest GPU count (%d)\n",
                o->nodes, *max_n);
        return -DL_EXIT_USAGE;
    }
    p->gpus_per_node = *max_n / o->nodes;
    if (machine_gpus && p->gpus_per_node > p->machine->n_gpus) {
        fprintf(stderr, "dltrain predict: %d GPUs per node, but the machine has %d (add --nodes "
                "and --net, or fewer --gpus)\n", p->gpus_per_node, p->machine->n_gpus);
        return -DL_EXIT_USAGE;
    }
    if (o->nodes == 1)
        p->net = NULL; /* one node: --net plays no part */
    return n_counts;
}

/* The rows (one-GPU baseline first), the lanes table, the what-ifs. */
static void predict_rows(prediction *p, const dl_step_inputs *in, const int *counts, int n_counts,
                         int max_n)
{
    const predict_opts *o = p->o;
    int has1 = 0;
    for (int i = 0; i < n_counts; i++)
        has1 |= counts[i] == 1;
    if (!has1)
        predict_one(p, in, p->machine, 1, &p->rows[p->n_rows++]);
    for (int i = 0; i < n_counts && p->n_rows < MAX_COUNTS; i++)
        predict_one(p, in, p->machine, counts[i], &p->rows[p->n_rows++]);
    if (p->machine) {
        predict_whatifs(p, in, max_n);
        return;
    }
    /* lanes: the same step at the largest count, the ring on each PCIe link */
    ring_link saved = p->link;
    for (const dl_link *l = dl_links; l->name; l++) {
        if (l->kind != DL_LINK_PCIE)
            continue;
        p->link.link_gbps = l->gbps, p->link.alpha_us = o->alpha_us >= 0 ? o->alpha_us : l->alpha_us;
        p->link.gbps = dl_link_share_gbps(l->gbps, o->link_share);
        p->lane_links[p->n_lanes] = l;
        predict_one(p, in, NULL, max_n, &p->lanes[p->n_lanes++]);
    }
    p->link = saved;
}

static int write_output(const predict_opts *o, const prediction *p)
{
    int json_stdout = strcmp(o->json, "-") == 0;
    if (!json_stdout)
        predict_print_tables(stdout, p);
    if (!o->json[0])
        return DL_EXIT_OK;
    FILE *f = json_stdout ? stdout : fopen(o->json, "w");
    if (!f) {
        fprintf(stderr, "dltrain predict: cannot write %s\n", o->json);
        return DL_EXIT_ERROR;
    }
    predict_print_json(f, p);
    if (!json_stdout && fclose(f) != 0) {
        fprintf(stderr, "dltrain predict: cannot write %s\n", o->json);
        return DL_EXIT_ERROR;
    }
    return DL_EXIT_OK;
}

static int predict_steps(prediction *p, double compute_ms, const int *counts, int n_counts, int max_n)
{
    const predict_opts *o = p->o;
    dl_step_inputs in = {.compute_ms = compute_ms, .backward_frac = o->backward_frac,
                         .grad_bytes = p->grad_bytes,
                         .bucket_bytes = p->bucket_bytes, .overlap = !o->no_overlap, .gpus = 1,
                         .gbps = p->link.gbps, .alpha_us = p->link.alpha_us};
    dl_step_model probe;
    if (dl_step_predict(&in, &probe) != 0) {
        fprintf(stderr, "dltrain predict: --bucket-mb %g is too small for %.0f bytes of "
                "gradients\n", o->bucket_mb, p->grad_bytes);
        return DL_EXIT_USAGE;
    }
    if (p->machine) {
        int r = predict_fit_measured(p, &in);
        if (r)
            return r;
    }
    predict_rows(p, &in, counts, n_counts, max_n);
    return 0;
}

int dl_cmd_predict(int argc, char **argv)
{
    predict_opts o = {.batch = 32, .bucket_mb = 0, .backward_frac = 2.0 / 3.0, .nodes = 1,
                      .link_share = 1, .alpha_us = -1, .link = "pcie3x16", .grad_dtype = "fp32",
                      .compress = "none"};
    int r = dl_options_parse(predict_options, &o, argc, argv, "predict", usage_text);
    if (r)
        return r == 1 ? DL_EXIT_OK : r;
    static prediction p;
    static dl_machine machine;
    memset(&p, 0, sizeof p);
    p.o = &o, p.model = o.model;
    p.fit.bw_factor = 1, p.fit.alpha_factor = 1, p.fit.backward_frac = o.backward_frac;
    if ((r = resolve_links(&o, &p)))
        return r;
    if (o.measured[0] && (r = predict_parse_measured(o.measured, &p.fit)))
        return r;
    if (!o.machine[0] && strcmp(o.link, "this") == 0)
        snprintf(o.machine, sizeof o.machine, "this"); /* this machine, modelled as it is wired */
    if (o.machine[0]) {
        if ((r = predict_load_machine(&o, &machine)))
            return r;
        p.machine = &machine;
        if (o.allreduce_json[0] && (r = predict_fit_sweep(&p, &p.link)))
            return r;
        if (strcmp(o.link, "this") != 0) /* the JSON's link: GPU 0's own, for input copies */
            machine_link(&machine, &p.link);
    }
    int shape[4] = {3, 224, 224, 1000}, have_shape = 0;
    if ((r = resolve_model(&o, &p, shape, &have_shape)))
        return r;
    if ((r = resolve_compress(&o, &p)))
        return r;
    p.grad_bytes = o.grad_mb > 0 ? o.grad_mb * MIB : p.grad_elem_bytes * p.params;
    p.bucket_bytes = bucket_bytes(&o, &p);
    double compute_ms;
    if ((r = resolve_compute(&o, &p, &compute_ms)) || (r = resolve_transfer(&o, &p, shape, have_shape)))
        return r;
    p.have_step = compute_ms > 0;
    if ((r = check_inputs(&o, &p)))
        return r;
    int counts[MAX_COUNTS], max_n, n_counts = resolve_counts(&o, &p, counts, &max_n);
    if (n_counts < 0)
        return -n_counts;
    if (p.have_step && (r = predict_steps(&p, compute_ms, counts, n_counts, max_n)))
        return r;
    if (!p.have_step && !p.machine)
        for (const dl_link *l = dl_links; l->name; l++)
            if (l->kind == DL_LINK_PCIE)
                p.lane_links[p.n_lanes++] = l;
    return write_output(&o, &p);
}
