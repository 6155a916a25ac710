/* report_fixture.c: writes the HTML report (launch/report/report_html.c) from
 * realistic sample data, for tests/test_report_html.py to parse and render.
 *
 *   report_fixture OUT.html full      1, 2 (two GPU sets), 4, 8 ranks and a sweep
 *   report_fixture OUT.html no-bw     scaling only: the bandwidth chart is absent
 *   report_fixture OUT.html empty     nothing measured: every chart absent
 *   report_fixture DIR/x.html fail    DIR does not exist: must fail cleanly
 *
 * The sample is shaped like ResNet-50 at batch 64 per GPU on PCIe 4.0 GPUs;
 * the predicted speedups come from the predict model itself.  Strings carry
 * markup and quotes on purpose: the page must show them as text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/common.h"
#include "predict_model.h"
#include "report.h"

#define RESNET50_GRAD_BYTES 102228128.0

static void add_point(dl_report *r, int ranks, const char *label, double ips, double spread,
                      double compute_ms, double comm_ms, double exposed_ms) {
    dl_report_scale_point *p = &r->scale[r->n_scale++];
    p->ranks = ranks;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->images_per_s = ips;
    p->images_per_s_lo = ips * (1 - spread);
    p->images_per_s_hi = ips * (1 + spread / 2);
    p->compute_ms = compute_ms;
    p->comm_ms = comm_ms;
    p->exposed_comm_ms = exposed_ms;
    p->optimizer_ms = 4.1;
    p->data_ms = 1.3;
    p->step_ms = compute_ms + exposed_ms + p->optimizer_ms + p->data_ms;
    dl_step_inputs in = {p->step_ms - exposed_ms, 2.0 / 3, RESNET50_GRAD_BYTES, 25 * 1048576.0,
                         1, ranks, dl_pcie_gbps(4, 16), 5.7};
    dl_step_model m;
    if (dl_step_predict(&in, &m) == 0) p->predicted_speedup = ranks * in.compute_ms / m.step_ms;
}

static void fill_scale(dl_report *r) {
    const double batch = 64, compute = 150.0;
    const double exposed[] = {0, 3.2, 21.0, 5.9, 9.8};
    const double comm[] = {0, 7.1, 29.5, 10.7, 12.6};
    const int ranks[] = {1, 2, 2, 4, 8};
    const char *labels[] = {"GPU0", "GPU0,GPU1 via PIX <switch> (x16 gen4)",
                            "GPU0,GPU4 via SYS \"two CPUs\" (x16 gen4 & UPI)",
                            "GPU0-3 via PXB (x16 gen4)", "GPU0-7 via SYS (x16 gen4)"};
    double base = 0;
    for (int i = 0; i < 5; i++) {
        double step = compute + exposed[i] + 4.1 + 1.3;
        double ips = ranks[i] * batch * 1000 / step;
        if (i == 0) base = ips;
        add_point(r, ranks[i], labels[i], ips, 0.02 + 0.01 * i, compute, comm[i], exposed[i]);
        r->scale[i].speedup = ips / base;
        r->scale[i].efficiency = r->scale[i].speedup / ranks[i];
    }
}

/* A 4-rank sweep from 8 bytes to 256 MiB: 18 GB/s bus bandwidth, 30 us latency. */
static void fill_bw(dl_report *r) {
    r->bw_ranks = 4;
    snprintf(r->bw_backend, sizeof r->bw_backend, "nccl");
    for (double b = 8; b <= 256.0 * 1048576 && r->n_bw < DL_REPORT_MAX_POINTS; b *= 4) {
        dl_report_bw_point *p = &r->bw[r->n_bw++];
        p->bytes = b;
        p->time_us = 30 + dl_ring_bus_factor(4) * b / 18e9 * 1e6;
        p->algbw_gbs = b / (p->time_us * 1e-6) / 1e9;
        p->busbw_gbs = p->algbw_gbs * dl_ring_bus_factor(4);
    }
}

static void fill_text(dl_report *r) {
    snprintf(r->title, sizeof r->title, "dltrain scale: resnet50 <sample data, not a measurement>");
    snprintf(r->generated, sizeof r->generated, "2026-01-01 12:00:00");
    snprintf(r->machine, sizeof r->machine,
             "host sample-host; 2 x CPU (64 cores); 8 x GPU \"sample\" 80 GB\n"
             "backend nccl 2.21.5; MPI Open MPI 4.1.4");
    snprintf(r->commands, sizeof r->commands,
             "mpirun -np 8 dltrain scale --model resnet50 --batch 64 --report r.html --json r.json\n"
             "mpirun -np 4 dltrain bench allreduce --json ar.json");
    snprintf(r->topology, sizeof r->topology,
             "GPU0 0000:17:00.0 x16 gen4 -> switch 0000:16:00.0 -> root 0000:15:00.0 NUMA 0\n"
             "GPU4 0000:b1:00.0 x16 gen4 -> root 0000:b0:00.0 NUMA 1\n"
             "GPU0 <-> GPU4: SYS (crosses the CPU interconnect)");
    snprintf(r->notes, sizeof r->notes,
             "NCCL_P2P_LEVEL=PXB; transport P2P/IPC between GPU0 and GPU1.\n"
             "<script>alert('not run')</script> & this line must show as text.");
    snprintf(r->model, sizeof r->model, "resnet50");
    r->batch_per_rank = 64;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: report_fixture OUT.html full|no-bw|empty|fail\n");
        return 2;
    }
    const char *mode = argv[2];
    dl_report *r = calloc(1, sizeof *r);
    if (!r) return 1;
    fill_text(r);
    if (strcmp(mode, "full") == 0 || strcmp(mode, "no-bw") == 0 || strcmp(mode, "fail") == 0)
        fill_scale(r);
    if (strcmp(mode, "full") == 0 || strcmp(mode, "fail") == 0) fill_bw(r);
    int rc = dl_report_write_html(argv[1], r);
    free(r);
    if (strcmp(mode, "fail") == 0) {
        if (rc == 0 || strstr(dl_error_message(), "cannot write the report") == NULL) {
            fprintf(stderr, "FAIL: writing into a missing directory gave %d: %s\n", rc,
                    dl_error_message());
            return 1;
        }
        printf("ok: %s\n", dl_error_message());
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "report_fixture: %s\n", dl_error_message());
        return 1;
    }
    return 0;
}
