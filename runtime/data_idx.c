/* data_idx.c: the IDX format (MNIST, Fashion-MNIST), raw or gzip-compressed.
 *
 * An IDX file is: two zero bytes, a type byte (0x08 = unsigned byte), the
 * number of dimensions, then each dimension as a big-endian uint32, then the
 * data.  Every size is checked against the bytes actually present, so a
 * truncated or corrupt file gives a message, never an out-of-bounds read. */
#define _POSIX_C_SOURCE 200809L
#include "data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "parse.h"

/* An IDX file's payload after its header: dims[0..ndims) and count bytes. */
typedef struct {
    uint8_t *data;
    size_t count;
    uint32_t dims[4];
    int ndims;
} idx_blob;

#define IDX_MAX_BYTES ((size_t)1 << 36)

/* Reads up to want bytes; returns the number read, or -1 after dl_fail. */
static long long gz_read_upto(gzFile f, const char *path, uint8_t *dst, size_t want)
{
    size_t got = 0;
    while (got < want) {
        int n = gzread(f, dst + got, (unsigned)DL_MIN(want - got, (size_t)1 << 30));
        if (n < 0) {
            int err;
            const char *msg = gzerror(f, &err);
            dl_fail(DL_ERR_FORMAT, "%s: corrupt or unreadable (%s)", path, msg);
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (long long)got;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The header alone: magic, type, dimensions; b->count the bytes it promises. */
static dl_status read_header(gzFile f, const char *path, int dims_min, int dims_max, idx_blob *b)
{
    uint8_t head[4 + 4 * 4];
    long long got = gz_read_upto(f, path, head, 4);
    if (got < 0)
        return DL_ERR_FORMAT;
    if (got < 4 || head[0] != 0 || head[1] != 0)
        return dl_fail(DL_ERR_FORMAT, "%s: not an IDX file (bad magic)", path);
    if (head[2] != 0x08)
        return dl_fail(DL_ERR_FORMAT, "%s: IDX type 0x%02x unsupported (need 0x08, unsigned byte)",
                       path, head[2]);
    int nd = head[3];
    if (nd < dims_min || nd > dims_max)
        return dl_fail(DL_ERR_FORMAT, "%s: IDX file has %d dimensions, expected %d to %d", path, nd,
                       dims_min, dims_max);
    got = gz_read_upto(f, path, head + 4, 4 * (size_t)nd);
    if (got < 0)
        return DL_ERR_FORMAT;
    if (got < 4 * nd)
        return dl_fail(DL_ERR_FORMAT, "%s: truncated IDX header", path);
    size_t count = 1;
    for (int i = 0; i < nd; i++) {
        b->dims[i] = be32(head + 4 + 4 * i);
        if (b->dims[i] == 0 || b->dims[i] > (1u << 28))
            return dl_fail(DL_ERR_FORMAT, "%s: dimension %d has implausible size %u", path, i,
                           b->dims[i]);
        count *= b->dims[i];
        if (count > IDX_MAX_BYTES)
            return dl_fail(DL_ERR_FORMAT, "%s: implausible total size", path);
    }
    b->ndims = nd;
    b->count = count;
    return DL_OK;
}

static dl_status size_error(const char *path, size_t promised, size_t present, int more)
{
    if (more)
        return dl_fail(DL_ERR_FORMAT, "%s: trailing bytes: header promises %zu bytes of data, "
                       "file has more", path, promised);
    return dl_fail(DL_ERR_FORMAT, "%s: truncated: header promises %zu bytes of data, file has %zu",
                   path, promised, present);
}

/* The payload: at most the promised bytes plus one (to see that there are
 * more).  The buffer grows only as data arrives, capped at the promise, so
 * a header promising gigabytes over a small file costs nothing. */
static dl_status read_payload(gzFile f, const char *path, idx_blob *b)
{
    size_t want = b->count + 1, cap = DL_MIN(want, (size_t)1 << 20), size = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf)
            return dl_fail(DL_ERR_OOM, "out of memory reading %s", path);
        long long got = gz_read_upto(f, path, buf + size, cap - size);
        if (got < 0) {
            free(buf);
            return DL_ERR_FORMAT;
        }
        size += (size_t)got;
        if (size < cap || cap == want)
            break;
        uint8_t *bigger = realloc(buf, cap = DL_MIN(want, 2 * cap));
        if (!bigger)
            free(buf);
        buf = bigger;
    }
    if (size != b->count) {
        free(buf);
        return size_error(path, b->count, size, size > b->count);
    }
    b->data = buf;
    return DL_OK;
}

/* An uncompressed file's size is known before reading: refuse a mismatch
 * without allocating anything. */
static dl_status check_raw_size(gzFile f, int fd, const char *path, const idx_blob *b)
{
    struct stat sb;
    if (!gzdirect(f) || fstat(fd, &sb) != 0)
        return DL_OK;
    size_t head = 4 + 4 * (size_t)b->ndims, present = (size_t)sb.st_size - head;
    if ((size_t)sb.st_size < head || present == b->count)
        return DL_OK;
    return size_error(path, b->count, present, present > b->count);
}

/* Opens path without blocking (a FIFO or device is refused), then reads the
 * header and exactly the payload it promises. */
static dl_status read_idx(const char *path, int dims_min, int dims_max, idx_blob *b)
{
    int fd;
    dl_status st = dl_open_regular(path, "data file", &fd);
    if (st != DL_OK)
        return st;
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        close(fd);
        return dl_fail(DL_ERR_OOM, "out of memory opening %s", path);
    }
    st = read_header(f, path, dims_min, dims_max, b);
    if (st == DL_OK)
        st = check_raw_size(f, fd, path, b);
    if (st == DL_OK)
        st = read_payload(f, path, b);
    gzclose(f);
    return st;
}

static dl_status load_images(const char *path, dl_dataset *ds)
{
    idx_blob b = {0};
    dl_status st = read_idx(path, 3, 4, &b);
    if (st != DL_OK)
        return st;
    ds->n = b.dims[0];
    ds->c = b.ndims == 4 ? (int)b.dims[1] : 1;
    ds->h = (int)b.dims[b.ndims - 2];
    ds->w = (int)b.dims[b.ndims - 1];
    ds->images = b.data;
    return DL_OK;
}

static dl_status load_labels(const char *path, dl_dataset *ds)
{
    idx_blob b = {0};
    dl_status st = read_idx(path, 1, 1, &b);
    if (st != DL_OK)
        return st;
    ds->labels = b.data;
    if (b.dims[0] != ds->n)
        return dl_fail(DL_ERR_FORMAT, "%s: %u labels but the image file has %zu images", path,
                       b.dims[0], ds->n);
    int max = 0;
    for (size_t i = 0; i < ds->n; i++)
        max = DL_MAX(max, ds->labels[i]);
    ds->classes = max + 1;
    if (ds->classes < 2)
        return dl_fail(DL_ERR_FORMAT, "%s: all labels are 0; need at least two classes", path);
    return DL_OK;
}

dl_status dl_idx_load(const char *images_path, const char *labels_path, dl_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    snprintf(ds->source, sizeof ds->source, "%s", images_path);
    dl_status st = load_images(images_path, ds);
    if (st == DL_OK)
        st = load_labels(labels_path, ds);
    if (st != DL_OK)
        dl_dataset_free(ds);
    return st;
}
