/* test_compress_place.c: where a compressor runs (comm/compress_ops.h), on
 * the CPU: the table chosen for no device, a CPU device and a CUDA device;
 * the state copied out and back (what checkpoints use); the one-rank path
 * that GPU compressors take on a backend that exchanges host memory (no
 * collective at all, the all-gather a copy), and the refusal of such a
 * backend on several ranks.  The GPU table itself is tested on a GPU
 * (gpu_compress*, tests/cuda.cmake). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"

static int failures;

#include "expect.h"

enum { LEN = 700, BUCKETS = 2 };
static const size_t lo[BUCKETS] = {0, 512}, len[BUCKETS] = {512, 188};

static void check_placement(void)
{
    dl_device cpu = {.name = "cpu", .kind = DL_DEVICE_CPU};
    dl_device gpu = {.name = "cuda:0", .kind = DL_DEVICE_CUDA};
    const char *none = dl_compress_placement(NULL), *on_cpu = dl_compress_placement(&cpu);
    const char *on_gpu = dl_compress_placement(&gpu);
    EXPECT(none && strcmp(none, "host") == 0, "no device: %s", none ? none : "(null)");
    EXPECT(on_cpu && strcmp(on_cpu, "host") == 0, "CPU device: %s", on_cpu ? on_cpu : "(null)");
#ifdef DLTRAIN_HAVE_CUDA
    EXPECT(on_gpu && strcmp(on_gpu, "cuda") == 0, "CUDA device: %s", on_gpu ? on_gpu : "(null)");
#else
    EXPECT(!on_gpu, "a build without CUDA places a CUDA device's compressor on %s", on_gpu);
    dl_compressor c;
    dl_compress_spec int8 = {DL_COMPRESS_INT8, 0};
    EXPECT(dl_compressor_init_on(&c, int8, LEN, lo, len, BUCKETS, 2, 1, &gpu, NULL, 0) == DL_ERR_ARG,
           "a CUDA compressor in a build without CUDA was made");
#endif
}

/* get_state / set_state / zero_residual on the host table */
static void check_state(void)
{
    dl_compressor c;
    dl_compress_spec psgd = {DL_COMPRESS_POWERSGD, 1};
    size_t big_lo[1] = {0}, big_n[1] = {4096};
    if (dl_compressor_init_on(&c, psgd, 4096, big_lo, big_n, 1, 2, 5, NULL, NULL, 0) != DL_OK) {
        EXPECT(0, "init: %s", dl_error_message());
        return;
    }
    EXPECT(strcmp(dl_compressor_where(&c), "host") == 0, "runs on %s", dl_compressor_where(&c));
    EXPECT(c.n_shared == 64, "PowerSGD's Q of a 64 x 64 bucket at rank 1: %zu floats",
           c.n_shared);
    float *state = malloc(c.n_state * sizeof *state), *res = malloc(c.n * sizeof *res);
    dl_compressor_get_state(&c, state);
    EXPECT(memcmp(state, c.state, c.n_state * sizeof *state) == 0, "get_state differs");
    for (size_t i = 0; i < c.n; i++)
        res[i] = (float)i * 0.25f;
    float q[64];
    for (int i = 0; i < 64; i++)
        q[i] = -(float)i;
    dl_compressor_set_state(&c, res, q);
    EXPECT(memcmp(c.state, res, c.n * sizeof *res) == 0, "set_state: residual");
    EXPECT(memcmp(c.state + c.n, q, sizeof q) == 0, "set_state: shared part");
    dl_compressor_set_state(&c, NULL, state + c.n); /* the shared part alone */
    EXPECT(memcmp(c.state, res, c.n * sizeof *res) == 0, "set_state(NULL, ..) kept the residual");
    EXPECT(memcmp(c.state + c.n, state + c.n, sizeof q) == 0, "set_state: shared part back");
    EXPECT(dl_compressor_zero_residual(&c) == DL_OK, "zero_residual");
    int nonzero = 0;
    for (size_t i = 0; i < c.n; i++)
        nonzero += c.state[i] != 0.0f;
    EXPECT(nonzero == 0, "zero_residual left %d values", nonzero);
    EXPECT(memcmp(c.state + c.n, state + c.n, sizeof q) == 0, "zero_residual touched Q");
    free(state), free(res);
    dl_compressor_free(&c);
}

/* A comm whose collectives must not run: the one-rank path makes none. */
static dl_status refuse_avg(dl_comm *c, float *x, size_t n, int slot)
{
    (void)c, (void)x, (void)n, (void)slot;
    return dl_fail(DL_ERR_COMM, "all-reduce called");
}
static dl_status refuse_wait(dl_comm *c, int slot, double *done_at)
{
    (void)c, (void)slot, (void)done_at;
    return dl_fail(DL_ERR_COMM, "wait called");
}
static dl_status refuse_gather(dl_comm *c, const void *s, void *r, size_t bytes, int slot)
{
    (void)c, (void)s, (void)r, (void)bytes, (void)slot;
    return dl_fail(DL_ERR_COMM, "all-gather called");
}

/* The GPU table's decisions with the host table's arithmetic: c->dev marks
 * the compressor as a GPU one (no device function is called on this path). */
static void check_one_rank_path(dl_compress_spec spec)
{
    dl_device gpu = {.name = "cuda:0", .kind = DL_DEVICE_CUDA};
    dl_comm host_comm = {.name = "host-only", .world = 1, .allreduce_avg_start = refuse_avg,
                         .allreduce_wait = refuse_wait, .allgather_start = refuse_gather};
    dl_compressor c, ref;
    if (dl_compressor_init(&c, spec, LEN, lo, len, BUCKETS, 1, 3) != DL_OK ||
        dl_compressor_init(&ref, spec, LEN, lo, len, BUCKETS, 1, 3) != DL_OK) {
        EXPECT(0, "init: %s", dl_error_message());
        return;
    }
    c.dev = &gpu;
    dl_comm *local = dl_comm_local();
    static float x[LEN], y[LEN];
    for (int step = 0; step < 2; step++) {
        for (size_t i = 0; i < LEN; i++)
            x[i] = y[i] = (float)((i * 37 + (size_t)step * 11) % 101) * 0.01f - 0.5f;
        for (int b = 0; b < BUCKETS; b++) {
            EXPECT(dl_compressor_start(&c, &host_comm, x + lo[b], b) == DL_OK, "start: %s",
                   dl_error_message());
            EXPECT(dl_compressor_start(&ref, local, y + lo[b], b) == DL_OK, "start");
        }
        for (int b = 0; b < BUCKETS; b++) {
            EXPECT(dl_compressor_wait(&c, &host_comm, x + lo[b], b, NULL) == DL_OK, "wait: %s",
                   dl_error_message());
            EXPECT(dl_compressor_wait(&ref, local, y + lo[b], b, NULL) == DL_OK, "wait");
        }
    }
    EXPECT(memcmp(x, y, sizeof x) == 0, "kind %d: one rank without collectives differs from the "
           "local backend", (int)spec.kind);
    EXPECT(memcmp(c.state, ref.state, c.n_state * sizeof(float)) == 0, "kind %d: state differs",
           (int)spec.kind);
    host_comm.world = 2; /* several ranks: a host-memory backend cannot carry GPU buckets */
    dl_status st = dl_compressor_start(&c, &host_comm, x, 0);
    EXPECT(st == DL_ERR_ARG && strstr(dl_error_message(), "GPU memory"),
           "kind %d: a host backend on 2 ranks was not refused (%s)", (int)spec.kind,
           dl_error_message());
    c.dev = NULL;
    dl_compressor_free(&c);
    dl_compressor_free(&ref);
}

int main(void)
{
    check_placement();
    check_state();
    dl_compress_spec specs[] = {{DL_COMPRESS_FP16, 0}, {DL_COMPRESS_INT8, 0},
                                {DL_COMPRESS_ONEBIT, 0}, {DL_COMPRESS_POWERSGD, 1}};
    for (int i = 0; i < 4; i++)
        check_one_rank_path(specs[i]);
    if (failures) {
        fprintf(stderr, "test_compress_place: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_compress_place: all checks passed\n");
    return 0;
}
