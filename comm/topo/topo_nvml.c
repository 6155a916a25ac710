/* topo_nvml.c: NVLink and the driver's view of PCIe, through NVML.
 *
 * NVML ships with the NVIDIA driver, not the toolkit, so it is loaded at run
 * time with dlopen: dltrain builds and runs without it, and then says that
 * NVLink is unknown (not absent).  Only the few calls below are used; their
 * types mirror nvml.h (nvmlPciInfo_t layout, enums as int). */
#define _GNU_SOURCE
#include "topo_internal.h"

#include <dlfcn.h>
#include <string.h>

#define NVML_SUCCESS 0
#define NVML_FEATURE_ENABLED 1
#define NVML_NVLINK_DEVICE_TYPE_SWITCH 2
#define NVML_P2P_CAPS_INDEX_READ 0
#define NVML_P2P_CAPS_INDEX_WRITE 1
#define NVML_P2P_STATUS_OK 0

typedef struct nvml_device_st *nvml_device;

typedef struct {
    char bus_id_legacy[16];
    unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
    char bus_id[32];
} nvml_pci_info; /* nvmlPciInfo_t */

typedef struct {
    void *lib;
    int (*init)(void);
    int (*shutdown)(void);
    const char *(*error_string)(int);
    int (*driver_version)(char *, unsigned);
    int (*by_bus_id)(const char *, nvml_device *);
    int (*name)(nvml_device, char *, unsigned);
    int (*cur_gen)(nvml_device, unsigned *);
    int (*cur_width)(nvml_device, unsigned *);
    int (*max_gen)(nvml_device, unsigned *);
    int (*max_width)(nvml_device, unsigned *);
    int (*link_state)(nvml_device, unsigned, int *);
    int (*link_version)(nvml_device, unsigned, unsigned *);
    int (*link_remote_pci)(nvml_device, unsigned, nvml_pci_info *);
    int (*link_remote_type)(nvml_device, unsigned, int *);
    int (*p2p_status)(nvml_device, nvml_device, int, int *);
} nvml_api;

static void *sym(void *lib, const char *name)
{
    return dlsym(lib, name);
}

/* dlsym returns void *; memcpy converts it to a function pointer portably. */
#define LOAD(api, field, name)                                  \
    do {                                                        \
        void *p_ = sym((api)->lib, name);                       \
        memcpy(&(api)->field, &p_, sizeof(api)->field);         \
    } while (0)

static void nvml_close(nvml_api *api, int initialised)
{
    if (initialised && api->shutdown)
        api->shutdown();
    if (api->lib)
        dlclose(api->lib);
    memset(api, 0, sizeof *api);
}

/* Opens and initialises NVML; on failure writes why into note. */
static int nvml_open(nvml_api *api, const char *lib, char *note, size_t cap)
{
    memset(api, 0, sizeof *api);
    const char *path = lib ? lib : "libnvidia-ml.so.1";
    api->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!api->lib) {
        const char *err = dlerror();
        char clean[DL_TOPO_NOTE_LEN - 24];
        dl_topo_sanitize(clean, sizeof clean, err ? err : path);
        snprintf(note, cap, "NVML not available (%s)", clean);
        return -1;
    }
    LOAD(api, init, "nvmlInit_v2");
    LOAD(api, shutdown, "nvmlShutdown");
    LOAD(api, error_string, "nvmlErrorString");
    LOAD(api, driver_version, "nvmlSystemGetDriverVersion");
    LOAD(api, by_bus_id, "nvmlDeviceGetHandleByPciBusId_v2");
    LOAD(api, name, "nvmlDeviceGetName");
    LOAD(api, cur_gen, "nvmlDeviceGetCurrPcieLinkGeneration");
    LOAD(api, cur_width, "nvmlDeviceGetCurrPcieLinkWidth");
    LOAD(api, max_gen, "nvmlDeviceGetMaxPcieLinkGeneration");
    LOAD(api, max_width, "nvmlDeviceGetMaxPcieLinkWidth");
    LOAD(api, link_state, "nvmlDeviceGetNvLinkState");
    LOAD(api, link_version, "nvmlDeviceGetNvLinkVersion");
    LOAD(api, link_remote_pci, "nvmlDeviceGetNvLinkRemotePciInfo_v2");
    LOAD(api, link_remote_type, "nvmlDeviceGetNvLinkRemoteDeviceType");
    LOAD(api, p2p_status, "nvmlDeviceGetP2PStatus");
    if (!api->init || !api->shutdown || !api->by_bus_id) {
        snprintf(note, cap, "NVML not available (%s lacks nvmlInit_v2 or "
                            "nvmlDeviceGetHandleByPciBusId_v2)", path);
        nvml_close(api, 0);
        return -1;
    }
    int rc = api->init();
    if (rc != NVML_SUCCESS) {
        const char *why = api->error_string ? api->error_string(rc) : NULL;
        char clean[96];
        dl_topo_sanitize(clean, sizeof clean, why ? why : "error");
        snprintf(note, cap, "NVML not available (nvmlInit_v2: %s, code %d)", clean, rc);
        nvml_close(api, 0);
        return -1;
    }
    return 0;
}

static unsigned query_uint(int (*fn)(nvml_device, unsigned *), nvml_device d)
{
    unsigned v = 0;
    return fn && fn(d, &v) == NVML_SUCCESS ? v : 0;
}

static void read_pcie(const nvml_api *api, nvml_device d, dl_topo_gpu *g, int current_only)
{
    g->nvml_cur_gen = (int)query_uint(api->cur_gen, d);
    g->nvml_cur_width = (int)query_uint(api->cur_width, d);
    if (current_only)
        return;
    g->nvml_max_gen = (int)query_uint(api->max_gen, d);
    g->nvml_max_width = (int)query_uint(api->max_width, d);
}

static int gpu_by_bus_id(const dl_topo *t, const char *bus_id)
{
    unsigned d, b, s, f, d2, b2, s2, f2;
    if (sscanf(bus_id, "%x:%x:%x.%x", &d, &b, &s, &f) != 4)
        return -1;
    for (int g = 0; g < t->n_gpus; g++)
        if (dl_topo_parse_bdf(t->gpus[g].bdf, &d2, &b2, &s2, &f2) == 0 && d == d2 && b == b2 &&
            s == s2 && f == f2)
            return g;
    return -1;
}

static void read_nvlinks(const nvml_api *api, nvml_device d, const dl_topo *t, dl_topo_gpu *g)
{
    g->n_nvlinks = 0;
    if (!api->link_state)
        return;
    for (unsigned link = 0; link < DL_TOPO_MAX_NVLINKS; link++) {
        int active = 0;
        if (api->link_state(d, link, &active) != NVML_SUCCESS || active != NVML_FEATURE_ENABLED)
            continue;
        dl_topo_nvlink *nl = &g->nvlinks[g->n_nvlinks++];
        memset(nl, 0, sizeof *nl);
        nl->link = (int)link;
        nl->remote_gpu = -1;
        unsigned version = 0;
        if (api->link_version && api->link_version(d, link, &version) == NVML_SUCCESS)
            nl->version = (int)version;
        nvml_pci_info pci;
        memset(&pci, 0, sizeof pci);
        if (api->link_remote_pci && api->link_remote_pci(d, link, &pci) == NVML_SUCCESS) {
            pci.bus_id[sizeof pci.bus_id - 1] = '\0';
            dl_topo_sanitize(nl->remote_bdf, sizeof nl->remote_bdf, pci.bus_id);
            nl->remote_gpu = gpu_by_bus_id(t, pci.bus_id);
        }
        int type = -1;
        if (api->link_remote_type && api->link_remote_type(d, link, &type) == NVML_SUCCESS)
            nl->remote_is_switch = type == NVML_NVLINK_DEVICE_TYPE_SWITCH;
        else /* older drivers: a peer that is not one of our GPUs is an NVSwitch */
            nl->remote_is_switch = nl->remote_gpu < 0;
    }
}

/* NCCL refuses P2P where NVML says read or write P2P is not supported. */
static void read_p2p(const nvml_api *api, dl_topo *t, nvml_device *dev, const int *found)
{
    if (!api->p2p_status)
        return;
    for (int a = 0; a < t->n_gpus; a++)
        for (int b = 0; b < t->n_gpus; b++) {
            if (a == b || !found[a] || !found[b])
                continue;
            int rd = -1, wr = -1;
            if (api->p2p_status(dev[a], dev[b], NVML_P2P_CAPS_INDEX_READ, &rd) != NVML_SUCCESS ||
                api->p2p_status(dev[a], dev[b], NVML_P2P_CAPS_INDEX_WRITE, &wr) != NVML_SUCCESS)
                continue;
            t->pairs[a * t->n_gpus + b].nvml_p2p = rd == NVML_P2P_STATUS_OK && wr == NVML_P2P_STATUS_OK;
        }
}

static void read_devices(const nvml_api *api, dl_topo *t, int current_only)
{
    nvml_device dev[DL_TOPO_MAX_GPUS];
    int found[DL_TOPO_MAX_GPUS] = {0};
    for (int g = 0; g < t->n_gpus; g++) {
        dl_topo_gpu *gpu = &t->gpus[g];
        if (gpu->vendor != 0x10de || api->by_bus_id(gpu->bdf, &dev[g]) != NVML_SUCCESS)
            continue;
        found[g] = gpu->nvml_found = 1;
        read_pcie(api, dev[g], gpu, current_only);
        if (current_only)
            continue;
        char name[96] = "";
        if (api->name && api->name(dev[g], name, sizeof name) == NVML_SUCCESS && name[0]) {
            name[sizeof name - 1] = '\0';
            dl_topo_sanitize(gpu->name, sizeof gpu->name, name);
            gpu->name_src = DL_TOPO_SRC_NVML;
        }
        read_nvlinks(api, dev[g], t, gpu);
    }
    if (!current_only)
        read_p2p(api, t, dev, found);
}

dl_status dl_topo_nvml_apply(dl_topo *t, const char *lib, const dl_topo_nccl_env *env)
{
    nvml_api api;
    if (nvml_open(&api, lib, t->nvml_note, sizeof t->nvml_note) != 0) {
        t->nvml = DL_TOPO_NVML_UNAVAILABLE;
        return dl_fail(DL_ERR_DEVICE, "%s", t->nvml_note);
    }
    t->nvml = DL_TOPO_NVML_OK;
    char ver[80] = "";
    if (api.driver_version && api.driver_version(ver, sizeof ver) == NVML_SUCCESS) {
        ver[sizeof ver - 1] = '\0';
        dl_topo_sanitize(t->driver_version, sizeof t->driver_version, ver);
    }
    read_devices(&api, t, 0);
    int n_found = 0;
    for (int g = 0; g < t->n_gpus; g++)
        n_found += t->gpus[g].nvml_found;
    snprintf(t->nvml_note, sizeof t->nvml_note, "NVML loaded; %d of %d NVIDIA GPUs matched by PCI address",
             n_found, t->n_nvidia);
    nvml_close(&api, 1);
    dl_topo_analyze(t, env);
    return DL_OK;
}

/* Re-reads only the current PCIe generation and width (used under --wake). */
dl_status dl_topo_nvml_refresh(dl_topo *t, const char *lib)
{
    nvml_api api;
    char note[DL_TOPO_NOTE_LEN];
    if (nvml_open(&api, lib, note, sizeof note) != 0)
        return dl_fail(DL_ERR_DEVICE, "%s", note);
    read_devices(&api, t, 1);
    nvml_close(&api, 1);
    return DL_OK;
}
