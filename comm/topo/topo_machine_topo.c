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

/* The switch closest to the CPU on the GPU's path: its uplink is what the
 * GPUs below it share on the way to the host. */
static int top_switch(const dl_topo *t, const dl_topo_gpu *g)
{
    for (int i = 0; i < g->n_ports; i++) {
        int sw = t->ports[g->ports[i]].sw;
        if (sw >= 0)
            return sw;
    }
    return -1;
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

static void cpu_from_topo(const dl_topo *t, dl_machine *m)
{
    if (t->cpu_vendor == DL_TOPO_CPU_AMD)
        m->cpu = DL_MCPU_AMD, m->cpu_name = "amd", m->socket_gbps = 16, m->mem_gbps = 204.8;
    else if (t->cpu_vendor == DL_TOPO_CPU_ARM)
        m->cpu = DL_MCPU_ARM, m->cpu_name = "arm", m->socket_gbps = 6, m->mem_gbps = 204.8;
    else
        m->cpu = DL_MCPU_INTEL, m->cpu_name = "skylake", m->socket_gbps = 10, m->mem_gbps = 128;
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
        mg->gen = dl_topo_gen_from_gts(g->link.max_gts ? g->link.max_gts : g->link.cur_gts);
        mg->lanes = g->link.cur_width ? g->link.cur_width : g->link.max_width;
        if (mg->gen == 0 || mg->lanes == 0)
            return snprintf(err, cap, "the PCIe link of GPU %d (%s) is unknown ('dltrain topo' "
                            "says why)", i, g->bdf), -1;
        mg->socket = socket_of(t, g, ids, &n_ids);
        int sw = top_switch(t, g);
        mg->sw = -1;
        if (sw >= 0) {
            if (sw_map[sw] < 0) {
                const dl_topo_link *up = &t->ports[t->switches[sw].upstream].link;
                dl_mswitch *ms = &m->sw[m->n_switches];
                ms->gen = dl_topo_gen_from_gts(up->max_gts ? up->max_gts : up->cur_gts);
                ms->lanes = up->cur_width ? up->cur_width : up->max_width;
                if (!ms->gen || !ms->lanes) /* unknown uplink: as wide as the GPU's */
                    ms->gen = mg->gen, ms->lanes = 16;
                ms->socket = mg->socket;
                sw_map[sw] = m->n_switches++;
            }
            mg->sw = sw_map[sw];
        }
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
        }
    snprintf(m->desc, sizeof m->desc, "%d GPU%s read under %.200s", m->n_gpus,
             m->n_gpus == 1 ? "" : "s", t->root);
    return 0;
}
