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
 * thread also answers other ranks' roll calls while idle.
 *
 * split() makes a group of some of the ranks (`dltrain scale` times 1, 2, 4 ..
 * ranks while the rest wait).  A group is served by the same thread as the
 * world (the "engine"): MPI_THREAD_SERIALIZED allows one caller at a time,
 * and one thread keeps that true without a second lock around every call.
 * Each group has its own communicators, slots and queue, so a bucket slot of
 * the group never collides with one of the world. */
#define _GNU_SOURCE
#include "comm.h"
#include "comm_mpi_hier.h"

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

/* OP_SPLIT and OP_RELEASE run at once on the thread (MPI has no non-blocking split). */
typedef enum { OP_AVG, OP_GATHER, OP_SUM_F64, OP_BCAST, OP_BARRIER, OP_SPLIT, OP_RELEASE } op_kind;
typedef enum { OP_FREE, OP_QUEUED, OP_RUNNING, OP_DONE } op_state;

typedef struct mpi_op {
    op_kind kind;
    op_state state;
    void *buf;
    const void *send; /* OP_GATHER: this rank's part (buf receives every rank's) */
    size_t n;
    int root;
    MPI_Request req;
    double issued_at, done_at;
    double checked_at; /* the last roll call for it (issued_at before any) */
    dl_status status;
    int hier, step; /* a hierarchical all-reduce and the steps it has issued */
    long seq;
} mpi_op;

/* Slots DL_COMM_SLOTS.. are the blocking operations of the training thread. */
#define SYNC_SLOT DL_COMM_SLOTS

typedef struct mpi_engine mpi_engine;

/* One group of ranks: the world, or a group made by split. */
typedef struct mpi_impl {
    mpi_engine *eng;
    dl_comm *comm;        /* the dl_comm this is the impl of */
    MPI_Comm world, ctrl; /* ctrl carries roll-call pings, apart from collectives */
    int *world_rank;      /* [comm->world] each member's rank in the job, for messages */
    mpi_op ops[DL_COMM_SLOTS + 1];
    int queue[DL_COMM_SLOTS + 1], q_head, q_tail; /* issue order */
    int running[DL_COMM_SLOTS + 1], n_running;
    dl_mpi_nodes nodes; /* the group's nodes (the world's: host[] of every job rank) */
    int hier;           /* gradient all-reduces are hierarchical */
    struct mpi_impl *next;
} mpi_impl;

/* The communication thread and the groups it serves; mu guards all of it. */
struct mpi_engine {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;
    int abort_code, abort_asked; /* another thread asks this one to call MPI_Abort */
    mpi_impl *groups; /* the world first */
    char host[MPI_MAX_PROCESSOR_NAME];
};

/* What a split asks for and what it gives back (the buffer of an OP_SPLIT). */
typedef struct split_request {
    int color, key;
    MPI_Comm world, ctrl;
    int rank, size;
    int *world_rank;
    dl_mpi_nodes nodes;
} split_request;

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
    while (m->ctrl != MPI_COMM_NULL) { /* NULL once a group is released */
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
    return k == OP_AVG ? "gradient all-reduce" : k == OP_GATHER ? "compressed gradient all-gather"
         : k == OP_SUM_F64 ? "metrics all-reduce"
         : k == OP_BCAST ? "broadcast" : k == OP_BARRIER ? "barrier"
         : k == OP_SPLIT ? "split" : "group release";
}

/* The job ranks of the group members listed in `group_ranks` ("1, 3"), each
 * with its host ("1 on h0, 3 on h1"): across machines, where to look. */
static void to_job_ranks(const mpi_impl *m, const char *group_ranks, char *out, size_t size)
{
    size_t len = 0;
    out[0] = 0;
    for (const char *p = group_ranks; *p && len + 16 < size;) {
        char *end;
        long r = strtol(p, &end, 10);
        if (end == p)
            break;
        int job = r >= 0 && r < m->comm->world && m->world_rank ? m->world_rank[r] : (int)r;
        const mpi_impl *w = m->eng->groups; /* the world knows every job rank's host */
        const char *host = w->nodes.host && job >= 0 && job < w->comm->world
                               ? w->nodes.host[job] : "?";
        len += (size_t)snprintf(out + len, size - len, "%s%d on %s", len ? ", " : "", job, host);
        p = end;
        while (*p == ',' || *p == ' ')
            p++;
    }
}

/* An operation without progress for timeout_s: a roll call.  A rank that
 * does not answer ends the job; if all answer, the job ends too unless the
 * patience (comm.h) has not run out yet, and then the operation waits for
 * another timeout_s before the next roll call.  Lock held. */
static void check_stalled(dl_comm *c, mpi_impl *m, mpi_op *op)
{
    char missing[512], job_ranks[512];
    int me = m->world_rank ? m->world_rank[c->rank] : c->rank;
    roll_call(m, c->rank, c->world, missing, sizeof missing);
    if (!missing[0] && dl_now() - op->issued_at < c->patience_s) {
        op->checked_at = dl_now();
        return;
    }
    to_job_ranks(m, missing, job_ranks, sizeof job_ranks);
    if (missing[0])
        fprintf(stderr, "dltrain rank %d (%s): %s made no progress for %.0f s; rank %s did not "
                "answer (dead, stopped or stuck): aborting the job\n", me, m->eng->host,
                op_name(op->kind), c->timeout_s, job_ranks);
    else
        fprintf(stderr, "dltrain rank %d (%s): %s made no progress for %.0f s although every "
                "rank answers (ranks out of step?): aborting the job\n", me, m->eng->host,
                op_name(op->kind), dl_now() - op->issued_at);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    _Exit(1);
}

/* ---- splitting and releasing groups (on the communication thread) --------- */

/* MPI_Comm_split blocks; the caller has passed a barrier with a deadline
 * first, so every member is already here and it returns promptly. */
static int split_now(mpi_impl *m, split_request *q)
{
    int rc = MPI_Comm_split(m->world, q->color >= 0 ? q->color : MPI_UNDEFINED, q->key, &q->world);
    if (rc != MPI_SUCCESS || q->world == MPI_COMM_NULL)
        return rc;
    int job_rank = m->world_rank ? m->world_rank[m->comm->rank] : m->comm->rank;
    if ((rc = MPI_Comm_dup(q->world, &q->ctrl)) != MPI_SUCCESS ||
        (rc = MPI_Comm_rank(q->world, &q->rank)) != MPI_SUCCESS ||
        (rc = MPI_Comm_size(q->world, &q->size)) != MPI_SUCCESS)
        return rc;
    q->world_rank = calloc((size_t)q->size, sizeof *q->world_rank);
    if (!q->world_rank)
        return MPI_ERR_NO_MEM;
    rc = MPI_Allgather(&job_rank, 1, MPI_INT, q->world_rank, 1, MPI_INT, q->world);
    return rc != MPI_SUCCESS ? rc : dl_mpi_nodes_init(q->world, q->rank, q->size, &q->nodes);
}

static int release_now(mpi_impl *m)
{
    dl_mpi_nodes_free(&m->nodes);
    int rc = MPI_Comm_free(&m->ctrl);
    int rc2 = MPI_Comm_free(&m->world);
    return rc != MPI_SUCCESS ? rc : rc2;
}

/* ---- the communication thread --------------------------------------------- */

static int issue(mpi_impl *m, mpi_op *op)
{
    op->issued_at = op->checked_at = dl_now();
    op->req = MPI_REQUEST_NULL; /* tests as done at once: the immediate kinds */
    switch (op->kind) {
    case OP_AVG:
        if (m->hier) {
            int done = 0;
            op->hier = 1, op->step = 0, op->seq = dl_mpi_hier_seq(&m->nodes);
            return dl_mpi_hier_advance(&m->nodes, op->buf, (int)op->n, op->seq, &op->step,
                                       &op->req, &done);
        }
        return MPI_Iallreduce(MPI_IN_PLACE, op->buf, (int)op->n, MPI_FLOAT, MPI_SUM, m->world,
                              &op->req);
    case OP_GATHER:
        return MPI_Iallgather(op->send, (int)op->n, MPI_BYTE, op->buf, (int)op->n, MPI_BYTE,
                              m->world, &op->req);
    case OP_SUM_F64:
        return MPI_Iallreduce(MPI_IN_PLACE, op->buf, (int)op->n, MPI_DOUBLE, MPI_SUM, m->world,
                              &op->req);
    case OP_BCAST:
        return MPI_Ibcast(op->buf, (int)op->n, MPI_BYTE, op->root, m->world, &op->req);
    case OP_BARRIER:
        return MPI_Ibarrier(m->world, &op->req);
    case OP_SPLIT:
        return split_now(m, op->buf);
    case OP_RELEASE:
        return release_now(m);
    }
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

/* Issues the group's queued operations; returns how many.  Called with the
 * lock held; the group stays valid while unlocked: its owner is waiting on
 * this operation. */
static int issue_queued(mpi_engine *e, mpi_impl *m)
{
    int issued = 0;
    for (; m->q_head != m->q_tail; issued++) {
        int slot = m->queue[m->q_head];
        m->q_head = (m->q_head + 1) % (DL_COMM_SLOTS + 1);
        mpi_op *op = &m->ops[slot];
        pthread_mutex_unlock(&e->mu);
        int rc = issue(m, op);
        pthread_mutex_lock(&e->mu);
        if (rc != MPI_SUCCESS) {
            finish(m->comm, op, rc);
            op->state = OP_DONE;
            pthread_cond_broadcast(&e->cv);
        } else {
            op->state = OP_RUNNING;
            m->running[m->n_running++] = slot;
        }
    }
    return issued;
}

/* Tests the group's running operations; returns how many finished.  Lock held. */
static int test_running(mpi_engine *e, mpi_impl *m)
{
    dl_comm *c = m->comm;
    int finished = 0;
    for (int i = 0; i < m->n_running;) {
        mpi_op *op = &m->ops[m->running[i]];
        int flag = 0;
        int rc = MPI_Test(&op->req, &flag, MPI_STATUS_IGNORE);
        if (rc == MPI_SUCCESS && flag && op->hier) { /* a step done: the next, or the end */
            int done = 0;
            rc = dl_mpi_hier_advance(&m->nodes, op->buf, (int)op->n, op->seq, &op->step,
                                     &op->req, &done);
            flag = rc != MPI_SUCCESS || done;
        }
        if (rc == MPI_SUCCESS && !flag) {
            if (dl_now() - op->checked_at > c->timeout_s)
                check_stalled(c, m, op);
            i++;
            continue;
        }
        finish(c, op, rc);
        op->state = OP_DONE;
        m->running[i] = m->running[--m->n_running];
        finished++;
    }
    if (finished)
        pthread_cond_broadcast(&e->cv);
    return finished;
}

static void idle_wait(mpi_engine *e, double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + (long)(seconds * 1e9);
    ts.tv_sec += ns / 1000000000L, ts.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&e->cv, &e->mu, &ts);
}

/* One pass over every group; returns operations issued or finished, *busy
 * set when any group still has work.  Lock held; next is read after the group's work
 * because an owner may unlink another group while issue() runs unlocked. */
static int serve_groups(mpi_engine *e, int *busy)
{
    int finished = 0;
    *busy = 0;
    for (mpi_impl *m = e->groups; m; m = m->next) {
        finished += issue_queued(e, m);
        finished += test_running(e, m);
        answer_pings(m);
        if (m->n_running || m->q_head != m->q_tail)
            *busy = 1;
    }
    return finished;
}

/* Whether every running operation is a barrier waited on for a while: ranks
 * idling while others work (`dltrain scale`) then poll a thousand times a
 * second instead of fifty thousand, leaving the shared cores to the workers.
 * A barrier carries no data, so this only delays its end by <= 1 ms.  Lock held. */
static int only_long_barriers(const mpi_engine *e)
{
    double now = dl_now();
    for (const mpi_impl *m = e->groups; m; m = m->next) {
        if (m->q_head != m->q_tail)
            return 0;
        for (int i = 0; i < m->n_running; i++) {
            const mpi_op *op = &m->ops[m->running[i]];
            if (op->kind != OP_BARRIER || now - op->issued_at < 0.01)
                return 0;
        }
    }
    return 1;
}

/* The pause after `idle` passes in which nothing was issued or finished.
 * A collective over shared memory ends within microseconds: yield at first.
 * After that the pause doubles every 16 passes from 20 us to 1 ms: every
 * wake-up preempts the compute thread on its core, and where ranks share
 * cores (more ranks than cores, or hosts of scripts/vcluster.sh sharing a
 * machine) waking 20,000 times a second while a slow network all-reduce runs
 * cost more compute time than the all-reduce itself (docs/multinode.md).
 * Non-blocking collectives progress only when polled, so the pause also
 * bounds how late each round of one starts; 1 ms is small next to the
 * network time of any bucket that waits that long. */
static double poll_pause_s(const mpi_engine *e, int idle)
{
    if (only_long_barriers(e))
        return 1e-3;
    if (idle <= 64)
        return 0;
    int doublings = (idle - 64) / 16;
    double s = 20e-6 * (double)(1 << (doublings < 6 ? doublings : 6));
    return s < 1e-3 ? s : 1e-3;
}

static void *comm_thread(void *arg)
{
    mpi_engine *e = arg;
    int idle_polls = 0;
    pthread_mutex_lock(&e->mu);
    while (!e->quit) {
        if (e->abort_asked) { /* see mpi_abort */
            fflush(stdout);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, e->abort_code);
            _Exit(e->abort_code);
        }
        int busy, events = serve_groups(e, &busy);
        idle_polls = events ? 0 : idle_polls + 1;
        double pause = poll_pause_s(e, idle_polls);
        if (!busy) {
            idle_wait(e, 0.05); /* wakes on new work, or to answer roll calls */
            idle_polls = 0;
        } else if (pause > 0) {
            idle_wait(e, pause); /* new work (a bucket queued) wakes it early */
        } else if (!events) {
            pthread_mutex_unlock(&e->mu);
            sched_yield();
            pthread_mutex_lock(&e->mu);
        }
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---- the interface -------------------------------------------------------- */

static dl_status enqueue_op(dl_comm *c, int slot, op_kind kind, void *buf, const void *send,
                           size_t n, int root)
{
    mpi_impl *m = c->impl;
    mpi_engine *e = m->eng;
    if (slot < 0 || slot > SYNC_SLOT)
        return dl_fail(DL_ERR_ARG, "communication slot %d out of range", slot);
    if (n > 0x7fffffff)
        return dl_fail(DL_ERR_ARG, "%s of %zu elements is too large for one MPI call "
                       "(use a smaller --bucket-mb)", op_name(kind), n);
    pthread_mutex_lock(&e->mu);
    mpi_op *op = &m->ops[slot];
    if (op->state == OP_QUEUED || op->state == OP_RUNNING) {
        pthread_mutex_unlock(&e->mu);
        return dl_fail(DL_ERR_ARG, "communication slot %d is still busy", slot);
    }
    *op = (mpi_op){.kind = kind, .state = OP_QUEUED, .buf = buf, .send = send, .n = n,
                   .root = root, .status = DL_OK};
    m->queue[m->q_tail] = slot;
    m->q_tail = (m->q_tail + 1) % (DL_COMM_SLOTS + 1);
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return DL_OK;
}

static dl_status enqueue(dl_comm *c, int slot, op_kind kind, void *buf, size_t n, int root)
{
    return enqueue_op(c, slot, kind, buf, NULL, n, root);
}

static dl_status wait_slot(dl_comm *c, int slot, double *done_at)
{
    mpi_impl *m = c->impl;
    mpi_engine *e = m->eng;
    if (slot < 0 || slot > SYNC_SLOT)
        return dl_fail(DL_ERR_ARG, "communication slot %d out of range", slot);
    pthread_mutex_lock(&e->mu);
    mpi_op *op = &m->ops[slot];
    while (op->state == OP_QUEUED || op->state == OP_RUNNING)
        pthread_cond_wait(&e->cv, &e->mu);
    dl_status st = op->state == OP_DONE ? op->status : DL_OK;
    if (done_at)
        *done_at = op->state == OP_DONE ? op->done_at : dl_now();
    op_kind kind = op->kind;
    op->state = OP_FREE;
    pthread_mutex_unlock(&e->mu);
    if (st != DL_OK)
        return dl_fail(st, "%s failed on rank %d (see the MPI message above)", op_name(kind),
                       c->rank);
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

static dl_status mpi_allgather_start(dl_comm *c, const void *send, void *recv, size_t bytes,
                                     int slot)
{
    if (slot >= DL_COMM_SLOTS)
        return dl_fail(DL_ERR_ARG, "all-gather slot %d out of range", slot);
    return enqueue_op(c, slot, OP_GATHER, recv, send, bytes, 0);
}

static dl_status mpi_barrier(dl_comm *c) { return run_sync(c, OP_BARRIER, NULL, 0, 0); }

/* Under MPI_THREAD_SERIALIZED no two threads may be inside MPI at once, and
 * the communication thread is always polling: so it alone calls MPI_Abort,
 * asked through the engine (from the training thread, the NCCL watchdog or a
 * CUDA host function alike).  If it does not answer (stuck in a blocking
 * call), the process ends anyway and the other ranks' deadlines name it. */
static void mpi_abort(dl_comm *c, int code)
{
    mpi_impl *m = c->impl;
    mpi_engine *e = m->eng;
    fflush(stdout);
    fflush(stderr);
    pthread_mutex_lock(&e->mu);
    int direct = e->quit || pthread_equal(pthread_self(), e->thread);
    e->abort_code = code, e->abort_asked = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (direct) /* no communication thread to ask (or this is it) */
        MPI_Abort(MPI_COMM_WORLD, code);
    struct timespec ts = {10, 0};
    nanosleep(&ts, NULL);
    _Exit(code);
}

/* check_stalled reads it on the communication thread, under the lock. */
static void mpi_set_patience(dl_comm *c, double patience_s)
{
    mpi_impl *m = c->impl;
    pthread_mutex_lock(&m->eng->mu);
    c->patience_s = patience_s;
    pthread_mutex_unlock(&m->eng->mu);
}

static dl_status mpi_split(dl_comm *c, int color, int key, dl_comm **out);

/* Releases a group made by split (collective over its members). */
static void mpi_free_group(dl_comm *c)
{
    mpi_impl *m = c->impl;
    mpi_engine *e = m->eng;
    /* The barrier (with its deadline) makes sure no member still uses the
     * group before its communicators go. */
    if (mpi_barrier(c) != DL_OK || run_sync(c, OP_RELEASE, NULL, 0, 0) != DL_OK)
        fprintf(stderr, "dltrain rank %d: releasing a rank group: %s\n", c->rank,
                dl_error_message());
    pthread_mutex_lock(&e->mu);
    for (mpi_impl **p = &e->groups; *p; p = &(*p)->next)
        if (*p == m) {
            *p = m->next;
            break;
        }
    pthread_mutex_unlock(&e->mu);
    free(m->world_rank);
    free(m);
    free(c);
}

/* Ends the communication thread, releases every group left, finalizes MPI. */
static void mpi_free(dl_comm *c)
{
    mpi_impl *world = c->impl;
    mpi_engine *e = world->eng;
    pthread_mutex_lock(&e->mu);
    e->quit = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    for (mpi_impl *m = e->groups, *next; m; m = next) {
        next = m->next;
        if (m->ctrl != MPI_COMM_NULL)
            MPI_Comm_free(&m->ctrl);
        if (m->world != MPI_COMM_NULL)
            MPI_Comm_free(&m->world);
        dl_mpi_nodes_free(&m->nodes);
        if (m != world) { /* a group its owner never freed */
            free(m->world_rank);
            free(m->comm);
            free(m);
        }
    }
    MPI_Finalize();
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(world->world_rank);
    free(world);
    free(e);
    free(c);
}

static dl_comm comm_template(const char *name, mpi_impl *m)
{
    return (dl_comm){.name = name, .impl = m, .timeout_s = 60.0, .broadcast = mpi_broadcast,
                     .allreduce_sum_f64 = mpi_sum_f64, .allreduce_avg_start = mpi_avg_start,
                     .allreduce_wait = wait_slot, .allgather_start = mpi_allgather_start,
                     .barrier = mpi_barrier, .abort = mpi_abort, .set_patience = mpi_set_patience,
                     .split = mpi_split, .free = mpi_free};
}

static dl_status mpi_split(dl_comm *c, int color, int key, dl_comm **out)
{
    mpi_impl *parent = c->impl;
    mpi_engine *e = parent->eng;
    split_request q = {.color = color, .key = key, .world = MPI_COMM_NULL, .ctrl = MPI_COMM_NULL};
    *out = NULL;
    /* every rank must arrive (or the deadline names the missing one) before
     * the blocking split runs on the communication thread */
    dl_status st = mpi_barrier(c);
    if (st == DL_OK)
        st = run_sync(c, OP_SPLIT, &q, 0, 0);
    if (st != DL_OK || q.world == MPI_COMM_NULL) {
        free(q.world_rank);
        return st;
    }
    dl_comm *g = calloc(1, sizeof *g);
    mpi_impl *m = calloc(1, sizeof *m);
    if (!g || !m) {
        free(g), free(m), free(q.world_rank);
        return dl_fail(DL_ERR_OOM, "out of memory for a rank group");
    }
    *g = comm_template("mpi", m);
    g->free = mpi_free_group;
    g->rank = q.rank, g->world = q.size;
    g->local_rank = q.nodes.local_rank, g->local_size = q.nodes.local_size;
    g->nodes = q.nodes.nodes;
    g->timeout_s = c->timeout_s;
    *m = (mpi_impl){.eng = e, .comm = g, .world = q.world, .ctrl = q.ctrl,
                    .world_rank = q.world_rank, .nodes = q.nodes};
    pthread_mutex_lock(&e->mu);
    m->next = parent->next; /* after its parent: any place in the list would do */
    parent->next = m;
    pthread_mutex_unlock(&e->mu);
    *out = g;
    return DL_OK;
}

static dl_status init_comms(dl_comm *c, mpi_impl *m)
{
    MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &m->world));
    MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &m->ctrl));
    MPI_CHECK(MPI_Comm_rank(m->world, &c->rank));
    MPI_CHECK(MPI_Comm_size(m->world, &c->world));
    MPI_CHECK(dl_mpi_nodes_init(m->world, c->rank, c->world, &m->nodes));
    c->local_rank = m->nodes.local_rank;
    c->local_size = m->nodes.local_size;
    c->nodes = m->nodes.nodes;
    int len = 0;
    MPI_CHECK(MPI_Get_processor_name(m->eng->host, &len));
    return DL_OK;
}

dl_comm *dl_comm_mpi(int *argc, char ***argv)
{
    int provided = 0;
    /* The node-local steps of the hierarchical all-reduce (MPI_Ireduce and
     * MPI_Ibcast among a node's few ranks): Open MPI's default for large
     * messages is a chain of small segments, and a non-blocking collective
     * moves one segment per progress call of the communication thread, which
     * made a 1 MiB hierarchical all-reduce 4x slower (docs/multinode.md).
     * Binomial reduce and linear broadcast are one round each.  Only where
     * the user has not chosen (setenv without overwrite). */
    setenv("OMPI_MCA_coll_libnbc_ireduce_algorithm", "2", 0);
    setenv("OMPI_MCA_coll_libnbc_ibcast_algorithm", "1", 0);
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        dl_fail(DL_ERR_COMM, "MPI_Init_thread failed");
        return NULL;
    }
    dl_comm *c = calloc(1, sizeof *c);
    mpi_impl *m = calloc(1, sizeof *m);
    mpi_engine *e = calloc(1, sizeof *e);
    if (!c || !m || !e || provided < MPI_THREAD_SERIALIZED) {
        dl_fail(DL_ERR_COMM, "%s", !c || !m || !e ? "out of memory"
                : "this MPI library cannot serve calls from a communication thread "
                  "(MPI_THREAD_SERIALIZED not provided)");
        MPI_Abort(MPI_COMM_WORLD, 1);
        return NULL;
    }
    *c = comm_template("mpi", m);
    m->eng = e, m->comm = c;
    e->groups = m;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (init_comms(c, m) != DL_OK || pthread_create(&e->thread, NULL, comm_thread, e) != 0) {
        fprintf(stderr, "dltrain: MPI start-up failed: %s\n", dl_error_message());
        MPI_Abort(MPI_COMM_WORLD, 1);
        return NULL;
    }
    return c;
}

int dl_comm_mpi_available(void) { return 1; }

dl_status dl_comm_set_allreduce(dl_comm *c, dl_allreduce_algo want, char *note, size_t size)
{
    int mine = c->split == mpi_split; /* the world or a group of this backend, not a wrapper */
    if (!mine) {
        snprintf(note, size, "flat");
        return want == DL_ALLREDUCE_HIER
                   ? dl_fail(DL_ERR_ARG, "--allreduce hier needs the MPI backend's own "
                             "all-reduce (this run uses %s)", c->name)
                   : DL_OK;
    }
    mpi_impl *m = c->impl;
    mpi_engine *e = m->eng;
    const dl_mpi_nodes *n = &m->nodes;
    int pays = dl_mpi_nodes_hier_pays(n);
    int hier = want == DL_ALLREDUCE_HIER || (want == DL_ALLREDUCE_AUTO && pays);
    snprintf(note, size, "%s (%s%s: %d node%s, up to %d rank%s per node)", hier ? "hier" : "flat",
             want == DL_ALLREDUCE_AUTO ? "auto" : "asked",
             want != DL_ALLREDUCE_AUTO ? "" : pays ? ", ranks span nodes" : "", n->nodes,
             n->nodes == 1 ? "" : "s", n->max_local_size, n->max_local_size == 1 ? "" : "s");
    pthread_mutex_lock(&e->mu);
    m->hier = hier;
    pthread_mutex_unlock(&e->mu);
    return DL_OK;
}

void dl_comm_layout(const dl_comm *c, char *out, size_t size)
{
    if (size)
        out[0] = 0;
    if (c->split != mpi_split)
        return;
    const mpi_impl *m = c->impl;
    dl_mpi_nodes_layout(&m->nodes, c->world, out, size);
}
