/* topo_json.c: every fact as JSON, each with where it came from.
 *
 * A fact is {"value": v, "source": s}.  Sources are "sysfs:<path>" (relative
 * to sysfs_root), "config:<path>/config", "nvml:<function>", "pci.ids",
 * "derived:<how>", or null when the fact could not be read (value null or
 * "unknown").  Schema name: dltrain.topo/1. */
#define _GNU_SOURCE
#include "topo_internal.h"

#include <string.h>

typedef struct {
    FILE *f;
    int depth;
    int need_comma[32];
} json_w;

static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* Starts a member ("key": ) or an array element, with comma and indent. */
static void member(json_w *w, const char *key)
{
    if (w->need_comma[w->depth])
        fputc(',', w->f);
    w->need_comma[w->depth] = 1;
    fprintf(w->f, "\n%*s", 2 * w->depth, "");
    if (key) {
        jstr(w->f, key);
        fputs(": ", w->f);
    }
}

static void open_(json_w *w, const char *key, char c)
{
    member(w, key);
    fputc(c, w->f);
    if (w->depth < 31)
        w->depth++;
    w->need_comma[w->depth] = 0;
}

static void close_(json_w *w, char c)
{
    int had = w->need_comma[w->depth];
    w->depth--;
    if (had)
        fprintf(w->f, "\n%*s", 2 * w->depth, "");
    fputc(c, w->f);
}

#define OBJ(w, key) open_(w, key, '{')
#define END_OBJ(w) close_(w, '}')
#define ARR(w, key) open_(w, key, '[')
#define END_ARR(w) close_(w, ']')

static void kv_str(json_w *w, const char *key, const char *v)
{
    member(w, key);
    if (v)
        jstr(w->f, v);
    else
        fputs("null", w->f);
}

static void kv_int(json_w *w, const char *key, long v)
{
    member(w, key);
    fprintf(w->f, "%ld", v);
}

/* Non-negative index or null. */
static void kv_idx(json_w *w, const char *key, int v)
{
    member(w, key);
    if (v >= 0)
        fprintf(w->f, "%d", v);
    else
        fputs("null", w->f);
}

static void kv_num(json_w *w, const char *key, double v, int known)
{
    member(w, key);
    if (known)
        fprintf(w->f, "%.6g", v);
    else
        fputs("null", w->f);
}

static void kv_bool(json_w *w, const char *key, int v)
{
    member(w, key);
    fputs(v ? "true" : "false", w->f);
}

/* "sysfs:<rel>/<attr>" into buf. */
static const char *src_sysfs(char *buf, size_t cap, const char *rel, const char *attr)
{
    if (rel && *rel)
        snprintf(buf, cap, "sysfs:%s/%s", rel, attr);
    else
        snprintf(buf, cap, "sysfs:%s", attr);
    return buf;
}

static void fact_hex(json_w *w, const char *key, int v, int digits, const char *rel, const char *attr)
{
    char val[16], src[DL_TOPO_PATH_LEN + 64];
    OBJ(w, key);
    if (v >= 0) {
        snprintf(val, sizeof val, "0x%0*x", digits, (unsigned)v);
        kv_str(w, "value", val);
        kv_str(w, "source", src_sysfs(src, sizeof src, rel, attr));
    } else {
        kv_str(w, "value", "unknown");
        kv_str(w, "source", NULL);
    }
    END_OBJ(w);
}

static void fact_speed(json_w *w, const char *key, double gts, const char *raw, const char *rel,
                       const char *attr)
{
    char src[DL_TOPO_PATH_LEN + 64];
    OBJ(w, key);
    kv_num(w, "gts", gts, gts > 0);
    kv_idx(w, "gen", gts > 0 ? dl_topo_gen_from_gts(gts) : -1);
    kv_str(w, "raw", raw[0] ? raw : NULL);
    kv_str(w, "source", raw[0] ? src_sysfs(src, sizeof src, rel, attr) : NULL);
    END_OBJ(w);
}

static void fact_width(json_w *w, const char *key, int width, const char *raw, const char *rel,
                       const char *attr)
{
    char src[DL_TOPO_PATH_LEN + 64];
    OBJ(w, key);
    kv_idx(w, "lanes", width > 0 ? width : -1);
    kv_str(w, "raw", raw[0] ? raw : NULL);
    kv_str(w, "source", raw[0] ? src_sysfs(src, sizeof src, rel, attr) : NULL);
    END_OBJ(w);
}

static void write_link(json_w *w, const dl_topo_link *l, const char *rel)
{
    OBJ(w, "link");
    fact_speed(w, "current_speed", l->cur_gts, l->cur_speed_raw, rel, "current_link_speed");
    fact_speed(w, "max_speed", l->max_gts, l->max_speed_raw, rel, "max_link_speed");
    fact_width(w, "current_width", l->cur_width, l->cur_width_raw, rel, "current_link_width");
    fact_width(w, "max_width", l->max_width, l->max_width_raw, rel, "max_link_width");
    double now = dl_topo_link_gbps(l->cur_gts, l->cur_width);
    kv_num(w, "gbps_now", now, now > 0);
    kv_bool(w, "read_under_wake", l->woke);
    END_OBJ(w);
}

static const char *cpu_vendor_name(dl_topo_cpu_vendor v)
{
    static const char *const n[] = {"unknown", "intel", "amd", "zhaoxin", "x86-other", "arm", "other"};
    return (unsigned)v < DL_ARRAY_LEN(n) ? n[v] : "unknown";
}

static void write_machine(json_w *w, const dl_topo *t)
{
    kv_str(w, "schema", "dltrain.topo/1");
    kv_str(w, "sysfs_root", t->root);
    OBJ(w, "cpu");
    OBJ(w, "vendor");
    kv_str(w, "value", cpu_vendor_name(t->cpu_vendor));
    kv_str(w, "modalias", t->cpu_modalias[0] ? t->cpu_modalias : NULL);
    kv_str(w, "source", t->cpu_modalias[0] ? "sysfs:devices/system/cpu/modalias" : NULL);
    END_OBJ(w);
    OBJ(w, "sockets");
    kv_idx(w, "value", t->n_packages > 0 ? t->n_packages : -1);
    kv_str(w, "source", t->n_packages > 0 ? "sysfs:devices/system/cpu/cpu*/topology/physical_package_id" : NULL);
    END_OBJ(w);
    END_OBJ(w);
    OBJ(w, "iommu");
    OBJ(w, "units");
    kv_idx(w, "value", t->iommu_units);
    kv_str(w, "source", t->iommu_units >= 0 ? "sysfs:class/iommu" : NULL);
    END_OBJ(w);
    OBJ(w, "groups");
    kv_idx(w, "value", t->iommu_groups);
    kv_str(w, "source", t->iommu_groups >= 0 ? "sysfs:kernel/iommu_groups" : NULL);
    END_OBJ(w);
    END_OBJ(w);
    static const char *const nvml_states[] = {"not_queried", "unavailable", "ok"};
    OBJ(w, "nvml");
    kv_str(w, "state", nvml_states[t->nvml]);
    kv_str(w, "note", t->nvml_note[0] ? t->nvml_note : NULL);
    kv_str(w, "driver_version", t->driver_version[0] ? t->driver_version : NULL);
    kv_str(w, "nvlink", t->nvml == DL_TOPO_NVML_OK ? "known" : "unknown (NVML not available)");
    END_OBJ(w);
    OBJ(w, "wake");
    kv_bool(w, "done", t->woke);
    kv_str(w, "note", t->wake_note[0] ? t->wake_note : NULL);
    END_OBJ(w);
    OBJ(w, "pci");
    kv_bool(w, "visible", t->pci_visible);
    kv_str(w, "source", "sysfs:bus/pci/devices");
    kv_int(w, "entries", t->n_entries);
    kv_int(w, "skipped", t->n_skipped);
    kv_str(w, "skipped_note", t->skipped_note[0] ? t->skipped_note : NULL);
    END_OBJ(w);
    OBJ(w, "nccl");
    kv_str(w, "default_p2p_level", dl_topo_nccl_level_name(t->nccl_default));
    kv_str(w, "default_source", "derived:NCCL's rule for this CPU vendor");
    kv_str(w, "NCCL_P2P_LEVEL", t->nccl_env.p2p_level_raw[0] ? t->nccl_env.p2p_level_raw : NULL);
    kv_bool(w, "NCCL_P2P_DISABLE", t->nccl_env.p2p_disable);
    END_OBJ(w);
}

static void write_complexes(json_w *w, const dl_topo *t)
{
    ARR(w, "complexes");
    for (int c = 0; c < t->n_complexes; c++) {
        const dl_topo_complex *cx = &t->complexes[c];
        char dom[16], bus[8];
        snprintf(dom, sizeof dom, "%04x", cx->domain);
        snprintf(bus, sizeof bus, "%02x", cx->bus);
        OBJ(w, NULL);
        kv_int(w, "index", c);
        kv_str(w, "name", cx->name);
        kv_str(w, "path", cx->path);
        kv_str(w, "domain", dom);
        kv_str(w, "root_bus", bus);
        kv_str(w, "source", "derived:host bridge directory in the device path");
        kv_int(w, "numa_node", cx->numa_node);
        kv_idx(w, "socket", cx->package);
        END_OBJ(w);
    }
    END_ARR(w);
}

static void write_acs(json_w *w, const dl_topo_port *p)
{
    static const char *const states[] = {"unknown", "absent", "present"};
    char buf[48], src[DL_TOPO_PATH_LEN + 16];
    OBJ(w, "acs");
    kv_str(w, "state", states[p->acs.state]);
    if (p->acs.state == DL_TOPO_ACS_PRESENT) {
        snprintf(buf, sizeof buf, "0x%04x", p->acs.ctrl);
        kv_str(w, "control", buf);
        snprintf(buf, sizeof buf, "0x%04x", p->acs.cap);
        kv_str(w, "capability", buf);
        snprintf(buf, sizeof buf, "0x%03x", (unsigned)p->acs.offset);
        kv_str(w, "offset", buf);
        kv_str(w, "bits", dl_topo_acs_bits_text(p->acs.ctrl, buf, sizeof buf));
        kv_bool(w, "blocks_direct_p2p", (p->acs.ctrl & DL_TOPO_ACS_P2P_BITS) != 0);
    }
    snprintf(src, sizeof src, "config:%s/config", p->path);
    kv_str(w, "source", p->acs.state == DL_TOPO_ACS_UNKNOWN && !p->acs.note[0] ? NULL : src);
    kv_str(w, "note", p->acs.note[0] ? p->acs.note : NULL);
    END_OBJ(w);
}

static void write_ports(json_w *w, const dl_topo *t)
{
    static const char *const kinds[] = {"root_port", "switch_upstream", "switch_downstream", "bridge"};
    char src[DL_TOPO_PATH_LEN + 16];
    ARR(w, "ports");
    for (int i = 0; i < t->n_ports; i++) {
        const dl_topo_port *p = &t->ports[i];
        OBJ(w, NULL);
        kv_int(w, "index", i);
        kv_str(w, "bdf", p->bdf);
        kv_str(w, "path", p->path);
        kv_idx(w, "parent", p->parent);
        kv_int(w, "complex", p->complex);
        OBJ(w, "kind");
        kv_str(w, "value", kinds[p->kind]);
        snprintf(src, sizeof src, "config:%s/config", p->path);
        kv_str(w, "source", p->kind_src == DL_TOPO_SRC_CONFIG ? src : "derived:position in the tree");
        END_OBJ(w);
        fact_hex(w, "vendor", p->vendor, 4, p->path, "vendor");
        fact_hex(w, "device", p->device, 4, p->path, "device");
        fact_hex(w, "class", p->class_code, 6, p->path, "class");
        kv_idx(w, "switch", p->sw);
        write_link(w, &p->link, p->path);
        write_acs(w, p);
        END_OBJ(w);
    }
    END_ARR(w);
    ARR(w, "switches");
    for (int s = 0; s < t->n_switches; s++) {
        const dl_topo_switch *sw = &t->switches[s];
        OBJ(w, NULL);
        kv_int(w, "index", s);
        kv_int(w, "upstream_port", sw->upstream);
        kv_str(w, "vendor_name", sw->vendor_name);
        fact_hex(w, "vendor", sw->vendor, 4, t->ports[sw->upstream].path, "vendor");
        fact_hex(w, "device", sw->device, 4, t->ports[sw->upstream].path, "device");
        kv_int(w, "gpus_below", sw->n_gpus);
        END_OBJ(w);
    }
    END_ARR(w);
}

static void fact_nvml_uint(json_w *w, const char *key, int v, const char *fn)
{
    char src[64];
    snprintf(src, sizeof src, "nvml:%s", fn);
    OBJ(w, key);
    kv_idx(w, "value", v > 0 ? v : -1);
    kv_str(w, "source", v > 0 ? src : NULL);
    END_OBJ(w);
}

static void write_gpu_nvml(json_w *w, const dl_topo *t, const dl_topo_gpu *g)
{
    OBJ(w, "nvml");
    kv_bool(w, "found", g->nvml_found);
    fact_nvml_uint(w, "pcie_current_gen", g->nvml_cur_gen, "nvmlDeviceGetCurrPcieLinkGeneration");
    fact_nvml_uint(w, "pcie_current_width", g->nvml_cur_width, "nvmlDeviceGetCurrPcieLinkWidth");
    fact_nvml_uint(w, "pcie_max_gen", g->nvml_max_gen, "nvmlDeviceGetMaxPcieLinkGeneration");
    fact_nvml_uint(w, "pcie_max_width", g->nvml_max_width, "nvmlDeviceGetMaxPcieLinkWidth");
    if (t->nvml != DL_TOPO_NVML_OK || !g->nvml_found) {
        kv_str(w, "nvlinks", t->nvml != DL_TOPO_NVML_OK ? "unknown (NVML not available)"
                                                        : "unknown (NVML does not know this GPU)");
    } else {
        ARR(w, "nvlinks");
        for (int i = 0; i < g->n_nvlinks; i++) {
            const dl_topo_nvlink *nl = &g->nvlinks[i];
            OBJ(w, NULL);
            kv_int(w, "link", nl->link);
            kv_idx(w, "version", nl->version > 0 ? nl->version : -1);
            kv_str(w, "version_name", dl_topo_nvlink_version_name(nl->version));
            kv_str(w, "remote_pci", nl->remote_bdf[0] ? nl->remote_bdf : NULL);
            kv_idx(w, "remote_gpu", nl->remote_gpu);
            kv_bool(w, "remote_is_nvswitch", nl->remote_is_switch);
            kv_num(w, "gbps_per_direction", dl_topo_nvlink_gbps(nl->version), nl->version > 0);
            kv_str(w, "source", "nvml:nvmlDeviceGetNvLinkState/Version/RemotePciInfo_v2");
            END_OBJ(w);
        }
        END_ARR(w);
    }
    END_OBJ(w);
}

static void write_gpu(json_w *w, const dl_topo *t, int i)
{
    const dl_topo_gpu *g = &t->gpus[i];
    char src[DL_TOPO_PATH_LEN + 64];
    OBJ(w, NULL);
    kv_int(w, "index", i);
    kv_str(w, "bdf", g->bdf);
    kv_str(w, "path", g->path);
    fact_hex(w, "vendor", g->vendor, 4, g->path, "vendor");
    fact_hex(w, "device", g->device, 4, g->path, "device");
    fact_hex(w, "class", g->class_code, 6, g->path, "class");
    OBJ(w, "name");
    kv_str(w, "value", g->name_src ? g->name : "unknown");
    kv_str(w, "source", g->name_src == DL_TOPO_SRC_NVML ? "nvml:nvmlDeviceGetName"
                        : g->name_src == DL_TOPO_SRC_PCIIDS ? "pci.ids" : NULL);
    END_OBJ(w);
    kv_bool(w, "compute", g->compute);
    OBJ(w, "numa_node");
    kv_int(w, "value", g->numa_node);
    kv_bool(w, "known", g->numa_src != DL_TOPO_SRC_NONE);
    kv_str(w, "source", g->numa_src ? src_sysfs(src, sizeof src, g->path, "numa_node") : NULL);
    END_OBJ(w);
    OBJ(w, "local_cpulist");
    kv_str(w, "value", g->cpulist_src ? g->cpulist : "unknown");
    kv_str(w, "source", g->cpulist_src ? src_sysfs(src, sizeof src, g->path, "local_cpulist") : NULL);
    END_OBJ(w);
    OBJ(w, "socket");
    kv_idx(w, "value", g->package);
    kv_str(w, "source", g->package >= 0 ? "sysfs:devices/system/cpu/cpuN/topology/physical_package_id (first local CPU)" : NULL);
    END_OBJ(w);
    kv_int(w, "complex", g->complex);
    ARR(w, "path_ports");
    for (int k = 0; k < g->n_ports; k++)
        kv_int(w, NULL, g->ports[k]);
    END_ARR(w);
    write_link(w, &g->link, g->path);
    OBJ(w, "iommu_group");
    kv_idx(w, "value", g->iommu_group);
    kv_str(w, "type", g->iommu_type[0] ? g->iommu_type : NULL);
    kv_str(w, "source", g->iommu_group >= 0 ? src_sysfs(src, sizeof src, g->path, "iommu_group") : NULL);
    END_OBJ(w);
    write_gpu_nvml(w, t, g);
    END_OBJ(w);
}

static void write_pair(json_w *w, const dl_topo *t, int a, int b)
{
    const dl_topo_pair *p = dl_topo_pair_get(t, a, b);
    char buf[48];
    OBJ(w, NULL);
    kv_int(w, "a", a);
    kv_int(w, "b", b);
    kv_str(w, "relationship", dl_topo_rel_cell(p->rel, p->nvlinks, buf, sizeof buf));
    kv_str(w, "pcie_relationship", dl_topo_rel_cell(p->pcie_rel, 0, buf, sizeof buf));
    kv_str(w, "source", "derived:the two PCIe paths (deepest shared bridge) and NVML's NVLinks");
    kv_int(w, "nvlinks", p->nvlinks);
    kv_num(w, "gbps", p->gbps, p->gbps > 0);
    kv_num(w, "pcie_gbps", p->pcie_gbps, p->pcie_gbps > 0);
    kv_num(w, "pcie_gbps_now", p->pcie_gbps_now, p->pcie_gbps_now > 0);
    kv_num(w, "nvlink_gbps", p->nvlink_gbps, p->nvlink_gbps > 0);
    OBJ(w, "bottleneck");
    kv_idx(w, "gpu", p->bottleneck.gpu);
    kv_idx(w, "port", p->bottleneck.port);
    kv_idx(w, "width", p->bottleneck_width > 0 ? p->bottleneck_width : -1);
    kv_num(w, "gts", p->bottleneck_gts, p->bottleneck_gts > 0);
    END_OBJ(w);
    kv_int(w, "switches", p->n_switches);
    kv_idx(w, "common_port", p->common_port);
    OBJ(w, "acs");
    snprintf(buf, sizeof buf, "0x%04x", p->acs_ctrl);
    kv_str(w, "control_or", buf);
    kv_idx(w, "redirecting_port", p->acs_port);
    kv_bool(w, "unknown_on_path", p->acs_unknown);
    END_OBJ(w);
    OBJ(w, "nccl");
    kv_str(w, "path", dl_topo_nccl_level_name(p->nccl_path));
    kv_bool(w, "p2p", p->nccl_p2p);
    kv_str(w, "transport", p->nccl_p2p ? (p->rel == DL_TOPO_REL_NV ? "P2P/NVLink" : "P2P/PCIe") : "SHM");
    END_OBJ(w);
    OBJ(w, "nvml_p2p");
    member(w, "value");
    fputs(p->nvml_p2p < 0 ? "null" : p->nvml_p2p ? "true" : "false", w->f);
    kv_str(w, "source", p->nvml_p2p < 0 ? NULL : "nvml:nvmlDeviceGetP2PStatus");
    END_OBJ(w);
    END_OBJ(w);
}

void dl_topo_json(FILE *f, const dl_topo *t)
{
    static const char *const kinds[] = {"width", "speed", "sockets", "complexes", "lanes",
                                        "acs", "iommu", "numa", "unreadable"};
    json_w w = {.f = f, .depth = 1};
    fputc('{', f);
    write_machine(&w, t);
    write_complexes(&w, t);
    write_ports(&w, t);
    ARR(&w, "gpus");
    for (int g = 0; g < t->n_gpus; g++)
        write_gpu(&w, t, g);
    END_ARR(&w);
    ARR(&w, "pairs");
    for (int a = 0; a < t->n_gpus; a++)
        for (int b = a + 1; b < t->n_gpus; b++)
            write_pair(&w, t, a, b);
    END_ARR(&w);
    ARR(&w, "warnings");
    for (int i = 0; i < t->n_warnings; i++) {
        OBJ(&w, NULL);
        kv_str(&w, "kind", kinds[t->warnings[i].kind]);
        kv_idx(&w, "gpu", t->warnings[i].gpu);
        kv_str(&w, "text", t->warnings[i].text);
        END_OBJ(&w);
    }
    END_ARR(&w);
    fputs("\n}\n", f);
}
