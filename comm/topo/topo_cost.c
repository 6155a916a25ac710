/* topo_cost.c: ring all-reduce over a dl_machine, the way NCCL sees it.
 *
 * Each ring hop is classified (NVLink, PCIe path type), NCCL's P2P rule
 * decides P2P or shared memory through the CPU, and every link the hop's
 * data crosses is charged one use (NCCL's followPath subtracts the ring's
 * bandwidth from every link of the path, src/graph/search.cc).  The ring runs
 * at the worst link's bandwidth divided by its uses.  docs/scaling.md has the
 * rules with their sources. */
#include "topo_cost.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* NCCL's per-lane figures in units of 100 Mb/s for 2.5 .. 64 GT/s
 * (kvDictPciGen, src/graph/topo.cc), turned into GB/s by width x v / 80. */
double dl_nccl_pcie_gbps(int gen, int lanes)
{
    static const double per_lane[] = {0, 15, 30, 60, 120, 240, 480};
    if (gen < 1 || gen > 6 || lanes < 1)
        return 0;
    return lanes * per_lane[gen] / 80.0;
}

/* The lowest switch both GPUs hang under (nested switches: the one where
 * their paths meet), -1 when their paths meet only at the CPU. */
int dl_machine_common_switch(const dl_machine *m, int a, int b)
{
    for (int s = m->gpu[a].sw, hops = 0; s >= 0 && hops < DL_MACHINE_MAX_GPUS;
         s = m->sw[s].parent, hops++)
        for (int t = m->gpu[b].sw, k = 0; t >= 0 && k < DL_MACHINE_MAX_GPUS;
             t = m->sw[t].parent, k++)
            if (s == t)
                return s;
    return -1;
}

dl_topo_nccl_level dl_machine_path(const dl_machine *m, int a, int b)
{
    if (a == b)
        return DL_TOPO_NCCL_LOC;
    if (m->path_of[a][b])
        return (dl_topo_nccl_level)(m->path_of[a][b] - 1);
    if (m->nvswitch || m->nvl[a][b])
        return DL_TOPO_NCCL_NVL;
    const dl_mgpu *ga = &m->gpu[a], *gb = &m->gpu[b];
    if (ga->socket != gb->socket)
        return DL_TOPO_NCCL_SYS;
    if (ga->sw >= 0 && ga->sw == gb->sw)
        return DL_TOPO_NCCL_PIX;
    return dl_machine_common_switch(m, a, b) >= 0 ? DL_TOPO_NCCL_PXB : DL_TOPO_NCCL_PHB;
}

/* NCCL's default P2P level by version (src/graph/paths.cc, ncclTopoCheckP2p,
 * from 2.6; src/transport/p2p.cc, p2pCanConnect, before), at each release tag:
 *   2.23.4 on      PXB; SYS on AMD CPUs with at most two GPUs
 *   2.9 - 2.23.3   SYS; PXB on Intel, ARM (and Zhaoxin) CPUs
 *   2.7 - 2.8      SYS; PXB on Broadwell and ARM, PHB on later Intel CPUs
 *   2.6            SYS; PXB on Broadwell and ARM
 *   2.5            PXB with one CPU, PHB with more (not across sockets)
 *   before 2.5     PHB */
static dl_topo_nccl_level nccl_p2p_level(const dl_machine *m, int n)
{
    int v = m->nccl_version, broadwell = m->cpu_name && strcmp(m->cpu_name, "broadwell") == 0;
    if (v >= 22304)
        return m->cpu == DL_MCPU_AMD && n <= 2 ? DL_TOPO_NCCL_SYS : DL_TOPO_NCCL_PXB;
    if (v < 20500)
        return DL_TOPO_NCCL_PHB;
    if (v < 20600)
        return m->sockets == 1 ? DL_TOPO_NCCL_PXB : DL_TOPO_NCCL_PHB;
    if (m->cpu == DL_MCPU_ARM || (m->cpu == DL_MCPU_INTEL && (v >= 20900 || broadwell)))
        return DL_TOPO_NCCL_PXB;
    if (m->cpu == DL_MCPU_INTEL && v >= 20700)
        return DL_TOPO_NCCL_PHB;
    return DL_TOPO_NCCL_SYS;
}

int dl_machine_p2p(const dl_machine *m, int n, dl_topo_nccl_level path)
{
    if (path == DL_TOPO_NCCL_NVL || path == DL_TOPO_NCCL_LOC)
        return 1;
    if (!m->p2p)
        return 0; /* the driver says no (GeForce): NVML's P2P status check fails */
    return path <= (m->p2p_level_sys ? DL_TOPO_NCCL_SYS : nccl_p2p_level(m, n));
}

/* ---- the links a ring can cross ------------------------------------------ */

enum { R_GPU_UP, R_GPU_DOWN, R_SW_UP, R_SW_DOWN, R_SOCK, R_MEM, R_NVL_OUT, R_NVL_IN, R_NIC_OUT,
       R_NIC_IN, R_KINDS };

typedef struct {
    double uses[R_KINDS][DL_MACHINE_MAX_GPUS * DL_MACHINE_MAX_SOCKETS];  /* charged, weighted */
    int crossings[R_KINDS][DL_MACHINE_MAX_GPUS * DL_MACHINE_MAX_SOCKETS]; /* for the words */
} link_uses;

static double nvl_gbps(const dl_machine *m, int g, int n)
{
    if (m->nvswitch)
        return m->nvl_per_gpu * m->nvl_link_gbps;
    int links = 0;
    for (int j = 0; j < n; j++)
        links += j == g ? 0 : m->nvl[g][j];
    return links * m->nvl_link_gbps;
}

static double capacity(const dl_machine *m, int kind, int i, int n, const dl_mnet *net)
{
    switch (kind) {
    case R_GPU_UP:
    case R_GPU_DOWN: return dl_nccl_pcie_gbps(m->gpu[i].gen, m->gpu[i].lanes);
    case R_SW_UP:
    case R_SW_DOWN: return dl_nccl_pcie_gbps(m->sw[i].gen, m->sw[i].lanes);
    case R_SOCK: return m->socket_gbps;
    case R_MEM: return m->mem_gbps;
    case R_NVL_OUT:
    case R_NVL_IN: return nvl_gbps(m, i, n);
    default: return net ? net->gbps : 0;
    }
}

/* The PCIe links from GPU g up towards its CPU (down = 0) or down from it
 * (down = 1): its own link, then each switch's uplink, stopping below
 * switch `stop` (-1: all the way to the CPU). */
static void charge_pcie(const dl_machine *m, link_uses *u, int g, int down, double w, int stop)
{
    int gpu_kind = down ? R_GPU_DOWN : R_GPU_UP, sw_kind = down ? R_SW_DOWN : R_SW_UP;
    u->uses[gpu_kind][g] += w, u->crossings[gpu_kind][g]++;
    for (int s = m->gpu[g].sw, k = 0; s >= 0 && s != stop && k < DL_MACHINE_MAX_GPUS;
         s = m->sw[s].parent, k++)
        u->uses[sw_kind][s] += w, u->crossings[sw_kind][s]++;
}

static void charge_hop(const dl_machine *m, link_uses *u, dl_hop *h, int n)
{
    int a = h->from, b = h->to;
    const dl_mgpu *ga = &m->gpu[a], *gb = &m->gpu[b];
    h->path = dl_machine_path(m, a, b);
    if (h->path == DL_TOPO_NCCL_NVL) {
        h->transport = DL_HOP_NVL;
        u->uses[R_NVL_OUT][a] += 1, u->uses[R_NVL_IN][b] += 1;
        return;
    }
    h->transport = dl_machine_p2p(m, n, h->path) ? DL_HOP_P2P : DL_HOP_SHM;
    int common = dl_machine_common_switch(m, a, b);
    if (h->transport == DL_HOP_P2P && common >= 0 && !m->acs_redirect[a][b]) {
        /* P2P under a shared switch turns there: the links above it stay
         * idle, unless ACS sends it up to the root complex and back */
        charge_pcie(m, u, a, 0, 1, common);
        charge_pcie(m, u, b, 1, 1, common);
        return;
    }
    /* P2P through an Intel root complex (PHB) goes as 64-byte TLPs, which
     * NCCL charges as 6/5 of the bandwidth on the PCIe links of the path
     * (INTEL_P2P_OVERHEAD, applied in followPath for PATH_PHB only) */
    double w = h->transport == DL_HOP_P2P && h->path == DL_TOPO_NCCL_PHB && m->cpu == DL_MCPU_INTEL
                   ? 1.2
                   : 1.0;
    charge_pcie(m, u, a, 0, w, -1);
    charge_pcie(m, u, b, 1, w, -1);
    if (ga->socket != gb->socket)
        u->uses[R_SOCK][ga->socket * DL_MACHINE_MAX_SOCKETS + gb->socket] += 1;
    if (h->transport == DL_HOP_SHM)
        u->uses[R_MEM][gb->socket] += 2; /* written by the sender, read by the receiver */
}

/* ---- ring order ------------------------------------------------------------ */

static int nvl_cycle(const dl_machine *m, int n, int *order, int depth, unsigned long long used)
{
    if (depth == n)
        return dl_machine_path(m, order[n - 1], order[0]) == DL_TOPO_NCCL_NVL;
    for (int g = 1; g < n; g++) {
        if (used >> g & 1 || dl_machine_path(m, order[depth - 1], g) != DL_TOPO_NCCL_NVL)
            continue;
        order[depth] = g;
        if (nvl_cycle(m, n, order, depth + 1, used | 1ull << g))
            return 1;
    }
    return 0;
}

/* GPUs in index order (switch mates and sockets together), or, when NVLink
 * connects them, a cycle over NVLink alone as NCCL's search prefers. */
static void ring_order(const dl_machine *m, int n, int *order)
{
    order[0] = 0;
    if (n > 2 && n <= 16 && m->nvl_name && nvl_cycle(m, n, order, 1, 1))
        return;
    for (int i = 0; i < n; i++)
        order[i] = i;
}

/* ---- the bottleneck ------------------------------------------------------- */

static const char *gen_name(int gen)
{
    static const char *names[] = {"?", "1.0", "2.0", "3.0", "4.0", "5.0", "6.0"};
    return gen >= 1 && gen <= 6 ? names[gen] : "?";
}

/* "crossed 4 times upward", and which crossings NCCL charges 6/5 */
static void crossed_words(double uses, int crossings, const char *way, char *buf, size_t len)
{
    if (crossings <= 0) /* links charged per use only: the socket link, NVLink, the network */
        crossings = (int)lround(uses);
    char times[24];
    if (crossings == 1)
        snprintf(times, sizeof times, "once");
    else
        snprintf(times, sizeof times, "%d times", crossings);
    int heavy = (int)lround((uses - crossings) / 0.2); /* crossings charged 1.2 */
    int n = snprintf(buf, len, "crossed %s%s%s", times, way[0] ? " " : "", way);
    if (heavy <= 0 || n < 0 || (size_t)n >= len)
        return;
    if (heavy == crossings)
        snprintf(buf + n, len - (size_t)n, ", %scharged 6/5 (P2P through an Intel root complex)",
                 crossings == 1 ? "" : "each ");
    else
        snprintf(buf + n, len - (size_t)n, ", %d of them charged 6/5 (P2P through an Intel root "
                 "complex)", heavy);
}

static void describe(const dl_machine *m, const link_uses *u, int kind, int i, double cap,
                     const dl_mnet *net, char *buf, size_t len)
{
    char crossed[96], sw_name[32];
    const char *way = kind == R_GPU_UP || kind == R_SW_UP       ? "upward"
                      : kind == R_GPU_DOWN || kind == R_SW_DOWN ? "downward"
                                                                : "";
    crossed_words(u->uses[kind][i], u->crossings[kind][i], way, crossed, sizeof crossed);
    switch (kind) {
    case R_GPU_UP:
    case R_GPU_DOWN:
        snprintf(buf, len, "the PCIe %s x%d link of GPU %d (%.3g GB/s), %s", gen_name(m->gpu[i].gen),
                 m->gpu[i].lanes, i, cap, crossed);
        break;
    case R_SW_UP:
    case R_SW_DOWN:
        /* a real machine's switch by its upstream port's address, as dltrain topo shows it */
        if (m->sw[i].name[0])
            snprintf(sw_name, sizeof sw_name, "%s", m->sw[i].name);
        else
            snprintf(sw_name, sizeof sw_name, "%d", i);
        snprintf(buf, len, "the x%d uplink of PCIe switch %s (PCIe %s, %.3g GB/s), %s",
                 m->sw[i].lanes, sw_name, gen_name(m->sw[i].gen), cap, crossed);
        break;
    case R_SOCK:
        snprintf(buf, len, "the socket link %d->%d (%s, %.3g GB/s), %s", i / DL_MACHINE_MAX_SOCKETS,
                 i % DL_MACHINE_MAX_SOCKETS, m->cpu_name, cap, crossed);
        break;
    case R_MEM:
        snprintf(buf, len, "host memory of socket %d (%.3g GB/s), %.3g writes and reads per ring "
                 "step (shared memory through the CPU)", i, cap, u->uses[kind][i]);
        break;
    case R_NVL_OUT:
    case R_NVL_IN:
        snprintf(buf, len, "the NVLinks of GPU %d (%s, %.3g GB/s), %s", i, m->nvl_name, cap,
                 crossed);
        break;
    default:
        snprintf(buf, len, "the network (%s, %.3g GB/s), %s", net ? net->name : "?", cap, crossed);
    }
}

/* NCCL's hardware latency per ring step, Simple protocol (src/graph/tuning.cc
 * hwLatencies): NVLink 3.4, PCI 5.7, network 14 us; shared memory counts as PCI. */
static double hop_alpha(int transport, const dl_mnet *net)
{
    if (transport == DL_HOP_NET)
        return net ? net->alpha_us : 14.0;
    return transport == DL_HOP_NVL ? 3.4 : 5.7;
}

static void add_hop(dl_ring_cost *out, int from, int to, int nf, int nt)
{
    dl_hop *h = &out->hops[out->n_hops++];
    memset(h, 0, sizeof *h);
    h->from = from, h->to = to, h->node_from = nf, h->node_to = nt;
}

int dl_machine_ring(const dl_machine *m, int n, int nodes, const dl_mnet *net,
                    dl_ring_cost *out)
{
    memset(out, 0, sizeof *out);
    out->n = n, out->nodes = nodes;
    if (n < 1 || nodes < 1 || n % nodes || n / nodes > m->n_gpus || n > DL_RING_MAX ||
        (nodes > 1 && !net))
        return -1;
    int g = n / nodes, order[DL_MACHINE_MAX_GPUS];
    if (n == 1)
        return 0;
    ring_order(m, g, order);
    static link_uses u;
    memset(&u, 0, sizeof u);
    /* every node does the same: count one node's links; with several nodes
     * the chain inside a node is open and one hop leaves through the network */
    for (int k = 0; k < nodes; k++)
        for (int i = 0; i < g; i++) {
            int last = i == g - 1;
            if (last && nodes > 1)
                add_hop(out, order[i], order[0], k, (k + 1) % nodes);
            else if (!(last && g == 1))
                add_hop(out, order[i], order[last ? 0 : i + 1], k, k);
        }
    for (int h = 0; h < out->n_hops; h++) {
        dl_hop *hop = &out->hops[h];
        if (hop->node_from != hop->node_to) {
            hop->path = DL_TOPO_NCCL_LOC, hop->transport = DL_HOP_NET;
        } else if (hop->node_from == 0) {
            charge_hop(m, &u, hop, g);
        } else {
            dl_hop copy = *hop; /* same classification as in node 0, not counted again */
            static link_uses scratch;
            charge_hop(m, &scratch, &copy, g);
            hop->path = copy.path, hop->transport = copy.transport;
        }
        out->count[hop->transport]++;
        out->alpha_us = fmax(out->alpha_us, hop_alpha(hop->transport, net));
    }
    if (nodes > 1) {
        /* node 0's last GPU sends out through its PCIe link and the NIC; its
         * first GPU receives the same way */
        u.uses[R_NIC_OUT][0] += 1, u.uses[R_NIC_IN][0] += 1;
        charge_pcie(m, &u, order[g - 1], 0, 1, -1);
        charge_pcie(m, &u, order[0], 1, 1, -1);
    }
    out->gbps = INFINITY;
    for (int kind = 0; kind < R_KINDS; kind++)
        for (int i = 0; i < DL_MACHINE_MAX_GPUS * DL_MACHINE_MAX_SOCKETS; i++) {
            double uses = u.uses[kind][i];
            if (uses <= 0)
                continue;
            double cap = capacity(m, kind, i, g, net), bw = cap / uses;
            if (bw < out->gbps) {
                out->gbps = bw, out->uses = uses, out->link_gbps = cap;
                describe(m, &u, kind, i, cap, net, out->bottleneck, sizeof out->bottleneck);
            }
        }
    return isfinite(out->gbps) && out->gbps > 0 ? 0 : -1;
}
