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
#include "comm_mpi_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
                       "(use a smaller --bucket-mb)", dl_mpi_op_name(kind), n);
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
        return dl_fail(st, "%s failed on rank %d (see the MPI message above)", dl_mpi_op_name(kind),
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
    if (init_comms(c, m) != DL_OK || pthread_create(&e->thread, NULL, dl_mpi_comm_thread, e) != 0) {
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
