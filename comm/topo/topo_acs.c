/* topo_acs.c: what config space and the IOMMU say about peer traffic.
 *
 * Access Control Services (ACS, PCIe extended capability 0x000D) on a root
 * or switch downstream port can force peer requests up to the root complex
 * (request redirect, completion redirect, source validation, egress
 * control).  Linux turns these bits on when an IOMMU is active so that the
 * IOMMU sees every transfer; GPU peer traffic then takes the long way, a
 * known cause of slow or hanging all-reduce.  The ACS registers sit at
 * offset >= 0x100, which sysfs only returns to root: an unprivileged read of
 * "config" stops after 64 bytes, and we then report ACS as unknown. */
#define _GNU_SOURCE
#include "topo_internal.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CFG_STATUS 0x06
#define CFG_STATUS_CAP_LIST 0x10
#define CFG_CAP_PTR 0x34
#define CAP_ID_PCIE 0x10
#define EXT_CAP_START 0x100
#define CFG_SPACE_EXP 4096

static unsigned rd16(const unsigned char *p) { return (unsigned)p[0] | (unsigned)p[1] << 8; }

static unsigned long rd32(const unsigned char *p)
{
    return (unsigned long)rd16(p) | (unsigned long)rd16(p + 2) << 16;
}

int dl_topo_pcie_port_type(const unsigned char *cfg, size_t len)
{
    if (!cfg || len < 0x40 || !(cfg[CFG_STATUS] & CFG_STATUS_CAP_LIST))
        return -1;
    unsigned ptr = cfg[CFG_CAP_PTR] & 0xfc;
    /* 48 capabilities fit in 192 bytes; more means the list loops. */
    for (int guard = 0; guard < 48 && ptr >= 0x40; guard++) {
        if (ptr + 4 > len)
            return -1;
        if (cfg[ptr] == CAP_ID_PCIE)
            return (int)((rd16(cfg + ptr + 2) >> 4) & 0xf);
        ptr = cfg[ptr + 1] & 0xfc;
    }
    return -1;
}

void dl_topo_acs_parse(const unsigned char *cfg, size_t len, dl_topo_acs *out)
{
    memset(out, 0, sizeof *out);
    out->state = DL_TOPO_ACS_UNKNOWN;
    if (!cfg || len < EXT_CAP_START) {
        snprintf(out->note, sizeof out->note,
                 "config read gave %zu bytes; ACS (offset >= 0x100) is readable only as root", len);
        return;
    }
    if (len < EXT_CAP_START + 4) {
        out->state = DL_TOPO_ACS_ABSENT; /* 256-byte config space: no extended capabilities */
        return;
    }
    unsigned off = EXT_CAP_START;
    for (int guard = 0; guard < (CFG_SPACE_EXP - EXT_CAP_START) / 4; guard++) {
        if (off + 4 > len) {
            snprintf(out->note, sizeof out->note, "capability list runs past the %zu bytes read", len);
            return;
        }
        unsigned long hdr = rd32(cfg + off);
        if (hdr == 0 || hdr == 0xffffffffUL)
            break;
        if ((hdr & 0xffff) == DL_TOPO_ACS_CAP_ID) {
            if (off + 8 > len) {
                snprintf(out->note, sizeof out->note, "ACS capability cut off at 0x%x", off);
                return;
            }
            out->state = DL_TOPO_ACS_PRESENT;
            out->offset = (int)off;
            out->cap = rd16(cfg + off + 4);
            out->ctrl = rd16(cfg + off + 6);
            return;
        }
        unsigned next = (unsigned)(hdr >> 20) & 0xffc;
        if (next < EXT_CAP_START || next == off)
            break;
        off = next;
    }
    out->state = DL_TOPO_ACS_ABSENT;
}

/* Counts directory entries (not "." or ".."), -1 if unreadable. */
static int count_entries(const char *root, const char *rel)
{
    char path[DL_TOPO_FULLPATH_LEN];
    if (dl_topo_join(path, sizeof path, root, rel, NULL) != 0)
        return -1;
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 100000)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

void dl_topo_iommu_read(dl_topo *t)
{
    t->iommu_units = count_entries(t->root, "class/iommu");
    t->iommu_groups = count_entries(t->root, "kernel/iommu_groups");
}

/* The IOMMU group of a device: its iommu_group link ends in the group number. */
void dl_topo_gpu_iommu_read(const char *root, dl_topo_gpu *g)
{
    g->iommu_group = -1;
    g->iommu_type[0] = '\0';
    char path[DL_TOPO_FULLPATH_LEN], target[DL_TOPO_PATH_LEN];
    if (dl_topo_join(path, sizeof path, root, g->path, "iommu_group") != 0)
        return;
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n <= 0)
        return;
    target[n] = '\0';
    const char *base = strrchr(target, '/');
    base = base ? base + 1 : target;
    long group;
    if (dl_topo_parse_int(base, 0, 1000000, &group) != 0)
        return;
    g->iommu_group = (int)group;
    char rel[64], type[32];
    snprintf(rel, sizeof rel, "kernel/iommu_groups/%ld", group);
    if (dl_topo_read_text(root, rel, "type", type, sizeof type) > 0)
        dl_topo_sanitize(g->iommu_type, sizeof g->iommu_type, type);
}

void dl_topo_port_config_read(const char *root, dl_topo_port *p)
{
    unsigned char *cfg = malloc(CFG_SPACE_EXP);
    if (!cfg) {
        dl_topo_acs_parse(NULL, 0, &p->acs);
        return;
    }
    long n = dl_topo_read_bin(root, p->path, "config", cfg, CFG_SPACE_EXP);
    size_t len = n > 0 ? (size_t)n : 0;
    dl_topo_acs_parse(cfg, len, &p->acs);
    if (n < 0)
        snprintf(p->acs.note, sizeof p->acs.note, "config file unreadable");
    int type = dl_topo_pcie_port_type(cfg, len);
    free(cfg);
    switch (type) {
    case 4: p->kind = DL_TOPO_PORT_ROOT; break;
    case 5: p->kind = DL_TOPO_PORT_UPSTREAM; break;
    case 6: p->kind = DL_TOPO_PORT_DOWNSTREAM; break;
    case 7: case 8: p->kind = DL_TOPO_PORT_BRIDGE; break;
    default: return; /* keep the position-derived kind */
    }
    p->kind_src = DL_TOPO_SRC_CONFIG;
}
