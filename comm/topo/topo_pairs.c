/* topo_pairs.c: what the tree means for traffic between two GPUs.
 *
 * Relationship (nvidia-smi topo -m vocabulary), from the deepest bridge two
 * GPUs share:
 *   NV#  they share # NVLinks (from NVML)
 *   PIX  the shared bridge is inside one PCIe switch (or a single bridge)
 *   PXB  the path crosses several switches but no host bridge
 *   PHB  different root ports of one root complex: through the host bridge
 *   NODE different root complexes on one NUMA node
 *   SYS  different NUMA nodes: across the CPU interconnect (UPI, xGMI)
 * Bandwidth is the narrowest PCIe link on the path, each link at the best
 * speed both its ends support and the width it trained at (lanes do not
 * change when a GPU idles; the speed does). */
#define _GNU_SOURCE
#include "topo_internal.h"

#include <stdlib.h>
#include <string.h>


const char *dl_topo_rel_name(dl_topo_rel rel)
{
    static const char *const names[] = {"unknown", "X", "NV", "PIX", "PXB", "PHB", "NODE", "SYS"};
    return (unsigned)rel < DL_ARRAY_LEN(names) ? names[rel] : "unknown";
}

const char *dl_topo_rel_cell(dl_topo_rel rel, int nvlinks, char *buf, size_t cap)
{
    if (rel == DL_TOPO_REL_NV)
        snprintf(buf, cap, "NV%d", nvlinks);
    else
        snprintf(buf, cap, "%s", rel == DL_TOPO_REL_UNKNOWN ? "?" : dl_topo_rel_name(rel));
    return buf;
}

const char *dl_topo_nccl_level_name(dl_topo_nccl_level level)
{
    static const char *const names[] = {"LOC", "NVL", "PIX", "PXB", "PHB", "SYS"};
    return (unsigned)level < DL_ARRAY_LEN(names) ? names[level] : "SYS";
}

dl_topo_nccl_level dl_topo_rel_nccl_level(dl_topo_rel rel)
{
    switch (rel) {
    case DL_TOPO_REL_X: return DL_TOPO_NCCL_LOC;
    case DL_TOPO_REL_NV: return DL_TOPO_NCCL_NVL;
    case DL_TOPO_REL_PIX: return DL_TOPO_NCCL_PIX;
    case DL_TOPO_REL_PXB: return DL_TOPO_NCCL_PXB;
    /* NCCL has one CPU node per socket: all its host bridges are "PHB". */
    case DL_TOPO_REL_PHB: case DL_TOPO_REL_NODE: return DL_TOPO_NCCL_PHB;
    default: return DL_TOPO_NCCL_SYS;
    }
}

const dl_topo_pair *dl_topo_pair_get(const dl_topo *t, int a, int b)
{
    if (!t || !t->pairs || a < 0 || b < 0 || a >= t->n_gpus || b >= t->n_gpus)
        return NULL;
    return &t->pairs[a * t->n_gpus + b];
}

dl_topo_rel dl_topo_pair_rel(const dl_topo *t, int a, int b)
{
    const dl_topo_pair *p = dl_topo_pair_get(t, a, b);
    return p ? p->rel : DL_TOPO_REL_UNKNOWN;
}

double dl_topo_pair_gbps(const dl_topo *t, int a, int b)
{
    const dl_topo_pair *p = dl_topo_pair_get(t, a, b);
    return p ? p->gbps : 0;
}

/* ---- NCCL environment ---------------------------------------------------- */

/* NCCL_P2P_LEVEL as NCCL reads it: a path name or an old-style number. */
static int parse_p2p_level(const char *s)
{
    static const struct { const char *name; dl_topo_nccl_level level; } names[] = {
        {"LOC", DL_TOPO_NCCL_LOC}, {"NVL", DL_TOPO_NCCL_NVL}, {"NVB", DL_TOPO_NCCL_NVL},
        {"C2C", DL_TOPO_NCCL_NVL}, {"PIX", DL_TOPO_NCCL_PIX}, {"PXB", DL_TOPO_NCCL_PXB},
        /* PXN and P2C lie between PXB and PHB: for GPU pairs they act as PXB. */
        {"PXN", DL_TOPO_NCCL_PXB}, {"P2C", DL_TOPO_NCCL_PXB}, {"PHB", DL_TOPO_NCCL_PHB},
        {"SYS", DL_TOPO_NCCL_SYS},
    };
    static const dl_topo_nccl_level old[] = {DL_TOPO_NCCL_LOC, DL_TOPO_NCCL_PIX, DL_TOPO_NCCL_PXB,
                                             DL_TOPO_NCCL_PHB, DL_TOPO_NCCL_SYS, DL_TOPO_NCCL_SYS};
    for (size_t i = 0; i < DL_ARRAY_LEN(names); i++)
        if (strcmp(s, names[i].name) == 0)
            return names[i].level;
    if (s[0] >= '0' && s[0] <= '9') {
        long v = strtol(s, NULL, 0);
        return old[v < 0 ? 0 : v > 5 ? 5 : v];
    }
    return -1;
}

void dl_topo_nccl_env_read(dl_topo_nccl_env *env, char *const *envp)
{
    memset(env, 0, sizeof *env);
    env->p2p_level = -1;
    const char *dis = dl_topo_env_get(envp, "NCCL_P2P_DISABLE");
    env->p2p_disable = dis && strtol(dis, NULL, 0) == 1;
    const char *lvl = dl_topo_env_get(envp, "NCCL_P2P_LEVEL");
    if (lvl) {
        dl_topo_sanitize(env->p2p_level_raw, sizeof env->p2p_level_raw, lvl);
        env->p2p_level = parse_p2p_level(lvl);
    }
}

/* NCCL's own default (src/graph/paths.cc, ncclTopoCheckP2p, since 2.23.4):
 * P2P up to PXB, and up to SYS between the GPUs of an AMD machine with at
 * most two.  Before 2.23.4 it was SYS except on Intel, ARM and Zhaoxin CPUs;
 * docs/topology.md has the history. */
static dl_topo_nccl_level nccl_default_level(dl_topo_cpu_vendor v, int n_gpus)
{
    return v == DL_TOPO_CPU_AMD && n_gpus <= 2 ? DL_TOPO_NCCL_SYS : DL_TOPO_NCCL_PXB;
}

/* ---- links on a path -------------------------------------------------------- */

static const dl_topo_link *hop_link(const dl_topo *t, dl_topo_hop hop, int *parent_port)
{
    if (hop.gpu >= 0) {
        const dl_topo_gpu *g = &t->gpus[hop.gpu];
        *parent_port = g->n_ports ? g->ports[g->n_ports - 1] : -1;
        return &g->link;
    }
    *parent_port = t->ports[hop.port].parent;
    return &t->ports[hop.port].link;
}

void dl_topo_hop_evaluate(const dl_topo *t, dl_topo_hop hop, dl_topo_hop_eval *out)
{
    memset(out, 0, sizeof *out);
    if (hop.gpu < 0 && hop.port < 0)
        return;
    int parent;
    const dl_topo_link *c = hop_link(t, hop, &parent);
    /* The port above describes the same link from the other end. */
    const dl_topo_link *p = parent >= 0 ? &t->ports[parent].link : NULL;
    out->width = c->cur_width ? c->cur_width : p ? p->cur_width : 0;
    out->gts_now = c->cur_gts ? c->cur_gts : p ? p->cur_gts : 0;
    double best = c->max_gts;
    if (p && p->max_gts && (!best || p->max_gts < best))
        best = p->max_gts;
    out->gts_best = best ? best : out->gts_now;
    out->gbps_now = dl_topo_link_gbps(out->gts_now, out->width);
    out->gbps_best = dl_topo_link_gbps(out->gts_best, out->width);
}

/* Does traffic leaving this port's device cross a real link to the parent?
 * Downstream and root ports sit inside a switch / the root complex. */
static int port_has_uplink(const dl_topo *t, int port)
{
    const dl_topo_port *p = &t->ports[port];
    return p->parent >= 0 && (p->kind == DL_TOPO_PORT_UPSTREAM || p->kind == DL_TOPO_PORT_BRIDGE);
}

typedef struct {
    int seen_sw[DL_TOPO_MAX_DEPTH * 2 + 1];
    int n_seen;
    int plain_bridges;
} crossing_count;

static void count_bridge(const dl_topo *t, int port, crossing_count *c)
{
    int sw = t->ports[port].sw;
    if (sw < 0) {
        c->plain_bridges++;
        return;
    }
    for (int i = 0; i < c->n_seen; i++)
        if (c->seen_sw[i] == sw)
            return;
    if (c->n_seen < (int)DL_ARRAY_LEN(c->seen_sw))
        c->seen_sw[c->n_seen++] = sw;
}

static void consider_hop(const dl_topo *t, dl_topo_hop hop, dl_topo_pair *pr)
{
    dl_topo_hop_eval e;
    dl_topo_hop_evaluate(t, hop, &e);
    if (e.gbps_best > 0 && (pr->pcie_gbps == 0 || e.gbps_best < pr->pcie_gbps)) {
        pr->pcie_gbps = e.gbps_best;
        pr->bottleneck = hop;
        pr->bottleneck_gts = e.gts_best;
        pr->bottleneck_width = e.width;
    }
    if (e.gbps_now > 0 && (pr->pcie_gbps_now == 0 || e.gbps_now < pr->pcie_gbps_now))
        pr->pcie_gbps_now = e.gbps_now;
}

/* ACS acts where peer requests enter a root or downstream port from below. */
static void consider_acs(const dl_topo *t, int port, dl_topo_pair *pr)
{
    const dl_topo_port *p = &t->ports[port];
    if (p->kind != DL_TOPO_PORT_DOWNSTREAM && p->kind != DL_TOPO_PORT_ROOT)
        return;
    if (p->acs.state == DL_TOPO_ACS_UNKNOWN)
        pr->acs_unknown = 1;
    if (p->acs.state == DL_TOPO_ACS_PRESENT) {
        pr->acs_ctrl |= p->acs.ctrl;
        if ((p->acs.ctrl & DL_TOPO_ACS_P2P_BITS) && pr->acs_port < 0)
            pr->acs_port = port;
    }
}

/* Walks from GPU g up to (not including) the bridge at depth `stop`. */
static void walk_side(const dl_topo *t, int g, int stop, dl_topo_pair *pr, crossing_count *c)
{
    const dl_topo_gpu *gpu = &t->gpus[g];
    consider_hop(t, (dl_topo_hop){g, -1}, pr);
    for (int k = gpu->n_ports - 1; k > stop; k--) {
        int port = gpu->ports[k];
        count_bridge(t, port, c);
        if (stop >= 0) /* above the root ports traffic meets the CPU anyway */
            consider_acs(t, port, pr);
        if (port_has_uplink(t, port))
            consider_hop(t, (dl_topo_hop){-1, port}, pr);
    }
}

/* Depth of the deepest bridge GPUs a and b share, -1 if none. */
static int shared_depth(const dl_topo_gpu *a, const dl_topo_gpu *b)
{
    if (a->complex != b->complex)
        return -1;
    int k = -1;
    while (k + 1 < a->n_ports && k + 1 < b->n_ports && a->ports[k + 1] == b->ports[k + 1])
        k++;
    return k;
}

static dl_topo_rel host_relation(const dl_topo_gpu *a, const dl_topo_gpu *b)
{
    if (a->complex == b->complex)
        return DL_TOPO_REL_PHB;
    if (a->package >= 0 && b->package >= 0 && a->package != b->package)
        return DL_TOPO_REL_SYS;
    return a->numa_node == b->numa_node ? DL_TOPO_REL_NODE : DL_TOPO_REL_SYS;
}

static void nvlink_relation(const dl_topo *t, int a, int b, dl_topo_pair *pr)
{
    const dl_topo_gpu *ga = &t->gpus[a], *gb = &t->gpus[b];
    int direct = 0, sw_a = 0, sw_b = 0;
    double gbps = 0, sw_gbps = 0;
    for (int i = 0; i < ga->n_nvlinks; i++) {
        if (ga->nvlinks[i].remote_gpu == b) {
            direct++;
            gbps += dl_topo_nvlink_gbps(ga->nvlinks[i].version);
        }
        if (ga->nvlinks[i].remote_is_switch) {
            sw_a++;
            sw_gbps += dl_topo_nvlink_gbps(ga->nvlinks[i].version);
        }
    }
    for (int i = 0; i < gb->n_nvlinks; i++)
        sw_b += gb->nvlinks[i].remote_is_switch;
    if (direct) {
        pr->rel = DL_TOPO_REL_NV;
        pr->nvlinks = direct;
        pr->nvlink_gbps = gbps;
    } else if (sw_a && sw_b) {
        /* Through NVSwitch every pair gets the smaller side's links. */
        pr->rel = DL_TOPO_REL_NV;
        pr->nvlinks = DL_MIN(sw_a, sw_b);
        pr->nvlink_gbps = sw_gbps * pr->nvlinks / sw_a;
    }
}

static void classify_pair(const dl_topo *t, int a, int b, dl_topo_pair *pr)
{
    int nvml_p2p = pr->nvml_p2p; /* NVML's verdict is not ours to recompute */
    memset(pr, 0, sizeof *pr);
    pr->bottleneck = (dl_topo_hop){-1, -1};
    pr->common_port = -1;
    pr->acs_port = -1;
    pr->nvml_p2p = nvml_p2p;
    if (a == b) {
        pr->rel = pr->pcie_rel = DL_TOPO_REL_X;
        pr->nccl_path = DL_TOPO_NCCL_LOC;
        return;
    }
    const dl_topo_gpu *ga = &t->gpus[a], *gb = &t->gpus[b];
    int k = shared_depth(ga, gb);
    crossing_count c = {.n_seen = 0};
    walk_side(t, a, k, pr, &c);
    walk_side(t, b, k, pr, &c);
    if (k >= 0) {
        pr->common_port = ga->ports[k];
        count_bridge(t, pr->common_port, &c);
        pr->rel = c.n_seen + c.plain_bridges <= 1 ? DL_TOPO_REL_PIX : DL_TOPO_REL_PXB;
    } else {
        pr->rel = host_relation(ga, gb);
    }
    pr->n_switches = c.n_seen;
    pr->pcie_rel = pr->rel;
    nvlink_relation(t, a, b, pr);
    pr->gbps = pr->rel == DL_TOPO_REL_NV && pr->nvlink_gbps > 0 ? pr->nvlink_gbps : pr->pcie_gbps;
    pr->nccl_path = dl_topo_rel_nccl_level(pr->rel);
}

static void decide_nccl(dl_topo *t, dl_topo_pair *pr)
{
    if (pr->rel == DL_TOPO_REL_X)
        return;
    int level = t->nccl_default;
    if (t->nccl_env.p2p_disable)
        level = DL_TOPO_NCCL_LOC;
    else if (t->nccl_env.p2p_level >= 0)
        level = t->nccl_env.p2p_level;
    pr->nccl_p2p = (int)pr->nccl_path <= level && pr->nvml_p2p != 0;
}

void dl_topo_analyze(dl_topo *t, const dl_topo_nccl_env *env)
{
    if (!t || !t->pairs)
        return;
    if (env)
        t->nccl_env = *env;
    else {
        memset(&t->nccl_env, 0, sizeof t->nccl_env);
        t->nccl_env.p2p_level = -1;
    }
    t->nccl_default =
        nccl_default_level(t->cpu_vendor, t->n_nvidia > 0 ? t->n_nvidia : t->n_compute);
    for (int a = 0; a < t->n_gpus; a++)
        for (int b = 0; b < t->n_gpus; b++) {
            dl_topo_pair *pr = &t->pairs[a * t->n_gpus + b];
            classify_pair(t, a, b, pr);
            decide_nccl(t, pr);
        }
    dl_topo_warnings_compute(t);
}
