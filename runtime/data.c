/* data.c: opening a data set (IDX directory or synthetic spec), pixel
 * normalisation, and per-sample access with optional augmentation. */
#define _POSIX_C_SOURCE 200809L
#include "data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "parse.h"

void dl_dataset_free(dl_dataset *ds)
{
    free(ds->images);
    free(ds->labels);
    free(ds->pool);
    ds->images = ds->labels = NULL;
    ds->pool = NULL;
}

/* Find DIR/stem or DIR/stem.gz. */
static int find_split_file(const char *dir, const char *stem, char *path, size_t cap)
{
    struct stat sb;
    snprintf(path, cap, "%s/%s.gz", dir, stem);
    if (stat(path, &sb) == 0)
        return 1;
    snprintf(path, cap, "%s/%s", dir, stem);
    return stat(path, &sb) == 0;
}

static dl_status load_split(const char *dir, const char *prefix, dl_dataset *ds)
{
    char img[600], lab[600], stem[64];
    snprintf(stem, sizeof stem, "%s-images-idx3-ubyte", prefix);
    if (!find_split_file(dir, stem, img, sizeof img))
        return dl_fail(DL_ERR_ARG, "data file %s/%s[.gz] not found", dir, stem);
    snprintf(stem, sizeof stem, "%s-labels-idx1-ubyte", prefix);
    if (!find_split_file(dir, stem, lab, sizeof lab))
        return dl_fail(DL_ERR_ARG, "data file %s/%s[.gz] not found", dir, stem);
    return dl_idx_load(img, lab, ds);
}

static void pixel_stats(dl_dataset *ds)
{
    size_t count = ds->n * (size_t)ds->c * ds->h * ds->w;
    double s = 0.0, ss = 0.0;
    for (size_t i = 0; i < count; i++) {
        double v = ds->images[i] / 255.0;
        s += v;
        ss += v * v;
    }
    double mean = s / (double)count, var = ss / (double)count - mean * mean;
    ds->mean = (float)mean;
    ds->std = (float)sqrt(var > 1e-12 ? var : 1.0);
}

static dl_status open_idx_dir(const char *dir, dl_dataset *train, dl_dataset *test)
{
    struct stat sb;
    /* A missing or wrong data directory is bad input (exit status 2). */
    if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
        return dl_fail(DL_ERR_ARG, "data directory %s is not a directory", dir);
    if (stat(dir, &sb) != 0) {
        if (strcmp(dir, DL_DEFAULT_DATA_DIR) == 0)
            return dl_fail(DL_ERR_ARG,
                           "data directory %s not found: install it with 'apt-get install %s' "
                           "or pass --data DIR",
                           dir, DL_DEFAULT_DATA_PACKAGE);
        return dl_fail(DL_ERR_ARG, "data directory %s not found (Fashion-MNIST comes in Debian's %s package)",
                       dir, DL_DEFAULT_DATA_PACKAGE);
    }
    dl_status st = load_split(dir, "train", train);
    if (st != DL_OK)
        return st;
    st = load_split(dir, "t10k", test);
    if (st != DL_OK) {
        dl_dataset_free(train);
        return st;
    }
    if (train->c != test->c || train->h != test->h || train->w != test->w) {
        dl_dataset_free(train), dl_dataset_free(test);
        return dl_fail(DL_ERR_FORMAT, "%s: training and test images differ in shape", dir);
    }
    train->classes = test->classes = DL_MAX(train->classes, test->classes);
    pixel_stats(train);
    test->mean = train->mean, test->std = train->std;
    return DL_OK;
}

/* synthetic:CxHxW[:classes].  Images are noise plus a per-class pattern, so a
 * model can learn them (useful for multi-rank tests without data files). */
static dl_status parse_synthetic(const char *spec, int *c, int *h, int *w, int *classes)
{
    const char *s = spec + strlen("synthetic:");
    *classes = 10;
    if (!dl_parse_shape(s, 64, 4096, 255, c, h, w, classes))
        return dl_fail(DL_ERR_ARG, "bad data spec '%s': expected synthetic:CxHxW[:classes] with "
                       "C 1 to 64, H and W 1 to 4096, classes 2 to 255", spec);
    return DL_OK;
}

#define SYNTH_POOL_BYTES ((size_t)64 << 20)

static dl_status make_synthetic(const char *spec, int c, int h, int w, int classes, size_t n,
                                uint64_t seed, dl_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    snprintf(ds->source, sizeof ds->source, "%s", spec);
    ds->n = n, ds->c = c, ds->h = h, ds->w = w, ds->classes = classes;
    ds->mean = 0.0f, ds->std = 1.0f;
    size_t per = (size_t)c * h * w;
    ds->pool_n = DL_MAX((size_t)classes, DL_MIN((size_t)1024, SYNTH_POOL_BYTES / (per * 4)));
    ds->pool = dl_alloc(sizeof(float) * per * ds->pool_n, "synthetic images");
    ds->labels = dl_alloc(n, "synthetic labels");
    if (!ds->pool || !ds->labels) {
        dl_dataset_free(ds);
        return DL_ERR_OOM;
    }
    for (size_t i = 0; i < ds->pool_n; i++) {
        dl_rng rng;
        dl_rng_seed(&rng, seed, 0x5e7, i);
        int label = (int)(i % (size_t)classes);
        float *img = ds->pool + i * per;
        for (size_t p = 0; p < per; p++) /* class pattern: a frequency per class */
            img[p] = 0.5f * (float)dl_rng_normal(&rng) + sinf(0.05f * (float)((label + 1) * p));
    }
    for (size_t i = 0; i < n; i++)
        ds->labels[i] = (uint8_t)((i % ds->pool_n) % (size_t)classes);
    return DL_OK;
}

dl_status dl_data_open(const char *spec, uint64_t seed, dl_dataset *train, dl_dataset *test)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (strncmp(spec, "synthetic:", 10) != 0)
        return open_idx_dir(spec, train, test);
    int c, h, w, classes;
    dl_status st = parse_synthetic(spec, &c, &h, &w, &classes);
    if (st == DL_OK)
        st = make_synthetic(spec, c, h, w, classes, 60000, seed, train);
    if (st == DL_OK)
        st = make_synthetic(spec, c, h, w, classes, 10000, seed, test);
    if (st != DL_OK)
        dl_dataset_free(train);
    return st;
}

/* Random crop with zero padding and horizontal flip, for [c, h, w] floats. */
static void augment_sample(const dl_dataset *ds, const float *src, float *out, dl_rng *rng)
{
    int pad = DL_MAX(1, ds->h / 8), range = 2 * pad + 1;
    int dy = (int)dl_rng_below(rng, (uint64_t)range) - pad;
    int dx = (int)dl_rng_below(rng, (uint64_t)range) - pad;
    int flip = (int)dl_rng_below(rng, 2);
    for (int ch = 0; ch < ds->c; ch++)
        for (int y = 0; y < ds->h; y++)
            for (int x = 0; x < ds->w; x++) {
                int sy = y + dy, sx = (flip ? ds->w - 1 - x : x) + dx;
                size_t o = ((size_t)ch * ds->h + y) * ds->w + x;
                int inside = sy >= 0 && sy < ds->h && sx >= 0 && sx < ds->w;
                out[o] = inside ? src[((size_t)ch * ds->h + sy) * ds->w + sx] : 0.0f;
            }
}

void dl_dataset_sample(const dl_dataset *ds, size_t i, float *out, int32_t *label, int augment,
                       dl_rng *rng)
{
    size_t per = (size_t)ds->c * ds->h * ds->w;
    *label = ds->labels[i];
    float tmp[augment ? per : 1];
    float *dst = augment ? tmp : out;
    if (ds->images) {
        const uint8_t *px = ds->images + i * per;
        float scale = 1.0f / (255.0f * ds->std), shift = ds->mean / ds->std;
        for (size_t p = 0; p < per; p++)
            dst[p] = (float)px[p] * scale - shift;
    } else {
        memcpy(dst, ds->pool + (i % ds->pool_n) * per, sizeof(float) * per);
    }
    if (augment)
        augment_sample(ds, tmp, out, rng);
}
