/* bench_copy_nocuda.c: `dltrain bench copy` in a build without CUDA. */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "context.h"

int dl_bench_copy(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("usage: dltrain bench copy [options]\nHost<->GPU copy bandwidth per GPU; this "
               "dltrain was built without CUDA.\n");
        return DL_EXIT_OK;
    }
    fprintf(stderr, "dltrain bench copy: this dltrain was built without CUDA (reconfigure with "
            "the CUDA toolkit present to measure host<->GPU copies)\n");
    return DL_EXIT_ERROR;
}
