/* test_bucket: the gradient buckets' boundaries (comm/bucket.c).  Every
 * bucket must start and end on a multiple of DL_BUCKET_ALIGN_FLOATS (256
 * bytes) except the last one's end, which is n_params; the buckets must
 * tile [0, n_params) in order; and no bucket may exceed the requested size
 * rounded up to the alignment. */
#include <stdio.h>

#include "bucket.h"

static int check(size_t n_params, size_t bucket_floats)
{
    dl_buckets b;
    if (dl_buckets_init(&b, NULL, NULL, n_params, bucket_floats) != DL_OK) {
        fprintf(stderr, "FAIL n_params %zu bucket %zu: %s\n", n_params, bucket_floats,
                dl_error_message());
        return 1;
    }
    size_t cap = (bucket_floats + DL_BUCKET_ALIGN_FLOATS - 1) / DL_BUCKET_ALIGN_FLOATS *
                 DL_BUCKET_ALIGN_FLOATS;
    int bad = b.count < 1 || b.end[b.count - 1] != n_params;
    for (int i = 0; i < b.count && !bad; i++) {
        size_t lo = i ? b.end[i - 1] : 0;
        bad |= b.end[i] <= lo && n_params > 0;
        bad |= b.end[i] - lo > cap;
        bad |= i < b.count - 1 && b.end[i] % DL_BUCKET_ALIGN_FLOATS != 0;
    }
    if (bad)
        fprintf(stderr, "FAIL n_params %zu bucket %zu: %d buckets, last end %zu\n", n_params,
                bucket_floats, b.count, b.count ? b.end[b.count - 1] : 0);
    dl_buckets_free(&b);
    return bad;
}

int main(void)
{
    /* resnet50's parameter count with its default bucket (an eighth of it:
     * an odd number of floats before alignment), small models, odd sizes */
    static const size_t cases[][2] = {
        {25557032, 3194629}, {272474, 65536}, {61706, 65536}, {1000, 100},
        {1000, 1},           {64, 64},        {65, 64},       {7, 3},
        {4096, 4096},        {4097, 1000},    {123457, 2621},
    };
    int failures = 0, n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++)
        failures += check(cases[i][0], cases[i][1]);
    printf("test_bucket: %d cases, %d failed\n", n, failures);
    return failures ? 1 : 0;
}
