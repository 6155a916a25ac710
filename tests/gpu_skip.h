/* gpu_skip.h: what a GPU test does when it cannot open a GPU, the same in
 * every C test driver.  Only "no CUDA GPU: ..." (device_cuda.h: no driver,
 * no device) is a reason to skip (exit 77, CTest's SKIP_RETURN_CODE), and
 * not even that with DLTRAIN_REQUIRE_GPU=1 in the environment; anything
 * else (a driver too old for this build's CUDA, a GPU in a bad state) is a
 * failure, since a GPU may well be there and a skip would be a false green. */
#ifndef DL_TESTS_GPU_SKIP_H
#define DL_TESTS_GPU_SKIP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DL_TEST_SKIP 77

/* why: dl_device_cuda_count's or dl_device_cuda's reason.  Prints one line;
 * returns the exit status (77 or 1). */
static inline int dl_test_no_gpu(const char *why)
{
    const char *prefix = "no CUDA GPU: ";
    const char *req = getenv("DLTRAIN_REQUIRE_GPU");
    int required = req && *req && strcmp(req, "0") != 0;
    if (strncmp(why, prefix, strlen(prefix)) == 0 && !required) {
        printf("SKIPPED: no CUDA GPU (%s)\n", why + strlen(prefix));
        return DL_TEST_SKIP;
    }
    printf("FAIL: cannot use the GPU: %s%s\n", why,
           required ? " (DLTRAIN_REQUIRE_GPU is set)" : "");
    return 1;
}

#endif
