/* comm_mpi.c: the MPI backend.
 *
 * Every MPI call after start-up happens on one communication thread
 * (MPI_THREAD_SERIALIZED).  The training thread queues operations and waits
 * on a condition variable; the communication thread issues them as
 * non-blocking collectives in queue order (the same order on every rank,
 * as MPI requires), and polls them with MPI_Test.  Polling instead of
 * blocking is what makes faults visible: an operation that makes no
 * progress for `timeout_s` triggers a roll call on a separate communicator
 * (ping every rank, wait a few seconds for answers) so the message can name
 * the rank that is gone or stopped, and then MPI_Abort ends the job.  The
 * thread also answers other ranks' roll calls while idle. */
#define _GNU_SOURCE
#include "comm.h"

#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TAG_PING 7001
#define TAG_PONG 7002
#define ROLL_CALL_SECONDS 5.0

typedef enum { OP_AVG, OP_SUM_F64, OP_BCAST, OP_BARRIER } op_kind;
typedef enum { OP_FREE, OP_QUEUED, OP_RUNNING, OP_DONE } op_state;

typedef struct mpi_op {
    op_kind kind;
    op_state state;
    void *buf;
    size_t n;
    int root;
    MPI_Request req;
    double issued_at, done_at;
    dl_status status;
} mpi_op;

/* Slots DL_COMM_SLOTS.. are the blocking operations of the training thread. */
#define SYNC_SLOT DL_COMM_SLOTS

typedef struct mpi_impl {
    MPI_Comm world, ctrl; /* ctrl carries roll-call pings, apart from collectives */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;
    mpi_op ops[DL_COMM_SLOTS + 1];
    int queue[DL_COMM_SLOTS + 1], q_head, q_tail; /* issue order */
    int running[DL_COMM_SLOTS + 1], n_running;
    char host[MPI_MAX_PROCESSOR_NAME];
} mpi_impl;

static void mpi_error_text(int code, char *out, size_t size)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", code);
    snprintf(out, size, "%s", text);
}

#define MPI_CHECK(call)                                                                     \
    do {                                                                                    \
        int mpi_rc_ = (call);                                                               \
        if (mpi_rc_ != MPI_SUCCESS) {                                                       \
            char text_[MPI_MAX_ERROR_STRING];                                               \
            mpi_error_text(mpi_rc_, text_, sizeof text_);                                   \
            return dl_fail(DL_ERR_COMM, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call, \
                           text_);                                                          \
        }                                                                                   \
    } while (0)

/* ---- roll call ------------------------------------------------------------ */

static void answer_pings(mpi_impl *m)
{
    for (;;) {
        int flag = 0;
        MPI_Status s;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_PING, m->ctrl, &flag, &s) != MPI_SUCCESS || !flag)
            return;
        char b;
        MPI_Recv(&b, 1, MPI_CHAR, s.MPI_SOURCE, TAG_PING, m->ctrl, MPI_STATUS_IGNORE);
        MPI_Request r;
        if (MPI_Isend(&b, 1, MPI_CHAR, s.MPI_SOURCE, TAG_PONG, m->ctrl, &r) == MPI_SUCCESS)
            MPI_Request_free(&r);
    }
}

/* Pings every other rank and lists those that do not answer in time. */
static void roll_call(mpi_impl *m, int rank, int world, char *missing, size_t size)
{
    char *answered = calloc((size_t)world, 1);
    static char ping = 1;
    int outstanding = world - 1;
    for (int r = 0; r < world; r++) {
        MPI_Request req;
        if (r != rank && MPI_Isend(&ping, 1, MPI_CHAR, r, TAG_PING, m->ctrl, &req) == MPI_SUCCESS)
            MPI_Request_free(&req);
    }
    double end = dl_now() + ROLL_CALL_SECONDS;
    while (outstanding > 0 && dl_now() < end) {
        answer_pings(m);
        int flag = 0;
        MPI_Status s;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_PONG, m->ctrl, &flag, &s) == MPI_SUCCESS && flag) {
            char b;
            MPI_Recv(&b, 1, MPI_CHAR, s.MPI_SOURCE, TAG_PONG, m->ctrl, MPI_STATUS_IGNORE);
            if (answered && !answered[s.MPI_SOURCE])
                answered[s.MPI_SOURCE] = 1, outstanding--;
        } else {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    size_t len = 0;
    missing[0] = 0;
    for (int r = 0; r < world && answered; r++)
        if (r != rank && !answered[r] && len + 16 < size)
            len += (size_t)snprintf(missing + len, size - len, "%s%d", len ? ", " : "", r);
    free(answered);
}

static const char *op_name(op_kind k)
{
    return k == OP_AVG ? "gradient all-reduce" : k == OP_SUM_F64 ? "metrics all-reduce"
         : k == OP_BCAST ? "broadcast" : "barrier";
}

static void abort_stalled(dl_comm *c, mpi_impl *m, const mpi_op *op)
{
    char missing[512];
    roll_call(m, c->rank, c->world, missing, sizeof missing);
    if (missing[0])
        fprintf(stderr, "dltrain rank %d (%s): %s made no progress for %.0f s; rank %s did not "
                "answer (dead, stopped or stuck): aborting the job\n", c->rank, m->host,
                op_name(op->kind), c->timeout_s, missing);
    else
        fprintf(stderr, "dltrain rank %d (%s): %s made no progress for %.0f s although every "
                "rank answers (ranks out of step?): aborting the job\n", c->rank, m->host,
                op_name(op->kind), c->timeout_s);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _Exit(1);
}

/* ---- the communication thread --------------------------------------------- */

static int issue(dl_comm *c, mpi_impl *m, mpi_op *op)
{
    op->issued_at = dl_now();
    switch (op->kind) {
    case OP_AVG:
        return MPI_Iallreduce(MPI_IN_PLACE, op->buf, (int)op->n, MPI_FLOAT, MPI_SUM, m->world,
                              &op->req);
    case OP_SUM_F64:
        return MPI_Iallreduce(MPI_IN_PLACE, op->buf, (int)op->n, MPI_DOUBLE, MPI_SUM, m->world,
                              &op->req);
    case OP_BCAST:
        return MPI_Ibcast(op->buf, (int)op->n, MPI_BYTE, op->root, m->world, &op->req);
    case OP_BARRIER:
        return MPI_Ibarrier(m->world, &op->req);
    }
    (void)c;
    return MPI_ERR_OTHER;
}

static void finish(dl_comm *c, mpi_op *op, int rc)
{
    if (rc != MPI_SUCCESS) {
        char text[MPI_MAX_ERROR_STRING];
        mpi_error_text(rc, text, sizeof text);
        op->status = DL_ERR_COMM;
        fprintf(stderr, "dltrain rank %d: %s:%d: %s failed: %s\n", c->rank, __FILE__, __LINE__,
                op_name(op->kind), text);
    } else if (op->kind == OP_AVG) {
        float s = 1.0f / (float)c->world, *x = op->buf;
        for (size_t i = 0; i < op->n; i++)
            x[i] *= s;
    }
    op->done_at = dl_now();
}

/* Issues queued operations; called with the lock held. */
static void issue_queued(dl_comm *c, mpi_impl *m)
{
    while (m->q_head != m->q_tail) {
        int slot = m->queue[m->q_head];
        m->q_head = (m->q_head + 1) % (DL_COMM_SLOTS + 1);
        mpi_op *op = &m->ops[slot];
        pthread_mutex_unlock(&m->mu);
        int rc = issue(c, m, op);
        pthread_mutex_lock(&m->mu);
        if (rc != MPI_SUCCESS) {
            finish(c, op, rc);
            op->state = OP_DONE;
            pthread_cond_broadcast(&m->cv);
        } else {
            op->state = OP_RUNNING;
            m->running[m->n_running++] = slot;
        }
    }
}

/* Tests running operations; returns how many finished.  Lock held. */
static int test_running(dl_comm *c, mpi_impl *m)
{
    int finished = 0;
    for (int i = 0; i < m->n_running;) {
        mpi_op *op = &m->ops[m->running[i]];
        int flag = 0;
        int rc = MPI_Test(&op->req, &flag, MPI_STATUS_IGNORE);
        if (rc == MPI_SUCCESS && !flag) {
            if (dl_now() - op->issued_at > c->timeout_s)
                abort_stalled(c, m, op);
            i++;
            continue;
        }
        finish(c, op, rc);
        op->state = OP_DONE;
        m->running[i] = m->running[--m->n_running];
        finished++;
    }
    if (finished)
        pthread_cond_broadcast(&m->cv);
    return finished;
}

static void idle_wait(mpi_impl *m, double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)(seconds * 1e9);
    ts.tv_sec += ns / 1000000000L, ts.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&m->cv, &m->mu, &ts);
}

static void *comm_thread(void *arg)
{
    dl_comm *c = arg;
    mpi_impl *m = c->impl;
    int idle_polls = 0;
    pthread_mutex_lock(&m->mu);
    while (!m->quit) {
        issue_queued(c, m);
        int finished = test_running(c, m);
        pthread_mutex_unlock(&m->mu);
        answer_pings(m);
        pthread_mutex_lock(&m->mu);
        if (m->n_running == 0 && m->q_head == m->q_tail) {
            idle_wait(m, 0.05); /* wakes on new work, or to answer roll calls */
            idle_polls = 0;
        } else if (!finished && ++idle_polls > 64) {
            /* Back off so a polling thread does not starve compute on shared cores. */
            pthread_mutex_unlock(&m->mu);
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
            pthread_mutex_lock(&m->mu);
        } else if (!finished) {
            pthread_mutex_unlock(&m->mu);
            sched_yield();
            pthread_mutex_lock(&m->mu);
        }
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* ---- the interface -------------------------------------------------------- */

static dl_status enqueue(dl_comm *c, int slot, op_kind kind, void *buf, size_t n, int root)
{
    mpi_impl *m = c->impl;
    if (slot < 0 || slot > SYNC_SLOT)
        return dl_fail(DL_ERR_ARG, "communication slot %d out of range", slot);
    if (n > 0x7fffffff)
        return dl_fail(DL_ERR_ARG, "%s of %zu elements is too large for one MPI call "
                       "(use a smaller --bucket-mb)", op_name(kind), n);
    pthread_mutex_lock(&m->mu);
    mpi_op *op = &m->ops[slot];
    if (op->state == OP_QUEUED || op->state == OP_RUNNING) {
        pthread_mutex_unlock(&m->mu);
        return dl_fail(DL_ERR_ARG, "communication slot %d is still busy", slot);
    }
    *op = (mpi_op){.kind = kind, .state = OP_QUEUED, .buf = buf, .n = n, .root = root,
                   .status = DL_OK};
    m->queue[m->q_tail] = slot;
    m->q_tail = (m->q_tail + 1) % (DL_COMM_SLOTS + 1);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return DL_OK;
}

static dl_status wait_slot(dl_comm *c, int slot, double *done_at)
{
    mpi_impl *m = c->impl;
    pthread_mutex_lock(&m->mu);
    mpi_op *op = &m->ops[slot];
    while (op->state == OP_QUEUED || op->state == OP_RUNNING)
        pthread_cond_wait(&m->cv, &m->mu);
    dl_status st = op->state == OP_DONE ? op->status : DL_OK;
    if (done_at)
        *done_at = op->state == OP_DONE ? op->done_at : dl_now();
    op->state = OP_FREE;
    pthread_mutex_unlock(&m->mu);
    if (st != DL_OK)
        return dl_fail(st, "%s failed on rank %d (see the MPI message above)",
                       op_name(op->kind), c->rank);
    return DL_OK;
}

static dl_status run_sync(dl_comm *c, op_kind kind, void *buf, size_t n, int root)
{
    dl_status st = enqueue(c, SYNC_SLOT, kind, buf, n, root);
    return st == DL_OK ? wait_slot(c, SYNC_SLOT, NULL) : st;
}

static dl_status mpi_broadcast(dl_comm *c, void *buf, size_t bytes, int root)
{
    /* Large payloads (parameters of big models) go in pieces MPI's int count can hold. */
    const size_t piece = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += piece) {
        size_t n = bytes - off < piece ? bytes - off : piece;
        dl_status st = run_sync(c, OP_BCAST, (char *)buf + off, n, root);
        if (st != DL_OK)
            return st;
    }
    return DL_OK;
}

static dl_status mpi_sum_f64(dl_comm *c, double *x, int n)
{
    return run_sync(c, OP_SUM_F64, x, (size_t)n, 0);
}

static dl_status mpi_avg_start(dl_comm *c, float *x, size_t n, int slot)
{
    if (slot >= DL_COMM_SLOTS)
        return dl_fail(DL_ERR_ARG, "all-reduce slot %d out of range", slot);
    return enqueue(c, slot, OP_AVG, x, n, 0);
}

static dl_status mpi_barrier(dl_comm *c) { return run_sync(c, OP_BARRIER, NULL, 0, 0); }

static void mpi_abort(dl_comm *c, int code)
{
    fflush(stdout);
    fflush(stderr);
    (void)c;
    MPI_Abort(MPI_COMM_WORLD, code);
    _Exit(code);
}

static void mpi_free(dl_comm *c)
{
    mpi_impl *m = c->impl;
    pthread_mutex_lock(&m->mu);
    m->quit = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    MPI_Comm_free(&m->ctrl);
    MPI_Comm_free(&m->world);
    MPI_Finalize();
    free(m);
    free(c);
}

static dl_status init_comms(dl_comm *c, mpi_impl *m)
{
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &m->world));
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &m->ctrl));
    MPI_CHECK(MPI_Comm_rank(m->world, &c->rank));
    MPI_CHECK(MPI_Comm_size(m->world, &c->world));
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(m->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, &c->local_rank));
    MPI_CHECK(MPI_Comm_size(node, &c->local_size));
    MPI_CHECK(MPI_Comm_free(&node));
    int len = 0;
    MPI_CHECK(MPI_Get_processor_name(m->host, &len));
    return DL_OK;
}

dl_comm *dl_comm_mpi(int *argc, char ***argv)
{
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        dl_fail(DL_ERR_COMM, "MPI_Init_thread failed");
        return NULL;
    }
    dl_comm *c = calloc(1, sizeof *c);
    mpi_impl *m = calloc(1, sizeof *m);
    if (!c || !m || provided < MPI_THREAD_SERIALIZED) {
        dl_fail(DL_ERR_COMM, "%s", !c || !m ? "out of memory"
                : "this MPI library cannot serve calls from a communication thread "
                  "(MPI_THREAD_SERIALIZED not provided)");
        MPI_Abort(MPI_COMM_WORLD, 1);
        return NULL;
    }
    *c = (dl_comm){.name = "mpi", .impl = m, .timeout_s = 60.0, .broadcast = mpi_broadcast,
                   .allreduce_sum_f64 = mpi_sum_f64, .allreduce_avg_start = mpi_avg_start,
                   .allreduce_wait = wait_slot, .barrier = mpi_barrier, .abort = mpi_abort,
                   .free = mpi_free};
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    if (init_comms(c, m) != DL_OK || pthread_create(&m->thread, NULL, comm_thread, c) != 0) {
        fprintf(stderr, "dltrain: MPI start-up failed: %s\n", dl_error_message());
        MPI_Abort(MPI_COMM_WORLD, 1);
        return NULL;
    }
    return c;
}

int dl_comm_mpi_available(void) { return 1; }
