/* data.h: data sets (IDX files such as Fashion-MNIST, or seeded synthetic
 * images) and the sample access the loader uses. */
#ifndef DL_DATA_H
#define DL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "rng.h"

typedef struct dl_dataset {
    char source[256]; /* path or synthetic spec, for messages */
    size_t n;
    int c, h, w, classes;
    uint8_t *images; /* [n, c, h, w] IDX pixels; NULL when synthetic */
    uint8_t *labels; /* [n] */
    float mean, std; /* pixel normalisation, from the training split */
    /* synthetic: a pool of generated images reused cyclically */
    float *pool;     /* [pool_n, c, h, w] */
    size_t pool_n;
} dl_dataset;

#define DL_DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"
#define DL_DEFAULT_DATA_PACKAGE "dataset-fashion-mnist"

/* spec: a directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz],
 * or "synthetic:CxHxW[:classes]".  Loads the training and test splits. */
dl_status dl_data_open(const char *spec, uint64_t seed, dl_dataset *train, dl_dataset *test);
void dl_dataset_free(dl_dataset *ds);

/* Read one IDX image/label pair (raw or gzip). */
dl_status dl_idx_load(const char *images_path, const char *labels_path, dl_dataset *ds);

/* Sample i as normalised floats [c, h, w].  With augment, a random crop
 * (zero padding h/8) and horizontal flip drawn from rng. */
void dl_dataset_sample(const dl_dataset *ds, size_t i, float *out, int32_t *label, int augment,
                       dl_rng *rng);

#endif
