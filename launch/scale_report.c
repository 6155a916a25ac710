/* scale_report.c: what `dltrain scale` derives and reports from its
 * measurements: speedup and efficiency, the analytic model's prediction, the
 * circulating claims with a verdict, the table, JSON and the HTML report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "predict_model.h"
#include "report.h"
#include "run_env.h"
#include "scale.h"

/* The figures that circulate among people building deep-learning machines. */
typedef struct {
    int gpus;
    double lo, hi;
    const char *claim;
} scale_claim;

static const scale_claim claims[] = {
    {2, 1.6, 1.9, "2 GPUs: 1.6-1.9x"},
    {4, 3.0, 3.9, "4 GPUs: 3.0-3.9x"},
    {4, 2.5, 3.9, "4 GPUs: 2.5-3.9x depending on software"},
    {8, 7.0, 8.0, "8 GPUs: 7-8x for convnets"},
};

static const scale_point *baseline(const scale_run *r)
{
    for (int i = 0; i < r->n_points; i++)
        if (r->points[i].ranks == 1)
            return &r->points[i];
    return NULL;
}

/* The best measured speedup at `ranks`, or NULL when that size was not run. */
static const scale_point *best_at(const scale_run *r, int ranks)
{
    const scale_point *best = NULL;
    for (int i = 0; i < r->n_points; i++)
        if (r->points[i].ranks == ranks && (!best || r->points[i].speedup > best->speedup))
            best = &r->points[i];
    return best;
}

static const char *verdict(const scale_run *r, const scale_claim *c, double *measured)
{
    const scale_point *p = best_at(r, c->gpus);
    *measured = p ? p->speedup : 0;
    if (!p)
        return "not measured";
    return p->speedup < c->lo ? "below" : p->speedup > c->hi ? "above" : "supports";
}

void dl_scale_derive(scale_run *r)
{
    const scale_point *one = baseline(r);
    for (int i = 0; i < r->n_points && one; i++) {
        scale_point *p = &r->points[i];
        p->speedup = one->ips_median > 0 ? p->ips_median / one->ips_median : 0;
        p->efficiency = p->speedup / p->ranks;
        p->predicted_speedup = dl_scale_model_speedup(r, one, p->ranks);
    }
}

static int cpu_processes(const scale_run *r)
{
    return strncmp(r->ctx->dev->name, "cpu", 3) == 0;
}

/* The plain statement the claims need when the ranks are not GPUs. */
static void caveat(char *out, size_t cap, const scale_run *r)
{
    if (cpu_processes(r))
        snprintf(out, cap, "The ranks here are CPU processes (device %s, %d thread(s) each) "
                 "sharing %ld cores of one machine, not GPUs: the comparison with the GPU "
                 "figures is about this runtime's scaling on CPUs, not about GPUs or PCIe.",
                 r->ctx->dev->name, r->threads, sysconf(_SC_NPROCESSORS_ONLN));
    else
        snprintf(out, cap, "The ranks are GPUs (device %s).", r->ctx->dev->name);
}

static void print_claims(FILE *f, const scale_run *r)
{
    char note[512];
    fprintf(f, "\n  %-40s %7s  %s\n", "circulating claims", "measured", "verdict");
    for (size_t i = 0; i < DL_ARRAY_LEN(claims); i++) {
        double m;
        const char *v = verdict(r, &claims[i], &m);
        if (m > 0)
            fprintf(f, "  %-40s %6.2fx  %s\n", claims[i].claim, m, v);
        else
            fprintf(f, "  %-40s %7s  %s\n", claims[i].claim, "-", v);
    }
    caveat(note, sizeof note, r);
    fprintf(f, "  %s\n", note);
}

void dl_scale_print(FILE *f, const scale_run *r)
{
    const scale_opts *o = r->o;
    fprintf(f, "\n  %5s %10s %17s %7s %5s %6s | %7s %7s %7s %7s %7s  %s\n", "ranks", "images/s",
            "min-max", "speedup", "eff", "pred", "step", "compute", "comm", "exposed", "optim",
            "group");
    for (int i = 0; i < r->n_points; i++) {
        const scale_point *p = &r->points[i];
        char pred[16] = "-";
        if (p->predicted_speedup > 0)
            snprintf(pred, sizeof pred, "%.2fx", p->predicted_speedup);
        fprintf(f, "  %5d %10.1f %8.1f-%-8.1f %6.2fx %4.0f%% %6s | %7.2f %7.2f %7.2f %7.2f %7.2f  "
                   "%s\n", p->ranks, p->ips_median, p->ips_min, p->ips_max, p->speedup,
                100 * p->efficiency, pred, p->step_ms, p->compute_ms, p->comm_ms,
                p->exposed_comm_ms, p->optimizer_ms, p->label);
    }
    fprintf(f, "  (images/s: median of %d repeats of %d steps, global; per-step ms: step = the "
               "slowest rank, the parts = the ranks' mean)\n", o->repeats, o->steps);
    if (r->link_gbps > 0)
        fprintf(f, "  prediction: dltrain predict's model with the 1-rank compute time and the "
                   "all-reduce over all %d ranks fitted as %.3f GB/s, %.1f us per ring step\n",
                r->ctx->world, r->link_gbps, r->link_alpha_us);
    if (r->link_gbps > 0)
        fprintf(f, "    (%s)\n", cpu_processes(r)
                ? "CPU ranks: each rank's compute stretched by ranks x threads / cores when "
                  "they outnumber the cores"
                : "GPUs: the ring over each count's GPUs from this machine's topology, its "
                  "bandwidth scaled to the sweep (dltrain predict --machine this)");
    else
        fprintf(f, "  prediction: none (needs the all-reduce sweep over 2 or more ranks)\n");
    print_claims(f, r);
}

/* ---- JSON ------------------------------------------------------------------ */

static void json_point(FILE *f, const scale_point *p)
{
    fprintf(f, "{\"ranks\":%d,\"first_rank\":%d,\"label\":", p->ranks, p->first_rank);
    dl_json_string(f, p->label);
    fprintf(f, ",\"images_per_s\":%.6g,\"images_per_s_min\":%.6g,\"images_per_s_max\":%.6g,"
               "\"repeats_images_per_s\":[", p->ips_median, p->ips_min, p->ips_max);
    for (int k = 0; k < p->n_repeats; k++)
        fprintf(f, "%s%.6g", k ? "," : "", p->ips[k]);
    fprintf(f, "],\"speedup\":%.6g,\"efficiency\":%.6g,\"predicted_speedup\":%.6g,"
               "\"step_ms\":%.6g,\"compute_ms\":%.6g,\"forward_ms\":%.6g,\"backward_ms\":%.6g,"
               "\"comm_ms\":%.6g,\"exposed_comm_ms\":%.6g,\"optimizer_ms\":%.6g,\"data_ms\":%.6g}",
            p->speedup, p->efficiency, p->predicted_speedup, p->step_ms, p->compute_ms,
            p->forward_ms, p->backward_ms, p->comm_ms, p->exposed_comm_ms, p->optimizer_ms,
            p->data_ms);
}

static void json_claims(FILE *f, const scale_run *r)
{
    fputs(",\"claims\":[", f);
    for (size_t i = 0; i < DL_ARRAY_LEN(claims); i++) {
        double m;
        const char *v = verdict(r, &claims[i], &m);
        fprintf(f, "%s{\"gpus\":%d,\"claim\":", i ? "," : "", claims[i].gpus);
        dl_json_string(f, claims[i].claim);
        fprintf(f, ",\"lo\":%g,\"hi\":%g,\"measured\":", claims[i].lo, claims[i].hi);
        if (m > 0)
            fprintf(f, "%.6g", m);
        else
            fputs("null", f);
        fprintf(f, ",\"verdict\":\"%s\"}", v);
    }
    char note[512];
    caveat(note, sizeof note, r);
    fputs("],\"claims_note\":", f);
    dl_json_string(f, note);
}

static void json_sweep(FILE *f, const scale_run *r)
{
    fprintf(f, ",\"allreduce\":{\"ranks\":%d,\"backend\":\"%s\",\"gbps\":%.6g,\"alpha_us\":%.6g,"
               "\"points\":[", r->n_sweep ? r->ctx->world : 0, r->ctx->comm->name, r->link_gbps,
            r->link_alpha_us);
    for (int i = 0; i < r->n_sweep; i++) {
        const dl_sweep_point *p = &r->sweep[i];
        fprintf(f, "%s{\"bytes\":%.0f,\"time_us\":%.6g,\"algbw_gbps\":%.6g,\"busbw_gbps\":%.6g,"
                   "\"errors\":%ld}", i ? "," : "", p->bytes, p->time_us, p->algbw_gbs,
                p->busbw_gbs, p->errors);
    }
    fputs("]}", f);
}

static void json_body(FILE *f, const scale_run *r)
{
    const scale_opts *o = r->o;
    fprintf(f, "{\"command\":\"scale\",\"version\":1,\"backend\":\"%s\",\"world\":%d,"
               "\"device\":\"%s\",\"threads\":%d,\"cores_online\":%ld,\"cpu_processes\":%s,"
               "\"model\":", r->ctx->comm->name, r->ctx->world, r->ctx->dev->name, r->threads,
            sysconf(_SC_NPROCESSORS_ONLN), cpu_processes(r) ? "true" : "false");
    dl_json_string(f, o->model);
    fputs(",\"data\":", f);
    dl_json_string(f, o->data);
    fprintf(f, ",\"batch_per_rank\":%d,\"warmup\":%d,\"steps\":%d,\"repeats\":%d,"
               "\"bucket_mb\":%g,\"overlap\":%s,\"compress\":\"%s\",\"params\":%zu,\"sizes\":[",
            o->batch, o->warmup, o->steps, o->repeats, r->bucket_mb,
            o->no_overlap ? "false" : "true", o->compress, r->net.n_trainable);
    for (int i = 0; i < r->n_sizes; i++)
        fprintf(f, "%s%d", i ? "," : "", r->sizes[i]);
    fputs("],\"points\":[", f);
    for (int i = 0; i < r->n_points; i++) {
        fputs(i ? "," : "", f);
        json_point(f, &r->points[i]);
    }
    fputs("]", f);
    json_sweep(f, r);
    json_claims(f, r);
    fputs(",\"env\":", f);
    dl_run_env_json(f);
    fputs(",\"nccl\":", f);
    dl_run_nccl_json(f);
    char links[64];
    fputs(",\"gpus\":", f);
    dl_run_gpu_links(links, sizeof links, f);
    char machine[512];
    dl_run_machine(machine, sizeof machine);
    fputs(",\"machine\":", f);
    dl_json_string(f, machine);
    fputs(",\"commands\":", f);
    dl_json_string(f, r->command);
    fputs("}\n", f);
}

/* Written to a temporary name and renamed, so a reader never sees half a file. */
int dl_scale_write_json(const char *path, const scale_run *r)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    json_body(f, r);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

/* ---- HTML report -------------------------------------------------------------- */

static void report_notes(dl_report *rep, const scale_run *r)
{
    char env[2048], note[512];
    int n_env = dl_run_env_text(env, sizeof env);
    caveat(note, sizeof note, r);
    size_t len = (size_t)snprintf(rep->notes, sizeof rep->notes,
        "%s\nimages/s: global, median of %d repeats of %d steps after %d warm-up steps; "
        "speedup = images/s / images/s of 1 rank; efficiency = speedup / ranks.\n"
        "Per step: step = mean over repeats of the slowest rank's time; compute = forward + "
        "backward; comm = first bucket's start to last bucket's end; exposed = waiting for the "
        "all-reduce after backward; the parts are the ranks' means.\n%s"
        "Claims (best measured speedup at each size):\n", note, r->o->repeats, r->o->steps,
        r->o->warmup, r->added_one ? "1 rank was added to the sizes asked for: the baseline.\n"
                                   : "");
    for (size_t i = 0; i < DL_ARRAY_LEN(claims) && len < sizeof rep->notes; i++) {
        double m;
        const char *v = verdict(r, &claims[i], &m);
        len += (size_t)snprintf(rep->notes + len, sizeof rep->notes - len, "  %s: %s%.2fx -> %s\n",
                                claims[i].claim, m > 0 ? "" : "(none) ", m, v);
    }
    char nccl[1024];
    dl_run_nccl_text(nccl, sizeof nccl);
    if (len < sizeof rep->notes)
        snprintf(rep->notes + len, sizeof rep->notes - len, "%sEnvironment variables recorded "
                 "(%d):\n%s", nccl, n_env, n_env ? env : "(none set)\n");
}

int dl_scale_write_report(const char *path, const scale_run *r)
{
    dl_report *rep = calloc(1, sizeof *rep);
    if (!rep)
        return -1;
    const scale_opts *o = r->o;
    snprintf(rep->title, sizeof rep->title, "dltrain scale: %s, batch %d per rank, 1-%d ranks",
             o->model, o->batch, r->ctx->world);
    time_t now = time(NULL);
    strftime(rep->generated, sizeof rep->generated, "%Y-%m-%d %H:%M:%S", localtime(&now));
    char machine[400];
    dl_run_machine(machine, sizeof machine);
    snprintf(rep->machine, sizeof rep->machine, "%s; backend %s, %d ranks, device %s, %d "
             "thread(s) per rank", machine, r->ctx->comm->name, r->ctx->world, r->ctx->dev->name,
             r->threads);
    snprintf(rep->commands, sizeof rep->commands, "%s", r->command);
    if (r->n_gpus)
        snprintf(rep->topology, sizeof rep->topology, "%s", r->gpu_links);
    else
        snprintf(rep->topology, sizeof rep->topology, "no GPUs found under /sys: %ld CPU cores, "
                 "one node; the ranks are CPU processes\n", sysconf(_SC_NPROCESSORS_ONLN));
    report_notes(rep, r);
    snprintf(rep->model, sizeof rep->model, "%s", o->model);
    rep->batch_per_rank = o->batch;
    for (int i = 0; i < r->n_points && rep->n_scale < DL_REPORT_MAX_POINTS; i++) {
        const scale_point *p = &r->points[i];
        dl_report_scale_point *q = &rep->scale[rep->n_scale++];
        *q = (dl_report_scale_point){.ranks = p->ranks, .images_per_s = p->ips_median,
            .images_per_s_lo = p->ips_min, .images_per_s_hi = p->ips_max, .speedup = p->speedup,
            .efficiency = p->efficiency, .predicted_speedup = p->predicted_speedup,
            .step_ms = p->step_ms, .compute_ms = p->compute_ms, .comm_ms = p->comm_ms,
            .exposed_comm_ms = p->exposed_comm_ms, .data_ms = p->data_ms,
            .optimizer_ms = p->optimizer_ms};
        snprintf(q->label, sizeof q->label, "%s", p->label);
    }
    rep->bw_ranks = r->n_sweep ? r->ctx->world : 0;
    snprintf(rep->bw_backend, sizeof rep->bw_backend, "%s", r->ctx->comm->name);
    for (int i = 0; i < r->n_sweep && rep->n_bw < DL_REPORT_MAX_POINTS; i++)
        rep->bw[rep->n_bw++] = (dl_report_bw_point){r->sweep[i].bytes, r->sweep[i].time_us,
                                                    r->sweep[i].algbw_gbs, r->sweep[i].busbw_gbs};
    int rc = dl_report_write_html(path, rep);
    free(rep);
    return rc;
}
