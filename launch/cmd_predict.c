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

#include "../models/models.h"
#ifdef DLTRAIN_HAVE_TOPO
#include "../comm/topo/topo.h"
#endif
#include "context.h"
#include "options.h"
#include "predict_model.h"

#define MAX_COUNTS 64
#define MIB (1024.0 * 1024.0)

typedef struct {
    char model[32], input[64], image[64], gpus[256], link[32], net[32];
    char allreduce_json[512], json[512], sysfs_root[512];
    double step_ms, gpu_tflops, images_per_s, grad_mb, bucket_mb, backward_frac, alpha_us;
    double transfer_mb;
    int batch, nodes, link_share, images, no_overlap;
} predict_opts;

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
     "all-reduce bucket size in MiB (default 25, as dltrain train)"},
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
     "take bandwidth and latency from 'dltrain bench allreduce --json FILE' instead of --link"},
    {"images", DL_OPT_INT, O(images), 0, "N", 1, 1 << 24,
     "input transfer: N images per batch (of --image, or the model's input shape)"},
    {"image", DL_OPT_STRING, O(image), S(image), "CxHxW", 0, 0,
     "input transfer: one image's shape, fp32 (default 3x224x224 without --model)"},
    {"transfer-mb", DL_OPT_DOUBLE, O(transfer_mb), 0, "MIB", 1e-9, 1e9,
     "input transfer: MiB per batch"},
    {"sysfs-root", DL_OPT_STRING, O(sysfs_root), S(sysfs_root), "DIR", 0, 0,
     "with --link this: read DIR instead of /sys (fixture trees)"},
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
    "(GB/s per direction after line encoding; the model is in docs/scaling.md)";

/* What the ring runs over, after --link, --link-share, --alpha-us, --allreduce-json. */
typedef struct {
    char name[64];       /* table name, "this", "measured" */
    char what[1280];     /* where the figure comes from */
    double link_gbps;    /* the link itself */
    double gbps;         /* per GPU, after --link-share */
    double alpha_us;
    int this_gpus;       /* --link this: GPUs found */
} ring_link;

typedef struct {
    int gpus, nodes;
    double gbps, alpha_us;
    dl_step_model m;
    double images_per_s, speedup, efficiency;
} predict_row;

static int parse_shape(const char *text, int *c, int *h, int *w, int *classes)
{
    int n = 0;
    if (sscanf(text, "%dx%dx%d%n", c, h, w, &n) != 3 || *c < 1 || *h < 1 || *w < 1)
        return -1;
    if (text[n] == ':' && classes) {
        int m = 0;
        if (sscanf(text + n + 1, "%d%n", classes, &m) != 1 || *classes < 2 || text[n + 1 + m])
            return -1;
        return 0;
    }
    return text[n] ? -1 : 0;
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

static const dl_link *find_link(const char *opt, const char *name)
{
    const dl_link *l = dl_link_find(name);
    if (!l)
        fprintf(stderr, "dltrain predict: unknown link '%s' for --%s (choose from %s)\n", name,
                opt, dl_link_names());
    return l;
}

/* --link this: the narrowest link between this machine's GPUs. */
static int link_this(const predict_opts *o, ring_link *r)
{
#ifdef DLTRAIN_HAVE_TOPO
    const char *root = o->sysfs_root[0] ? o->sysfs_root : "/sys";
    dl_topo t;
    if (dl_topo_discover(root, &t) != DL_OK) {
        fprintf(stderr, "dltrain predict: --link this: cannot read the topology under %s: %s\n",
                root, dl_error_message());
        dl_topo_free(&t);
        return DL_EXIT_ERROR;
    }
    if (!o->sysfs_root[0])
        dl_topo_nvml_apply(&t, NULL, NULL); /* NVLink, when NVML is there; fine without */
    int n = t.n_nvidia > 0 ? t.n_nvidia : t.n_compute;
    if (n == 0) {
        fprintf(stderr, "dltrain predict: --link this: no GPU found on this machine (under %s; "
                "'dltrain topo' shows what was read).  Name a link instead: --link NAME, one of "
                "%.*s\n", root, (int)(strlen(dl_link_names()) - strlen(", this")), dl_link_names());
        dl_topo_free(&t);
        return DL_EXIT_ERROR;
    }
    double best = INFINITY;
    int nv = 1, ga = 0, gb = 0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) {
            double g = dl_topo_pair_gbps(&t, a, b);
            if (g > 0 && g < best)
                best = g, ga = a, gb = b, nv = dl_topo_pair_rel(&t, a, b) == DL_TOPO_REL_NV;
        }
    if (n == 1 || !isfinite(best)) {
        /* one GPU (or pairs of unknown bandwidth): its own link to the host */
        const dl_topo_link *l = &t.gpus[0].link;
        best = dl_topo_link_gbps(l->max_gts ? l->max_gts : l->cur_gts,
                                 l->cur_width ? l->cur_width : l->max_width);
        nv = 0;
        snprintf(r->what, sizeof r->what, "%d GPU%s under %s; GPU0 (%s)'s own PCIe link", n,
                 n == 1 ? "" : "s", root, t.gpus[0].bdf);
    } else {
        snprintf(r->what, sizeof r->what, "%d GPUs under %s; narrowest pair GPU%d-GPU%d (%s)", n,
                 root, ga, gb, nv ? "NVLink" : "PCIe");
    }
    dl_topo_free(&t);
    if (!(best > 0)) {
        fprintf(stderr, "dltrain predict: --link this: %d GPU%s found, but the bandwidth of "
                "their links is unknown ('dltrain topo' says why); name a link instead\n", n,
                n == 1 ? "" : "s");
        return DL_EXIT_ERROR;
    }
    snprintf(r->name, sizeof r->name, "this");
    r->link_gbps = best;
    r->alpha_us = dl_link_find(nv ? "nvlink3" : "pcie3x16")->alpha_us;
    r->this_gpus = n;
    return 0;
#else
    (void)o, (void)r;
    fprintf(stderr, "dltrain predict: --link this needs topology detection, which this dltrain "
            "was built without; name a link instead (%s)\n", dl_link_names());
    return DL_EXIT_ERROR;
#endif
}

/* Reads bytes/time_us pairs and world from a `bench allreduce --json` file. */
static int calibrate(const char *path, ring_link *r)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "dltrain predict: cannot read --allreduce-json %s\n", path);
        return DL_EXIT_ERROR;
    }
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    double bytes[256], time_us[256];
    int n = 0, world = 0;
    const char *p = strstr(text, "\"world\"");
    if (p)
        p = strchr(p, ':');
    if (p)
        world = atoi(p + 1);
    const char *res = strstr(text, "\"results\"");
    for (p = res; p && n < 256;) {
        const char *b = strstr(p, "\"bytes\":"), *t = b ? strstr(b, "\"time_us\":") : NULL;
        if (!t)
            break;
        bytes[n] = strtod(b + 8, NULL), time_us[n] = strtod(t + 10, NULL);
        n++;
        p = t + 10;
    }
    if (!strstr(text, "\"bench\":\"allreduce\"") || !res || n == 0) {
        fprintf(stderr, "dltrain predict: %s is not the JSON of 'dltrain bench allreduce --json'\n",
                path);
        return DL_EXIT_ERROR;
    }
    double gbps, alpha;
    if (dl_link_calibrate(world, bytes, time_us, n, &gbps, &alpha) != 0) {
        fprintf(stderr, "dltrain predict: %s: cannot calibrate from a run over %d rank%s (needs 2 "
                "or more, and measured times)\n", path, world, world == 1 ? "" : "s");
        return DL_EXIT_ERROR;
    }
    snprintf(r->name, sizeof r->name, "measured");
    snprintf(r->what, sizeof r->what, "bench allreduce over %d ranks (%s): best bus bandwidth, "
             "latency from the smallest message", world, path);
    r->link_gbps = gbps, r->alpha_us = alpha;
    return 0;
}

static void predict_one(const dl_step_inputs *base, const ring_link *intra, const dl_link *net,
                        int gpus_per_node, int n, int batch, predict_row *row)
{
    dl_step_inputs in = *base;
    row->gpus = n;
    row->nodes = (n + gpus_per_node - 1) / gpus_per_node;
    row->gbps = intra->gbps, row->alpha_us = intra->alpha_us;
    if (row->nodes > 1 && net) {
        /* one ring through every GPU: each hop moves the same bytes, so the
         * slowest hop (the network) sets the pace and its latency the step */
        row->gbps = fmin(row->gbps, net->gbps);
        row->alpha_us = fmax(row->alpha_us, net->alpha_us);
    }
    in.gpus = n, in.gbps = row->gbps, in.alpha_us = row->alpha_us;
    dl_step_predict(&in, &row->m);
    row->images_per_s = row->m.step_ms > 0 ? 1e3 * n * batch / row->m.step_ms : 0;
    row->speedup = row->m.step_ms > 0 ? n * base->compute_ms / row->m.step_ms : 0;
    row->efficiency = row->speedup / n;
}

typedef struct {
    const predict_opts *o;
    const char *model;            /* "" when --grad-mb alone */
    double params, macs;          /* 0 unknown */
    double grad_bytes, bucket_bytes;
    const char *compute_src;
    double transfer_bytes;        /* 0: not asked */
    char transfer_src[128];
    int have_step;
    ring_link link;
    const dl_link *net;
    int gpus_per_node;
    predict_row rows[MAX_COUNTS];
    int n_rows;
    predict_row lanes[9];
    const dl_link *lane_links[9];
    int n_lanes;
} prediction;

static void print_tables(FILE *f, const prediction *p)
{
    const predict_opts *o = p->o;
    if (p->have_step) {
        if (p->model[0])
            fprintf(f, "dltrain predict: %s, %.3f M parameters = %.2f MiB of fp32 gradients, batch "
                    "%d per GPU\n", p->model, p->params * 1e-6, p->grad_bytes / MIB, o->batch);
        else
            fprintf(f, "dltrain predict: %.2f MiB of gradients, batch %d per GPU\n",
                    p->grad_bytes / MIB, o->batch);
        const dl_step_model *m1 = &p->rows[0].m;
        fprintf(f, "  compute %.3f ms per step on one GPU (%s); forward %.3f, backward %.3f ms\n",
                m1->compute_ms, p->compute_src, m1->forward_ms, m1->backward_ms);
        fprintf(f, "  link %s: %.3f GB/s per direction", p->link.name, p->link.link_gbps);
        if (o->link_share > 1)
            fprintf(f, " shared by %d GPUs = %.3f GB/s each", o->link_share, p->link.gbps);
        fprintf(f, ", %.1f us per ring step\n    (%s)\n", p->link.alpha_us, p->link.what);
        if (p->net)
            fprintf(f, "  between nodes %s: %.3f GB/s, %.1f us per ring step (%d GPUs per node)\n",
                    p->net->name, p->net->gbps, p->net->alpha_us, p->gpus_per_node);
        fprintf(f, "  buckets of %.6g MiB: %d per step, %s\n\n", p->bucket_bytes / MIB,
                m1->buckets, o->no_overlap ? "all after backward (--no-overlap)"
                                           : "each reduced as soon as backward has produced it");
        fprintf(f, "  %5s %5s %9s %9s %9s %9s %9s %11s %8s %10s\n", "GPUs", "nodes", "GB/s",
                "comm ms", "hidden", "exposed", "step ms", "images/s", "speedup", "efficiency");
        for (int i = 0; i < p->n_rows; i++) {
            const predict_row *r = &p->rows[i];
            fprintf(f, "  %5d %5d %9.3f %9.3f %9.3f %9.3f %9.3f %11.1f %8.2f %9.1f%%\n", r->gpus,
                    r->nodes, r->gpus > 1 ? r->gbps : 0.0, r->m.comm_ms, r->m.hidden_ms,
                    r->m.exposed_ms, r->m.step_ms, r->images_per_s, r->speedup, 100 * r->efficiency);
        }
    }
    if (p->n_lanes) {
        if (p->have_step)
            fprintf(f, "\n  PCIe generation and lanes, %d GPUs%s:\n", p->lanes[0].gpus,
                    o->link_share > 1 ? ", each link shared as above" : "");
        else
            fprintf(f, "\n  PCIe generation and lanes:\n");
        fprintf(f, "  %-9s %9s", "link", "GB/s");
        if (p->have_step)
            fprintf(f, " %9s %9s %9s %11s %10s", "comm ms", "exposed", "step ms", "images/s",
                    "efficiency");
        if (p->transfer_bytes > 0)
            fprintf(f, " %12s", "transfer ms");
        fputc('\n', f);
        for (int i = 0; i < p->n_lanes; i++) {
            const predict_row *r = &p->lanes[i];
            fprintf(f, "  %-9s %9.3f", p->lane_links[i]->name, p->lane_links[i]->gbps);
            if (p->have_step)
                fprintf(f, " %9.3f %9.3f %9.3f %11.1f %9.1f%%", r->m.comm_ms, r->m.exposed_ms,
                        r->m.step_ms, r->images_per_s, 100 * r->efficiency);
            if (p->transfer_bytes > 0)
                fprintf(f, " %12.3f", dl_transfer_ms(p->transfer_bytes, p->lane_links[i]->gbps));
            fputc('\n', f);
        }
    }
    if (p->transfer_bytes > 0) {
        fprintf(f, "\n  input transfer: %.0f bytes (%.3f MiB) per batch (%s)\n", p->transfer_bytes,
                p->transfer_bytes / MIB, p->transfer_src);
        if (!p->have_step || strcmp(p->link.name, "measured") != 0)
            fprintf(f, "  over %s: %.3f ms at %.3f GB/s (the ceiling: real copies reach 75-90%% "
                    "of it)\n", p->link.name, dl_transfer_ms(p->transfer_bytes, p->link.link_gbps),
                    p->link.link_gbps);
    }
}

static void json_row(FILE *f, const predict_row *r)
{
    fprintf(f, "{\"gpus\":%d,\"nodes\":%d,\"gbps\":%.6g,\"alpha_us\":%.6g,\"buckets\":%d,"
               "\"comm_ms\":%.6g,\"hidden_ms\":%.6g,\"exposed_ms\":%.6g,\"compute_ms\":%.6g,"
               "\"step_ms\":%.6g,\"images_per_s\":%.6g,\"speedup\":%.6g,\"efficiency\":%.6g}",
            r->gpus, r->nodes, r->gbps, r->alpha_us, r->m.buckets, r->m.comm_ms, r->m.hidden_ms,
            r->m.exposed_ms, r->m.compute_ms, r->m.step_ms,
            r->images_per_s, r->speedup, r->efficiency);
}

static void print_json(FILE *f, const prediction *p)
{
    const predict_opts *o = p->o;
    fprintf(f, "{\"command\":\"predict\",\"version\":1,\"model\":");
    dl_json_string(f, p->model);
    fprintf(f, ",\"params\":%.0f,\"macs_per_sample\":%.6g,\"batch\":%d,\"grad_bytes\":%.0f,"
               "\"bucket_bytes\":%.0f,\"overlap\":%s,\"backward_frac\":%.6g,",
            p->params, p->macs, o->batch, p->grad_bytes, p->bucket_bytes,
            o->no_overlap ? "false" : "true", o->backward_frac);
    if (p->have_step) {
        fprintf(f, "\"compute_ms\":%.6g,\"compute_source\":", p->rows[0].m.compute_ms);
        dl_json_string(f, p->compute_src);
        fputc(',', f);
    } else {
        fprintf(f, "\"compute_ms\":null,");
    }
    fprintf(f, "\"link\":{\"name\":");
    dl_json_string(f, p->link.name);
    fprintf(f, ",\"gbps\":%.6g,\"share\":%d,\"gbps_per_gpu\":%.6g,\"alpha_us\":%.6g,\"source\":",
            p->link.link_gbps, o->link_share, p->link.gbps, p->link.alpha_us);
    dl_json_string(f, p->link.what);
    fprintf(f, "},\"net\":");
    if (p->net) {
        fprintf(f, "{\"name\":");
        dl_json_string(f, p->net->name);
        fprintf(f, ",\"gbps\":%.6g,\"alpha_us\":%.6g,\"gpus_per_node\":%d}", p->net->gbps,
                p->net->alpha_us, p->gpus_per_node);
    } else {
        fprintf(f, "null");
    }
    fprintf(f, ",\"rows\":[");
    for (int i = 0; p->have_step && i < p->n_rows; i++) {
        if (i)
            fputc(',', f);
        json_row(f, &p->rows[i]);
    }
    fprintf(f, "],\"lanes\":[");
    for (int i = 0; i < p->n_lanes; i++) {
        fprintf(f, "%s{\"link\":\"%s\",\"link_gbps\":%.6g", i ? "," : "", p->lane_links[i]->name,
                p->lane_links[i]->gbps);
        if (p->transfer_bytes > 0)
            fprintf(f, ",\"transfer_ms\":%.6g",
                    dl_transfer_ms(p->transfer_bytes, p->lane_links[i]->gbps));
        if (p->have_step) {
            fprintf(f, ",\"step\":");
            json_row(f, &p->lanes[i]);
        }
        fputc('}', f);
    }
    fprintf(f, "],\"transfer\":");
    if (p->transfer_bytes > 0) {
        fprintf(f, "{\"bytes\":%.0f,\"source\":", p->transfer_bytes);
        dl_json_string(f, p->transfer_src);
        fprintf(f, ",\"link\":");
        dl_json_string(f, p->link.name);
        fprintf(f, ",\"ms\":%.6g}", dl_transfer_ms(p->transfer_bytes, p->link.link_gbps));
    } else {
        fprintf(f, "null");
    }
    fprintf(f, "}\n");
}

int dl_cmd_predict(int argc, char **argv)
{
    predict_opts o = {.batch = 32, .bucket_mb = 25, .backward_frac = 2.0 / 3.0, .nodes = 1,
                      .link_share = 1, .alpha_us = -1, .link = "pcie3x16"};
    int r = dl_options_parse(predict_options, &o, argc, argv, "predict", usage_text);
    if (r)
        return r == 1 ? DL_EXIT_OK : r;
    static prediction p;
    memset(&p, 0, sizeof p);
    p.o = &o;
    p.model = o.model;

    /* the link (names are checked before anything else is worked out) */
    const dl_link *named = NULL;
    if (strcmp(o.link, "this") != 0 && !(named = find_link("link", o.link)))
        return DL_EXIT_USAGE;
    if (o.net[0] && !(p.net = find_link("net", o.net)))
        return DL_EXIT_USAGE;
    if (o.net[0] && strcmp(o.net, "this") == 0) {
        fprintf(stderr, "dltrain predict: --net this: name the link between nodes\n");
        return DL_EXIT_USAGE;
    }
    if (o.nodes > 1 && !p.net) {
        fprintf(stderr, "dltrain predict: --nodes %d needs --net NAME, the link between nodes "
                "(ib-edr, ib-hdr, ib-ndr, eth-10g, eth-25g, eth-100g)\n", o.nodes);
        return DL_EXIT_USAGE;
    }
    if (o.sysfs_root[0] && named) {
        fprintf(stderr, "dltrain predict: --sysfs-root goes with --link this\n");
        return DL_EXIT_USAGE;
    }
    if (o.allreduce_json[0]) {
        if ((r = calibrate(o.allreduce_json, &p.link)))
            return r;
    } else if (named) {
        snprintf(p.link.name, sizeof p.link.name, "%s", named->name);
        snprintf(p.link.what, sizeof p.link.what, "%s", named->what);
        p.link.link_gbps = named->gbps, p.link.alpha_us = named->alpha_us;
    } else if ((r = link_this(&o, &p.link))) {
        return r;
    }
    if (o.alpha_us >= 0)
        p.link.alpha_us = o.alpha_us;
    p.link.gbps = dl_link_share_gbps(p.link.link_gbps, o.link_share);

    /* the model: parameters (gradient bytes) and multiply-adds, without allocating it */
    int c = 3, h = 224, w = 224, classes = 1000, have_shape = 0;
    if (o.model[0]) {
        const dl_model *m = dl_model_find(o.model);
        if (!m) {
            fprintf(stderr, "dltrain predict: unknown model '%s' (choose from %s)\n", o.model,
                    dl_model_names());
            return DL_EXIT_USAGE;
        }
        model_default_shape(o.model, &c, &h, &w, &classes);
        if (o.input[0] && parse_shape(o.input, &c, &h, &w, &classes)) {
            fprintf(stderr, "dltrain predict: --input needs CxHxW or CxHxW:CLASSES, got '%s'\n",
                    o.input);
            return DL_EXIT_USAGE;
        }
        dl_net *net = calloc(1, sizeof *net);
        if (!net || dl_model_build(m, net, c, h, w, classes) != DL_OK) {
            fprintf(stderr, "dltrain predict: %s\n", net ? dl_error_message() : "out of memory");
            free(net);
            return DL_EXIT_ERROR;
        }
        for (int i = 0; i < net->n_layers; i++)
            p.params += (double)net->layers[i].n_params;
        p.macs = dl_net_macs_per_sample(net);
        free(net);
        have_shape = 1;
    } else if (o.input[0]) {
        fprintf(stderr, "dltrain predict: --input goes with --model\n");
        return DL_EXIT_USAGE;
    }
    p.grad_bytes = o.grad_mb > 0 ? o.grad_mb * MIB : 4.0 * p.params;
    p.bucket_bytes = o.bucket_mb * MIB;

    /* compute time on one GPU: exactly one source */
    int sources = (o.step_ms > 0) + (o.images_per_s > 0) + (o.gpu_tflops > 0);
    if (sources > 1) {
        fprintf(stderr, "dltrain predict: give one of --step-ms, --images-per-s, --gpu-tflops\n");
        return DL_EXIT_USAGE;
    }
    if (o.gpu_tflops > 0 && !o.model[0]) {
        fprintf(stderr, "dltrain predict: --gpu-tflops needs --model (to count its FLOPs)\n");
        return DL_EXIT_USAGE;
    }
    double compute_ms = 0;
    if (o.step_ms > 0)
        compute_ms = o.step_ms, p.compute_src = "--step-ms";
    else if (o.images_per_s > 0)
        compute_ms = 1e3 * o.batch / o.images_per_s, p.compute_src = "--batch / --images-per-s";
    else if (o.gpu_tflops > 0)
        compute_ms = 1e3 * dl_train_flops_per_sample(p.macs) * o.batch / (o.gpu_tflops * 1e12),
        p.compute_src = "6 x MACs x batch / --gpu-tflops";

    /* input transfer per batch */
    if (o.transfer_mb > 0) {
        p.transfer_bytes = o.transfer_mb * MIB;
        snprintf(p.transfer_src, sizeof p.transfer_src, "--transfer-mb %g", o.transfer_mb);
    } else if (o.images > 0 || o.image[0] || have_shape) {
        if (o.image[0] && parse_shape(o.image, &c, &h, &w, NULL)) {
            fprintf(stderr, "dltrain predict: --image needs CxHxW, got '%s'\n", o.image);
            return DL_EXIT_USAGE;
        }
        int n = o.images > 0 ? o.images : o.batch;
        p.transfer_bytes = 4.0 * n * c * h * w;
        snprintf(p.transfer_src, sizeof p.transfer_src, "%d images of %dx%dx%d fp32", n, c, h, w);
    }

    p.have_step = compute_ms > 0;
    if (p.have_step && !(p.grad_bytes > 0)) {
        fprintf(stderr, "dltrain predict: a step prediction needs the gradient size: --model NAME "
                "or --grad-mb MIB\n");
        return DL_EXIT_USAGE;
    }
    if (!p.have_step && (o.grad_mb > 0 || o.model[0]) && !(o.images > 0 || o.transfer_mb > 0)) {
        fprintf(stderr, "dltrain predict: a step prediction needs the compute time on one GPU: "
                "--step-ms MS, --images-per-s X, or --gpu-tflops TF with --model\n");
        return DL_EXIT_USAGE;
    }
    if (!p.have_step && !(p.transfer_bytes > 0)) {
        fprintf(stderr, "dltrain predict: nothing to predict: give the compute time (--step-ms) "
                "and gradients (--model or --grad-mb), or an input batch (--images N, "
                "--transfer-mb MIB); see 'dltrain predict --help'\n");
        return DL_EXIT_USAGE;
    }

    /* GPU counts and nodes */
    int counts[MAX_COUNTS], n_counts;
    if (o.gpus[0]) {
        n_counts = parse_counts(o.gpus, counts);
        if (n_counts <= 0) {
            fprintf(stderr, "dltrain predict: --gpus needs counts such as 8 or 1,2,4,8, got '%s'\n",
                    o.gpus);
            return DL_EXIT_USAGE;
        }
    } else if (p.link.this_gpus > 0) {
        n_counts = 0;
        for (int n = 1; n < p.link.this_gpus && n_counts < MAX_COUNTS - 1; n *= 2)
            counts[n_counts++] = n;
        counts[n_counts++] = p.link.this_gpus;
    } else {
        n_counts = 4, counts[0] = 1, counts[1] = 2, counts[2] = 4, counts[3] = 8;
    }
    int max_n = 0;
    for (int i = 0; i < n_counts; i++)
        max_n = counts[i] > max_n ? counts[i] : max_n;
    if (max_n % o.nodes) {
        fprintf(stderr, "dltrain predict: --nodes %d must divide the largest GPU count (%d)\n",
                o.nodes, max_n);
        return DL_EXIT_USAGE;
    }
    p.gpus_per_node = max_n / o.nodes;
    if (o.nodes == 1)
        p.net = NULL; /* one node: --net plays no part */

    if (p.have_step) {
        dl_step_inputs in = {.compute_ms = compute_ms, .backward_frac = o.backward_frac,
                             .grad_bytes = p.grad_bytes, .bucket_bytes = p.bucket_bytes,
                             .overlap = !o.no_overlap, .gpus = 1, .gbps = p.link.gbps,
                             .alpha_us = p.link.alpha_us};
        dl_step_model probe;
        if (dl_step_predict(&in, &probe) != 0) {
            fprintf(stderr, "dltrain predict: --bucket-mb %g is too small for %.0f bytes of "
                    "gradients\n", o.bucket_mb, p.grad_bytes);
            return DL_EXIT_USAGE;
        }
        /* the one-GPU baseline comes first, whether or not it was asked for */
        p.n_rows = 0;
        int has1 = 0;
        for (int i = 0; i < n_counts; i++)
            has1 |= counts[i] == 1;
        if (!has1)
            predict_one(&in, &p.link, p.net, p.gpus_per_node, 1, o.batch, &p.rows[p.n_rows++]);
        for (int i = 0; i < n_counts && p.n_rows < MAX_COUNTS; i++)
            predict_one(&in, &p.link, p.net, p.gpus_per_node, counts[i], o.batch,
                        &p.rows[p.n_rows++]);
        /* lanes: the same step at the largest count, the ring on each PCIe link */
        for (const dl_link *l = dl_links; l->name; l++) {
            if (l->kind != DL_LINK_PCIE)
                continue;
            ring_link lr = {.link_gbps = l->gbps, .alpha_us = l->alpha_us};
            lr.gbps = dl_link_share_gbps(l->gbps, o.link_share);
            if (o.alpha_us >= 0)
                lr.alpha_us = o.alpha_us;
            p.lane_links[p.n_lanes] = l;
            predict_one(&in, &lr, p.net, p.gpus_per_node, max_n, o.batch, &p.lanes[p.n_lanes++]);
        }
    } else {
        for (const dl_link *l = dl_links; l->name; l++)
            if (l->kind == DL_LINK_PCIE)
                p.lane_links[p.n_lanes++] = l;
    }

    int json_stdout = strcmp(o.json, "-") == 0;
    if (!json_stdout)
        print_tables(stdout, &p);
    if (o.json[0]) {
        FILE *f = json_stdout ? stdout : fopen(o.json, "w");
        if (!f) {
            fprintf(stderr, "dltrain predict: cannot write %s\n", o.json);
            return DL_EXIT_ERROR;
        }
        print_json(f, &p);
        if (!json_stdout && fclose(f) != 0) {
            fprintf(stderr, "dltrain predict: cannot write %s\n", o.json);
            return DL_EXIT_ERROR;
        }
    }
    return DL_EXIT_OK;
}
