/* test_onebit_layers.c: onebit per layer (comm/compress.h's
 * dl_codec_segments) on a hand-made layout, one rank.
 *
 *   vectors [0, 64)               (a bias and its padding)
 *   A [64, 5064)       10 x 500: 5000 values, coded in blocks
 *   vectors [5064, 5128)
 *   B [5128, 7128)     20 x 100: 2000 values, under 4096: exact
 *   vectors [7128, 7168)
 * buckets [0, 3000), [3000, 6000), [6000, 7168).
 * - the runs of each bucket are exactly the hand-computed ones (A's head
 *   a run of blocks from A's first value, its tail one from the bucket's
 *   start, the vectors and B exact runs), and so are the runs of one bucket
 *   over everything (with the matrices listed in either order), of a
 *   bucket without matrices and of another codec;
 * - the wire model counts those bytes;
 * - over 20 steps: exact runs arrive unchanged with a zero residual, A's
 *   first block [64, 320) decodes to its own sign means (blocks start
 *   where the tensor starts, not at the bucket's 0), and sum(applied) + residual == sum(gradients). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "rng.h"

static int failures;

#include "expect.h"
#include "feedback_steps.h"

enum { LEN = 7168, BUCKETS = 3, MATS = 2 };
static const size_t lo[BUCKETS] = {0, 3000, 6000}, len[BUCKETS] = {3000, 3000, 1168};
static const dl_grad_matrix mats[MATS] = {{64, 10, 500}, {5128, 20, 100}};

typedef struct want_runs {
    size_t count, bytes;
    dl_codec_seg runs[3];
} want_runs;

/* onebit bytes of n values: 8 per block of 256 (two means), a bit per
 * value, rounded to 8: 2936 -> 12 blocks, 96 + 367 = 463 -> 464;
 * 2064 -> 9 blocks, 72 + 258 = 330 -> 336; 5000 -> 20 blocks, 785 -> 792.
 * Exact runs: 4 bytes a value (64 -> 256, 936 -> 3744, 1168 -> 4672).
 * bucket 0: [0, 64) exact, A's head [64, 3000) in blocks;
 * bucket 1: A's tail [3000, 5064) in blocks, [5064, 6000) exact (the
 *           vectors and B's head, one run);
 * bucket 2: B's tail and the last vectors, one exact run. */
static const want_runs want[BUCKETS] = {
    {2, 256 + 464, {{0, 64, 0, DL_COMPRESS_NONE}, {64, 2936, 256, DL_COMPRESS_ONEBIT}}},
    {2, 336 + 3744, {{0, 2064, 0, DL_COMPRESS_ONEBIT}, {2064, 936, 336, DL_COMPRESS_NONE}}},
    {1, 4672, {{0, 1168, 0, DL_COMPRESS_NONE}}},
};

static int same_run(const dl_codec_seg *a, const dl_codec_seg *b)
{
    return a->off == b->off && a->n == b->n && a->at == b->at && a->kind == b->kind;
}

static void expect_runs(const char *what, size_t bucket_lo, size_t n, dl_compress_kind kind,
                        const dl_grad_matrix *m, int n_m, const want_runs *w)
{
    dl_codec_seg got[4] = {{0}};
    size_t bytes = 0;
    size_t count = dl_codec_segments(kind, bucket_lo, n, LEN, m, n_m, got, 4, &bytes);
    int same = count == w->count && bytes == w->bytes;
    for (size_t j = 0; same && j < count; j++)
        same = same_run(&got[j], &w->runs[j]);
    EXPECT(same, "%s: %zu runs, %zu bytes, first (%zu, %zu, at %zu, kind %d)", what, count,
           bytes, got[0].off, got[0].n, got[0].at, (int)got[0].kind);
}

static void check_runs(void)
{
    char what[64];
    for (int b = 0; b < BUCKETS; b++) {
        snprintf(what, sizeof what, "bucket %d", b);
        expect_runs(what, lo[b], len[b], DL_COMPRESS_ONEBIT, mats, MATS, &want[b]);
    }
    const want_runs whole = {3, 256 + 792 + 8416, {{0, 64, 0, DL_COMPRESS_NONE},
                                                   {64, 5000, 256, DL_COMPRESS_ONEBIT},
                                                   {5064, 2104, 1048, DL_COMPRESS_NONE}}};
    expect_runs("one bucket over everything", 0, LEN, DL_COMPRESS_ONEBIT, mats, MATS, &whole);
    const dl_grad_matrix reversed[MATS] = {mats[1], mats[0]};
    expect_runs("matrices listed last first", 0, LEN, DL_COMPRESS_ONEBIT, reversed, MATS, &whole);
    const want_runs blocks = {1, dl_codec_bytes(DL_COMPRESS_ONEBIT, 3000),
                              {{0, 3000, 0, DL_COMPRESS_ONEBIT}}};
    expect_runs("no matrices", 3000, 3000, DL_COMPRESS_ONEBIT, NULL, 0, &blocks);
    const want_runs int8 = {1, dl_codec_bytes(DL_COMPRESS_INT8, 3000),
                            {{0, 3000, 0, DL_COMPRESS_INT8}}};
    expect_runs("int8 (not per layer)", 3000, 3000, DL_COMPRESS_INT8, mats, MATS, &int8);
    dl_compress_spec onebit = {DL_COMPRESS_ONEBIT, 0};
    double sent = (double)(want[0].bytes + want[1].bytes + want[2].bytes);
    EXPECT(dl_compress_wire_bytes(onebit, 2, len, BUCKETS, mats, MATS) == sent,
           "wire bytes on 2 ranks: %.0f, want %.0f", dl_compress_wire_bytes(onebit, 2, len,
           BUCKETS, mats, MATS), sent);
}

static void gradient(int step, float *g)
{
    dl_rng r;
    dl_rng_seed(&r, 11, 2, (uint64_t)step);
    for (size_t i = 0; i < LEN; i++)
        g[i] = (float)(0.01 * dl_rng_normal(&r)) + (i % 7 == 0 ? 0.03f : 0.0f);
}

/* Block [64, 320), A's first, decoded at step 0 (zero residual): each
 * value its sign group's mean, summed in double as the C codec does. */
static int block_ok(const float *before, const float *after)
{
    double sp = 0.0, sn = 0.0;
    size_t np = 0, nn = 0;
    for (size_t i = 64; i < 320; i++) {
        if (before[i] >= 0.0f)
            sp += before[i], np++;
        else
            sn += before[i], nn++;
    }
    float pos = np ? (float)(sp / (double)np) : 0.0f, neg = nn ? (float)(sn / (double)nn) : 0.0f;
    for (size_t i = 64; i < 320; i++)
        if (after[i] != (before[i] >= 0.0f ? pos : neg))
            return 0;
    return 1;
}

/* Exact values: the vectors before A, and everything from A's end on. */
static int exact_broken(int step, const float *sent, const float *got, const dl_compressor *c)
{
    int broke = 0;
    if (step == 0)
        EXPECT(block_ok(sent, got), "block [64, 320) is not its own sign means");
    for (size_t i = 0; i < LEN; i++)
        if (i < 64 || i >= 5064)
            broke += got[i] != sent[i] || c->state[i] != 0.0f;
    return broke;
}

static void check_feedback(void)
{
    dl_compressor c;
    dl_compress_spec spec = {DL_COMPRESS_ONEBIT, 0};
    if (dl_compressor_init_on(&c, spec, LEN, lo, len, BUCKETS, 1, 5, NULL, mats, MATS) != DL_OK) {
        EXPECT(0, "init: %s", dl_error_message());
        return;
    }
    int exact_bad = 0;
    int carried = feedback_steps(&c, LEN, lo, BUCKETS, 20, gradient, exact_broken, &exact_bad);
    EXPECT(exact_bad == 0, "%d exact values changed (or kept a residual)", exact_bad);
    EXPECT(carried > 4000, "only %d values carry a residual: was A coded in blocks?", carried);
    dl_compressor_free(&c);
}

/* What `predict --compress-ms cpu` charges (dl_compress_cpu_ms): a coded
 * 64 x 128 matrix and a 10 x 100 one under DL_ONEBIT_EXACT_BELOW in one
 * bucket cost the coded matrix alone plus the small one alone: each run
 * at its own codec's timed cost (timed once per process, so the sums
 * agree to rounding), and the exact run not at onebit's. */
static void check_cpu_cost(void)
{
    dl_compress_spec onebit = {DL_COMPRESS_ONEBIT, 0};
    const dl_grad_matrix both[2] = {{0, 64, 128}, {8192, 10, 100}}, small = {0, 10, 100};
    size_t bucket = 16384;
    double mixed = dl_compress_cpu_ms(onebit, 4, 9192, bucket, both, 2);
    double coded = dl_compress_cpu_ms(onebit, 4, 8192, bucket, NULL, 0);
    double exact = dl_compress_cpu_ms(onebit, 4, 1000, bucket, &small, 1);
    double as_blocks = dl_compress_cpu_ms(onebit, 4, 1000, bucket, NULL, 0);
    EXPECT(coded > 0 && exact > 0, "onebit cost %g ms coded, %g ms exact: want both > 0", coded,
           exact);
    EXPECT(fabs(mixed - (coded + exact)) <= 1e-9 * mixed, "onebit cost of a coded and an exact "
           "tensor %.9g ms, want %.9g + %.9g", mixed, coded, exact);
    EXPECT(exact != as_blocks, "an exact run costs %g ms, the same as coding it (%g)", exact,
           as_blocks);
}

int main(void)
{
    check_runs();
    check_feedback();
    check_cpu_cost();
    if (failures) {
        fprintf(stderr, "test_onebit_layers: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_onebit_layers: all checks passed\n");
    return 0;
}
