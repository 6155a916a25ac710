/* trace.c: the in-memory trace buffers and the Chrome trace-event writer.
 *
 * Each writing thread (training, training loader, evaluation loader) owns
 * one buffer, so recording needs no lock; the only shared word is the
 * window flag, read by the loader threads.  A buffer accepts a begin only
 * while it keeps room for the ends of every span open in it, so a full
 * buffer drops whole spans, never an end. */
#define _POSIX_C_SOURCE 200809L
#include "trace.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_TRACKS (DL_TRACK_ALLREDUCE + DL_TRACE_MAX_ROWS)
#define MAX_DEPTH 32
#define LOADER_EVENTS 4096 /* per loader thread: its spans are two events a batch */

typedef struct trace_event {
    double ts;       /* dl_now() seconds */
    const char *cat; /* static; NULL on an end */
    char name[64];
    char args[96]; /* JSON members, "" for none */
    short track;
    char ph; /* 'B' or 'E' */
} trace_event;

typedef struct trace_buf { /* the events of one writing thread */
    trace_event *ev;
    size_t n, cap, dropped;
    int open; /* kept spans not yet ended, over this buffer's tracks */
} trace_buf;

typedef struct trace_track {
    unsigned char kept[MAX_DEPTH]; /* per open span: was its begin recorded */
    int depth, overflow;
    int used;
} trace_track;

struct dl_tracer {
    int rank, steps, skip;
    long step; /* steps begun (training thread) */
    atomic_int active;
    trace_buf bufs[3];
    trace_track tracks[N_TRACKS];
    double row_free_at[DL_TRACE_MAX_ROWS];
    int rows;
};

static trace_buf *buf_of(dl_tracer *t, int track)
{
    if (track == DL_TRACK_DATA)
        return &t->bufs[1];
    if (track == DL_TRACK_EVAL_DATA)
        return &t->bufs[2];
    return &t->bufs[0];
}

dl_status dl_trace_init(dl_tracer **out, int rank, int steps, int skip, size_t events_per_step)
{
    *out = NULL;
    if (steps < 1 || skip < 0)
        return dl_fail(DL_ERR_ARG, "trace window of %d steps after %d is empty", steps, skip);
    dl_tracer *t = calloc(1, sizeof *t);
    if (!t)
        return dl_fail(DL_ERR_OOM, "out of memory for the tracer");
    t->rank = rank, t->steps = steps, t->skip = skip;
    /* one more step's worth for evaluation and checkpoints inside the window */
    t->bufs[0].cap = (size_t)(steps + 1) * events_per_step + 1024;
    t->bufs[1].cap = (size_t)(steps + 2) * 4 + 64;
    t->bufs[2].cap = LOADER_EVENTS;
    for (int i = 0; i < 3; i++) {
        t->bufs[i].ev = malloc(t->bufs[i].cap * sizeof(trace_event));
        if (!t->bufs[i].ev) {
            size_t cap = t->bufs[i].cap;
            dl_trace_free(t);
            return dl_fail(DL_ERR_OOM, "out of memory for %zu trace events", cap);
        }
    }
    atomic_init(&t->active, 0);
    *out = t;
    return DL_OK;
}

void dl_trace_free(dl_tracer *t)
{
    if (!t)
        return;
    for (int i = 0; i < 3; i++)
        free(t->bufs[i].ev);
    free(t);
}

void dl_trace_next_step(dl_tracer *t)
{
    if (!t)
        return;
    long s = t->step++;
    atomic_store_explicit(&t->active, s >= t->skip && s < (long)t->skip + t->steps,
                          memory_order_relaxed);
}

static int is_active(dl_tracer *t)
{
    return atomic_load_explicit(&t->active, memory_order_relaxed);
}

static trace_event *push(trace_buf *b, int track, char ph, double ts)
{
    trace_event *e = &b->ev[b->n++];
    e->ts = ts, e->track = (short)track, e->ph = ph;
    e->cat = NULL;
    e->name[0] = e->args[0] = '\0';
    return e;
}

/* Records a begin if the window is open and the buffer keeps room for it,
 * its end and the ends of the spans already open; returns the event or NULL. */
static trace_event *begin_event(dl_tracer *t, int track, const char *cat, const char *name)
{
    trace_track *tk = &t->tracks[track];
    if (tk->depth == MAX_DEPTH) {
        tk->overflow++;
        return NULL;
    }
    trace_buf *b = buf_of(t, track);
    int keep = is_active(t) && b->n + (size_t)b->open + 2 <= b->cap;
    if (is_active(t) && !keep)
        b->dropped += 2;
    tk->kept[tk->depth++] = (unsigned char)keep;
    if (!keep)
        return NULL;
    b->open++;
    tk->used = 1;
    trace_event *e = push(b, track, 'B', dl_now());
    e->cat = cat;
    snprintf(e->name, sizeof e->name, "%s", name);
    return e;
}

void dl_trace_begin(dl_tracer *t, int track, const char *cat, const char *name)
{
    if (t)
        begin_event(t, track, cat, name);
}

void dl_trace_begin_args(dl_tracer *t, int track, const char *cat, const char *name,
                         const char *args_fmt, ...)
{
    trace_event *e = t ? begin_event(t, track, cat, name) : NULL;
    if (!e)
        return;
    va_list ap;
    va_start(ap, args_fmt);
    int len = vsnprintf(e->args, sizeof e->args, args_fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof e->args) /* cut JSON is no JSON */
        e->args[0] = '\0';
}

void dl_trace_end(dl_tracer *t, int track)
{
    if (!t)
        return;
    trace_track *tk = &t->tracks[track];
    if (tk->overflow) {
        tk->overflow--;
        return;
    }
    if (tk->depth == 0)
        return; /* an end without a begin: a caller's bug, kept out of the file */
    if (!tk->kept[--tk->depth])
        return;
    trace_buf *b = buf_of(t, track);
    b->open--;
    push(b, track, 'E', dl_now());
}

void dl_trace_bucket(dl_tracer *t, int bucket, double start, double end, size_t floats)
{
    if (!t || !is_active(t))
        return;
    int row = 0;
    while (row < t->rows && t->row_free_at[row] > start)
        row++;
    trace_buf *b = &t->bufs[0];
    if (row == DL_TRACE_MAX_ROWS || b->n + (size_t)b->open + 2 > b->cap) {
        b->dropped += 2;
        return;
    }
    if (row == t->rows)
        t->rows++;
    t->row_free_at[row] = end;
    int track = DL_TRACK_ALLREDUCE + row;
    t->tracks[track].used = 1;
    trace_event *e = push(b, track, 'B', start);
    e->cat = "comm";
    snprintf(e->name, sizeof e->name, "bucket %d", bucket);
    snprintf(e->args, sizeof e->args, "\"bucket\":%d,\"floats\":%zu,\"bytes\":%zu", bucket, floats,
             floats * sizeof(float));
    push(b, track, 'E', end);
}

size_t dl_trace_events(const dl_tracer *t)
{
    return t ? t->bufs[0].n + t->bufs[1].n + t->bufs[2].n : 0;
}

size_t dl_trace_dropped(const dl_tracer *t)
{
    return t ? t->bufs[0].dropped + t->bufs[1].dropped + t->bufs[2].dropped : 0;
}

/* ---- writing ------------------------------------------------------------- */

static const char *track_name(int track, char *buf, size_t size)
{
    switch (track) {
    case DL_TRACK_COMPUTE: return "compute (training thread)";
    case DL_TRACK_DATA: return "data (training loader thread)";
    case DL_TRACK_EVAL_DATA: return "data (evaluation loader thread)";
    }
    snprintf(buf, size, "all-reduce %d", track - DL_TRACK_ALLREDUCE + 1);
    return buf;
}

/* The viewer lists threads by this index: compute, the all-reduce rows
 * right under it (overlap is read by comparing the two), then data. */
static int track_order(int track)
{
    if (track == DL_TRACK_DATA || track == DL_TRACK_EVAL_DATA)
        return 100 + track;
    return track == DL_TRACK_COMPUTE ? 0 : track;
}

static void write_metadata(FILE *f, const dl_tracer *t)
{
    fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
               "\"args\":{\"name\":\"rank %d\"}},\n", t->rank, t->rank);
    fprintf(f, "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
               "\"args\":{\"sort_index\":%d}}", t->rank, t->rank);
    for (int k = 0; k < N_TRACKS; k++) {
        if (k != DL_TRACK_COMPUTE && !t->tracks[k].used)
            continue;
        char buf[32];
        fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":",
                t->rank, k + 1);
        dl_json_string(f, track_name(k, buf, sizeof buf));
        fprintf(f, "}},\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,"
                   "\"args\":{\"sort_index\":%d}}", t->rank, k + 1, track_order(k));
    }
}

static void write_event(FILE *f, const dl_tracer *t, const trace_event *e)
{
    /* tid = track + 1: some viewers treat thread 0 as the idle thread */
    fprintf(f, ",\n{\"ph\":\"%c\",\"ts\":%.3f,\"pid\":%d,\"tid\":%d", e->ph, e->ts * 1e6, t->rank,
            e->track + 1);
    if (e->ph == 'B') {
        fputs(",\"name\":", f);
        dl_json_string(f, e->name);
        fprintf(f, ",\"cat\":\"%s\"", e->cat);
        if (e->args[0])
            fprintf(f, ",\"args\":{%s}", e->args);
    }
    fputc('}', f);
}

/* Spans cut short by an error end at the time of writing. */
static void write_open_ends(FILE *f, const dl_tracer *t, double now)
{
    for (int k = 0; k < N_TRACKS; k++) {
        const trace_track *tk = &t->tracks[k];
        for (int d = tk->depth - 1; d >= 0; d--)
            if (tk->kept[d])
                fprintf(f, ",\n{\"ph\":\"E\",\"ts\":%.3f,\"pid\":%d,\"tid\":%d}", now * 1e6,
                        t->rank, k + 1);
    }
}

dl_status dl_trace_write(const dl_tracer *t, const char *dir)
{
    if (!t)
        return DL_OK;
    dl_status st = dl_make_dirs(dir);
    if (st != DL_OK)
        return st;
    char path[1100];
    snprintf(path, sizeof path, "%s/trace-rank-%d.json", dir, t->rank);
    FILE *f = fopen(path, "w");
    if (!f)
        return dl_fail(DL_ERR_IO, "cannot write trace %s: %s", path, strerror(errno));
    fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", f);
    write_metadata(f, t);
    for (int i = 0; i < 3; i++)
        for (size_t j = 0; j < t->bufs[i].n; j++)
            write_event(f, t, &t->bufs[i].ev[j]);
    write_open_ends(f, t, dl_now());
    fprintf(f, "\n],\n\"otherData\":{\"rank\":%d,\"window_steps\":%d,\"skipped_steps\":%d,"
               "\"steps_seen\":%ld,\"dropped_events\":%zu,"
               "\"clock\":\"CLOCK_MONOTONIC, microseconds\"}}\n",
            t->rank, t->steps, t->skip, t->step, dl_trace_dropped(t));
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return dl_fail(DL_ERR_IO, "error writing trace %s", path);
    return DL_OK;
}
