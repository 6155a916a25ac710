/* test_compress_mpi.c: the compressed average over the MPI backend, run
 * under mpiexec with 2 and 4 ranks (tests/mpi.cmake).
 *
 * Every rank draws its gradients from a seed and its rank, so each rank can
 * also draw every other rank's and replay their compression with the C
 * codecs alone.  For the element-wise codecs the result of two steps (the
 * second one carrying the first one's residuals) must equal, bit for bit,
 * the mean in rank order of the ranks' decompressed values; for PowerSGD it
 * must match a replay to rounding and be bitwise the same on every rank.
 * Several buckets are in flight at once, as in training.  PowerSGD runs
 * both folded (one matrix per bucket) and per layer, over a hand-made
 * layout whose middle matrix straddles a bucket boundary; the per-layer
 * replay works matrix by matrix from a hand-written list of the pieces
 * (independent of the compressor's plan), and also checks this rank's
 * residual and that plain values come out as the mean.
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

#include "expect.h"

enum { LEN = 5000, BUCKETS = 3, STEPS = 2 };
static const size_t bucket_lo[BUCKETS] = {0, 2000, 4000}, bucket_n[BUCKETS] = {2000, 2000, 1000};

/* Weight matrices: A [0, 1500) 30 x 50, a bias and padding, B [1536, 3936)
 * 40 x 60 across the boundary at 2000, C [4000, 4900) 20 x 45. */
enum { MATS = 3 };
static const dl_grad_matrix mats[MATS] = {{4000, 20, 45}, {1536, 40, 60}, {0, 30, 50}};

/* A net's weight matrices as the compressor gets them (count 0: none, so
 * every bucket is folded or one run). */
typedef struct layout {
    const dl_grad_matrix *mats;
    size_t count;
} layout;
static const layout folded = {NULL, 0}, small_layers = {mats, MATS};

/* For onebit per layer with runs of both kinds over MPI: D [0, 4500)
 * 50 x 90, over DL_ONEBIT_EXACT_BELOW, coded in blocks in all three
 * buckets; E [4600, 4900) 10 x 30 and the vectors around it exact. */
static const dl_grad_matrix big_mats[2] = {{4600, 10, 30}, {0, 50, 90}};
static const layout big_layers = {big_mats, 2};

/* The compressed matrices by hand ((rows + cols) rank 2 < rows cols holds
 * for all three at ranks 1 and 4), each whole in the bucket where it
 * starts: A and B in bucket 0 (B reaching to 3936 in bucket 1), C in
 * bucket 2; bucket 1 sends only [3936, 4000) plain.  q: its Q's offset in
 * the shared state, bucket by bucket. */
typedef struct piece {
    size_t off, rows, cols, q;
} piece;
static const piece pieces_r1[] = {{0, 30, 50, 0}, {1536, 40, 60, 50}, {4000, 20, 45, 110}};
static const piece pieces_r4[] = {{0, 30, 50, 0}, {1536, 40, 60, 200}, {4000, 20, 45, 440}};

static void gradient(int rank, int step, float *g)
{
    dl_rng r;
    dl_rng_seed(&r, 42, (uint64_t)rank, (uint64_t)step);
    for (size_t i = 0; i < LEN; i++)
        g[i] = (float)(0.01 * dl_rng_normal(&r)) + (i % 7 == 0 ? 0.5f * (float)rank : 0.0f);
}

/* Encodes and decodes bucket b run by run: one run of the whole bucket,
 * or per layer (onebit) the runs dl_codec_segments gives. */
static void code_bucket(dl_compress_kind kind, int b, layout layers, float *x, float *d,
                        unsigned char *enc)
{
    dl_codec_seg runs[2 * MATS + 2];
    size_t count = dl_codec_segments(kind, bucket_lo[b], bucket_n[b], LEN, layers.mats,
                                     layers.count, runs, 2 * MATS + 2, NULL);
    for (size_t j = 0; j < count; j++) {
        dl_codec_encode(runs[j].kind, x + runs[j].off, runs[j].n, enc);
        dl_codec_decode(runs[j].kind, enc, runs[j].n, d + runs[j].off);
    }
}

/* Replays an element-wise codec for every rank: want = the mean of the
 * ranks' decoded (gradient + residual) at the last step. */
static void replay_codec(dl_compress_kind kind, int world, layout layers, float *want)
{
    float *res = calloc((size_t)world * LEN, sizeof *res), *g = malloc(LEN * sizeof *g);
    float *dec = malloc(LEN * sizeof *dec);
    unsigned char *enc = malloc(4 * LEN + 8);
    for (int s = 0; s < STEPS; s++) {
        memset(want, 0, LEN * sizeof *want);
        for (int r = 0; r < world; r++) {
            gradient(r, s, g);
            float *rr = res + (size_t)r * LEN;
            for (int b = 0; b < BUCKETS; b++) {
                float *x = g + bucket_lo[b], *rb = rr + bucket_lo[b], *d = dec + bucket_lo[b];
                for (size_t i = 0; i < bucket_n[b]; i++)
                    x[i] += rb[i];
                code_bucket(kind, b, layers, x, d, enc);
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
                float *q = c[r].state + c[r].q_off[b]; /* the warm start, orthonormal */
                dl_powersgd_orthonormalize(q, k, rank_r);
                dl_powersgd_mul(mat, q, mat + m * k, m, k, rank_r);
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

static void piece_step(const piece *pc, int r, int world, float *g, float *res, float *q,
                       float *want, float *want_res, int me)
{
    size_t m = pc->rows, k = pc->cols, mk = m * k;
    float *mat = malloc((size_t)world * mk * sizeof *mat), *p = malloc(m * (size_t)r * 4);
    float *pavg = calloc(m * (size_t)r, 4), *qr = malloc(k * (size_t)r * 4);
    float *qavg = calloc(k * (size_t)r, 4), *approx = malloc(mk * sizeof *approx);
    dl_powersgd_orthonormalize(q, k, r); /* the warm start, as PyTorch's hook */
    for (int w = 0; w < world; w++) {
        float *mw = mat + (size_t)w * mk;
        for (size_t i = 0; i < mk; i++)
            mw[i] = g[(size_t)w * LEN + pc->off + i] + res[(size_t)w * LEN + pc->off + i];
        dl_powersgd_mul(mw, q, p, m, k, r);
        for (size_t i = 0; i < m * (size_t)r; i++)
            pavg[i] += p[i] / (float)world;
    }
    dl_powersgd_orthonormalize(pavg, m, r);
    for (int w = 0; w < world; w++) {
        dl_powersgd_mul_t(mat + (size_t)w * mk, pavg, qr, m, k, r);
        for (size_t i = 0; i < k * (size_t)r; i++)
            qavg[i] += qr[i] / (float)world;
    }
    memcpy(q, qavg, k * (size_t)r * sizeof *q);
    dl_powersgd_outer(pavg, q, approx, m, k, r);
    for (int w = 0; w < world; w++)
        for (size_t i = 0; i < mk; i++)
            res[(size_t)w * LEN + pc->off + i] = mat[(size_t)w * mk + i] - approx[i];
    memcpy(want + pc->off, approx, mk * sizeof *want);
    memcpy(want_res + pc->off, res + (size_t)me * LEN + pc->off, mk * sizeof *want);
    free(mat), free(p), free(pavg), free(qr), free(qavg), free(approx);
}

/* Replays per-layer PowerSGD for every rank, matrix by matrix from the hand
 * list: want = the result, want_res = rank `me`'s residual; plain values
 * are the exact mean and keep a zero residual. */
static void replay_layers(int r, int world, int me, float *want, float *want_res)
{
    const piece *pcs = r == 1 ? pieces_r1 : pieces_r4;
    int n_pcs = 3;
    float *g = malloc((size_t)world * LEN * sizeof *g);
    float *res = calloc((size_t)world * LEN, sizeof *res);
    dl_compressor fresh; /* only for the seeded starting Q */
    dl_compressor_init_on(&fresh, (dl_compress_spec){DL_COMPRESS_POWERSGD, r}, LEN, bucket_lo,
                          bucket_n, BUCKETS, world, 9, NULL, mats, MATS);
    float *q = malloc(fresh.n_shared * sizeof *q);
    memcpy(q, fresh.state + LEN, fresh.n_shared * sizeof *q);
    dl_compressor_free(&fresh);
    for (int s = 0; s < STEPS; s++) {
        memset(want, 0, LEN * sizeof *want);
        memset(want_res, 0, LEN * sizeof *want_res);
        for (int w = 0; w < world; w++) {
            gradient(w, s, g + (size_t)w * LEN);
            for (size_t i = 0; i < LEN; i++)
                want[i] += g[(size_t)w * LEN + i]; /* the plain mean; pieces overwrite it */
        }
        for (size_t i = 0; i < LEN; i++)
            want[i] /= (float)world;
        for (int j = 0; j < n_pcs; j++)
            piece_step(&pcs[j], r, world, g, res, q + pcs[j].q, want, want_res, me);
    }
    free(g), free(res), free(q);
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

/* want_res: this rank's residual by the per-layer replay (NULL otherwise) */
static void check_residual(dl_compressor *c, int rank, const char *name, const float *want_res)
{
    static float state[LEN + 1024];
    dl_compressor_get_state(c, state);
    int bad = 0;
    for (size_t i = 0; i < LEN; i++)
        bad += !(fabs((double)state[i] - want_res[i]) <= 1e-4 + 1e-3 * fabs(want_res[i]));
    EXPECT(bad == 0, "rank %d, %s per layer: %d residuals differ from the replay's", rank, name,
           bad);
}

static void check_kind(dl_comm *comm, dl_compress_spec spec, dl_device *dev, float *grads,
                       layout layers)
{
    int per_layer = layers.count > 0;
    char name[24];
    dl_compress_name(spec, name, sizeof name);
    dl_compressor c;
    if (dl_compressor_init_on(&c, spec, LEN, bucket_lo, bucket_n, BUCKETS, comm->world, 9,
                              dev, layers.mats, layers.count) != DL_OK) {
        EXPECT(0, "%s: init: %s", name, dl_error_message());
        return;
    }
    EXPECT(strcmp(dl_compressor_where(&c), dev ? "cuda" : "host") == 0, "%s runs on %s", name,
           dl_compressor_where(&c));
    static float x[LEN], want[LEN], rank0[LEN], want_res[LEN];
    run_compressed(comm, &c, x, dev, grads);
    int psgd = spec.kind == DL_COMPRESS_POWERSGD;
    if (per_layer && psgd)
        replay_layers(spec.rank, comm->world, comm->rank, want, want_res);
    else if (psgd)
        replay_powersgd(spec.rank, comm->world, &c, want);
    else
        replay_codec(spec.kind, comm->world, layers, want);
    if (per_layer && psgd)
        check_residual(&c, comm->rank, name, want_res);
    int bad = 0;
    double worst = 0;
    for (size_t i = 0; i < LEN; i++) {
        double err = fabs((double)x[i] - want[i]);
        worst = fmax(worst, err);
        bad += spec.kind == DL_COMPRESS_POWERSGD ? !(err <= 1e-4 + 1e-3 * fabs(want[i]))
                                                 : x[i] != want[i];
    }
    EXPECT(bad == 0, "rank %d, %s%s: %d of %d averaged values differ from the mean of the ranks' "
           "decompressed values (worst by %g)", comm->rank, name, per_layer ? " per layer" : "",
           bad, LEN, worst);
    memcpy(rank0, x, sizeof x);
    EXPECT(comm->broadcast(comm, rank0, sizeof rank0, 0) == DL_OK, "broadcast");
    EXPECT(memcmp(rank0, x, sizeof x) == 0, "rank %d, %s: result differs from rank 0's", comm->rank,
           name);
    dl_compressor_free(&c);
}

/* The big layout's last bucket must hold both a run of onebit blocks and
 * an exact run, or its check would not test their mix. */
static void check_mixed_runs(void)
{
    dl_codec_seg runs[2 * MATS + 2];
    size_t count = dl_codec_segments(DL_COMPRESS_ONEBIT, bucket_lo[2], bucket_n[2], LEN,
                                     big_layers.mats, big_layers.count, runs, 2 * MATS + 2, NULL);
    int coded = 0, exact = 0;
    for (size_t j = 0; j < count; j++) {
        coded += runs[j].kind == DL_COMPRESS_ONEBIT;
        exact += runs[j].kind == DL_COMPRESS_NONE;
    }
    EXPECT(coded > 0 && exact > 0, "big layout, bucket 2: %d onebit runs, %d exact (want both)",
           coded, exact);
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
        check_kind(comm, specs[i], dev, grads, folded);
    check_kind(comm, specs[4], dev, grads, small_layers); /* PowerSGD per layer, ranks 1 and 4 */
    check_kind(comm, specs[5], dev, grads, small_layers);
    /* onebit per layer: the small matrices are all under
     * DL_ONEBIT_EXACT_BELOW, so every run goes exact (a run's shard inside
     * the bucket's, read `stride` apart); the big layout mixes blocks and
     * exact runs in one bucket */
    check_kind(comm, specs[3], dev, grads, small_layers);
    check_mixed_runs();
    check_kind(comm, specs[3], dev, grads, big_layers);
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
