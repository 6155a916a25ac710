/* parse.h: checked parsing of integers and shapes from user text, and
 * opening user-named files without blocking on FIFOs or devices.
 *
 * Every number dltrain reads from the command line or a spec goes through
 * here, so that "0x10", "1e3", "12abc", "" and values beyond the range are
 * refused the same way everywhere instead of wrapping or being half-read. */
#ifndef DL_PARSE_H
#define DL_PARSE_H

#include "common.h"

/* Decimal integer, optional leading '-', nothing else (no spaces, no '+',
 * no hex or octal prefix, no trailing text); 1 if it lies in [lo, hi]. */
int dl_parse_ll(const char *text, long long lo, long long hi, long long *out);
/* The same for an int, taking the first len bytes of text only. */
int dl_parse_int_n(const char *text, size_t len, int lo, int hi, int *out);

/* A decimal floating-point number as people write it ("0.05", "1e-3", "-2"):
 * digits, '.', an exponent; no hex floats, inf, nan or trailing text. */
int dl_parse_double(const char *text, double *out);

/* "0,2,3": up to max comma-separated integers in [lo, hi], no empty items;
 * returns the count, or -1 if malformed, out of range or too many. */
int dl_parse_int_list(const char *text, int lo, int hi, int *out, int max);

/* "CxHxW" or, where classes is non-NULL, "CxHxW[:K]" (classes keeps its
 * value when ":K" is absent).  Each size must lie in [1, max_dim], K in
 * [2, max_classes].  Returns 1 when well formed and in range. */
int dl_parse_shape(const char *text, int max_c, int max_dim, int max_classes, int *c, int *h,
                   int *w, int *classes);

/* Opens path read-only for a reader that must not hang: a FIFO, a device or
 * a directory is refused with a message naming it ("what" says what the file
 * was meant to be, e.g. "checkpoint").  *fd gets the descriptor.  Fails with
 * DL_ERR_ARG for a missing file or one that is not regular (bad input), and
 * DL_ERR_IO when it cannot be opened or read for another reason. */
dl_status dl_open_regular(const char *path, const char *what, int *fd);

/* 1 if path names something that is not a regular file (or a symlink to
 * one); fills why ("a FIFO", "a directory", ...).  0 if regular or absent. */
int dl_path_not_regular(const char *path, const char **why);

#endif
