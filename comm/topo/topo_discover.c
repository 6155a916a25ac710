/* topo_discover.c: build the GPU / bridge / root-complex tree from sysfs.
 *
 * bus/pci/devices/0000:01:00.0 is a symlink such as
 * ../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0.  We resolve it by
 * text (never by following links), so a loop or a link that leaves the
 * sysfs root cannot trap or mislead us: the components after the last
 * "pciDDDD:BB" are the bridges from the root port down to the device. */
#define _GNU_SOURCE
#include "topo_internal.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENTRY_NAME_LEN 64
#define MAX_COMPONENTS 64
#define MAX_CPUS_SCANNED 1024

typedef struct {
    char name[MAX_COMPONENTS][ENTRY_NAME_LEN];
    int n;
} path_parts;

static void skip_entry(dl_topo *t, const char *name, const char *why)
{
    char clean[ENTRY_NAME_LEN];
    dl_topo_sanitize(clean, sizeof clean, name);
    if (t->n_skipped++ == 0)
        snprintf(t->skipped_note, sizeof t->skipped_note, "%s: %s", clean, why);
}

/* Splits and normalises base + "/" + link (lexically).  -1 if the result
 * would climb above the sysfs root, is absolute, or is too deep. */
static int resolve_link(const char *base, const char *link, path_parts *out)
{
    out->n = 0;
    if (link[0] == '/')
        return -1;
    char buf[2 * DL_TOPO_PATH_LEN];
    int n = snprintf(buf, sizeof buf, "%s/%s", base, link);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -1;
    for (char *save = NULL, *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (strcmp(tok, ".") == 0)
            continue;
        if (strcmp(tok, "..") == 0) {
            if (out->n == 0)
                return -1;
            out->n--;
            continue;
        }
        if (out->n >= MAX_COMPONENTS || strlen(tok) >= ENTRY_NAME_LEN)
            return -1;
        strcpy(out->name[out->n++], tok);
    }
    return 0;
}

/* Joins parts[0..count) into a relative path; -1 if too long. */
static int parts_join(const path_parts *p, int count, char *dst, size_t cap)
{
    size_t used = 0;
    dst[0] = '\0';
    for (int i = 0; i < count; i++) {
        int n = snprintf(dst + used, cap - used, "%s%s", i ? "/" : "", p->name[i]);
        if (n < 0 || (size_t)n >= cap - used)
            return -1;
        used += (size_t)n;
    }
    return 0;
}

static int read_hex_attr(const char *root, const char *rel, const char *attr, long max)
{
    char buf[32];
    if (dl_topo_read_text(root, rel, attr, buf, sizeof buf) <= 0)
        return -1;
    return (int)dl_topo_parse_hex(buf, max);
}

/* ---- CPU facts ------------------------------------------------------------ */

static void read_cpu_vendor(dl_topo *t)
{
    char buf[96];
    t->cpu_vendor = DL_TOPO_CPU_UNKNOWN;
    if (dl_topo_read_text(t->root, "devices/system/cpu", "modalias", buf, sizeof buf) <= 0)
        return;
    dl_topo_sanitize(t->cpu_modalias, sizeof t->cpu_modalias, buf);
    /* x86 writes "cpu:type:x86,venVVVV..." with the kernel's X86_VENDOR_* number. */
    if (strncmp(buf, "cpu:type:x86,ven", 16) == 0) {
        char ven[5] = {0};
        memcpy(ven, buf + 16, 4);
        long v = dl_topo_parse_hex(ven, 0xffff);
        t->cpu_vendor = v == 0 ? DL_TOPO_CPU_INTEL
                      : v == 2 ? DL_TOPO_CPU_AMD
                      : (v == 5 || v == 10) ? DL_TOPO_CPU_ZHAOXIN
                      : DL_TOPO_CPU_X86_OTHER;
    } else if (strncmp(buf, "cpu:type:aarch64", 16) == 0 || strncmp(buf, "cpu:type:arm", 12) == 0) {
        t->cpu_vendor = DL_TOPO_CPU_ARM;
    } else if (strncmp(buf, "cpu:type:", 9) == 0) {
        t->cpu_vendor = DL_TOPO_CPU_OTHER;
    }
}

static int cpu_package(const char *root, int cpu)
{
    char rel[64], buf[32];
    long v;
    snprintf(rel, sizeof rel, "devices/system/cpu/cpu%d/topology", cpu);
    if (dl_topo_read_text(root, rel, "physical_package_id", buf, sizeof buf) <= 0 ||
        dl_topo_parse_int(buf, 0, 65535, &v) != 0)
        return -1;
    return (int)v;
}

static void count_packages(dl_topo *t)
{
    int seen[64], n_seen = 0, misses = 0;
    for (int cpu = 0; cpu < MAX_CPUS_SCANNED && misses < 64; cpu++) {
        int p = cpu_package(t->root, cpu);
        if (p < 0) {
            misses++; /* CPU numbers can have holes (offline CPUs) */
            continue;
        }
        int known = 0;
        for (int i = 0; i < n_seen; i++)
            known |= seen[i] == p;
        if (!known && n_seen < (int)DL_ARRAY_LEN(seen))
            seen[n_seen++] = p;
    }
    t->n_packages = n_seen;
}

/* The socket of a GPU: the package of its first local CPU, unless its CPU
 * list spans the whole machine (no NUMA affinity) on a multi-socket box. */
static int gpu_package(const dl_topo *t, const dl_topo_gpu *g)
{
    int first;
    int count = g->cpulist_src ? dl_topo_cpulist_count(g->cpulist, &first) : -1;
    if (count <= 0)
        return -1;
    if (t->n_packages > 1) {
        char online[DL_TOPO_CPULIST_LEN];
        if (dl_topo_read_text(t->root, "devices/system/cpu", "online", online, sizeof online) > 0 &&
            dl_topo_cpulist_count(online, NULL) == count)
            return -1;
    }
    return cpu_package(t->root, first);
}

/* ---- tree building ---------------------------------------------------------- */

static int find_or_add_complex(dl_topo *t, const path_parts *pp, int idx)
{
    char rel[DL_TOPO_PATH_LEN];
    if (parts_join(pp, idx + 1, rel, sizeof rel) != 0)
        return -1;
    for (int i = 0; i < t->n_complexes; i++)
        if (strcmp(t->complexes[i].path, rel) == 0)
            return i;
    if (t->n_complexes >= DL_TOPO_MAX_COMPLEXES)
        return -1;
    dl_topo_complex *c = &t->complexes[t->n_complexes];
    memset(c, 0, sizeof *c);
    dl_topo_copy(c->path, sizeof c->path, rel);
    dl_topo_copy(c->name, sizeof c->name, pp->name[idx]);
    dl_topo_parse_host_bridge(pp->name[idx], &c->domain, &c->bus);
    c->numa_node = -1;
    c->package = -1;
    return t->n_complexes++;
}

static dl_topo_port_kind kind_below(const dl_topo *t, int parent)
{
    if (parent < 0)
        return DL_TOPO_PORT_ROOT;
    switch (t->ports[parent].kind) {
    case DL_TOPO_PORT_ROOT:
    case DL_TOPO_PORT_DOWNSTREAM: return DL_TOPO_PORT_UPSTREAM;
    case DL_TOPO_PORT_UPSTREAM: return DL_TOPO_PORT_DOWNSTREAM;
    default: return DL_TOPO_PORT_BRIDGE;
    }
}

static int find_or_add_port(dl_topo *t, const path_parts *pp, int idx, int parent, int complex)
{
    char rel[DL_TOPO_PATH_LEN];
    if (parts_join(pp, idx + 1, rel, sizeof rel) != 0)
        return -1;
    for (int i = 0; i < t->n_ports; i++)
        if (strcmp(t->ports[i].path, rel) == 0)
            return i;
    if (t->n_ports >= DL_TOPO_MAX_PORTS)
        return -1;
    dl_topo_port *p = &t->ports[t->n_ports];
    memset(p, 0, sizeof *p);
    dl_topo_copy(p->path, sizeof p->path, rel);
    dl_topo_copy(p->bdf, sizeof p->bdf, pp->name[idx]);
    p->parent = parent;
    p->complex = complex;
    p->sw = -1;
    p->vendor = read_hex_attr(t->root, rel, "vendor", 0xffff);
    p->device = read_hex_attr(t->root, rel, "device", 0xffff);
    p->class_code = read_hex_attr(t->root, rel, "class", 0xffffff);
    /* A root port's link reaches one device: a switch's upstream port or an
     * endpoint; below an upstream port sit that switch's downstream ports. */
    p->kind = kind_below(t, parent);
    p->kind_src = DL_TOPO_SRC_DERIVED;
    dl_topo_link_read(t->root, rel, &p->link, 0);
    dl_topo_port_config_read(t->root, p);
    return t->n_ports++;
}

static void read_gpu_attrs(dl_topo *t, dl_topo_gpu *g)
{
    char buf[DL_TOPO_CPULIST_LEN];
    long v;
    g->vendor = read_hex_attr(t->root, g->path, "vendor", 0xffff);
    g->device = read_hex_attr(t->root, g->path, "device", 0xffff);
    g->compute = !(g->vendor == 0x1a03 || g->vendor == 0x102b); /* BMC VGA */
    g->numa_node = -1;
    if (dl_topo_read_text(t->root, g->path, "numa_node", buf, sizeof buf) > 0 &&
        dl_topo_parse_int(buf, -1, 4095, &v) == 0) {
        g->numa_node = (int)v;
        g->numa_src = DL_TOPO_SRC_SYSFS;
    }
    if (dl_topo_read_text(t->root, g->path, "local_cpulist", buf, sizeof buf) > 0 &&
        dl_topo_cpulist_count(buf, NULL) > 0) {
        dl_topo_copy(g->cpulist, sizeof g->cpulist, buf);
        g->cpulist_src = DL_TOPO_SRC_SYSFS;
    }
    dl_topo_link_read(t->root, g->path, &g->link, 0);
    dl_topo_gpu_iommu_read(t->root, g);
    g->package = gpu_package(t, g);
}

/* Adds a GPU whose resolved sysfs path is pp; class already known. */
static void add_gpu(dl_topo *t, const char *entry, const path_parts *pp, int class_code)
{
    int hb = -1;
    unsigned d, b, s, f;
    for (int i = 0; i < pp->n; i++)
        if (dl_topo_parse_host_bridge(pp->name[i], &d, &b) == 0)
            hb = i;
    if (hb < 0 || hb == pp->n - 1)
        return skip_entry(t, entry, "display device not below a pciDDDD:BB host bridge");
    for (int i = hb + 1; i < pp->n; i++)
        if (dl_topo_parse_bdf(pp->name[i], &d, &b, &s, &f) != 0)
            return skip_entry(t, entry, "unusual sysfs path below the host bridge");
    if (pp->n - hb - 2 > DL_TOPO_MAX_DEPTH)
        return skip_entry(t, entry, "too many bridges above the device");
    if (t->n_gpus >= DL_TOPO_MAX_GPUS)
        return skip_entry(t, entry, "more GPUs than dltrain tracks");

    dl_topo_gpu *g = &t->gpus[t->n_gpus];
    memset(g, 0, sizeof *g);
    if (parts_join(pp, pp->n, g->path, sizeof g->path) != 0)
        return skip_entry(t, entry, "sysfs path too long");
    g->complex = find_or_add_complex(t, pp, hb);
    if (g->complex < 0)
        return skip_entry(t, entry, "too many root complexes");
    int parent = -1;
    for (int i = hb + 1; i < pp->n - 1; i++) {
        parent = find_or_add_port(t, pp, i, parent, g->complex);
        if (parent < 0)
            return skip_entry(t, entry, "too many bridges");
        g->ports[g->n_ports++] = parent;
    }
    dl_topo_copy(g->bdf, sizeof g->bdf, pp->name[pp->n - 1]);
    g->class_code = class_code;
    read_gpu_attrs(t, g);
    t->n_gpus++;
}

/* Looks at one bus/pci/devices entry. */
static void visit_entry(dl_topo *t, const char *name)
{
    unsigned d, b, s, f;
    if (dl_topo_parse_bdf(name, &d, &b, &s, &f) != 0)
        return skip_entry(t, name, "not a PCI address");
    char link_path[DL_TOPO_FULLPATH_LEN], target[DL_TOPO_PATH_LEN];
    if (dl_topo_join(link_path, sizeof link_path, t->root, "bus/pci/devices", name) != 0)
        return skip_entry(t, name, "path too long");
    ssize_t n = readlink(link_path, target, sizeof target - 1);
    if (n <= 0)
        return skip_entry(t, name, "not a symlink into devices/");
    target[n] = '\0';
    path_parts pp;
    if (resolve_link("bus/pci/devices", target, &pp) != 0 || pp.n < 3 ||
        strcmp(pp.name[0], "devices") != 0 || strcmp(pp.name[pp.n - 1], name) != 0)
        return skip_entry(t, name, "symlink does not point into devices/ under the sysfs root");
    char rel[DL_TOPO_PATH_LEN];
    if (parts_join(&pp, pp.n, rel, sizeof rel) != 0)
        return skip_entry(t, name, "sysfs path too long");
    int class_code = read_hex_attr(t->root, rel, "class", 0xffffff);
    if (class_code < 0)
        return skip_entry(t, name, "class unreadable");
    if ((class_code >> 16) == 0x03) /* display controller: VGA, XGA, 3D, other */
        add_gpu(t, name, &pp, class_code);
}

static int cmp_names(const void *a, const void *b) { return strcmp(a, b); }

/* Lists bus/pci/devices in sorted order so output does not depend on readdir. */
static dl_status scan_bus(dl_topo *t)
{
    char path[DL_TOPO_FULLPATH_LEN];
    if (dl_topo_join(path, sizeof path, t->root, "bus/pci/devices", NULL) != 0)
        return DL_OK;
    DIR *dir = opendir(path);
    if (!dir)
        return DL_OK; /* no PCI visible (container, non-PCI machine): no GPUs */
    t->pci_visible = 1;
    char (*names)[ENTRY_NAME_LEN] = malloc((size_t)DL_TOPO_MAX_ENTRIES * ENTRY_NAME_LEN);
    if (!names) {
        closedir(dir);
        return dl_fail(DL_ERR_OOM, "out of memory listing %s", path);
    }
    int count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        t->n_entries++;
        if (strlen(e->d_name) >= ENTRY_NAME_LEN) {
            skip_entry(t, e->d_name, "name too long");
            continue;
        }
        if (count < DL_TOPO_MAX_ENTRIES)
            strcpy(names[count++], e->d_name);
    }
    closedir(dir);
    qsort(names, (size_t)count, ENTRY_NAME_LEN, cmp_names);
    for (int i = 0; i < count; i++)
        visit_entry(t, names[i]);
    free(names);
    return DL_OK;
}

/* ---- ordering and derived facts ------------------------------------------------ */

static int gpu_rank(const dl_topo_gpu *g)
{
    return g->vendor == 0x10de ? 0 : g->compute ? 1 : 2;
}

static int cmp_gpus(const void *pa, const void *pb)
{
    const dl_topo_gpu *a = pa, *b = pb;
    if (gpu_rank(a) != gpu_rank(b))
        return gpu_rank(a) - gpu_rank(b);
    unsigned ad = 0, ab = 0, as = 0, af = 0, bd = 0, bb = 0, bs = 0, bf = 0;
    dl_topo_parse_bdf(a->bdf, &ad, &ab, &as, &af);
    dl_topo_parse_bdf(b->bdf, &bd, &bb, &bs, &bf);
    unsigned long ka = ((unsigned long)ad << 16) | ab << 8 | as << 3 | af;
    unsigned long kb = ((unsigned long)bd << 16) | bb << 8 | bs << 3 | bf;
    return ka < kb ? -1 : ka > kb;
}

static void derive_switches(dl_topo *t)
{
    t->n_switches = 0;
    for (int i = 0; i < t->n_ports; i++) {
        dl_topo_port *p = &t->ports[i];
        p->sw = -1;
        if (p->kind != DL_TOPO_PORT_UPSTREAM || t->n_switches >= DL_TOPO_MAX_SWITCHES)
            continue;
        dl_topo_switch *s = &t->switches[t->n_switches];
        memset(s, 0, sizeof *s);
        s->upstream = i;
        s->vendor = p->vendor;
        s->device = p->device;
        const char *vn = dl_topo_vendor_name(p->vendor);
        if (vn)
            dl_topo_copy(s->vendor_name, sizeof s->vendor_name, vn);
        else if (p->vendor >= 0)
            snprintf(s->vendor_name, sizeof s->vendor_name, "vendor %04x", (unsigned)p->vendor);
        else
            dl_topo_copy(s->vendor_name, sizeof s->vendor_name, "unknown vendor");
        p->sw = t->n_switches++;
    }
    /* Ports are stored parent first, so a downstream port's parent is final. */
    for (int i = 0; i < t->n_ports; i++) {
        dl_topo_port *p = &t->ports[i];
        if (p->kind == DL_TOPO_PORT_DOWNSTREAM && p->parent >= 0 &&
            t->ports[p->parent].kind == DL_TOPO_PORT_UPSTREAM)
            p->sw = t->ports[p->parent].sw;
    }
    for (int g = 0; g < t->n_gpus; g++)
        for (int k = 0; k < t->gpus[g].n_ports; k++) {
            const dl_topo_port *p = &t->ports[t->gpus[g].ports[k]];
            if (p->kind == DL_TOPO_PORT_UPSTREAM && p->sw >= 0)
                t->switches[p->sw].n_gpus++;
        }
}

static void derive_complexes(dl_topo *t)
{
    for (int c = 0; c < t->n_complexes; c++) {
        dl_topo_complex *cx = &t->complexes[c];
        for (int g = 0; g < t->n_gpus; g++) {
            const dl_topo_gpu *gpu = &t->gpus[g];
            if (gpu->complex != c)
                continue;
            if (cx->numa_node < 0 && gpu->numa_src && gpu->numa_node >= 0)
                cx->numa_node = gpu->numa_node;
            if (cx->package < 0)
                cx->package = gpu->package;
        }
    }
}

/* ---- public ------------------------------------------------------------------- */

void dl_topo_free(dl_topo *t)
{
    if (!t)
        return;
    free(t->gpus);
    free(t->ports);
    free(t->complexes);
    free(t->switches);
    free(t->pairs);
    free(t->warnings);
    memset(t, 0, sizeof *t);
}

static dl_status topo_alloc(dl_topo *t)
{
    t->gpus = calloc(DL_TOPO_MAX_GPUS, sizeof *t->gpus);
    t->ports = calloc(DL_TOPO_MAX_PORTS, sizeof *t->ports);
    t->complexes = calloc(DL_TOPO_MAX_COMPLEXES, sizeof *t->complexes);
    t->switches = calloc(DL_TOPO_MAX_SWITCHES, sizeof *t->switches);
    t->pairs = calloc((size_t)DL_TOPO_MAX_GPUS * DL_TOPO_MAX_GPUS, sizeof *t->pairs);
    t->warnings = calloc(DL_TOPO_MAX_WARNINGS, sizeof *t->warnings);
    if (!t->gpus || !t->ports || !t->complexes || !t->switches || !t->pairs || !t->warnings)
        return dl_fail(DL_ERR_OOM, "out of memory for the topology tables");
    return DL_OK;
}

dl_status dl_topo_discover(const char *sysfs_root, dl_topo *t)
{
    memset(t, 0, sizeof *t);
    if (!sysfs_root || !*sysfs_root)
        sysfs_root = "/sys";
    if (strlen(sysfs_root) >= sizeof t->root)
        return dl_fail(DL_ERR_ARG, "sysfs root path is too long");
    dl_topo_copy(t->root, sizeof t->root, sysfs_root);
    size_t len = strlen(t->root);
    while (len > 1 && t->root[len - 1] == '/')
        t->root[--len] = '\0';
    struct stat st;
    if (stat(t->root, &st) != 0 || !S_ISDIR(st.st_mode))
        return dl_fail(DL_ERR_IO, "sysfs root %s is not a readable directory", t->root);
    dl_status s = topo_alloc(t);
    if (s != DL_OK)
        return s;
    t->iommu_units = t->iommu_groups = -1;
    read_cpu_vendor(t);
    count_packages(t);
    dl_topo_iommu_read(t);
    s = scan_bus(t);
    if (s != DL_OK)
        return s;
    qsort(t->gpus, (size_t)t->n_gpus, sizeof *t->gpus, cmp_gpus);
    for (int g = 0; g < t->n_gpus; g++) {
        t->n_compute += t->gpus[g].compute;
        t->n_nvidia += t->gpus[g].vendor == 0x10de;
    }
    derive_switches(t);
    derive_complexes(t);
    for (int i = 0; i < t->n_gpus * t->n_gpus; i++)
        t->pairs[i].nvml_p2p = -1; /* unknown until NVML says */
    dl_topo_analyze(t, NULL);
    return DL_OK;
}

void dl_topo_refresh_links(dl_topo *t)
{
    for (int g = 0; g < t->n_gpus; g++)
        dl_topo_link_read(t->root, t->gpus[g].path, &t->gpus[g].link, 1);
    for (int p = 0; p < t->n_ports; p++)
        dl_topo_link_read(t->root, t->ports[p].path, &t->ports[p].link, 1);
}
