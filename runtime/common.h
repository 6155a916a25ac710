/* common.h: error reporting and small helpers shared by every module.
 *
 * Library code (runtime/, comm/, models/) never exits: it records a one-line
 * message with dl_error_set() and returns a non-zero dl_status.  Only launch/
 * decides to print the message and exit.  The message buffer is thread-local,
 * like errno, so the loader thread cannot clobber the main thread's error. */
#ifndef DL_COMMON_H
#define DL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    DL_OK = 0,
    DL_ERR_ARG,      /* bad option or parameter value */
    DL_ERR_IO,       /* file missing, unreadable, short write */
    DL_ERR_FORMAT,   /* file present but malformed (magic, size, checksum) */
    DL_ERR_OOM,      /* allocation failed */
    DL_ERR_NUMERIC,  /* NaN / Inf detected */
    DL_ERR_COMM,     /* communication backend failure */
    DL_ERR_DEVICE,   /* device (CUDA) failure */
} dl_status;

#define DL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define DL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DL_MAX(a, b) ((a) > (b) ? (a) : (b))

#if defined(__GNUC__)
#define DL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DL_PRINTF(f, a)
#endif

/* Record a message for the caller; returns `status` so callers can write
 * `return dl_fail(DL_ERR_IO, "cannot open %s", path);`. */
dl_status dl_fail(dl_status status, const char *fmt, ...) DL_PRINTF(2, 3);
const char *dl_error_message(void);
void dl_error_clear(void);

/* Allocation that reports what failed; returns NULL after dl_fail(DL_ERR_OOM). */
void *dl_alloc(size_t bytes, const char *what);
void *dl_alloc_zero(size_t bytes, const char *what);

/* Wall-clock seconds from a monotonic clock. */
double dl_now(void);
/* Sorts x[0..n) ascending (medians and spreads of timings). */
void dl_sort_doubles(double *x, size_t n);

/* mkdir -p: creates dir and its missing parents; fails if dir is not a directory. */
dl_status dl_make_dirs(const char *dir);

/* s as a JSON string literal: quotes, and escapes for quotes, backslashes and
 * control characters (every JSON file dltrain writes goes through this). */
void dl_json_string(FILE *f, const char *s);

/* 64-bit FNV-1a, used for configuration and parameter hashes. */
uint64_t dl_hash_bytes(uint64_t h, const void *data, size_t n);
#define DL_HASH_INIT 1469598103934665603ULL

#endif
