/* fuzz_idx.c: the IDX reader (runtime/data_idx.c) on arbitrary files.
 *
 * Input: a flags byte (bit 0: gzip the image file, bit 1: gzip the label
 * file), a 2-byte little-endian length L, then L bytes of image file and the
 * rest as the label file.  A load that succeeds must describe exactly the
 * bytes present: n images of c*h*w pixels and n labels below classes. */
#include <stdint.h>
#include <stdlib.h>

#include "data.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int flags = data[0];
    size_t len = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3, size -= 3;
    if (len > size)
        len = size;
    const char *img = fuzz_write_file("images", data, len, flags & 1, 0);
    const char *lab = fuzz_write_file("labels", data + len, size - len, flags & 2, 1);
    if (!img || !lab)
        return 0;
    dl_dataset ds;
    if (dl_idx_load(img, lab, &ds) == DL_OK) {
        size_t per = (size_t)ds.c * ds.h * ds.w;
        if (ds.n == 0 || per == 0 || ds.classes < 2 || ds.classes > 256)
            abort();
        volatile uint8_t sink = ds.images[ds.n * per - 1] ^ ds.labels[ds.n - 1];
        (void)sink;
        for (size_t i = 0; i < ds.n; i++)
            if (ds.labels[i] >= ds.classes)
                abort();
    }
    dl_dataset_free(&ds);
    return 0;
}
