/* train_sync.h: what keeps N ranks one training job: agreeing on settings,
 * starting from rank 0's state, failing together, staying identical. */
#ifndef DL_TRAIN_SYNC_H
#define DL_TRAIN_SYNC_H

#include "../runtime/data.h"
#include "../runtime/net.h"
#include "../runtime/checkpoint.h"
#include "train.h"

/* Compares every shared option with rank 0's; returns an exit status. */
int dl_train_agree_options(dl_ctx *ctx, const dl_train_opts *o);
/* Every rank reports its start-up status (0 or an exit status); all learn
 * whether any failed.  Returns this rank's exit status (non-zero if any failed). */
int dl_train_agree_start(dl_ctx *ctx, int my_rc, const char *stage);
/* Rank 0's parameters, buffers, optimizer state and progress to every rank,
 * after checking that all ranks read the same data.  Returns an exit status. */
int dl_train_share_state(dl_ctx *ctx, dl_net *net, float *velocity, dl_progress *prog,
                         const dl_dataset *train, const dl_dataset *test);
/* Every rank hashes its parameters; a difference stops every rank with a
 * message.  Returns 0 when all agree. */
int dl_train_check_replicas(dl_ctx *ctx, const dl_net *net, long step);

#endif
