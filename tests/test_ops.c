/* test_ops: every op of the CPU device table against the naive direct
 * implementations in op_cases.c (table-driven; a CUDA build can run the same
 * cases with the CUDA table under test and the CPU as a second reference).
 *
 * usage: test_ops [-v] [-t THREADS] [FAMILY]   (FAMILY: gemm, conv, bn, ...) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_cases.h"

int main(int argc, char **argv)
{
    op_ctx c = {.tol_scale = 1.0, .seed = 20240611};
    int threads = 2;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0)
            c.verbose = 1;
        else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else
            c.filter = argv[i];
    }
    c.dev = dl_device_cpu(threads);
    return op_run_all(&c) ? 1 : 0;
}
