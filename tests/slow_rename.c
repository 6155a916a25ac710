/* slow_rename.c: an LD_PRELOAD shim for tests (test_mpi.py slow_checkpoint):
 * rename() onto a name ending in "checkpoint.bin" first sleeps
 * DLTRAIN_TEST_RENAME_DELAY seconds, as a slow disk would make rank 0's
 * checkpoint write take longer than --timeout. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int (*rename_fn)(const char *, const char *);

int rename(const char *from, const char *to)
{
    static rename_fn real;
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "rename"); /* POSIX's way to take a function */
    const char *delay = getenv("DLTRAIN_TEST_RENAME_DELAY");
    const char *tail = "checkpoint.bin";
    size_t n = strlen(to), k = strlen(tail);
    if (delay && n >= k && strcmp(to + n - k, tail) == 0)
        sleep((unsigned)atoi(delay));
    return real ? real(from, to) : -1;
}
