/* report_svg.c: the report's charts as inline SVG, drawn from a dl_report
 * with no library and no script, so the page renders offline:
 *
 *   speedup against GPUs: ideal line, measured medians with min/max whiskers,
 *     the predicted line, and the circulating claims as shaded ranges;
 *   bus bandwidth against message size (log x, nccl-tests definitions);
 *   the step breakdown as stacked bars per configuration (compute, exposed
 *     communication, optimizer, data) with hidden communication beside them.
 *
 * Coordinates are pixels of a fixed 860 x 400 canvas; the plot area leaves
 * room for tick labels on the left and below, and a legend on the right. */
#include "report_svg.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define CHART_W 860
#define CHART_H 400
#define PLOT_X 70.0
#define PLOT_Y 20.0
#define PLOT_W 560.0
#define PLOT_H 310.0

/* Saturated colours, each used by one series only (the screenshot test finds
 * a series by its colour).  Text and axes are near-black, grid lines light grey. */
#define COL_IDEAL "#8c564b"
#define COL_MEASURED "#d62728"
#define COL_PREDICTED "#1f77b4"
#define COL_CLAIM "#a6dba0"
#define COL_CLAIM_SOFT "#e0f3db"
#define COL_BUSBW "#9467bd"
#define COL_ALGBW "#ff7f0e"
#define COL_COMPUTE "#17becf"
#define COL_EXPOSED "#e7298a"
#define COL_OPTIM "#bcbd22"
#define COL_DATA "#a6761d"
#define COL_HIDDEN "#fbb4d9"

const dl_report_claim dl_report_claims[] = {
    {2, 1.6, 1.9, 0}, {4, 2.5, 3.9, 1}, {4, 3.0, 3.9, 0}, {8, 7.0, 8.0, 0},
};
const int dl_report_n_claims = (int)(sizeof(dl_report_claims) / sizeof(dl_report_claims[0]));

void dl_html_puts(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* ---- axes ----------------------------------------------------------------- */

typedef struct {
    double xmin, xmax, ymin, ymax; /* data range; log2 of x when logx */
    int logx;
} axes;

static double ax_x(const axes *a, double x) {
    double v = a->logx ? log2(x) : x;
    return PLOT_X + (v - a->xmin) / (a->xmax - a->xmin) * PLOT_W;
}

static double ax_y(const axes *a, double y) {
    return PLOT_Y + PLOT_H - (y - a->ymin) / (a->ymax - a->ymin) * PLOT_H;
}

/* 1, 2 or 5 x 10^k: the smallest such step giving at most max_ticks ticks. */
static double nice_step(double span, int max_ticks) {
    double raw = span / max_ticks;
    double mag = pow(10.0, floor(log10(raw)));
    const double m[] = {1, 2, 5, 10};
    for (int i = 0; i < 4; i++)
        if (m[i] * mag >= raw) return m[i] * mag;
    return 10 * mag;
}

static double nice_ceil(double v, int max_ticks) {
    if (!(v > 0)) return 1;
    double step = nice_step(v, max_ticks);
    return ceil(v / step - 1e-9) * step;
}

static void svg_open(FILE *f, const char *id, const char *what) {
    fprintf(f, "<svg id=\"%s\" class=\"chart\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "role=\"img\" aria-label=\"", id, CHART_W, CHART_H, CHART_W, CHART_H);
    dl_html_puts(f, what);
    fputs("\">\n", f);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#ffffff\" "
               "stroke=\"#333333\" shape-rendering=\"crispEdges\"/>\n", PLOT_X, PLOT_Y, PLOT_W, PLOT_H);
}

static void y_axis(FILE *f, const axes *a, const char *label) {
    double step = nice_step(a->ymax - a->ymin, 8);
    fputs("<g class=\"axis y\">\n", f);
    for (double v = a->ymin; v <= a->ymax + step * 1e-6; v += step) {
        double y = ax_y(a, v);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>"
                   "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                PLOT_X, y, PLOT_X + PLOT_W, y, PLOT_X - 5, y, PLOT_X, y, PLOT_X - 8, y + 4, v);
    }
    fprintf(f, "<text class=\"label\" transform=\"translate(18 %.1f) rotate(-90)\" "
               "text-anchor=\"middle\">", PLOT_Y + PLOT_H / 2);
    dl_html_puts(f, label);
    fputs("</text>\n</g>\n", f);
}

static void x_tick(FILE *f, double x, const char *text) {
    double y = PLOT_Y + PLOT_H;
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, y, x, y + 5, x, y + 20);
    dl_html_puts(f, text);
    fputs("</text>\n", f);
}

static void x_label(FILE *f, const char *label) {
    fprintf(f, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
            PLOT_X + PLOT_W / 2, PLOT_Y + PLOT_H + 44);
    dl_html_puts(f, label);
    fputs("</text>\n", f);
}

/* ---- legend --------------------------------------------------------------- */

typedef enum { SW_LINE, SW_DASH, SW_POINT, SW_BOX } swatch;

static void legend_entry(FILE *f, int i, swatch kind, const char *color, const char *text) {
    double x = PLOT_X + PLOT_W + 20, y = PLOT_Y + 14 + 22 * i;
    switch (kind) {
    case SW_LINE:
    case SW_DASH:
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                   "stroke-width=\"2\"%s/>", x, y, x + 18, y, color,
                kind == SW_DASH ? " stroke-dasharray=\"5 3\"" : "");
        break;
    case SW_POINT:
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", x + 9, y, color);
        break;
    case SW_BOX:
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"10\" fill=\"%s\" "
                   "stroke=\"#666666\" stroke-width=\"0.5\"/>", x + 3, y - 5, color);
        break;
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">", x + 26, y + 4);
    dl_html_puts(f, text);
    fputs("</text>\n", f);
}

static void series_open(FILE *f, const char *name, const char *color) {
    fprintf(f, "<g class=\"series\" data-series=\"%s\" data-color=\"%s\">\n", name, color);
}

static void absent(FILE *f, const char *why) {
    fputs("<p class=\"absent\">", f);
    dl_html_puts(f, why);
    fputs("</p>\n", f);
}

/* ---- speedup against GPUs ------------------------------------------------- */

static double max_ranks(const dl_report *r) {
    int m = 1;
    for (int i = 0; i < r->n_scale; i++) m = r->scale[i].ranks > m ? r->scale[i].ranks : m;
    return m;
}

/* The whiskers: the median's speedup scaled by the spread of images/s. */
static double speedup_at(const dl_report_scale_point *p, double images_per_s) {
    return p->images_per_s > 0 ? p->speedup * images_per_s / p->images_per_s : p->speedup;
}

static void draw_claims(FILE *f, const axes *a) {
    series_open(f, "claims", COL_CLAIM);
    for (int i = 0; i < dl_report_n_claims; i++) {
        const dl_report_claim *c = &dl_report_claims[i];
        if (c->gpus > a->xmax) continue;
        double half = 0.22 * (a->xmax - a->xmin) / 9;
        double x0 = ax_x(a, c->gpus - half), x1 = ax_x(a, c->gpus + half);
        double y0 = ax_y(a, c->hi), y1 = ax_y(a, c->lo);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                   "<title>claimed: %d GPUs %.1f-%.1fx%s</title></rect>\n",
                x0, y0, x1 - x0, y1 - y0, c->soft ? COL_CLAIM_SOFT : COL_CLAIM, c->gpus, c->lo,
                c->hi, c->soft ? " (depending on software)" : "");
    }
    fputs("</g>\n", f);
}

static void draw_ideal(FILE *f, const axes *a) {
    series_open(f, "ideal", COL_IDEAL);
    double top = a->xmax < a->ymax ? a->xmax : a->ymax;
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
               "stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n",
            ax_x(a, 1), ax_y(a, 1), ax_x(a, top), ax_y(a, top), COL_IDEAL);
    fputs("</g>\n", f);
}

/* Points at the same GPU count (topology subsets) are spread sideways a little. */
static void draw_measured(FILE *f, const axes *a, const dl_report *r) {
    series_open(f, "measured", COL_MEASURED);
    for (int i = 0; i < r->n_scale; i++) {
        const dl_report_scale_point *p = &r->scale[i];
        int same = 0;
        for (int j = 0; j < i; j++) same += r->scale[j].ranks == p->ranks;
        double x = ax_x(a, p->ranks) + 9.0 * same;
        double lo = speedup_at(p, p->images_per_s_lo), hi = speedup_at(p, p->images_per_s_hi);
        fprintf(f, "<g class=\"point\"><title>");
        dl_html_puts(f, p->label);
        fprintf(f, ": %.3fx (%.3f-%.3f)</title>", p->speedup, lo, hi);
        if (p->images_per_s_lo > 0 && p->images_per_s_hi > 0)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                       "stroke-width=\"2\"/><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                       "stroke=\"%s\" stroke-width=\"2\"/><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                       "y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>",
                    x, ax_y(a, lo), x, ax_y(a, hi), COL_MEASURED, x - 5, ax_y(a, lo), x + 5,
                    ax_y(a, lo), COL_MEASURED, x - 5, ax_y(a, hi), x + 5, ax_y(a, hi),
                    COL_MEASURED);
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/></g>\n", x,
                ax_y(a, p->speedup), COL_MEASURED);
    }
    fputs("</g>\n", f);
}

/* One predicted value per GPU count (the first), joined in order of count. */
static int draw_predicted(FILE *f, const axes *a, const dl_report *r) {
    int order[DL_REPORT_MAX_POINTS], n = 0;
    for (int i = 0; i < r->n_scale; i++) {
        if (!(r->scale[i].predicted_speedup > 0)) continue;
        int dup = 0;
        for (int k = 0; k < n; k++) dup |= r->scale[order[k]].ranks == r->scale[i].ranks;
        if (dup) continue;
        int k = n++;
        for (; k > 0 && r->scale[order[k - 1]].ranks > r->scale[i].ranks; k--)
            order[k] = order[k - 1];
        order[k] = i;
    }
    if (n == 0) return 0;
    series_open(f, "predicted", COL_PREDICTED);
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\" points=\"",
            COL_PREDICTED);
    for (int k = 0; k < n; k++) {
        const dl_report_scale_point *p = &r->scale[order[k]];
        fprintf(f, "%s%.1f,%.1f", k ? " " : "", ax_x(a, p->ranks), ax_y(a, p->predicted_speedup));
    }
    fputs("\"/>\n", f);
    for (int k = 0; k < n; k++) {
        const dl_report_scale_point *p = &r->scale[order[k]];
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"7\" height=\"7\" fill=\"%s\">"
                   "<title>predicted %d: %.3fx</title></rect>\n",
                ax_x(a, p->ranks) - 3.5, ax_y(a, p->predicted_speedup) - 3.5, COL_PREDICTED,
                p->ranks, p->predicted_speedup);
    }
    fputs("</g>\n", f);
    return 1;
}

int dl_report_svg_speedup(FILE *f, const dl_report *r) {
    if (r->n_scale <= 0) {
        absent(f, "No speedup chart: no scaling measurement in this run (dltrain scale).");
        return 0;
    }
    axes a = {0, 0, 0, 0, 0};
    a.xmax = max_ranks(r) < 8 ? 8 : max_ranks(r);
    double top = a.xmax;
    for (int i = 0; i < r->n_scale; i++) {
        double hi = speedup_at(&r->scale[i], r->scale[i].images_per_s_hi);
        top = fmax(top, fmax(hi, fmax(r->scale[i].speedup, r->scale[i].predicted_speedup)));
    }
    a.ymax = nice_ceil(top * 1.02, 8);
    a.xmax *= 1.04; /* room for the last claim box and sideways-spread points */
    svg_open(f, "chart-speedup", "speedup against the number of GPUs");
    y_axis(f, &a, "speedup over one GPU");
    double step = fmax(1, nice_step(a.xmax, 10));
    for (double v = 0; v <= a.xmax; v += step) {
        char t[32];
        snprintf(t, sizeof t, "%g", v);
        x_tick(f, ax_x(&a, v), t);
    }
    x_label(f, "GPUs (ranks)");
    draw_claims(f, &a);
    draw_ideal(f, &a);
    int predicted = draw_predicted(f, &a, r);
    draw_measured(f, &a, r);
    int li = 0;
    legend_entry(f, li++, SW_DASH, COL_IDEAL, "ideal (n x)");
    legend_entry(f, li++, SW_POINT, COL_MEASURED, "measured (min-max)");
    if (predicted) legend_entry(f, li++, SW_LINE, COL_PREDICTED, "predicted");
    legend_entry(f, li++, SW_BOX, COL_CLAIM, "claimed");
    legend_entry(f, li++, SW_BOX, COL_CLAIM_SOFT, "claimed, software-");
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">dependent</text>\n", PLOT_X + PLOT_W + 46,
            PLOT_Y + 14 + 22 * li);
    fputs("</svg>\n", f);
    return 1;
}

/* ---- bus bandwidth against message size ----------------------------------- */

static void bytes_text(double b, char *out, size_t n) {
    const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) b /= 1024, u++;
    snprintf(out, n, "%g %s", b, unit[u]);
}

static void draw_bw_series(FILE *f, const axes *a, const dl_report *r, int bus) {
    const char *color = bus ? COL_BUSBW : COL_ALGBW;
    series_open(f, bus ? "busbw" : "algbw", color);
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2.5\"%s points=\"", color,
            bus ? "" : " stroke-dasharray=\"6 3\"");
    for (int i = 0; i < r->n_bw; i++)
        fprintf(f, "%s%.1f,%.1f", i ? " " : "", ax_x(a, r->bw[i].bytes),
                ax_y(a, bus ? r->bw[i].busbw_gbs : r->bw[i].algbw_gbs));
    fputs("\"/>\n", f);
    if (bus)
        for (int i = 0; i < r->n_bw; i++)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\">"
                       "<title>%.0f bytes: %.3f GB/s</title></circle>\n",
                    ax_x(a, r->bw[i].bytes), ax_y(a, r->bw[i].busbw_gbs), color, r->bw[i].bytes,
                    r->bw[i].busbw_gbs);
    fputs("</g>\n", f);
}

int dl_report_svg_busbw(FILE *f, const dl_report *r) {
    if (r->bw_ranks <= 0 || r->n_bw <= 0) {
        absent(f, "No bandwidth chart: no all-reduce sweep in this run (dltrain bench allreduce).");
        return 0;
    }
    if (r->bw_ranks == 1) {
        absent(f, "No bandwidth chart: the all-reduce sweep ran on one rank, where nothing "
                  "crosses a link (bus bandwidth 0).");
        return 0;
    }
    axes a = {0, 0, 0, 0, 1};
    double lo = INFINITY, hi = 0, top = 0;
    for (int i = 0; i < r->n_bw; i++) {
        if (!(r->bw[i].bytes > 0)) {
            absent(f, "No bandwidth chart: the sweep has a message of 0 bytes.");
            return 0;
        }
        lo = fmin(lo, r->bw[i].bytes);
        hi = fmax(hi, r->bw[i].bytes);
        top = fmax(top, fmax(r->bw[i].busbw_gbs, r->bw[i].algbw_gbs));
    }
    a.xmin = floor(log2(lo));
    a.xmax = ceil(log2(hi));
    if (a.xmax <= a.xmin) a.xmax = a.xmin + 1;
    a.ymax = nice_ceil(top * 1.05, 8);
    svg_open(f, "chart-busbw", "all-reduce bus bandwidth against message size");
    y_axis(f, &a, "GB/s");
    int span = (int)(a.xmax - a.xmin), every = 1;
    while (span / every > 9) every++;
    for (int e = (int)a.xmin; e <= (int)a.xmax; e += every) {
        char t[32];
        bytes_text(ldexp(1, e), t, sizeof t);
        x_tick(f, ax_x(&a, ldexp(1, e)), t);
    }
    x_label(f, "message size (bytes, log scale)");
    draw_bw_series(f, &a, r, 0);
    draw_bw_series(f, &a, r, 1);
    char t[64];
    snprintf(t, sizeof t, "bus bandwidth (%d ranks)", r->bw_ranks);
    legend_entry(f, 0, SW_LINE, COL_BUSBW, t);
    legend_entry(f, 1, SW_DASH, COL_ALGBW, "algorithm bandwidth");
    fprintf(f, "<text class=\"note\" x=\"%.1f\" y=\"%.1f\">busbw = algbw x 2(n-1)/n = "
               "algbw x %.3g</text>\n", PLOT_X + PLOT_W + 20, PLOT_Y + 14 + 22 * 2 + 4,
            2.0 * (r->bw_ranks - 1) / r->bw_ranks);
    fputs("</svg>\n", f);
    return 1;
}

/* ---- step breakdown --------------------------------------------------------- */

typedef struct {
    const char *name, *color, *text;
    size_t offset; /* of the milliseconds in dl_report_scale_point */
} stack_part;

static const stack_part stack_parts[] = {
    {"compute", COL_COMPUTE, "compute", offsetof(dl_report_scale_point, compute_ms)},
    {"exposed", COL_EXPOSED, "exposed comm", offsetof(dl_report_scale_point, exposed_comm_ms)},
    {"optimizer", COL_OPTIM, "optimizer", offsetof(dl_report_scale_point, optimizer_ms)},
    {"data", COL_DATA, "data", offsetof(dl_report_scale_point, data_ms)},
};
#define N_PARTS ((int)(sizeof(stack_parts) / sizeof(stack_parts[0])))

static double part_ms(const dl_report_scale_point *p, int k) {
    double v = *(const double *)((const char *)p + stack_parts[k].offset);
    return v > 0 ? v : 0;
}

static double hidden_ms(const dl_report_scale_point *p) {
    double h = p->comm_ms - p->exposed_comm_ms;
    return h > 0 ? h : 0;
}

void dl_report_point_key(const dl_report *r, int i, char *out, size_t n) {
    int before = 0, total = 0;
    for (int j = 0; j < r->n_scale; j++)
        if (r->scale[j].ranks == r->scale[i].ranks) total++, before += j < i;
    if (total > 1 && before < 26)
        snprintf(out, n, "%d%c", r->scale[i].ranks, 'a' + before);
    else
        snprintf(out, n, "%d", r->scale[i].ranks);
}

static void draw_stack_part(FILE *f, const axes *a, const dl_report *r, int k, double slot) {
    series_open(f, stack_parts[k].name, stack_parts[k].color);
    for (int i = 0; i < r->n_scale; i++) {
        const dl_report_scale_point *p = &r->scale[i];
        double base = 0;
        for (int j = 0; j < k; j++) base += part_ms(p, j);
        double v = part_ms(p, k);
        if (v <= 0) continue;
        double x = PLOT_X + slot * i + slot * 0.18, w = slot * 0.46;
        double y0 = ax_y(a, base + v), y1 = ax_y(a, base);
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                   "<title>%s: %.3f ms</title></rect>\n",
                x, y0, w, y1 - y0, stack_parts[k].color, stack_parts[k].text, v);
    }
    fputs("</g>\n", f);
}

static void draw_hidden(FILE *f, const axes *a, const dl_report *r, double slot) {
    series_open(f, "hidden", COL_HIDDEN);
    for (int i = 0; i < r->n_scale; i++) {
        double v = hidden_ms(&r->scale[i]);
        if (v <= 0) continue;
        double x = PLOT_X + slot * i + slot * 0.66, w = slot * 0.16;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" "
                   "stroke=\"%s\" stroke-dasharray=\"3 2\"><title>hidden comm: %.3f ms</title>"
                   "</rect>\n", x, ax_y(a, v), w, ax_y(a, 0) - ax_y(a, v), COL_HIDDEN,
                COL_EXPOSED, v);
    }
    fputs("</g>\n", f);
}

/* The measured step time as a short black bar across each stack: where the
 * parts do not add up to it, the gap is time no timer covers. */
static void draw_step_marks(FILE *f, const axes *a, const dl_report *r, double slot) {
    fputs("<g class=\"step-marks\">\n", f);
    for (int i = 0; i < r->n_scale; i++) {
        if (!(r->scale[i].step_ms > 0)) continue;
        double x = PLOT_X + slot * i + slot * 0.14, y = ax_y(a, r->scale[i].step_ms);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#111111\" "
                   "stroke-width=\"2\"><title>step %.3f ms</title></line>\n",
                x, y, x + slot * 0.54, y, r->scale[i].step_ms);
    }
    fputs("</g>\n", f);
}

int dl_report_svg_breakdown(FILE *f, const dl_report *r) {
    if (r->n_scale <= 0) {
        absent(f, "No step breakdown: no scaling measurement in this run (dltrain scale).");
        return 0;
    }
    axes a = {0, 1, 0, 0, 0};
    double top = 0;
    for (int i = 0; i < r->n_scale; i++) {
        double sum = 0;
        for (int k = 0; k < N_PARTS; k++) sum += part_ms(&r->scale[i], k);
        top = fmax(top, fmax(sum, fmax(r->scale[i].step_ms, hidden_ms(&r->scale[i]))));
    }
    if (!(top > 0)) {
        absent(f, "No step breakdown: the measurement recorded no phase times.");
        return 0;
    }
    a.ymax = nice_ceil(top * 1.04, 8);
    double slot = PLOT_W / r->n_scale;
    svg_open(f, "chart-breakdown", "time per training step by phase, per configuration");
    y_axis(f, &a, "milliseconds per step");
    for (int i = 0; i < r->n_scale; i++) {
        char key[16];
        dl_report_point_key(r, i, key, sizeof key);
        x_tick(f, PLOT_X + slot * (i + 0.5), key);
    }
    x_label(f, "configuration (GPUs; letters: different GPU sets, see the table)");
    for (int k = 0; k < N_PARTS; k++) draw_stack_part(f, &a, r, k, slot);
    draw_hidden(f, &a, r, slot);
    draw_step_marks(f, &a, r, slot);
    for (int k = 0; k < N_PARTS; k++)
        legend_entry(f, k, SW_BOX, stack_parts[k].color, stack_parts[k].text);
    legend_entry(f, N_PARTS, SW_BOX, COL_HIDDEN, "hidden comm (beside)");
    legend_entry(f, N_PARTS + 1, SW_LINE, "#111111", "measured step");
    fputs("</svg>\n", f);
    return 1;
}
