/* common.c: thread-local error message, checked allocation, clock, directories, hash. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static _Thread_local char error_message[512];

dl_status dl_fail(dl_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return status;
}

const char *dl_error_message(void)
{
    return error_message[0] ? error_message : "unknown error";
}

void dl_error_clear(void) { error_message[0] = '\0'; }

void *dl_alloc(size_t bytes, const char *what)
{
    /* 64-byte alignment keeps every AVX-512 row load aligned. */
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p)
        dl_fail(DL_ERR_OOM, "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void *dl_alloc_zero(size_t bytes, const char *what)
{
    void *p = dl_alloc(bytes, what);
    if (p)
        memset(p, 0, bytes);
    return p;
}

double dl_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void dl_sort_doubles(double *x, size_t n)
{
    qsort(x, n, sizeof *x, cmp_double);
}

/* --out runs/exp1 and --trace runs/exp1/trace work without preparing runs/ first. */
dl_status dl_make_dirs(const char *dir)
{
    char path[1024];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return dl_fail(DL_ERR_ARG, "directory name too long: %.100s...", dir);
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return dl_fail(DL_ERR_IO, "cannot create directory %s: %s", path, strerror(errno));
        *p = '/';
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return dl_fail(DL_ERR_IO, "cannot create directory %s: %s", dir, strerror(errno));
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return dl_fail(DL_ERR_IO, "%s exists and is not a directory", dir);
    return DL_OK;
}

uint64_t dl_hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

void dl_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}
