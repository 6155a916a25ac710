/* test_compress_plan.c: per-layer PowerSGD on one rank (comm/compress.h).
 *
 * A hand-made layout of three weight matrices over three buckets, one
 * matrix straddling both bucket boundaries, with a bias vector and padding
 * between them:
 *   A [0, 1280)     20 x 64
 *   bias [1280, 1300), padding to 1344
 *   B [1344, 3344)  50 x 40, across the boundaries at 1500 and 3000
 *   padding [3344, 3392)
 *   C [3392, 3992)  12 x 50, then [3992, 4000) plain
 * buckets [0, 1500), [1500, 3000), [3000, 4000).
 * - the plans at rank 2 are exactly the hand-computed pieces, runs and
 *   skips (B whole in bucket 0, bucket 1 inside B sending nothing, bucket
 *   2 skipping B's tail), and every value of each bucket is in exactly one
 *   of them; a matrix too small to pay is plain in both buckets it spans;
 * - the wire model counts what the plans send;
 * - error feedback over 20 steps: sum(applied) + residual == sum(gradients),
 *   plain values exact with a zero residual;
 * - the rank check refuses when no layer would shrink. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "rng.h"

static int failures;

#include "expect.h"
#include "feedback_steps.h"

enum { LEN = 4000, BUCKETS = 3, MATS = 3 };
static const size_t lo[BUCKETS] = {0, 1500, 3000}, len[BUCKETS] = {1500, 1500, 1000};
/* in the order a net lists them (last layer first in memory): the plan sorts */
static const dl_grad_matrix mats[MATS] = {{3392, 12, 50}, {1344, 50, 40}, {0, 20, 64}};

typedef struct want_plan {
    int n_pieces, n_runs;
    dl_psgd_piece pieces[2];
    dl_psgd_run runs[2];
    size_t skip, mat_floats, round1, q_floats;
} want_plan;

/* Worked out by hand at rank 2 (dl_powersgd_pays: (rows + cols) 4 < rows
 * cols: 336 < 1280, 360 < 2000, 248 < 600):
 * bucket 0: A at 0 and all of B at 1344 (to 3344, past the bucket's end);
 *           the bias and padding [1280, 1344) plain, after the Ps (40 + 100);
 * bucket 1: inside B: skip all 1500, nothing sent;
 * bucket 2: skip B's tail [0, 344); C at 392; runs [344, 392) (padding)
 *           and [992, 1000), after C's P (24). */
static const want_plan want[BUCKETS] = {
    {2, 1, {{0, 1280, 20, 64, 0, 0, 0}, {1344, 2000, 50, 40, 1280, 40, 128}},
     {{1280, 64, 140}}, 0, 3280, 204, 208},
    {0, 0, {{0}}, {{0}}, 1500, 0, 0, 0},
    {1, 2, {{392, 600, 12, 50, 0, 0, 0}}, {{344, 48, 24}, {992, 8, 72}}, 344, 600, 80, 100},
};

static int same_piece(const dl_psgd_piece *a, const dl_psgd_piece *b)
{
    return a->off == b->off && a->n == b->n && a->rows == b->rows && a->cols == b->cols &&
           a->mat == b->mat && a->p == b->p && a->q == b->q;
}

static void check_plans(void)
{
    for (int b = 0; b < BUCKETS; b++) {
        dl_psgd_plan p;
        if (dl_psgd_plan_make(&p, lo[b], len[b], mats, MATS, 2) != DL_OK) {
            EXPECT(0, "bucket %d: %s", b, dl_error_message());
            continue;
        }
        const want_plan *w = &want[b];
        EXPECT(p.n_pieces == w->n_pieces && p.n_runs == w->n_runs, "bucket %d: %d pieces, %d "
               "runs, want %d and %d", b, p.n_pieces, p.n_runs, w->n_pieces, w->n_runs);
        for (int j = 0; j < p.n_pieces && j < w->n_pieces; j++)
            EXPECT(same_piece(&p.pieces[j], &w->pieces[j]), "bucket %d piece %d: off %zu n %zu "
                   "%zu x %zu mat %zu p %zu q %zu", b, j, p.pieces[j].off, p.pieces[j].n,
                   p.pieces[j].rows, p.pieces[j].cols, p.pieces[j].mat, p.pieces[j].p,
                   p.pieces[j].q);
        for (int j = 0; j < p.n_runs && j < w->n_runs; j++)
            EXPECT(p.runs[j].off == w->runs[j].off && p.runs[j].n == w->runs[j].n &&
                   p.runs[j].at == w->runs[j].at, "bucket %d run %d: [%zu, +%zu) at %zu", b, j,
                   p.runs[j].off, p.runs[j].n, p.runs[j].at);
        EXPECT(p.skip == w->skip && p.mat_floats == w->mat_floats && p.round1 == w->round1 &&
               p.q_floats == w->q_floats, "bucket %d: skip %zu mat %zu round1 %zu q %zu", b,
               p.skip, p.mat_floats, p.round1, p.q_floats);
        /* every value once (pieces may reach past the bucket's end) */
        unsigned char seen[1500] = {0};
        for (size_t i = 0; i < p.skip; i++)
            seen[i]++;
        for (int j = 0; j < p.n_pieces; j++)
            for (size_t i = p.pieces[j].off; i < p.pieces[j].off + p.pieces[j].n && i < len[b];
                 i++)
                seen[i]++;
        for (int j = 0; j < p.n_runs; j++)
            for (size_t i = 0; i < p.runs[j].n; i++)
                seen[p.runs[j].off + i]++;
        int bad = 0;
        for (size_t i = 0; i < len[b]; i++)
            bad += seen[i] != 1;
        EXPECT(bad == 0, "bucket %d: %d values not covered exactly once", b, bad);
        EXPECT(dl_psgd_bucket_floats(lo[b], len[b], mats, MATS, 2) == p.round1 + p.q_floats,
               "bucket %d: the wire count differs from the plan's", b);
        dl_psgd_plan_free(&p);
    }
    /* 4 x 100 does not pay at rank 2 (416 >= 400): plain in both buckets it spans */
    const dl_grad_matrix small[1] = {{0, 4, 100}};
    for (int b = 0; b < 2; b++) {
        dl_psgd_plan q;
        EXPECT(dl_psgd_plan_make(&q, 256 * (size_t)b, 256, small, 1, 2) == DL_OK &&
               q.n_pieces == 0 && q.skip == 0 && q.n_runs == 1 && q.round1 == 256 &&
               q.q_floats == 0, "bucket %d of a small matrix: not one plain run", b);
        dl_psgd_plan_free(&q);
    }
    /* the folded plan: one zero-padded near-square piece, or none */
    dl_psgd_plan p;
    EXPECT(dl_psgd_plan_make(&p, 0, 1000, NULL, 0, 2) == DL_OK && p.n_pieces == 1 &&
           p.pieces[0].rows == 32 && p.pieces[0].cols == 32 && p.pieces[0].n == 1000 &&
           p.n_runs == 0 && p.round1 == 64 && p.q_floats == 64, "folded plan of 1000 values");
    dl_psgd_plan_free(&p);
}

static void check_wire(void)
{
    dl_compress_spec psgd = {DL_COMPRESS_POWERSGD, 2};
    /* the three plans: 204 + 208, nothing, 80 + 100 floats */
    double payload = 4.0 * (412 + 0 + 180);
    EXPECT(dl_compress_payload_bytes(psgd, len, BUCKETS, mats, MATS) == payload,
           "per-layer payload %g, want %g", dl_compress_payload_bytes(psgd, len, BUCKETS, mats,
                                                                       MATS), payload);
    EXPECT(dl_compress_wire_bytes(psgd, 4, len, BUCKETS, mats, MATS) == 2.0 * 3 / 4 * payload,
           "per-layer wire bytes: two all-reduces of the payload");
    EXPECT(fabs(dl_compress_ratio(psgd, len, BUCKETS, mats, MATS) - 4.0 * LEN / payload) < 1e-12,
           "per-layer ratio");
    /* from the parameter count: buckets of 1500 become 1536 (dl_buckets_init's rounding) */
    size_t cut[3] = {1536, 1536, 928};
    EXPECT(dl_compress_wire_bytes_params(psgd, 2, LEN, 1500, mats, MATS) ==
           dl_compress_wire_bytes(psgd, 2, cut, 3, mats, MATS), "wire bytes from the count");
    EXPECT(dl_compress_wire_factor(psgd, 2, LEN, 1536, mats, MATS) ==
           dl_compress_wire_bytes(psgd, 2, cut, 3, mats, MATS) / (4.0 * LEN), "wire factor");
}

static void gradient(int step, float *g)
{
    dl_rng r;
    dl_rng_seed(&r, 7, 1, (uint64_t)step);
    for (size_t i = 0; i < LEN; i++)
        g[i] = (float)(0.01 * dl_rng_normal(&r)) + (i % 5 == 0 ? 0.02f : 0.0f);
}

static int in_piece(const dl_compressor *c, size_t i)
{
    for (int b = 0; b < c->n_buckets; b++)
        for (int j = 0; j < c->plans[b].n_pieces; j++) {
            size_t off = c->bucket_lo[b] + c->plans[b].pieces[j].off;
            if (i >= off && i < off + c->plans[b].pieces[j].n)
                return 1;
        }
    return 0;
}

static int plain_broken(int step, const float *sent, const float *got, const dl_compressor *c)
{
    (void)step;
    int broke = 0;
    for (size_t i = 0; i < LEN; i++)
        if (!in_piece(c, i))
            broke += got[i] != sent[i] || c->state[i] != 0.0f;
    return broke;
}

static void check_feedback(void)
{
    dl_compressor c;
    dl_compress_spec spec = {DL_COMPRESS_POWERSGD, 2};
    if (dl_compressor_init_on(&c, spec, LEN, lo, len, BUCKETS, 1, 5, NULL, mats, MATS) != DL_OK) {
        EXPECT(0, "init: %s", dl_error_message());
        return;
    }
    EXPECT(c.n_shared == 208 + 0 + 100, "Q part: %zu floats", c.n_shared);
    int plain_bad = 0;
    int compressed = feedback_steps(&c, LEN, lo, BUCKETS, 20, gradient, plain_broken, &plain_bad);
    EXPECT(plain_bad == 0, "%d plain values not sent exactly (or with a residual)", plain_bad);
    EXPECT(compressed > 3000, "only %d values carry a residual: were the pieces compressed?",
           compressed);
    dl_compressor_free(&c);
}

static void check_rank_refusal(void)
{
    /* 10 x 10 matrices: (10 + 10) 4 2 = 160 >= 100 at rank 4, 80 < 100 at rank 1 */
    dl_grad_matrix small[2] = {{0, 10, 10}, {128, 10, 10}};
    size_t l0[1] = {0}, n0[1] = {256};
    dl_compressor c;
    EXPECT(dl_compressor_init_on(&c, (dl_compress_spec){DL_COMPRESS_POWERSGD, 4}, 256, l0, n0, 1,
                                 1, 1, NULL, small, 2) == DL_OK, "init");
    EXPECT(dl_compressor_check_rank(&c) == DL_ERR_ARG && strstr(dl_error_message(), "no layer"),
           "powersgd:4 on 10 x 10 layers accepted (%s)", dl_error_message());
    dl_compressor_free(&c);
    EXPECT(dl_compressor_init_on(&c, (dl_compress_spec){DL_COMPRESS_POWERSGD, 1}, 256, l0, n0, 1,
                                 1, 1, NULL, small, 2) == DL_OK &&
           dl_compressor_check_rank(&c) == DL_OK && c.plans[0].n_pieces == 2,
           "powersgd:1 on 10 x 10 layers");
    dl_compressor_free(&c);
}

int main(void)
{
    check_plans();
    check_wire();
    check_feedback();
    check_rank_refusal();
    if (failures) {
        fprintf(stderr, "test_compress_plan: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_compress_plan: all checks passed\n");
    return 0;
}
