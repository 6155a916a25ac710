/* bench.h: `dltrain bench` subcommands. */
#ifndef DL_BENCH_H
#define DL_BENCH_H

int dl_cmd_bench(int argc, char **argv);

#endif
