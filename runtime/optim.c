/* optim.c: learning-rate schedules and the SGD step. */
#include "optim.h"

#include <math.h>
#include <string.h>

static const char *schedule_names[] = {"constant", "step", "cosine"};

int dl_schedule_parse_kind(const char *name, dl_schedule_kind *kind)
{
    for (size_t i = 0; i < DL_ARRAY_LEN(schedule_names); i++)
        if (strcmp(name, schedule_names[i]) == 0) {
            *kind = (dl_schedule_kind)i;
            return 1;
        }
    return 0;
}

const char *dl_schedule_kind_name(dl_schedule_kind kind) { return schedule_names[kind]; }

double dl_schedule_lr(const dl_schedule *s, double progress)
{
    if (s->warmup_epochs > 0 && progress < s->warmup_epochs)
        return s->base_lr * progress / s->warmup_epochs;
    switch (s->kind) {
    case DL_SCHED_STEP: {
        double lr = s->base_lr;
        for (int i = 0; i < s->n_milestones; i++)
            if (progress >= s->milestones[i])
                lr *= s->gamma;
        return lr;
    }
    case DL_SCHED_COSINE: {
        double span = s->total_epochs - s->warmup_epochs;
        double t = span > 0 ? (progress - s->warmup_epochs) / span : 1.0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        return s->base_lr * 0.5 * (1.0 + cos(3.14159265358979323846 * t));
    }
    default:
        return s->base_lr;
    }
}

dl_status dl_sgd_init(dl_sgd *opt, dl_device *dev, size_t n, float momentum, float weight_decay,
                      int nesterov)
{
    memset(opt, 0, sizeof *opt);
    opt->dev = dev, opt->n = n;
    opt->momentum = momentum, opt->weight_decay = weight_decay, opt->nesterov = nesterov;
    opt->velocity = dev->alloc(dev, sizeof(float) * (n + 1), "optimizer momentum");
    if (!opt->velocity)
        return DL_ERR_OOM;
    dev->fill(dev, opt->velocity, n, 0.0f);
    return DL_OK;
}

void dl_sgd_step(dl_sgd *opt, float *params, const float *grads, float lr)
{
    dl_sgd_args a = {lr, opt->momentum, opt->weight_decay, opt->nesterov};
    opt->dev->sgd_update(opt->dev, &a, params, grads, opt->velocity, opt->n);
}

void dl_sgd_free(dl_sgd *opt)
{
    if (opt->dev)
        opt->dev->free(opt->dev, opt->velocity);
    memset(opt, 0, sizeof *opt);
}
