/* test_compress_mpi.c: the compressed average over the MPI backend, run
 * under mpiexec with 2 and 4 ranks (tests/mpi.cmake).
 *
 * Every rank draws its gradients from a seed and its rank, so each rank can
 * also draw every other rank's and replay their compression with the C
 * codecs alone.  For the element-wise codecs the result of two steps (the
 * second one carrying the first one's residuals) must equal, bit for bit,
 * the mean in rank order of the ranks' decompressed values; for PowerSGD it
 * must match a replay to rounding and be bitwise the same on every rank.
 * Several buckets are in flight at once, as in training.
 *
 * With --device cuda --backend staged|nccl the gradients live in GPU memory
 * and the compressor runs on the GPU (compress_ops.h) over the staged-MPI or
 * NCCL backend: the same replays must hold, bit for bit for the element-wise
 * codecs.  Ranks share the GPUs round-robin (the staged backend allows that;
 * NCCL needs a GPU per rank and the test skips when there are fewer).
 * --local runs one rank without MPI (the backend over the local one), for
 * builds and machines without MPI: the NCCL all-gather or the staging
 * copies on one GPU.
 * Without a usable GPU it prints "SKIPPED: ..." and exits 77
 * (DLTRAIN_REQUIRE_GPU=1 makes that a failure). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "device_cuda.h"
#include "gpu_skip.h"
#include "rng.h"

static int failures;

#define EXPECT(cond, ...)                                                  \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "test_compress_mpi: line %d: ", __LINE__);     \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            failures++;                                                    \
        }                                                                  \
    } while (0)

enum { LEN = 5000, BUCKETS = 3, STEPS = 2 };
static const size_t bucket_lo[BUCKETS] = {0, 2000, 4000}, bucket_n[BUCKETS] = {2000, 2000, 1000};

static void gradient(int rank, int step, float *g)
{
    dl_rng r;
    dl_rng_seed(&r, 42, (uint64_t)rank, (uint64_t)step);
    for (size_t i = 0; i < LEN; i++)
        g[i] = (float)(0.01 * dl_rng_normal(&r)) + (i % 7 == 0 ? 0.5f * (float)rank : 0.0f);
}

/* Replays an element-wise codec for every rank: want = the mean of the
 * ranks' decoded (gradient + residual) at the last step. */
static void replay_codec(dl_compress_kind kind, int world, float *want)
{
    float *res = calloc((size_t)world * LEN, sizeof *res), *g = malloc(LEN * sizeof *g);
    float *dec = malloc(LEN * sizeof *dec);
    unsigned char *enc = malloc(dl_codec_bytes(kind, LEN) + 8);
    for (int s = 0; s < STEPS; s++) {
        memset(want, 0, LEN * sizeof *want);
        for (int r = 0; r < world; r++) {
            gradient(r, s, g);
            float *rr = res + (size_t)r * LEN;
            for (int b = 0; b < BUCKETS; b++) {
                float *x = g + bucket_lo[b], *rb = rr + bucket_lo[b], *d = dec + bucket_lo[b];
                for (size_t i = 0; i < bucket_n[b]; i++)
                    x[i] += rb[i];
                dl_codec_encode(kind, x, bucket_n[b], enc);
                dl_codec_decode(kind, enc, bucket_n[b], d);
                for (size_t i = 0; i < bucket_n[b]; i++)
                    rb[i] = x[i] - d[i];
            }
            for (size_t i = 0; i < LEN; i++)
                want[i] += dec[i];
        }
        for (size_t i = 0; i < LEN; i++)
            want[i] *= 1.0f / (float)world;
    }
    free(res), free(g), free(dec), free(enc);
}

/* Replays PowerSGD for every rank with exact (double) averages of P and Q. */
static void replay_powersgd(int rank_r, int world, const dl_compressor *shape, float *want)
{
    dl_compressor *c = calloc((size_t)world, sizeof *c);
    dl_compress_spec spec = {DL_COMPRESS_POWERSGD, rank_r};
    float *g = malloc((size_t)world * LEN * sizeof *g);
    for (int r = 0; r < world; r++)
        dl_compressor_init(&c[r], spec, LEN, bucket_lo, bucket_n, BUCKETS, world, 9);
    (void)shape;
    for (int s = 0; s < STEPS; s++)
        for (int b = 0; b < BUCKETS; b++) {
            size_t m, k, n = bucket_n[b];
            dl_powersgd_shape(n, &m, &k);
            size_t np = m * (size_t)rank_r, nq = k * (size_t)rank_r;
            float *pavg = calloc(np, sizeof *pavg), *qavg = calloc(nq, sizeof *qavg);
            for (int r = 0; r < world; r++) {
                float *x = g + (size_t)r * LEN + bucket_lo[b], *mat = c[r].work[b];
                if (b == 0)
                    gradient(r, s, g + (size_t)r * LEN);
                for (size_t i = 0; i < n; i++)
                    mat[i] = x[i] + c[r].state[bucket_lo[b] + i];
                memset(mat + n, 0, (m * k - n) * sizeof *mat);
                dl_powersgd_mul(mat, c[r].state + c[r].q_off[b], mat + m * k, m, k, rank_r);
                for (size_t i = 0; i < np; i++)
                    pavg[i] += mat[m * k + i] / (float)world;
            }
            dl_powersgd_orthonormalize(pavg, m, rank_r);
            for (int r = 0; r < world; r++) {
                float *q = c[r].state + c[r].q_off[b];
                dl_powersgd_mul_t(c[r].work[b], pavg, q, m, k, rank_r);
                for (size_t i = 0; i < nq; i++)
                    qavg[i] += q[i] / (float)world;
            }
            for (int r = 0; r < world; r++) {
                float *q = c[r].state + c[r].q_off[b], *approx = c[r].scratch;
                memcpy(q, qavg, nq * sizeof *q);
                dl_powersgd_outer(pavg, q, approx, m, k, rank_r);
                for (size_t i = 0; i < n; i++)
                    c[r].state[bucket_lo[b] + i] = c[r].work[b][i] - approx[i];
                memcpy(want + bucket_lo[b], approx, n * sizeof *want);
            }
            free(pavg), free(qavg);
        }
    for (int r = 0; r < world; r++)
        dl_compressor_free(&c[r]);
    free(c), free(g);
}

/* Two steps through the compressor over comm, all buckets in flight; on a
 * GPU (dev) the gradients are uploaded to grads and the result read back. */
static void run_compressed(dl_comm *comm, dl_compressor *c, float *x, dl_device *dev,
                           float *grads)
{
    float *g = dev ? grads : x;
    for (int s = 0; s < STEPS; s++) {
        gradient(comm->rank, s, x);
        if (dev)
            dev->upload(dev, grads, x, LEN * sizeof *x);
        for (int b = 0; b < BUCKETS; b++)
            EXPECT(dl_compressor_start(c, comm, g + bucket_lo[b], b) == DL_OK, "start: %s",
                   dl_error_message());
        for (int b = 0; b < BUCKETS; b++)
            EXPECT(dl_compressor_wait(c, comm, g + bucket_lo[b], b, NULL) == DL_OK, "wait: %s",
                   dl_error_message());
    }
    if (dev)
        dev->download(dev, x, grads, LEN * sizeof *x); /* waits for the device's queued work */
}

static void check_kind(dl_comm *comm, dl_compress_spec spec, dl_device *dev, float *grads)
{
    char name[24];
    dl_compress_name(spec, name, sizeof name);
    dl_compressor c;
    if (dl_compressor_init_on(&c, spec, LEN, bucket_lo, bucket_n, BUCKETS, comm->world, 9,
                              dev) != DL_OK) {
        EXPECT(0, "%s: init: %s", name, dl_error_message());
        return;
    }
    EXPECT(strcmp(dl_compressor_where(&c), dev ? "cuda" : "host") == 0, "%s runs on %s", name,
           dl_compressor_where(&c));
    static float x[LEN], want[LEN], rank0[LEN];
    run_compressed(comm, &c, x, dev, grads);
    if (spec.kind == DL_COMPRESS_POWERSGD)
        replay_powersgd(spec.rank, comm->world, &c, want);
    else
        replay_codec(spec.kind, comm->world, want);
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < LEN; i++) {
        double err = fabs((double)x[i] - want[i]);
        worst = fmax(worst, err);
        bad += spec.kind == DL_COMPRESS_POWERSGD ? !(err <= 1e-4 + 1e-3 * fabs(want[i]))
                                                 : x[i] != want[i];
    }
    EXPECT(bad == 0, "rank %d, %s: %d of %d averaged values differ from the mean of the ranks' "
           "decompressed values (worst by %g)", comm->rank, name, bad, LEN, worst);
    memcpy(rank0, x, sizeof x);
    EXPECT(comm->broadcast(comm, rank0, sizeof rank0, 0) == DL_OK, "broadcast");
    EXPECT(memcmp(rank0, x, sizeof x) == 0, "rank %d, %s: result differs from rank 0's", comm->rank,
           name);
    dl_compressor_free(&c);
}

/* --device cuda --backend staged|nccl: the GPU (shared round-robin) and
 * the backend over `host`; NULL device when there is nothing to run on
 * (*skip set, the reason printed by rank 0). */
static dl_comm *gpu_comm(dl_comm *host, const char *backend, dl_device **dev, int *skip)
{
    char why[256];
    int gpus = dl_device_cuda_count(why, sizeof why);
    *dev = NULL, *skip = 0;
    if (strcmp(backend, "nccl") == 0 && (!dl_comm_nccl_available() || gpus < host->world)) {
        if (host->rank == 0)
            printf("SKIPPED: NCCL needs %s (%d ranks, %d GPUs)\n", dl_comm_nccl_available()
                   ? "a GPU per rank" : "a build with NCCL", host->world, gpus);
        *skip = 1;
        return NULL;
    }
    *dev = dl_device_cuda(host->local_rank % gpus, why, sizeof why);
    if (!*dev) {
        fprintf(stderr, "test_compress_mpi: rank %d: %s\n", host->rank, why);
        return NULL;
    }
    dl_comm *c = strcmp(backend, "nccl") == 0 ? dl_comm_nccl(host, *dev)
                                               : dl_comm_staged(host, *dev);
    if (!c)
        fprintf(stderr, "test_compress_mpi: %s backend: %s\n", backend, dl_error_message());
    return c;
}

/* Before MPI starts: 77 (skip) without a usable GPU, unless one is required. */
static int gpu_missing(void)
{
    char why[256];
    if (dl_device_cuda_count(why, sizeof why) > 0)
        return 0;
    return dl_test_no_gpu(why);
}

int main(int argc, char **argv)
{
    const char *backend = NULL; /* --device cuda --backend staged|nccl [--local] */
    int local = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            backend = argv[i + 1];
        local |= strcmp(argv[i], "--local") == 0;
    }
    int missing = backend ? gpu_missing() : 0;
    if (missing)
        return missing;
    dl_comm *comm = local ? dl_comm_local() : dl_comm_mpi(&argc, &argv);
    if (!comm) {
        fprintf(stderr, "test_compress_mpi: %s\n", dl_error_message());
        return 1;
    }
    dl_device *dev = NULL;
    float *grads = NULL;
    int skip = 0;
    if (backend) {
        dl_comm *g = gpu_comm(comm, backend, &dev, &skip);
        if (!g) {
            if (dev)
                dl_device_cuda_destroy(dev);
            comm->free(comm);
            return skip ? 77 : 1;
        }
        comm = g;
        grads = dev->alloc(dev, LEN * sizeof *grads, "gradients");
    }
    dl_compress_spec specs[] = {{DL_COMPRESS_FP16, 0}, {DL_COMPRESS_BF16, 0},
                                {DL_COMPRESS_INT8, 0}, {DL_COMPRESS_ONEBIT, 0},
                                {DL_COMPRESS_POWERSGD, 1}, {DL_COMPRESS_POWERSGD, 4}};
    for (int i = 0; i < 6; i++)
        check_kind(comm, specs[i], dev, grads);
    double total = failures;
    comm->allreduce_sum_f64(comm, &total, 1);
    if (comm->rank == 0)
        printf("test_compress_mpi: %d ranks%s%s, %s\n", comm->world, dev ? ", GPU memory, " : "",
               dev ? comm->name : "", total ? "FAILED" : "all checks passed");
    if (grads)
        dev->free(dev, grads);
    comm->free(comm);
    if (dev)
        dl_device_cuda_destroy(dev);
    return total ? 1 : 0;
}
