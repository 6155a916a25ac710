/* topo_wake.c: --wake, read link speeds while the GPUs are busy.
 *
 * An idle GPU drops its PCIe link to a lower speed (often 2.5 GT/s) to save
 * power, so sysfs shows gen1 on a gen4 slot.  To tell power saving from a
 * real problem we queue host-to-device copies from pinned memory on every
 * NVIDIA GPU (traffic on the link itself, a fraction of a second), read the
 * speeds while they run, then wait and free.  The CUDA driver API is loaded
 * with dlopen (libcuda.so.1); without the driver --wake says so. */
#define _GNU_SOURCE
#include "topo_internal.h"

#include <dlfcn.h>
#include <string.h>
#include <time.h>

#define WAKE_BYTES (64u << 20) /* per copy */
#define WAKE_COPIES 48         /* ~3 GiB: ~120 ms at 25 GB/s */
#define WAKE_SETTLE_NS 30000000L

typedef unsigned long long cu_ptr;
typedef struct {
    void *lib;
    int (*init)(unsigned);
    int (*get_by_bus)(int *, const char *);
    int (*ctx_retain)(void **, int);
    int (*ctx_release)(int);
    int (*ctx_set)(void *);
    int (*mem_alloc)(cu_ptr *, size_t);
    int (*mem_free)(cu_ptr);
    int (*host_alloc)(void **, size_t);
    int (*host_free)(void *);
    int (*stream_create)(void **, unsigned);
    int (*stream_destroy)(void *);
    int (*copy_async)(cu_ptr, const void *, size_t, void *);
    int (*stream_sync)(void *);
} cuda_api;

typedef struct {
    int dev, have_ctx;
    void *ctx, *stream, *host;
    cu_ptr dptr;
} wake_gpu;

#define LOAD(api, field, name)                                  \
    do {                                                        \
        void *p_ = dlsym((api)->lib, name);                     \
        memcpy(&(api)->field, &p_, sizeof(api)->field);         \
        ok &= p_ != NULL;                                       \
    } while (0)

static int cuda_open(cuda_api *api, char *note, size_t cap)
{
    memset(api, 0, sizeof *api);
    api->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!api->lib) {
        char clean[100];
        const char *err = dlerror();
        dl_topo_sanitize(clean, sizeof clean, err ? err : "libcuda.so.1");
        snprintf(note, cap, "needs the CUDA driver (%s); speeds were read idle", clean);
        return -1;
    }
    int ok = 1;
    LOAD(api, init, "cuInit");
    LOAD(api, get_by_bus, "cuDeviceGetByPCIBusId");
    LOAD(api, ctx_retain, "cuDevicePrimaryCtxRetain");
    LOAD(api, ctx_release, "cuDevicePrimaryCtxRelease_v2");
    LOAD(api, ctx_set, "cuCtxSetCurrent");
    LOAD(api, mem_alloc, "cuMemAlloc_v2");
    LOAD(api, mem_free, "cuMemFree_v2");
    LOAD(api, host_alloc, "cuMemAllocHost_v2");
    LOAD(api, host_free, "cuMemFreeHost");
    LOAD(api, stream_create, "cuStreamCreate");
    LOAD(api, stream_destroy, "cuStreamDestroy_v2");
    LOAD(api, copy_async, "cuMemcpyHtoDAsync_v2");
    LOAD(api, stream_sync, "cuStreamSynchronize");
    if (!ok || api->init(0) != 0) {
        snprintf(note, cap, "the CUDA driver is present but did not initialise; speeds were read idle");
        dlclose(api->lib);
        api->lib = NULL;
        return -1;
    }
    return 0;
}

/* Starts the copy loop on one GPU; returns 0 if copies are queued. */
static int wake_start(const cuda_api *api, const char *bdf, wake_gpu *w)
{
    memset(w, 0, sizeof *w);
    if (api->get_by_bus(&w->dev, bdf) != 0 || api->ctx_retain(&w->ctx, w->dev) != 0)
        return -1;
    w->have_ctx = 1;
    if (api->ctx_set(w->ctx) != 0 || api->stream_create(&w->stream, 0) != 0 ||
        api->host_alloc(&w->host, WAKE_BYTES) != 0 || api->mem_alloc(&w->dptr, WAKE_BYTES) != 0)
        return -1;
    memset(w->host, 0, WAKE_BYTES);
    for (int i = 0; i < WAKE_COPIES; i++)
        if (api->copy_async(w->dptr, w->host, WAKE_BYTES, w->stream) != 0)
            return -1;
    return 0;
}

static void wake_stop(const cuda_api *api, wake_gpu *w)
{
    if (!w->have_ctx)
        return;
    api->ctx_set(w->ctx);
    if (w->stream) {
        api->stream_sync(w->stream);
        api->stream_destroy(w->stream);
    }
    if (w->dptr)
        api->mem_free(w->dptr);
    if (w->host)
        api->host_free(w->host);
    api->ctx_release(w->dev);
}

dl_status dl_topo_wake_and_refresh(dl_topo *t, const char *nvml_lib, int skip_nvml,
                                   const dl_topo_nccl_env *env)
{
    cuda_api api;
    if (t->n_nvidia == 0) {
        snprintf(t->wake_note, sizeof t->wake_note, "no NVIDIA GPU to keep busy");
        return dl_fail(DL_ERR_DEVICE, "%s", t->wake_note);
    }
    if (cuda_open(&api, t->wake_note, sizeof t->wake_note) != 0)
        return dl_fail(DL_ERR_DEVICE, "%s", t->wake_note);
    wake_gpu w[DL_TOPO_MAX_GPUS];
    int started[DL_TOPO_MAX_GPUS], busy = 0;
    for (int g = 0; g < t->n_nvidia; g++)
        busy += started[g] = wake_start(&api, t->gpus[g].bdf, &w[g]) == 0;
    if (busy) {
        struct timespec settle = {0, WAKE_SETTLE_NS}; /* links retrain within microseconds */
        nanosleep(&settle, NULL);
        dl_topo_refresh_links(t);
        if (!skip_nvml)
            dl_topo_nvml_refresh(t, nvml_lib);
        for (int g = 0; g < t->n_nvidia; g++) {
            t->gpus[g].link.woke = started[g];
            for (int k = 0; started[g] && k < t->gpus[g].n_ports; k++)
                t->ports[t->gpus[g].ports[k]].link.woke = 1;
        }
        t->woke = 1;
    }
    for (int g = 0; g < t->n_nvidia; g++)
        wake_stop(&api, &w[g]);
    dlclose(api.lib);
    snprintf(t->wake_note, sizeof t->wake_note,
             busy ? "link speeds re-read while %d of %d NVIDIA GPUs ran a host-to-device copy loop"
                  : "no GPU could start the copy loop (%d of %d); speeds were read idle",
             busy, t->n_nvidia);
    dl_topo_analyze(t, env);
    return busy ? DL_OK : dl_fail(DL_ERR_DEVICE, "%s", t->wake_note);
}
