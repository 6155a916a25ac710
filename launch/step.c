/* step.c: forward, loss, and backward with the gradient all-reduce. */
#include "step.h"

#include <stddef.h>
#include <stdlib.h>

#include "../runtime/common.h"

/* Device mark k of this step (see dl_stepper.mark_next). */
static void step_mark(dl_stepper *s, int k)
{
    if (s->mark_next && s->net->dev->mark)
        s->net->dev->mark(s->net->dev, *s->mark_next + k);
}

/* Each bucket's all-reduce from its start to when the backend finished it. */
static void trace_buckets(const dl_stepper *s)
{
    const dl_buckets *b = s->buckets;
    for (int i = 0; i < b->count; i++)
        dl_trace_bucket(s->trace, i, b->start_at[i], b->done_at[i],
                        b->end[i] - (i ? b->end[i - 1] : 0));
}

/* Backward with the gradient all-reduce: buckets start while backward runs
 * (or after it, without overlap); returns once every bucket is averaged. */
static dl_status backward_and_reduce(dl_stepper *s, dl_phase_times *tm)
{
    dl_net *net = s->net;
    if (s->buckets) {
        dl_buckets_begin_step(s->buckets);
        net->on_grads_ready = s->overlap ? dl_buckets_ready : NULL;
        net->on_grads_ready_user = s->buckets;
    }
    double t1 = dl_now();
    dl_trace_begin(s->trace, DL_TRACK_COMPUTE, "step", "backward");
    dl_net_backward(net);
    dl_trace_end(s->trace, DL_TRACK_COMPUTE);
    step_mark(s, 2);
    double t2 = dl_now();
    tm->backward += t2 - t1;
    if (!s->buckets)
        return DL_OK;
    double last_done;
    /* the exposed part of the all-reduce: what backward did not hide */
    dl_trace_begin_args(s->trace, DL_TRACK_COMPUTE, "comm", "all-reduce wait",
                        "\"buckets\":%d,\"overlap\":%d", s->buckets->count, s->overlap);
    dl_status st = dl_buckets_finish(s->buckets, &last_done);
    dl_trace_end(s->trace, DL_TRACK_COMPUTE);
    trace_buckets(s);
    tm->comm += last_done - s->buckets->first_start;
    tm->exposed_comm += dl_now() - t2;
    return st;
}

void dl_step_gpu_times(dl_device *dev, int first, int steps, dl_phase_times *tm)
{
    for (int i = 0; i < steps; i++) {
        int m = first + i * DL_STEP_MARKS;
        tm->forward += 1e-3 * dev->mark_ms(dev, m, m + 1);
        tm->backward += 1e-3 * dev->mark_ms(dev, m + 1, m + 2);
        tm->exposed_comm += 1e-3 * dev->mark_ms(dev, m + 2, m + 3);
        tm->optimizer += 1e-3 * dev->mark_ms(dev, m + 3, m + DL_STEP_MARKS);
    }
}

dl_status dl_step_forward_backward(dl_stepper *s, dl_phase_times *tm)
{
    step_mark(s, 0);
    double t0 = dl_now();
    dl_trace_begin_args(s->trace, DL_TRACK_COMPUTE, "step", "forward", "\"batch\":%d",
                        s->net->batch);
    dl_net_forward(s->net, 1);
    dl_trace_end(s->trace, DL_TRACK_COMPUTE);
    dl_trace_begin(s->trace, DL_TRACK_COMPUTE, "step", "loss");
    dl_net_loss_start(s->net, s->loss_slot);
    if (s->loss_now)
        dl_net_loss_finish(s->net, s->loss_slot, &s->loss_sum, &s->correct);
    dl_trace_end(s->trace, DL_TRACK_COMPUTE);
    tm->forward += dl_now() - t0;
    step_mark(s, 1);
    dl_status st = backward_and_reduce(s, tm);
    step_mark(s, 3);
    if (s->mark_next)
        *s->mark_next += DL_STEP_MARKS;
    return st;
}

dl_status dl_step_load_fixed_batch(dl_net *net, const dl_dataset *ds, int batch)
{
    size_t per = (size_t)ds->c * ds->h * ds->w;
    float *x = dl_alloc(sizeof(float) * per * batch, "fixed batch");
    int32_t *y = dl_alloc(sizeof(int32_t) * batch, "fixed batch labels");
    if (!x || !y) {
        free(x), free(y);
        return DL_ERR_OOM;
    }
    for (int i = 0; i < batch; i++)
        dl_dataset_sample(ds, (size_t)i % ds->n, x + per * i, &y[i], 0, NULL);
    dl_net_set_batch(net, x, y, batch);
    free(x), free(y);
    return DL_OK;
}
