/* comm_mpi_engine.h: what the MPI backend's two halves share (private to
 * comm/).  comm_mpi.c is the dl_comm interface: it queues operations for the
 * communication thread and waits for them.  comm_mpi_engine.c is that
 * thread: it issues the queued operations as non-blocking collectives,
 * polls them, runs roll calls when one stalls, and splits and releases
 * groups.  The comment at the top of comm_mpi.c tells the whole design. */
#ifndef DL_COMM_MPI_ENGINE_H
#define DL_COMM_MPI_ENGINE_H

#include <mpi.h>
#include <pthread.h>

#include "comm.h"
#include "comm_mpi_hier.h"

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

/* MPI's text for an error code. */
void dl_mpi_error_text(int code, char *out, size_t size);
/* "gradient all-reduce", .. for messages. */
const char *dl_mpi_op_name(op_kind k);
/* The communication thread (pthread_create's start routine); arg is the engine. */
void *dl_mpi_comm_thread(void *arg);

#define MPI_CHECK(call)                                                                     \
    do {                                                                                    \
        int mpi_rc_ = (call);                                                               \
        if (mpi_rc_ != MPI_SUCCESS) {                                                       \
            char text_[MPI_MAX_ERROR_STRING];                                               \
            dl_mpi_error_text(mpi_rc_, text_, sizeof text_);                                   \
            return dl_fail(DL_ERR_COMM, "%s:%d: %s failed: %s", __FILE__, __LINE__, #call, \
                           text_);                                                          \
        }                                                                                   \
    } while (0)

#endif
