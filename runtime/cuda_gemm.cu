/* cuda_gemm.cu: GEMMs through cuBLAS in the precision the device is set to
 * (device_cuda.h dl_device_cuda_set_precision): strict fp32, TF32 tensor
 * cores, or bf16 operands rounded into a scratch buffer; the table's gemm
 * (fully connected layers), the convolutions' GEMMs and the batched GEMM of
 * the 1x1 convolutions, and the bf16 GEMM on operands already rounded (the
 * im2col convolutions write their column buffer in bf16 themselves).
 * Semantics: runtime/device.h. */
#include "cuda_internal.cuh"

/* ---- GEMM -------------------------------------------------------------------
 * The table's GEMM is row-major; cuBLAS is column-major.  A row-major matrix
 * with leading dimension ld is the column-major matrix of its transpose with
 * the same ld, so C = op(A) op(B) (row-major) is computed as the column-major
 *   C^T[n,m] = op(B)^T[n,k] op(A)^T[k,m]
 * i.e. cublasSgemm with the operands swapped and the same op flags. */
__global__ void to_bf16_kernel(const float *x, __nv_bfloat16 *y, size_t n)
{
    GRID_STRIDE_LOOP(i, n)
    y[i] = __float2bfloat16_rn(x[i]);
}

/* Elements a row-major operand with `rows` rows of `cols` used columns spans. */
static size_t operand_span(int rows, int cols, int ld)
{
    return rows > 0 && cols > 0 ? (size_t)(rows - 1) * (size_t)ld + (size_t)cols : 0;
}

/* Room for both bf16 operands.  Sized at start-up by the convolutions'
 * workspace queries (cuda_bf16_reserve), so it grows later only for a GEMM
 * larger than every convolution's (a wide fully connected layer), once;
 * cudaFree waits for the kernels still reading the old buffer. */
static __nv_bfloat16 *bf16_room(cuda_impl *g, size_t n)
{
    if (n > g->bf16_cap) {
        if (g->bf16_scratch)
            CUDA_CHECK(cudaFree(g->bf16_scratch));
        g->bf16_scratch = NULL, g->bf16_cap = 0;
        cudaError_t e = cudaMalloc((void **)&g->bf16_scratch, n * sizeof(__nv_bfloat16));
        if (e == cudaErrorMemoryAllocation)
            cuda_fatal(__FILE__, __LINE__, "cudaMalloc (bf16 GEMM operands)", "out of GPU memory",
                       "try a smaller --batch");
        CUDA_CHECK(e);
        g->bf16_cap = n;
    }
    return g->bf16_scratch;
}

void cuda_bf16_reserve(dl_device *d, size_t elements) { (void)bf16_room(cuda_of(d), elements); }

__nv_bfloat16 *cuda_bf16_scratch(dl_device *d, size_t elements)
{
    return bf16_room(cuda_of(d), elements);
}

void cuda_to_bf16(dl_device *d, const float *x, __nv_bfloat16 *y, size_t n)
{
    if (n)
        CUDA_LAUNCH(d, to_bf16_kernel, cuda_grid(n), CUDA_THREADS, 0, x, y, n);
}

void cuda_gemm_bf16(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
                    const __nv_bfloat16 *a, int lda, const __nv_bfloat16 *b, int ldb, float beta,
                    float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasGemmEx(cuda_of(d)->blas, op_b, op_a, n, m, k, &alpha, b, CUDA_R_16BF, ldb,
                              a, CUDA_R_16BF, lda, &beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    if (cuda_of(d)->sync_each_launch)
        CUDA_CHECK(cudaStreamSynchronize(cuda_stream(d)));
}

static void gemm_bf16(dl_device *d, cublasOperation_t op_b, cublasOperation_t op_a, int m, int n,
                      int k, float alpha, const float *a, int lda, size_t span_a, const float *b,
                      int ldb, size_t span_b, float beta, float *c, int ldc)
{
    cuda_impl *g = cuda_of(d);
    size_t a_room = (span_a + 7) & ~(size_t)7; /* 16-byte aligned operands for tensor cores */
    __nv_bfloat16 *a16 = bf16_room(g, a_room + span_b), *b16 = a16 + a_room;
    CUDA_LAUNCH(d, to_bf16_kernel, cuda_grid(span_a), CUDA_THREADS, 0, a, a16, span_a);
    CUDA_LAUNCH(d, to_bf16_kernel, cuda_grid(span_b), CUDA_THREADS, 0, b, b16, span_b);
    CUBLAS_CHECK(cublasGemmEx(g->blas, op_b, op_a, n, m, k, &alpha, b16, CUDA_R_16BF, ldb, a16,
                              CUDA_R_16BF, lda, &beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
}

void cuda_gemm(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    size_t span_a = trans_a ? operand_span(k, m, lda) : operand_span(m, k, lda);
    size_t span_b = trans_b ? operand_span(n, k, ldb) : operand_span(k, n, ldb);
    if (cuda_of(d)->bf16 && span_a && span_b)
        gemm_bf16(d, op_b, op_a, m, n, k, alpha, a, lda, span_a, b, ldb, span_b, beta, c, ldc);
    else
        CUBLAS_CHECK(cublasSgemm(cuda_of(d)->blas, op_b, op_a, n, m, k, &alpha, b, ldb, a, lda,
                                 &beta, c, ldc));
    if (cuda_of(d)->sync_each_launch)
        CUDA_CHECK(cudaStreamSynchronize(cuda_stream(d)));
}

/* The same GEMM on `batch` operand triples at base + j * stride (a stride
 * of 0 shares that operand), one cuBLAS call.  bf16: each operand's whole
 * strided span is rounded once into the scratch buffer. */
void cuda_gemm_batched(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
                       const float *a, int lda, long long stride_a, const float *b, int ldb,
                       long long stride_b, float beta, float *c, int ldc, long long stride_c,
                       int batch)
{
    if (m <= 0 || n <= 0 || batch <= 0)
        return;
    cuda_impl *g = cuda_of(d);
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    size_t span_a = trans_a ? operand_span(k, m, lda) : operand_span(m, k, lda);
    size_t span_b = trans_b ? operand_span(n, k, ldb) : operand_span(k, n, ldb);
    if (g->bf16 && span_a && span_b) {
        span_a += (size_t)(batch - 1) * (size_t)stride_a;
        span_b += (size_t)(batch - 1) * (size_t)stride_b;
        size_t a_room = (span_a + 7) & ~(size_t)7; /* 16-byte aligned operands */
        __nv_bfloat16 *a16 = bf16_room(g, a_room + span_b), *b16 = a16 + a_room;
        CUDA_LAUNCH(d, to_bf16_kernel, cuda_grid(span_a), CUDA_THREADS, 0, a, a16, span_a);
        CUDA_LAUNCH(d, to_bf16_kernel, cuda_grid(span_b), CUDA_THREADS, 0, b, b16, span_b);
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(
            g->blas, op_b, op_a, n, m, k, &alpha, b16, CUDA_R_16BF, ldb, stride_b, a16,
            CUDA_R_16BF, lda, stride_a, &beta, c, CUDA_R_32F, ldc, stride_c, batch,
            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
        CUBLAS_CHECK(cublasSgemmStridedBatched(g->blas, op_b, op_a, n, m, k, &alpha, b, ldb,
                                               stride_b, a, lda, stride_a, &beta, c, ldc,
                                               stride_c, batch));
    }
    if (g->sync_each_launch)
        CUDA_CHECK(cudaStreamSynchronize(cuda_stream(d)));
}

/* The table's gemm (fully connected layers; convolutions call cuda_gemm
 * directly).  Under DL_CUDA_TF32_CONV the handle's math mode is TF32 for the
 * convolutions, so this call switches it to strict fp32 and back: the mode
 * is read when cuBLAS enqueues the GEMM, on the host. */
void cuda_gemm_table(dl_device *d, int trans_a, int trans_b, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta, float *c,
                     int ldc)
{
    cuda_impl *g = cuda_of(d);
    if (g->fc_fp32)
        CUBLAS_CHECK(cublasSetMathMode(g->blas, CUBLAS_DEFAULT_MATH));
    cuda_gemm(d, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    if (g->fc_fp32)
        CUBLAS_CHECK(cublasSetMathMode(g->blas, CUBLAS_TF32_TENSOR_OP_MATH));
}

