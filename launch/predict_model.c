/* predict_model.c: link table, ring all-reduce cost, overlap of gradient
 * communication with backward, transfer time.  See predict_model.h and
 * docs/scaling.md (the model and its sources). */
#include "predict_model.h"

#include <math.h>
#include <string.h>

/* Per-step latency defaults (us): NCCL's ring/Simple hardware latencies in
 * src/graph/tuning.cc (NVLink 3.4, PCI 5.7, NET 14.0).  Ethernet links are
 * assumed to go through the kernel's TCP stack (NCCL's socket transport or
 * MPI over TCP): 30 us is an order of magnitude, not a measurement. */
#define ALPHA_NVLINK 3.4
#define ALPHA_PCIE 5.7
#define ALPHA_IB 14.0
#define ALPHA_ETH 30.0

/* PCIe: GT/s x lanes x 128/130 / 8 (gen3 8 GT/s, gen4 16, gen5 32).
 * NVLink: per-GPU aggregate of one direction, 25 GB/s per link (NVLink
 * 2.0-4.0) x the links of the SXM part named.  InfiniBand 4x ports and
 * Ethernet: the data rate after 64b/66b coding (EDR 4 x 25.78125 Gbaud =
 * 100 Gb/s; HDR 200 Gb/s; NDR 400 Gb/s; 10GBASE-R 10.3125 Gbaud = 10 Gb/s). */
#define PCIE(g, w) ((g) * (w) * (128.0 / 130.0) / 8.0)
const dl_link dl_links[] = {
    {"pcie3x16", DL_LINK_PCIE, PCIE(8.0, 16), ALPHA_PCIE, "PCIe 3.0 x16: 8 GT/s x 16 x 128/130 / 8"},
    {"pcie3x8", DL_LINK_PCIE, PCIE(8.0, 8), ALPHA_PCIE, "PCIe 3.0 x8: 8 GT/s x 8 x 128/130 / 8"},
    {"pcie3x4", DL_LINK_PCIE, PCIE(8.0, 4), ALPHA_PCIE, "PCIe 3.0 x4: 8 GT/s x 4 x 128/130 / 8"},
    {"pcie4x16", DL_LINK_PCIE, PCIE(16.0, 16), ALPHA_PCIE, "PCIe 4.0 x16: 16 GT/s x 16 x 128/130 / 8"},
    {"pcie4x8", DL_LINK_PCIE, PCIE(16.0, 8), ALPHA_PCIE, "PCIe 4.0 x8: 16 GT/s x 8 x 128/130 / 8"},
    {"pcie4x4", DL_LINK_PCIE, PCIE(16.0, 4), ALPHA_PCIE, "PCIe 4.0 x4: 16 GT/s x 4 x 128/130 / 8"},
    {"pcie5x16", DL_LINK_PCIE, PCIE(32.0, 16), ALPHA_PCIE, "PCIe 5.0 x16: 32 GT/s x 16 x 128/130 / 8"},
    {"pcie5x8", DL_LINK_PCIE, PCIE(32.0, 8), ALPHA_PCIE, "PCIe 5.0 x8: 32 GT/s x 8 x 128/130 / 8"},
    {"pcie5x4", DL_LINK_PCIE, PCIE(32.0, 4), ALPHA_PCIE, "PCIe 5.0 x4: 32 GT/s x 4 x 128/130 / 8"},
    {"nvlink2", DL_LINK_NVLINK, 6 * 25.0, ALPHA_NVLINK, "NVLink 2.0 (V100 SXM2): 6 links x 25 GB/s"},
    {"nvlink3", DL_LINK_NVLINK, 12 * 25.0, ALPHA_NVLINK, "NVLink 3.0 (A100 SXM4): 12 links x 25 GB/s"},
    {"nvlink4", DL_LINK_NVLINK, 18 * 25.0, ALPHA_NVLINK, "NVLink 4.0 (H100 SXM5): 18 links x 25 GB/s"},
    {"ib-edr", DL_LINK_IB, 100.0 / 8, ALPHA_IB, "InfiniBand EDR 4x: 100 Gb/s data (64b/66b)"},
    {"ib-hdr", DL_LINK_IB, 200.0 / 8, ALPHA_IB, "InfiniBand HDR 4x: 200 Gb/s data"},
    {"ib-ndr", DL_LINK_IB, 400.0 / 8, ALPHA_IB, "InfiniBand NDR 4x: 400 Gb/s data"},
    {"eth-10g", DL_LINK_ETH, 10.0 / 8, ALPHA_ETH, "10 Gigabit Ethernet: 10 Gb/s data (64b/66b)"},
    {"eth-25g", DL_LINK_ETH, 25.0 / 8, ALPHA_ETH, "25 Gigabit Ethernet: 25 Gb/s data (64b/66b)"},
    {"eth-100g", DL_LINK_ETH, 100.0 / 8, ALPHA_ETH, "100 Gigabit Ethernet: 100 Gb/s data (64b/66b)"},
    {NULL, DL_LINK_PCIE, 0, 0, NULL},
};
#undef PCIE

const dl_link *dl_link_find(const char *name)
{
    for (const dl_link *l = dl_links; name && l->name; l++)
        if (strcmp(l->name, name) == 0)
            return l;
    return NULL;
}

const char *dl_link_names(void)
{
    return "pcie3x16, pcie3x8, pcie3x4, pcie4x16, pcie4x8, pcie4x4, pcie5x16, pcie5x8, pcie5x4, "
           "nvlink2, nvlink3, nvlink4, ib-edr, ib-hdr, ib-ndr, eth-10g, eth-25g, eth-100g, this";
}

double dl_pcie_gbps(int gen, int lanes)
{
    static const double gts[] = {0, 2.5, 5.0, 8.0, 16.0, 32.0};
    if (gen < 1 || gen > 5 || lanes < 1)
        return 0.0;
    double enc = gen <= 2 ? 8.0 / 10.0 : 128.0 / 130.0;
    return gts[gen] * lanes * enc / 8.0;
}

double dl_link_share_gbps(double gbps, int sharers)
{
    return sharers > 0 ? gbps / sharers : 0.0;
}

double dl_ring_bus_factor(int n)
{
    return n > 1 ? 2.0 * (n - 1) / n : 0.0;
}

double dl_ring_allreduce_ms(double bytes, int n, double gbps, double alpha_us)
{
    if (n <= 1 || bytes <= 0)
        return 0.0;
    if (gbps <= 0)
        return INFINITY;
    return dl_ring_bus_factor(n) * bytes / (gbps * 1e9) * 1e3 + 2.0 * (n - 1) * alpha_us * 1e-3;
}

double dl_transfer_ms(double bytes, double gbps)
{
    return gbps > 0 ? bytes / (gbps * 1e9) * 1e3 : INFINITY;
}

double dl_train_flops_per_sample(double macs_per_sample)
{
    return 6.0 * macs_per_sample;
}

int dl_step_predict(const dl_step_inputs *in, dl_step_model *out)
{
    memset(out, 0, sizeof *out);
    if (!(in->compute_ms >= 0) || !(in->backward_frac >= 0 && in->backward_frac <= 1) ||
        !(in->grad_bytes >= 0) || !(in->bucket_bytes > 0) || in->gpus < 1 || !(in->alpha_us >= 0))
        return -1;
    out->compute_ms = in->compute_ms;
    out->backward_ms = in->compute_ms * in->backward_frac;
    out->forward_ms = in->compute_ms - out->backward_ms;
    out->step_ms = in->compute_ms;
    if (in->grad_bytes <= 0)
        return 0;
    double nb = ceil(in->grad_bytes / in->bucket_bytes);
    if (nb > 1e7)
        return -1; /* a bucket size this small is a mistake, not a model */
    out->buckets = (int)nb;
    if (in->gpus == 1)
        return 0; /* one rank: nothing to reduce */
    if (!(in->gbps > 0))
        return -1;
    /* Timeline from the start of backward: bucket i is ready when backward has
     * produced bytes [0, end_i); the link takes buckets one at a time, in order. */
    double link_free = 0.0, done = 0.0;
    for (int i = 0; i < out->buckets; i++) {
        double lo = in->bucket_bytes * i;
        double hi = fmin(in->grad_bytes, lo + in->bucket_bytes);
        double ready = in->overlap ? out->backward_ms * hi / in->grad_bytes : out->backward_ms;
        double t = dl_ring_allreduce_ms(hi - lo, in->gpus, in->gbps, in->alpha_us);
        double start = fmax(ready, link_free);
        link_free = done = start + t;
        out->comm_ms += t;
    }
    out->exposed_ms = fmax(0.0, done - out->backward_ms);
    out->hidden_ms = out->comm_ms - out->exposed_ms;
    out->step_ms = in->compute_ms + out->exposed_ms;
    return 0;
}

int dl_link_calibrate(int world, const double *bytes, const double *time_us, int n,
                      double *gbps, double *alpha_us)
{
    if (world < 2 || n < 1)
        return -1;
    double best = 0.0, small_b = 0.0, small_t = 0.0;
    int have_small = 0;
    for (int i = 0; i < n; i++) {
        if (!(time_us[i] > 0) || !(bytes[i] > 0))
            continue;
        double busbw = bytes[i] * dl_ring_bus_factor(world) / (time_us[i] * 1e-6) / 1e9;
        if (busbw > best)
            best = busbw;
        if (!have_small || bytes[i] < small_b)
            small_b = bytes[i], small_t = time_us[i], have_small = 1;
    }
    if (!(best > 0))
        return -1;
    double bw_us = dl_ring_bus_factor(world) * small_b / (best * 1e9) * 1e6;
    *gbps = best;
    *alpha_us = fmax(0.0, (small_t - bw_us) / (2.0 * (world - 1)));
    return 0;
}
