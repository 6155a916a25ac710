/* nccl_log.h: what NCCL chose, read from NCCL's own log.
 *
 * NCCL decides per pair of ranks and per channel whether data moves by
 * P2P (direct over PCIe/NVLink), SHM (through host memory) or NET (sockets,
 * InfiniBand), and says so only in its INFO log ("Channel 00/0 : 0[0] ->
 * 1[1] via P2P/IPC").  dltrain turns that log on (unless the user set
 * NCCL_DEBUG), sends it to a file it follows (dl_nccl_tail: warnings go on to
 * stderr), and keeps one line per pair and transport for every result it
 * records. */
#ifndef DL_NCCL_LOG_H
#define DL_NCCL_LOG_H

#include <stddef.h>
#include <stdio.h>

#include "comm.h"

#define DL_NCCL_MAX_ROUTES 64

typedef struct dl_nccl_route {
    int src, dst;        /* ranks of the communicator */
    char transport[48];  /* "P2P/IPC", "SHM/direct/direct", "NET/IB/0/GDRDMA" */
} dl_nccl_route;

/* Parses one NCCL log line; returns 1 and fills r for a channel connection
 * line, else 0. */
int dl_nccl_parse_route(const char *line, dl_nccl_route *r);

/* Adds r to routes[0, *n) unless the same (src, dst, transport) is there. */
void dl_nccl_add_route(dl_nccl_route *routes, int *n, int max, const dl_nccl_route *r);

/* Reads a whole NCCL log file into routes; returns how many (0 if unreadable). */
int dl_nccl_read_routes(const char *path, dl_nccl_route *routes, int max);

/* "0->1 P2P/IPC; 1->0 P2P/IPC" into buf. */
void dl_nccl_routes_text(const dl_nccl_route *routes, int n, char *buf, size_t cap);

/* Follows the log file while NCCL writes it: each pump reads the complete
 * lines added since the last one, keeps the routes (since NCCL 2.22 the
 * connections, and their log lines, come at the first collective, not at
 * set-up) and copies every "NCCL WARN" line to `warn_to` at once, so taking
 * the log over hides none of NCCL's warnings. */
typedef struct dl_nccl_tail {
    FILE *f;                /* NULL: nothing to follow */
    char partial[1024];     /* a line NCCL has not finished writing */
    size_t partial_len;
    dl_nccl_route routes[DL_NCCL_MAX_ROUTES];
    int n_routes;
    int warnings; /* lines copied to warn_to so far */
} dl_nccl_tail;

/* Opens path for reading from its start; returns 0, or -1 (t->f NULL). */
int dl_nccl_tail_open(dl_nccl_tail *t, const char *path);
/* Reads what is new; returns how many complete lines. */
int dl_nccl_tail_pump(dl_nccl_tail *t, FILE *warn_to);
void dl_nccl_tail_close(dl_nccl_tail *t);

/* Set before the process's first NCCL call: unless NCCL_DEBUG is set,
 * NCCL_DEBUG=INFO, NCCL_DEBUG_SUBSYS=INIT and NCCL_DEBUG_FILE=path (a file
 * of this process).  Returns 1 if it took over the log (the file is then
 * dltrain's to read and remove), 0 if the user's settings stand. */
int dl_nccl_log_capture(char *path, size_t cap);
/* Whether dl_nccl_log_capture set those variables (so they are not the
 * user's, and a recorded environment leaves them out). */
int dl_nccl_log_owned(void);

/* What the process learnt (set by the NCCL backend after set-up): the
 * library version and the routes, as text; "" before or without NCCL. */
void dl_nccl_record_set(const char *version, const char *routes);
const char *dl_nccl_record_version(void);
const char *dl_nccl_record_routes(void);

/* NCCL's version code as text: "2.21.5" (2.9 and later count major x 10000,
 * before major x 1000). */
void dl_nccl_version_text(int code, char *buf, size_t cap);
/* Collective over host: every rank's routes (its own log, followed by t)
 * joined on all ranks and kept with dl_nccl_record_set with `version`.
 * Only the first 64 ranks take part, to keep set-up short on large jobs. */
void dl_nccl_share_routes(dl_comm *host, dl_nccl_tail *t, const char *version);

#endif
