/* data_idx.c: the IDX format (MNIST, Fashion-MNIST), raw or gzip-compressed.
 *
 * An IDX file is: two zero bytes, a type byte (0x08 = unsigned byte), the
 * number of dimensions, then each dimension as a big-endian uint32, then the
 * data.  Every size is checked against the bytes actually present, so a
 * truncated or corrupt file gives a message, never an out-of-bounds read. */
#include "data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct {
    uint8_t *data;
    size_t size;
} blob;

/* Read a whole file; gzread passes uncompressed files through unchanged. */
static dl_status read_file(const char *path, blob *out)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return dl_fail(DL_ERR_IO, "cannot open %s: %s", path, strerror(errno ? errno : ENOENT));
    size_t cap = 1 << 20, size = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            gzclose(f);
            return dl_fail(DL_ERR_OOM, "out of memory reading %s", path);
        }
        if (size == cap) {
            uint8_t *bigger = realloc(buf, cap *= 2);
            if (!bigger)
                free(buf);
            buf = bigger;
            continue;
        }
        int got = gzread(f, buf + size, (unsigned)DL_MIN(cap - size, (size_t)1 << 30));
        if (got < 0) {
            int err;
            const char *msg = gzerror(f, &err);
            dl_status st = dl_fail(DL_ERR_FORMAT, "%s: corrupt or unreadable (%s)", path, msg);
            free(buf);
            gzclose(f);
            return st;
        }
        if (got == 0)
            break;
        size += (size_t)got;
    }
    gzclose(f);
    out->data = buf;
    out->size = size;
    return DL_OK;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parse the header; dims[] gets up to 4 sizes; *payload the data offset. */
static dl_status idx_header(const char *path, const blob *b, int want_dims_min,
                            int want_dims_max, uint32_t dims[4], int *ndims, size_t *payload)
{
    if (b->size < 4 || b->data[0] != 0 || b->data[1] != 0)
        return dl_fail(DL_ERR_FORMAT, "%s: not an IDX file (bad magic)", path);
    if (b->data[2] != 0x08)
        return dl_fail(DL_ERR_FORMAT, "%s: IDX type 0x%02x unsupported (need 0x08, unsigned byte)",
                       path, b->data[2]);
    int nd = b->data[3];
    if (nd < want_dims_min || nd > want_dims_max)
        return dl_fail(DL_ERR_FORMAT, "%s: IDX file has %d dimensions, expected %d to %d", path, nd,
                       want_dims_min, want_dims_max);
    if (b->size < 4 + 4 * (size_t)nd)
        return dl_fail(DL_ERR_FORMAT, "%s: truncated IDX header", path);
    size_t count = 1;
    for (int i = 0; i < nd; i++) {
        dims[i] = be32(b->data + 4 + 4 * i);
        if (dims[i] == 0 || dims[i] > (1u << 28))
            return dl_fail(DL_ERR_FORMAT, "%s: dimension %d has implausible size %u", path, i,
                           dims[i]);
        count *= dims[i];
        if (count > ((size_t)1 << 36))
            return dl_fail(DL_ERR_FORMAT, "%s: implausible total size", path);
    }
    *ndims = nd;
    *payload = 4 + 4 * (size_t)nd;
    if (b->size - *payload != count)
        return dl_fail(DL_ERR_FORMAT, "%s: %s: header promises %zu bytes of data, file has %zu",
                       path, b->size - *payload < count ? "truncated" : "trailing bytes", count,
                       b->size - *payload);
    return DL_OK;
}

static dl_status parse_images(const char *path, blob *b, dl_dataset *ds)
{
    uint32_t d[4];
    int nd;
    size_t off;
    dl_status st = idx_header(path, b, 3, 4, d, &nd, &off);
    if (st != DL_OK)
        return st;
    ds->n = d[0];
    ds->c = nd == 4 ? (int)d[1] : 1;
    ds->h = (int)d[nd - 2];
    ds->w = (int)d[nd - 1];
    memmove(b->data, b->data + off, b->size - off);
    ds->images = b->data;
    b->data = NULL;
    return DL_OK;
}

static dl_status parse_labels(const char *path, blob *b, dl_dataset *ds)
{
    uint32_t d[4];
    int nd;
    size_t off;
    dl_status st = idx_header(path, b, 1, 1, d, &nd, &off);
    if (st != DL_OK)
        return st;
    if (d[0] != ds->n)
        return dl_fail(DL_ERR_FORMAT, "%s: %u labels but the image file has %zu images", path,
                       d[0], ds->n);
    int max = 0;
    for (size_t i = 0; i < ds->n; i++)
        max = DL_MAX(max, b->data[off + i]);
    ds->classes = max + 1;
    if (ds->classes < 2)
        return dl_fail(DL_ERR_FORMAT, "%s: all labels are 0; need at least two classes", path);
    memmove(b->data, b->data + off, ds->n);
    ds->labels = b->data;
    b->data = NULL;
    return DL_OK;
}

dl_status dl_idx_load(const char *images_path, const char *labels_path, dl_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    snprintf(ds->source, sizeof ds->source, "%s", images_path);
    blob img = {0}, lab = {0};
    dl_status st = read_file(images_path, &img);
    if (st == DL_OK)
        st = parse_images(images_path, &img, ds);
    if (st == DL_OK)
        st = read_file(labels_path, &lab);
    if (st == DL_OK)
        st = parse_labels(labels_path, &lab, ds);
    free(img.data);
    free(lab.data);
    if (st != DL_OK)
        dl_dataset_free(ds);
    return st;
}
