/* report_svg.h: the three charts of the HTML report, drawn as inline SVG by
 * report_svg.c, and the HTML escaping both report files use.  Internal to
 * launch/: report.h is the public interface.
 *
 * Every series is a <g class="series" data-series="NAME" data-color="#rrggbb">
 * so that tests/test_report_html.py can count the series and look for their
 * colours in a screenshot without repeating the palette. */
#ifndef DL_REPORT_SVG_H
#define DL_REPORT_SVG_H

#include <stdio.h>

#include "report.h"

/* Writes s with &, <, >, " and ' escaped (text and attribute values). */
void dl_html_puts(FILE *f, const char *s);

/* Each writes one <svg> chart, or a <p class="absent"> sentence saying why
 * there is none.  Return 1 when a chart was drawn, 0 when not. */
int dl_report_svg_speedup(FILE *f, const dl_report *r);
int dl_report_svg_busbw(FILE *f, const dl_report *r);
int dl_report_svg_breakdown(FILE *f, const dl_report *r);

/* The key of scale point i in the charts and tables: "2" or, when several
 * configurations have 2 ranks, "2a", "2b", ... */
void dl_report_point_key(const dl_report *r, int i, char *out, size_t n);

/* The circulating claims the speedup chart shades and the page's claims
 * table judges: speedup ranges on n GPUs. */
typedef struct {
    int gpus;
    double lo, hi;
    int soft;          /* 1: the wider "depending on software" range */
} dl_report_claim;
extern const dl_report_claim dl_report_claims[];
extern const int dl_report_n_claims;

#endif
