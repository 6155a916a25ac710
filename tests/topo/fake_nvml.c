/* fake_nvml.c: a stand-in libnvidia-ml for tests (loaded with --nvml-lib).
 *
 * Describes the workstation_4gpu_2switch fixture as a driver would: four
 * RTX A4000, GPU0 and GPU1 joined by an NVLink bridge of 4 links (NVLink
 * 3.0, nvmlNvlinkVersion_t 4), the others without NVLink, PCIe gen3 x8/x16,
 * peer access everywhere.  Only the calls comm/topo/topo_nvml.c makes exist;
 * their types mirror nvml.h, as there. */
#include <stdio.h>
#include <string.h>

#define OK 0
#define ERR_INVALID_ARGUMENT 2
#define ERR_NOT_SUPPORTED 3
#define ERR_NOT_FOUND 6

typedef struct {
    char bus_id_legacy[16];
    unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
    char bus_id[32];
} nvml_pci_info; /* nvmlPciInfo_t */

typedef struct {
    unsigned bus;     /* domain 0, device 0, function 0 */
    unsigned width;
    int peer_bus;     /* bus of the GPU at the other end of links 0..3, -1 none */
} fake_gpu;

static const fake_gpu gpus[] = {{0x03, 8, 0x04}, {0x04, 8, 0x03}, {0x07, 16, -1}, {0x08, 16, -1}};
#define N_GPUS (int)(sizeof gpus / sizeof gpus[0])
#define LINKS 4

typedef const fake_gpu *device;

int nvmlInit_v2(void) { return OK; }
int nvmlShutdown(void) { return OK; }
const char *nvmlErrorString(int rc) { return rc == OK ? "Success" : "Fake error"; }

int nvmlSystemGetDriverVersion(char *buf, unsigned len)
{
    snprintf(buf, len, "535.0-fake");
    return OK;
}

int nvmlDeviceGetHandleByPciBusId_v2(const char *bus_id, device *out)
{
    unsigned d, b, s, f;
    if (sscanf(bus_id, "%x:%x:%x.%x", &d, &b, &s, &f) != 4)
        return ERR_INVALID_ARGUMENT;
    for (int i = 0; i < N_GPUS; i++)
        if (d == 0 && b == gpus[i].bus && s == 0 && f == 0) {
            *out = &gpus[i];
            return OK;
        }
    return ERR_NOT_FOUND;
}

int nvmlDeviceGetName(device d, char *buf, unsigned len)
{
    (void)d;
    snprintf(buf, len, "NVIDIA RTX A4000");
    return OK;
}

static int put(unsigned *out, unsigned v)
{
    *out = v;
    return OK;
}

int nvmlDeviceGetCurrPcieLinkGeneration(device d, unsigned *v) { (void)d; return put(v, 3); }
int nvmlDeviceGetMaxPcieLinkGeneration(device d, unsigned *v) { (void)d; return put(v, 4); }
int nvmlDeviceGetCurrPcieLinkWidth(device d, unsigned *v) { return put(v, d->width); }
int nvmlDeviceGetMaxPcieLinkWidth(device d, unsigned *v) { (void)d; return put(v, 16); }

int nvmlDeviceGetNvLinkState(device d, unsigned link, int *active)
{
    if (link >= LINKS)
        return ERR_INVALID_ARGUMENT;
    *active = d->peer_bus >= 0;
    return OK;
}

int nvmlDeviceGetNvLinkVersion(device d, unsigned link, unsigned *version)
{
    if (link >= LINKS || d->peer_bus < 0)
        return ERR_NOT_SUPPORTED;
    return put(version, 4);
}

int nvmlDeviceGetNvLinkRemotePciInfo_v2(device d, unsigned link, nvml_pci_info *pci)
{
    if (link >= LINKS || d->peer_bus < 0)
        return ERR_NOT_SUPPORTED;
    memset(pci, 0, sizeof *pci);
    pci->bus = (unsigned)d->peer_bus;
    snprintf(pci->bus_id, sizeof pci->bus_id, "00000000:%02X:00.0", (unsigned)d->peer_bus);
    return OK;
}

int nvmlDeviceGetNvLinkRemoteDeviceType(device d, unsigned link, int *type)
{
    if (link >= LINKS || d->peer_bus < 0)
        return ERR_NOT_SUPPORTED;
    *type = 0; /* NVML_NVLINK_DEVICE_TYPE_GPU */
    return OK;
}

int nvmlDeviceGetP2PStatus(device a, device b, int index, int *status)
{
    (void)a, (void)b, (void)index;
    *status = 0; /* NVML_P2P_STATUS_OK */
    return OK;
}
