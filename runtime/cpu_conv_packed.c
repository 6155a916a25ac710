/* cpu_conv_packed.c: the convolution's GEMMs with dltrain's own AVX-512
 * kernels, on im2col data written straight into the layout the kernels read.
 *
 * Why not BLAS here: OpenBLAS copies (packs) both operands of every call
 * before its kernel runs.  For a convolution one operand is the im2col
 * matrix, itself a copy made a moment earlier, so a profile of resnet20
 * showed the same data moved three times (im2col, BLAS packing, the kernel
 * reading it).  Writing im2col in packed form removes the middle copy; the
 * channel counts of CNNs (multiples of 8 and 16) make simple register tiles
 * enough.
 *
 * Packed im2col ("panels"): columns (output pixels of nb images, j*ohw + p)
 * in groups of 16, each group stored row after row:
 *     packed[(q / 16) * kdim * 16 + r * 16 + q % 16] = col[r][q]
 * with the columns past the last one zero.  One row of a panel is one vector.
 *
 * Forward and stride-1 input gradient:  Y[m][q] = sum_r W[m][r] col[r][q]
 *     tile: 8 rows of W x 3 panels (48 columns), 24 accumulators; per r, 3
 *     vector loads and 8 broadcasts feed 24 FMAs.  W is packed as
 *     [m / 8][r][8] so the 8 broadcasts share one cache line.
 * Weight gradient:  dW^T[r][co] = sum_q col[r][q] dy[co][q]
 *     dy is transposed to dyT[q][co] so that 16 output channels are one
 *     vector; tile: up to 16 rows r x up to 3 channel vectors, per pixel q
 *     cv vector loads and kr broadcasts.  Accumulating over q in registers
 *     needs no horizontal sums.
 * Sums run in a fixed order (r ascending per accumulator), so results do
 * not depend on timing. */
#include "cpu_ops.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 16
#define W_ROWS 8 /* rows of W per forward tile */

static size_t round_lanes(size_t n) { return (n + LANES - 1) / LANES * LANES; }

size_t cpu_packed_col_floats(int kdim, int cols) { return (size_t)kdim * round_lanes(cols); }

size_t cpu_packed_w_floats(int m, int kdim)
{
    return (size_t)(m + W_ROWS - 1) / W_ROWS * W_ROWS * kdim;
}

size_t cpu_packed_dyt_floats(int cout, int cols) { return (size_t)cout * round_lanes(cols); }

/* wp[(m / 8) * kdim * 8 + r * 8 + m % 8] = w[m][r], rows past m zero */
void cpu_packed_pack_w(const float *w, int m, int kdim, float *wp)
{
    int rows = (int)(cpu_packed_w_floats(m, kdim) / (size_t)kdim);
    for (int i = 0; i < rows; i++)
        for (int r = 0; r < kdim; r++)
            wp[((size_t)(i / W_ROWS) * kdim + r) * W_ROWS + i % W_ROWS] =
                i < m ? w[(size_t)i * kdim + r] : 0.0f;
}

/* dyt[(j*ohw + p) * cout + co] = dy[(j*cout + co) * ohw + p] for pixels
 * [p0, p1) of image j, all channels */
static void transpose_plain(const float *dy, int j, int p0, int p1, int cout, int ohw,
                            float *dyt)
{
    for (int p = p0; p < p1; p++) {
        const float *src = dy + (size_t)j * cout * ohw + p;
        float *dst = dyt + ((size_t)j * ohw + p) * cout;
        for (int co = 0; co < cout; co++)
            dst[co] = src[(size_t)co * ohw];
    }
}

/* The masks of cpu_packed_im2col's direct path: stride 1 and "same"
 * padding (output plane = input plane), planes of at least one panel, so
 * that a panel's 16 pixels are one contiguous run of each input plane, or
 * two runs when it straddles two images. */
int cpu_packed_direct(const dl_conv_desc *c)
{
    return c->stride == 1 && c->oh == c->h && c->ow == c->w && c->oh * c->ow >= LANES;
}

size_t cpu_packed_mask_count(const dl_conv_desc *c, int nb)
{
    return cpu_packed_direct(c) ? round_lanes((size_t)nb * c->oh * c->ow) / LANES * c->k * c->k
                                : 0;
}

/* masks[panel * kk + t]: bit l (image of the panel's first pixel) or bit
 * 16 + l (the next image) set when lane l's pixel, shifted by kernel offset
 * t = ki*k + kj, lies inside its input plane. */
void cpu_packed_masks(const dl_conv_desc *c, int nb, uint32_t *masks)
{
    int k = c->k, kk = k * k, w = c->w, h = c->h, ohw = h * w, cols = nb * ohw;
    if (!cpu_packed_direct(c))
        return;
    for (int q0 = 0; q0 < cols; q0 += LANES) {
        int p0 = q0 % ohw;
        for (int t = 0; t < kk; t++) {
            uint32_t m = 0;
            for (int l = 0; l < LANES && q0 + l < cols; l++) {
                int pix = (p0 + l) % ohw, next = p0 + l >= ohw;
                int iy = pix / w + t / k - c->pad, ix = pix % w + t % k - c->pad;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                    m |= 1u << (l + (next ? LANES : 0));
            }
            masks[(size_t)(q0 / LANES) * kk + t] = m;
        }
    }
}

#ifdef __AVX512F__
#include <immintrin.h>

static void packed_im2col_rows(const dl_conv_desc *c, const float *x, int nb, float *packed,
                               float *row)
{
    int kdim = c->cin * c->k * c->k, cols = nb * c->oh * c->ow;
    size_t padded = round_lanes(cols);
    for (size_t q = cols; q < padded; q++)
        row[q] = 0.0f;
    for (int r = 0; r < kdim; r++) {
        cpu_im2col_row(c, x, nb, r, row);
        float *dst = packed + (size_t)r * LANES;
        for (size_t q = 0; q < padded; q += LANES)
            memcpy(dst + q * kdim, row + q, sizeof(float) * LANES);
    }
}

int cpu_packed_available(void)
{
    static int avail = -1;
    if (avail < 0) {
        const char *e = getenv("DLTRAIN_CONV_BLAS");
        avail = !(e && *e && strcmp(e, "0") != 0);
    }
    return avail;
}

static __mmask16 lanes_mask(int left)
{
    return left >= LANES ? (__mmask16)0xFFFF : (__mmask16)((1u << DL_MAX(left, 0)) - 1);
}

/* v = lanes m of the 16 floats at p, the others zero (keep: m as a vector
 * of all-ones lanes).  A plain load and an AND when all 16 lie inside
 * [lo, hi), else a masked load, which cannot fault.  Masked loads run at
 * half speed on AMD Zen 4, and a masked move after a load would be folded
 * back into one by the compiler. */
static inline __m512 load_lanes(const float *p, __mmask16 m, __m512i keep, const float *lo,
                                const float *hi)
{
    if (p >= lo && p + LANES <= hi)
        return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_loadu_ps(p)), keep));
    return _mm512_maskz_loadu_ps(m, p);
}

/* One load and one store per 16 column entries: each panel row is a run of
 * one input plane (two runs across an image boundary), lanes outside the
 * plane masked to zero.  [lo, hi) is the memory readable around x. */
static void packed_im2col_direct(const dl_conv_desc *c, const float *x, int nb, float *packed,
                                 const uint32_t *masks, const float *lo, const float *hi)
{
    int kk = c->k * c->k, kdim = c->cin * kk, w = c->w, ohw = c->h * w, cols = nb * ohw;
    size_t image = (size_t)c->cin * ohw;
    for (int q0 = 0; q0 < cols; q0 += LANES) {
        int j = q0 / ohw, p0 = q0 - j * ohw;
        __mmask16 live = lanes_mask(cols - q0);
        float *panel = packed + (size_t)q0 * kdim;
        for (int t = 0; t < kk; t++) {
            uint32_t m = masks[(size_t)(q0 / LANES) * kk + t];
            __mmask16 first = (__mmask16)m & live, next = (__mmask16)(m >> LANES) & live;
            ptrdiff_t off = (ptrdiff_t)(t / c->k - c->pad) * w + (t % c->k - c->pad);
            const float *a = x + j * image + p0 + off, *b = a + image - ohw;
            float *dst = panel + (size_t)t * LANES;
            __m512i keep_first = _mm512_movm_epi32(first), keep_next = _mm512_movm_epi32(next);
            for (int ci = 0; ci < c->cin; ci++) {
                __m512 v = load_lanes(a + (size_t)ci * ohw, first, keep_first, lo, hi);
                if (next)
                    v = _mm512_or_ps(v, load_lanes(b + (size_t)ci * ohw, next, keep_next, lo, hi));
                _mm512_storeu_ps(dst + (size_t)ci * kk * LANES, v);
            }
        }
    }
}

void cpu_packed_im2col(const dl_conv_desc *c, const float *x, int nb, float *packed, float *row,
                       const uint32_t *masks, const float *lo, const float *hi)
{
    if (cpu_packed_direct(c))
        packed_im2col_direct(c, x, nb, packed, masks, lo, hi);
    else
        packed_im2col_rows(c, x, nb, packed, row);
}

/* dst row i = column i of the 16x16 block at src (rows lds apart) */
static void transpose16(const float *src, size_t lds, float *dst, size_t ldd)
{
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
    for (int i = 0; i < 16; i++)
        _mm512_storeu_ps(dst + i * ldd, r[i]);
}

/* dyT[q][co] = dy[j][co][p] for q = j*ohw + p, rows past the last zero;
 * cout a multiple of 16 */
void cpu_packed_transpose(const float *dy, int nb, int cout, int ohw, float *dyt)
{
    int cols = nb * ohw, whole = ohw / LANES * LANES;
    for (int j = 0; j < nb; j++) {
        for (int p = 0; p < whole; p += LANES)
            for (int co = 0; co < cout; co += LANES)
                transpose16(dy + ((size_t)j * cout + co) * ohw + p, ohw,
                            dyt + ((size_t)j * ohw + p) * cout + co, cout);
        transpose_plain(dy, j, whole, ohw, cout, ohw, dyt);
    }
    memset(dyt + (size_t)cols * cout, 0, sizeof(float) * cout * (round_lanes(cols) - cols));
}

/* Y rows [0, rows) (rows <= 8) x nv panels; `left` columns of y are valid */
static inline __attribute__((always_inline)) void
gemm_tile(int nv, const float *wp, int kdim, const float *pk, float *y, int ldy, int rows,
          int left, int acc)
{
    __m512 a[W_ROWS][3];
    size_t panel = (size_t)kdim * LANES;
    for (int m = 0; m < W_ROWS; m++)
        for (int v = 0; v < nv; v++)
            a[m][v] = _mm512_setzero_ps();
    for (int r = 0; r < kdim; r++) {
        __m512 b[3];
        for (int v = 0; v < nv; v++)
            b[v] = _mm512_loadu_ps(pk + v * panel + (size_t)r * LANES);
        for (int m = 0; m < W_ROWS; m++) {
            __m512 s = _mm512_set1_ps(wp[(size_t)r * W_ROWS + m]);
            for (int v = 0; v < nv; v++)
                a[m][v] = _mm512_fmadd_ps(s, b[v], a[m][v]);
        }
    }
    for (int m = 0; m < rows; m++)
        for (int v = 0; v < nv; v++) {
            __mmask16 k = lanes_mask(left - v * LANES);
            float *dst = y + (size_t)m * ldy + v * LANES;
            __m512 out = a[m][v];
            if (acc)
                out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(k, dst));
            _mm512_mask_storeu_ps(dst, k, out);
        }
}

void cpu_packed_gemm(const float *wp, int m, int kdim, const float *packed, int cols, float *y,
                     int ldy, int acc)
{
    int panels = (cols + LANES - 1) / LANES;
    for (int p = 0; p < panels; p += 3) {
        int nv = DL_MIN(3, panels - p), q = p * LANES, left = cols - q;
        const float *pk = packed + (size_t)q * kdim;
        for (int m0 = 0; m0 < m; m0 += W_ROWS) {
            const float *w = wp + (size_t)m0 * kdim;
            float *yt = y + (size_t)m0 * ldy + q;
            int rows = DL_MIN(W_ROWS, m - m0);
            if (nv == 3)
                gemm_tile(3, w, kdim, pk, yt, ldy, rows, left, acc);
            else if (nv == 2)
                gemm_tile(2, w, kdim, pk, yt, ldy, rows, left, acc);
            else
                gemm_tile(1, w, kdim, pk, yt, ldy, rows, left, acc);
        }
    }
}

/* dW^T rows [r0, r0+kr) x channel vectors [0, cv) of the pointers given */
static inline __attribute__((always_inline)) void
dw_tile(int kr, int cv, const float *pk, int kdim, const float *dyt, int cout, int panels,
        float *dwt, int acc)
{
    __m512 a[16][3];
    size_t panel = (size_t)kdim * LANES;
    for (int m = 0; m < kr; m++)
        for (int v = 0; v < cv; v++)
            a[m][v] = _mm512_setzero_ps();
    for (int pn = 0; pn < panels; pn++) {
        const float *pp = pk + pn * panel, *dp = dyt + (size_t)pn * LANES * cout;
        for (int l = 0; l < LANES; l++) {
            __m512 b[3];
            for (int v = 0; v < cv; v++)
                b[v] = _mm512_loadu_ps(dp + (size_t)l * cout + v * LANES);
            for (int m = 0; m < kr; m++) {
                __m512 s = _mm512_set1_ps(pp[m * LANES + l]);
                for (int v = 0; v < cv; v++)
                    a[m][v] = _mm512_fmadd_ps(s, b[v], a[m][v]);
            }
        }
    }
    for (int m = 0; m < kr; m++)
        for (int v = 0; v < cv; v++) {
            float *dst = dwt + (size_t)m * cout + v * LANES;
            _mm512_storeu_ps(dst, acc ? _mm512_add_ps(a[m][v], _mm512_loadu_ps(dst)) : a[m][v]);
        }
}

/* Rows [r0, r0+kr) for the channel vectors from v0: the tile shapes the
 * driver uses, each compiled with constant bounds so the accumulators stay
 * in registers. */
static void dw_rows(int kr, int cv, const float *packed, int r0, int kdim, const float *dyt,
                    int cout, int v0, int panels, float *dwt, int acc)
{
    const float *pk = packed + (size_t)r0 * LANES, *dp = dyt + v0 * LANES;
    float *dst = dwt + (size_t)r0 * cout + v0 * LANES;
#define DW_CASE(KR, CV)                                                                          \
    if (kr == KR && cv == CV) {                                                                  \
        dw_tile(KR, CV, pk, kdim, dp, cout, panels, dst, acc);                                   \
        return;                                                                                  \
    }
    DW_CASE(16, 1) DW_CASE(8, 1) DW_CASE(4, 1)
    DW_CASE(12, 2) DW_CASE(8, 2) DW_CASE(4, 2)
    DW_CASE(8, 3) DW_CASE(4, 3)
#undef DW_CASE
}

/* The last few rows (fewer than 4, e.g. of a 3-channel stem), plainly */
static void dw_rows_plain(const float *packed, int r0, int r1, int kdim, const float *dyt,
                          int cout, int c0, int c1, int cols, float *dwt, int acc)
{
    for (int r = r0; r < r1; r++)
        for (int co = c0; co < c1; co++) {
            float sum = 0.0f;
            for (int q = 0; q < cols; q++)
                sum += packed[(size_t)(q / LANES) * kdim * LANES + r * LANES + q % LANES] *
                       dyt[(size_t)q * cout + co];
            dwt[(size_t)r * cout + co] = acc ? dwt[(size_t)r * cout + co] + sum : sum;
        }
}

void cpu_packed_dw(const float *packed, int kdim, const float *dyt, int cout, int cols,
                   float *dwt, int acc)
{
    int panels = (cols + LANES - 1) / LANES, vecs = cout / LANES;
    for (int v0 = 0; v0 < vecs;) {
        int cv = DL_MIN(3, vecs - v0), r0 = 0;
        int main_rows = cv == 1 ? 16 : cv == 2 ? 12 : 8;
        for (; r0 + main_rows <= kdim; r0 += main_rows)
            dw_rows(main_rows, cv, packed, r0, kdim, dyt, cout, v0, panels, dwt, acc);
        for (int kr = 8; kr >= 4; kr /= 2)
            for (; kr < main_rows && r0 + kr <= kdim; r0 += kr)
                dw_rows(kr, cv, packed, r0, kdim, dyt, cout, v0, panels, dwt, acc);
        dw_rows_plain(packed, r0, kdim, kdim, dyt, cout, v0 * LANES, (v0 + cv) * LANES, cols,
                      dwt, acc);
        v0 += cv;
    }
}
#else
/* Without AVX-512 the convolution keeps BLAS: cpu_packed_available() is 0
 * and the kernels below are never called. */
int cpu_packed_available(void) { return 0; }

void cpu_packed_transpose(const float *dy, int nb, int cout, int ohw, float *dyt)
{
    for (int j = 0; j < nb; j++)
        transpose_plain(dy, j, 0, ohw, cout, ohw, dyt);
    memset(dyt + (size_t)nb * ohw * cout, 0,
           sizeof(float) * cout * (round_lanes((size_t)nb * ohw) - (size_t)nb * ohw));
}

void cpu_packed_im2col(const dl_conv_desc *c, const float *x, int nb, float *packed, float *row,
                       const uint32_t *masks, const float *lo, const float *hi)
{
    (void)c, (void)x, (void)nb, (void)packed, (void)row, (void)masks, (void)lo, (void)hi;
    abort();
}

void cpu_packed_gemm(const float *wp, int m, int kdim, const float *packed, int cols, float *y,
                     int ldy, int acc)
{
    (void)wp, (void)m, (void)kdim, (void)packed, (void)cols, (void)y, (void)ldy, (void)acc;
    abort();
}

void cpu_packed_dw(const float *packed, int kdim, const float *dyt, int cout, int cols,
                   float *dwt, int acc)
{
    (void)packed, (void)kdim, (void)dyt, (void)cout, (void)cols, (void)dwt, (void)acc;
    abort();
}
#endif
