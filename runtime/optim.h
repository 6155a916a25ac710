/* optim.h: SGD with momentum over the flat parameter buffer, and the
 * learning-rate schedule (constant, step, cosine; optional linear warm-up).
 *
 * The schedule is a function of training progress in epochs (a real number:
 * samples seen / samples per epoch), not of the step count, so runs with
 * different world sizes or a resumed run see the same learning rate at the
 * same point of training. */
#ifndef DL_OPTIM_H
#define DL_OPTIM_H

#include "device.h"

typedef enum { DL_SCHED_CONSTANT, DL_SCHED_STEP, DL_SCHED_COSINE } dl_schedule_kind;

#define DL_MAX_MILESTONES 8

typedef struct dl_schedule {
    dl_schedule_kind kind;
    double base_lr;
    double warmup_epochs;  /* linear ramp from 0 over this many epochs */
    double total_epochs;   /* cosine decays to 0 at the end */
    double gamma;          /* step: multiply by gamma at each milestone */
    int n_milestones;
    double milestones[DL_MAX_MILESTONES]; /* in epochs */
} dl_schedule;

/* Learning rate for the step that ends at `progress` epochs. */
double dl_schedule_lr(const dl_schedule *s, double progress);
/* Parse "constant", "step", "cosine"; returns 0 for anything else. */
int dl_schedule_parse_kind(const char *name, dl_schedule_kind *kind);
const char *dl_schedule_kind_name(dl_schedule_kind kind);

typedef struct dl_sgd {
    dl_device *dev;
    float *velocity; /* [n] device, same layout as the parameters */
    size_t n;
    float momentum, weight_decay;
    int nesterov;
} dl_sgd;

dl_status dl_sgd_init(dl_sgd *opt, dl_device *dev, size_t n, float momentum, float weight_decay,
                      int nesterov);
void dl_sgd_step(dl_sgd *opt, float *params, const float *grads, float lr);
void dl_sgd_free(dl_sgd *opt);

#endif
