/* step.h: the compute of one data-parallel training step — forward, loss,
 * backward with the bucketed gradient all-reduce — shared by `dltrain train`,
 * `dltrain bench train` and `dltrain scale`, so all three time the same code. */
#ifndef DL_STEP_H
#define DL_STEP_H

#include "../comm/bucket.h"
#include "../runtime/data.h"
#include "../runtime/net.h"
#include "../runtime/trace.h"
#include "metrics.h"

typedef struct dl_stepper {
    dl_net *net;
    dl_buckets *buckets; /* NULL on a single rank: no all-reduce */
    int overlap;         /* start buckets during backward (else after it, for comparison) */
    dl_tracer *trace;    /* NULL: no trace events (layers trace through net->trace) */
    /* GPU phase times: NULL, or the next free device mark slot (device.h).
     * A step records DL_STEP_MARKS marks from there (before forward, after
     * the loss, after backward, after the all-reduce wait) and advances it;
     * dl_step_gpu_times reads them once the device has caught up. */
    int *mark_next;
    /* The batch's loss statistics are queued for reading into net read slot
     * loss_slot (dl_net_loss_start) and not waited for: the caller finishes
     * the read when it needs the figures (train: during the next step).
     * With loss_now set the step reads them itself between forward and
     * backward, into loss_sum and correct, the host waiting for forward
     * (train --sync-loss: the reference to compare with). */
    int loss_slot, loss_now;
    double loss_sum;
    int correct;
} dl_stepper;

#define DL_STEP_MARKS 4

/* Adds the GPU time of `steps` steps whose marks start at slot `first` to tm
 * (forward, backward, exposed comm; optimizer up to the mark at
 * first + steps * DL_STEP_MARKS, which the caller records after the last
 * optimizer step).  Waits for the device. */
void dl_step_gpu_times(dl_device *dev, int first, int steps, dl_phase_times *tm);

/* Forward and loss on the batch already set on the net, then backward with the
 * gradients averaged over the buckets' ranks.  The batch's summed loss and
 * correct count (this rank's) are on their way to read slot s->loss_slot
 * (or, with s->loss_now, in s->loss_sum and s->correct).  Adds phase times
 * to tm. */
dl_status dl_step_forward_backward(dl_stepper *s, dl_phase_times *tm);

/* Sets the first `batch` samples of ds (repeated if ds is smaller) on the net
 * once, for benchmarks that time steps without data loading (`bench train`,
 * `scale`, like the PyTorch peer script). */
dl_status dl_step_load_fixed_batch(dl_net *net, const dl_dataset *ds, int batch);

#endif
