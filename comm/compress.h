/* compress.h: gradient compression with error feedback (see docs/compression.md).
 *
 * Each rank adds its residual (what earlier steps' compression left out) to
 * its gradient bucket, compresses the sum, and keeps the part compression
 * lost as the next residual.  So nothing is ever dropped, only delayed: the
 * sum of the updates a rank sent plus its residual equals the sum of its
 * true gradients.
 *
 * Compressed values cannot be summed by MPI_SUM/ncclSum (an int8 sum
 * overflows, two per-block scales do not add, a sign bit has no sum), so the
 * element-wise codecs (fp16, bf16, int8, onebit) use an all-gather of every
 * rank's compressed bucket followed by a local decompress-and-sum in rank
 * order: every rank computes the same mean of the ranks' decompressed
 * values, bit for bit.  PowerSGD's factors P = M Q and Q = M^T P are linear in
 * M, so they go through the ordinary float all-reduce.
 *
 * The codecs here are the plain C reference (and what the CPU path runs);
 * gradients in GPU memory are compressed, exchanged and decoded on the GPU
 * by the same exchange with CUDA kernels (compress_ops.h, compress_cuda.h). */
#ifndef DL_COMPRESS_H
#define DL_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "device.h"
#include "grad_matrix.h"

typedef enum {
    DL_COMPRESS_NONE,
    DL_COMPRESS_FP16,
    DL_COMPRESS_BF16,
    DL_COMPRESS_INT8,
    DL_COMPRESS_ONEBIT,
    DL_COMPRESS_POWERSGD,
} dl_compress_kind;

typedef struct dl_compress_spec {
    dl_compress_kind kind;
    int rank; /* powersgd only: 1..DL_POWERSGD_MAX_RANK */
} dl_compress_spec;

#define DL_COMPRESS_BLOCK 256      /* values per int8 scale / onebit pair of means */
#define DL_POWERSGD_MAX_RANK 4
#define DL_COMPRESS_NAMES "none, fp16, bf16, int8, onebit, powersgd[:RANK] (RANK 1 to 4, default 4)"

/* Parses "int8", "powersgd:2" ..; on an unknown name or bad rank returns
 * DL_ERR_ARG with a message listing the valid names. */
dl_status dl_compress_parse(const char *text, dl_compress_spec *out);
/* "int8", "powersgd:2": the canonical name (parse(name(s)) == s). */
void dl_compress_name(dl_compress_spec s, char *out, size_t size);

/* ---- element-wise codecs (fp16, bf16, int8, onebit) ----------------------- */

/* Bytes of n values once encoded (a multiple of 8, so shards stay aligned). */
size_t dl_codec_bytes(dl_compress_kind kind, size_t n);
/* Encodes x[0, n) into out[dl_codec_bytes(kind, n)]. */
void dl_codec_encode(dl_compress_kind kind, const float *x, size_t n, void *out);
/* Decodes into y[0, n). */
void dl_codec_decode(dl_compress_kind kind, const void *in, size_t n, float *y);
/* Scalar conversions, round to nearest even; values beyond the format's
 * range become its largest finite value (the residual keeps the rest). */
uint16_t dl_float_to_half(float x);
float dl_half_to_float(uint16_t h);
uint16_t dl_float_to_bf16(float x);
float dl_bf16_to_float(uint16_t b);

/* ---- onebit per layer ------------------------------------------------------ */

/* With the net's weight matrices, onebit codes each tensor on its own: a
 * weight matrix, or the vectors (biases, batch-norm scales and shifts)
 * between two matrices, taken as one tensor.  Blocks start at the tensor's
 * first value (or the bucket's, where a bucket cuts it), so no block mixes
 * two layers' scales, and a tensor of fewer than DL_ONEBIT_EXACT_BELOW
 * values goes as exact fp32: those are few bytes, and one sign and two
 * means per block cost them the most accuracy (docs/compression.md).
 * Without matrices (`bench allreduce`) a bucket is one run of blocks. */
#define DL_ONEBIT_EXACT_BELOW 4096

/* A run of a bucket's values coded with one codec: x[off, off + n) encoded
 * at byte `at` of the bucket's encoding (a multiple of 8). */
typedef struct dl_codec_seg {
    size_t off, n, at;
    dl_compress_kind kind; /* the compressor's, or DL_COMPRESS_NONE: exact fp32 */
} dl_codec_seg;

/* Whether compressor `kind` goes layer by layer when given the net's
 * weight matrices (PowerSGD and onebit; the other codecs ignore them). */
int dl_compress_by_layer(dl_compress_kind kind);

/* The runs of bucket [lo, lo + n) of `total` gradients for an element-wise
 * codec: with matrices (in any order, not overlapping) and onebit, tensor by
 * tensor as above (adjacent exact runs merged); otherwise the whole bucket
 * in `kind`.  Writes up to max runs
 * to out (NULL, 0 to count), returns how many there are, and sets *bytes to
 * the bucket's encoded size, the sum of the runs' codec bytes each rounded
 * up to 8. */
size_t dl_codec_segments(dl_compress_kind kind, size_t lo, size_t n, size_t total,
                         const dl_grad_matrix *mats, int n_mats, dl_codec_seg *out, size_t max,
                         size_t *bytes);

/* ---- PowerSGD ------------------------------------------------------------ */

/* Per layer (PyTorch's powerSGD_hook): each layer's weight gradient is its
 * own rows x cols matrix (grad_matrix.h) with its own P, Q and warm start;
 * biases, batch-norm vectors and matrices too small to shrink go next to the
 * Ps as plain floats, averaged exactly by the same all-reduce.  Without
 * matrices (NULL, 0: `bench allreduce`, which has no layers) each bucket is
 * folded into one near-square matrix instead: PyTorch's batched_powerSGD_hook,
 * which its documentation says usually costs accuracy. */

/* The folded matrix of a bucket of n values: m = ceil(sqrt(n)) rows,
 * k = ceil(n / m) columns, zero-padded. */
void dl_powersgd_shape(size_t n, size_t *m, size_t *k);
/* Folded: whether a bucket of n values is sent as plain floats, when P and
 * Q would be no smaller than the bucket; exact, so no residual. */
int dl_powersgd_plain(size_t n, int rank);
/* Per layer: whether a rows x cols matrix is compressed at `rank`:
 * PyTorch's rule with its min_compression_rate of 2,
 * (rows + cols) rank 2 < rows cols. */
int dl_powersgd_pays(size_t rows, size_t cols, int rank);

/* One matrix of a bucket: values x[off, off + n) as a rows x cols
 * row-major matrix, zero-padded past n (only a folded bucket pads).  A
 * layer's matrix may reach past the bucket's end (see dl_psgd_plan). */
typedef struct dl_psgd_piece {
    size_t off, n, rows, cols;
    size_t mat, p, q; /* where its M, P and Q start: in the work buffer, in
                         the round-1 buffer, in the bucket's Q part */
} dl_psgd_piece;
/* Values x[off, off + n) of a bucket sent as plain floats, at `at` in the
 * round-1 buffer (after every piece's P). */
typedef struct dl_psgd_run {
    size_t off, n, at;
} dl_psgd_run;
/* How one bucket goes: round 1 all-reduces [P_1 .. P_j | plain runs]
 * (round1 floats), round 2 [Q_1 .. Q_j] (q_floats); the pieces' Ms take
 * mat_floats of work space.  A weight matrix belongs whole to the bucket
 * its first value lies in (one P and Q per layer, as PyTorch's buckets
 * never split a parameter), so that bucket's piece may reach past its end,
 * and the bucket(s) it reaches into skip those values: x[0, skip) belongs
 * to an earlier bucket's matrix.  This needs the whole layer's gradient
 * final when its first bucket starts, which dl_buckets_ready gives (a
 * layer is reported ready at once).  No pieces and no skip: the bucket is
 * one plain all-reduce of x in place; round1 0: it sends nothing. */
typedef struct dl_psgd_plan {
    dl_psgd_piece *pieces;
    int n_pieces;
    dl_psgd_run *runs;
    int n_runs;
    size_t skip;
    size_t mat_floats, round1, q_floats;
    size_t largest; /* the largest piece's rows x cols (the approximation's scratch) */
} dl_psgd_plan;

/* The plan of bucket [lo, lo + n) of the flat gradients at `rank`: with
 * matrices, each matrix starting in the bucket makes a piece when
 * dl_powersgd_pays; without (mats NULL), the folded bucket.  Every value of
 * the bucket lies in exactly one piece, one run or the skip. */
dl_status dl_psgd_plan_make(dl_psgd_plan *plan, size_t lo, size_t n, const dl_grad_matrix *mats,
                            int n_mats, int rank);
void dl_psgd_plan_free(dl_psgd_plan *plan);
/* Floats one rank sends for that bucket in its two all-reduces
 * (round1 + q_floats, or n when it has no pieces), without a plan. */
size_t dl_psgd_bucket_floats(size_t lo, size_t n, const dl_grad_matrix *mats, int n_mats,
                             int rank);
/* The bucket's values that go low-rank (its pieces' n), what PowerSGD's
 * products cost in proportion to. */
size_t dl_psgd_low_rank_floats(size_t lo, size_t n, const dl_grad_matrix *mats, int n_mats,
                               int rank);

/* Orthonormalizes the r columns of p (m x r, row-major) by Gram-Schmidt. */
void dl_powersgd_orthonormalize(float *p, size_t m, int r);
/* out (m x r) = a (m x k) * b (k x r); out (k x r) = a^T (k x m) * b (m x r);
 * out (m x k) = p (m x r) * q^T (r x k).  Row-major, fixed summation order. */
void dl_powersgd_mul(const float *a, const float *b, float *out, size_t m, size_t k, int r);
void dl_powersgd_mul_t(const float *a, const float *b, float *out, size_t m, size_t k, int r);
void dl_powersgd_outer(const float *p, const float *q, float *out, size_t m, size_t k, int r);

/* ---- the wire model ------------------------------------------------------- */

/* Every function here takes the net's weight matrices (mats, n_mats) for
 * per-layer PowerSGD, or NULL, 0 for folded buckets (see above); the other
 * compressors ignore them. */

/* Bytes each rank sends per step to average gradients cut into n_buckets
 * consecutive buckets of bucket_sizes[i] floats (the first at 0) over
 * `world` ranks, with ring algorithms: all-reduce of B bytes 2 (W-1)/W B,
 * all-gather of B bytes per rank (W-1) B.  0 on one rank. */
double dl_compress_wire_bytes(dl_compress_spec s, int world, const size_t *bucket_sizes,
                              int n_buckets, const dl_grad_matrix *mats, int n_mats);
/* The same for n_params gradients cut as dl_buckets_init cuts them: buckets
 * of bucket_floats rounded up to DL_BUCKET_ALIGN_FLOATS, the last one
 * shorter (where a bucket ends decides which rows of a layer go plain, and
 * how many blocks and block headers a codec sends). */
double dl_compress_wire_bytes_params(dl_compress_spec s, int world, size_t n_params,
                                     size_t bucket_floats, const dl_grad_matrix *mats,
                                     int n_mats);
/* Bytes on the wire per step with s over those of the plain fp32 ring
 * all-reduce, at `world` ranks (1 for none or one rank): what `predict` and
 * `scale` multiply the gradient (and bucket) bytes by. */
double dl_compress_wire_factor(dl_compress_spec s, int world, size_t n_params,
                               size_t bucket_floats, const dl_grad_matrix *mats, int n_mats);
/* Milliseconds one rank spends per step in the C codecs (compress_cost.c):
 * error feedback, encode and decoding every rank's shard (element-wise
 * codecs), or PowerSGD's three products and Gram-Schmidt, for n_params
 * gradients in buckets of bucket_floats at `world` ranks.  Timed here, on
 * this CPU, at most once per compressor and process (about 0.1 s), then
 * scaled: the cost of one rank's CPU path, not of the CUDA kernels. */
double dl_compress_cpu_ms(dl_compress_spec s, int world, size_t n_params, size_t bucket_floats,
                          const dl_grad_matrix *mats, int n_mats);
/* Bytes a rank contributes per step (its encoded buckets, or P and Q), and
 * the compression ratio: fp32 gradient bytes over that. */
double dl_compress_payload_bytes(dl_compress_spec s, const size_t *bucket_sizes, int n_buckets,
                                 const dl_grad_matrix *mats, int n_mats);
double dl_compress_ratio(dl_compress_spec s, const size_t *bucket_sizes, int n_buckets,
                         const dl_grad_matrix *mats, int n_mats);

/* ---- the compressed average over a comm ----------------------------------- */

typedef struct dl_compress_ops dl_compress_ops; /* compress_ops.h: host or CUDA */

/* State for one gradient buffer cut into buckets.  state[] is one flat
 * buffer: this rank's residual [n] (per rank), then PowerSGD's warm-started
 * Qs of each bucket, piece after piece (the same on every rank); both go
 * into checkpoints.
 * state, send, recv, work and scratch live where the gradients do: host
 * memory, or GPU memory for a compressor made for a CUDA device (read and
 * write the state there with dl_compressor_get_state / set_state). */
typedef struct dl_compressor {
    dl_compress_spec spec;
    const dl_compress_ops *ops; /* chosen once by dl_compressor_init_on */
    dl_device *dev;           /* the CUDA device of the GPU table; NULL on the host */
    size_t n;                 /* gradient floats */
    int n_buckets;
    size_t *bucket_lo, *bucket_n; /* [n_buckets] (host memory) */
    float *state;             /* [n_state]: residual[n], then Q of each bucket */
    size_t n_state, n_shared; /* n_shared: the Q part, identical across ranks */
    size_t *q_off;            /* [n_buckets] offset of bucket i's Qs in state */
    dl_psgd_plan *plans;      /* [n_buckets] powersgd: how each bucket goes */
    int per_layer;            /* made with the net's matrices (powersgd: else folded;
                                 onebit: else one run of blocks per bucket) */
    dl_codec_seg **segs;      /* [n_buckets] element-wise codecs: each bucket's runs */
    size_t *n_segs, *enc_bytes; /* [n_buckets] how many runs, the encoded bucket's bytes */
    unsigned char **send;     /* [n_buckets] encoded bucket (element-wise codecs) */
    unsigned char **recv;     /* [n_buckets] every rank's encoded bucket */
    float **work;             /* [n_buckets] powersgd: the pieces' Ms [mat_floats],
                                 then the round-1 buffer [round1]: Ps, plain runs */
    float *scratch;           /* decoded shard / approximation, largest bucket or piece */
} dl_compressor;

/* Sets up state for `world` ranks over buckets [lo[i], lo[i] + n[i]) of n
 * floats in host memory; PowerSGD's Q starts from `seed`, and its buckets
 * are folded (no matrices: dl_compressor_init_on takes them). */
dl_status dl_compressor_init(dl_compressor *c, dl_compress_spec spec, size_t n,
                             const size_t *bucket_lo, const size_t *bucket_n, int n_buckets,
                             int world, uint64_t seed);
/* The same for gradients in `dev`'s memory: on a CUDA device the buffers are
 * GPU memory and every step runs on the GPU, on its compute stream (NULL or a
 * CPU device: host memory), and with the net's weight matrices for
 * per-layer PowerSGD (NULL, 0: folded buckets, as dl_compressor_init). */
dl_status dl_compressor_init_on(dl_compressor *c, dl_compress_spec spec, size_t n,
                                const size_t *bucket_lo, const size_t *bucket_n, int n_buckets,
                                int world, uint64_t seed, dl_device *dev,
                                const dl_grad_matrix *mats, int n_mats);
/* Makes what c's exchanges will need of comm's slots now (dl_comm.reserve:
 * the staged backend's pinned buffers), so the first step allocates
 * nothing; a no-op for backends without reserve. */
dl_status dl_compressor_reserve(const dl_compressor *c, dl_comm *comm);
/* Where a compressor for gradients on `dev` runs: "host" (NULL or a CPU
 * device), "cuda" (a CUDA device), or NULL where this build cannot (a CUDA
 * device in a build without the CUDA kernels). */
const char *dl_compress_placement(const dl_device *dev);
/* Where c runs: "host" or "cuda". */
const char *dl_compressor_where(const dl_compressor *c);
void dl_compressor_free(dl_compressor *c);
/* The state (n_state floats) copied to host memory, and back: the residual
 * [n] and the shared part [n_shared] (either may be NULL to leave it).
 * On the GPU these wait for the device's queued work. */
void dl_compressor_get_state(dl_compressor *c, float *host);
void dl_compressor_set_state(dl_compressor *c, const float *residual, const float *shared);
/* Every residual back to zero (benchmarks check from a known start). */
dl_status dl_compressor_zero_residual(dl_compressor *c);
/* DL_ERR_ARG with a message when the PowerSGD rank is so large that nothing
 * would shrink (no layer, or no folded bucket: all would go as plain floats). */
dl_status dl_compressor_check_rank(const dl_compressor *c);
/* Adds the residual to bucket i (x, in the compressor's memory), compresses
 * it and starts the exchange on comm slot i. */
dl_status dl_compressor_start(dl_compressor *c, dl_comm *comm, float *x, int i);
/* Finishes bucket i: x becomes the mean over ranks of the decompressed
 * buckets, the residual what this rank's compression left out. */
dl_status dl_compressor_wait(dl_compressor *c, dl_comm *comm, float *x, int i, double *done_at);

#endif
