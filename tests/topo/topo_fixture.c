/* topo_fixture.c: sysfs fixture trees from text specs (see topo_fixture.h). */
#define _GNU_SOURCE
#include "topo_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_TOKENS 40
#define PATHLEN 1024

/* snprintf that reports truncation (-1); paths here are short in practice. */
static int pfmt(char *dst, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

int topo_fixture_remove(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int mkdir_p(const char *path)
{
    char buf[PATHLEN];
    if (pfmt(buf, sizeof buf, "%s", path) < 0)
        return -1;
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int parent_dir(const char *dir, const char *rel)
{
    char path[PATHLEN];
    pfmt(path, sizeof path, "%s/%s", dir, rel);
    char *slash = strrchr(path, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    return mkdir_p(path);
}

int topo_fixture_write(const char *dir, const char *rel, const void *data, size_t len)
{
    char path[PATHLEN];
    if (pfmt(path, sizeof path, "%s/%s", dir, rel) < 0 || parent_dir(dir, rel) != 0)
        return -1;
    unlink(path); /* replace links and files alike */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    ssize_t n = len ? write(fd, data, len) : 0;
    close(fd);
    return n == (ssize_t)len ? 0 : -1;
}

static int write_text(const char *dir, const char *rel, const char *text)
{
    char buf[PATHLEN];
    int n = pfmt(buf, sizeof buf, "%s\n", text);
    if (n < 0)
        return -1;
    return topo_fixture_write(dir, rel, buf, (size_t)n);
}

static int make_link(const char *dir, const char *rel, const char *target)
{
    char path[PATHLEN];
    if (pfmt(path, sizeof path, "%s/%s", dir, rel) < 0 || parent_dir(dir, rel) != 0)
        return -1;
    unlink(path);
    return symlink(target, path);
}

/* ---- tokenizer ------------------------------------------------------------- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int topo_fixture_tokens(char *line, char **tok, int max)
{
    int n = 0;
    char *r = line, *w = line;
    while (*r && n < max) {
        while (*r == ' ' || *r == '\t' || *r == '\n' || *r == '\r')
            r++;
        if (!*r || *r == '#')
            break;
        tok[n++] = w;
        int quoted = 0;
        while (*r && (quoted || (*r != ' ' && *r != '\t' && *r != '\n' && *r != '\r'))) {
            if (*r == '"') {
                quoted = !quoted;
                r++;
            } else if (quoted && *r == '\\' && r[1]) {
                r++;
                if (*r == 'x' && hexval(r[1]) >= 0 && hexval(r[2]) >= 0) {
                    *w++ = (char)(hexval(r[1]) * 16 + hexval(r[2]));
                    r += 3;
                } else {
                    *w++ = *r == 'n' ? '\n' : *r;
                    r++;
                }
            } else {
                *w++ = *r++;
            }
        }
        if (*r)
            r++;
        *w++ = '\0';
        if (w > r) /* never write past what has been read */
            return -1;
    }
    return n;
}

/* ---- pci devices ------------------------------------------------------------- */

typedef struct {
    const char *key[MAX_TOKENS], *val[MAX_TOKENS];
    int n;
} kvs;

static const char *kv(const kvs *k, const char *key)
{
    for (int i = 0; i < k->n; i++)
        if (strcmp(k->key[i], key) == 0)
            return k->val[i];
    return NULL;
}

static void put16(unsigned char *c, int off, unsigned v)
{
    c[off] = (unsigned char)(v & 0xff);
    c[off + 1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *c, int off, unsigned long v)
{
    put16(c, off, (unsigned)(v & 0xffff));
    put16(c, off + 2, (unsigned)(v >> 16));
}

/* Config space: header, a PCIe capability with the port type, and in
 * extended space AER at 0x100 linking to ACS at 0x148 when acs= is given. */
static int write_config(const char *dir, const char *rel, const kvs *k)
{
    const char *mode = kv(k, "config");
    const char *acs = kv(k, "acs");
    if (!mode)
        mode = acs ? "full" : "short";
    if (strcmp(mode, "none") == 0)
        return 0;
    unsigned char cfg[4096];
    memset(cfg, 0, sizeof cfg);
    unsigned long vendor = strtoul(kv(k, "vendor") ? kv(k, "vendor") : "0xffff", NULL, 16);
    unsigned long device = strtoul(kv(k, "device") ? kv(k, "device") : "0xffff", NULL, 16);
    unsigned long cls = strtoul(kv(k, "class") ? kv(k, "class") : "0", NULL, 16);
    put16(cfg, 0x00, (unsigned)vendor);
    put16(cfg, 0x02, (unsigned)device);
    cfg[0x09] = (unsigned char)(cls & 0xff);
    cfg[0x0a] = (unsigned char)((cls >> 8) & 0xff);
    cfg[0x0b] = (unsigned char)((cls >> 16) & 0xff);
    cfg[0x0e] = (cls >> 8) == 0x0604 ? 1 : 0;
    const char *pt = kv(k, "porttype");
    if (pt) {
        unsigned type = strcmp(pt, "root") == 0 ? 4 : strcmp(pt, "up") == 0 ? 5
                      : strcmp(pt, "down") == 0 ? 6 : strcmp(pt, "pcibridge") == 0 ? 7 : 0;
        cfg[0x06] = 0x10; /* capability list present */
        cfg[0x34] = 0x40;
        cfg[0x40] = 0x10; /* PCI Express capability, last in the list */
        put16(cfg, 0x42, 0x0002 | type << 4);
    }
    if (acs) {
        put32(cfg, 0x100, 0x0001UL | 2UL << 16 | 0x148UL << 20); /* AER -> 0x148 */
        put32(cfg, 0x148, 0x000DUL | 1UL << 16);                 /* ACS, last */
        put16(cfg, 0x14c, (unsigned)strtoul(kv(k, "acscap") ? kv(k, "acscap") : "0x5f", NULL, 16));
        put16(cfg, 0x14e, (unsigned)strtoul(acs, NULL, 16));
    } else if (strcmp(mode, "loop") == 0) {
        put32(cfg, 0x100, 0x0001UL | 2UL << 16 | 0x148UL << 20); /* AER -> 0x148 -> AER ... */
        put32(cfg, 0x148, 0x0019UL | 1UL << 16 | 0x100UL << 20);
    } else if (strcmp(mode, "full") == 0) {
        put32(cfg, 0x100, 0x0001UL | 2UL << 16); /* AER only */
    }
    char path[PATHLEN];
    pfmt(path, sizeof path, "%s/config", rel);
    return topo_fixture_write(dir, path, cfg, strcmp(mode, "short") == 0 ? 64 : sizeof cfg);
}

static int write_attr(const char *dir, const char *rel, const char *attr, const char *text)
{
    char path[PATHLEN];
    if (!text)
        return 0;
    pfmt(path, sizeof path, "%s/%s", rel, attr);
    return write_text(dir, path, text);
}

/* "../" once per component of devices/PATH, to get back to the root. */
static void up_prefix(const char *rel, char *buf, size_t cap)
{
    buf[0] = '\0';
    size_t used = 0;
    for (const char *p = rel; ; p++) {
        if (*p == '/' || *p == '\0') {
            int n = pfmt(buf + used, cap - used, "../");
            if (n < 0 || !*p)
                break;
            used += (size_t)n;
            if (used >= cap)
                break;
        }
    }
}

static void unlink_rel(const char *dir, const char *rel, const char *attr)
{
    char path[PATHLEN];
    if (pfmt(path, sizeof path, "%s/%s/%s", dir, rel, attr) >= 0)
        unlink(path);
}

static int add_pci(const char *dir, char **tok, int n, const char *default_cpus, char *err, size_t cap)
{
    if (n < 2)
        return fail(err, cap, "pci needs a path");
    kvs k = {.n = 0};
    for (int i = 2; i < n; i++) {
        char *eq = strchr(tok[i], '=');
        if (!eq)
            return fail(err, cap, "pci: '%s' is not key=value", tok[i]);
        *eq = '\0';
        k.key[k.n] = tok[i];
        k.val[k.n++] = eq + 1;
    }
    char rel[PATHLEN], path[PATHLEN], target[PATHLEN], up[256];
    pfmt(rel, sizeof rel, "devices/%s", tok[1]);
    pfmt(path, sizeof path, "%s/%s", dir, rel);
    if (mkdir_p(path) != 0)
        return fail(err, cap, "cannot create %s", path);
    const char *bdf = strrchr(tok[1], '/') ? strrchr(tok[1], '/') + 1 : tok[1];
    static const char *const attrs[][2] = {
        {"class", "class"}, {"vendor", "vendor"}, {"device", "device"}, {"numa", "numa_node"},
        {"speed", "current_link_speed"}, {"maxspeed", "max_link_speed"},
        {"width", "current_link_width"}, {"maxwidth", "max_link_width"},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
        rc |= write_attr(dir, rel, attrs[i][1], kv(&k, attrs[i][0]));
    if (!kv(&k, "numa"))
        rc |= write_attr(dir, rel, "numa_node", "-1");
    else if (strcmp(kv(&k, "numa"), "omit") == 0)
        unlink_rel(dir, rel, "numa_node");
    rc |= write_attr(dir, rel, "local_cpulist", kv(&k, "cpus") ? kv(&k, "cpus") : default_cpus);
    rc |= write_config(dir, rel, &k);
    up_prefix(rel, up, sizeof up);
    pfmt(path, sizeof path, "%s/subsystem", rel);
    pfmt(target, sizeof target, "%sbus/pci", up);
    rc |= make_link(dir, path, target);
    if (kv(&k, "iommu_group")) {
        const char *g = kv(&k, "iommu_group");
        pfmt(path, sizeof path, "%s/iommu_group", rel);
        pfmt(target, sizeof target, "%skernel/iommu_groups/%s", up, g);
        rc |= make_link(dir, path, target);
        pfmt(path, sizeof path, "kernel/iommu_groups/%s/devices/%s", g, bdf);
        pfmt(target, sizeof target, "../../../../%s", rel);
        rc |= make_link(dir, path, target);
        pfmt(path, sizeof path, "kernel/iommu_groups/%s/type", g);
        rc |= write_text(dir, path, kv(&k, "iommutype") ? kv(&k, "iommutype") : "DMA");
    }
    if (!kv(&k, "nolink")) {
        pfmt(path, sizeof path, "bus/pci/devices/%s", bdf);
        pfmt(target, sizeof target, "../../../%s", rel);
        rc |= make_link(dir, path, target);
    }
    return rc ? fail(err, cap, "cannot write device %s", tok[1]) : 0;
}

/* ---- cpus ----------------------------------------------------------------------- */

/* The package lines of one fixture name at most this many CPUs in all: a
 * fixture is a machine described by hand (the largest has 80), and a fuzzed
 * "0-99999999", or many lines of thousands, would otherwise make a directory
 * per CPU for minutes (fuzz_topo_tree's timeout). */
#define FIXTURE_MAX_CPUS 1024

static int add_packages(const char *dir, const char *list, const char *id, long *cpus_left)
{
    const char *s = list;
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s)
            return -1;
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            s = end;
        }
        if (a < 0 || b < a || b - a >= *cpus_left)
            return -1;
        *cpus_left -= b - a + 1;
        for (long c = a; c <= b; c++) {
            char rel[128];
            pfmt(rel, sizeof rel, "devices/system/cpu/cpu%ld/topology/physical_package_id", c);
            if (write_text(dir, rel, id) != 0)
                return -1;
        }
        if (*s == ',')
            s++;
    }
    return 0;
}

static int do_line(const char *dir, char **tok, int n, char *cpus, size_t cpus_cap,
                   long *cpus_left, char *err, size_t cap)
{
    const char *cmd = tok[0];
    if (strcmp(cmd, "expect") == 0)
        return 0;
    if (strcmp(cmd, "pci") == 0)
        return add_pci(dir, tok, n, cpus, err, cap);
    if (strcmp(cmd, "cpu") == 0 && n == 3) {
        pfmt(cpus, cpus_cap, "%s", tok[2]);
        return write_text(dir, "devices/system/cpu/modalias", tok[1]) |
               write_text(dir, "devices/system/cpu/online", tok[2]);
    }
    if (strcmp(cmd, "package") == 0 && n == 3)
        return add_packages(dir, tok[1], tok[2], cpus_left);
    if (strcmp(cmd, "iommu") == 0 && n == 2) {
        char rel[256], target[256], path[PATHLEN];
        pfmt(path, sizeof path, "%s/devices/virtual/iommu/%s", dir, tok[1]);
        pfmt(rel, sizeof rel, "class/iommu/%s", tok[1]);
        pfmt(target, sizeof target, "../../devices/virtual/iommu/%s", tok[1]);
        return mkdir_p(path) | make_link(dir, rel, target);
    }
    if (strcmp(cmd, "file") == 0 && n == 3)
        return write_text(dir, tok[1], tok[2]);
    if (strcmp(cmd, "rawfile") == 0 && n == 3)
        return topo_fixture_write(dir, tok[1], tok[2], strlen(tok[2]));
    if (strcmp(cmd, "hexfile") == 0 && n == 3) {
        unsigned char bytes[512];
        size_t len = 0;
        for (const char *h = tok[2]; hexval(h[0]) >= 0 && hexval(h[1]) >= 0 && len < sizeof bytes; h += 2)
            bytes[len++] = (unsigned char)(hexval(h[0]) * 16 + hexval(h[1]));
        return topo_fixture_write(dir, tok[1], bytes, len);
    }
    if (strcmp(cmd, "symlink") == 0 && n == 3)
        return make_link(dir, tok[1], tok[2]);
    if (strcmp(cmd, "rm") == 0 && n == 2) {
        char path[PATHLEN];
        pfmt(path, sizeof path, "%s/%s", dir, tok[1]);
        return topo_fixture_remove(path);
    }
    if (strcmp(cmd, "mkdir") == 0 && n == 2) {
        char path[PATHLEN];
        pfmt(path, sizeof path, "%s/%s", dir, tok[1]);
        return mkdir_p(path);
    }
    return fail(err, cap, "unknown or malformed line '%s'", cmd);
}

int topo_fixture_build(const char *spec_path, const char *dir, char *err, size_t cap)
{
    FILE *f = fopen(spec_path, "r");
    if (!f)
        return fail(err, cap, "cannot open %s", spec_path);
    if (topo_fixture_remove(dir) != 0 || mkdir_p(dir) != 0) {
        fclose(f);
        return fail(err, cap, "cannot recreate %s", dir);
    }
    /* Directories every Linux sysfs has, even with nothing in them. */
    char buf[PATHLEN], cpus[128] = "0";
    static const char *const base[] = {"bus/pci/devices", "devices/system/cpu", "class/iommu", "kernel/iommu_groups"};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) {
        pfmt(buf, sizeof buf, "%s/%s", dir, base[i]);
        mkdir_p(buf);
    }
    char line[2048];
    int lineno = 0, rc = 0;
    long cpus_left = FIXTURE_MAX_CPUS;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *tok[MAX_TOKENS];
        int n = topo_fixture_tokens(line, tok, MAX_TOKENS);
        err[0] = '\0';
        if (n < 0) {
            rc = fail(err, cap, "%s:%d: bad quoting", spec_path, lineno);
        } else if (n > 0 && do_line(dir, tok, n, cpus, sizeof cpus, &cpus_left, err, cap) != 0) {
            char why[256];
            pfmt(why, sizeof why, "%s", err[0] ? err : "cannot write the files");
            rc = fail(err, cap, "%s:%d: %s", spec_path, lineno, why);
        }
    }
    fclose(f);
    return rc;
}
