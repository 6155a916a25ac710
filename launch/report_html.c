/* PLACEHOLDER: replaced by the report branch at merge.
 * report_html.c: a plain HTML page of a dl_report's figures (tables, no
 * charts), written atomically (temporary file, then rename), so the scale
 * and bench allreduce branches link and their tests can check the file. */
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/common.h"

static void text(FILE *f, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
}

static void section(FILE *f, const char *title, const char *body)
{
    if (!body[0])
        return;
    fprintf(f, "<h2>%s</h2>\n<pre>", title);
    text(f, body);
    fputs("</pre>\n", f);
}

static void scale_table(FILE *f, const dl_report *r)
{
    fprintf(f, "<h2>Scaling: %s, batch %d per rank</h2>\n<table border=1>\n<tr><th>ranks</th>"
               "<th>label</th><th>images/s</th><th>min</th><th>max</th><th>speedup</th>"
               "<th>efficiency</th><th>predicted</th><th>step ms</th><th>compute ms</th>"
               "<th>comm ms</th><th>exposed ms</th><th>optimizer ms</th></tr>\n", r->model,
            r->batch_per_rank);
    for (int i = 0; i < r->n_scale; i++) {
        const dl_report_scale_point *p = &r->scale[i];
        fprintf(f, "<tr><td>%d</td><td>", p->ranks);
        text(f, p->label);
        fprintf(f, "</td><td>%.1f</td><td>%.1f</td><td>%.1f</td><td>%.2f</td><td>%.2f</td>"
                   "<td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td><td>%.2f</td>"
                   "</tr>\n", p->images_per_s, p->images_per_s_lo, p->images_per_s_hi, p->speedup,
                p->efficiency, p->predicted_speedup, p->step_ms, p->compute_ms, p->comm_ms,
                p->exposed_comm_ms, p->optimizer_ms);
    }
    fputs("</table>\n", f);
}

static void bw_table(FILE *f, const dl_report *r)
{
    fprintf(f, "<h2>All-reduce: %d ranks, backend ", r->bw_ranks);
    text(f, r->bw_backend);
    fputs("</h2>\n<table border=1>\n<tr><th>bytes</th><th>time us</th><th>algbw GB/s</th>"
          "<th>busbw GB/s</th></tr>\n", f);
    for (int i = 0; i < r->n_bw; i++)
        fprintf(f, "<tr><td>%.0f</td><td>%.2f</td><td>%.3f</td><td>%.3f</td></tr>\n",
                r->bw[i].bytes, r->bw[i].time_us, r->bw[i].algbw_gbs, r->bw[i].busbw_gbs);
    fputs("</table>\n", f);
}

static void page(FILE *f, const dl_report *r)
{
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>", f);
    text(f, r->title);
    fputs("</title></head><body>\n<h1>", f);
    text(f, r->title);
    fputs("</h1>\n<p>", f);
    text(f, r->generated);
    fputs("</p>\n", f);
    section(f, "Machine", r->machine);
    if (r->n_scale)
        scale_table(f, r);
    if (r->bw_ranks && r->n_bw)
        bw_table(f, r);
    section(f, "Topology", r->topology);
    section(f, "Notes", r->notes);
    section(f, "Commands", r->commands);
    fputs("</body></html>\n", f);
}

int dl_report_write_html(const char *path, const dl_report *r)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        dl_fail(DL_ERR_IO, "cannot write %s", tmp);
        return -1;
    }
    page(f, r);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad || rename(tmp, path) != 0) {
        remove(tmp);
        dl_fail(DL_ERR_IO, "cannot write %s", path);
        return -1;
    }
    return 0;
}
