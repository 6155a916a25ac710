/* test_plane_walk: the index walk of runtime/plane_walk.h, which the CUDA
 * batch-norm kernels use instead of a division per element.  For channel
 * shapes like the kernels see (rows = batch, cols = plane length in units:
 * 1, odd, 49, 3136, ...) and grids of `blocks` x `threads`, every thread's
 * walk must visit units whose (i, j) equal (u / cols, u % cols) for
 * u = start + k*step, and together the threads must visit every unit of the
 * channel exactly once.  Runs on the CPU (the header is shared C/CUDA). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plane_walk.h"

static int check_shape(int rows, int cols, int blocks, int threads)
{
    long long units = (long long)rows * cols, step = (long long)blocks * threads;
    unsigned char *seen = calloc((size_t)units, 1);
    int bad = 0;
    if (!seen) {
        fprintf(stderr, "test_plane_walk: out of memory\n");
        exit(2);
    }
    for (long long start = 0; start < step && !bad; start++) {
        long long u = start;
        for (dl_walk w = dl_walk_start(start, step, cols); w.i < rows; dl_walk_next(&w, cols)) {
            if (w.j < 0 || w.j >= cols || w.i != u / cols || w.j != u % cols || seen[u]) {
                fprintf(stderr,
                        "FAIL rows %d cols %d grid %dx%d: thread %lld at unit %lld got "
                        "(%lld, %lld)%s\n",
                        rows, cols, blocks, threads, start, u, w.i, w.j,
                        seen[u] ? " (visited twice)" : "");
                bad = 1;
                break;
            }
            seen[u] = 1;
            u += step;
        }
        if (!bad && u < units) { /* the walk stopped early */
            fprintf(stderr, "FAIL rows %d cols %d grid %dx%d: thread %lld stopped before %lld\n",
                    rows, cols, blocks, threads, start, u);
            bad = 1;
        }
    }
    for (long long u = 0; u < units && !bad; u++)
        if (!seen[u]) {
            fprintf(stderr, "FAIL rows %d cols %d grid %dx%d: unit %lld never visited\n", rows,
                    cols, blocks, threads, u);
            bad = 1;
        }
    free(seen);
    return bad;
}

int main(void)
{
    static const int rows[] = {1, 2, 3, 7, 32, 128};
    static const int cols[] = {1, 2, 3, 5, 12, 49, 64, 255, 256, 257, 784, 3136};
    static const int grids[][2] = {{1, 1}, {1, 32}, {3, 32}, {1, 256}, {2, 256}, {33, 256},
                                   {64, 256}};
    int failures = 0, shapes = 0;
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
            for (size_t g = 0; g < sizeof grids / sizeof grids[0]; g++) {
                failures += check_shape(rows[r], cols[c], grids[g][0], grids[g][1]);
                shapes++;
            }
    printf("test_plane_walk: %d shapes, %d failed\n", shapes, failures);
    return failures ? 1 : 0;
}
