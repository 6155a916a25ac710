/* grad_matrix.h: a layer's weight gradient seen as a matrix in the flat
 * gradient buffer, for per-layer low-rank compression (PowerSGD,
 * comm/compress.h).
 *
 * conv: W [cout, cin, k, k] is cout x (cin k k); fc: W [out, in] is
 * out x in (PyTorch's hook reshapes a tensor to shape[0] x the rest the
 * same way).  Biases and batch-norm vectors are not matrices. */
#ifndef DL_GRAD_MATRIX_H
#define DL_GRAD_MATRIX_H

#include <stddef.h>

typedef struct dl_grad_matrix {
    size_t off;        /* first float in the flat gradient buffer */
    size_t rows, cols; /* row-major rows x cols floats from off */
} dl_grad_matrix;

typedef struct dl_net dl_net;

/* Writes up to max of net's weight matrices to out in ascending off and
 * returns how many the net has (call with max 0 to size out). */
int dl_net_grad_matrices(const dl_net *net, dl_grad_matrix *out, int max);
/* The same in a new array (free it) of *count; NULL after dl_fail. */
dl_grad_matrix *dl_net_grad_matrices_new(const dl_net *net, int *count);

#endif
