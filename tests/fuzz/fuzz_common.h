/* fuzz_common.h: helpers shared by the libFuzzer harnesses: a private
 * scratch directory per process and writing the fuzzer's bytes to a file
 * there, since the readers under test take paths. */
#ifndef DL_FUZZ_COMMON_H
#define DL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* A directory of this process's own, made at the first call under $TMPDIR,
 * else /dev/shm, else /tmp; removed at exit. */
const char *fuzz_scratch_dir(void);
/* Writes bytes to scratch/name (gzip-compressed when gz); returns the path
 * in a static buffer of slot 0..3, or NULL. */
const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size, int gz, int slot);

#endif
