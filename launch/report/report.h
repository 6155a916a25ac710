/* report.h: the self-contained HTML report of `dltrain scale` (and of
 * `dltrain bench allreduce`): charts drawn as inline SVG, the machine's
 * topology summary and the exact commands, readable in a browser with no
 * network access.  The producers fill a dl_report; report_html.c draws it. */
#ifndef DL_REPORT_H
#define DL_REPORT_H

#include <stddef.h>

#define DL_REPORT_MAX_POINTS 64

/* One measured configuration of `dltrain scale`: a group of ranks (GPUs). */
typedef struct dl_report_scale_point {
    int ranks;
    char label[160];          /* which ranks/GPUs and the path between them: "GPU0,GPU1 via PIX (x16 gen4)" */
    double images_per_s;      /* median over repetitions */
    double images_per_s_lo, images_per_s_hi; /* spread: min and max over repetitions */
    double speedup;           /* images_per_s / the 1-rank images_per_s */
    double efficiency;        /* speedup / ranks */
    double predicted_speedup; /* from the predict model; 0 when not available */
    /* per-step breakdown, milliseconds */
    double step_ms, compute_ms, comm_ms, exposed_comm_ms, data_ms, optimizer_ms;
} dl_report_scale_point;

/* One message size of an all-reduce sweep (nccl-tests definitions). */
typedef struct dl_report_bw_point {
    double bytes, time_us, algbw_gbs, busbw_gbs;
} dl_report_bw_point;

typedef struct dl_report {
    char title[200];
    char generated[64];      /* date and time, local */
    char machine[512];       /* host, CPU, GPUs, backend, library versions */
    char commands[2048];     /* the exact command lines that produced the figures, one per line */
    char topology[16384];    /* `dltrain topo` summary text, pre-formatted */
    char notes[4096];        /* free text: transports chosen, environment variables set, caveats */
    char model[32];
    int batch_per_rank;
    int n_scale;
    dl_report_scale_point scale[DL_REPORT_MAX_POINTS];
    int bw_ranks;            /* ranks in the all-reduce sweep; 0 = no sweep */
    char bw_backend[16];
    int n_bw;
    dl_report_bw_point bw[DL_REPORT_MAX_POINTS];
} dl_report;

/* Writes r as one HTML file (atomically: temp file then rename).  Returns 0,
 * or -1 after setting the dl error message. */
int dl_report_write_html(const char *path, const dl_report *r);

#endif
