/* topo_mkfixture.c: builds one fixture sysfs tree for the CLI tests.
 *
 *   topo_mkfixture SPEC DIR     (DIR is removed and rebuilt) */
#include <stdio.h>

#include "topo_fixture.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SPEC DIR\n", argv[0]);
        return 2;
    }
    char err[512];
    if (topo_fixture_build(argv[1], argv[2], err, sizeof err) != 0) {
        fprintf(stderr, "topo_mkfixture: %s\n", err);
        return 1;
    }
    return 0;
}
