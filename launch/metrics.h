/* metrics.h: what a run reports — the live progress line on a terminal, the
 * per-epoch summary, and the same facts as JSON lines (--json FILE). */
#ifndef DL_METRICS_H
#define DL_METRICS_H

#include <stdio.h>

/* Seconds spent in each phase of the step, summed over steps. */
typedef struct dl_phase_times {
    double data;         /* waiting for the loader */
    double forward;
    double backward;
    double comm;         /* all-reduce time, overlapped or not */
    double exposed_comm; /* time the step waited for all-reduce after backward */
    double optimizer;
} dl_phase_times;

typedef struct dl_epoch_summary {
    int epoch, epochs;
    long steps;
    double train_loss, test_loss, test_acc, lr;
    double seconds, images_per_s;
    dl_phase_times t;
} dl_epoch_summary;

typedef struct dl_metrics {
    FILE *json;
    int live;          /* draw a progress line (a terminal) */
    double last_draw;
} dl_metrics;

int dl_metrics_open(dl_metrics *m, const char *json_path, int live);
void dl_metrics_close(dl_metrics *m);
void dl_metrics_progress(dl_metrics *m, int epoch, long step, long steps, double loss,
                         double images_per_s, double eta_s);
void dl_metrics_step_json(dl_metrics *m, int epoch, long step, double loss, double lr);
void dl_metrics_epoch(dl_metrics *m, const dl_epoch_summary *e);
/* Any JSON record: `body` is the inside of the object, e.g. "\"k\":1". */
void dl_metrics_json_line(dl_metrics *m, const char *body);

#endif
