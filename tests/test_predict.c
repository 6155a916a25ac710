/* test_predict.c: the pure functions behind `dltrain predict`
 * (launch/predict_model.c) against hand calculations, worked out in the
 * comments and in docs/scaling.md.  CTest: predict_model (labels cpu;predict). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "predict_model.h"
#ifdef DLTRAIN_HAVE_TOPO
#include "topo.h"
#endif

static int failures, checks;

static void near(const char *what, double got, double want, double rel)
{
    checks++;
    int ok = fabs(got - want) <= rel * fabs(want) + 1e-12;
    printf("%s %-66s got %.6g, want %.6g (+-%.2g%%)\n", ok ? "ok  " : "FAIL", what, got, want,
           100 * rel);
    failures += !ok;
}

static void truth(const char *what, int ok)
{
    checks++;
    printf("%s %s\n", ok ? "ok  " : "FAIL", what);
    failures += !ok;
}

/* PCIe: GT/s x lanes x 128/130 / 8 per direction; the named links agree. */
static void test_links(void)
{
    near("PCIe 3.0 x16 = 8 x 16 x 128/130 / 8 GB/s", dl_link_find("pcie3x16")->gbps, 15.7538, 1e-4);
    near("PCIe 3.0 x8", dl_link_find("pcie3x8")->gbps, 7.8769, 1e-4);
    near("PCIe 3.0 x4", dl_link_find("pcie3x4")->gbps, 3.9385, 1e-4);
    near("PCIe 4.0 x16", dl_link_find("pcie4x16")->gbps, 31.5077, 1e-4);
    near("PCIe 5.0 x16", dl_link_find("pcie5x16")->gbps, 63.0154, 1e-4);
    near("PCIe 1.0 x16 (8b/10b): 2.5 x 16 x 0.8 / 8", dl_pcie_gbps(1, 16), 4.0, 1e-12);
    near("NVLink 3.0 (A100): 12 x 25 GB/s", dl_link_find("nvlink3")->gbps, 300, 1e-12);
    near("InfiniBand HDR: 200 Gb/s = 25 GB/s", dl_link_find("ib-hdr")->gbps, 25, 1e-12);
    near("10 GbE: 1.25 GB/s", dl_link_find("eth-10g")->gbps, 1.25, 1e-12);
    static const char *names[] = {"pcie3x16", "pcie3x8", "pcie3x4", "pcie4x16", "pcie4x8",
                                  "pcie4x4", "pcie5x16", "pcie5x8", "pcie5x4", "nvlink2",
                                  "nvlink3", "nvlink4", "ib-edr", "ib-hdr", "ib-ndr", "eth-10g",
                                  "eth-25g", "eth-100g"};
    int n = 0, all = 1;
    for (const dl_link *l = dl_links; l->name; l++)
        n++;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const dl_link *l = dl_link_find(names[i]);
        all &= l && l->gbps > 0 && l->alpha_us > 0 && strstr(dl_link_names(), names[i]);
    }
    truth("all 18 link names found, each with bandwidth and latency", all && n == 18);
    truth("unknown names are not links", !dl_link_find("pcie3x32") && !dl_link_find("this") &&
                                             !dl_link_find(""));
    for (int gen = 3; gen <= 5; gen++)
        for (int lanes = 4; lanes <= 16; lanes *= 2) {
            char name[32], what[96];
            snprintf(name, sizeof name, "pcie%dx%d", gen, lanes);
            snprintf(what, sizeof what, "%s = dl_pcie_gbps(%d, %d)", name, gen, lanes);
            near(what, dl_link_find(name)->gbps, dl_pcie_gbps(gen, lanes), 1e-12);
#ifdef DLTRAIN_HAVE_TOPO
            snprintf(what, sizeof what, "%s = dl_topo_link_gbps (dltrain topo's figure)", name);
            near(what, dl_link_find(name)->gbps, dl_topo_link_gbps(dl_topo_gts_from_gen(gen), lanes),
                 1e-12);
#endif
        }
}

/* "4 lanes shared across 16 GPUs leaves about 0.27 GB/s per GPU for
 * synchronisation."  PCIe 3.0 x4 moves 4 x 8 GT/s x 128/130 / 8 = 3.938 GB/s
 * per direction.  Shared equally by 16 GPUs sending at once: 3.938 / 16 =
 * 0.246 GB/s each (0.25 ignoring the 128b/130b encoding).  The quoted 0.27
 * is 4 GB/s / 15 = 0.267: the link divided among a GPU's 15 peers rather than
 * the 16 GPUs using it.  With every GPU sending, 0.246 is the figure. */
static void test_shared_lanes(void)
{
    double x4 = dl_link_find("pcie3x4")->gbps;
    near("PCIe 3.0 x4 shared by 16 GPUs: 3.938 / 16 GB/s each", dl_link_share_gbps(x4, 16), 0.2462,
         1e-3);
    near("... ignoring encoding: 4 GB/s / 16", dl_link_share_gbps(4.0, 16), 0.25, 1e-12);
    near("the quoted 'about 0.27' = 4 GB/s / 15", dl_link_share_gbps(4.0, 15), 0.27, 0.02);
    truth("equal sharing by 16 does not give 0.27 (10% lower)",
          fabs(dl_link_share_gbps(x4, 16) - 0.27) / 0.27 > 0.05);
    /* What it means: ResNet-50's 25,557,032 fp32 gradients (102.2 MB) in a ring of 16 at
     * 0.2462 GB/s: 2 x 15/16 x 102.228 MB / 0.2462 GB/s = 778.6 ms per step. */
    near("ResNet-50 all-reduce over 16 GPUs on a shared x4: ms",
         dl_ring_allreduce_ms(4.0 * 25557032, 16, dl_link_share_gbps(x4, 16), 0), 778.6, 1e-3);
}

/* "A batch of 32 ImageNet images (32x3x224x224 fp32) takes about 1.1 ms over
 * 16 PCIe 3.0 lanes, 2.3 ms over 8, 4.5 ms over 4."  The batch is
 * 32 x 3 x 224 x 224 x 4 = 19,267,584 bytes = 18.375 MiB.  Over the links'
 * real ceilings (15.754, 7.877, 3.938 GB/s): 1.223, 2.446, 4.892 ms.  The
 * quoted figures are 18.375 "MB" over 1 GB/s per lane (16, 8, 4 GB/s):
 * 1.148, 2.297, 4.594 ms, i.e. MiB taken for MB and 8 GT/s taken for 1 GB/s;
 * the exact figures are 6.5% higher, and real copies (75-90% of the
 * ceiling) higher still. */
static void test_batch_transfer(void)
{
    double bytes = 32.0 * 3 * 224 * 224 * 4;
    near("32x3x224x224 fp32 batch, bytes", bytes, 19267584, 0);
    near("over pcie3x16, ms", dl_transfer_ms(bytes, dl_link_find("pcie3x16")->gbps), 1.2230, 1e-3);
    near("over pcie3x8, ms", dl_transfer_ms(bytes, dl_link_find("pcie3x8")->gbps), 2.4460, 1e-3);
    near("over pcie3x4, ms", dl_transfer_ms(bytes, dl_link_find("pcie3x4")->gbps), 4.8920, 1e-3);
    double mib = bytes / (1024.0 * 1024.0);
    near("hand figure x16: 18.375 MB / 16 GB/s ~ 'about 1.1 ms'", dl_transfer_ms(mib * 1e6, 16), 1.1,
         0.05);
    near("hand figure x8: 18.375 MB / 8 GB/s ~ 'about 2.3 ms'", dl_transfer_ms(mib * 1e6, 8), 2.3,
         0.05);
    near("hand figure x4: 18.375 MB / 4 GB/s ~ 'about 4.5 ms'", dl_transfer_ms(mib * 1e6, 4), 4.5,
         0.05);
    near("halving the lanes doubles the time",
         dl_transfer_ms(bytes, dl_link_find("pcie3x8")->gbps) /
             dl_transfer_ms(bytes, dl_link_find("pcie3x16")->gbps), 2.0, 1e-12);
    near("PCIe 4.0 x8 = PCIe 3.0 x16", dl_link_find("pcie4x8")->gbps,
         dl_link_find("pcie3x16")->gbps, 1e-12);
}

/* Ring all-reduce: 2(n-1)/n x bytes / bandwidth + 2(n-1) x alpha. */
static void test_ring(void)
{
    near("1 GPU: nothing to reduce", dl_ring_allreduce_ms(1e9, 1, 10, 5), 0, 0);
    near("2 GPUs, 1 GB at 1 GB/s: 2 x 1/2 x 1 s", dl_ring_allreduce_ms(1e9, 2, 1, 0), 1000, 1e-12);
    near("4 GPUs, 1 GB at 1 GB/s: 1.5 s", dl_ring_allreduce_ms(1e9, 4, 1, 0), 1500, 1e-12);
    near("8 GPUs latency: 14 steps x 5 us", dl_ring_allreduce_ms(1, 8, 1e12, 5), 0.070, 1e-6);
    near("bus factor of 16 = 30/16", dl_ring_bus_factor(16), 1.875, 1e-12);
    near("bus factor of 1 = 0", dl_ring_bus_factor(1), 0, 0);
}

/* Overlap: compute 90 ms, backward 2/3 = 60 ms, 100 MiB in four 25 MiB
 * buckets, ready at 15, 30, 45, 60 ms into backward.  2 GPUs (factor 1),
 * no latency, a bandwidth at which one bucket takes exactly 10 ms: they run
 * 15-25, 30-40, 45-55, 60-70: only the last bucket's 10 ms is exposed. */
static void test_overlap(void)
{
    const double mib = 1024.0 * 1024.0, bucket = 25 * mib;
    dl_step_inputs in = {.compute_ms = 90, .backward_frac = 2.0 / 3.0, .grad_bytes = 100 * mib,
                         .bucket_bytes = bucket, .overlap = 1, .gpus = 2,
                         .gbps = bucket / 0.010 / 1e9, .alpha_us = 0};
    dl_step_model m;
    truth("valid inputs predict", dl_step_predict(&in, &m) == 0);
    near("4 buckets", m.buckets, 4, 0);
    near("backward 60 ms", m.backward_ms, 60, 1e-12);
    near("communication 40 ms in all", m.comm_ms, 40, 1e-9);
    near("exposed: the last bucket, 10 ms", m.exposed_ms, 10, 1e-9);
    near("hidden: 30 ms", m.hidden_ms, 30, 1e-9);
    near("step 100 ms", m.step_ms, 100, 1e-9);

    /* Slower link: 30 ms a bucket.  They queue: 15-45, 45-75, 75-105, 105-135:
     * 75 ms exposed (more than the last bucket: the link is the bottleneck). */
    in.gbps = bucket / 0.030 / 1e9;
    dl_step_predict(&in, &m);
    near("link-bound: exposed 135 - 60 = 75 ms", m.exposed_ms, 75, 1e-9);
    near("link-bound: hidden 45 ms", m.hidden_ms, 45, 1e-9);

    /* No overlap: everything after backward. */
    in.gbps = bucket / 0.010 / 1e9, in.overlap = 0;
    dl_step_predict(&in, &m);
    near("--no-overlap: all 40 ms exposed", m.exposed_ms, 40, 1e-9);

    /* One bucket larger than the gradients: nothing to overlap with. */
    in.overlap = 1, in.bucket_bytes = 200 * mib;
    dl_step_predict(&in, &m);
    near("one bucket: all of it exposed", m.exposed_ms, m.comm_ms, 1e-12);
    near("one bucket: 40 ms", m.comm_ms, 40, 1e-9);

    /* Uneven last bucket: 100 MiB in 30 MiB buckets = 30, 30, 30, 10 MiB,
     * taking 12, 12, 12, 4 ms and ready at 18, 36, 54, 60 ms.  They run 18-30,
     * 36-48, 54-66 and 66-70: the third bucket is still on the link when
     * backward ends, so 10 ms show, not just the last bucket's 4. */
    in.bucket_bytes = 30 * mib;
    dl_step_predict(&in, &m);
    near("100 MiB in 30 MiB buckets: 4", m.buckets, 4, 0);
    near("... exposed 70 - 60 = 10 ms (the third still running)", m.exposed_ms, 10, 1e-9);

    /* Latency counts per bucket: 4 buckets x 2 steps x 1000 us. */
    in.bucket_bytes = bucket, in.alpha_us = 1000;
    dl_step_predict(&in, &m);
    near("latency per bucket: 40 + 4 x 2 x 1 ms", m.comm_ms, 48, 1e-9);

    /* One GPU: no communication at all. */
    in.gpus = 1;
    dl_step_predict(&in, &m);
    near("one GPU: step = compute", m.step_ms, 90, 0);
    truth("bucket size 0 is rejected", (in.bucket_bytes = 0, dl_step_predict(&in, &m) == -1));
}

/* Calibration recovers a link from synthetic measurements. */
static void test_calibrate(void)
{
    double bytes[12], t[12];
    int n = 0;
    for (double b = 4; n < 12; b *= 16, n++) {
        bytes[n] = b;
        t[n] = dl_ring_allreduce_ms(b, 4, 10.0, 7.0) * 1e3;
    }
    double gbps = 0, alpha = 0;
    truth("calibrates from 4 ranks", dl_link_calibrate(4, bytes, t, n, &gbps, &alpha) == 0);
    near("bandwidth: best bus bandwidth ~ 10 GB/s", gbps, 10.0, 1e-3);
    near("latency per step ~ 7 us", alpha, 7.0, 1e-2);
    truth("one rank cannot be calibrated from", dl_link_calibrate(1, bytes, t, n, &gbps, &alpha) == -1);
}

int main(void)
{
    test_links();
    test_shared_lanes();
    test_batch_transfer();
    test_ring();
    test_overlap();
    test_calibrate();
    printf("%d of %d checks failed\n", failures, checks);
    return failures != 0;
}
