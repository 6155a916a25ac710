/* plane_walk.h: visiting one channel of an NCHW tensor without a division
 * per element; shared by the CUDA kernels (cuda_norm.cu) and their CPU unit
 * test (tests/test_plane_walk.c), so the index arithmetic is checked here.
 *
 * A channel of x[n][c][cols] is n rows ("planes") of `cols` contiguous
 * units (a unit is one float, or a float4 when cols counts float4s).  Number
 * the channel's units u = i*cols + j (row i, column j).  A thread of a
 * grid-stride loop visits u = start, start + step, start + 2*step, ... and
 * needs (i, j) for each, i.e. u / cols and u % cols: a 64-bit division and
 * modulo per element costs more than the load on a GPU.  The walk divides
 * once, at the start (step = di*cols + dj), and then advances (i, j) by
 * (di, dj) with one carry, since j + dj < 2*cols.
 *
 *   for (dl_walk w = dl_walk_start(start, step, cols); w.i < rows; dl_walk_next(&w, cols))
 *       visit(row w.i, column w.j);
 *
 * The unit's address in x is ((size_t)w.i * c + ch) * cols + w.j. */
#ifndef DL_PLANE_WALK_H
#define DL_PLANE_WALK_H

#ifdef __CUDACC__
#define DL_HOSTDEV static __host__ __device__ __forceinline__
#else
#define DL_HOSTDEV static inline
#endif

typedef struct dl_walk {
    long long i, j;   /* the current row and column */
    long long di, dj; /* step = di*cols + dj, 0 <= dj < cols */
} dl_walk;

/* cols >= 1, start >= 0, step >= 1 */
DL_HOSTDEV dl_walk dl_walk_start(long long start, long long step, int cols)
{
    dl_walk w;
    w.i = start / cols;
    w.j = start % cols;
    w.di = step / cols;
    w.dj = step % cols;
    return w;
}

DL_HOSTDEV void dl_walk_next(dl_walk *w, int cols)
{
    w->i += w->di;
    w->j += w->dj;
    if (w->j >= cols) {
        w->j -= cols;
        w->i++;
    }
}

#endif
