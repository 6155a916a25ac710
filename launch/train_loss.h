/* train_loss.h: each training step's loss, read one step late, and the
 * ranks' vote on it (whether it was finite, whether a rank was signalled).
 *
 * Step k queues its loss statistics for an asynchronous read (net read slot
 * k mod 2, dl_net_loss_start); the host reads them during step k+1, once
 * that step's forward and backward are queued, so a GPU never idles while
 * the host waits for a forward to end.  A flush reads the last step's before
 * anything that needs every step's figures (a checkpoint, an evaluation, the
 * end of an epoch, a stop).  Under --sync-loss (`sync`) each step's loss is
 * read right after its own forward instead: the reference the late reads are
 * compared with (tests/test_loss_read.py).  The figures are the same either
 * way; only when the host has them differs. */
#ifndef DL_TRAIN_LOSS_H
#define DL_TRAIN_LOSS_H

#include <stdint.h>

#include "../comm/comm.h"
#include "../runtime/loader.h"
#include "../runtime/net.h"
#include "../runtime/trace.h"
#include "metrics.h"

/* One training step's figures for the log. */
typedef struct dl_step_record {
    int pending;      /* its loss statistics are queued, not read yet */
    int slot, n;      /* net read slot; this rank's samples */
    int epoch;        /* 0-based */
    long in_epoch;    /* 1-based position in its epoch */
    uint64_t step;    /* 1-based step of the run; 0: no step (nothing was read) */
    double lr;        /* the learning rate of its update */
    double loss;      /* once read: the mean over the global batch */
} dl_step_record;

typedef struct dl_loss_reads {
    dl_net *net;
    dl_comm *comm;
    dl_tracer *trace;
    int sync;            /* --sync-loss */
    dl_step_record late; /* the last step, its loss not read yet (pending) */
    int next_slot;       /* the read slot of the next step */
    int stop_votes;      /* ranks that asked to stop at the last vote (a signal) */
} dl_loss_reads;

typedef enum { DL_VOTE_OK, DL_VOTE_NONFINITE, DL_VOTE_COMM_ERROR } dl_vote_result;

/* The record of the step about to run, with the next read slot. */
dl_step_record dl_loss_begin_step(dl_loss_reads *lr, int n, int epoch, long in_epoch,
                                  uint64_t step, double learning_rate);
/* After cur's forward and backward: reads the loss to vote on (cur's own,
 * sum_now, under sync; else the pending step's, if any) and votes with every
 * rank, `stopping` being this rank's wish to stop.  *read: the step voted on
 * (read->step 0: none); on DL_VOTE_NONFINITE the step whose loss was not
 * finite.  Collective.  Adds the vote's time to tm's comm. */
dl_vote_result dl_loss_vote(dl_loss_reads *lr, dl_step_record *cur, double sum_now, int stopping,
                            dl_phase_times *tm, dl_step_record *read);
/* After cur's update: cur becomes the pending step, or (sync) *read. */
void dl_loss_end_step(dl_loss_reads *lr, const dl_step_record *cur, dl_step_record *read);
/* Reads and votes on the pending step, if any, into *read (step 0: none).
 * Collective: every rank flushes at the same steps. */
dl_vote_result dl_loss_flush(dl_loss_reads *lr, dl_phase_times *tm, dl_step_record *read);

/* Test-set loss and accuracy over the batches of `test` (test_n samples
 * on all ranks), summed over every rank's shard; batch i's figures are read
 * once batch i+1's forward is queued (sync: at once).  Collective; the
 * pending training step must have been flushed (the read slots are reused). */
dl_status dl_loss_evaluate(dl_loss_reads *lr, dl_loader *test, size_t test_n, double *loss,
                           double *acc);

#endif
