/* topo_unit_test.c: the pure parts of comm/topo*.c, asserted one by one.
 *
 *   topo_unit_test FIXTURE_DIR WORK_DIR
 *
 * Parsers against the exact strings kernels write, the PCIe bandwidth
 * arithmetic, ACS parsing on hand-made config space, NCCL and launcher
 * environment parsing, rank placement and CPU binding, and for every fixture
 * machine the full relationship matrix and every pair's bottleneck GB/s,
 * written out here so they do not depend on the golden files. */
#define _GNU_SOURCE
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "topo_fixture.h"
#include "topo_internal.h" /* white-box: the parsers are tested directly */

static int failures;

#include "../expect.h"

#define CHECK_NEAR(a, b, tol) EXPECT(fabs((a) - (b)) <= (tol), "%s = %.6f, expected %.6f", #a, (double)(a), (double)(b))

/* ---- parsers ------------------------------------------------------------------ */

static void test_speed_strings(void)
{
    /* Linux >= 5.2 (pci_speed_string), older kernels, links that are down. */
    CHECK_NEAR(dl_topo_parse_speed("2.5 GT/s PCIe"), 2.5, 0);
    CHECK_NEAR(dl_topo_parse_speed("5.0 GT/s PCIe"), 5.0, 0);
    CHECK_NEAR(dl_topo_parse_speed("8.0 GT/s PCIe"), 8.0, 0);
    CHECK_NEAR(dl_topo_parse_speed("16.0 GT/s PCIe"), 16.0, 0);
    CHECK_NEAR(dl_topo_parse_speed("32.0 GT/s PCIe"), 32.0, 0);
    CHECK_NEAR(dl_topo_parse_speed("64.0 GT/s PCIe"), 64.0, 0);
    CHECK_NEAR(dl_topo_parse_speed("2.5 GT/s"), 2.5, 0);
    CHECK_NEAR(dl_topo_parse_speed("5 GT/s"), 5.0, 0);
    CHECK_NEAR(dl_topo_parse_speed("8 GT/s"), 8.0, 0);
    CHECK_NEAR(dl_topo_parse_speed("16 GT/s\n"), 16.0, 0);
    EXPECT(dl_topo_parse_speed("Unknown") == 0, "Unknown");
    EXPECT(dl_topo_parse_speed("Unknown speed") == 0, "Unknown speed");
    EXPECT(dl_topo_parse_speed("20 GT/s") == 0, "20 GT/s is no PCIe rate");
    EXPECT(dl_topo_parse_speed("8.0 GT/s PCIe junk") == 0, "trailing junk");
    EXPECT(dl_topo_parse_speed("") == 0 && dl_topo_parse_speed(NULL) == 0, "empty");
    EXPECT(dl_topo_parse_width("16") == 16 && dl_topo_parse_width("x8") == 8, "widths");
    EXPECT(dl_topo_parse_width("0") == 0 && dl_topo_parse_width("255") == 0, "down / invalid width");
    EXPECT(dl_topo_parse_width("3") == 0 && dl_topo_parse_width("16abc") == 0, "odd width");
}

static void test_bandwidth(void)
{
    CHECK_NEAR(dl_topo_link_gbps(2.5, 1), 0.25, 1e-9);            /* 8b/10b */
    CHECK_NEAR(dl_topo_link_gbps(5.0, 16), 8.0, 1e-9);
    CHECK_NEAR(dl_topo_link_gbps(8.0, 8), 7.876923, 1e-6);        /* 128b/130b */
    CHECK_NEAR(dl_topo_link_gbps(8.0, 16), 15.753846, 1e-6);
    CHECK_NEAR(dl_topo_link_gbps(16.0, 16), 31.507692, 1e-6);
    CHECK_NEAR(dl_topo_link_gbps(32.0, 16), 63.015385, 1e-6);
    CHECK_NEAR(dl_topo_link_gbps(64.0, 16), 121.0, 1e-6);         /* FLIT 242/256 */
    EXPECT(dl_topo_link_gbps(0, 16) == 0 && dl_topo_link_gbps(8, 0) == 0, "unknown -> 0");
    EXPECT(dl_topo_gen_from_gts(16) == 4 && dl_topo_gen_from_gts(3) == 0, "generations");
    CHECK_NEAR(dl_topo_nvlink_gbps(4) * 12, 300.0, 1e-9);         /* A100: 12 x 3.0 */
    CHECK_NEAR(dl_topo_nvlink_gbps(6) * 18, 450.0, 1e-9);         /* H100 SXM: 18 x 4.0 */
    CHECK_NEAR(dl_topo_nvlink_gbps(5), 25.0, 1e-9);               /* 5 = NVLink 3.1, not 5.0 */
    CHECK_NEAR(dl_topo_nvlink_gbps(7), 50.0, 1e-9);               /* NVLink 5.0 */
    EXPECT(dl_topo_nvlink_gbps(0) == 0, "unknown NVLink version");
}

static void test_cpulists_and_addresses(void)
{
    int first;
    EXPECT(dl_topo_cpulist_count("0-19,40-59", &first) == 40 && first == 0, "two ranges");
    EXPECT(dl_topo_cpulist_count("20-39,60-79\n", &first) == 40 && first == 20, "newline");
    EXPECT(dl_topo_cpulist_count("7", &first) == 1 && first == 7, "single");
    EXPECT(dl_topo_cpulist_count("0-3,9-", NULL) < 0 && dl_topo_cpulist_count("zz", NULL) < 0, "junk");
    EXPECT(dl_topo_cpulist_count("5-2", NULL) < 0 && dl_topo_cpulist_count("", NULL) < 0, "junk");
    unsigned d, b, s, f;
    EXPECT(dl_topo_parse_bdf("0000:af:00.0", &d, &b, &s, &f) == 0 && b == 0xaf, "bdf");
    EXPECT(dl_topo_parse_bdf("10000:01:00.0", &d, &b, &s, &f) == 0 && d == 0x10000, "VMD domain");
    EXPECT(dl_topo_parse_bdf("0000:00:20.0", &d, &b, &s, &f) != 0, "device > 31");
    EXPECT(dl_topo_parse_bdf("not-a-bdf", &d, &b, &s, &f) != 0, "junk bdf");
    EXPECT(dl_topo_parse_host_bridge("pci0000:ae", &d, &b) == 0 && b == 0xae, "host bridge");
    EXPECT(strcmp(dl_topo_vendor_name(0x10b5), "PLX/Broadcom") == 0, "PLX");
    EXPECT(strncmp(dl_topo_vendor_name(0x11f8), "Microsemi", 9) == 0, "Microsemi");
}

/* ---- config space ---------------------------------------------------------------- */

static void put32(unsigned char *c, unsigned off, unsigned long v)
{
    for (int i = 0; i < 4; i++)
        c[off + (unsigned)i] = (unsigned char)(v >> (8 * i));
}

static void test_acs(void)
{
    static unsigned char cfg[4096];
    dl_topo_acs acs;
    dl_topo_acs_parse(cfg, 64, &acs); /* what an unprivileged read returns */
    EXPECT(acs.state == DL_TOPO_ACS_UNKNOWN && acs.note[0], "64 bytes: unknown");
    dl_topo_acs_parse(cfg, 256, &acs);
    EXPECT(acs.state == DL_TOPO_ACS_ABSENT, "conventional config space: no ACS");
    put32(cfg, 0x100, 0x0001UL | 2UL << 16 | 0x148UL << 20);   /* AER -> 0x148 */
    put32(cfg, 0x148, 0x000DUL | 1UL << 16);                   /* ACS */
    put32(cfg, 0x14c, 0x005fUL | 0x001dUL << 16);              /* cap, ctrl SV RR CR UF */
    dl_topo_acs_parse(cfg, sizeof cfg, &acs);
    EXPECT(acs.state == DL_TOPO_ACS_PRESENT && acs.offset == 0x148, "ACS found at 0x148");
    EXPECT(acs.ctrl == 0x1d && (acs.ctrl & DL_TOPO_ACS_P2P_BITS) == 0x0d, "ACS control 0x%x", acs.ctrl);
    put32(cfg, 0x148, 0x0019UL | 1UL << 16 | 0x100UL << 20);   /* loop back to AER */
    dl_topo_acs_parse(cfg, sizeof cfg, &acs);
    EXPECT(acs.state == DL_TOPO_ACS_ABSENT, "looping capability list ends");
    memset(cfg, 0, sizeof cfg);
    cfg[0x06] = 0x10;
    cfg[0x34] = 0x40;
    cfg[0x40] = 0x10;
    cfg[0x42] = 0x62; /* PCIe capability, port type 6 = switch downstream */
    EXPECT(dl_topo_pcie_port_type(cfg, 64 + 4) == 6, "downstream port type");
    cfg[0x41] = 0x40; /* next pointer to itself */
    cfg[0x40] = 0x05;
    EXPECT(dl_topo_pcie_port_type(cfg, 256) == -1, "capability loop");
}

/* ---- environment -------------------------------------------------------------------- */

static void test_env(void)
{
    char *nccl[] = {"NCCL_P2P_LEVEL=SYS", "NCCL_P2P_DISABLE=0", NULL};
    dl_topo_nccl_env e;
    dl_topo_nccl_env_read(&e, nccl);
    EXPECT(e.p2p_level == DL_TOPO_NCCL_SYS && !e.p2p_disable, "NCCL_P2P_LEVEL=SYS");
    char *old[] = {"NCCL_P2P_LEVEL=2", "NCCL_P2P_DISABLE=1", NULL};
    dl_topo_nccl_env_read(&e, old);
    EXPECT(e.p2p_level == DL_TOPO_NCCL_PXB && e.p2p_disable, "numeric NCCL_P2P_LEVEL");
    char *none[] = {NULL};
    dl_topo_nccl_env_read(&e, none);
    EXPECT(e.p2p_level == -1 && !e.p2p_disable, "unset");

    char *ompi[] = {"OMPI_COMM_WORLD_RANK=5", "OMPI_COMM_WORLD_SIZE=8",
                    "OMPI_COMM_WORLD_LOCAL_RANK=1", NULL};
    dl_topo_launch l;
    dl_topo_launch_read(&l, ompi);
    EXPECT(l.rank == 5 && l.world == 8 && l.local_rank == 1, "Open MPI variables");
    EXPECT(strcmp(l.source, "OMPI_COMM_WORLD_LOCAL_RANK") == 0, "source %s", l.source);
    char *slurm[] = {"SLURM_PROCID=3", "SLURM_NTASKS=4", "SLURM_LOCALID=x", NULL};
    dl_topo_launch_read(&l, slurm);
    EXPECT(l.rank == 3 && l.world == 4 && l.local_rank == -1, "Slurm, junk local id");
}

/* ---- fixture machines -------------------------------------------------------------- */

typedef struct {
    const char *name;
    int n_compute;
    const char *matrix;     /* rows of nvidia-smi letters over the compute GPUs */
    double gbps[16];        /* upper triangle, row by row; 0 = unknown */
} machine;

static const machine machines[] = {
    {"consumer_x8x8", 3, "X PHB PHB / PHB X PHB / PHB PHB X", {7.877, 7.877, 7.877}},
    {"workstation_4gpu_2switch", 4, "X PIX PXB PXB / PIX X PXB PXB / PXB PXB X PIX / PXB PXB PIX X",
     {7.877, 7.877, 7.877, 7.877, 7.877, 15.754}},
    {"dualsocket_server", 4, "X NODE SYS SYS / NODE X SYS SYS / SYS SYS X PIX / SYS SYS PIX X",
     {15.754, 15.754, 15.754, 15.754, 15.754, 15.754}},
    {"degraded_link", 2, "X PHB / PHB X", {7.877}},
    {"no_gpu", 0, "", {0}},
    /* GPU2 sits in an Intel VMD domain: its own host bridge pci10000:00. */
    {"robustness", 4, "X PHB NODE PHB / PHB X NODE PHB / NODE NODE X NODE / PHB PHB NODE X",
     {0, 31.508, 31.508, 31.508, 31.508, 31.508}},
};

static void matrix_text(const dl_topo *t, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int a = 0; a < t->n_compute; a++)
        for (int b = 0; b < t->n_compute; b++) {
            char cell[16];
            const dl_topo_pair *p = dl_topo_pair_get(t, a, b);
            const char *sep = b ? " " : a ? " / " : "";
            int n = snprintf(buf + used, cap - used, "%s%s", sep,
                             dl_topo_rel_cell(p->rel, p->nvlinks, cell, sizeof cell));
            if (n < 0 || (size_t)n >= cap - used)
                return;
            used += (size_t)n;
        }
}

static void test_machine(const machine *m, const char *fixtures, const char *work)
{
    char spec[1024], dir[1024], err[512], got[1024];
    snprintf(spec, sizeof spec, "%s/%s.topo", fixtures, m->name);
    snprintf(dir, sizeof dir, "%s/unit/%s", work, m->name);
    if (topo_fixture_build(spec, dir, err, sizeof err) != 0) {
        EXPECT(0, "%s: %s", m->name, err);
        return;
    }
    dl_topo t;
    EXPECT(dl_topo_discover(dir, &t) == DL_OK, "%s: discovery failed", m->name);
    EXPECT(t.n_compute == m->n_compute, "%s: %d compute GPUs, expected %d", m->name, t.n_compute,
          m->n_compute);
    matrix_text(&t, got, sizeof got);
    EXPECT(strcmp(got, m->matrix) == 0, "%s matrix\n  got:      %s\n  expected: %s", m->name, got,
          m->matrix);
    int k = 0;
    for (int a = 0; a < t.n_compute && t.n_compute == m->n_compute; a++)
        for (int b = a + 1; b < t.n_compute; b++, k++)
            EXPECT(fabs(dl_topo_pair_gbps(&t, a, b) - m->gbps[k]) < 0.001,
                  "%s GPU%d-GPU%d: %.3f GB/s, expected %.3f", m->name, a, b,
                  dl_topo_pair_gbps(&t, a, b), m->gbps[k]);
    dl_topo_free(&t);
}

/* The NCCL environment changes the transport, not the relationship. */
static void test_nccl_choice(const char *work)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/unit/dualsocket_server", work);
    dl_topo t;
    if (dl_topo_discover(dir, &t) != DL_OK)
        return;
    EXPECT(t.nccl_default == DL_TOPO_NCCL_PXB, "Intel: NCCL P2P up to PXB");
    EXPECT(dl_topo_pair_get(&t, 2, 3)->nccl_p2p && !dl_topo_pair_get(&t, 0, 1)->nccl_p2p, "default");
    EXPECT(dl_topo_pair_get(&t, 2, 3)->acs_port >= 0, "ACS between GPU2 and GPU3");
    char *sys[] = {"NCCL_P2P_LEVEL=SYS", NULL};
    dl_topo_nccl_env e;
    dl_topo_nccl_env_read(&e, sys);
    dl_topo_analyze(&t, &e);
    EXPECT(dl_topo_pair_get(&t, 0, 2)->nccl_p2p, "NCCL_P2P_LEVEL=SYS allows P2P across sockets");
    EXPECT(dl_topo_pair_rel(&t, 0, 2) == DL_TOPO_REL_SYS, "still SYS");
    char *off[] = {"NCCL_P2P_DISABLE=1", NULL};
    dl_topo_nccl_env_read(&e, off);
    dl_topo_analyze(&t, &e);
    EXPECT(!dl_topo_pair_get(&t, 2, 3)->nccl_p2p, "NCCL_P2P_DISABLE=1");
    dl_topo_free(&t);
}

/* Placement on the dual-socket fixture, binding to a CPU we are allowed. */
static void test_placement(const char *work)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/unit/dualsocket_server", work);
    dl_topo t;
    if (dl_topo_discover(dir, &t) != DL_OK)
        return;
    EXPECT(dl_topo_gpu_for_local_rank(&t, 5) == 1, "local rank 5 of 4 NVIDIA GPUs -> GPU1");
    dl_topo_placement p;
    EXPECT(dl_topo_place_local_rank(&t, 2, 0, &p) == DL_OK && p.gpu == 2 && p.numa_node == 1 && !p.bound,
          "placement without binding");
    EXPECT(strstr(p.line, "GPU2 0000:b1:00.0") && strstr(p.line, "NUMA node 1"), "line: %s", p.line);

    cpu_set_t before;
    EXPECT(sched_getaffinity(0, sizeof before, &before) == 0, "sched_getaffinity");
    int cpu = -1;
    for (int c = 0; c < CPU_SETSIZE && cpu < 0; c++)
        if (CPU_ISSET(c, &before))
            cpu = c;
    snprintf(t.gpus[2].cpulist, sizeof t.gpus[2].cpulist, "%d", cpu);
    EXPECT(dl_topo_place_local_rank(&t, 2, 1, &p) == DL_OK && p.bound, "bind: %s", p.binding);
    cpu_set_t now;
    sched_getaffinity(0, sizeof now, &now);
    EXPECT(CPU_COUNT(&now) == 1 && CPU_ISSET(cpu, &now), "bound to CPU %d only", cpu);
    snprintf(t.gpus[2].cpulist, sizeof t.gpus[2].cpulist, "8000-8001");
    EXPECT(dl_topo_place_local_rank(&t, 2, 1, &p) != DL_OK && !p.bound, "foreign CPUs: %s", p.binding);
    sched_setaffinity(0, sizeof before, &before);
    dl_topo_free(&t);

    snprintf(dir, sizeof dir, "%s/unit/no_gpu", work);
    if (dl_topo_discover(dir, &t) == DL_OK) {
        EXPECT(dl_topo_place_local_rank(&t, 0, 1, &p) == DL_OK && p.gpu == -1, "no GPU: CPU only");
        EXPECT(strstr(p.line, "no GPU, CPU only") != NULL, "line: %s", p.line);
    }
    dl_topo_free(&t);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s FIXTURE_DIR WORK_DIR\n", argv[0]);
        return 2;
    }
    test_speed_strings();
    test_bandwidth();
    test_cpulists_and_addresses();
    test_acs();
    test_env();
    for (size_t i = 0; i < sizeof machines / sizeof machines[0]; i++)
        test_machine(&machines[i], argv[1], argv[2]);
    test_nccl_choice(argv[2]);
    test_placement(argv[2]);
    if (failures)
        fprintf(stderr, "topo_unit_test: %d failure(s)\n", failures);
    else
        printf("topo_unit_test: all checks passed\n");
    return failures ? 1 : 0;
}
