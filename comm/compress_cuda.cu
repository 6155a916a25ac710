/* compress_cuda.cu: the element-wise codecs on the GPU (see compress_cuda.h).
 *
 * One thread per value for fp16/bf16; one block of DL_COMPRESS_BLOCK (256)
 * threads per block of values for int8 and onebit, so a block's scale or
 * means come from one shared-memory reduction.  The results match the C
 * reference bit for bit: the max is exact in any order, the int8 step is the
 * same IEEE division, and onebit's sums of 256 floats are taken in double,
 * where they are exact for any values within 2^29 of each other (the C
 * reference sums in order, also in double). */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <float.h>
#include <stdint.h>

extern "C" {
#include "compress_cuda.h"
}
#include "compress_cuda_try.cuh"

#define BLOCK DL_COMPRESS_BLOCK

__host__ __device__ static size_t n_blocks(size_t n) { return (n + BLOCK - 1) / BLOCK; }
static unsigned grid_of(size_t n, unsigned threads)
{
    return (unsigned)((n + threads - 1) / threads);
}

__device__ static uint16_t half_bits(float x)
{
    if (fabsf(x) >= 65520.0f) /* rounds to infinity in fp16: the largest half, as the reference */
        return x > 0 ? 0x7bffu : 0xfbffu;
    return __half_as_ushort(__float2half_rn(x));
}

__device__ static uint16_t bf16_bits(float x)
{
    uint16_t b = __bfloat16_as_ushort(__float2bfloat16_rn(x));
    if ((b & 0x7f80u) == 0x7f80u && !isinf(x) && !isnan(x))
        b = (b & 0x8000u) | 0x7f7fu;
    return b;
}

__global__ static void k_encode16(const float *x, size_t n, uint16_t *out, int bf16)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = bf16 ? bf16_bits(x[i]) : half_bits(x[i]);
}

__global__ static void k_decode16(const uint16_t *in, size_t n, float *y, int bf16)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = bf16 ? __bfloat162float(__ushort_as_bfloat16(in[i]))
                    : __half2float(__ushort_as_half(in[i]));
}

__device__ static float block_max(float v, float *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (unsigned s = BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s)
            sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    float m = sh[0];
    __syncthreads();
    return m;
}

/* The C reference's int8_step: amax / 127, but no more than the largest s
 * with 127 s finite (found in a few steps from FLT_MAX / 127; walking down
 * from an infinite amax / 127 would take millions). */
__device__ static float int8_step(float amax)
{
    float s = amax / 127.0f, top = FLT_MAX / 127.0f;
    while (isinf(127.0f * top))
        top = nextafterf(top, 0.0f);
    while (!isinf(127.0f * nextafterf(top, INFINITY)))
        top = nextafterf(top, INFINITY);
    return s > top ? top : s;
}

__global__ static void k_int8_encode(const float *x, size_t n, float *scale, int8_t *q)
{
    __shared__ float sh[BLOCK];
    size_t i = blockIdx.x * (size_t)BLOCK + threadIdx.x;
    float v = i < n ? x[i] : 0.0f;
    float s = int8_step(block_max(fabsf(v), sh));
    if (threadIdx.x == 0)
        scale[blockIdx.x] = s;
    if (i < n)
        q[i] = (int8_t)fmaxf(-127.0f, fminf(127.0f, s > 0.0f ? rintf(v / s) : 0.0f));
}

__global__ static void k_int8_decode(const float *scale, const int8_t *q, size_t n, float *y)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = (float)q[i] * scale[i / BLOCK];
}

/* Sums of the non-negative and the negative values, and the count of the
 * non-negative ones, over the block. */
__global__ static void k_onebit_encode(const float *x, size_t n, float *pos, float *neg,
                                       unsigned char *bits)
{
    __shared__ double sp[BLOCK], sn[BLOCK];
    __shared__ int cp[BLOCK], cn[BLOCK];
    size_t i = blockIdx.x * (size_t)BLOCK + threadIdx.x;
    float v = i < n ? x[i] : 0.0f;
    int in = i < n, nonneg = in && v >= 0.0f;
    sp[threadIdx.x] = nonneg ? v : 0.0, sn[threadIdx.x] = in && !nonneg ? v : 0.0;
    cp[threadIdx.x] = nonneg, cn[threadIdx.x] = in && !nonneg;
    __syncthreads();
    for (unsigned s = BLOCK / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            sp[threadIdx.x] += sp[threadIdx.x + s], sn[threadIdx.x] += sn[threadIdx.x + s];
            cp[threadIdx.x] += cp[threadIdx.x + s], cn[threadIdx.x] += cn[threadIdx.x + s];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        pos[blockIdx.x] = cp[0] ? (float)(sp[0] / cp[0]) : 0.0f;
        neg[blockIdx.x] = cn[0] ? (float)(sn[0] / cn[0]) : 0.0f;
    }
    /* eight values per byte: a ballot of the warp, written by its lanes 0, 8, 16, 24 */
    unsigned ballot = __ballot_sync(0xffffffffu, nonneg);
    unsigned lane = threadIdx.x % 32;
    if (lane % 8 == 0 && i < n)
        bits[i / 8] = (unsigned char)(ballot >> lane);
}

__global__ static void k_onebit_decode(const float *pos, const float *neg,
                                       const unsigned char *bits, size_t n, float *y)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = (bits[i / 8] >> (i % 8)) & 1u ? pos[i / BLOCK] : neg[i / BLOCK];
}

__global__ static void k_add(float *x, const float *r, size_t n)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        x[i] += r[i];
}

__global__ static void k_residual(const float *x, float *r, size_t n)
{
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (i < n)
        r[i] = x[i] - r[i]; /* r holds the decoded values */
}

/* Value i of an encoded shard of n values (nb blocks), as the C decoders. */
__device__ static float decode_at(dl_compress_kind kind, const unsigned char *in, size_t n,
                                  size_t nb, size_t i)
{
    const float *f = (const float *)in;
    const uint16_t *h = (const uint16_t *)in;
    switch (kind) {
    case DL_COMPRESS_FP16: return __half2float(__ushort_as_half(h[i]));
    case DL_COMPRESS_BF16: return __bfloat162float(__ushort_as_bfloat16(h[i]));
    case DL_COMPRESS_INT8: return (float)((const int8_t *)(f + nb))[i] * f[i / BLOCK];
    case DL_COMPRESS_NONE: return f[i]; /* a run sent exact */
    default: {
        const unsigned char *bits = (const unsigned char *)(f + 2 * nb);
        (void)n;
        return (bits[i / 8] >> (i % 8)) & 1u ? f[i / BLOCK] : f[nb + i / BLOCK];
    }
    }
}

/* The C reference's codec mean: decoded shards added in rank order from
 * zero, then times 1/world.  __fadd_rn / __fmul_rn keep the compiler from
 * fusing int8's decode product into the sum (an FMA rounds once, the C
 * reference twice), so the result is the reference's, bit for bit. */
__global__ static void k_mean(dl_compress_kind kind, const unsigned char *shards, size_t bytes,
                              size_t n, int world, float inv, float *x)
{
    size_t nb = n_blocks(n);
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)blockDim.x * gridDim.x) {
        float s = 0.0f;
        for (int r = 0; r < world; r++)
            s = __fadd_rn(s, decode_at(kind, shards + (size_t)r * bytes, n, nb, i));
        x[i] = __fmul_rn(s, inv);
    }
}

extern "C" dl_status dl_codec_encode_cuda(dl_compress_kind kind, const float *x, size_t n,
                                          void *out, void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    size_t nb = n_blocks(n);
    CUDA_TRY(cudaMemsetAsync(out, 0, dl_codec_bytes(kind, n), st));
    if (n == 0)
        return DL_OK;
    switch (kind) {
    case DL_COMPRESS_NONE:
        CUDA_TRY(cudaMemcpyAsync(out, x, n * sizeof *x, cudaMemcpyDeviceToDevice, st));
        break;
    case DL_COMPRESS_FP16:
    case DL_COMPRESS_BF16:
        k_encode16<<<grid_of(n, 256), 256, 0, st>>>(x, n, (uint16_t *)out,
                                                   kind == DL_COMPRESS_BF16);
        break;
    case DL_COMPRESS_INT8:
        k_int8_encode<<<(unsigned)nb, BLOCK, 0, st>>>(x, n, (float *)out,
                                                       (int8_t *)((float *)out + nb));
        break;
    case DL_COMPRESS_ONEBIT:
        k_onebit_encode<<<(unsigned)nb, BLOCK, 0, st>>>(
            x, n, (float *)out, (float *)out + nb, (unsigned char *)((float *)out + 2 * nb));
        break;
    default:
        return dl_fail(DL_ERR_ARG, "no CUDA encoder for compressor %d", (int)kind);
    }
    CUDA_TRY(cudaGetLastError());
    return DL_OK;
}

extern "C" dl_status dl_codec_decode_cuda(dl_compress_kind kind, const void *in, size_t n,
                                          float *y, void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    size_t nb = n_blocks(n);
    if (n == 0)
        return DL_OK;
    const float *f = (const float *)in;
    switch (kind) {
    case DL_COMPRESS_NONE:
        CUDA_TRY(cudaMemcpyAsync(y, in, n * sizeof *y, cudaMemcpyDeviceToDevice, st));
        break;
    case DL_COMPRESS_FP16:
    case DL_COMPRESS_BF16:
        k_decode16<<<grid_of(n, 256), 256, 0, st>>>((const uint16_t *)in, n, y,
                                                   kind == DL_COMPRESS_BF16);
        break;
    case DL_COMPRESS_INT8:
        k_int8_decode<<<grid_of(n, 256), 256, 0, st>>>(f, (const int8_t *)(f + nb), n, y);
        break;
    case DL_COMPRESS_ONEBIT:
        k_onebit_decode<<<grid_of(n, 256), 256, 0, st>>>(
            f, f + nb, (const unsigned char *)(f + 2 * nb), n, y);
        break;
    default:
        return dl_fail(DL_ERR_ARG, "no CUDA decoder for compressor %d", (int)kind);
    }
    CUDA_TRY(cudaGetLastError());
    return DL_OK;
}

extern "C" dl_status dl_codec_feedback_cuda(dl_compress_kind kind, float *x, float *residual,
                                            size_t n, void *enc, void *stream)
{
    cudaStream_t st = (cudaStream_t)stream;
    if (n == 0)
        return DL_OK;
    k_add<<<grid_of(n, 256), 256, 0, st>>>(x, residual, n);
    CUDA_TRY(cudaGetLastError());
    dl_status s = dl_codec_encode_cuda(kind, x, n, enc, stream);
    if (s == DL_OK)
        s = dl_codec_decode_cuda(kind, enc, n, residual, stream);
    if (s != DL_OK)
        return s;
    k_residual<<<grid_of(n, 256), 256, 0, st>>>(x, residual, n);
    CUDA_TRY(cudaGetLastError());
    return DL_OK;
}

extern "C" dl_status dl_codec_mean_cuda(dl_compress_kind kind, const void *shards, size_t stride,
                                        size_t n, int world, float *x, void *stream)
{
    if (kind > DL_COMPRESS_ONEBIT)
        return dl_fail(DL_ERR_ARG, "no CUDA decoder for compressor %d", (int)kind);
    if (n == 0)
        return DL_OK;
    k_mean<<<grid_of(n, 256), 256, 0, (cudaStream_t)stream>>>(kind, (const unsigned char *)shards,
                                                   stride, n, world, 1.0f / (float)world, x);
    CUDA_TRY(cudaGetLastError());
    return DL_OK;
}
