/* predict_machine.c: `dltrain predict --machine`: the machine (a shipped
 * name, a description, this machine, a sysfs tree or `dltrain topo --json`),
 * one step over it per GPU count, calibration from measured images/s
 * (--measured), and the what-ifs for the lanes question. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "context.h"
#include "predict.h"

static int machine_from_tree(const char *root, int nvml, dl_machine *m)
{
    dl_topo t;
    char err[512] = "";
    if (dl_topo_discover(root, &t) != DL_OK) {
        fprintf(stderr, "dltrain predict: --machine: cannot read the topology under %s: %s\n",
                root, dl_error_message());
        dl_topo_free(&t);
        return DL_EXIT_ERROR;
    }
    if (nvml)
        dl_topo_nvml_apply(&t, NULL, NULL); /* NVLink and P2P status when NVML is there */
    int rc = dl_machine_from_topo(&t, m, err, sizeof err);
    dl_topo_free(&t);
    if (rc) {
        fprintf(stderr, "dltrain predict: --machine %s: %s\n", root, err);
        return DL_EXIT_ERROR;
    }
    return 0;
}

int predict_load_machine(const predict_opts *o, dl_machine *m)
{
    const char *spec = o->machine;
    char err[1024] = "";
    struct stat st;
    if (strcmp(spec, "this") == 0)
        return machine_from_tree(o->sysfs_root[0] ? o->sysfs_root : "/sys", !o->sysfs_root[0], m);
    int path_like = !strchr(spec, ',') && (strchr(spec, '/') || strstr(spec, ".json"));
    if (path_like && stat(spec, &st) != 0) {
        fprintf(stderr, "dltrain predict: --machine %s: %s (a sysfs tree or a 'dltrain topo "
                "--json' file was expected)\n", spec, strerror(errno));
        return DL_EXIT_USAGE;
    }
    if (!strchr(spec, ',') && stat(spec, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return machine_from_tree(spec, 0, m);
        if (dl_machine_from_topo_json(spec, m, err, sizeof err)) {
            fprintf(stderr, "dltrain predict: --machine %s: %s\n", spec, err);
            return DL_EXIT_USAGE;
        }
        return 0;
    }
    if (dl_machine_parse(spec, m, err, sizeof err)) {
        fprintf(stderr, "dltrain predict: --machine: %s; or name a shipped machine (%s), 'this', "
                "a sysfs tree or a 'dltrain topo --json' file\n", err, dl_machine_preset_names());
        return DL_EXIT_USAGE;
    }
    return 0;
}

/* "1:400,2:760,4:1400": GPU counts increasing, images/s positive. */
int predict_parse_measured(const char *text, predict_fit *fit)
{
    const char *p = text;
    fit->n_points = 0;
    while (*p) {
        char *end;
        errno = 0;
        long g = strtol(p, &end, 10);
        if (end == p || *end != ':' || g < 1 || g > 1000000 || errno) {
            fprintf(stderr, "dltrain predict: --measured needs GPUS:IMAGES_PER_S pairs such as "
                    "1:400,2:760, got '%s'\n", text);
            return DL_EXIT_USAGE;
        }
        p = end + 1;
        double x = strtod(p, &end);
        if (end == p || (*end && *end != ',') || !isfinite(x)) {
            fprintf(stderr, "dltrain predict: --measured: '%s' is not a number of images/s (in "
                    "'%s')\n", p, text);
            return DL_EXIT_USAGE;
        }
        if (!(x > 0)) {
            fprintf(stderr, "dltrain predict: --measured: images/s must be positive, got %g at "
                    "%ld GPU%s\n", x, g, g == 1 ? "" : "s");
            return DL_EXIT_USAGE;
        }
        int n = fit->n_points;
        if (n > 0 && g <= fit->gpus[n - 1]) {
            fprintf(stderr, "dltrain predict: --measured: GPU counts must increase, got %ld after "
                    "%d\n", g, fit->gpus[n - 1]);
            return DL_EXIT_USAGE;
        }
        if (n == MAX_MEASURED) {
            fprintf(stderr, "dltrain predict: --measured: at most %d points\n", MAX_MEASURED);
            return DL_EXIT_USAGE;
        }
        fit->gpus[n] = (int)g, fit->images_per_s[n] = x, fit->n_points++;
        p = *end ? end + 1 : end;
        if (*end == ',' && !*p)
            return fprintf(stderr, "dltrain predict: --measured ends with a comma\n"), DL_EXIT_USAGE;
    }
    if (fit->n_points == 0)
        return fprintf(stderr, "dltrain predict: --measured is empty\n"), DL_EXIT_USAGE;
    return 0;
}

void predict_one(const prediction *p, const dl_step_inputs *base, const dl_machine *m, int n,
                 predict_row *row)
{
    dl_step_inputs in = *base;
    memset(row, 0, sizeof *row);
    row->gpus = n;
    row->nodes = (n + p->gpus_per_node - 1) / p->gpus_per_node;
    row->gbps = p->link.gbps, row->alpha_us = p->link.alpha_us;
    if (m && n > 1) {
        dl_ring_cost rc;
        if (dl_machine_ring(m, n, row->nodes, p->net, &rc) == 0) {
            row->gbps = rc.gbps * p->fit.bw_factor;
            row->alpha_us = p->o->alpha_us >= 0 ? p->o->alpha_us : rc.alpha_us * p->fit.alpha_factor;
            memcpy(row->hops, rc.count, sizeof row->hops);
            snprintf(row->bottleneck, sizeof row->bottleneck, "%s", rc.bottleneck);
        }
    } else if (row->nodes > 1 && p->net) {
        /* one ring through every GPU: each hop moves the same bytes, so the
         * slowest hop (the network) sets the pace and its latency the step */
        row->gbps = fmin(row->gbps, p->net->gbps);
        row->alpha_us = fmax(row->alpha_us, p->net->alpha_us);
    }
    in.gpus = n, in.gbps = row->gbps, in.alpha_us = row->alpha_us;
    if (m)
        in.backward_frac = p->fit.backward_frac;
    predict_compress_row(p, n, &in, row);
    dl_step_predict(&in, &row->m);
    row->images_per_s = row->m.step_ms > 0 ? 1e3 * n * p->o->batch / row->m.step_ms : 0;
    row->speedup = row->m.step_ms > 0 ? n * base->compute_ms / row->m.step_ms : 0;
    row->efficiency = row->speedup / n;
}

/* ---- calibration ------------------------------------------------------------ */

static double fit_error(prediction *p, const dl_step_inputs *base)
{
    double sum = 0;
    int k = 0;
    for (int i = 0; i < p->fit.n_points; i++) {
        if (p->fit.gpus[i] < 2)
            continue;
        predict_row row;
        predict_one(p, base, p->machine, p->fit.gpus[i], &row);
        double e = log(row.images_per_s / p->fit.images_per_s[i]);
        sum += e * e, k++;
    }
    return k ? sum / k : 0;
}

/* Golden-section search of one quantity (in log space when log_scale). */
static void fit_one(prediction *p, const dl_step_inputs *base, double *x, double lo, double hi,
                    int log_scale)
{
    const double r = (sqrt(5.0) - 1) / 2;
    double a = log_scale ? log(lo) : lo, b = log_scale ? log(hi) : hi;
    for (int it = 0; it < 60; it++) {
        double c = b - r * (b - a), d = a + r * (b - a);
        *x = log_scale ? exp(c) : c;
        double fc = fit_error(p, base);
        *x = log_scale ? exp(d) : d;
        double fd = fit_error(p, base);
        if (fc < fd)
            b = d;
        else
            a = c;
    }
    *x = log_scale ? exp((a + b) / 2) : (a + b) / 2;
}

/* Predicted / measured images/s at the one measured count beyond one GPU. */
static double one_point_ratio(prediction *p, const dl_step_inputs *base)
{
    for (int i = 0; i < p->fit.n_points; i++)
        if (p->fit.gpus[i] > 1) {
            predict_row row;
            predict_one(p, base, p->machine, p->fit.gpus[i], &row);
            return row.images_per_s / p->fit.images_per_s[i];
        }
    return 1;
}

/* One measured point beyond one GPU fits one quantity, the one we know
 * least.  The links' figures are NCCL's, which its kernels reach; how much
 * of the all-reduce a framework hides behind backward is unknown (it may
 * serialise the all-reduces, or overlap nothing).  So the backward share is
 * fitted first, with the links at their rated bandwidth.  Only a loss larger
 * than the whole all-reduce at that bandwidth (nothing hidden) lowers the
 * bandwidth factor, and a loss smaller than full overlap allows raises it.
 * Throughput does not fall as the backward share grows, so bisection finds
 * it (the exposed time is flat between bucket boundaries). */
static void fit_one_point(prediction *p, const dl_step_inputs *base)
{
    predict_fit *fit = &p->fit;
    double frac0 = fit->backward_frac, lo = 0, hi = frac0;
    fit->bw_factor = 1;
    double full_overlap = one_point_ratio(p, base);
    fit->backward_frac = 0;
    double nothing_hidden = one_point_ratio(p, base);
    if (full_overlap <= 1) {
        fit->backward_frac = frac0;
        fit->quantity = "bandwidth";
    } else if (nothing_hidden >= 1) {
        fit->quantity = "bandwidth, nothing hidden";
    } else {
        fit->quantity = "backward share";
        for (int it = 0; it < 60; it++) {
            fit->backward_frac = (lo + hi) / 2;
            if (one_point_ratio(p, base) < 1)
                lo = fit->backward_frac;
            else
                hi = fit->backward_frac;
        }
        fit->backward_frac = (lo + hi) / 2;
        return;
    }
    fit_one(p, base, &fit->bw_factor, 0.01, 2.0, 1);
}

int predict_fit_measured(prediction *p, const dl_step_inputs *base)
{
    predict_fit *fit = &p->fit;
    int beyond_one = 0;
    for (int i = 0; i < fit->n_points; i++)
        beyond_one += fit->gpus[i] > 1;
    if (beyond_one == 0)
        return 0;
    for (int i = 0; i < fit->n_points; i++)
        if (fit->gpus[i] > p->machine->n_gpus * (p->o->nodes > 0 ? p->o->nodes : 1)) {
            fprintf(stderr, "dltrain predict: --measured at %d GPUs, but the machine has %d\n",
                    fit->gpus[i], p->machine->n_gpus);
            return DL_EXIT_USAGE;
        }
    /* one point beyond one GPU fits one quantity (below); a second fits
     * the other of bandwidth and backward share; a third the latency */
    fit->fitted = beyond_one >= 3 ? 3 : beyond_one;
    if (fit->fitted == 1) {
        fit_one_point(p, base);
        fit->rms_log_error = sqrt(fit_error(p, base));
        return 0;
    }
    fit->quantity = fit->fitted >= 3 ? "bandwidth, backward share, latency"
                                     : "bandwidth, backward share";
    for (int round = 0; round < 6; round++) {
        fit_one(p, base, &fit->bw_factor, 0.01, 2.0, 1);
        fit_one(p, base, &fit->backward_frac, 0.0, 1.0, 0);
        if (fit->fitted >= 3)
            fit_one(p, base, &fit->alpha_factor, 0.1, 100.0, 1);
    }
    fit->rms_log_error = sqrt(fit_error(p, base));
    return 0;
}

int predict_fit_sweep(prediction *p, const ring_link *sweep)
{
    dl_ring_cost rc;
    predict_fit *fit = &p->fit;
    if (dl_machine_ring(p->machine, sweep->ranks, 1, NULL, &rc) != 0) {
        fprintf(stderr, "dltrain predict: --allreduce-json ran over %d ranks, but the machine "
                "has %d GPUs\n", sweep->ranks, p->machine->n_gpus);
        return DL_EXIT_USAGE;
    }
    /* the same calibration as scale's predicted column (scale_model.c) */
    fit->bw_factor = sweep->link_gbps / rc.gbps;
    fit->alpha_factor = rc.alpha_us > 0 ? sweep->alpha_us / rc.alpha_us : 1;
    fit->sweep_ranks = sweep->ranks, fit->sweep_gbps = sweep->link_gbps;
    fit->model_gbps = rc.gbps;
    fit->quantity = "bandwidth and latency, from the all-reduce sweep";
    return 0;
}

/* ---- what-ifs ------------------------------------------------------------------ */

static void set_lanes(dl_machine *m, int lanes)
{
    for (int i = 0; i < m->n_gpus; i++)
        m->gpu[i].lanes = lanes;
}

static void generation_up(dl_machine *m)
{
    for (int i = 0; i < m->n_gpus; i++)
        m->gpu[i].gen = m->gpu[i].gen < 6 ? m->gpu[i].gen + 1 : 6;
    for (int s = 0; s < m->n_switches; s++)
        m->sw[s].gen = m->sw[s].gen < 6 ? m->sw[s].gen + 1 : 6;
}

/* NVLink bridges on pairs 0-1, 2-3, ... (four GA102-class links each). */
static void bridge_pairs(dl_machine *m)
{
    for (int a = 0; a + 1 < m->n_gpus; a += 2) {
        m->nvl[a][a + 1] = m->nvl[a + 1][a] = 4;
        m->path_of[a][a + 1] = m->path_of[a + 1][a] = 0;
    }
    m->nvl_name = "nvlink-ga102", m->nvl_link_gbps = 12;
}

void predict_whatifs(prediction *p, const dl_step_inputs *base, int n)
{
    static const char *labels[] = {"as described", "P2P on everywhere", "every GPU at x16",
                                   "every GPU at x8", "every GPU at x4", "one PCIe generation up",
                                   "NVLink bridge on pairs"};
    p->n_whatifs = 0;
    for (int i = 0; i < 7 && p->n_whatifs < MAX_WHATIFS; i++) {
        predict_whatif *w = &p->whatifs[p->n_whatifs];
        w->machine = *p->machine;
        dl_machine *m = &w->machine;
        if (i == 1)
            m->p2p = 1, m->p2p_level_sys = 1;
        else if (i >= 2 && i <= 4)
            set_lanes(m, i == 2 ? 16 : i == 3 ? 8 : 4);
        else if (i == 5)
            generation_up(m);
        else if (i == 6) {
            if (m->nvl_name)
                continue; /* it has NVLink already */
            bridge_pairs(m);
        }
        snprintf(w->label, sizeof w->label, "%s", labels[i]);
        if (i)
            snprintf(m->desc + strlen(m->desc), sizeof m->desc - strlen(m->desc), "; %s",
                     labels[i]);
        predict_one(p, base, m, n, &w->row);
        p->n_whatifs++;
    }
}
