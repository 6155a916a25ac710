/* comm_staged.c: MPI over gradients in GPU memory, staged through pinned
 * host memory (see comm.h).  The fallback where NCCL is absent, and the way
 * several ranks can share one GPU for testing (NCCL refuses that).
 *
 * Bucket i, without the host waiting for backward:
 *
 *   compute stream: ... backward [ready_i] ... backward ........ wait(back_i) sgd
 *   copy stream:            wait(ready_i) D2H_i host_fn_i [queued_i] ... H2D_i [back_i]
 *   MPI thread:                                 MPI all-reduce_i
 *
 * host_fn_i runs on CUDA's callback thread once the copy is done and only
 * queues the bucket with the MPI backend (no CUDA calls, as CUDA requires of
 * host functions).  The callbacks of one stream run in stream order, so every
 * rank hands the buckets to MPI in the same order, as MPI requires; the
 * training loop waits for every bucket before its next collective.  wait
 * blocks the host until the MPI reduction is done (it has to: the copy back
 * reads its result), then queues the copy back and the compute stream's
 * wait on it.
 *
 * allgather_start (compressed gradients, compress.h) takes the same path:
 * the GPU's send bytes are copied into the front of the slot's pinned
 * buffer, the MPI backend all-gathers them into the rest of it (every
 * rank's bytes in rank order) and wait copies that back to the GPU's recv. */
#include "comm.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_cuda.h"

typedef struct staged_slot {
    dl_comm *host;
    unsigned char *pinned;  /* [cap] pinned staging buffer, kept between steps */
    size_t cap;
    size_t n;               /* all-reduce: floats; all-gather: bytes each rank sends */
    int gather;             /* this use is an all-gather */
    void *dev;              /* where the result goes back to in GPU memory */
    size_t back_off, back_bytes; /* the result's place in pinned */
    int slot;
    cudaEvent_t ready, queued, back;
    dl_status status;       /* of the callback's hand-over to MPI */
    char error[512];
} staged_slot;

typedef struct staged_impl {
    dl_comm *host;
    cudaStream_t compute, stream;
    staged_slot slots[DL_COMM_SLOTS];
} staged_impl;

static dl_status cuda_check(cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess)
        return DL_OK;
    return dl_fail(DL_ERR_DEVICE, "CUDA error at %s:%d: %s: %s: %s", file, line, call,
                   cudaGetErrorName(e), cudaGetErrorString(e));
}

#define CUDA_TRY(call)                                                                           \
    do {                                                                                         \
        dl_status s_ = cuda_check((call), #call, __FILE__, __LINE__);                            \
        if (s_ != DL_OK)                                                                         \
            return s_;                                                                           \
    } while (0)

/* The pinned buffer grows on a bucket's first use only (the bucket layout
 * is fixed for the run), so steps allocate nothing. */
static dl_status slot_prepare(staged_slot *s, size_t bytes)
{
    if (!s->ready) {
        CUDA_TRY(cudaEventCreateWithFlags(&s->ready, cudaEventDisableTiming));
        CUDA_TRY(cudaEventCreateWithFlags(&s->queued, cudaEventDisableTiming));
        CUDA_TRY(cudaEventCreateWithFlags(&s->back, cudaEventDisableTiming));
    }
    if (bytes > s->cap) {
        if (s->pinned)
            CUDA_TRY(cudaFreeHost(s->pinned));
        s->pinned = NULL, s->cap = 0;
        cudaError_t e = cudaMallocHost((void **)&s->pinned, bytes);
        if (e != cudaSuccess)
            return dl_fail(DL_ERR_OOM, "cannot allocate %.1f MiB of pinned host memory for a "
                           "gradient bucket: %s", bytes / 1048576.0, cudaGetErrorString(e));
        s->cap = bytes;
    }
    return DL_OK;
}

/* CUDA's callback thread: the bucket is in host memory now. */
static void CUDART_CB hand_to_mpi(void *arg)
{
    staged_slot *s = arg;
    s->status = s->gather ? s->host->allgather_start(s->host, s->pinned, s->pinned + s->n, s->n,
                                                     s->slot)
                          : s->host->allreduce_avg_start(s->host, (float *)s->pinned, s->n,
                                                         s->slot);
    if (s->status != DL_OK)
        snprintf(s->error, sizeof s->error, "%s", dl_error_message());
}

/* Copies `bytes` of src (GPU) into the slot's pinned buffer after the
 * compute stream's work so far, then hands the slot to MPI (hand_to_mpi). */
static dl_status stage_out(staged_impl *m, staged_slot *s, const void *src, size_t bytes)
{
    CUDA_TRY(cudaEventRecord(s->ready, m->compute));
    CUDA_TRY(cudaStreamWaitEvent(m->stream, s->ready, 0));
    CUDA_TRY(cudaMemcpyAsync(s->pinned, src, bytes, cudaMemcpyDeviceToHost, m->stream));
    CUDA_TRY(cudaLaunchHostFunc(m->stream, hand_to_mpi, s));
    CUDA_TRY(cudaEventRecord(s->queued, m->stream));
    return DL_OK;
}

static dl_status staged_avg_start(dl_comm *c, float *x, size_t n, int slot)
{
    staged_impl *m = c->impl;
    if (slot < 0 || slot >= DL_COMM_SLOTS)
        return dl_fail(DL_ERR_ARG, "all-reduce slot %d out of range", slot);
    staged_slot *s = &m->slots[slot];
    dl_status st = slot_prepare(s, n * sizeof(float));
    if (st != DL_OK)
        return st;
    s->host = m->host, s->dev = x, s->n = n, s->gather = 0, s->slot = slot, s->status = DL_OK;
    s->back_off = 0, s->back_bytes = n * sizeof(float);
    return stage_out(m, s, x, n * sizeof(float));
}

/* dl_comm.reserve: the slot's pinned buffer (and events) made at start-up,
 * at the size its all-reduce or all-gather will ask slot_prepare for. */
static dl_status staged_reserve(dl_comm *c, int slot, size_t bytes, int gather)
{
    staged_impl *m = c->impl;
    if (slot < 0 || slot >= DL_COMM_SLOTS)
        return dl_fail(DL_ERR_ARG, "slot %d out of range", slot);
    return slot_prepare(&m->slots[slot], gather ? bytes + bytes * (size_t)c->world : bytes);
}

/* pinned: this rank's bytes, then every rank's (MPI_Iallgather cannot work
 * in place from the front of its own receive buffer without MPI_IN_PLACE). */
static dl_status staged_allgather_start(dl_comm *c, const void *send, void *recv, size_t bytes,
                                        int slot)
{
    staged_impl *m = c->impl;
    if (slot < 0 || slot >= DL_COMM_SLOTS)
        return dl_fail(DL_ERR_ARG, "all-gather slot %d out of range", slot);
    if (!m->host->allgather_start)
        return dl_fail(DL_ERR_ARG, "the %s backend has no all-gather", m->host->name);
    staged_slot *s = &m->slots[slot];
    size_t all = bytes * (size_t)c->world;
    dl_status st = slot_prepare(s, bytes + all);
    if (st != DL_OK)
        return st;
    s->host = m->host, s->dev = recv, s->n = bytes, s->gather = 1, s->slot = slot;
    s->status = DL_OK, s->back_off = bytes, s->back_bytes = all;
    return stage_out(m, s, send, bytes);
}

static dl_status staged_wait(dl_comm *c, int slot, double *done_at)
{
    staged_impl *m = c->impl;
    if (slot < 0 || slot >= DL_COMM_SLOTS || !m->slots[slot].ready)
        return dl_fail(DL_ERR_ARG, "wait on all-reduce slot %d that was never started", slot);
    staged_slot *s = &m->slots[slot];
    CUDA_TRY(cudaEventSynchronize(s->queued)); /* the callback has run */
    if (s->status != DL_OK)
        return dl_fail(s->status, "%s", s->error);
    dl_status st = m->host->allreduce_wait(m->host, slot, done_at);
    if (st != DL_OK)
        return st;
    CUDA_TRY(cudaMemcpyAsync(s->dev, s->pinned + s->back_off, s->back_bytes,
                             cudaMemcpyHostToDevice, m->stream));
    CUDA_TRY(cudaEventRecord(s->back, m->stream));
    CUDA_TRY(cudaStreamWaitEvent(m->compute, s->back, 0));
    return DL_OK;
}

static dl_status staged_broadcast(dl_comm *c, void *buf, size_t bytes, int root)
{
    staged_impl *m = c->impl;
    return m->host->broadcast(m->host, buf, bytes, root);
}

static dl_status staged_sum_f64(dl_comm *c, double *x, int n)
{
    staged_impl *m = c->impl;
    return m->host->allreduce_sum_f64(m->host, x, n);
}

static dl_status staged_barrier(dl_comm *c)
{
    staged_impl *m = c->impl;
    return m->host->barrier(m->host);
}

static void staged_abort(dl_comm *c, int code)
{
    staged_impl *m = c->impl;
    m->host->abort(m->host, code);
}

/* The host backend's threads do the waiting: its patience is the one that counts. */
static void staged_set_patience(dl_comm *c, double patience_s)
{
    staged_impl *m = c->impl;
    c->patience_s = patience_s;
    dl_comm_set_patience(m->host, patience_s);
}

static void release(staged_impl *m)
{
    if (m->stream)
        cudaStreamSynchronize(m->stream);
    for (int i = 0; i < DL_COMM_SLOTS; i++) {
        staged_slot *s = &m->slots[i];
        if (s->pinned)
            cudaFreeHost(s->pinned);
        if (s->ready) {
            cudaEventDestroy(s->ready);
            cudaEventDestroy(s->queued);
            cudaEventDestroy(s->back);
        }
    }
    if (m->stream)
        cudaStreamDestroy(m->stream);
    (void)cudaGetLastError();
    free(m);
}

static void staged_free(dl_comm *c)
{
    staged_impl *m = c->impl;
    dl_comm *host = m->host;
    release(m);
    free(c);
    host->free(host);
}

dl_comm *dl_comm_staged(dl_comm *host, dl_device *dev)
{
    if (dev->kind != DL_DEVICE_CUDA) {
        dl_fail(DL_ERR_ARG, "GPU staging needs a CUDA device");
        return NULL;
    }
    staged_impl *m = calloc(1, sizeof *m);
    dl_comm *c = calloc(1, sizeof *c);
    if (!m || !c) {
        free(m), free(c);
        dl_fail(DL_ERR_OOM, "out of memory for the MPI staging backend");
        return NULL;
    }
    m->host = host;
    m->compute = (cudaStream_t)dl_device_cuda_stream(dev);
    if (cuda_check(cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking),
                   "cudaStreamCreateWithFlags", __FILE__, __LINE__) != DL_OK) {
        release(m);
        free(c);
        return NULL;
    }
    *c = (dl_comm){.name = "mpi (staged through pinned host memory)", .rank = host->rank,
                   .world = host->world, .local_rank = host->local_rank,
                   .local_size = host->local_size, .timeout_s = host->timeout_s,
                   .device_memory = 1, .impl = m,
                   .broadcast = staged_broadcast, .allreduce_sum_f64 = staged_sum_f64,
                   .allreduce_avg_start = staged_avg_start, .allreduce_wait = staged_wait,
                   .allgather_start = staged_allgather_start, .reserve = staged_reserve,
                   .barrier = staged_barrier, .abort = staged_abort,
                   .set_patience = staged_set_patience, .split = NULL,
                   .free = staged_free};
    return c;
}
