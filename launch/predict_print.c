/* predict_print.c: `dltrain predict`'s tables and JSON (docs/scaling.md
 * lists the JSON fields). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "context.h"
#include "predict.h"

static const char *cpu_vendor(dl_mcpu c)
{
    return c == DL_MCPU_AMD ? "AMD" : c == DL_MCPU_ARM ? "ARM" : "Intel";
}

static void print_machine(FILE *f, const prediction *p)
{
    const dl_machine *m = p->machine;
    fprintf(f, "  machine: %s\n    %d GPU%s, %d socket%s (%s%s%s, socket link %.3g GB/s, host "
            "memory %.4g GB/s each), %d PCIe switch%s, %s%s%s\n", m->desc, m->n_gpus,
            m->n_gpus == 1 ? "" : "s", m->sockets, m->sockets == 1 ? "" : "s",
            cpu_vendor(m->cpu), m->cpu != DL_MCPU_INTEL ? "" : ", NCCL's class ",
            m->cpu != DL_MCPU_INTEL ? "" : strcmp(m->cpu_name, "intel") ? m->cpu_name : "skylake",
            m->socket_gbps, m->mem_gbps, m->n_switches,
            m->n_switches == 1 ? "" : "es", m->p2p ? "P2P allowed by the driver" :
            "no P2P (the driver refuses it, as on GeForce cards)", m->nvl_name ? ", NVLink " : "",
            m->nvl_name ? m->nvl_name : "");
    const predict_fit *fit = &p->fit;
    if (fit->sweep_ranks)
        fprintf(f, "  calibrated on bench allreduce over %d ranks: %.3f GB/s bus bandwidth where "
                "the machine's ring has %.3f, so bandwidth x %.3f, latency x %.3f\n",
                fit->sweep_ranks, fit->sweep_gbps, fit->model_gbps, fit->bw_factor,
                fit->alpha_factor);
    if (fit->fitted)
        fprintf(f, "  calibrated on %d measured point%s: bandwidth x %.3f, backward share %.3f, "
                "latency x %.3f (fitted: %s; rms log error %.4f)\n", fit->n_points,
                fit->n_points == 1 ? "" : "s", fit->bw_factor, fit->backward_frac,
                fit->alpha_factor, fit->quantity, fit->rms_log_error);
}

/* --compress: what it changes at each GPU count. */
static void print_compress(FILE *f, const prediction *p)
{
    if (p->compress.kind == DL_COMPRESS_NONE)
        return;
    char name[24];
    dl_compress_name(p->compress, name, sizeof name);
    fprintf(f, "  --compress %s: bytes on the wire against the fp32 all-reduce, and compression "
            "compute per step (%s):\n", name, predict_compress_source(p));
    if (p->compress.kind == DL_COMPRESS_POWERSGD)
        fprintf(f, "  PowerSGD %s\n", p->n_mats ? "per layer, over the model's weight matrices"
                                                 : "folding each bucket into one matrix (--grad-mb "
                                                   "gives no layers; train runs it per layer)");
    if (p->compress.kind == DL_COMPRESS_ONEBIT && p->n_mats)
        fprintf(f, "  onebit per layer, over the model's tensors (those under %d values exact)\n",
                DL_ONEBIT_EXACT_BELOW);
    else if (p->compress.kind == DL_COMPRESS_ONEBIT)
        fprintf(f, "  onebit in blocks across each bucket (--grad-mb gives no layers; train runs "
                "it per layer)\n");
    for (int i = 0; i < p->n_rows; i++) {
        const predict_row *r = &p->rows[i];
        if (r->gpus > 1)
            fprintf(f, "  %5d GPUs: x %.4f of the bytes (%.1fx fewer), %.3f ms compressing\n",
                    r->gpus, r->wire_factor, 1.0 / r->wire_factor, r->compress_ms);
    }
    fputc('\n', f);
}

/* One line per GPU count: how the ring runs and the link that limits it. */
static void print_bottlenecks(FILE *f, const prediction *p)
{
    fprintf(f, "\n  what limits the ring:\n");
    for (int i = 0; i < p->n_rows; i++) {
        const predict_row *r = &p->rows[i];
        if (r->gpus < 2)
            continue;
        fprintf(f, "  %5d GPUs: %d NVLink, %d P2P, %d through the CPU, %d network hops; %s\n",
                r->gpus, r->hops[DL_HOP_NVL], r->hops[DL_HOP_P2P], r->hops[DL_HOP_SHM],
                r->hops[DL_HOP_NET], r->bottleneck);
    }
}

static void print_whatifs(FILE *f, const prediction *p)
{
    if (!p->n_whatifs)
        return;
    fprintf(f, "\n  what if, at %d GPUs:\n  %-22s %9s %9s %11s %8s  %s\n", p->whatifs[0].row.gpus,
            "machine", "GB/s", "step ms", "images/s", "speedup", "limited by");
    for (int i = 0; i < p->n_whatifs; i++) {
        const predict_whatif *w = &p->whatifs[i];
        fprintf(f, "  %-22s %9.3f %9.3f %11.1f %8.2f  %s\n", w->label, w->row.gbps,
                w->row.m.step_ms, w->row.images_per_s, w->row.speedup, w->row.bottleneck);
    }
}

void predict_print_tables(FILE *f, const prediction *p)
{
    const predict_opts *o = p->o;
    if (p->have_step) {
        if (p->model[0])
            fprintf(f, "dltrain predict: %s, %.3f M parameters = %.2f MiB of %s gradients, batch "
                    "%d per GPU\n", p->model, p->params * 1e-6, p->grad_bytes / MIB,
                    p->grad_elem_bytes == 2 ? o->grad_dtype : "fp32", o->batch);
        else
            fprintf(f, "dltrain predict: %.2f MiB of gradients, batch %d per GPU\n",
                    p->grad_bytes / MIB, o->batch);
        const dl_step_model *m1 = &p->rows[0].m;
        fprintf(f, "  compute %.3f ms per step on one GPU (%s); forward %.3f, backward %.3f ms\n",
                m1->compute_ms, p->compute_src, m1->forward_ms, m1->backward_ms);
        if (p->machine) {
            print_machine(f, p);
        } else {
            fprintf(f, "  link %s: %.3f GB/s per direction", p->link.name, p->link.link_gbps);
            if (o->link_share > 1)
                fprintf(f, " shared by %d GPUs = %.3f GB/s each", o->link_share, p->link.gbps);
            fprintf(f, ", %.1f us per ring step\n    (%s)\n", p->link.alpha_us, p->link.what);
        }
        if (p->net)
            fprintf(f, "  between nodes %s: %.3f GB/s, %.1f us per ring step (%d GPUs per node)\n",
                    p->net->name, p->net->gbps, p->net->alpha_us, p->gpus_per_node);
        fprintf(f, "  buckets of %.6g MiB: %d per step, %s\n\n", p->bucket_bytes / MIB,
                m1->buckets, o->no_overlap ? "all after backward (--no-overlap)"
                                           : "each reduced as soon as backward has produced it");
        print_compress(f, p);
        fprintf(f, "  %5s %5s %9s %9s %9s %9s %9s %11s %8s %10s\n", "GPUs", "nodes", "GB/s",
                "comm ms", "hidden", "exposed", "step ms", "images/s", "speedup", "efficiency");
        for (int i = 0; i < p->n_rows; i++) {
            const predict_row *r = &p->rows[i];
            fprintf(f, "  %5d %5d %9.3f %9.3f %9.3f %9.3f %9.3f %11.1f %8.2f %9.1f%%\n", r->gpus,
                    r->nodes, r->gpus > 1 ? r->gbps : 0.0, r->m.comm_ms, r->m.hidden_ms,
                    r->m.exposed_ms, r->m.step_ms, r->images_per_s, r->speedup, 100 * r->efficiency);
        }
        if (p->machine) {
            print_bottlenecks(f, p);
            print_whatifs(f, p);
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
                    "of it)\n", strcmp(p->link.name, "machine") ? p->link.name
                                                             : "GPU 0's PCIe link (NCCL's figure)",
                    dl_transfer_ms(p->transfer_bytes, p->link.link_gbps), p->link.link_gbps);
    }
}

static void json_row_fields(FILE *f, const predict_row *r)
{
    fprintf(f, "{\"gpus\":%d,\"nodes\":%d,\"gbps\":%.6g,\"alpha_us\":%.6g,\"buckets\":%d,"
               "\"comm_ms\":%.6g,\"hidden_ms\":%.6g,\"exposed_ms\":%.6g,\"compute_ms\":%.6g,"
               "\"step_ms\":%.6g,\"images_per_s\":%.6g,\"speedup\":%.6g,\"efficiency\":%.6g",
            r->gpus, r->nodes, r->gbps, r->alpha_us, r->m.buckets, r->m.comm_ms, r->m.hidden_ms,
            r->m.exposed_ms, r->m.compute_ms, r->m.step_ms,
            r->images_per_s, r->speedup, r->efficiency);
    fprintf(f, ",\"wire_factor\":%.9g,\"compress_ms\":%.6g", r->wire_factor, r->compress_ms);
    if (r->bottleneck[0]) {
        fprintf(f, ",\"hops\":{\"nvlink\":%d,\"p2p\":%d,\"shm\":%d,\"net\":%d},\"bottleneck\":",
                r->hops[DL_HOP_NVL], r->hops[DL_HOP_P2P], r->hops[DL_HOP_SHM], r->hops[DL_HOP_NET]);
        dl_json_string(f, r->bottleneck);
    }
}

static void json_row(FILE *f, const predict_row *r)
{
    json_row_fields(f, r);
    fputc('}', f);
}

/* "machine", "fit" and "whatifs"; null without --machine. */
static void json_machine(FILE *f, const prediction *p)
{
    const dl_machine *m = p->machine;
    char compress[24];
    dl_compress_name(p->compress, compress, sizeof compress);
    fprintf(f, ",\"grad_dtype\":\"%s\",\"compress\":\"%s\",\"compress_source\":", p->o->grad_dtype,
            compress);
    dl_json_string(f, p->compress.kind == DL_COMPRESS_NONE ? "" : predict_compress_source(p));
    fprintf(f, ",\"powersgd\":\"%s\"", p->compress.kind != DL_COMPRESS_POWERSGD ? ""
                                         : p->n_mats ? "per_layer" : "folded");
    fprintf(f, ",\"onebit\":\"%s\"", p->compress.kind != DL_COMPRESS_ONEBIT ? ""
                                       : p->n_mats ? "per_layer" : "blocks");
    fprintf(f, ",\"machine\":");
    if (!m) {
        fprintf(f, "null,\"fit\":null,\"whatifs\":[]");
        return;
    }
    fprintf(f, "{\"description\":");
    dl_json_string(f, m->desc);
    fprintf(f, ",\"gpus\":%d,\"sockets\":%d,\"switches\":%d,\"cpu\":\"%s\",\"socket_gbps\":%.6g,"
               "\"mem_gbps\":%.6g,\"p2p\":%s,\"nvlink\":", m->n_gpus, m->sockets, m->n_switches,
            m->cpu_name, m->socket_gbps, m->mem_gbps, m->p2p ? "true" : "false");
    if (m->nvl_name)
        fprintf(f, "\"%s\"", m->nvl_name);
    else
        fprintf(f, "null");
    const predict_fit *fit = &p->fit;
    fprintf(f, "},\"fit\":");
    if (fit->n_points || fit->sweep_ranks) {
        fprintf(f, "{\"sweep_ranks\":%d,\"points\":[", fit->sweep_ranks);
        for (int i = 0; i < fit->n_points; i++)
            fprintf(f, "%s{\"gpus\":%d,\"images_per_s\":%.6g}", i ? "," : "", fit->gpus[i],
                    fit->images_per_s[i]);
        fprintf(f, "],\"fitted\":%d,\"quantity\":", fit->fitted);
        dl_json_string(f, fit->quantity ? fit->quantity : "");
        fprintf(f, ",\"bw_factor\":%.6g,\"backward_frac\":%.6g,\"alpha_factor\":%.6g,"
                   "\"rms_log_error\":%.6g}", fit->bw_factor, fit->backward_frac,
                fit->alpha_factor, fit->rms_log_error);
    } else {
        fprintf(f, "null");
    }
    fprintf(f, ",\"whatifs\":[");
    for (int i = 0; i < p->n_whatifs; i++) {
        fprintf(f, "%s{\"label\":", i ? "," : "");
        dl_json_string(f, p->whatifs[i].label);
        fprintf(f, ",\"description\":");
        dl_json_string(f, p->whatifs[i].machine.desc);
        fprintf(f, ",\"step\":");
        json_row(f, &p->whatifs[i].row);
        fputc('}', f);
    }
    fputc(']', f);
}

void predict_print_json(FILE *f, const prediction *p)
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
    json_machine(f, p);
    fprintf(f, "}\n");
}

