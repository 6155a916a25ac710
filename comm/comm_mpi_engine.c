/* comm_mpi_engine.c: the MPI backend's communication thread (see
 * comm_mpi_engine.h, and the top of comm_mpi.c for the design): issuing
 * queued operations, polling them, roll calls for stalled ones, group
 * splits and releases. */
#define _GNU_SOURCE
#include "comm_mpi_engine.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void dl_mpi_error_text(int code, char *out, size_t size)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", code);
    snprintf(out, size, "%s", text);
}

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

const char *dl_mpi_op_name(op_kind k)
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
                dl_mpi_op_name(op->kind), c->timeout_s, job_ranks);
    else
        fprintf(stderr, "dltrain rank %d (%s): %s made no progress for %.0f s although every "
                "rank answers (ranks out of step?): aborting the job\n", me, m->eng->host,
                dl_mpi_op_name(op->kind), dl_now() - op->issued_at);
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
        dl_mpi_error_text(rc, text, sizeof text);
        op->status = DL_ERR_COMM;
        fprintf(stderr, "dltrain rank %d: %s:%d: %s failed: %s\n", c->rank, __FILE__, __LINE__,
                dl_mpi_op_name(op->kind), text);
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

void *dl_mpi_comm_thread(void *arg)
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
