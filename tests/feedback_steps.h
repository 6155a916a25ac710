/* feedback_steps.h: steps of a compressor on one rank (the local comm),
 * checking error feedback's identity, for the per-layer tests
 * (test_compress_plan.c, test_onebit_layers.c).  Include after expect.h. */
#ifndef DL_TEST_FEEDBACK_STEPS_H
#define DL_TEST_FEEDBACK_STEPS_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"

/* The gradients of a step, into g[n]. */
typedef void (*fb_gradient)(int step, float *g);
/* After a step's exchange: `sent` the gradients, `got` the average that
 * came back; returns how many values broke the test's own rule. */
typedef int (*fb_after)(int step, const float *sent, const float *got, const dl_compressor *c);

/* Runs `steps` steps of c over buckets [lo[b], lo[b] + len[b]) of n values:
 * EXPECTs sum(applied) + residual == sum(gradients) at every value, adds
 * the hook's counts to *broke, and returns how many values carry a residual
 * at the end. */
static int feedback_steps(dl_compressor *c, size_t n, const size_t *lo, int buckets, int steps,
                          fb_gradient gradient, fb_after after, int *broke)
{
    dl_comm *comm = dl_comm_local();
    float *g = malloc(n * sizeof *g), *sent = malloc(n * sizeof *sent);
    double *sum_g = calloc(n, sizeof *sum_g), *sum_abs = calloc(n, sizeof *sum_abs);
    double *sum_applied = calloc(n, sizeof *sum_applied);
    int bad = 0, carried = 0;
    for (int s = 0; s < steps; s++) {
        gradient(s, g);
        memcpy(sent, g, n * sizeof *g);
        for (size_t i = 0; i < n; i++)
            sum_g[i] += g[i], sum_abs[i] += fabs(g[i]);
        for (int b = 0; b < buckets; b++)
            EXPECT(dl_compressor_start(c, comm, g + lo[b], b) == DL_OK, "start");
        for (int b = 0; b < buckets; b++)
            EXPECT(dl_compressor_wait(c, comm, g + lo[b], b, NULL) == DL_OK, "wait");
        *broke += after(s, sent, g, c);
        for (size_t i = 0; i < n; i++)
            sum_applied[i] += g[i];
    }
    for (size_t i = 0; i < n; i++) {
        double err = fabs(sum_applied[i] + c->state[i] - sum_g[i]);
        bad += !(err <= 1e-5 * (sum_abs[i] + fabs(sum_applied[i]) + fabs(c->state[i])));
        carried += c->state[i] != 0.0f;
    }
    EXPECT(bad == 0, "sum(applied) + residual != sum(gradients) at %d values", bad);
    free(g), free(sent), free(sum_g), free(sum_abs), free(sum_applied);
    comm->free(comm);
    return carried;
}

#endif
