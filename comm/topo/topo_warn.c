/* topo_warn.c: warnings that say what a fact means and what to do about it.
 *
 * Each check looks at one kind of problem people hit when building
 * multi-GPU machines: lanes lost to slot wiring, links below their
 * generation (often just idle power saving), GPUs split across sockets or
 * root complexes, more GPUs than the CPU's lanes can feed, ACS and the
 * IOMMU bending peer traffic through the root complex. */
#define _GNU_SOURCE
#include "topo_internal.h"

#include <string.h>

const char *dl_topo_gpu_label(const dl_topo *t, int g, char *buf, size_t cap)
{
    snprintf(buf, cap, "GPU%d (%s)", g, t->gpus[g].bdf);
    return buf;
}

const char *dl_topo_speed_text(double gts, char *buf, size_t cap)
{
    int gen = dl_topo_gen_from_gts(gts);
    if (gen)
        snprintf(buf, cap, "%g GT/s (gen%d)", gts, gen);
    else
        snprintf(buf, cap, "unknown speed");
    return buf;
}

const char *dl_topo_port_kind_name(dl_topo_port_kind kind)
{
    switch (kind) {
    case DL_TOPO_PORT_ROOT: return "root port";
    case DL_TOPO_PORT_UPSTREAM: return "switch upstream port";
    case DL_TOPO_PORT_DOWNSTREAM: return "switch downstream port";
    default: return "bridge";
    }
}

const char *dl_topo_acs_bits_text(unsigned ctrl, char *buf, size_t cap)
{
    static const char *const names[] = {"SV", "TB", "RR", "CR", "UF", "EC", "DT"};
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < (int)DL_ARRAY_LEN(names); i++)
        if (ctrl & (1u << i)) {
            int n = snprintf(buf + used, cap - used, "%s%s", used ? " " : "", names[i]);
            if (n < 0 || (size_t)n >= cap - used)
                break;
            used += (size_t)n;
        }
    if (!used)
        snprintf(buf, cap, "none");
    return buf;
}

/* ---- per-link checks ---------------------------------------------------------- */

static void check_gpu_width(dl_topo *t, int g)
{
    const dl_topo_gpu *gpu = &t->gpus[g];
    dl_topo_hop_eval e;
    dl_topo_hop_evaluate(t, (dl_topo_hop){g, -1}, &e);
    int max = gpu->link.max_width;
    if (!e.width || !max || e.width >= max)
        return;
    char who[48];
    dl_topo_gpu_label(t, g, who, sizeof who);
    const dl_topo_port *slot = gpu->n_ports ? &t->ports[gpu->ports[gpu->n_ports - 1]] : NULL;
    if (slot && slot->link.max_width && slot->link.max_width < max)
        dl_topo_warn(t, DL_TOPO_WARN_WIDTH, g,
                     "%s runs at x%d but supports x%d: its slot (%s %s) is wired x%d, so it "
                     "gets %.2f GB/s per direction instead of %.2f",
                     who, e.width, max, dl_topo_port_kind_name(slot->kind), slot->bdf,
                     slot->link.max_width, e.gbps_best, dl_topo_link_gbps(e.gts_best, max));
    else
        dl_topo_warn(t, DL_TOPO_WARN_WIDTH, g,
                     "%s runs at x%d although it and its slot support x%d: the slot probably "
                     "shares its lanes with another slot (x8/x8 split when both are filled), or "
                     "check seating, riser cable and the BIOS lane/bifurcation setting",
                     who, e.width, max);
}

static void check_speed(dl_topo *t, dl_topo_hop hop, const char *who, int woke)
{
    dl_topo_hop_eval e;
    dl_topo_hop_evaluate(t, hop, &e);
    if (!e.gts_now || !e.gts_best || e.gts_now >= e.gts_best - 1e-9)
        return;
    char now[32], best[32];
    dl_topo_speed_text(e.gts_now, now, sizeof now);
    dl_topo_speed_text(e.gts_best, best, sizeof best);
    if (woke)
        dl_topo_warn(t, DL_TOPO_WARN_SPEED, hop.gpu,
                     "%s link runs at %s under load although both ends support %s: check riser "
                     "cables, the slot and the BIOS PCIe generation setting",
                     who, now, best);
    else
        dl_topo_warn(t, DL_TOPO_WARN_SPEED, hop.gpu,
                     "%s link runs at %s, below the %s both ends support: idle GPUs lower their "
                     "link speed to save power, so this is normal at rest; run 'dltrain topo "
                     "--wake' to read it under load",
                     who, now, best);
}

static void check_unreadable(dl_topo *t, int g)
{
    const dl_topo_link *l = &t->gpus[g].link;
    dl_topo_hop_eval e;
    dl_topo_hop_evaluate(t, (dl_topo_hop){g, -1}, &e);
    if (e.width && e.gts_now)
        return;
    if (!t->gpus[g].n_ports && !l->cur_speed_raw[0] && !l->cur_width_raw[0])
        return; /* integrated on the root bus: there is no link to report */
    char who[48];
    dl_topo_warn(t, DL_TOPO_WARN_UNREAD, g,
                 "%s link %s%s unknown (current_link_speed '%s', current_link_width '%s'): "
                 "bandwidth figures involving it are lower bounds or unknown",
                 dl_topo_gpu_label(t, g, who, sizeof who), e.gts_now ? "" : "speed",
                 e.width ? "" : (e.gts_now ? "width" : " and width"),
                 l->cur_speed_raw[0] ? l->cur_speed_raw : "unreadable",
                 l->cur_width_raw[0] ? l->cur_width_raw : "unreadable");
}

static void check_switch_uplinks(dl_topo *t)
{
    for (int s = 0; s < t->n_switches; s++) {
        int port = t->switches[s].upstream;
        const dl_topo_port *p = &t->ports[port];
        char who[96];
        snprintf(who, sizeof who, "%s switch %s uplink", t->switches[s].vendor_name, p->bdf);
        dl_topo_hop_eval e;
        dl_topo_hop_evaluate(t, (dl_topo_hop){-1, port}, &e);
        if (e.width && p->link.max_width && e.width < p->link.max_width)
            dl_topo_warn(t, DL_TOPO_WARN_WIDTH, -1,
                         "%s runs at x%d of x%d: every GPU behind it shares %.2f GB/s to the host",
                         who, e.width, p->link.max_width, e.gbps_best);
        check_speed(t, (dl_topo_hop){-1, port}, who, p->link.woke);
    }
}

/* ---- machine-wide checks ------------------------------------------------------- */

/* Socket of a GPU for grouping: package, else NUMA node, else -1. */
static int gpu_socket(const dl_topo_gpu *g)
{
    return g->package >= 0 ? g->package : g->numa_node;
}

static void append(char *buf, size_t cap, const char *fmt, int v)
{
    size_t used = strlen(buf);
    if (used < cap)
        snprintf(buf + used, cap - used, fmt, v);
}

static void check_sockets(dl_topo *t)
{
    int sockets[DL_TOPO_MAX_GPUS], n = 0;
    for (int g = 0; g < t->n_compute; g++) {
        int s = gpu_socket(&t->gpus[g]);
        int seen = s < 0;
        for (int i = 0; i < n; i++)
            seen |= sockets[i] == s;
        if (!seen)
            sockets[n++] = s;
    }
    if (n < 2)
        return;
    char text[200] = "";
    for (int i = 0; i < n; i++) {
        append(text, sizeof text, i ? "; socket %d:" : "socket %d:", sockets[i]);
        for (int g = 0; g < t->n_compute; g++)
            if (gpu_socket(&t->gpus[g]) == sockets[i])
                append(text, sizeof text, " GPU%d", g);
    }
    dl_topo_warn(t, DL_TOPO_WARN_SOCKETS, -1,
                 "GPUs sit under %d CPU sockets (%s): peer traffic between sockets crosses the "
                 "CPU interconnect (UPI / Infinity Fabric), slower than PCIe between GPUs of one "
                 "socket; place ranks that talk most on one socket",
                 n, text);
}

static void check_complexes(dl_topo *t)
{
    int used[DL_TOPO_MAX_COMPLEXES] = {0}, n = 0;
    for (int g = 0; g < t->n_compute; g++)
        if (!used[t->gpus[g].complex]++)
            n++;
    if (n < 2)
        return;
    char text[240] = "";
    for (int c = 0; c < t->n_complexes; c++) {
        if (!used[c])
            continue;
        size_t len = strlen(text);
        snprintf(text + len, sizeof text - len, "%s%s:", len ? "; " : "", t->complexes[c].name);
        for (int g = 0; g < t->n_compute; g++)
            if (t->gpus[g].complex == c)
                append(text, sizeof text, " GPU%d", g);
    }
    dl_topo_warn(t, DL_TOPO_WARN_COMPLEXES, -1,
                 "GPUs sit under %d root complexes (%s): peer traffic between them goes through "
                 "the CPU, never straight across a switch",
                 n, text);
}

/* More GPUs than lanes at x8 each: compare GPUs per socket with the widths
 * of the distinct root ports that lead to them. */
static void check_lanes(dl_topo *t)
{
    int done[DL_TOPO_MAX_GPUS] = {0};
    for (int g0 = 0; g0 < t->n_compute; g0++) {
        if (done[g0])
            continue;
        int sock = gpu_socket(&t->gpus[g0]);
        int roots[DL_TOPO_MAX_GPUS], n_roots = 0, n_gpus = 0, lanes = 0, unknown = 0;
        for (int g = g0; g < t->n_compute; g++) {
            const dl_topo_gpu *gpu = &t->gpus[g];
            if (done[g] || gpu_socket(gpu) != sock)
                continue;
            done[g] = 1;
            if (!gpu->n_ports)
                continue; /* integrated GPUs use no lanes */
            n_gpus++;
            if (!gpu->n_ports || t->ports[gpu->ports[0]].kind != DL_TOPO_PORT_ROOT) {
                unknown = 1;
                continue;
            }
            int r = gpu->ports[0], seen = 0;
            for (int i = 0; i < n_roots; i++)
                seen |= roots[i] == r;
            if (seen)
                continue;
            roots[n_roots++] = r;
            const dl_topo_link *l = &t->ports[r].link;
            int w = l->cur_width ? l->cur_width : l->max_width;
            unknown |= !w;
            lanes += w;
        }
        if (unknown || n_gpus < 2 || n_gpus * 8 <= lanes)
            continue;
        char where[32] = "this machine";
        if (sock >= 0)
            snprintf(where, sizeof where, "socket %d", sock);
        dl_topo_warn(t, DL_TOPO_WARN_LANES, -1,
                     "%d GPUs on %s are fed by %d CPU lanes through %d root port%s: fewer than x8 "
                     "per GPU when all of them move data to or from host memory at once (switches "
                     "share their uplink)",
                     n_gpus, where, lanes, n_roots, n_roots == 1 ? "" : "s");
    }
}

static void check_acs(dl_topo *t)
{
    int unknown_a = -1, unknown_b = -1;
    for (int a = 0; a < t->n_compute; a++)
        for (int b = a + 1; b < t->n_compute; b++) {
            const dl_topo_pair *pr = dl_topo_pair_get(t, a, b);
            if (pr->rel != DL_TOPO_REL_PIX && pr->rel != DL_TOPO_REL_PXB)
                continue;
            if (pr->acs_unknown && unknown_a < 0)
                unknown_a = a, unknown_b = b;
            if (pr->acs_port < 0)
                continue;
            const dl_topo_port *p = &t->ports[pr->acs_port];
            char bits[40];
            dl_topo_acs_bits_text(p->acs.ctrl & DL_TOPO_ACS_P2P_BITS, bits, sizeof bits);
            dl_topo_warn(t, DL_TOPO_WARN_ACS, a,
                         "ACS %s enabled on %s %s between GPU%d and GPU%d: their peer traffic "
                         "is sent up to the root complex instead of across the switch (slow or "
                         "hanging all-reduce). On bare metal clear it (setpci -s %s "
                         "ECAP_ACS+0x6.w=0000) or run with the IOMMU off or in passthrough",
                         bits, dl_topo_port_kind_name(p->kind), p->bdf, a, b, p->bdf);
        }
    if (unknown_a >= 0)
        dl_topo_warn(t, DL_TOPO_WARN_UNREAD, -1,
                     "ACS state unknown on bridges between GPU%d and GPU%d (and maybe others): "
                     "sysfs returns config space past 64 bytes only to root; run as root to check",
                     unknown_a, unknown_b);
}

static void check_iommu_numa(dl_topo *t)
{
    int dma = -1;
    for (int g = 0; g < t->n_compute && dma < 0; g++)
        if (strncmp(t->gpus[g].iommu_type, "DMA", 3) == 0)
            dma = g;
    if (t->iommu_units > 0 && dma >= 0)
        dl_topo_warn(t, DL_TOPO_WARN_IOMMU, -1,
                     "the IOMMU translates GPU DMA (group type %s for GPU%d): Linux then enables "
                     "ACS on switch ports so peer traffic detours through the root complex; "
                     "training machines usually boot with iommu=pt (passthrough) or the IOMMU off",
                     t->gpus[dma].iommu_type, dma);
    if (t->n_packages < 2)
        return;
    for (int g = 0; g < t->n_compute; g++)
        if (!t->gpus[g].numa_src || t->gpus[g].numa_node < 0) {
            char who[48];
            dl_topo_warn(t, DL_TOPO_WARN_NUMA, g,
                         "%s has no NUMA node on a %d-socket machine: CPU binding cannot pick "
                         "the CPUs near it (check the BIOS NUMA/ACPI SRAT settings)",
                         dl_topo_gpu_label(t, g, who, sizeof who), t->n_packages);
        }
}

void dl_topo_warnings_compute(dl_topo *t)
{
    t->n_warnings = 0;
    if (t->n_skipped)
        dl_topo_warn(t, DL_TOPO_WARN_UNREAD, -1,
                     "%d of %d entries in bus/pci/devices could not be read (first: %s)",
                     t->n_skipped, t->n_entries, t->skipped_note);
    for (int g = 0; g < t->n_compute; g++) {
        char who[48];
        check_unreadable(t, g);
        check_gpu_width(t, g);
        check_speed(t, (dl_topo_hop){g, -1}, dl_topo_gpu_label(t, g, who, sizeof who),
                    t->gpus[g].link.woke);
    }
    check_switch_uplinks(t);
    check_sockets(t);
    check_complexes(t);
    check_lanes(t);
    check_acs(t);
    check_iommu_numa(t);
}
