/* report_html.c: dl_report_write_html, the self-contained report page of
 * `dltrain scale` and `dltrain bench allreduce`.
 *
 * One file, no network resources (no script, fonts or stylesheets from
 * elsewhere), so it opens the same on a machine with no network.  Every
 * string from the report is HTML-escaped; the page is also well-formed XML
 * (every element closed, only XML's entities) so that tests can parse it
 * strictly.  The file is written to a temporary name beside the target and
 * renamed, so a reader never sees half a report. */
#define _GNU_SOURCE
#include "report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../runtime/common.h"
#include "report_svg.h"

static const char page_style[] =
    "body{font-family:sans-serif;color:#222222;background:#ffffff;margin:24px;max-width:1100px}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #cccccc}"
    "table{border-collapse:collapse;font-size:13px}"
    "th,td{border:1px solid #cccccc;padding:3px 7px;text-align:right}"
    "td.text,th.text{text-align:left}td.nowrap{white-space:nowrap}"
    "div.wide{overflow-x:auto}"
    "pre{background:#f6f6f6;border:1px solid #dddddd;padding:8px;font-size:12px;"
    "white-space:pre-wrap}"
    "svg.chart{display:block;font-size:12px;font-family:sans-serif}"
    "svg.chart text{fill:#222222}svg.chart text.label{font-size:13px}"
    "p.absent{font-style:italic;color:#555555}";

static void text_elem(FILE *f, const char *tag, const char *cls, const char *s) {
    fprintf(f, "<%s%s%s%s>", tag, cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
    dl_html_puts(f, s);
    fprintf(f, "</%s>\n", tag);
}

/* A <pre> block, or a sentence when the producer left the text empty. */
static void pre_or(FILE *f, const char *id, const char *s, const char *none) {
    if (s[0]) {
        fprintf(f, "<pre id=\"%s\">", id);
        dl_html_puts(f, s);
        fputs("</pre>\n", f);
    } else {
        text_elem(f, "p", "absent", none);
    }
}

static void write_head(FILE *f, const dl_report *r) {
    const char *title = r->title[0] ? r->title : "dltrain report";
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>", f);
    dl_html_puts(f, title);
    fprintf(f, "</title>\n<style>%s</style>\n</head>\n<body>\n", page_style);
    text_elem(f, "h1", NULL, title);
    if (r->generated[0]) {
        fputs("<p>Generated ", f);
        dl_html_puts(f, r->generated);
        fputs(" by dltrain.</p>\n", f);
    }
}

static void write_machine(FILE *f, const dl_report *r) {
    fputs("<h2>Machine</h2>\n", f);
    pre_or(f, "machine", r->machine, "The machine was not described.");
    if (r->model[0] && r->batch_per_rank > 0) {
        fputs("<p>Model ", f);
        dl_html_puts(f, r->model);
        fprintf(f, ", batch %d per rank.</p>\n", r->batch_per_rank);
    }
}

/* The claims table: each configuration at 2, 4 or 8 ranks against the range
 * that circulates for that count. */
static const char *claim_verdict(double s, int gpus) {
    double lo = 0, hi = 0, soft_lo = 0;
    for (int i = 0; i < dl_report_n_claims; i++) {
        const dl_report_claim *c = &dl_report_claims[i];
        if (c->gpus != gpus) continue;
        if (c->soft) soft_lo = c->lo;
        else lo = c->lo, hi = c->hi;
    }
    if (s > hi) return "above the claim";
    if (s >= lo) return "supports the claim";
    if (soft_lo > 0 && s >= soft_lo) return "only the software-dependent range";
    return "below the claim";
}

static int has_claim(int gpus) {
    for (int i = 0; i < dl_report_n_claims; i++)
        if (dl_report_claims[i].gpus == gpus) return 1;
    return 0;
}

static void claim_range_text(int gpus, char *out, size_t n) {
    out[0] = 0;
    for (int i = 0; i < dl_report_n_claims; i++) {
        const dl_report_claim *c = &dl_report_claims[i];
        if (c->gpus != gpus) continue;
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%.1f-%.1fx%s", len ? ", " : "", c->lo, c->hi,
                 c->soft ? " (software-dependent)" : "");
    }
}

static void write_claims(FILE *f, const dl_report *r) {
    int any = 0;
    for (int i = 0; i < r->n_scale; i++) any |= has_claim(r->scale[i].ranks);
    fputs("<h2>The circulating claims</h2>\n", f);
    if (!any) {
        text_elem(f, "p", "absent", "No measurement at 2, 4 or 8 GPUs, the counts the claims name.");
        return;
    }
    fputs("<table id=\"claims\">\n<tr><th>config</th><th class=\"text\">GPUs</th>"
          "<th class=\"text\">claimed</th><th>measured</th><th>predicted</th><th class=\"text\">verdict</th>"
          "</tr>\n", f);
    for (int i = 0; i < r->n_scale; i++) {
        const dl_report_scale_point *p = &r->scale[i];
        if (!has_claim(p->ranks)) continue;
        char key[16], range[96];
        dl_report_point_key(r, i, key, sizeof key);
        claim_range_text(p->ranks, range, sizeof range);
        fprintf(f, "<tr><td>%s</td><td class=\"text\">", key);
        dl_html_puts(f, p->label);
        fprintf(f, "</td><td class=\"text nowrap\">%s</td><td>%.2fx</td>", range, p->speedup);
        if (p->predicted_speedup > 0) fprintf(f, "<td>%.2fx</td>", p->predicted_speedup);
        else fputs("<td>-</td>", f);
        fprintf(f, "<td class=\"text\">%s</td></tr>\n", claim_verdict(p->speedup, p->ranks));
    }
    fputs("</table>\n", f);
}

static void write_scale_table(FILE *f, const dl_report *r) {
    if (r->n_scale <= 0) return;
    fputs("<h3>Throughput and step breakdown</h3>\n<div class=\"wide\"><table id=\"scale-table\">\n<tr>"
          "<th>config</th><th>ranks</th><th class=\"text\">GPUs and path</th>"
          "<th>images/s</th><th>min</th><th>max</th><th>speedup</th><th>efficiency</th>"
          "<th>predicted</th><th>step ms</th><th>compute ms</th><th>comm ms</th>"
          "<th>exposed ms</th><th>hidden ms</th><th>optimizer ms</th><th>data ms</th></tr>\n", f);
    for (int i = 0; i < r->n_scale; i++) {
        const dl_report_scale_point *p = &r->scale[i];
        char key[16];
        dl_report_point_key(r, i, key, sizeof key);
        double hidden = p->comm_ms > p->exposed_comm_ms ? p->comm_ms - p->exposed_comm_ms : 0;
        fprintf(f, "<tr><td>%s</td><td>%d</td><td class=\"text\">", key, p->ranks);
        dl_html_puts(f, p->label);
        fprintf(f, "</td><td>%.1f</td><td>%.1f</td><td>%.1f</td><td>%.3f</td><td>%.1f%%</td>",
                p->images_per_s, p->images_per_s_lo, p->images_per_s_hi, p->speedup,
                100 * p->efficiency);
        if (p->predicted_speedup > 0) fprintf(f, "<td>%.3f</td>", p->predicted_speedup);
        else fputs("<td>-</td>", f);
        fprintf(f, "<td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td>"
                   "<td>%.3f</td><td>%.3f</td></tr>\n",
                p->step_ms, p->compute_ms, p->comm_ms, p->exposed_comm_ms, hidden,
                p->optimizer_ms, p->data_ms);
    }
    fputs("</table></div>\n", f);
}

static void write_bw_table(FILE *f, const dl_report *r) {
    if (r->bw_ranks <= 0 || r->n_bw <= 0) return;
    fputs("<h3>All-reduce sweep (", f);
    dl_html_puts(f, r->bw_backend[0] ? r->bw_backend : "backend not recorded");
    fprintf(f, ", %d ranks)</h3>\n<table id=\"bw-table\">\n<tr><th>bytes</th><th>time us</th>"
               "<th>algbw GB/s</th><th>busbw GB/s</th></tr>\n", r->bw_ranks);
    for (int i = 0; i < r->n_bw; i++)
        fprintf(f, "<tr><td>%.0f</td><td>%.2f</td><td>%.4f</td><td>%.4f</td></tr>\n",
                r->bw[i].bytes, r->bw[i].time_us, r->bw[i].algbw_gbs, r->bw[i].busbw_gbs);
    fputs("</table>\n", f);
}

static void write_charts(FILE *f, const dl_report *r) {
    fputs("<h2>Speedup</h2>\n", f);
    if (r->n_scale > 0)
        fputs("<p>Speedup is images/s over the one-GPU images/s at the same batch per GPU; "
              "whiskers span the fastest and slowest repetition. Shaded: the ranges that "
              "circulate among people building deep-learning machines.</p>\n", f);
    dl_report_svg_speedup(f, r);
    fputs("<h2>All-reduce bandwidth</h2>\n", f);
    if (r->bw_ranks > 1 && r->n_bw > 0)
        fputs("<p>As nccl-tests defines them: algorithm bandwidth = bytes / time; bus bandwidth "
              "= algorithm bandwidth x 2(n-1)/n, what each rank's link carries in a ring, "
              "comparable with the link's rated bandwidth.</p>\n", f);
    dl_report_svg_busbw(f, r);
    fputs("<h2>Where a step's time goes</h2>\n", f);
    if (r->n_scale > 0)
        fputs("<p>Stacked: compute (forward and backward), communication that backward did not "
              "hide (exposed), optimizer, waiting for data. Beside each stack, dashed: "
              "communication hidden behind backward. Black bar: the measured step.</p>\n", f);
    dl_report_svg_breakdown(f, r);
}

static void write_body(FILE *f, const dl_report *r) {
    write_head(f, r);
    write_machine(f, r);
    write_claims(f, r);
    write_charts(f, r);
    fputs("<h2>All figures</h2>\n", f);
    if (r->n_scale <= 0 && (r->bw_ranks <= 0 || r->n_bw <= 0))
        text_elem(f, "p", "absent", "This run measured nothing.");
    write_scale_table(f, r);
    write_bw_table(f, r);
    fputs("<h2>Topology</h2>\n", f);
    pre_or(f, "topology", r->topology, "No topology summary (dltrain topo) in this run.");
    fputs("<h2>Commands</h2>\n", f);
    pre_or(f, "commands", r->commands, "The commands were not recorded.");
    fputs("<h2>Notes</h2>\n", f);
    pre_or(f, "notes", r->notes, "No notes.");
    fputs("</body>\n</html>\n", f);
}

/* Arrays are bounded by the struct; a producer's count beyond them is clamped
 * rather than read past the end, and every string is terminated. */
static void clamp(dl_report *c) {
    if (c->n_scale > DL_REPORT_MAX_POINTS) c->n_scale = DL_REPORT_MAX_POINTS;
    if (c->n_bw > DL_REPORT_MAX_POINTS) c->n_bw = DL_REPORT_MAX_POINTS;
    if (c->n_scale < 0) c->n_scale = 0;
    if (c->n_bw < 0) c->n_bw = 0;
    c->title[sizeof c->title - 1] = c->generated[sizeof c->generated - 1] = 0;
    c->machine[sizeof c->machine - 1] = c->commands[sizeof c->commands - 1] = 0;
    c->topology[sizeof c->topology - 1] = c->notes[sizeof c->notes - 1] = 0;
    c->model[sizeof c->model - 1] = c->bw_backend[sizeof c->bw_backend - 1] = 0;
    for (int i = 0; i < c->n_scale; i++) c->scale[i].label[sizeof c->scale[i].label - 1] = 0;
}

int dl_report_write_html(const char *path, const dl_report *r) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        dl_fail(DL_ERR_ARG, "report path too long: %s", path);
        return -1;
    }
    dl_report *safe = dl_alloc(sizeof *safe, "report copy"); /* ~40 KB, off the stack */
    if (!safe) return -1;
    *safe = *r;
    clamp(safe);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        dl_fail(DL_ERR_IO, "cannot write the report %s: %s", tmp, strerror(errno));
        free(safe);
        return -1;
    }
    write_body(f, safe);
    free(safe);
    int bad = ferror(f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) bad = 1;
    int saved = errno;
    if (fclose(f) != 0) bad = 1, saved = errno;
    if (bad) {
        remove(tmp);
        dl_fail(DL_ERR_IO, "cannot write the report %s: %s", tmp, strerror(saved));
        return -1;
    }
    if (rename(tmp, path) != 0) {
        saved = errno;
        remove(tmp);
        dl_fail(DL_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(saved));
        return -1;
    }
    return 0;
}
