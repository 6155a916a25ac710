/* scale_measure.c: timing the training step on one group of ranks.
 *
 * Every repeat starts after a barrier of the group and ends when the device
 * has finished its work (on a GPU the host runs ahead: its clock alone would
 * time the queueing); its time is the slowest member's, so global images/s =
 * steps x batch x ranks / that time.  Phase times (step.c) are averaged over
 * the members; on a GPU forward, backward, exposed comm and optimizer are
 * device times between events on the compute stream (device.h marks), and
 * comm stays the host's span from the first bucket's start to the last wait. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../comm/bucket.h"
#include "scale.h"
#include "step.h"

static dl_status run_steps(scale_run *r, dl_stepper *s, int steps, dl_phase_times *tm)
{
    for (int i = 0; i < steps; i++) {
        dl_status st = dl_step_forward_backward(s, tm);
        if (st != DL_OK)
            return st;
        double t0 = dl_now();
        dl_sgd_step(&r->opt, r->net.params, r->net.grads, 0.01f);
        tm->optimizer += dl_now() - t0;
    }
    return DL_OK;
}

/* The group's times: shared[rep * n + rank] each member's repeat time, then
 * the phase sums; summed over the group, so the maxima and means follow. */
static void summarize(const scale_run *r, const dl_comm *g, const double *shared, scale_point *p)
{
    const scale_opts *o = r->o;
    int n = g->world, reps = o->repeats;
    double sum_max = 0;
    for (int k = 0; k < reps; k++) {
        double worst = 0;
        for (int m = 0; m < n; m++)
            worst = worst > shared[k * n + m] ? worst : shared[k * n + m];
        p->ips[k] = worst > 0 ? (double)o->steps * o->batch * n / worst : 0;
        sum_max += worst;
    }
    p->n_repeats = reps;
    double sorted[DL_SCALE_MAX_REPEATS];
    memcpy(sorted, p->ips, sizeof(double) * (size_t)reps);
    dl_sort_doubles(sorted, (size_t)reps);
    p->ips_median = reps % 2 ? sorted[reps / 2] : 0.5 * (sorted[reps / 2 - 1] + sorted[reps / 2]);
    p->ips_min = sorted[0], p->ips_max = sorted[reps - 1];
    double per_step = 1e3 / ((double)o->steps * reps), per_member = per_step / n;
    const double *ph = shared + reps * n;
    p->step_ms = sum_max * per_step;
    p->forward_ms = ph[0] * per_member, p->backward_ms = ph[1] * per_member;
    p->compute_ms = p->forward_ms + p->backward_ms;
    p->comm_ms = ph[2] * per_member, p->exposed_comm_ms = ph[3] * per_member;
    p->optimizer_ms = ph[4] * per_member;
    p->data_ms = 0;
}

static void label_group(const scale_run *r, const dl_comm *g, scale_point *p)
{
    char who[48];
    if (g->world == 1)
        snprintf(who, sizeof who, "rank 0");
    else
        snprintf(who, sizeof who, "ranks 0-%d", g->world - 1);
    const char *where = g->local_size == g->world ? "one node" : "several nodes";
    if (r->ctx->dev->kind == DL_DEVICE_CUDA) {
        snprintf(p->label, sizeof p->label, "%s: %d GPU%s, %s", who, g->world,
                 g->world == 1 ? "" : "s", where);
        return;
    }
    snprintf(p->label, sizeof p->label, "%s: %d CPU process%s x %d thread%s, %s%s", who, g->world,
             g->world == 1 ? "" : "es", r->threads, r->threads == 1 ? "" : "s", where,
             r->n_gpus ? " (GPUs present, not used by this CPU run)" : "");
}

/* --compress: a compressor over this group's buckets (none: nothing to do). */
static dl_status setup_compression(scale_run *r, dl_buckets *b, dl_compressor *comp)
{
    dl_compress_spec spec;
    dl_status st = dl_compress_parse(r->o->compress, &spec);
    if (st != DL_OK || spec.kind == DL_COMPRESS_NONE)
        return st;
    int n_mats;
    dl_grad_matrix *mats = dl_net_grad_matrices_new(&r->net, &n_mats);
    st = mats ? dl_buckets_compress(b, comp, spec, (uint64_t)r->o->seed, r->ctx->dev, mats, n_mats)
              : DL_ERR_OOM;
    free(mats);
    return st;
}

static dl_status measure_group(scale_run *r, dl_comm *g, scale_point *p)
{
    const scale_opts *o = r->o;
    int n = g->world, reps = o->repeats;
    dl_buckets buckets;
    memset(&buckets, 0, sizeof buckets);
    dl_compressor comp;
    memset(&comp, 0, sizeof comp);
    dl_status st = DL_OK;
    if (n > 1)
        st = dl_buckets_init(&buckets, g, r->net.grads, r->net.n_params,
                             (size_t)(r->bucket_mb * 1048576.0 / sizeof(float)));
    if (st == DL_OK && n > 1)
        st = setup_compression(r, &buckets, &comp);
    size_t n_shared = (size_t)(reps * n + 5);
    double *shared = st == DL_OK ? dl_alloc_zero(sizeof(double) * n_shared, "group timings") : NULL;
    if (!shared) {
        dl_compressor_free(&comp);
        dl_buckets_free(&buckets);
        return st != DL_OK ? st : DL_ERR_OOM;
    }
    dl_device *dev = r->ctx->dev;
    dl_stepper s = {.net = &r->net, .buckets = n > 1 ? &buckets : NULL, .overlap = !o->no_overlap};
    dl_phase_times tm = {0}, gpu = {0};
    st = run_steps(r, &s, o->warmup, &tm);
    dev->sync(dev); /* the warm-up still queued on a GPU is no part of the first repeat */
    memset(&tm, 0, sizeof tm);
    int marks = dev->mark && o->steps * DL_STEP_MARKS + 1 <= DL_DEVICE_MARKS, next = 0;
    for (int k = 0; st == DL_OK && k < reps; k++) {
        st = g->barrier(g);
        next = 0;
        s.mark_next = marks ? &next : NULL;
        double t0 = dl_now();
        if (st == DL_OK)
            st = run_steps(r, &s, o->steps, &tm);
        if (marks)
            dev->mark(dev, next); /* the end of the last optimizer step */
        dev->sync(dev);
        shared[k * n + g->rank] = dl_now() - t0;
        if (st == DL_OK && marks)
            dl_step_gpu_times(dev, 0, o->steps, &gpu);
    }
    if (marks) { /* the device's times replace the host's queueing times */
        tm.forward = gpu.forward, tm.backward = gpu.backward;
        tm.exposed_comm = gpu.exposed_comm, tm.optimizer = gpu.optimizer;
    }
    double *ph = shared + reps * n;
    ph[0] = tm.forward, ph[1] = tm.backward, ph[2] = tm.comm, ph[3] = tm.exposed_comm;
    ph[4] = tm.optimizer;
    if (st == DL_OK)
        st = g->allreduce_sum_f64(g, shared, (int)n_shared);
    if (st == DL_OK && g->rank == 0) {
        p->ranks = n, p->first_rank = 0;
        summarize(r, g, shared, p);
        label_group(r, g, p);
    }
    free(shared);
    dl_compressor_free(&comp);
    dl_buckets_free(&buckets);
    return st;
}

static int in_list(const int *ranks, int n, int rank)
{
    for (int i = 0; i < n; i++)
        if (ranks[i] == rank)
            return i;
    return -1;
}

dl_status dl_scale_measure_ranks(scale_run *r, const int *ranks, int n, const char *label,
                                 scale_point *p)
{
    dl_comm *w = r->ctx->comm, *g = NULL;
    int pos = in_list(ranks, n, r->ctx->rank);
    dl_status st = w->split(w, pos >= 0 ? 0 : -1, pos, &g);
    if (st == DL_OK && g && g != w) {
        dl_allreduce_algo algo = strcmp(r->o->allreduce, "hier") == 0   ? DL_ALLREDUCE_HIER
                                 : strcmp(r->o->allreduce, "flat") == 0 ? DL_ALLREDUCE_FLAT
                                                                         : DL_ALLREDUCE_AUTO;
        char note[160];
        st = dl_comm_set_allreduce(g, algo, note, sizeof note);
    }
    if (st == DL_OK && g) {
        st = measure_group(r, g, p);
        if (g != w) /* the local backend's group is the world itself */
            g->free(g);
    }
    /* the idle ranks wait here while the group works */
    if (st == DL_OK)
        st = w->barrier(w);
    if (st == DL_OK && ranks[0] != 0)
        st = w->broadcast(w, p, sizeof *p, ranks[0]);
    if (st == DL_OK && r->ctx->rank == 0) {
        p->first_rank = ranks[0];
        if (label)
            snprintf(p->label, sizeof p->label, "%s", label);
    }
    return st;
}

dl_status dl_scale_measure(scale_run *r, int size, scale_point *p)
{
    int ranks[DL_SCALE_MAX_RANKS];
    if (size > DL_SCALE_MAX_RANKS)
        return dl_fail(DL_ERR_ARG, "groups of more than %d ranks are not supported",
                       DL_SCALE_MAX_RANKS);
    for (int i = 0; i < size; i++)
        ranks[i] = i;
    return dl_scale_measure_ranks(r, ranks, size, NULL, p);
}
