/* train_loss.c: each training step's loss, read one step late (train_loss.h). */
#include "train_loss.h"

#include <math.h>
#include <string.h>

#include "../runtime/common.h"

dl_step_record dl_loss_begin_step(dl_loss_reads *lr, int n, int epoch, long in_epoch,
                                  uint64_t step, double learning_rate)
{
    dl_step_record r = {.pending = 1, .slot = lr->next_slot, .n = n, .epoch = epoch,
                        .in_epoch = in_epoch, .step = step, .lr = learning_rate};
    lr->next_slot = (lr->next_slot + 1) % DL_NET_LOSS_SLOTS;
    return r;
}

/* This rank's loss sum of step r, waiting for its read if need be. */
static double read_sum(dl_loss_reads *lr, const dl_step_record *r)
{
    double sum;
    int correct;
    dl_trace_begin(lr->trace, DL_TRACK_COMPUTE, "step", "loss read");
    dl_net_loss_finish(lr->net, r->slot, &sum, &correct);
    dl_trace_end(lr->trace, DL_TRACK_COMPUTE);
    return sum;
}

/* Ranks decide together whether to go on: a NaN on one rank or a signal to
 * one rank stops all of them at the same step.  r (NULL: no loss to vote
 * on) gets the global mean loss from this rank's sum; stopping < 0 leaves
 * the stop votes as they are. */
static dl_vote_result vote(dl_loss_reads *lr, dl_step_record *r, double sum, int stopping,
                           dl_phase_times *tm)
{
    double t0 = dl_now();
    double votes[3] = {r ? sum / r->n : 0.0, r && !isfinite(sum) ? 1.0 : 0.0,
                       stopping > 0 ? 1.0 : 0.0};
    dl_trace_begin(lr->trace, DL_TRACK_COMPUTE, "comm", "vote all-reduce");
    dl_status st = lr->comm->allreduce_sum_f64(lr->comm, votes, 3);
    dl_trace_end(lr->trace, DL_TRACK_COMPUTE);
    if (lr->comm->world > 1) {
        tm->comm += dl_now() - t0;
        tm->exposed_comm += dl_now() - t0;
    }
    if (st != DL_OK)
        return DL_VOTE_COMM_ERROR;
    if (r)
        r->loss = votes[0] / lr->comm->world, r->pending = 0;
    if (stopping >= 0)
        lr->stop_votes = (int)votes[2];
    return votes[1] > 0 ? DL_VOTE_NONFINITE : DL_VOTE_OK;
}

dl_vote_result dl_loss_vote(dl_loss_reads *lr, dl_step_record *cur, double sum_now, int stopping,
                            dl_phase_times *tm, dl_step_record *read)
{
    dl_step_record *voted = lr->sync ? cur : lr->late.pending ? &lr->late : NULL;
    double sum = lr->sync ? sum_now : voted ? read_sum(lr, voted) : 0.0;
    dl_vote_result r = vote(lr, voted, sum, stopping ? 1 : 0, tm);
    memset(read, 0, sizeof *read);
    if (voted)
        *read = *voted;
    return r;
}

void dl_loss_end_step(dl_loss_reads *lr, const dl_step_record *cur, dl_step_record *read)
{
    if (lr->sync)
        *read = *cur;
    else
        lr->late = *cur;
}

dl_vote_result dl_loss_flush(dl_loss_reads *lr, dl_phase_times *tm, dl_step_record *read)
{
    memset(read, 0, sizeof *read);
    if (!lr->late.pending)
        return DL_VOTE_OK;
    double sum = read_sum(lr, &lr->late);
    dl_vote_result r = vote(lr, &lr->late, sum, -1, tm);
    *read = lr->late;
    return r;
}

static void add_eval_figures(dl_loss_reads *lr, int slot, double *sums)
{
    double l;
    int correct;
    dl_net_loss_finish(lr->net, slot, &l, &correct);
    sums[0] += l, sums[1] += correct;
}

dl_status dl_loss_evaluate(dl_loss_reads *lr, dl_loader *test, size_t test_n, double *loss,
                           double *acc)
{
    double sums[3] = {0, 0, 0}; /* loss, correct, count */
    dl_trace_begin_args(lr->trace, DL_TRACK_COMPUTE, "eval", "evaluate", "\"test_samples\":%zu",
                        test_n);
    dl_loader_start_epoch(test, 0, 0);
    const dl_batch *b;
    int queued = 0, slot = 0;
    /* batch i's figures are read once batch i+1's forward is queued */
    while ((b = dl_loader_next(test))) {
        dl_net_set_batch(lr->net, b->images, b->labels, b->n);
        dl_net_forward(lr->net, 0);
        dl_net_loss_start(lr->net, slot);
        if (queued || lr->sync)
            add_eval_figures(lr, lr->sync ? slot : slot ^ 1, sums);
        queued = !lr->sync, slot ^= 1;
        sums[2] += b->n;
    }
    if (queued)
        add_eval_figures(lr, slot ^ 1, sums);
    dl_status st = lr->comm->allreduce_sum_f64(lr->comm, sums, 3);
    dl_trace_end(lr->trace, DL_TRACK_COMPUTE);
    *loss = sums[2] > 0 ? sums[0] / sums[2] : NAN;
    *acc = sums[2] > 0 ? sums[1] / sums[2] : NAN;
    return st;
}
