/* train.c: the training loop of `dltrain train`.
 *
 * One step: wait for the loader's next batch (prefetched on a thread while
 * the previous step ran), upload it, forward, loss, backward (gradients
 * land in the flat gradient buffer, last layer first), average gradients
 * across ranks, SGD update of the flat parameter buffer.
 *
 * The loss is read one step late: step k queues its loss statistics for an
 * asynchronous read and the host reads them during step k+1, once that
 * step's forward and backward are queued, so a GPU never idles while the
 * host waits for a forward to end.  Every step's figures are still logged,
 * in order, with the numbers a read right after forward gives (--sync-loss
 * does that, for comparison); before a checkpoint, an evaluation, the end
 * of an epoch or a stop the last step's loss is read ("flushed").  A NaN
 * loss therefore stops training one step later than it happened: after
 * that step's update and the next step's forward and backward, before the
 * next update, and never after a checkpoint (docs/gpu.md). */
#define _POSIX_C_SOURCE 200809L
#include "train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../comm/bucket.h"
#include "../models/models.h"
#include "../runtime/checkpoint.h"
#include "../runtime/loader.h"
#include "../runtime/optim.h"
#include "../runtime/trace.h"
#include "metrics.h"
#include "step.h"
#include "train_compress.h"
#include "train_loss.h"
#include "train_sync.h"

/* Set from the signal handler; a signal can only reach the process as a
 * whole, so this is the one process-wide flag dltrain keeps. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

typedef struct trainer {
    const dl_train_opts *o;
    dl_ctx *ctx;
    const dl_model *model;
    dl_dataset train, test;
    dl_net net;
    dl_sgd opt;
    dl_schedule sched;
    dl_loader train_ld, test_ld;
    dl_progress prog;
    dl_metrics metrics;
    dl_buckets buckets;
    dl_train_compress compress; /* --compress: codec, residuals (train_compress.h) */
    dl_tracer *trace; /* NULL unless --trace */
    char ckpt_path[600];
    long steps_per_epoch;
    double last_lr;
    double bucket_mb; /* --bucket-mb, or the default for this model */
    dl_loss_reads loss; /* each step's loss, read one step late; the stop votes */
} trainer;

static int fail(const trainer *t, int code)
{
    if (t->ctx->world > 1)
        fprintf(stderr, "dltrain rank %d: %s\n", t->ctx->rank, dl_error_message());
    else
        fprintf(stderr, "dltrain: %s\n", dl_error_message());
    return code;
}

/* Stops the loader threads (they record into the trace), writes the trace
 * and ends tracing; returns rc, or an error status if the write failed. */
static int write_trace(trainer *t, int rc)
{
    if (!t->trace)
        return rc;
    dl_loader_free(&t->train_ld);
    dl_loader_free(&t->test_ld);
    dl_status st = dl_trace_write(t->trace, t->o->trace_dir);
    size_t events = dl_trace_events(t->trace), dropped = dl_trace_dropped(t->trace);
    dl_trace_free(t->trace);
    t->trace = t->net.trace = t->loss.trace = NULL;
    if (st != DL_OK) {
        fail(t, DL_EXIT_ERROR);
        return rc ? rc : DL_EXIT_ERROR;
    }
    if (t->ctx->verbose) {
        printf("trace: %s/trace-rank-%d.json, %zu events", t->o->trace_dir, t->ctx->rank, events);
        if (dropped)
            printf(" (%zu dropped: buffer full)", dropped);
        printf("; open it in ui.perfetto.dev or chrome://tracing\n");
    }
    return rc;
}

/* A failure only this rank knows about: the others would wait for it, so the
 * whole job ends here (with this rank's trace written first). */
static int fail_alone(trainer *t, int code)
{
    fail(t, code);
    if (t->ctx->world > 1) {
        write_trace(t, code);
        t->ctx->comm->abort(t->ctx->comm, code);
    }
    return code;
}

/* Gradients go through the comm backend on several ranks, and on one rank
 * under --comm nccl, which then runs the whole NCCL path on one GPU (the
 * average of one rank is skipped otherwise). */
static int averages_gradients(const trainer *t)
{
    return t->ctx->world > 1 || strcmp(t->ctx->comm->name, "nccl") == 0 || t->compress.active;
}

static dl_status make_schedule(trainer *t)
{
    const dl_train_opts *o = t->o;
    dl_schedule *s = &t->sched;
    memset(s, 0, sizeof *s);
    dl_schedule_parse_kind(o->schedule, &s->kind);
    s->base_lr = o->scale_lr ? o->lr * t->ctx->world : o->lr;
    s->warmup_epochs = o->warmup_epochs;
    s->total_epochs = o->epochs;
    s->gamma = o->lr_gamma;
    if (s->kind == DL_SCHED_STEP && !o->lr_steps[0]) {
        s->n_milestones = 2;
        s->milestones[0] = 0.5 * o->epochs;
        s->milestones[1] = 0.75 * o->epochs;
    } else if (o->lr_steps[0] && !dl_train_milestones(o->lr_steps, s)) {
        return dl_fail(DL_ERR_ARG, "bad --lr-steps '%s'", o->lr_steps);
    }
    return DL_OK;
}

static dl_status setup_data_and_model(trainer *t)
{
    const dl_train_opts *o = t->o;
    dl_status st = dl_data_open(o->data, (uint64_t)o->seed, &t->train, &t->test);
    if (st != DL_OK)
        return st;
    if (o->train_samples > 0 && (size_t)o->train_samples < t->train.n)
        t->train.n = (size_t)o->train_samples;
    t->model = dl_model_find(o->model);
    st = dl_model_build(t->model, &t->net, t->train.c, t->train.h, t->train.w, t->train.classes);
    if (st != DL_OK)
        return st;
    /* Evaluation batches go through the same arena: size it for the larger. */
    int max_batch = DL_MAX(o->batch, o->eval_batch);
    return dl_net_finalize(&t->net, t->ctx->dev, max_batch, (uint64_t)o->seed);
}

static dl_status resume_or_start(trainer *t)
{
    const dl_train_opts *o = t->o;
    memset(&t->prog, 0, sizeof t->prog);
    t->prog.seed = (uint64_t)o->seed;
    /* Rank 0 reads the checkpoint and shares it (dl_train_share_state), so
     * only its file system needs the file. */
    if (!o->resume[0] || t->ctx->rank != 0)
        return DL_OK;
    dl_status st = dl_checkpoint_load_extra(o->resume, t->model->name, &t->net, t->opt.velocity,
                                            &t->prog, &t->compress.loaded);
    if (st == DL_OK)
        st = dl_train_compress_check_resume(&t->compress, o->resume, t->ctx->world,
                                            t->ctx->verbose);
    if (st == DL_OK)
        st = dl_checkpoint_check_position(o->resume, &t->prog, t->train.n);
    if (st == DL_OK && t->ctx->verbose && t->prog.seed != (uint64_t)o->seed)
        printf("note: continuing with the checkpoint's seed %llu for the data order\n",
               (unsigned long long)t->prog.seed);
    return st;
}

/* The trace directory is made now, so a bad --trace fails before training. */
static dl_status setup_trace(trainer *t)
{
    dl_status st = dl_make_dirs(t->o->trace_dir);
    /* per step: a span per layer each way, one per bucket, a dozen for the step */
    size_t per_step = 4 * (size_t)t->net.n_layers + 2 * (size_t)t->buckets.count + 32;
    if (st == DL_OK)
        st = dl_trace_init(&t->trace, t->ctx->rank, t->o->trace_steps, 1, per_step);
    if (st != DL_OK)
        return st;
    t->net.trace = t->trace;
    t->train_ld.trace = t->test_ld.trace = t->trace;
    t->train_ld.trace_track = DL_TRACK_DATA;
    t->test_ld.trace_track = DL_TRACK_EVAL_DATA;
    return DL_OK;
}

static dl_status setup(trainer *t)
{
    const dl_train_opts *o = t->o;
    dl_status st = make_schedule(t);
    snprintf(t->ckpt_path, sizeof t->ckpt_path, "%s/checkpoint.bin", o->out_dir);
    if (st == DL_OK && t->ctx->rank == 0)
        st = dl_make_dirs(o->out_dir);
    if (st == DL_OK && t->ctx->rank == 0)
        st = dl_checkpoint_prepare(t->ckpt_path);
    if (st == DL_OK)
        st = setup_data_and_model(t);
    if (st == DL_OK)
        st = dl_sgd_init(&t->opt, t->ctx->dev, t->net.n_params, (float)o->momentum,
                         (float)o->weight_decay, o->nesterov);
    if (st == DL_OK)
        st = resume_or_start(t);
    if (st != DL_OK)
        return st;
    int rank = t->ctx->rank, world = t->ctx->world;
    st = dl_loader_init(&t->train_ld, &t->train, o->batch, rank, world, t->prog.seed, 1, o->augment);
    if (st == DL_OK)
        st = dl_loader_init(&t->test_ld, &t->test, o->eval_batch ? o->eval_batch : o->batch, rank,
                            world, t->prog.seed, 0, 0);
    t->steps_per_epoch = dl_loader_steps_per_epoch(&t->train_ld);
    t->bucket_mb = o->bucket_mb > 0 ? o->bucket_mb : dl_buckets_default_mb(t->net.n_params);
    if (st == DL_OK && averages_gradients(t))
        st = dl_buckets_init(&t->buckets, t->ctx->comm, t->net.grads, t->net.n_params,
                             (size_t)(t->bucket_mb * 1048576.0 / sizeof(float)));
    if (st == DL_OK)
        st = dl_train_compress_setup(&t->compress, &t->buckets, t->ctx, &t->net,
                                     (uint64_t)o->seed);
    t->compress.from_step = (uint64_t)ceil(o->compress_warmup_epochs * t->steps_per_epoch);
    if (st == DL_OK && o->trace_dir[0])
        st = setup_trace(t);
    return st;
}

static void print_start(trainer *t)
{
    const dl_train_opts *o = t->o;
    const dl_net *net = &t->net;
    if (!t->ctx->verbose)
        return;
    printf("dltrain %s: model %s on %s (%dx%dx%d, %d classes; %zu train, %zu test samples)\n",
           DLTRAIN_VERSION, o->model, t->train.source, net->in_c, net->in_h, net->in_w,
           net->classes, t->train.n, t->test.n);
    printf("  device %s\n", t->ctx->device_note[0] ? t->ctx->device_note : t->ctx->dev->name);
    printf("  %d rank(s), comm %s; batch %d per rank, %d global; %ld steps per epoch\n",
           t->ctx->world, t->ctx->comm_note[0] ? t->ctx->comm_note : t->ctx->comm->name, o->batch,
           o->batch * t->ctx->world, t->steps_per_epoch);
    printf("  %zu parameters (%.1f MB), %.1f MFLOP per sample per training step\n",
           net->n_trainable, 4e-6 * (double)net->n_trainable, 6e-6 * dl_net_macs_per_sample(net));
    if (t->ctx->placement[0])
        printf("  %s\n", t->ctx->placement);
    if (t->ctx->layout[0])
        printf("  %s\n", t->ctx->layout);
    if (t->ctx->world > 1)
        printf("  global batch %d = %d ranks x %d; gradients averaged in %d bucket(s) of <= %g MB, "
               "%s%s%s; lr %s\n", o->batch * t->ctx->world, t->ctx->world, o->batch,
               t->buckets.count, t->bucket_mb,
               o->no_overlap ? "after backward (--no-overlap)" : "overlapping backward",
               t->ctx->allreduce_note[0] ? ", all-reduce " : "", t->ctx->allreduce_note,
               o->scale_lr ? "scaled by the number of ranks (--scale-lr)"
                           : "not scaled (--scale-lr applies the linear scaling rule)");
    printf("  SGD lr %g momentum %g%s weight decay %g, %s schedule, warm-up %g epochs, seed %ld\n",
           t->sched.base_lr, o->momentum, o->nesterov ? " (Nesterov)" : "", o->weight_decay,
           o->schedule,
           o->warmup_epochs, o->seed);
    dl_train_compress_summary(&t->compress, &t->buckets, t->ctx, &t->metrics);
    if (t->prog.step)
        printf("  resuming from %s at epoch %lld, sample %llu (step %llu)\n", o->resume,
               (long long)t->prog.epoch + 1, (unsigned long long)t->prog.epoch_pos,
               (unsigned long long)t->prog.step);
    fflush(stdout);
}

/* A slow disk is not a lost rank: while rank 0 writes, the others wait up to
 * this long, as long as every rank answers the backend's roll calls. */
#define CHECKPOINT_PATIENCE_S 3600.0

/* Collective.  Under --compress every rank's residual goes into rank 0's
 * file first.  Rank 0 writes alone; the others wait for it in a barrier, not
 * in the next step's gradient all-reduce (where the NCCL watchdog would give
 * up after --timeout), and that barrier is patient: --timeout still finds a
 * rank that died or stopped, but a live rank 0 may take longer (comm.h). */
static dl_status save_checkpoint(trainer *t)
{
    dl_ckpt_extra extra = {0};
    if (t->compress.active) {
        dl_status st = dl_train_compress_gather(&t->compress, t->ctx, &extra);
        if (st != DL_OK)
            return st;
    }
    dl_comm *c = t->ctx->comm;
    int shared = t->ctx->world > 1;
    if (shared)
        dl_comm_set_patience(c, CHECKPOINT_PATIENCE_S);
    dl_status st = DL_OK;
    if (t->ctx->rank == 0) {
        dl_trace_begin(t->trace, DL_TRACK_COMPUTE, "io", "checkpoint");
        st = dl_checkpoint_save_extra(t->ckpt_path, t->model->name, &t->net, t->opt.velocity,
                                      &t->prog, t->compress.active ? &extra : NULL);
        dl_trace_end(t->trace, DL_TRACK_COMPUTE);
    }
    free(extra.data);
    if (st == DL_OK && shared)
        st = c->barrier(c);
    if (shared)
        dl_comm_set_patience(c, 0);
    return st;
}

typedef enum { STEP_OK, STEP_NONFINITE, STEP_COMM_ERROR } step_result;

static void optimizer_step(trainer *t, double lr, dl_phase_times *tm)
{
    dl_net *net = &t->net;
    double t4 = dl_now();
    t->last_lr = lr;
    dl_trace_begin_args(t->trace, DL_TRACK_COMPUTE, "step", "optimizer", "\"lr\":%.6g", t->last_lr);
    dl_sgd_step(&t->opt, net->params, net->grads, (float)t->last_lr);
    if (t->trace) /* on a GPU, so the span covers the update's kernels */
        net->dev->sync(net->dev);
    dl_trace_end(t->trace, DL_TRACK_COMPUTE);
    tm->optimizer += dl_now() - t4;
}

/* One training step on batch b, the in_epoch-th of its epoch; adds its
 * phase times to tm.  *read: the step whose loss was read and voted on
 * (train_loss.h dl_loss_vote). */
static step_result train_step(trainer *t, const dl_batch *b, long in_epoch, dl_phase_times *tm,
                              dl_step_record *read)
{
    dl_net *net = &t->net;
    size_t per = (size_t)t->train.c * t->train.h * t->train.w;
    dl_trace_begin_args(t->trace, DL_TRACK_COMPUTE, "data", "upload", "\"samples\":%d,\"bytes\":%zu",
                        b->n, (size_t)b->n * (per * sizeof(float) + sizeof(int32_t)));
    dl_net_set_batch(net, b->images, b->labels, b->n);
    dl_trace_end(t->trace, DL_TRACK_COMPUTE);
    double progress = (double)t->prog.epoch + (double)b->end_pos / (double)t->train.n;
    dl_step_record cur = dl_loss_begin_step(&t->loss, b->n, (int)t->prog.epoch, in_epoch,
                                            t->prog.step + 1, dl_schedule_lr(&t->sched, progress));
    dl_train_compress_step(&t->compress, &t->buckets, t->prog.step);
    dl_stepper stepper = {.net = net, .buckets = averages_gradients(t) ? &t->buckets : NULL,
                          .overlap = !t->o->no_overlap, .trace = t->trace,
                          .loss_slot = cur.slot, .loss_now = t->loss.sync};
    memset(read, 0, sizeof *read);
    if (dl_step_forward_backward(&stepper, tm) != DL_OK)
        return STEP_COMM_ERROR;
    /* 1-bit and PowerSGD decode the padding's zeros as something else */
    if (t->compress.active)
        dl_net_zero_padding(net, net->grads);
    dl_vote_result v = dl_loss_vote(&t->loss, &cur, stepper.loss_sum, stop_requested, tm, read);
    if (v != DL_VOTE_OK)
        return v == DL_VOTE_NONFINITE ? STEP_NONFINITE : STEP_COMM_ERROR;
    optimizer_step(t, cur.lr, tm);
    dl_loss_end_step(&t->loss, &cur, read);
    t->prog.epoch_pos = b->end_pos;
    t->prog.samples_seen += (uint64_t)b->n * (uint64_t)t->ctx->world;
    t->prog.step++;
    return STEP_OK;
}

typedef enum { EPOCH_DONE, EPOCH_STOPPED, EPOCH_NONFINITE, EPOCH_FAILED } epoch_result;

static epoch_result report_nonfinite(trainer *t, const dl_step_record *r)
{
    if (t->ctx->rank != 0)
        return EPOCH_NONFINITE;
    fprintf(stderr,
            "dltrain: loss became %s at epoch %d step %llu (lr %g): stopping; the last good "
            "checkpoint %s is left as it was\n",
            isnan(r->loss) ? "NaN" : "infinite", r->epoch + 1, (unsigned long long)r->step,
            r->lr, t->ckpt_path);
    return EPOCH_NONFINITE;
}

/* What the steps of one train_epoch call share. */
typedef struct epoch_run {
    dl_epoch_summary *e;
    long first_step; /* steps of the epoch done before this call (resume) */
    double start, loss_sum;
    size_t global; /* samples per step over all ranks */
} epoch_run;

/* The JSON line and the progress line of a step whose loss has been read:
 * the same figures, in the same order, as if each step read its own. */
static void log_step(trainer *t, epoch_run *er, const dl_step_record *r)
{
    if (!r->step)
        return;
    er->loss_sum += r->loss;
    if (!t->ctx->verbose)
        return;
    long steps = t->steps_per_epoch;
    if (r->step % (unsigned long)t->o->log_every == 0 || r->in_epoch == steps)
        dl_metrics_step_json(&t->metrics, r->epoch, (long)r->step, r->loss, r->lr);
    double el = dl_now() - er->start, done = (double)(r->in_epoch - er->first_step);
    dl_metrics_progress(&t->metrics, r->epoch, r->in_epoch, steps, r->loss,
                        done * er->global / el, el / done * (double)(steps - r->in_epoch));
}

/* Flushes and logs the pending step: EPOCH_DONE, or why the epoch ends. */
static epoch_result flush_and_log(trainer *t, epoch_run *er)
{
    dl_step_record read;
    dl_vote_result r = dl_loss_flush(&t->loss, &er->e->t, &read);
    if (r == DL_VOTE_NONFINITE)
        return report_nonfinite(t, &read);
    if (r == DL_VOTE_COMM_ERROR)
        return (fail_alone(t, DL_EXIT_ERROR), EPOCH_FAILED);
    log_step(t, er, &read);
    return EPOCH_DONE;
}

static epoch_result train_epoch(trainer *t, dl_epoch_summary *e)
{
    const dl_train_opts *o = t->o;
    epoch_run er = {.e = e, .global = (size_t)o->batch * t->ctx->world, .start = dl_now()};
    er.first_step = (long)(t->prog.epoch_pos / er.global);
    long step = er.first_step;
    dl_loader_start_epoch(&t->train_ld, (int)t->prog.epoch, t->prog.epoch_pos);
    while (dl_loader_has_next(&t->train_ld)) {
        dl_trace_next_step(t->trace);
        dl_trace_begin_args(t->trace, DL_TRACK_COMPUTE, "step", "step", "\"step\":%llu",
                            (unsigned long long)t->prog.step + 1);
        double w = dl_now();
        dl_trace_begin(t->trace, DL_TRACK_COMPUTE, "data", "data wait");
        const dl_batch *b = dl_loader_next(&t->train_ld);
        dl_trace_end(t->trace, DL_TRACK_COMPUTE);
        e->t.data += dl_now() - w;
        dl_step_record read = {0};
        step_result r = b ? train_step(t, b, step + 1, &e->t, &read) : STEP_OK;
        dl_trace_end(t->trace, DL_TRACK_COMPUTE);
        if (!b)
            break;
        if (r == STEP_NONFINITE)
            return report_nonfinite(t, &read);
        if (r == STEP_COMM_ERROR)
            return (fail_alone(t, DL_EXIT_ERROR), EPOCH_FAILED);
        log_step(t, &er, &read);
        step++;
        int ckpt_due = o->checkpoint_every && t->prog.step % (unsigned long)o->checkpoint_every == 0;
        int stop = t->loss.stop_votes || (o->max_steps && t->prog.step >= (uint64_t)o->max_steps);
        if (o->check_every && t->prog.step % (unsigned long)o->check_every == 0 &&
            dl_train_check_replicas(t->ctx, &t->net, (long)t->prog.step) != 0)
            return EPOCH_FAILED;
        if (ckpt_due || stop) {
            epoch_result fr = flush_and_log(t, &er);
            if (fr != EPOCH_DONE)
                return fr;
        }
        if ((ckpt_due || stop) && step < t->steps_per_epoch) {
            dl_status st = save_checkpoint(t);
            if (st != DL_OK)
                return (fail_alone(t, st == DL_ERR_NUMERIC ? DL_EXIT_NUMERIC : DL_EXIT_ERROR),
                        st == DL_ERR_NUMERIC ? EPOCH_NONFINITE : EPOCH_FAILED);
        }
        if (stop && step < t->steps_per_epoch)
            return EPOCH_STOPPED;
    }
    epoch_result fr = flush_and_log(t, &er);
    if (fr != EPOCH_DONE)
        return fr;
    e->steps = step - er.first_step;
    e->train_loss = e->steps ? er.loss_sum / (double)e->steps : NAN;
    e->seconds = dl_now() - er.start;
    e->images_per_s = (double)e->steps * er.global / e->seconds;
    return EPOCH_DONE;
}

static int finish_epoch(trainer *t, dl_epoch_summary *e)
{
    double sums[1] = {e->train_loss};
    if (t->ctx->comm->allreduce_sum_f64(t->ctx->comm, sums, 1) != DL_OK)
        return fail(t, 1);
    e->train_loss = sums[0] / t->ctx->world;
    if (dl_loss_evaluate(&t->loss, &t->test_ld, t->test.n, &e->test_loss, &e->test_acc) != DL_OK)
        return fail(t, 1);
    e->epoch = (int)t->prog.epoch;
    e->epochs = t->o->epochs;
    e->lr = t->last_lr;
    t->prog.epoch++;
    t->prog.epoch_pos = 0;
    if (t->ctx->verbose)
        dl_metrics_epoch(&t->metrics, e);
    dl_status st = save_checkpoint(t);
    if (st != DL_OK)
        return fail_alone(t, st == DL_ERR_NUMERIC ? DL_EXIT_NUMERIC : DL_EXIT_ERROR);
    return 0;
}

static int train_loop(trainer *t)
{
    const dl_train_opts *o = t->o;
    double acc = NAN, test_loss = NAN;
    while (t->prog.epoch < o->epochs) {
        dl_epoch_summary e;
        memset(&e, 0, sizeof e);
        epoch_result r = train_epoch(t, &e);
        if (r == EPOCH_NONFINITE)
            return DL_EXIT_NUMERIC;
        if (r == EPOCH_FAILED)
            return DL_EXIT_ERROR;
        if (r == EPOCH_STOPPED) {
            if (t->ctx->verbose)
                printf("stopped after step %llu%s; checkpoint %s (continue with --resume %s)\n",
                       (unsigned long long)t->prog.step, t->loss.stop_votes ? " on a signal" : "",
                       t->ckpt_path, t->ckpt_path);
            if (dl_train_check_replicas(t->ctx, &t->net, (long)t->prog.step) != 0)
                return DL_EXIT_ERROR;
            return t->loss.stop_votes ? DL_EXIT_INTERRUPTED : DL_EXIT_OK;
        }
        int rc = finish_epoch(t, &e);
        if (rc)
            return rc;
        acc = e.test_acc, test_loss = e.test_loss;
        if (o->max_steps && t->prog.step >= (uint64_t)o->max_steps)
            break;
    }
    if (isnan(acc) && dl_loss_evaluate(&t->loss, &t->test_ld, t->test.n, &test_loss, &acc) != DL_OK)
        return fail(t, 1);
    if (dl_train_check_replicas(t->ctx, &t->net, (long)t->prog.step) != 0)
        return DL_EXIT_ERROR;
    if (t->ctx->verbose) {
        printf("final test accuracy %.2f%% (test loss %.4f) after %lld epochs, %llu steps\n",
               100.0 * acc, test_loss, (long long)t->prog.epoch, (unsigned long long)t->prog.step);
        char body[160];
        snprintf(body, sizeof body, "\"type\":\"final\",\"test_acc\":%.6f,\"test_loss\":%.9g,\"steps\":%llu",
                 acc, test_loss, (unsigned long long)t->prog.step);
        dl_metrics_json_line(&t->metrics, body);
    }
    return DL_EXIT_OK;
}

static int teardown(trainer *t, int rc)
{
    rc = write_trace(t, rc);
    dl_buckets_free(&t->buckets);
    dl_train_compress_free(&t->compress);
    dl_loader_free(&t->train_ld);
    dl_loader_free(&t->test_ld);
    dl_sgd_free(&t->opt);
    dl_net_free(&t->net);
    dl_dataset_free(&t->train);
    dl_dataset_free(&t->test);
    dl_metrics_close(&t->metrics);
    return rc;
}

static void catch_stop_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Start-up is collective: a rank that fails (missing data, bad checkpoint)
 * says why, and every rank stops instead of waiting for it. */
static int start(trainer *t)
{
    int rc = dl_train_agree_options(t->ctx, t->o);
    if (rc)
        return rc;
    dl_status st = setup(t);
    if (st == DL_OK && t->ctx->verbose &&
        dl_metrics_open(&t->metrics, t->ctx->rank == 0 ? t->o->json : "",
                        t->ctx->is_tty && !t->o->no_progress))
        st = dl_fail(DL_ERR_IO, "cannot write metrics file %s: %s", t->o->json, strerror(errno));
    /* Bad options and bad input files (a corrupt checkpoint, a malformed IDX
     * file, a missing data directory) exit 2, as README says. */
    int bad_input = st == DL_ERR_ARG || st == DL_ERR_FORMAT;
    rc = st == DL_OK ? 0 : fail(t, bad_input ? DL_EXIT_USAGE : DL_EXIT_ERROR);
    rc = dl_train_agree_start(t->ctx, rc, "during start-up");
    if (rc)
        return rc;
    rc = dl_train_share_state(t->ctx, &t->net, t->opt.velocity, &t->prog, &t->train, &t->test);
    if (rc == 0 && dl_train_compress_share(&t->compress, t->ctx) != DL_OK)
        rc = fail_alone(t, DL_EXIT_ERROR);
    return rc;
}

int dl_train_run(const dl_train_opts *o, dl_ctx *ctx)
{
    trainer t;
    memset(&t, 0, sizeof t);
    t.o = o, t.ctx = ctx;
    dl_compress_parse(o->compress, &t.compress.spec); /* checked with the other options */
    t.compress.active = t.compress.spec.kind != DL_COMPRESS_NONE;
    int rc = start(&t);
    t.loss = (dl_loss_reads){.net = &t.net, .comm = ctx->comm, .trace = t.trace,
                             .sync = o->sync_loss};
    if (rc == 0) {
        print_start(&t);
        catch_stop_signals();
        rc = train_loop(&t);
    }
    return teardown(&t, rc);
}
