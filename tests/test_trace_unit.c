/* test_trace_unit.c: the tracer's own guarantees, without training: a NULL
 * tracer does nothing, the step window, full buffers drop whole spans (the
 * file still nests), spans open at the end are closed, overlapping buckets
 * go on separate rows and reuse free ones.
 *
 * usage: test_trace_unit DIR   (writes DIR/<case>/trace-rank-R.json) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

static int failures;

#include "expect.h"

typedef struct scan {
    int begins, ends, worst_depth, min_depth, has_row2, has_row3;
} scan;

/* The writer puts one event per line: count begins and ends per thread
 * and the lowest running depth (negative = an end without its begin). */
static scan scan_file(const char *dir, int rank)
{
    scan s = {0};
    char path[600], line[512];
    snprintf(path, sizeof path, "%s/trace-rank-%d.json", dir, rank);
    FILE *f = fopen(path, "r");
    EXPECT(f != NULL, "cannot open %s", path);
    if (!f)
        return s;
    int depth[64] = {0};
    while (fgets(line, sizeof line, f)) {
        const char *tid = strstr(line, "\"tid\":");
        int t = tid ? atoi(tid + 6) : 0;
        if (t < 0 || t >= 64)
            continue;
        if (strstr(line, "\"ph\":\"B\""))
            s.begins++, depth[t]++;
        if (strstr(line, "\"ph\":\"E\""))
            s.ends++, depth[t]--;
        if (depth[t] < s.min_depth)
            s.min_depth = depth[t];
        if (depth[t] > s.worst_depth)
            s.worst_depth = depth[t];
        s.has_row2 |= strstr(line, "\"all-reduce 2\"") != NULL;
        s.has_row3 |= strstr(line, "\"all-reduce 3\"") != NULL;
    }
    fclose(f);
    return s;
}

static void null_tracer(void)
{
    dl_tracer *t = NULL;
    dl_trace_next_step(t);
    dl_trace_begin(t, DL_TRACK_COMPUTE, "step", "x");
    dl_trace_begin_args(t, DL_TRACK_COMPUTE, "step", "x", "\"n\":%d", 1);
    dl_trace_end(t, DL_TRACK_COMPUTE);
    dl_trace_bucket(t, 0, 0.0, 1.0, 10);
    EXPECT(dl_trace_write(t, "/nonexistent/never") == DL_OK, "NULL tracer writes nothing");
    EXPECT(dl_trace_events(t) == 0 && dl_trace_dropped(t) == 0, "NULL tracer counts nothing");
}

static void window(const char *root)
{
    dl_tracer *t;
    EXPECT(dl_trace_init(&t, 0, 2, 1, 8) == DL_OK, "init");
    dl_trace_begin(t, DL_TRACK_COMPUTE, "step", "before any step");
    dl_trace_end(t, DL_TRACK_COMPUTE);
    for (int s = 0; s < 5; s++) {
        dl_trace_next_step(t);
        dl_trace_begin_args(t, DL_TRACK_COMPUTE, "step", "step", "\"step\":%d", s);
        dl_trace_end(t, DL_TRACK_COMPUTE);
    }
    EXPECT(dl_trace_events(t) == 4, "steps 1 and 2 of 0..4 kept: %zu events", dl_trace_events(t));
    char dir[600];
    snprintf(dir, sizeof dir, "%s/window/a/b", root);
    EXPECT(dl_trace_write(t, dir) == DL_OK, "write into new nested directories");
    scan s = scan_file(dir, 0);
    EXPECT(s.begins == 2 && s.ends == 2 && s.min_depth == 0, "%d begins, %d ends", s.begins, s.ends);
    dl_trace_free(t);
    EXPECT(dl_trace_init(&t, 0, 0, 1, 8) != DL_OK, "an empty window is refused");
}

/* A span that began before the window closed still ends in the file. */
static void span_across_window(const char *root)
{
    dl_tracer *t;
    EXPECT(dl_trace_init(&t, 3, 1, 0, 8) == DL_OK, "init");
    dl_trace_next_step(t);                                /* step 0: open */
    dl_trace_begin(t, DL_TRACK_DATA, "data", "load");    /* kept */
    dl_trace_next_step(t);                                /* step 1: closed */
    dl_trace_begin(t, DL_TRACK_DATA, "data", "nested");  /* dropped */
    dl_trace_end(t, DL_TRACK_DATA);
    dl_trace_end(t, DL_TRACK_DATA);                       /* ends "load" */
    dl_trace_end(t, DL_TRACK_DATA);                       /* no begin: ignored */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/across", root);
    EXPECT(dl_trace_write(t, dir) == DL_OK, "write");
    scan s = scan_file(dir, 3);
    EXPECT(s.begins == 1 && s.ends == 1 && s.min_depth == 0, "%d begins, %d ends, min depth %d",
          s.begins, s.ends, s.min_depth);
    dl_trace_free(t);
}

static void full_buffer(const char *root)
{
    dl_tracer *t;
    EXPECT(dl_trace_init(&t, 0, 1, 0, 0) == DL_OK, "init"); /* room for about 1024 events */
    dl_trace_next_step(t);
    for (int i = 0; i < 1000; i++) {
        dl_trace_begin(t, DL_TRACK_COMPUTE, "step", "outer");
        for (int d = 0; d < 40; d++) /* deeper than the tracer keeps */
            dl_trace_begin_args(t, DL_TRACK_COMPUTE, "step", "inner", "\"d\":%d", d);
        for (int d = 0; d < 40; d++)
            dl_trace_end(t, DL_TRACK_COMPUTE);
        dl_trace_end(t, DL_TRACK_COMPUTE);
    }
    dl_trace_begin(t, DL_TRACK_COMPUTE, "step", "left open");
    size_t kept = dl_trace_events(t);
    EXPECT(kept <= 1024 + 1 && dl_trace_dropped(t) > 0, "%zu kept, %zu dropped", kept,
          dl_trace_dropped(t));
    char dir[600];
    snprintf(dir, sizeof dir, "%s/full", root);
    EXPECT(dl_trace_write(t, dir) == DL_OK, "write");
    scan s = scan_file(dir, 0);
    EXPECT(s.begins == s.ends && s.min_depth == 0 && s.begins > 400,
          "%d begins, %d ends, min depth %d", s.begins, s.ends, s.min_depth);
    dl_trace_free(t);
}

static void bucket_rows(const char *root)
{
    dl_tracer *t;
    EXPECT(dl_trace_init(&t, 1, 1, 0, 16) == DL_OK, "init");
    dl_trace_next_step(t);
    dl_trace_bucket(t, 0, 100.0, 110.0, 1000); /* row 1 */
    dl_trace_bucket(t, 1, 101.0, 105.0, 1000); /* overlaps bucket 0: row 2 */
    dl_trace_bucket(t, 2, 106.0, 112.0, 1000); /* row 2 is free again at 105 */
    dl_trace_bucket(t, 3, 112.0, 113.0, 10);   /* row 1 free at 110 */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/buckets", root);
    EXPECT(dl_trace_write(t, dir) == DL_OK, "write");
    scan s = scan_file(dir, 1);
    EXPECT(s.begins == 4 && s.ends == 4 && s.min_depth == 0 && s.worst_depth == 1,
          "%d begins, %d ends, depth %d..%d", s.begins, s.ends, s.min_depth, s.worst_depth);
    EXPECT(s.has_row2 && !s.has_row3, "two rows for at most two buckets in flight");
    dl_trace_free(t);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_trace_unit DIR\n");
        return 2;
    }
    null_tracer();
    window(argv[1]);
    span_across_window(argv[1]);
    full_buffer(argv[1]);
    bucket_rows(argv[1]);
    printf("%s\n", failures ? "FAILED" : "all trace unit checks passed");
    return failures ? 1 : 0;
}
