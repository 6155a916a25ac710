/* checkpoint.c: atomic, checksummed checkpoint files. */
#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "parse.h"

#define CKPT_MAGIC "DLTCKPT"
/* Version 3: each layer's parameters (and momentum) start on 256 bytes,
 * with zero padding between layers (net.h DL_NET_PARAM_ALIGN).  Versions 1
 * and 2 packed them without padding; they are refused with a message
 * rather than converted (docs/engine.md). */
#define CKPT_VERSION 3
#define CKPT_VERSION_EXTRA 4 /* version 3 plus one dl_ckpt_extra section */
#define CKPT_VERSION_PACKED_EXTRA 2 /* the last version without padding */

/* The section header after the payload of a version-4 (and 2) file. */
typedef struct ckpt_section {
    char name[32];
    int32_t world;
    uint32_t crc; /* over the section's floats */
    uint64_t count;
} ckpt_section;

typedef struct ckpt_header {
    char magic[8];
    uint32_t version;
    uint32_t header_bytes;
    char model[32];
    int32_t c, h, w, classes;
    uint64_t n_params, n_buffers;
    dl_progress progress;
    uint32_t payload_crc;
    uint32_t header_crc; /* over the header with this field zero */
} ckpt_header;

static uint32_t header_crc(ckpt_header h)
{
    h.header_crc = 0;
    return (uint32_t)crc32(0L, (const Bytef *)&h, sizeof h);
}

static uint32_t crc_update(uint32_t crc, const void *p, size_t bytes)
{
    const Bytef *b = p;
    while (bytes) { /* zlib takes uInt lengths */
        uInt chunk = (uInt)DL_MIN(bytes, (size_t)1 << 30);
        crc = (uint32_t)crc32(crc, b, chunk);
        b += chunk, bytes -= chunk;
    }
    return crc;
}

/* Host copy of the payload: params, velocity, buffers. */
static float *download_payload(const dl_net *net, const float *velocity, size_t *count)
{
    size_t np = net->n_params, nb = net->n_buffers;
    float *host = dl_alloc(sizeof(float) * (2 * np + nb + 1), "checkpoint staging");
    if (!host)
        return NULL;
    net->dev->download(net->dev, host, net->params, sizeof(float) * np);
    net->dev->download(net->dev, host + np, velocity, sizeof(float) * np);
    net->dev->download(net->dev, host + 2 * np, net->buffers, sizeof(float) * nb);
    *count = 2 * np + nb;
    return host;
}

static int write_all(int fd, const void *p, size_t bytes)
{
    const char *c = p;
    while (bytes) {
        ssize_t n = write(fd, c, bytes);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        c += n, bytes -= (size_t)n;
    }
    return 0;
}

static void fsync_dir_of(const char *path)
{
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static int write_section(int fd, const dl_ckpt_extra *extra)
{
    ckpt_section sec;
    memset(&sec, 0, sizeof sec);
    snprintf(sec.name, sizeof sec.name, "%s", extra->name);
    sec.world = extra->world;
    sec.count = extra->count;
    sec.crc = crc_update(0, extra->data, sizeof(float) * extra->count);
    return write_all(fd, &sec, sizeof sec) ||
           write_all(fd, extra->data, sizeof(float) * extra->count);
}

dl_status dl_checkpoint_save(const char *path, const char *model, const dl_net *net,
                             const float *velocity, const dl_progress *p)
{
    return dl_checkpoint_save_extra(path, model, net, velocity, p, NULL);
}

dl_status dl_checkpoint_save_extra(const char *path, const char *model, const dl_net *net,
                                   const float *velocity, const dl_progress *p,
                                   const dl_ckpt_extra *extra)
{
    size_t count;
    float *payload = download_payload(net, velocity, &count);
    if (!payload)
        return DL_ERR_OOM;
    /* A finite loss does not prove the update after it was finite; a diverged model must
     * never replace the last good checkpoint. */
    if (!all_finite(payload, count) || (extra && !all_finite(extra->data, extra->count))) {
        free(payload);
        return dl_fail(DL_ERR_NUMERIC, "parameters or optimizer state are no longer finite "
                       "(step %llu): %s is left as it was", (unsigned long long)p->step, path);
    }
    long long pad = dl_net_padding_nonzero(net, payload);
    if (pad < 0 && (pad = dl_net_padding_nonzero(net, payload + net->n_params)) >= 0)
        pad += (long long)net->n_params;
    if (pad >= 0) {
        free(payload);
        return dl_fail(DL_ERR_NUMERIC, "internal error: the padding between layers is not zero "
                       "(float %lld of the parameters and momentum, step %llu): %s is left as "
                       "it was", pad, (unsigned long long)p->step, path);
    }
    ckpt_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CKPT_MAGIC, sizeof CKPT_MAGIC);
    h.version = extra ? CKPT_VERSION_EXTRA : CKPT_VERSION;
    h.header_bytes = sizeof h;
    snprintf(h.model, sizeof h.model, "%s", model);
    h.c = net->in_c, h.h = net->in_h, h.w = net->in_w, h.classes = net->classes;
    h.n_params = net->n_params, h.n_buffers = net->n_buffers;
    h.progress = *p;
    h.payload_crc = crc_update(0, payload, sizeof(float) * count);
    h.header_crc = header_crc(h);

    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        free(payload);
        return dl_fail(DL_ERR_IO, "cannot write checkpoint %s: %s", tmp, strerror(errno));
    }
    int err = 0; /* the first failure's errno, not a stale one from earlier calls */
    if (write_all(fd, &h, sizeof h) || write_all(fd, payload, sizeof(float) * count) ||
        (extra && write_section(fd, extra)) || fsync(fd) != 0)
        err = errno ? errno : EIO;
    if (close(fd) != 0 && !err)
        err = errno;
    free(payload);
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            return dl_fail(DL_ERR_IO, "cannot write checkpoint %s: it is a directory", path);
        return dl_fail(DL_ERR_IO, "cannot write checkpoint %s: %s (previous checkpoint kept)",
                       path, strerror(err));
    }
    fsync_dir_of(path);
    return DL_OK;
}

static dl_status check_header(const char *path, const ckpt_header *h, const char *model,
                              const dl_net *net, long file_size)
{
    if (memcmp(h->magic, CKPT_MAGIC, sizeof CKPT_MAGIC) != 0)
        return dl_fail(DL_ERR_FORMAT, "%s is not a dltrain checkpoint (bad magic)", path);
    if (h->version >= 1 && h->version <= CKPT_VERSION_PACKED_EXTRA)
        return dl_fail(DL_ERR_FORMAT, "%s was written by an older dltrain (checkpoint version "
                       "%u, parameters packed without padding); this dltrain starts each "
                       "layer's parameters on 256 bytes (versions %d and %d) and cannot "
                       "continue it: train again without --resume", path, h->version,
                       CKPT_VERSION, CKPT_VERSION_EXTRA);
    if (h->version != CKPT_VERSION && h->version != CKPT_VERSION_EXTRA)
        return dl_fail(DL_ERR_FORMAT, "%s: checkpoint version %u not supported (expected %d "
                       "or %d)", path, h->version, CKPT_VERSION, CKPT_VERSION_EXTRA);
    if (h->header_bytes != sizeof *h)
        return dl_fail(DL_ERR_FORMAT, "%s: checkpoint header size field is %u, expected %zu "
                       "(corrupt header)", path, h->header_bytes, sizeof *h);
    if (h->header_crc != header_crc(*h))
        return dl_fail(DL_ERR_FORMAT, "%s: checkpoint header is corrupt (checksum mismatch)", path);
    if (!memchr(h->model, 0, sizeof h->model))
        return dl_fail(DL_ERR_FORMAT, "%s: checkpoint header is corrupt (model name)", path);
    if (strncmp(h->model, model, sizeof h->model) != 0)
        return dl_fail(DL_ERR_ARG, "%s is a checkpoint of model '%.32s', not '%s'", path, h->model,
                       model);
    if (h->c != net->in_c || h->h != net->in_h || h->w != net->in_w || h->classes != net->classes ||
        h->n_params != net->n_params || h->n_buffers != net->n_buffers)
        return dl_fail(DL_ERR_ARG,
                       "%s was saved for %dx%dx%d input with %d classes (%llu parameters); "
                       "this run has %dx%dx%d, %d classes (%zu parameters)",
                       path, h->c, h->h, h->w, h->classes, (unsigned long long)h->n_params,
                       net->in_c, net->in_h, net->in_w, net->classes, net->n_params);
    long expect = (long)(sizeof *h + sizeof(float) * (2 * net->n_params + net->n_buffers));
    if (h->version == CKPT_VERSION_EXTRA && file_size >= expect + (long)sizeof(ckpt_section))
        expect = file_size; /* the section's own size is checked when it is read */
    if (file_size != expect)
        return dl_fail(DL_ERR_FORMAT, "%s: checkpoint is %s (%ld bytes, expected %ld)", path,
                       file_size < expect ? "truncated" : "too long", file_size, expect);
    return DL_OK;
}

/* A forged or damaged file can carry a valid checksum; these hold for every
 * checkpoint dltrain writes (each step consumes at least one sample). */
static dl_status check_progress(const char *path, const dl_progress *p)
{
    if (p->epoch < 0 || p->epoch > DL_CKPT_MAX_EPOCH)
        return dl_fail(DL_ERR_FORMAT, "%s: checkpoint epoch %lld is out of range (corrupt)", path,
                       (long long)p->epoch);
    if (p->samples_seen > DL_CKPT_MAX_SAMPLES || p->step > p->samples_seen ||
        p->epoch_pos > p->samples_seen)
        return dl_fail(DL_ERR_FORMAT, "%s: checkpoint progress is inconsistent (step %llu, %llu "
                       "samples seen, %llu in the epoch): corrupt", path,
                       (unsigned long long)p->step, (unsigned long long)p->samples_seen,
                       (unsigned long long)p->epoch_pos);
    return DL_OK;
}

dl_status dl_checkpoint_check_position(const char *path, const dl_progress *p, size_t train_n)
{
    if (p->epoch_pos > train_n)
        return dl_fail(DL_ERR_ARG, "%s: checkpoint is at sample %llu of its epoch but the data "
                       "set has %zu training samples", path, (unsigned long long)p->epoch_pos,
                       train_n);
    return DL_OK;
}

static dl_status check_payload(const char *path, const float *payload, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (!isfinite(payload[i]))
            return dl_fail(DL_ERR_FORMAT, "%s: checkpoint holds a non-finite value at %zu of %zu "
                           "(dltrain never saves one): corrupt", path, i, count);
    return DL_OK;
}

/* Parameters and momentum (the payload's first 2 x n_params floats). */
static dl_status check_padding(const char *path, const dl_net *net, const float *payload)
{
    for (int half = 0; half < 2; half++) {
        long long at = dl_net_padding_nonzero(net, payload + half * net->n_params);
        if (at >= 0)
            return dl_fail(DL_ERR_FORMAT, "%s: checkpoint holds a non-zero value in the padding "
                           "between layers (%s float %lld; dltrain never saves one): corrupt",
                           path, half ? "momentum" : "parameter", at);
    }
    return DL_OK;
}

static dl_status open_checkpoint(const char *path, FILE **f)
{
    int fd;
    dl_status st = dl_open_regular(path, "checkpoint", &fd);
    if (st != DL_OK)
        return st;
    *f = fdopen(fd, "rb");
    if (!*f) {
        close(fd);
        return dl_fail(DL_ERR_IO, "cannot open checkpoint %s: %s", path, strerror(errno));
    }
    return DL_OK;
}

/* Reads the section that follows the payload; the file must end with it. */
static dl_status read_section(FILE *f, const char *path, long file_size, dl_ckpt_extra *extra)
{
    ckpt_section sec;
    if (fread(&sec, sizeof sec, 1, f) != 1)
        return dl_fail(DL_ERR_FORMAT, "%s: checkpoint section is truncated", path);
    long at = ftell(f);
    if (sec.count > (uint64_t)(file_size - at) / sizeof(float) ||
        at + (long)(sizeof(float) * sec.count) != file_size)
        return dl_fail(DL_ERR_FORMAT, "%s: checkpoint section '%.32s' is %s", path, sec.name,
                       at + (long)(sizeof(float) * sec.count) > file_size ? "truncated"
                                                                          : "followed by junk");
    float *data = dl_alloc(sizeof(float) * (sec.count + 1), "checkpoint section");
    if (!data)
        return DL_ERR_OOM;
    if (fread(data, sizeof(float), sec.count, f) != sec.count ||
        crc_update(0, data, sizeof(float) * sec.count) != sec.crc) {
        free(data);
        return dl_fail(DL_ERR_FORMAT, "%s: checkpoint section '%.32s' is corrupt (checksum "
                       "mismatch)", path, sec.name);
    }
    dl_status st = check_payload(path, data, sec.count); /* residuals are saved finite too */
    if (st != DL_OK) {
        free(data);
        return st;
    }
    memcpy(extra->name, sec.name, sizeof extra->name);
    extra->name[sizeof extra->name - 1] = 0;
    extra->world = sec.world, extra->count = sec.count, extra->data = data;
    return DL_OK;
}

dl_status dl_checkpoint_load(const char *path, const char *model, dl_net *net, float *velocity,
                             dl_progress *p)
{
    dl_ckpt_extra extra;
    dl_status st = dl_checkpoint_load_extra(path, model, net, velocity, p, &extra);
    free(extra.data);
    return st;
}

dl_status dl_checkpoint_load_extra(const char *path, const char *model, dl_net *net,
                                   float *velocity, dl_progress *p, dl_ckpt_extra *extra)
{
    memset(extra, 0, sizeof *extra);
    FILE *f;
    dl_status st = open_checkpoint(path, &f);
    if (st != DL_OK)
        return st;
    struct stat sb;
    ckpt_header h;
    if (fstat(fileno(f), &sb) != 0 || fread(&h, sizeof h, 1, f) != 1)
        st = dl_fail(DL_ERR_FORMAT, "%s is not a dltrain checkpoint (too short)", path);
    if (st == DL_OK)
        st = check_header(path, &h, model, net, (long)sb.st_size);
    if (st == DL_OK)
        st = check_progress(path, &h.progress);
    size_t count = 2 * net->n_params + net->n_buffers;
    float *payload = st == DL_OK ? dl_alloc(sizeof(float) * (count + 1), "checkpoint") : NULL;
    if (st == DL_OK && !payload)
        st = DL_ERR_OOM;
    if (st == DL_OK && fread(payload, sizeof(float), count, f) != count)
        st = dl_fail(DL_ERR_IO, "%s: read error", path);
    if (st == DL_OK && crc_update(0, payload, sizeof(float) * count) != h.payload_crc)
        st = dl_fail(DL_ERR_FORMAT, "%s: checkpoint data is corrupt (checksum mismatch)", path);
    if (st == DL_OK)
        st = check_payload(path, payload, count);
    if (st == DL_OK)
        st = check_padding(path, net, payload);
    if (st == DL_OK && h.version == CKPT_VERSION_EXTRA)
        st = read_section(f, path, (long)sb.st_size, extra);
    fclose(f);
    if (st == DL_OK) {
        size_t np = net->n_params;
        net->dev->upload(net->dev, net->params, payload, sizeof(float) * np);
        net->dev->upload(net->dev, velocity, payload + np, sizeof(float) * np);
        net->dev->upload(net->dev, net->buffers, payload + 2 * np, sizeof(float) * net->n_buffers);
        *p = h.progress;
    }
    free(payload);
    return st;
}

size_t dl_checkpoint_header_bytes(void) { return sizeof(ckpt_header); }

int dl_checkpoint_reseal(unsigned char *file, size_t size)
{
    ckpt_header h;
    if (size < sizeof h)
        return 0;
    memcpy(&h, file, sizeof h);
    h.payload_crc = crc_update(0, file + sizeof h, size - sizeof h);
    h.header_crc = header_crc(h);
    memcpy(file, &h, sizeof h);
    return 1;
}

/* pid of a "BASE.tmp.PID" name, or 0 if name is not one. */
static long tmp_owner(const char *name, const char *base)
{
    size_t len = strlen(base);
    long long pid;
    if (strncmp(name, base, len) != 0 || strncmp(name + len, ".tmp.", 5) != 0 ||
        !dl_parse_ll(name + len + 5, 1, 1LL << 31, &pid))
        return 0;
    return (long)pid;
}

/* Only rank 0 of a job saves, so a temporary file whose writer is gone is an
 * orphan of a run killed mid-save.  A live PID is left alone: it may be
 * another dltrain saving into the same directory right now. */
static void remove_orphans(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = tmp_owner(e->d_name, base);
        if (pid <= 0 || (pid != (long)getpid() && !(kill((pid_t)pid, 0) != 0 && errno == ESRCH)))
            continue;
        char full[4600];
        snprintf(full, sizeof full, "%s/%s", dir, e->d_name);
        unlink(full);
    }
    closedir(d);
}

dl_status dl_checkpoint_prepare(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return dl_fail(DL_ERR_ARG, "checkpoint path %s is a directory", path);
    char dir_copy[4096], base_copy[4096];
    snprintf(dir_copy, sizeof dir_copy, "%s", path);
    snprintf(base_copy, sizeof base_copy, "%s", path);
    const char *dir = dirname(dir_copy), *base = basename(base_copy);
    remove_orphans(dir, base);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0)
        return dl_fail(DL_ERR_ARG, "cannot write checkpoints to %s: %s", dir, strerror(errno));
    close(fd);
    unlink(probe);
    return DL_OK;
}
