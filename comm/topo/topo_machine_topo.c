/* topo_machine_topo.c: a dl_machine from what dltrain topo read (sysfs, a
 * fixture tree, NVML), so `predict --link this` and `--machine DIR` model the
 * machine as it is wired. */
#include "topo_cost.h"

#include <stdio.h>
#include <string.h>

/* NCCL's GB/s per NVLink by NVML's version number (1 = 1.0 ... 7 = 5.0),
 * as in src/graph/topo.h's SMxx_NVLINK_BW for the parts that carry them. */
static double nccl_nvlink_gbps(int version, const char **name)
{
    static const double gbps[] = {20, 18, 20, 20, 20, 20, 20.6, 40.1};
    static const char *names[] = {"nvlink3", "nvlink1", "nvlink2", "nvlink2", "nvlink3",
                                  "nvlink3", "nvlink4", "nvlink5"};
    int v = version >= 1 && version <= 7 ? version : 0;
    *name = names[v];
    return gbps[v];
}

/* A link's generation and width as it trains: the lower of what the two
 * ends can do (a gen4 card in a gen3 slot runs gen3).  The device's current
 * width is kept when known (an x16 card wired x8 says 8), its speed is not:
 * idle GPUs drop to 2.5 GT/s to save power. */
static void trained_link(const dl_topo_link *dev, const dl_topo_link *port, int *gen, int *lanes)
{
    int g_dev = dl_topo_gen_from_gts(dev->max_gts ? dev->max_gts : dev->cur_gts);
    int g_port = port ? dl_topo_gen_from_gts(port->max_gts) : 0;
    *gen = g_dev && g_port && g_port < g_dev ? g_port : g_dev;
    int w_port = port ? port->max_width : 0;
    *lanes = dev->cur_width ? dev->cur_width : dev->max_width;
    if (!dev->cur_width && w_port && w_port < *lanes)
        *lanes = w_port;
}

/* The port just above GPU g (its root or switch downstream port), or NULL. */
static const dl_topo_link *port_above(const dl_topo *t, const dl_topo_gpu *g)
{
    return g->n_ports > 0 ? &t->ports[g->ports[g->n_ports - 1]].link : NULL;
}

/* One machine switch per PCIe switch on any GPU's path, with the switch its
 * uplink goes into as parent (nested switches), so every uplink a hop
 * crosses is charged.  sw_map: dl_topo switch -> machine switch. */
static int switch_of(const dl_topo *t, const dl_topo_gpu *g, int k, int socket, int *sw_map,
                     dl_machine *m)
{
    int sw = t->ports[g->ports[k]].sw;
    if (sw < 0 || sw >= DL_TOPO_MAX_SWITCHES)
        return -1;
    if (sw_map[sw] >= 0 || m->n_switches == DL_MACHINE_MAX_GPUS)
        return sw_map[sw];
    const dl_topo_port *up = &t->ports[t->switches[sw].upstream];
    const dl_topo_link *above = up->parent >= 0 ? &t->ports[up->parent].link : NULL;
    dl_mswitch *ms = &m->sw[m->n_switches];
    trained_link(&up->link, above, &ms->gen, &ms->lanes);
    if (!ms->gen || !ms->lanes) /* unknown uplink: x16 of the GPU's generation */
        ms->gen = 0, ms->lanes = 16;
    ms->socket = socket, ms->parent = -1;
    snprintf(ms->name, sizeof ms->name, "%s", up->bdf);
    return sw_map[sw] = m->n_switches++;
}

/* GPU i's switches, nearest first, linked child to parent. */
static void switches_of(const dl_topo *t, int i, int *sw_map, dl_machine *m)
{
    const dl_topo_gpu *g = &t->gpus[i];
    int below = -1;
    m->gpu[i].sw = -1;
    for (int k = g->n_ports - 1; k >= 0; k--) {
        int s = switch_of(t, g, k, m->gpu[i].socket, sw_map, m);
        if (s < 0 || s == below)
            continue; /* not a switch port, or the same switch's upstream port */
        if (below < 0)
            m->gpu[i].sw = s;
        else
            m->sw[below].parent = s;
        if (!m->sw[s].gen)
            m->sw[s].gen = m->gpu[i].gen;
        below = s;
    }
}

static int socket_of(const dl_topo *t, const dl_topo_gpu *g, int *ids, int *n_ids)
{
    int pkg = g->package >= 0 ? g->package
              : g->complex >= 0 ? t->complexes[g->complex].package : 0;
    if (pkg < 0)
        pkg = 0;
    for (int i = 0; i < *n_ids; i++)
        if (ids[i] == pkg)
            return i;
    if (*n_ids == DL_MACHINE_MAX_SOCKETS)
        return 0;
    ids[*n_ids] = pkg;
    return (*n_ids)++;
}

/* NCCL's CPU classes (src/graph/topo.cc, ncclTopoAddCpu): Intel family 6
 * from model 0xCF Emerald Rapids, from 0x8F Sapphire Rapids, from 0x55
 * Skylake, below that Broadwell; the model is in the kernel's modalias
 * ("cpu:type:x86,ven0000fam0006mod0055:...").  Unknown: Skylake. */
static const char *intel_class(const char *modalias)
{
    const char *p = strstr(modalias, "fam");
    unsigned fam = 0, model = 0;
    if (!p || sscanf(p, "fam%4xmod%4x", &fam, &model) != 2 || fam != 6)
        return "skylake";
    return model >= 0xCF ? "emerald-rapids" : model >= 0x8F ? "sapphire-rapids"
           : model >= 0x55 ? "skylake" : "broadwell";
}

static void cpu_from_topo(const dl_topo *t, dl_machine *m)
{
    char err[128];
    dl_machine words;
    const char *word = t->cpu_vendor == DL_TOPO_CPU_AMD   ? "amd"
                       : t->cpu_vendor == DL_TOPO_CPU_ARM ? "arm"
                                                          : intel_class(t->cpu_modalias);
    char desc[64];
    snprintf(desc, sizeof desc, "1x pcie3x16, %s", word);
    if (dl_machine_parse(desc, &words, err, sizeof err) == 0) /* the grammar's CPU table */
        m->cpu = words.cpu, m->cpu_name = words.cpu_name, m->socket_gbps = words.socket_gbps,
        m->mem_gbps = words.mem_gbps;
}

static void nvlinks_from_topo(const dl_topo *t, dl_machine *m)
{
    for (int a = 0; a < m->n_gpus; a++) {
        const dl_topo_gpu *g = &t->gpus[a];
        for (int l = 0; l < g->n_nvlinks; l++) {
            const dl_topo_nvlink *nl = &g->nvlinks[l];
            m->nvl_link_gbps = nccl_nvlink_gbps(nl->version, &m->nvl_name);
            if (nl->remote_is_switch)
                m->nvswitch = 1, m->nvl_per_gpu = g->n_nvlinks;
            else if (nl->remote_gpu >= 0 && nl->remote_gpu < m->n_gpus)
                m->nvl[a][nl->remote_gpu]++;
        }
    }
}

int dl_machine_from_topo(const dl_topo *t, dl_machine *m, char *err, size_t cap)
{
    memset(m, 0, sizeof *m);
    m->n_gpus = t->n_nvidia > 0 ? t->n_nvidia : t->n_compute;
    if (m->n_gpus <= 0)
        return snprintf(err, cap, "no GPU found under %s", t->root), -1;
    if (m->n_gpus > DL_MACHINE_MAX_GPUS)
        m->n_gpus = DL_MACHINE_MAX_GPUS;
    cpu_from_topo(t, m);
    m->p2p = 1, m->nccl_version = 22304;
    int ids[DL_MACHINE_MAX_SOCKETS], n_ids = 0, sw_map[DL_TOPO_MAX_SWITCHES];
    for (int s = 0; s < DL_TOPO_MAX_SWITCHES; s++)
        sw_map[s] = -1;
    for (int i = 0; i < m->n_gpus; i++) {
        const dl_topo_gpu *g = &t->gpus[i];
        dl_mgpu *mg = &m->gpu[i];
        trained_link(&g->link, port_above(t, g), &mg->gen, &mg->lanes);
        if (mg->gen == 0 || mg->lanes == 0)
            return snprintf(err, cap, "the PCIe link of GPU %d (%s) is unknown ('dltrain topo' "
                            "says why)", i, g->bdf), -1;
        mg->socket = socket_of(t, g, ids, &n_ids);
        switches_of(t, i, sw_map, m);
    }
    m->sockets = n_ids > 0 ? n_ids : 1;
    nvlinks_from_topo(t, m);
    /* NVML's P2P verdict: any PCIe pair it refuses (GeForce) means no P2P */
    for (int a = 0; a < m->n_gpus; a++)
        for (int b = a + 1; b < m->n_gpus; b++) {
            const dl_topo_pair *p = dl_topo_pair_get(t, a, b);
            if (p && p->nvml_p2p == 0 && p->rel != DL_TOPO_REL_NV)
                m->p2p = 0;
            if (p && p->rel != DL_TOPO_REL_UNKNOWN)
                m->path_of[a][b] = m->path_of[b][a] = (unsigned char)(p->nccl_path + 1);
            if (p && p->acs_port >= 0)
                m->acs_redirect[a][b] = m->acs_redirect[b][a] = 1;
        }
    snprintf(m->desc, sizeof m->desc, "%d GPU%s read under %.200s", m->n_gpus,
             m->n_gpus == 1 ? "" : "s", t->root);
    return 0;
}
