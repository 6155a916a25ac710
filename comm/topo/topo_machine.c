/* topo_machine.c: a dl_machine from a compact description, a shipped name,
 * or dltrain topo's reading of a real machine.
 *
 *   "8x pcie4x16, 2 sockets, 4 per switch, no-p2p, amd"
 *
 * Clauses are separated by commas; the first says how many GPUs and their
 * link.  The grammar is documented in docs/topology.md. */
#define _GNU_SOURCE
#include "topo_cost.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const dl_machine_preset dl_machine_presets[] = {
    {"consumer-x8x8", "2x pcie4x8, no-p2p, intel",
     "a desktop board splitting the CPU's x16 into x8/x8 for two GeForce cards"},
    {"workstation-4gpu", "4x pcie3x16, 2 per switch, uplink pcie3x16, skylake",
     "a 4-GPU workstation: two PCIe switches, two GPUs each, on one CPU"},
    {"dual-socket-8gpu", "8x pcie3x16, 2 sockets, 2 per switch, skylake",
     "a dual-socket 8-GPU server: four PCIe switches, two per socket"},
    {"epyc-8gpu", "8x pcie4x16, amd",
     "a single-socket EPYC server: eight GPUs on the CPU's own x16 root ports"},
    {"dgx1", "8x pcie3x16, 2 sockets, 2 per switch, broadwell, nvlink-hcm, nvlink1",
     "NVIDIA DGX-1 (P100): hybrid cube-mesh NVLink, PCIe switches for the host"},
    {"nvswitch-8gpu", "8x pcie4x16, 2 sockets, 2 per switch, amd, nvswitch, nvlink3, 12 links",
     "an 8-GPU NVSwitch server (DGX A100): 12 NVLinks per GPU into the switches"},
    {NULL, NULL, NULL},
};

const char *dl_machine_preset_names(void)
{
    static char buf[256];
    if (!buf[0])
        for (const dl_machine_preset *p = dl_machine_presets; p->name; p++)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", buf[0] ? ", " : "",
                     p->name);
    return buf;
}

const char *dl_machine_words(void)
{
    return "'Nx pcieGxW' (first), 'S sockets', 'K per switch', 'uplink pcieGxW', 'p2p', "
           "'no-p2p', 'intel', 'broadwell', 'skylake', 'sapphire-rapids', 'emerald-rapids', "
           "'amd', 'arm', 'mem GBPS', 'nvlink-bridge', 'nvlink-hcm', 'nvswitch', 'nvlink1'.."
           "'nvlink5', 'nvlink-ga102', 'N links', 'nccl X.Y[.Z]'";
}

static const dl_mnet nets[] = {
    {"1gbit", 0.125, 30}, {"10gbit", 1.25, 30}, {"25gbit", 3.125, 30}, {"100gbit", 12.5, 14},
    {"ib-edr", 12.5, 14}, {"ib-hdr", 25, 14},   {"ib-ndr", 50, 14},    {NULL, 0, 0},
};

const dl_mnet *dl_mnet_find(const char *name)
{
    for (const dl_mnet *n = nets; n->name; n++)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

const char *dl_mnet_names(void)
{
    return "1gbit, 10gbit, 25gbit, 100gbit, ib-edr, ib-hdr, ib-ndr";
}

/* CPU words: NCCL's inter-socket bandwidth (src/graph/topo.h: BDW_QPI_BW 6,
 * SKL_QPI_BW 10, SRP_QPI_BW 22, ERP_QPI_BW 40, AMD_BW 16, ARM_BW 6) and a
 * host memory bandwidth per socket: channels x MT/s x 8 bytes of the parts'
 * data sheets (Broadwell-EP 4 x DDR4-2400, Skylake-SP 6 x DDR4-2666,
 * Sapphire/Emerald Rapids 8 x DDR5-4800, EPYC Rome 8 x DDR4-3200, Ampere
 * Altra 8 x DDR4-3200). */
typedef struct {
    const char *word;
    dl_mcpu cpu;
    double socket_gbps, mem_gbps;
} cpu_word;

static const cpu_word cpus[] = {
    {"intel", DL_MCPU_INTEL, 10, 128},         {"skylake", DL_MCPU_INTEL, 10, 128},
    {"broadwell", DL_MCPU_INTEL, 6, 76.8},     {"sapphire-rapids", DL_MCPU_INTEL, 22, 307.2},
    {"emerald-rapids", DL_MCPU_INTEL, 40, 307.2}, {"amd", DL_MCPU_AMD, 16, 204.8},
    {"arm", DL_MCPU_ARM, 6, 204.8},            {NULL, 0, 0, 0},
};

/* NVLink words: NCCL's GB/s per link (src/graph/topo.h SM60_NVLINK_BW 18,
 * SM70 20, SM80 20, SM90 20.6, SM100 40.1, SM86 12). */
typedef struct {
    const char *word;
    double gbps;
} nvl_word;

static const nvl_word nvls[] = {
    {"nvlink1", 18}, {"nvlink2", 20}, {"nvlink3", 20}, {"nvlink4", 20.6}, {"nvlink5", 40.1},
    {"nvlink-ga102", 12}, {NULL, 0},
};

static int parse_pcie(const char *w, int *gen, int *lanes)
{
    int n = 0;
    if (sscanf(w, "pcie%dx%d%n", gen, lanes, &n) != 2 || w[n] || *gen < 1 || *gen > 6 ||
        (*lanes != 1 && *lanes != 2 && *lanes != 4 && *lanes != 8 && *lanes != 16))
        return -1;
    return 0;
}

static void defaults(dl_machine *m)
{
    memset(m, 0, sizeof *m);
    m->sockets = 1, m->cpu = DL_MCPU_INTEL, m->cpu_name = "skylake";
    m->socket_gbps = 10, m->mem_gbps = 128, m->p2p = 1, m->nccl_version = 22304;
}

/* HCM: the DGX-1's hybrid cube mesh; two fully connected quads, GPU i linked
 * to i+4 (NVIDIA's DGX-1 system architecture white paper). */
static void nvl_shape(dl_machine *m, const char *shape, int links)
{
    for (int a = 0; a < m->n_gpus; a++)
        for (int b = 0; b < m->n_gpus; b++) {
            int on = 0;
            if (a == b)
                continue;
            if (strcmp(shape, "nvlink-bridge") == 0)
                on = a / 2 == b / 2;
            else if (strcmp(shape, "nvlink-hcm") == 0)
                on = a / 4 == b / 4 || a % 4 == b % 4;
            m->nvl[a][b] = (unsigned char)(on ? links : 0);
        }
    m->nvswitch = strcmp(shape, "nvswitch") == 0;
    m->nvl_per_gpu = links;
}

typedef struct {
    int gpus, gen, lanes, sockets, per_switch, up_gen, up_lanes, links;
    double mem;              /* 'mem GBPS', over the CPU word's figure */
    const char *shape;
} clauses;

static int clause(dl_machine *m, clauses *c, char *w, int first, char *err, size_t cap)
{
    int v = 0, n = 0;
    char word[64] = "";
    if (first) {
        if (sscanf(w, "%dx %63s%n", &c->gpus, word, &n) != 2 || w[n] || c->gpus < 1 ||
            c->gpus > DL_MACHINE_MAX_GPUS || parse_pcie(word, &c->gen, &c->lanes)) {
            snprintf(err, cap, "the description must start with 'Nx pcieGxW' (N GPUs, 1..%d, "
                     "each on PCIe generation G with W lanes), got '%s'", DL_MACHINE_MAX_GPUS, w);
            return -1;
        }
        return 0;
    }
    n = 0;
    if (sscanf(w, "%d %63[a-z]%n", &v, word, &n) == 2 && !w[n]) {
        int sockets = strcmp(word, "sockets") == 0 || strcmp(word, "socket") == 0;
        if (sockets && v >= 1 && v <= DL_MACHINE_MAX_SOCKETS)
            return c->sockets = v, 0;
        if (strcmp(word, "links") == 0 && v >= 1 && v <= 18)
            return c->links = v, 0;
        if (sockets || strcmp(word, "links") == 0)
            return snprintf(err, cap, "'%s': %s from 1 to %d", w, word,
                            sockets ? DL_MACHINE_MAX_SOCKETS : 18), -1;
    }
    n = 0;
    if (sscanf(w, "%d per switch%n", &v, &n) == 1 && !w[n])
        return v >= 1 ? (c->per_switch = v, 0)
                      : (snprintf(err, cap, "'%s': at least 1 GPU per switch", w), -1);
    n = 0;
    if (sscanf(w, "uplink %63s%n", word, &n) == 1 && !w[n] &&
        parse_pcie(word, &c->up_gen, &c->up_lanes) == 0)
        return 0;
    double mem = 0;
    n = 0;
    if (sscanf(w, "mem %lf%n", &mem, &n) == 1 && !w[n] && mem > 0 && mem <= 1e6)
        return c->mem = mem, 0;
    int ma = 0, mi = 0, pa = 0;
    n = 0;
    if (sscanf(w, "nccl %d.%d%n", &ma, &mi, &n) == 2 && ma >= 1 && mi >= 0 && mi < 100) {
        if (w[n] == '.' && sscanf(w + n, ".%d%n", &pa, &v) == 1)
            n += v;
        if (!w[n])
            return m->nccl_version = ma * 10000 + mi * 100 + pa, 0;
    }
    if (strcmp(w, "p2p") == 0 || strcmp(w, "no-p2p") == 0)
        return m->p2p = w[0] == 'p', 0;
    for (const cpu_word *cw = cpus; cw->word; cw++)
        if (strcmp(w, cw->word) == 0) {
            m->cpu = cw->cpu, m->cpu_name = cw->word, m->socket_gbps = cw->socket_gbps;
            m->mem_gbps = cw->mem_gbps;
            return 0;
        }
    for (const nvl_word *nw = nvls; nw->word; nw++)
        if (strcmp(w, nw->word) == 0)
            return m->nvl_name = nw->word, m->nvl_link_gbps = nw->gbps, 0;
    if (strcmp(w, "nvlink-bridge") == 0 || strcmp(w, "nvlink-hcm") == 0 ||
        strcmp(w, "nvswitch") == 0)
        return c->shape = strcmp(w, "nvlink-bridge") == 0   ? "nvlink-bridge"
                          : strcmp(w, "nvlink-hcm") == 0 ? "nvlink-hcm"
                                                          : "nvswitch",
               0;
    snprintf(err, cap, "'%s' is not understood; the words are %s", w, dl_machine_words());
    return -1;
}

static void build(dl_machine *m, const clauses *c)
{
    m->n_gpus = c->gpus, m->sockets = c->sockets;
    int per_socket = (c->gpus + c->sockets - 1) / c->sockets;
    for (int i = 0; i < c->gpus; i++) {
        dl_mgpu *g = &m->gpu[i];
        g->gen = c->gen, g->lanes = c->lanes, g->socket = i / per_socket;
        /* switches never straddle sockets: numbered within each socket's GPUs */
        g->sw = -1;
        if (c->per_switch > 0) {
            int local = i % per_socket, per_sock_sw = (per_socket + c->per_switch - 1) / c->per_switch;
            g->sw = g->socket * per_sock_sw + local / c->per_switch;
            if (g->sw + 1 > m->n_switches)
                m->n_switches = g->sw + 1;
            m->sw[g->sw].gen = c->up_gen ? c->up_gen : c->gen;
            m->sw[g->sw].lanes = c->up_gen ? c->up_lanes : 16;
            m->sw[g->sw].socket = g->socket;
            m->sw[g->sw].parent = -1; /* one level: each switch on a root port */
        }
    }
    if (c->shape) {
        if (!m->nvl_name)
            m->nvl_name = strcmp(c->shape, "nvlink-bridge") == 0 ? "nvlink-ga102" : "nvlink3",
            m->nvl_link_gbps = strcmp(c->shape, "nvlink-bridge") == 0 ? 12 : 20;
        nvl_shape(m, c->shape, c->links ? c->links : strcmp(c->shape, "nvlink-bridge") == 0 ? 4
                                                      : strcmp(c->shape, "nvswitch") == 0 ? 12
                                                                                            : 1);
    } else {
        m->nvl_name = NULL, m->nvl_link_gbps = 0;
    }
}

static int normalise(const char *text, char *out, size_t cap)
{
    size_t j = 0;
    for (const char *p = text; *p && j + 1 < cap; p++)
        out[j++] = (char)tolower((unsigned char)*p);
    out[j] = 0;
    return *text && j + 1 < cap ? 0 : -1;
}

int dl_machine_parse(const char *text, dl_machine *m, char *err, size_t cap)
{
    defaults(m);
    for (const dl_machine_preset *p = dl_machine_presets; p->name; p++)
        if (strcasecmp(text, p->name) == 0) {
            int rc = dl_machine_parse(p->desc, m, err, cap);
            snprintf(m->desc, sizeof m->desc, "%s (%s)", p->name, p->desc);
            return rc;
        }
    char buf[256];
    if (normalise(text, buf, sizeof buf)) {
        snprintf(err, cap, "the machine description is empty or too long");
        return -1;
    }
    clauses c = {.sockets = 1};
    int first = 1;
    for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*w))
            w++;
        for (char *e = w + strlen(w); e > w && isspace((unsigned char)e[-1]);)
            *--e = 0;
        if (clause(m, &c, w, first, err, cap))
            return -1;
        first = 0;
    }
    if (first || c.gpus == 0)
        return snprintf(err, cap, "the machine description is empty"), -1;
    if (c.sockets > c.gpus)
        return snprintf(err, cap, "%d sockets for %d GPUs: each socket needs a GPU", c.sockets,
                        c.gpus), -1;
    if (c.links && !c.shape)
        return snprintf(err, cap, "'%d links' goes with nvlink-bridge, nvlink-hcm or nvswitch",
                        c.links), -1;
    build(m, &c);
    if (c.mem > 0)
        m->mem_gbps = c.mem;
    snprintf(m->desc, sizeof m->desc, "%s", text);
    return 0;
}
