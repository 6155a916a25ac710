/* topo_pci.c: PCIe arithmetic, attribute parsing and bounded file reading.
 *
 * Kernels write link speeds differently: "8 GT/s" before Linux 5.x,
 * "8.0 GT/s PCIe" after, "Unknown" / "Unknown speed" when the link is down.
 * Every parser here accepts those and maps anything else to 0 = unknown. */
#define _GNU_SOURCE
#include "topo_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Per-lane rate of each PCIe generation (GT/s); index = generation. */
static const double gen_gts[] = {0, 2.5, 5.0, 8.0, 16.0, 32.0, 64.0, 128.0};

double dl_topo_encoding(double gts)
{
    if (gts <= 0)
        return 0;
    if (gts <= 5.0 + 1e-9)
        return 8.0 / 10.0;       /* gen1, gen2: 8b/10b */
    if (gts < 64.0 - 1e-9)
        return 128.0 / 130.0;    /* gen3..gen5: 128b/130b */
    return 242.0 / 256.0;        /* gen6+: PAM4 FLIT mode, 236 data + CRC/FEC of 256 */
}

double dl_topo_link_gbps(double gts, int width)
{
    if (gts <= 0 || width <= 0)
        return 0;
    /* GT/s per lane is one bit per transfer; /8 turns Gbit/s into GB/s. */
    return gts * width * dl_topo_encoding(gts) / 8.0;
}

int dl_topo_gen_from_gts(double gts)
{
    for (int g = 1; g < (int)DL_ARRAY_LEN(gen_gts); g++)
        if (fabs(gts - gen_gts[g]) < 0.01)
            return g;
    return 0;
}

double dl_topo_gts_from_gen(int gen)
{
    return gen >= 1 && gen < (int)DL_ARRAY_LEN(gen_gts) ? gen_gts[gen] : 0;
}

double dl_topo_parse_speed(const char *text)
{
    if (!text)
        return 0;
    while (*text == ' ' || *text == '\t')
        text++;
    if (!isdigit((unsigned char)*text))
        return 0;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || !isfinite(v))
        return 0;
    while (*end == ' ')
        end++;
    if (strncmp(end, "GT/s", 4) != 0)
        return 0;
    end += 4;
    /* Newer kernels append " PCIe"; accept that and nothing else. */
    while (*end == ' ')
        end++;
    if (strncmp(end, "PCIe", 4) == 0)
        end += 4;
    while (*end == ' ' || *end == '\n')
        end++;
    if (*end)
        return 0;
    return dl_topo_gen_from_gts(v) ? v : 0;
}

int dl_topo_parse_width(const char *text)
{
    if (!text)
        return 0;
    if (*text == 'x' || *text == 'X')
        text++;
    long w;
    if (dl_topo_parse_int(text, 0, 64, &w) != 0)
        return 0;
    static const int valid[] = {1, 2, 4, 8, 12, 16, 32};
    for (size_t i = 0; i < DL_ARRAY_LEN(valid); i++)
        if (w == valid[i])
            return (int)w;
    return 0; /* 0 = link down; odd widths are not PCIe */
}

double dl_topo_nvlink_gbps(int version)
{
    /* Per link, per direction: NVLink 1.0 (P100) 20 GB/s; 2.0/2.2 (V100),
     * 3.0/3.1 (A100) and 4.0 (H100) 25 GB/s; 5.0 (B200) 50 GB/s.  Drivers
     * before the nvmlNvlinkVersion_t enum returned 1..4 = NVLink 1..4, which
     * the same table gets right since 2..6 all mean 25 GB/s. */
    switch (version) {
    case 1: return 20.0;
    case 2: case 3: case 4: case 5: case 6: return 25.0;
    case 7: return 50.0;
    default: return 0;
    }
}

const char *dl_topo_nvlink_version_name(int version)
{
    static const char *const names[] = {"unknown", "1.0", "2.0", "2.2", "3.0", "3.1", "4.0", "5.0"};
    return version > 0 && version < (int)DL_ARRAY_LEN(names) ? names[version] : "unknown";
}

/* Parses one non-negative decimal CPU number; advances *s. */
static int parse_cpu(const char **s, long *out)
{
    if (!isdigit((unsigned char)**s))
        return -1;
    long v = 0;
    while (isdigit((unsigned char)**s)) {
        v = v * 10 + (**s - '0');
        if (v > 65535)
            return -1;
        (*s)++;
    }
    *out = v;
    return 0;
}

int dl_topo_cpulist_count(const char *list, int *first)
{
    if (first)
        *first = -1;
    if (!list || !*list)
        return -1;
    const char *s = list;
    int count = 0;
    long lowest = -1;
    for (;;) {
        long a, b;
        if (parse_cpu(&s, &a) != 0)
            return -1;
        b = a;
        if (*s == '-') {
            s++;
            if (parse_cpu(&s, &b) != 0 || b < a)
                return -1;
        }
        count += (int)(b - a + 1);
        if (lowest < 0 || a < lowest)
            lowest = a;
        if (*s == ',') {
            s++;
            continue;
        }
        if (*s == '\0' || *s == '\n')
            break;
        return -1;
    }
    if (first)
        *first = (int)lowest;
    return count;
}

const char *dl_topo_vendor_name(int vendor)
{
    switch (vendor) {
    case 0x10de: return "NVIDIA";
    case 0x1002: return "AMD/ATI";
    case 0x1022: return "AMD";
    case 0x8086: return "Intel";
    case 0x10b5: return "PLX/Broadcom";
    case 0x1000: return "Broadcom/LSI";
    case 0x11f8: return "Microsemi/PMC";
    case 0x12d8: return "Pericom/Diodes";
    case 0x1b21: return "ASMedia";
    case 0x1a03: return "ASPEED";
    case 0x102b: return "Matrox";
    case 0x1d94: return "Hygon";
    case 0x1def: return "Ampere Computing";
    case 0x19e5: return "Huawei";
    default: return NULL;
    }
}

/* ---- strings and numbers ------------------------------------------------- */

void dl_topo_copy(char *dst, size_t cap, const char *src)
{
    if (!cap)
        return;
    size_t n = src ? strnlen(src, cap - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void dl_topo_sanitize(char *dst, size_t cap, const char *src)
{
    if (!cap)
        return;
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    dst[i] = '\0';
}

long dl_topo_parse_hex(const char *s, long max)
{
    if (!s)
        return -1;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    if (!isxdigit((unsigned char)*s))
        return -1;
    long v = 0;
    for (; isxdigit((unsigned char)*s); s++) {
        int d = isdigit((unsigned char)*s) ? *s - '0' : (tolower((unsigned char)*s) - 'a' + 10);
        v = v * 16 + d;
        if (v > max)
            return -1;
    }
    return *s ? -1 : v;
}

int dl_topo_parse_int(const char *s, long lo, long hi, long *out)
{
    if (!s)
        return -1;
    const char *p = s;
    int neg = 0;
    if (*p == '-')
        neg = 1, p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    long v = 0;
    for (; isdigit((unsigned char)*p); p++) {
        v = v * 10 + (*p - '0');
        if (v > 1000000000L)
            return -1;
    }
    if (*p)
        return -1;
    v = neg ? -v : v;
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Reads exactly `digits` hex digits (or 4..8 when digits == 0) up to stop. */
static int hex_field(const char **s, int min_digits, int max_digits, char stop, unsigned *out)
{
    unsigned v = 0;
    int n = 0;
    while (isxdigit((unsigned char)**s)) {
        if (++n > max_digits)
            return -1;
        char c = (char)tolower((unsigned char)**s);
        v = v * 16 + (unsigned)(isdigit((unsigned char)c) ? c - '0' : c - 'a' + 10);
        (*s)++;
    }
    if (n < min_digits || **s != stop)
        return -1;
    if (stop)
        (*s)++;
    *out = v;
    return 0;
}

int dl_topo_parse_bdf(const char *s, unsigned *domain, unsigned *bus, unsigned *dev, unsigned *fn)
{
    if (!s)
        return -1;
    /* Domains are 4 hex digits, more for VMD (10000) or Hyper-V buses. */
    if (hex_field(&s, 4, 8, ':', domain) || hex_field(&s, 2, 2, ':', bus) ||
        hex_field(&s, 2, 2, '.', dev) || hex_field(&s, 1, 1, '\0', fn))
        return -1;
    return (*dev > 31 || *fn > 7) ? -1 : 0;
}

int dl_topo_parse_host_bridge(const char *s, unsigned *domain, unsigned *bus)
{
    if (!s || strncmp(s, "pci", 3) != 0)
        return -1;
    s += 3;
    return hex_field(&s, 4, 8, ':', domain) || hex_field(&s, 2, 2, '\0', bus) ? -1 : 0;
}

/* ---- bounded reading ------------------------------------------------------ */

int dl_topo_join(char *dst, size_t cap, const char *root, const char *rel, const char *attr)
{
    int n;
    if (attr && rel && *rel)
        n = snprintf(dst, cap, "%s/%s/%s", root, rel, attr);
    else if (attr)
        n = snprintf(dst, cap, "%s/%s", root, attr);
    else
        n = snprintf(dst, cap, "%s/%s", root, rel ? rel : "");
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

long dl_topo_read_bin(const char *root, const char *rel, const char *attr, unsigned char *buf,
                      size_t cap)
{
    char path[DL_TOPO_FULLPATH_LEN];
    if (dl_topo_join(path, sizeof path, root, rel, attr) != 0)
        return -1;
    /* O_NONBLOCK: a FIFO planted in a fixture must not hang discovery. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            /* A short read is still information (config space as non-root). */
            close(fd);
            return got ? (long)got : -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    return (long)got;
}

int dl_topo_read_text(const char *root, const char *rel, const char *attr, char *buf, size_t cap)
{
    if (cap == 0)
        return -1;
    long n = dl_topo_read_bin(root, rel, attr, (unsigned char *)buf, cap - 1);
    if (n < 0) {
        buf[0] = '\0';
        return -1;
    }
    buf[n] = '\0';
    /* Embedded NULs end the text, as they would for any C reader. */
    n = (long)strlen(buf);
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        buf[--n] = '\0';
    return (int)n;
}

static void read_raw(const char *root, const char *rel, const char *attr, char *raw, size_t cap)
{
    char buf[64];
    if (dl_topo_read_text(root, rel, attr, buf, sizeof buf) < 0) {
        raw[0] = '\0';
        return;
    }
    dl_topo_sanitize(raw, cap, buf);
    if (!raw[0])
        dl_topo_copy(raw, cap, "(empty)");
}

void dl_topo_link_read(const char *root, const char *rel, dl_topo_link *l, int current_only)
{
    read_raw(root, rel, "current_link_speed", l->cur_speed_raw, sizeof l->cur_speed_raw);
    read_raw(root, rel, "current_link_width", l->cur_width_raw, sizeof l->cur_width_raw);
    l->cur_gts = dl_topo_parse_speed(l->cur_speed_raw);
    l->cur_width = dl_topo_parse_width(l->cur_width_raw);
    if (current_only)
        return;
    read_raw(root, rel, "max_link_speed", l->max_speed_raw, sizeof l->max_speed_raw);
    read_raw(root, rel, "max_link_width", l->max_width_raw, sizeof l->max_width_raw);
    l->max_gts = dl_topo_parse_speed(l->max_speed_raw);
    l->max_width = dl_topo_parse_width(l->max_width_raw);
}

void dl_topo_warn(dl_topo *t, dl_topo_warn_kind kind, int gpu, const char *fmt, ...)
{
    if (!t->warnings || t->n_warnings >= DL_TOPO_MAX_WARNINGS)
        return;
    dl_topo_warning *w = &t->warnings[t->n_warnings++];
    w->kind = kind;
    w->gpu = gpu;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->text, sizeof w->text, fmt, ap);
    va_end(ap);
}
