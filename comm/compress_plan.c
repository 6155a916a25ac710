/* compress_plan.c: how PowerSGD cuts a bucket into matrices and plain
 * floats (dl_psgd_plan), and the bytes-on-the-wire model of every
 * compressor built on the same rule (see compress.h, docs/compression.md). */
#include "bucket.h"
#include "compress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the folded rule (PyTorch's batched hook) ----------------------------- */

void dl_powersgd_shape(size_t n, size_t *m, size_t *k)
{
    size_t r = (size_t)ceil(sqrt((double)n));
    while (r > 1 && (r - 1) * (r - 1) >= n) /* sqrt's rounding */
        r--;
    *m = r ? r : 1;
    *k = (n + *m - 1) / *m;
    if (*k == 0)
        *k = 1;
}

int dl_powersgd_plain(size_t n, int rank)
{
    size_t m, k;
    dl_powersgd_shape(n, &m, &k);
    return (m + k) * (size_t)rank >= n;
}

/* ---- the per-layer plan --------------------------------------------------- */

int dl_powersgd_pays(size_t rows, size_t cols, int rank)
{
    return (rows + cols) * (size_t)rank * 2 < rows * cols;
}

/* How a matrix meets bucket [lo, lo + n).  A matrix worth compressing
 * belongs whole to the bucket its first value lies in, as a parameter never
 * spans two of DDP's buckets: one P and one Q for the whole layer, not one
 * per bucket it crosses.  That bucket reads and writes the matrix past its
 * own end, which is safe because a layer's gradient is written at once:
 * the bucket starts only when the whole layer is final (net.c reports
 * `ready` layer by layer), and the later buckets the matrix reaches into
 * leave those values alone (their TAIL).  A matrix not worth compressing is
 * plain floats wherever it lies. */
typedef enum { MEETS_NOT, MEETS_OWNS, MEETS_TAIL } meets;

/* *in_n: the matrix's values inside the bucket. */
static meets meet(const dl_grad_matrix *m, size_t lo, size_t n, int rank, size_t *in_n)
{
    size_t end = m->off + m->rows * m->cols, hi = lo + n;
    if (m->cols == 0 || end <= lo || m->off >= hi || !dl_powersgd_pays(m->rows, m->cols, rank))
        return MEETS_NOT;
    *in_n = DL_MIN(end, hi) - DL_MAX(m->off, lo);
    return m->off >= lo ? MEETS_OWNS : MEETS_TAIL;
}

static int by_offset(const void *a, const void *b)
{
    size_t x = ((const dl_psgd_piece *)a)->off, y = ((const dl_psgd_piece *)b)->off;
    return (x > y) - (x < y);
}

static int find_pieces(dl_psgd_plan *plan, size_t lo, size_t n, const dl_grad_matrix *mats,
                       int n_mats, int rank)
{
    if (!mats) {
        size_t m, k;
        dl_powersgd_shape(n, &m, &k);
        if (dl_powersgd_plain(n, rank))
            return 0;
        plan->pieces[0] = (dl_psgd_piece){.off = 0, .n = n, .rows = m, .cols = k};
        return 1;
    }
    int count = 0;
    for (int i = 0; i < n_mats; i++) {
        const dl_grad_matrix *m = &mats[i];
        size_t in_n;
        meets how = meet(m, lo, n, rank, &in_n);
        if (how == MEETS_TAIL)
            plan->skip = in_n; /* one at most: matrices do not overlap */
        if (how == MEETS_OWNS)
            plan->pieces[count++] = (dl_psgd_piece){.off = m->off - lo, .n = m->rows * m->cols,
                                                    .rows = m->rows, .cols = m->cols};
    }
    qsort(plan->pieces, (size_t)count, sizeof *plan->pieces, by_offset);
    return count;
}

/* Offsets of each piece's M, P and Q, and the plain runs between pieces,
 * placed after the Ps in the round-1 buffer. */
static dl_status lay_out(dl_psgd_plan *plan, size_t n, int rank)
{
    size_t p = 0, pos = plan->skip;
    for (int j = 0; j < plan->n_pieces; j++) {
        dl_psgd_piece *pc = &plan->pieces[j];
        if (pc->off < pos)
            return dl_fail(DL_ERR_ARG, "gradient matrices overlap at float %zu of a bucket",
                           pc->off);
        if (pc->off > pos)
            plan->runs[plan->n_runs++] = (dl_psgd_run){.off = pos, .n = pc->off - pos};
        pos = pc->off + pc->n;
        pc->mat = plan->mat_floats, pc->p = p, pc->q = plan->q_floats;
        plan->mat_floats += pc->rows * pc->cols;
        p += pc->rows * (size_t)rank;
        plan->q_floats += pc->cols * (size_t)rank;
        plan->largest = DL_MAX(plan->largest, pc->rows * pc->cols);
    }
    if (pos < n)
        plan->runs[plan->n_runs++] = (dl_psgd_run){.off = pos, .n = n - pos};
    for (int j = 0; j < plan->n_runs; j++)
        plan->runs[j].at = p, p += plan->runs[j].n;
    plan->round1 = p;
    return DL_OK;
}

dl_status dl_psgd_plan_make(dl_psgd_plan *plan, size_t lo, size_t n, const dl_grad_matrix *mats,
                            int n_mats, int rank)
{
    memset(plan, 0, sizeof *plan);
    size_t cap = mats ? (size_t)n_mats + 1 : 1;
    plan->pieces = calloc(cap, sizeof *plan->pieces);
    plan->runs = calloc(cap + 1, sizeof *plan->runs);
    if (!plan->pieces || !plan->runs) {
        dl_psgd_plan_free(plan);
        return dl_fail(DL_ERR_OOM, "out of memory for a PowerSGD plan of %d matrices", n_mats);
    }
    plan->n_pieces = find_pieces(plan, lo, n, mats, n_mats, rank);
    dl_status st = lay_out(plan, n, rank);
    if (st != DL_OK)
        dl_psgd_plan_free(plan);
    return st;
}

void dl_psgd_plan_free(dl_psgd_plan *plan)
{
    free(plan->pieces), free(plan->runs);
    memset(plan, 0, sizeof *plan);
}

size_t dl_psgd_bucket_floats(size_t lo, size_t n, const dl_grad_matrix *mats, int n_mats,
                             int rank)
{
    if (!mats) {
        size_t m, k;
        dl_powersgd_shape(n, &m, &k);
        return dl_powersgd_plain(n, rank) ? n : (m + k) * (size_t)rank;
    }
    size_t sent = n; /* plain: less each matrix's values here, plus the Ps and Qs owned */
    for (int i = 0; i < n_mats; i++) {
        size_t in_n;
        meets how = meet(&mats[i], lo, n, rank, &in_n);
        if (how != MEETS_NOT)
            sent -= in_n;
        if (how == MEETS_OWNS)
            sent += (mats[i].rows + mats[i].cols) * (size_t)rank;
    }
    return sent;
}

size_t dl_psgd_low_rank_floats(size_t lo, size_t n, const dl_grad_matrix *mats, int n_mats,
                               int rank)
{
    if (!mats)
        return dl_powersgd_plain(n, rank) ? 0 : n;
    size_t low = 0;
    for (int i = 0; i < n_mats; i++) {
        size_t in_n;
        if (meet(&mats[i], lo, n, rank, &in_n) == MEETS_OWNS)
            low += mats[i].rows * mats[i].cols;
    }
    return low;
}

/* ---- onebit per layer: the runs of a bucket -------------------------------- */

/* The runs found so far; the last is held back (pending) so that an exact
 * run right after an exact run can join it. */
typedef struct seg_list {
    dl_codec_seg *out;
    size_t max, count, bytes;
    dl_codec_seg pending;
} seg_list;

static size_t seg_bytes(dl_compress_kind kind, size_t n)
{
    return (dl_codec_bytes(kind, n) + 7) & ~(size_t)7;
}

static void flush_run(seg_list *l)
{
    dl_codec_seg *p = &l->pending;
    if (p->n == 0)
        return;
    p->at = l->bytes;
    l->bytes += seg_bytes(p->kind, p->n);
    if (l->out && l->count < l->max)
        l->out[l->count] = *p;
    l->count++;
    p->n = 0;
}

static void add_run(seg_list *l, size_t off, size_t n, dl_compress_kind kind)
{
    dl_codec_seg *p = &l->pending;
    if (n == 0)
        return;
    if (p->n && kind == DL_COMPRESS_NONE && p->kind == DL_COMPRESS_NONE && p->off + p->n == off) {
        p->n += n;
        return;
    }
    flush_run(l);
    *p = (dl_codec_seg){.off = off, .n = n, .kind = kind};
}

/* The part of tensor [t_lo, t_hi) inside bucket [lo, hi), as one run. */
static void add_tensor(seg_list *l, dl_compress_kind kind, size_t lo, size_t hi, size_t t_lo,
                       size_t t_hi)
{
    size_t a = DL_MAX(t_lo, lo), b = DL_MIN(t_hi, hi);
    if (a >= b)
        return;
    add_run(l, a - lo, b - a, t_hi - t_lo < DL_ONEBIT_EXACT_BELOW ? DL_COMPRESS_NONE : kind);
}

int dl_compress_by_layer(dl_compress_kind kind)
{
    return kind == DL_COMPRESS_POWERSGD || kind == DL_COMPRESS_ONEBIT;
}

/* The matrix with the lowest offset at or after `from` (NULL: none), so
 * that callers may list matrices in any order; a net has a few hundred at
 * most and this runs once per bucket at start-up. */
static const dl_grad_matrix *next_matrix(const dl_grad_matrix *mats, int n_mats, size_t from)
{
    const dl_grad_matrix *next = NULL;
    for (int i = 0; i < n_mats; i++)
        if (mats[i].off >= from && mats[i].rows * mats[i].cols > 0 &&
            (!next || mats[i].off < next->off))
            next = &mats[i];
    return next;
}
size_t dl_codec_segments(dl_compress_kind kind, size_t lo, size_t n, size_t total,
                         const dl_grad_matrix *mats, int n_mats, dl_codec_seg *out, size_t max,
                         size_t *bytes)
{
    seg_list l = {.out = out, .max = max};
    size_t hi = lo + n, vectors_from = 0; /* where the vectors after the last matrix start */
    int by_layer = mats && kind == DL_COMPRESS_ONEBIT;
    if (!by_layer)
        add_run(&l, 0, n, kind);
    while (by_layer && vectors_from < hi) {
        const dl_grad_matrix *m = next_matrix(mats, n_mats, vectors_from);
        size_t m_lo = m ? m->off : DL_MAX(total, vectors_from);
        size_t m_hi = m ? m_lo + m->rows * m->cols : m_lo;
        add_tensor(&l, kind, lo, hi, vectors_from, m_lo);
        add_tensor(&l, kind, lo, hi, m_lo, m_hi);
        if (!m)
            break;
        vectors_from = m_hi;
    }
    flush_run(&l);
    if (bytes)
        *bytes = l.bytes;
    return l.count;
}

/* ---- the wire model ------------------------------------------------------- */

/* Bytes one rank contributes for bucket [lo, lo + n) of `total` gradients. */
static double bucket_payload(dl_compress_spec s, size_t lo, size_t n, size_t total,
                             const dl_grad_matrix *mats, int n_mats)
{
    if (s.kind == DL_COMPRESS_POWERSGD)
        return 4.0 * (double)dl_psgd_bucket_floats(lo, n, mats, n_mats, s.rank);
    if (!mats || !dl_compress_by_layer(s.kind))
        return (double)dl_codec_bytes(s.kind, n);
    size_t bytes;
    dl_codec_segments(s.kind, lo, n, total, mats, n_mats, NULL, 0, &bytes);
    return (double)bytes;
}

double dl_compress_payload_bytes(dl_compress_spec s, const size_t *bucket_sizes, int n_buckets,
                                 const dl_grad_matrix *mats, int n_mats)
{
    double bytes = 0.0;
    size_t lo = 0, total = 0;
    for (int i = 0; i < n_buckets; i++)
        total += bucket_sizes[i];
    for (int i = 0; i < n_buckets; lo += bucket_sizes[i++])
        bytes += bucket_payload(s, lo, bucket_sizes[i], total, mats, n_mats);
    return bytes;
}

/* Bytes on the wire for `payload` bytes per rank: PowerSGD's and fp32's
 * all-reduces, or the element-wise codecs' all-gather. */
static double wire_of(dl_compress_spec s, int world, double payload)
{
    if (world <= 1)
        return 0.0;
    double w = world;
    int reduces = s.kind == DL_COMPRESS_NONE || s.kind == DL_COMPRESS_POWERSGD;
    return reduces ? 2.0 * (w - 1.0) / w * payload : (w - 1.0) * payload;
}

double dl_compress_wire_bytes(dl_compress_spec s, int world, const size_t *bucket_sizes,
                              int n_buckets, const dl_grad_matrix *mats, int n_mats)
{
    return wire_of(s, world, dl_compress_payload_bytes(s, bucket_sizes, n_buckets, mats, n_mats));
}

double dl_compress_ratio(dl_compress_spec s, const size_t *bucket_sizes, int n_buckets,
                         const dl_grad_matrix *mats, int n_mats)
{
    double fp32 = 0.0;
    double payload = dl_compress_payload_bytes(s, bucket_sizes, n_buckets, mats, n_mats);
    for (int i = 0; i < n_buckets; i++)
        fp32 += 4.0 * (double)bucket_sizes[i];
    return payload > 0.0 ? fp32 / payload : 1.0;
}

double dl_compress_wire_bytes_params(dl_compress_spec s, int world, size_t n_params,
                                     size_t bucket_floats, const dl_grad_matrix *mats,
                                     int n_mats)
{
    if (bucket_floats == 0 || n_params == 0)
        return 0.0;
    /* bucket by bucket where dl_buckets_init cuts (per layer, where a cut
     * falls in a layer matters; bucket_payload ignores mats otherwise) */
    size_t step = dl_bucket_stride(bucket_floats);
    double payload = 0.0;
    for (size_t lo = 0; lo < n_params; lo += step)
        payload += bucket_payload(s, lo, DL_MIN(step, n_params - lo), n_params, mats, n_mats);
    return wire_of(s, world, payload);
}

double dl_compress_wire_factor(dl_compress_spec s, int world, size_t n_params,
                               size_t bucket_floats, const dl_grad_matrix *mats, int n_mats)
{
    dl_compress_spec plain = {.kind = DL_COMPRESS_NONE, .rank = 0};
    double fp32 = dl_compress_wire_bytes_params(plain, world, n_params, bucket_floats, NULL, 0);
    if (s.kind == DL_COMPRESS_NONE || !(fp32 > 0.0))
        return 1.0;
    return dl_compress_wire_bytes_params(s, world, n_params, bucket_floats, mats, n_mats) / fp32;
}
