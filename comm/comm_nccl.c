/* comm_nccl.c: the NCCL backend (see comm.h).
 *
 * Streams and events: bucket i's all-reduce must not start before backward
 * has written its gradients, and the optimizer must not read them before the
 * all-reduce is done.  Both orderings are expressed on the GPU, never by the
 * host waiting:
 *
 *   compute stream:  ... backward ... [ready_i] ... backward ... wait(done_i) sgd
 *   comm stream:                   wait(ready_i) ncclAllReduce(avg) [done_i]
 *
 * start records ready_i on the compute stream and queues the all-reduce on
 * the communication stream behind it; wait makes the compute stream wait on
 * done_i and returns at once.  The communicator is created non-blocking so
 * that set-up, too, can be given up after timeout_s instead of hanging.
 *
 * Failure: NCCL reports errors asynchronously (a peer died, a network error)
 * and a lost peer simply makes the collective kernel spin.  A watchdog thread
 * polls ncclCommGetAsyncError and the age of every pending bucket; on an
 * error or a bucket pending longer than timeout_s it prints why, aborts the
 * communicator (ncclCommAbort makes the spinning kernels return) and ends the
 * job through the host backend (MPI_Abort), so no rank hangs. */
#define _POSIX_C_SOURCE 200809L
#include "comm.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "device_cuda.h"
#include "nccl_log.h"

#define WATCHDOG_PERIOD_S 0.05

/* A bucket's age counts from when this GPU's comm stream reached its
 * collective (`begun` done), not from when the host queued it: the host runs
 * far ahead of the GPU, and time this GPU spends on earlier work is no sign
 * of a lost peer. */
typedef struct nccl_slot {
    cudaEvent_t ready, begun, done; /* created on first use of the slot */
    double started_at; /* dl_now() of the start; 0 = not pending */
    double reached_at; /* when the watchdog first saw `begun` done; 0 = not yet */
} nccl_slot;

typedef struct nccl_impl {
    dl_comm *host;
    dl_device *dev;
    int gpu;
    ncclComm_t nccl;
    cudaStream_t compute, stream;
    pthread_t watchdog;
    int watchdog_running;
    pthread_mutex_t mu; /* guards slots[] times, quit and aborting */
    int quit;
    int aborting; /* the first thread to set it owns the abort; others stand down */
    dl_nccl_tail log; /* NCCL's log when dltrain took it over; the watchdog follows it */
    nccl_slot slots[DL_COMM_SLOTS];
} nccl_impl;

/* ---- checks ------------------------------------------------------------------ */

static void sleep_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* A non-blocking communicator answers ncclInProgress while a call is still
 * being issued; poll until it settles or the deadline passes. */
static ncclResult_t settle(ncclComm_t comm, double timeout_s)
{
    double end = dl_now() + timeout_s;
    for (;;) {
        ncclResult_t state = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(comm, &state);
        if (r != ncclSuccess)
            return r;
        if (state != ncclInProgress)
            return state;
        if (dl_now() > end)
            return ncclInProgress;
        sleep_seconds(0.001);
    }
}

static dl_status nccl_check(ncclComm_t comm, double timeout_s, ncclResult_t r, const char *call,
                            const char *file, int line)
{
    if (r == ncclInProgress && comm)
        r = settle(comm, timeout_s);
    if (r == ncclSuccess)
        return DL_OK;
    const char *detail = comm ? ncclGetLastError(comm) : ncclGetLastError(NULL);
    return dl_fail(DL_ERR_COMM, "NCCL error at %s:%d: %s: %s%s%s", file, line, call,
                   r == ncclInProgress ? "no progress within --timeout" : ncclGetErrorString(r),
                   detail && *detail ? ": " : "", detail ? detail : "");
}

static dl_status cuda_check(cudaError_t e, const char *call, const char *file, int line)
{
    if (e == cudaSuccess)
        return DL_OK;
    return dl_fail(DL_ERR_DEVICE, "CUDA error at %s:%d: %s: %s: %s", file, line, call,
                   cudaGetErrorName(e), cudaGetErrorString(e));
}

/* The call runs first: it may be what sets `comm` (ncclCommInitRankConfig). */
#define NCCL_TRY(m, comm, call)                                                                  \
    do {                                                                                         \
        ncclResult_t r_ = (call);                                                                \
        dl_status s_ = nccl_check((comm), (m)->host->timeout_s, r_, #call, __FILE__, __LINE__);   \
        if (s_ != DL_OK)                                                                         \
            return s_;                                                                           \
    } while (0)

#define CUDA_TRY(call)                                                                           \
    do {                                                                                         \
        dl_status s_ = cuda_check((call), #call, __FILE__, __LINE__);                            \
        if (s_ != DL_OK)                                                                         \
            return s_;                                                                           \
    } while (0)

/* ---- watchdog ------------------------------------------------------------------ */

/* Whether the caller is the first to abort; only that thread goes on. */
static int claim_abort(nccl_impl *m)
{
    pthread_mutex_lock(&m->mu);
    int first = !m->aborting;
    m->aborting = 1;
    pthread_mutex_unlock(&m->mu);
    return first;
}

/* On the watchdog thread.  ncclCommAbort from here is what NCCL provides it
 * for (the main thread may be blocked on the spinning kernels).  The job is
 * then ended by the host backend's abort, which hands MPI_Abort to the one
 * thread that makes MPI calls (comm_mpi.c), never calling MPI from here. */
static void die(dl_comm *c, nccl_impl *m, const char *why)
{
    if (!claim_abort(m))
        return; /* the main thread is aborting already (nccl_abort) */
    fprintf(stderr, "dltrain rank %d: %s; aborting the NCCL communicator and the job\n", c->rank,
            why);
    fflush(stderr);
    ncclCommAbort(m->nccl);
    if (m->host->world > 1)
        m->host->abort(m->host, 1);
    _Exit(1);
}

/* How long slot s has been running on the GPU (0: not reached yet); clears
 * it once done.  Lock held. */
static double slot_age(nccl_slot *s, double now)
{
    cudaError_t e = cudaEventQuery(s->done);
    if (e == cudaSuccess) {
        s->started_at = s->reached_at = 0;
        return 0;
    }
    if (e != cudaErrorNotReady) {
        (void)cudaGetLastError(); /* an async NCCL error is reported by the caller's poll */
        return 0;
    }
    if (s->reached_at == 0) {
        e = cudaEventQuery(s->begun);
        if (e == cudaSuccess)
            s->reached_at = now;
        else if (e != cudaErrorNotReady)
            (void)cudaGetLastError();
    }
    return s->reached_at ? now - s->reached_at : 0;
}

/* The pending bucket that has run longest on the GPU, or -1; clears finished ones. */
static int oldest_pending(nccl_impl *m, double *age)
{
    int oldest = -1;
    double now = dl_now();
    *age = 0;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < DL_COMM_SLOTS; i++) {
        if (m->slots[i].started_at == 0)
            continue;
        double a = slot_age(&m->slots[i], now);
        if (a > *age)
            *age = a, oldest = i;
    }
    pthread_mutex_unlock(&m->mu);
    return oldest;
}

static void *watchdog_main(void *arg)
{
    dl_comm *c = arg;
    nccl_impl *m = c->impl;
    if (cudaSetDevice(m->gpu) != cudaSuccess) /* events belong to this GPU's context */
        die(c, m, "the NCCL watchdog cannot select its GPU");
    for (;;) {
        pthread_mutex_lock(&m->mu);
        int quit = m->quit || m->aborting;
        pthread_mutex_unlock(&m->mu);
        if (quit)
            return NULL;
        dl_nccl_tail_pump(&m->log, stderr); /* NCCL's warnings, as they come */
        ncclResult_t state = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(m->nccl, &state);
        if (r != ncclSuccess || (state != ncclSuccess && state != ncclInProgress)) {
            char why[600];
            const char *detail = ncclGetLastError(m->nccl);
            snprintf(why, sizeof why, "NCCL reported an error: %s%s%.400s",
                     ncclGetErrorString(r != ncclSuccess ? r : state), detail && *detail ? ": " : "",
                     detail ? detail : "");
            die(c, m, why);
        }
        double age;
        int slot = oldest_pending(m, &age);
        if (slot >= 0 && age > c->timeout_s) {
            char why[300];
            snprintf(why, sizeof why, "gradient exchange of bucket %d made no progress for "
                     "%.0f s on this GPU (a rank died, stopped, or is out of step)", slot, age);
            die(c, m, why);
        }
        sleep_seconds(WATCHDOG_PERIOD_S);
    }
}

/* ---- collectives ---------------------------------------------------------------- */

static dl_status nccl_broadcast(dl_comm *c, void *buf, size_t bytes, int root)
{
    nccl_impl *m = c->impl;
    return m->host->broadcast(m->host, buf, bytes, root);
}

static dl_status nccl_sum_f64(dl_comm *c, double *x, int n)
{
    nccl_impl *m = c->impl;
    return m->host->allreduce_sum_f64(m->host, x, n);
}

static dl_status nccl_barrier(dl_comm *c)
{
    nccl_impl *m = c->impl;
    return m->host->barrier(m->host);
}

static dl_status slot_events(nccl_slot *s)
{
    if (s->ready)
        return DL_OK;
    CUDA_TRY(cudaEventCreateWithFlags(&s->ready, cudaEventDisableTiming));
    CUDA_TRY(cudaEventCreateWithFlags(&s->begun, cudaEventDisableTiming));
    CUDA_TRY(cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming));
    return DL_OK;
}

/* A collective on slot `slot` runs on the comm stream after the compute
 * stream's work so far: slot_begin records `ready` on the compute stream and
 * `begun` on the comm stream, the caller queues the NCCL call, slot_end
 * records `done` and hands the slot to the watchdog. */
static dl_status slot_begin(nccl_impl *m, int slot)
{
    if (slot < 0 || slot >= DL_COMM_SLOTS)
        return dl_fail(DL_ERR_ARG, "communication slot %d out of range", slot);
    nccl_slot *s = &m->slots[slot];
    dl_status st = slot_events(s);
    if (st != DL_OK)
        return st;
    CUDA_TRY(cudaEventRecord(s->ready, m->compute));
    CUDA_TRY(cudaStreamWaitEvent(m->stream, s->ready, 0));
    CUDA_TRY(cudaEventRecord(s->begun, m->stream)); /* done = this GPU reached the collective */
    return DL_OK;
}

static dl_status slot_end(nccl_impl *m, int slot)
{
    nccl_slot *s = &m->slots[slot];
    CUDA_TRY(cudaEventRecord(s->done, m->stream));
    pthread_mutex_lock(&m->mu);
    s->started_at = dl_now();
    s->reached_at = 0;
    pthread_mutex_unlock(&m->mu);
    return DL_OK;
}

static dl_status nccl_avg_start(dl_comm *c, float *x, size_t n, int slot)
{
    nccl_impl *m = c->impl;
    dl_status st = slot_begin(m, slot);
    if (st != DL_OK)
        return st;
    NCCL_TRY(m, m->nccl, ncclAllReduce(x, x, n, ncclFloat, ncclAvg, m->nccl, m->stream));
    return slot_end(m, slot);
}

/* Compressed gradients (compress.h): send and recv are GPU memory; recv
 * holds every rank's bytes in rank order once the compute stream has waited
 * on the slot (nccl_wait), as after an all-reduce. */
static dl_status nccl_allgather_start(dl_comm *c, const void *send, void *recv, size_t bytes,
                                      int slot)
{
    nccl_impl *m = c->impl;
    dl_status st = slot_begin(m, slot);
    if (st != DL_OK)
        return st;
    NCCL_TRY(m, m->nccl, ncclAllGather(send, recv, bytes, ncclUint8, m->nccl, m->stream));
    return slot_end(m, slot);
}

/* Orders the compute stream after the bucket; the host does not wait, so
 * done_at is when the wait was queued, not when the reduction finished. */
static dl_status nccl_wait(dl_comm *c, int slot, double *done_at)
{
    nccl_impl *m = c->impl;
    if (slot < 0 || slot >= DL_COMM_SLOTS || !m->slots[slot].done)
        return dl_fail(DL_ERR_ARG, "wait on all-reduce slot %d that was never started", slot);
    CUDA_TRY(cudaStreamWaitEvent(m->compute, m->slots[slot].done, 0));
    if (done_at)
        *done_at = dl_now();
    return DL_OK;
}

static void stop_watchdog(nccl_impl *m);

/* On the main thread: the watchdog is stopped and joined first, so nothing
 * polls the communicator while it is torn down; if the watchdog is already
 * aborting, it owns the abort and this thread waits for the end. */
static void nccl_abort(dl_comm *c, int code)
{
    nccl_impl *m = c->impl;
    if (!claim_abort(m)) {
        for (;;)
            sleep_seconds(1); /* the watchdog ends the process */
    }
    stop_watchdog(m);
    ncclCommAbort(m->nccl);
    m->host->abort(m->host, code);
}

/* Only the host backend waits for ranks that are alive but elsewhere (the
 * trainer waits for a checkpoint in a host barrier, with no bucket pending);
 * it alone can ask the others whether they are alive.  A bucket keeps
 * timeout_s: every rank reaches it within a step of the others. */
static void nccl_set_patience(dl_comm *c, double patience_s)
{
    nccl_impl *m = c->impl;
    c->patience_s = patience_s;
    dl_comm_set_patience(m->host, patience_s);
}

static void stop_watchdog(nccl_impl *m)
{
    if (!m->watchdog_running)
        return;
    pthread_mutex_lock(&m->mu);
    m->quit = 1;
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->watchdog, NULL);
    m->watchdog_running = 0;
}

/* Releases everything but the host backend. */
static void release(nccl_impl *m)
{
    if (m->stream) /* the watchdog still guards this wait */
        cudaStreamSynchronize(m->stream);
    stop_watchdog(m);
    if (m->nccl) {
        dl_nccl_tail_pump(&m->log, stderr); /* the last warnings */
        ncclResult_t r = ncclCommFinalize(m->nccl);
        if (r == ncclInProgress)
            r = settle(m->nccl, m->host->timeout_s);
        if (r == ncclSuccess)
            ncclCommDestroy(m->nccl);
        else
            ncclCommAbort(m->nccl);
    }
    for (int i = 0; i < DL_COMM_SLOTS; i++)
        if (m->slots[i].ready) {
            cudaEventDestroy(m->slots[i].ready);
            cudaEventDestroy(m->slots[i].begun);
            cudaEventDestroy(m->slots[i].done);
        }
    if (m->stream)
        cudaStreamDestroy(m->stream);
    (void)cudaGetLastError();
    dl_nccl_tail_pump(&m->log, stderr);
    dl_nccl_tail_close(&m->log);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void nccl_free(dl_comm *c)
{
    nccl_impl *m = c->impl;
    dl_comm *host = m->host;
    release(m);
    free(c);
    host->free(host);
}

static dl_status nccl_split(dl_comm *c, int color, int key, dl_comm **out);

/* ---- set-up ------------------------------------------------------------------------ */

static ncclConfig_t nonblocking_config(void)
{
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    return cfg;
}

/* The dl_comm around an initialised communicator; starts the watchdog. */
static dl_comm *wrap(dl_comm *host, nccl_impl *m)
{
    dl_comm *c = calloc(1, sizeof *c);
    if (!c) {
        dl_fail(DL_ERR_OOM, "out of memory for the NCCL backend");
        return NULL;
    }
    *c = (dl_comm){.name = "nccl", .rank = host->rank, .world = host->world,
                   .local_rank = host->local_rank, .local_size = host->local_size,
                   .timeout_s = host->timeout_s, .device_memory = 1, .impl = m,
                   .broadcast = nccl_broadcast,
                   .allreduce_sum_f64 = nccl_sum_f64, .allreduce_avg_start = nccl_avg_start,
                   .allreduce_wait = nccl_wait, .allgather_start = nccl_allgather_start,
                   .barrier = nccl_barrier, .abort = nccl_abort,
                   .set_patience = nccl_set_patience, .split = nccl_split, .free = nccl_free};
    if (pthread_create(&m->watchdog, NULL, watchdog_main, c) != 0) {
        dl_fail(DL_ERR_COMM, "cannot start the NCCL watchdog thread");
        free(c);
        return NULL;
    }
    m->watchdog_running = 1;
    return c;
}

static nccl_impl *new_impl(dl_comm *host, dl_device *dev)
{
    if (dev->kind != DL_DEVICE_CUDA) {
        dl_fail(DL_ERR_ARG, "the NCCL backend needs a CUDA device (--device cuda)");
        return NULL;
    }
    nccl_impl *m = calloc(1, sizeof *m);
    if (!m) {
        dl_fail(DL_ERR_OOM, "out of memory for the NCCL backend");
        return NULL;
    }
    m->host = host, m->dev = dev;
    m->gpu = dl_device_cuda_ordinal(dev);
    m->compute = (cudaStream_t)dl_device_cuda_stream(dev);
    pthread_mutex_init(&m->mu, NULL);
    /* high priority: a bucket's all-reduce should not queue behind backward kernels */
    int lo = 0, hi = 0;
    if (cuda_check(cudaDeviceGetStreamPriorityRange(&lo, &hi), "cudaDeviceGetStreamPriorityRange",
                   __FILE__, __LINE__) != DL_OK ||
        cuda_check(cudaStreamCreateWithPriority(&m->stream, cudaStreamNonBlocking, hi),
                   "cudaStreamCreateWithPriority", __FILE__, __LINE__) != DL_OK) {
        release(m);
        return NULL;
    }
    return m;
}

static dl_status init_communicator(nccl_impl *m)
{
    dl_comm *host = m->host;
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (host->rank == 0)
        NCCL_TRY(m, NULL, ncclGetUniqueId(&id));
    dl_status st = host->broadcast(host, &id, sizeof id, 0);
    if (st != DL_OK)
        return st;
    ncclConfig_t cfg = nonblocking_config();
    NCCL_TRY(m, m->nccl, ncclCommInitRankConfig(&m->nccl, host->world, id, host->rank, &cfg));
    return DL_OK;
}

/* "2.21.5" */
static void version_text(char *buf, size_t cap)
{
    int v = 0;
    if (ncclGetVersion(&v) != ncclSuccess)
        snprintf(buf, cap, "unknown");
    else
        dl_nccl_version_text(v, buf, cap);
}

/* Waits for the comm stream, giving up after the deadline (a peer that
 * never joins leaves the kernel spinning) or on an NCCL error. */
static dl_status wait_stream(nccl_impl *m, const char *what)
{
    double end = dl_now() + m->host->timeout_s;
    for (;;) {
        cudaError_t e = cudaStreamQuery(m->stream);
        if (e == cudaSuccess)
            return DL_OK;
        if (e != cudaErrorNotReady)
            return cuda_check(e, what, __FILE__, __LINE__);
        ncclResult_t state = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(m->nccl, &state);
        if (r != ncclSuccess || (state != ncclSuccess && state != ncclInProgress))
            return nccl_check(m->nccl, 0, r != ncclSuccess ? r : state, what, __FILE__, __LINE__);
        if (dl_now() > end)
            return dl_fail(DL_ERR_COMM, "%s made no progress within --timeout (%.0f s): a rank "
                           "did not join", what, m->host->timeout_s);
        sleep_seconds(0.001);
    }
}

/* One small all-reduce at set-up.  Since NCCL 2.22 ranks connect at their
 * first collective (NCCL_RUNTIME_CONNECT): this makes a connection failure
 * show here, under the set-up deadline, rather than in the first step, and
 * puts the transport lines in the log before they are read. */
static dl_status warm_up(nccl_impl *m)
{
    const size_t n = (size_t)1 << 18; /* 1 MiB: the ring path large buckets take */
    float *buf = NULL;
    CUDA_TRY(cudaMalloc((void **)&buf, n * sizeof(float)));
    dl_status st = cuda_check(cudaMemsetAsync(buf, 0, n * sizeof(float), m->stream),
                              "cudaMemsetAsync", __FILE__, __LINE__);
    if (st == DL_OK)
        st = nccl_check(m->nccl, m->host->timeout_s,
                        ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, m->nccl, m->stream),
                        "ncclAllReduce (set-up)", __FILE__, __LINE__);
    if (st == DL_OK)
        st = wait_stream(m, "the first NCCL all-reduce");
    if (st != DL_OK && m->nccl) /* the kernel may still spin on buf: stop it first */
        ncclCommAbort(m->nccl), m->nccl = NULL;
    cudaFree(buf);
    return st;
}

dl_comm *dl_comm_nccl(dl_comm *host, dl_device *dev)
{
    /* Before any NCCL call: NCCL reads its log settings once.  (setenv while
     * the MPI thread runs is safe here: that thread reads no environment.) */
    char log_path[512];
    int own_log = dl_nccl_log_capture(log_path, sizeof log_path);
    nccl_impl *m = new_impl(host, dev);
    if (!m)
        return NULL;
    dl_status st = init_communicator(m);
    if (own_log) { /* NCCL opened it at its first call; we follow it, then no one needs the name */
        dl_nccl_tail_open(&m->log, log_path);
        unlink(log_path);
    }
    if (st == DL_OK)
        st = warm_up(m);
    if (st == DL_OK) {
        char version[32];
        version_text(version, sizeof version);
        dl_nccl_share_routes(host, &m->log, version);
    }
    dl_comm *c = st == DL_OK ? wrap(host, m) : NULL;
    if (!c) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", dl_error_message());
        if (m->nccl) /* a half-made communicator cannot be finalised */
            ncclCommAbort(m->nccl), m->nccl = NULL;
        release(m);
        dl_fail(DL_ERR_COMM, "%s", msg);
    }
    return c;
}

int dl_comm_nccl_available(void) { return 1; }

/* ---- split ----------------------------------------------------------------------- */

#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 18, 0)
static dl_status nccl_split(dl_comm *c, int color, int key, dl_comm **out)
{
    nccl_impl *m = c->impl;
    *out = NULL;
    if (!m->host->split)
        return dl_fail(DL_ERR_COMM, "the %s backend under NCCL cannot split into groups",
                       m->host->name);
    dl_comm *host_sub = NULL;
    dl_status st = m->host->split(m->host, color, key, &host_sub);
    if (st != DL_OK)
        return st;
    ncclConfig_t cfg = nonblocking_config();
    ncclComm_t sub = NULL;
    ncclResult_t r = ncclCommSplit(m->nccl, color >= 0 ? color : NCCL_SPLIT_NOCOLOR, key, &sub, &cfg);
    st = nccl_check(m->nccl, c->timeout_s, r, "ncclCommSplit", __FILE__, __LINE__);
    if (st == DL_OK && sub)
        st = nccl_check(sub, c->timeout_s, ncclInProgress, "ncclCommSplit (settling)", __FILE__,
                        __LINE__);
    if (st != DL_OK || color < 0)
        return st; /* a rank outside every group gets no communicator (sub is NULL) */
    nccl_impl *sm = new_impl(host_sub, m->dev);
    if (!sm) {
        ncclCommAbort(sub);
        return DL_ERR_COMM;
    }
    sm->nccl = sub;
    host_sub->timeout_s = c->timeout_s;
    *out = wrap(host_sub, sm);
    if (!*out) {
        release(sm);
        return DL_ERR_COMM;
    }
    return DL_OK;
}
#else
static dl_status nccl_split(dl_comm *c, int color, int key, dl_comm **out)
{
    (void)c, (void)color, (void)key;
    *out = NULL;
    return dl_fail(DL_ERR_COMM, "splitting an NCCL communicator needs NCCL >= 2.18 (this build "
                   "has %d.%d)", NCCL_MAJOR, NCCL_MINOR);
}
#endif
