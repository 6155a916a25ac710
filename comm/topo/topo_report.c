/* topo_report.c: the readable report.
 *
 * Order: what was read (summary), how each GPU hangs off the CPU (one tree
 * per root complex), the pair matrix in nvidia-smi's letters, bandwidths,
 * one paragraph per pair (narrowest link, ACS, NCCL's choice), warnings,
 * legend.  docs/topology.md explains how to read it. */
#define _GNU_SOURCE
#include "topo_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *cpu_vendor_text(dl_topo_cpu_vendor v)
{
    switch (v) {
    case DL_TOPO_CPU_INTEL: return "Intel x86";
    case DL_TOPO_CPU_AMD: return "AMD x86";
    case DL_TOPO_CPU_ZHAOXIN: return "Zhaoxin/Centaur x86";
    case DL_TOPO_CPU_X86_OTHER: return "x86 (other vendor)";
    case DL_TOPO_CPU_ARM: return "Arm";
    case DL_TOPO_CPU_OTHER: return "non-x86, non-Arm";
    default: return "unknown";
    }
}

static const char *ids_text(int vendor, int device, char *buf, size_t cap)
{
    const char *vn = dl_topo_vendor_name(vendor);
    char v[12] = "????", d[12] = "????";
    if (vendor >= 0)
        snprintf(v, sizeof v, "%04x", (unsigned)vendor);
    if (device >= 0)
        snprintf(d, sizeof d, "%04x", (unsigned)device);
    snprintf(buf, cap, "%s%s%s:%s", vn ? vn : "", vn ? " " : "", v, d);
    return buf;
}

static const char *numa_text(int node, dl_topo_src src, char *buf, size_t cap)
{
    if (!src)
        snprintf(buf, cap, "unknown");
    else if (node < 0)
        snprintf(buf, cap, "none");
    else
        snprintf(buf, cap, "%d", node);
    return buf;
}

/* "x8 (max x16), 8 GT/s gen3 (max 16 GT/s gen4) = 7.88 GB/s" */
static const char *link_text(const dl_topo_link *l, char *buf, size_t cap)
{
    char w[48], s[96];
    if (l->cur_width)
        snprintf(w, sizeof w, "x%d", l->cur_width);
    else
        snprintf(w, sizeof w, "width unknown (%s)", l->cur_width_raw[0] ? l->cur_width_raw : "unreadable");
    if (l->max_width && l->max_width != l->cur_width) {
        size_t n = strlen(w);
        snprintf(w + n, sizeof w - n, " (max x%d)", l->max_width);
    }
    if (l->cur_gts)
        snprintf(s, sizeof s, "%g GT/s gen%d", l->cur_gts, dl_topo_gen_from_gts(l->cur_gts));
    else
        snprintf(s, sizeof s, "speed unknown (%s)", l->cur_speed_raw[0] ? l->cur_speed_raw : "unreadable");
    if (l->max_gts && l->max_gts != l->cur_gts) {
        size_t n = strlen(s);
        snprintf(s + n, sizeof s - n, " (max %g GT/s gen%d)", l->max_gts, dl_topo_gen_from_gts(l->max_gts));
    }
    double g = dl_topo_link_gbps(l->cur_gts, l->cur_width);
    if (g > 0)
        snprintf(buf, cap, "%s, %s = %.2f GB/s%s", w, s, g, l->woke ? " [under --wake]" : "");
    else
        snprintf(buf, cap, "%s, %s", w, s);
    return buf;
}

static const char *acs_text(const dl_topo_acs *a, char *buf, size_t cap)
{
    char bits[40];
    switch (a->state) {
    case DL_TOPO_ACS_PRESENT:
        if (a->ctrl)
            snprintf(buf, cap, "ACS on: %s", dl_topo_acs_bits_text(a->ctrl, bits, sizeof bits));
        else
            snprintf(buf, cap, "ACS off");
        break;
    case DL_TOPO_ACS_ABSENT: snprintf(buf, cap, "no ACS"); break;
    default: snprintf(buf, cap, "ACS unknown"); break;
    }
    return buf;
}

/* ---- summary ---------------------------------------------------------------- */

static void print_summary(FILE *f, const dl_topo *t)
{
    fprintf(f, "dltrain topo: how each GPU is attached (PCIe, NUMA, NVLink)\n");
    fprintf(f, "  sysfs root : %s\n", t->root);
    fprintf(f, "  CPU        : %s", cpu_vendor_text(t->cpu_vendor));
    if (t->n_packages > 0)
        fprintf(f, ", %d socket%s", t->n_packages, t->n_packages == 1 ? "" : "s");
    fprintf(f, "\n");
    if (t->iommu_units < 0)
        fprintf(f, "  IOMMU      : unknown (class/iommu unreadable)\n");
    else if (t->iommu_units == 0)
        fprintf(f, "  IOMMU      : off (class/iommu is empty)\n");
    else
        fprintf(f, "  IOMMU      : on, %d unit%s, %d groups\n", t->iommu_units,
                t->iommu_units == 1 ? "" : "s", t->iommu_groups);
    if (t->nvml == DL_TOPO_NVML_OK)
        fprintf(f, "  NVML       : %s%s%s\n", t->nvml_note, t->driver_version[0] ? ", driver " : "",
                t->driver_version);
    else
        fprintf(f, "  NVML       : %s\n", t->nvml_note[0] ? t->nvml_note : "not queried");
    fprintf(f, "  NVLink     : %s\n", t->nvml == DL_TOPO_NVML_OK ? "from NVML (see GPUs and matrix)"
                                                               : "unknown (NVML not available)");
    if (t->wake_note[0])
        fprintf(f, "  --wake     : %s\n", t->wake_note);
    const char *why = t->cpu_vendor == DL_TOPO_CPU_UNKNOWN ? "assumed, CPU vendor unknown"
                      : t->nccl_default == DL_TOPO_NCCL_PXB ? "NCCL's default on this CPU"
                                                            : "NCCL's default for two GPUs on AMD: P2P everywhere";
    fprintf(f, "  NCCL       : P2P up to level %s (%s)", dl_topo_nccl_level_name(t->nccl_default), why);
    if (t->nccl_env.p2p_disable)
        fprintf(f, "; NCCL_P2P_DISABLE=1 set");
    if (t->nccl_env.p2p_level_raw[0])
        fprintf(f, "; NCCL_P2P_LEVEL=%s set", t->nccl_env.p2p_level_raw);
    fprintf(f, "\n");
    fprintf(f, "  PCI        : %d entr%s in bus/pci/devices, %d GPU%s (%d NVIDIA), %d display-only\n",
            t->n_entries, t->n_entries == 1 ? "y" : "ies", t->n_compute, t->n_compute == 1 ? "" : "s",
            t->n_nvidia, t->n_gpus - t->n_compute);
}

static void print_gpus(FILE *f, const dl_topo *t)
{
    fprintf(f, "\nGPUs\n");
    for (int i = 0; i < t->n_gpus; i++) {
        const dl_topo_gpu *g = &t->gpus[i];
        char ids[48], numa[16];
        fprintf(f, "  GPU%-2d %s  %s  %s%s\n", i, g->bdf, ids_text(g->vendor, g->device, ids, sizeof ids),
                g->name_src ? g->name : "(name unknown)", g->compute ? "" : "  [display only: BMC]");
        fprintf(f, "        NUMA node %s, CPUs %s, socket ", numa_text(g->numa_node, g->numa_src, numa, sizeof numa),
                g->cpulist_src ? g->cpulist : "unknown");
        if (g->package >= 0)
            fprintf(f, "%d", g->package);
        else
            fprintf(f, "unknown");
        if (g->iommu_group >= 0)
            fprintf(f, ", IOMMU group %d%s%s%s", g->iommu_group, g->iommu_type[0] ? " (" : "",
                    g->iommu_type, g->iommu_type[0] ? ")" : "");
        fprintf(f, "\n");
        if (g->nvml_found)
            fprintf(f, "        driver sees PCIe gen%d x%d (max gen%d x%d), %d active NVLink%s\n",
                    g->nvml_cur_gen, g->nvml_cur_width, g->nvml_max_gen, g->nvml_max_width,
                    g->n_nvlinks, g->n_nvlinks == 1 ? "" : "s");
    }
}

/* ---- tree ------------------------------------------------------------------------ */

typedef struct {
    int is_gpu, idx;
    unsigned long key;
} child;

static unsigned long bdf_key(const char *bdf)
{
    unsigned d = 0, b = 0, s = 0, fn = 0;
    dl_topo_parse_bdf(bdf, &d, &b, &s, &fn);
    return ((unsigned long)d << 16) | b << 8 | s << 3 | fn;
}

static int cmp_child(const void *pa, const void *pb)
{
    const child *a = pa, *b = pb;
    return a->key < b->key ? -1 : a->key > b->key;
}

/* Children of a port (parent >= 0) or of a complex's root bus (parent = -1). */
static int children_of(const dl_topo *t, int complex, int parent, child *out, int cap)
{
    int n = 0;
    for (int p = 0; p < t->n_ports && n < cap; p++)
        if (t->ports[p].parent == parent && t->ports[p].complex == complex)
            out[n++] = (child){0, p, bdf_key(t->ports[p].bdf)};
    for (int g = 0; g < t->n_gpus && n < cap; g++) {
        const dl_topo_gpu *gpu = &t->gpus[g];
        int up = gpu->n_ports ? gpu->ports[gpu->n_ports - 1] : -1;
        if (gpu->complex == complex && up == parent)
            out[n++] = (child){1, g, bdf_key(gpu->bdf)};
    }
    qsort(out, (size_t)n, sizeof *out, cmp_child);
    return n;
}

static void print_port_line(FILE *f, const dl_topo *t, int p, int depth)
{
    const dl_topo_port *port = &t->ports[p];
    char ids[48], link[160], acs[48], kind[64];
    if (port->sw >= 0)
        snprintf(kind, sizeof kind, "%s (switch %d, %s)", dl_topo_port_kind_name(port->kind), port->sw,
                 t->switches[port->sw].vendor_name);
    else
        snprintf(kind, sizeof kind, "%s", dl_topo_port_kind_name(port->kind));
    fprintf(f, "%*s%s  %s  %s\n", 2 + 2 * depth, "", port->bdf, kind, ids_text(port->vendor, port->device, ids, sizeof ids));
    fprintf(f, "%*s  link %s", 2 + 2 * depth, "", link_text(&port->link, link, sizeof link));
    if (port->kind == DL_TOPO_PORT_ROOT || port->kind == DL_TOPO_PORT_DOWNSTREAM)
        fprintf(f, "; %s", acs_text(&port->acs, acs, sizeof acs));
    fprintf(f, "\n");
}

static void print_subtree(FILE *f, const dl_topo *t, int complex, int parent, int depth)
{
    child kids[DL_TOPO_MAX_PORTS + DL_TOPO_MAX_GPUS];
    int n = children_of(t, complex, parent, kids, (int)DL_ARRAY_LEN(kids));
    for (int i = 0; i < n; i++) {
        if (kids[i].is_gpu) {
            const dl_topo_gpu *g = &t->gpus[kids[i].idx];
            char link[160];
            fprintf(f, "%*s%s  GPU%d\n", 2 + 2 * depth, "", g->bdf, kids[i].idx);
            if (!g->link.cur_speed_raw[0] && !g->link.cur_width_raw[0])
                fprintf(f, "%*s  no PCIe link attributes in sysfs (integrated, conventional PCI or virtual device)\n",
                        2 + 2 * depth, "");
            else
                fprintf(f, "%*s  link %s\n", 2 + 2 * depth, "", link_text(&g->link, link, sizeof link));
        } else if (depth < DL_TOPO_MAX_DEPTH) {
            print_port_line(f, t, kids[i].idx, depth);
            print_subtree(f, t, complex, kids[i].idx, depth + 1);
        }
    }
}

static void print_tree(FILE *f, const dl_topo *t)
{
    fprintf(f, "\nPCIe tree (one per root complex; only the paths to GPUs)\n");
    for (int c = 0; c < t->n_complexes; c++) {
        const dl_topo_complex *cx = &t->complexes[c];
        fprintf(f, "%s  root complex, domain %04x, root bus %02x, NUMA node ", cx->name, cx->domain, cx->bus);
        if (cx->numa_node >= 0)
            fprintf(f, "%d", cx->numa_node);
        else
            fprintf(f, "none");
        if (cx->package >= 0)
            fprintf(f, ", socket %d", cx->package);
        fprintf(f, "\n");
        print_subtree(f, t, c, -1, 0);
    }
}

/* ---- matrix and pairs --------------------------------------------------------------- */

void dl_topo_report_matrix(FILE *f, const dl_topo *t)
{
    int n = t->n_compute;
    char cell[16], numa[16];
    fprintf(f, "\nMatrix (nvidia-smi topo -m letters)\n      ");
    for (int b = 0; b < n; b++)
        fprintf(f, " GPU%-3d", b);
    fprintf(f, " CPU affinity     NUMA\n");
    for (int a = 0; a < n; a++) {
        fprintf(f, "GPU%-3d", a);
        for (int b = 0; b < n; b++) {
            const dl_topo_pair *p = dl_topo_pair_get(t, a, b);
            fprintf(f, " %-6s", dl_topo_rel_cell(p->rel, p->nvlinks, cell, sizeof cell));
        }
        const dl_topo_gpu *g = &t->gpus[a];
        fprintf(f, " %-16s %s\n", g->cpulist_src ? g->cpulist : "unknown",
                numa_text(g->numa_node, g->numa_src, numa, sizeof numa));
    }
    fprintf(f, "\nBandwidth between GPUs, GB/s per direction (theoretical; narrowest link on the path)\n      ");
    for (int b = 0; b < n; b++)
        fprintf(f, "  GPU%-3d", b);
    fprintf(f, "\n");
    for (int a = 0; a < n; a++) {
        fprintf(f, "GPU%-3d", a);
        for (int b = 0; b < n; b++) {
            const dl_topo_pair *p = dl_topo_pair_get(t, a, b);
            if (a == b)
                fprintf(f, " %7s", "-");
            else if (p->gbps <= 0)
                fprintf(f, " %7s", "?");
            else {
                int slow = p->rel != DL_TOPO_REL_NV && p->pcie_gbps_now > 0 &&
                           p->pcie_gbps_now < p->pcie_gbps - 1e-9;
                fprintf(f, " %6.2f%c", p->gbps, slow ? '*' : ' ');
            }
        }
        fprintf(f, "\n");
    }
}

static void bottleneck_text(const dl_topo *t, const dl_topo_pair *p, char *buf, size_t cap)
{
    char who[64];
    if (p->bottleneck.gpu >= 0)
        snprintf(who, sizeof who, "GPU%d's link", p->bottleneck.gpu);
    else if (p->bottleneck.port >= 0)
        snprintf(who, sizeof who, "the uplink of %s", t->ports[p->bottleneck.port].bdf);
    else {
        snprintf(buf, cap, "narrowest PCIe link unknown");
        return;
    }
    snprintf(buf, cap, "narrowest PCIe link: %s, x%d at %g GT/s gen%d = %.2f GB/s", who,
             p->bottleneck_width, p->bottleneck_gts, dl_topo_gen_from_gts(p->bottleneck_gts), p->pcie_gbps);
    if (p->pcie_gbps_now > 0 && p->pcie_gbps_now < p->pcie_gbps - 1e-9) {
        size_t n = strlen(buf);
        snprintf(buf + n, cap - n, " (%.2f GB/s at today's link speeds)", p->pcie_gbps_now);
    }
}

static void print_pair_acs(FILE *f, const dl_topo *t, const dl_topo_pair *p)
{
    char bits[40];
    if (p->rel == DL_TOPO_REL_NV)
        fprintf(f, "      ACS: not in play (peer traffic takes NVLink, not PCIe)\n");
    else if (p->rel != DL_TOPO_REL_PIX && p->rel != DL_TOPO_REL_PXB)
        fprintf(f, "      ACS: not in play (the path goes through the CPU's root complex anyway)\n");
    else if (p->acs_port >= 0)
        fprintf(f, "      ACS: %s on %s: peer traffic is redirected up to the root complex\n",
                dl_topo_acs_bits_text(t->ports[p->acs_port].acs.ctrl & DL_TOPO_ACS_P2P_BITS, bits, sizeof bits),
                t->ports[p->acs_port].bdf);
    else if (p->acs_unknown)
        fprintf(f, "      ACS: unknown on some bridge crossed (needs root to read)\n");
    else
        fprintf(f, "      ACS: off on the bridges crossed: peer traffic goes straight across\n");
}

static void print_pair_nccl(FILE *f, const dl_topo *t, const dl_topo_pair *p)
{
    const char *path = dl_topo_nccl_level_name(p->nccl_path);
    if (p->nccl_p2p) {
        fprintf(f, "      NCCL: P2P over %s (path %s is within P2P level %s)%s\n",
                p->rel == DL_TOPO_REL_NV ? "NVLink" : "PCIe", path,
                dl_topo_nccl_level_name(t->nccl_env.p2p_level >= 0 ? (dl_topo_nccl_level)t->nccl_env.p2p_level
                                                                   : t->nccl_default),
                p->acs_port >= 0 ? "; ACS sends it through the root complex" : "");
    } else if (p->nvml_p2p == 0) {
        fprintf(f, "      NCCL: SHM through host memory (NVML reports peer access unsupported for this pair)\n");
    } else if (t->nccl_env.p2p_disable) {
        fprintf(f, "      NCCL: SHM through host memory (NCCL_P2P_DISABLE=1)\n");
    } else {
        fprintf(f, "      NCCL: SHM through host memory (NCCL's path type %s is beyond P2P level %s; "
                   "NCCL_P2P_LEVEL=%s would allow P2P)\n",
                path, dl_topo_nccl_level_name(t->nccl_env.p2p_level >= 0 ? (dl_topo_nccl_level)t->nccl_env.p2p_level
                                                                         : t->nccl_default),
                path);
    }
}

static void print_pairs(FILE *f, const dl_topo *t)
{
    if (t->n_compute < 2)
        return;
    fprintf(f, "\nPairs\n");
    for (int a = 0; a < t->n_compute; a++)
        for (int b = a + 1; b < t->n_compute; b++) {
            const dl_topo_pair *p = dl_topo_pair_get(t, a, b);
            char cell[16], bn[200];
            fprintf(f, "  GPU%d-GPU%d  %-4s ", a, b, dl_topo_rel_cell(p->rel, p->nvlinks, cell, sizeof cell));
            if (p->gbps > 0)
                fprintf(f, "%.2f GB/s per direction", p->gbps);
            else
                fprintf(f, "bandwidth unknown");
            fprintf(f, ", %d PCIe switch%s crossed", p->n_switches, p->n_switches == 1 ? "" : "es");
            if (p->rel != p->pcie_rel)
                fprintf(f, " (%s over PCIe)", dl_topo_rel_name(p->pcie_rel));
            fprintf(f, "\n");
            if (p->rel == DL_TOPO_REL_NV)
                fprintf(f, "      NVLink: %d link%s = %.2f GB/s per direction\n", p->nvlinks,
                        p->nvlinks == 1 ? "" : "s", p->nvlink_gbps);
            bottleneck_text(t, p, bn, sizeof bn);
            fprintf(f, "      %s\n", bn);
            print_pair_acs(f, t, p);
            print_pair_nccl(f, t, p);
        }
}

static void print_warnings(FILE *f, const dl_topo *t)
{
    if (!t->n_warnings)
        return;
    fprintf(f, "\nWarnings\n");
    for (int i = 0; i < t->n_warnings; i++)
        fprintf(f, "  - %s\n", t->warnings[i].text);
}

static void print_legend(FILE *f)
{
    fprintf(f, "\nLegend\n"
               "  X    = self\n"
               "  NV#  = a bonded set of # NVLinks\n"
               "  PIX  = at most one PCIe switch (or bridge) between the GPUs\n"
               "  PXB  = several PCIe switches, no host bridge\n"
               "  PHB  = through a PCIe host bridge (the CPU's root complex)\n"
               "  NODE = between PCIe host bridges of one NUMA node\n"
               "  SYS  = across the SMP interconnect between NUMA nodes (UPI, Infinity Fabric)\n"
               "  GB/s = lanes x GT/s x encoding (8b/10b gen1-2, 128b/130b gen3-5) / 8, per direction;\n"
               "         * = the link runs slower right now (idle power saving?)\n");
}

void dl_topo_report(FILE *f, const dl_topo *t)
{
    print_summary(f, t);
    if (t->n_gpus == 0) {
        if (!t->pci_visible)
            fprintf(f, "\nNo GPU found: %s/bus/pci/devices cannot be listed (no PCI bus visible here)\n", t->root);
        else
            fprintf(f, "\nNo GPU found: none of the %d PCI devices is a display controller (class 0x03xxxx)\n",
                    t->n_entries);
        print_warnings(f, t);
        return;
    }
    print_gpus(f, t);
    print_tree(f, t);
    if (t->n_compute > 0)
        dl_topo_report_matrix(f, t);
    print_pairs(f, t);
    print_warnings(f, t);
    print_legend(f);
}
