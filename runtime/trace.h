/* trace.h: per-rank timelines in the Chrome trace-event format, for Perfetto
 * (ui.perfetto.dev) or chrome://tracing.
 *
 * A tracer keeps events in memory and writes DIR/trace-rank-R.json at the
 * end.  Every function accepts a NULL tracer and then does nothing, so code
 * paths carry a `dl_tracer *` that is NULL when tracing is off.
 *
 * Events are "B"/"E" pairs on tracks (threads in the viewer).  Each track has
 * one writing thread, and the threads append to buffers of their own, so
 * recording takes no lock:
 *   compute      the training thread: step, data wait, upload, forward and
 *                backward per layer, loss, the exposed all-reduce wait, the
 *                per-step vote, optimizer, evaluation
 *   data, eval   the loader threads preparing batches
 *   all-reduce   gradient buckets, from the moment backward hands a bucket to
 *                the backend to the moment the backend reports it finished.
 *                Buckets in flight together overlap, and a track must nest,
 *                so each bucket goes on the first all-reduce row free at its
 *                start: the number of rows is the most buckets in flight.
 *
 * Only a window of steps is kept (files stay small): `steps` steps after the
 * first `skip`.  A span begun inside the window is always closed, and the
 * buffers keep room for the ends of open spans, so the file always nests. */
#ifndef DL_TRACE_H
#define DL_TRACE_H

#include <stddef.h>

#include "common.h"

typedef struct dl_tracer dl_tracer;

enum {
    DL_TRACK_COMPUTE = 0,
    DL_TRACK_DATA = 1,      /* the training loader's thread */
    DL_TRACK_EVAL_DATA = 2, /* the evaluation loader's thread */
    DL_TRACK_ALLREDUCE = 3, /* first all-reduce row; DL_TRACE_MAX_ROWS in all */
};
#define DL_TRACE_MAX_ROWS 32

/* A tracer for `rank` keeping steps [skip, skip + steps) of this run, with
 * room for about `events_per_step` compute and all-reduce events per step. */
dl_status dl_trace_init(dl_tracer **out, int rank, int steps, int skip, size_t events_per_step);
void dl_trace_free(dl_tracer *t);

/* Marks the start of the next step (training thread); opens or closes the window. */
void dl_trace_next_step(dl_tracer *t);

/* Spans on a track, from the track's own thread.  `cat` is a static string
 * ("step", "forward", "backward", "comm", "data"); args_fmt formats the JSON
 * members of the span's args, e.g. "\"bytes\":%zu". */
void dl_trace_begin(dl_tracer *t, int track, const char *cat, const char *name);
void dl_trace_begin_args(dl_tracer *t, int track, const char *cat, const char *name,
                         const char *args_fmt, ...) DL_PRINTF(5, 6);
void dl_trace_end(dl_tracer *t, int track);

/* A finished all-reduce of one bucket, from the training thread, in order of
 * start: placed on the first all-reduce row that is free at `start`. */
void dl_trace_bucket(dl_tracer *t, int bucket, double start, double end, size_t floats);

/* mkdir -p dir, then write dir/trace-rank-R.json.  Spans still open end now.
 * Call after the loader threads have stopped. */
dl_status dl_trace_write(const dl_tracer *t, const char *dir);
/* Events kept and dropped (buffers full) so far. */
size_t dl_trace_events(const dl_tracer *t);
size_t dl_trace_dropped(const dl_tracer *t);

#endif
