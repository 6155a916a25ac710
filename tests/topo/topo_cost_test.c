/* topo_cost_test.c: the machine model (comm/topo/topo_cost.c) against hand
 * calculations: the grammar and its refusals, every shipped machine, path
 * classification and NCCL's P2P/SHM decision on the sysfs fixtures, link-use
 * counting on rings through switches and sockets, the bottleneck in words.
 *
 * usage: topo_cost_test FIXTURE_DIR WORK_DIR */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "topo_cost.h"
#include "topo_fixture.h"

static int failures;

#include "../expect.h"

static void machine(const char *desc, dl_machine *m)
{
    char err[512] = "";
    int rc = dl_machine_parse(desc, m, err, sizeof err);
    EXPECT(rc == 0, "'%s' parses: %s", desc, err);
}

static void ring(const dl_machine *m, int n, dl_ring_cost *r)
{
    int rc = dl_machine_ring(m, n, 1, NULL, r);
    EXPECT(rc == 0, "ring of %d on '%s'", n, m->desc);
}

static void near(double got, double want, const char *what)
{
    EXPECT(fabs(got - want) <= 1e-9 * fmax(1, fabs(want)), "%s: %.9g, want %.9g", what, got, want);
}

static void test_pcie(void)
{
    near(dl_nccl_pcie_gbps(3, 16), 12, "gen3 x16 (NCCL's PCI_BW)");
    near(dl_nccl_pcie_gbps(4, 16), 24, "gen4 x16");
    near(dl_nccl_pcie_gbps(4, 8), 12, "gen4 x8");
    near(dl_nccl_pcie_gbps(5, 4), 12, "gen5 x4");
    near(dl_nccl_pcie_gbps(0, 16), 0, "unknown generation");
}

static void test_grammar_refusals(void)
{
    static const char *bad[] = {"", "8 gpus", "8x pcie9x16", "8x pcie4x12", "8x pcie4x16, 2 sokets",
                                "8x pcie4x16, warp-drive", "3x pcie3x16, 4 sockets",
                                "8x pcie4x16, 4 links", "0x pcie3x16", "8x pcie4x16, 9 sockets",
                                "8x pcie4x16, 0 per switch", "8x pcie4x16, mem 1e999", NULL};
    for (int i = 0; bad[i]; i++) {
        dl_machine m;
        char err[512] = "";
        EXPECT(dl_machine_parse(bad[i], &m, err, sizeof err) != 0, "'%s' refused", bad[i]);
        EXPECT(err[0] && !strchr(err, '\n'), "'%s': one line of error", bad[i]);
    }
    dl_machine m;
    char err[512] = "";
    dl_machine_parse("8x pcie4x16, warp-drive", &m, err, sizeof err);
    EXPECT(strstr(err, "'warp-drive'") && strstr(err, "no-p2p") && strstr(err, "per switch"),
          "the refusal names the word and lists the valid ones: %s", err);
    dl_machine_parse("8x pcie4x16, 9 sockets", &m, err, sizeof err);
    EXPECT(strstr(err, "'9 sockets'") && strstr(err, "from 1 to 8"), "sockets' range: %s", err);
    dl_machine_parse("8x pcie4x16, 0 per switch", &m, err, sizeof err);
    EXPECT(strstr(err, "at least 1"), "per switch: %s", err);
    dl_machine_parse("8x pcie4x16, nvswitch, 19 links", &m, err, sizeof err);
    EXPECT(strstr(err, "from 1 to 18"), "links' range: %s", err);
}

/* The ring through two switches on each of two sockets, all shared memory:
 * GPUs 0-3 behind switch 0 (socket 0), 4-7 behind switch 1 (socket 1).  Every
 * hop goes up the sender's switch uplink and down the receiver's, so each
 * uplink carries 4 hops a direction: 12 GB/s / 4 = 3 GB/s.  The socket link
 * carries hop 3->4 one way and 7->0 the other (10 GB/s each); socket 0's
 * memory sees hops into GPUs 0-3, written and read: 8 uses, 128 / 8 = 16. */
static void test_two_switches_two_sockets(void)
{
    dl_machine m;
    dl_ring_cost r;
    machine("8x pcie3x16, 2 sockets, 4 per switch, no-p2p, skylake", &m);
    EXPECT(m.n_switches == 2 && m.gpu[3].sw == 0 && m.gpu[4].sw == 1 && m.gpu[4].socket == 1,
          "layout: %d switches", m.n_switches);
    ring(&m, 8, &r);
    near(r.gbps, 3, "ring bandwidth");
    near(r.uses, 4, "uplink crossings");
    EXPECT(r.count[DL_HOP_SHM] == 8, "all 8 hops through host memory: %d", r.count[DL_HOP_SHM]);
    EXPECT(strstr(r.bottleneck, "uplink of PCIe switch 0") && strstr(r.bottleneck, "crossed 4 times"),
          "bottleneck named: %s", r.bottleneck);
    near(r.alpha_us, 5.7, "PCI latency per step");
    /* with P2P allowed (Intel: up to PXB), switch mates go straight across */
    machine("8x pcie3x16, 2 sockets, 2 per switch, skylake", &m);
    ring(&m, 8, &r);
    EXPECT(r.count[DL_HOP_P2P] == 4 && r.count[DL_HOP_SHM] == 4, "4 P2P (PIX) + 4 SHM hops: %d %d",
          r.count[DL_HOP_P2P], r.count[DL_HOP_SHM]);
    near(r.gbps, 10, "socket link (Skylake UPI, NCCL's SKL_QPI_BW)");
    EXPECT(strstr(r.bottleneck, "socket link"), "bottleneck: %s", r.bottleneck);
}

static void test_p2p_rule(void)
{
    dl_machine m;
    dl_ring_cost r;
    machine("8x pcie4x16, amd", &m);
    EXPECT(dl_machine_p2p(&m, 2, DL_TOPO_NCCL_PHB), "AMD, two GPUs: P2P through the CPU");
    EXPECT(!dl_machine_p2p(&m, 4, DL_TOPO_NCCL_PHB), "AMD, four GPUs: SHM (NCCL >= 2.23.4)");
    ring(&m, 2, &r);
    near(r.gbps, 24, "AMD pair: P2P at the GPU link");
    ring(&m, 8, &r);
    near(r.gbps, 204.8 / 16, "8 GPUs through host memory: 16 uses of 204.8 GB/s");
    EXPECT(strstr(r.bottleneck, "host memory"), "bottleneck: %s", r.bottleneck);
    machine("8x pcie4x16, amd, nccl 2.18", &m);
    EXPECT(dl_machine_p2p(&m, 8, DL_TOPO_NCCL_SYS), "NCCL 2.18 on AMD: P2P up to SYS");
    ring(&m, 8, &r);
    near(r.gbps, 24, "older NCCL: P2P everywhere, the GPU link");
    machine("8x pcie3x16, intel, nccl 2.18", &m);
    EXPECT(!dl_machine_p2p(&m, 8, DL_TOPO_NCCL_PHB), "NCCL 2.18 on Intel: PXB");
    /* the history at the release tags of src/graph/paths.cc */
    machine("8x pcie3x16, 2 sockets, skylake, nccl 2.7", &m);
    EXPECT(dl_machine_p2p(&m, 8, DL_TOPO_NCCL_PHB), "NCCL 2.7 on Skylake: P2P through one CPU");
    EXPECT(!dl_machine_p2p(&m, 8, DL_TOPO_NCCL_SYS), "NCCL 2.7 on Skylake: not across sockets");
    machine("8x pcie3x16, 2 sockets, skylake, nccl 2.6", &m);
    EXPECT(dl_machine_p2p(&m, 8, DL_TOPO_NCCL_SYS), "NCCL 2.6 on Skylake: P2P up to SYS");
    machine("8x pcie3x16, 2 sockets, broadwell, nccl 2.7", &m);
    EXPECT(!dl_machine_p2p(&m, 8, DL_TOPO_NCCL_PHB), "NCCL 2.7 on Broadwell: PXB");
    machine("8x pcie3x16, 2 sockets, broadwell, nccl 2.6", &m);
    EXPECT(!dl_machine_p2p(&m, 8, DL_TOPO_NCCL_PHB), "NCCL 2.6 on Broadwell: PXB");
    /* 2.5 (src/transport/p2p.cc at v2.5.6-1): PXB on one CPU, PHB on more,
     * whatever the CPU; before 2.5, PHB */
    machine("8x pcie3x16, 2 sockets, broadwell, nccl 2.5", &m);
    EXPECT(dl_machine_p2p(&m, 8, DL_TOPO_NCCL_PHB) && !dl_machine_p2p(&m, 8, DL_TOPO_NCCL_SYS),
          "NCCL 2.5, two sockets: P2P through one CPU, not across");
    machine("8x pcie3x16, amd, nccl 2.5", &m);
    EXPECT(!dl_machine_p2p(&m, 8, DL_TOPO_NCCL_PHB) && dl_machine_p2p(&m, 8, DL_TOPO_NCCL_PXB),
          "NCCL 2.5, one socket: PXB, even on AMD");
    machine("8x pcie3x16, 2 sockets, amd, nccl 2.4", &m);
    EXPECT(dl_machine_p2p(&m, 8, DL_TOPO_NCCL_PHB) && !dl_machine_p2p(&m, 8, DL_TOPO_NCCL_SYS),
          "NCCL 2.4: PHB");
    machine("8x pcie3x16, 2 sockets, skylake, nccl 2.9", &m);
    EXPECT(!dl_machine_p2p(&m, 8, DL_TOPO_NCCL_PHB), "NCCL 2.9 on Skylake: PXB");
    machine("8x pcie3x16, arm, nccl 2.7", &m);
    EXPECT(!dl_machine_p2p(&m, 8, DL_TOPO_NCCL_PHB), "NCCL 2.7 on ARM: PXB");
    machine("2x pcie3x16, no-p2p", &m);
    EXPECT(!dl_machine_p2p(&m, 2, DL_TOPO_NCCL_PIX), "GeForce: no P2P even on one switch");
    EXPECT(dl_machine_p2p(&m, 2, DL_TOPO_NCCL_NVL), "NVLink is always P2P");
}

/* NCCL charges 6/5 on the PCIe links of P2P through an Intel root complex
 * (PHB) only: not across sockets, not through a shared switch. */
static void test_intel_overhead(void)
{
    dl_machine m;
    dl_ring_cost r;
    machine("2x pcie3x8, skylake, nccl 2.7", &m); /* 2.7: P2P up to PHB on Skylake */
    ring(&m, 2, &r);
    EXPECT(r.count[DL_HOP_P2P] == 2, "PHB pair: P2P");
    near(r.gbps, 6 / 1.2, "PHB: x8 gen3 (6 GB/s) charged 6/5");
    EXPECT(strstr(r.bottleneck, "crossed once upward, charged 6/5"), "words: %s", r.bottleneck);
    machine("2x pcie3x8, 2 sockets, skylake, nccl 2.6", &m); /* 2.6: P2P up to SYS */
    ring(&m, 2, &r);
    EXPECT(r.count[DL_HOP_P2P] == 2, "SYS pair: P2P under NCCL 2.6");
    near(r.gbps, 6, "SYS: the x8 links at full charge (socket link 10)");
    machine("2x pcie3x8, 2 per switch, skylake", &m);
    ring(&m, 2, &r);
    near(r.gbps, 6, "PIX: no overhead");
    machine("2x pcie3x8, amd, nccl 2.7", &m);
    ring(&m, 2, &r);
    near(r.gbps, 6, "AMD root complex: no overhead");
}

static void test_presets(void)
{
    int n = 0;
    for (const dl_machine_preset *p = dl_machine_presets; p->name; p++, n++) {
        dl_machine m;
        dl_ring_cost r;
        machine(p->name, &m);
        ring(&m, m.n_gpus, &r);
        EXPECT(r.gbps > 0 && r.bottleneck[0], "%s: %g GB/s, '%s'", p->name, r.gbps, r.bottleneck);
        printf("%-18s %2d GPUs: %7.3f GB/s, %s\n", p->name, m.n_gpus, r.gbps, r.bottleneck);
    }
    EXPECT(n == 6, "six shipped machines: %d", n);
    dl_machine m;
    dl_ring_cost r;
    machine("consumer-x8x8", &m);
    ring(&m, 2, &r);
    near(r.gbps, 12, "x8/x8 GeForce: PCIe 4.0 x8 each way");
    EXPECT(r.count[DL_HOP_SHM] == 2, "through the CPU");
    machine("workstation-4gpu", &m);
    ring(&m, 4, &r);
    EXPECT(dl_machine_path(&m, 0, 1) == DL_TOPO_NCCL_PIX && dl_machine_path(&m, 1, 2) ==
          DL_TOPO_NCCL_PHB, "workstation paths");
    /* hops 1->2 and 3->0 go through the CPU: each uplink once per direction;
     * P2P 0->1 and 2->3 stay in their switch */
    near(r.gbps, 12, "workstation ring");
    machine("dgx1", &m);
    ring(&m, 2, &r);
    near(r.gbps, 18, "DGX-1 pair: one NVLink (NCCL's SM60_NVLINK_BW)");
    ring(&m, 4, &r);
    near(r.gbps, 54, "DGX-1 quad: three links each");
    ring(&m, 8, &r);
    near(r.gbps, 72, "DGX-1 ring of 8 over NVLink alone: four links each");
    EXPECT(r.count[DL_HOP_NVL] == 8, "all hops NVLink: %d", r.count[DL_HOP_NVL]);
    near(r.alpha_us, 3.4, "NVLink latency per step");
    machine("nvswitch-8gpu", &m);
    ring(&m, 8, &r);
    near(r.gbps, 240, "NVSwitch: 12 x 20 GB/s");
    machine("epyc-8gpu", &m);
    ring(&m, 4, &r);
    near(r.gbps, 24, "EPYC, 4 GPUs: host memory 204.8 / 8 = 25.6 > the GPU's own 24");
    EXPECT(strstr(r.bottleneck, "PCIe 4.0 x16 link of GPU"), "EPYC 4: %s", r.bottleneck);
}

static void test_network(void)
{
    dl_machine m;
    dl_ring_cost r;
    machine("2x pcie3x16, p2p", &m);
    const dl_mnet *net = dl_mnet_find("10gbit");
    EXPECT(net && dl_mnet_find("ib-hdr") && !dl_mnet_find("carrier-pigeon"), "network names");
    EXPECT(dl_machine_ring(&m, 4, 2, net, &r) == 0, "2 nodes of 2");
    near(r.gbps, 1.25, "10 Gbit/s between nodes");
    EXPECT(r.count[DL_HOP_NET] == 2 && strstr(r.bottleneck, "network"), "%d net hops, %s",
          r.count[DL_HOP_NET], r.bottleneck);
    near(r.alpha_us, 30, "TCP latency per step");
    EXPECT(dl_machine_ring(&m, 6, 2, net, &r) != 0, "3 GPUs per node on a 2-GPU machine refused");
}

/* Path classes and P2P/SHM on the sysfs fixtures, via dltrain topo. */
static void fixture(const char *dir, const char *work, const char *name, dl_machine *m)
{
    char spec[512], tree[512], err[512] = "";
    snprintf(spec, sizeof spec, "%s/%s.topo", dir, name);
    snprintf(tree, sizeof tree, "%s/cost_%s", work, name);
    EXPECT(topo_fixture_build(spec, tree, err, sizeof err) == 0, "fixture %s: %s", name, err);
    dl_topo t;
    EXPECT(dl_topo_discover(tree, &t) == DL_OK, "discover %s", name);
    EXPECT(dl_machine_from_topo(&t, m, err, sizeof err) == 0, "machine from %s: %s", name, err);
    /* the same machine from its saved `dltrain topo --json` */
    char json[600];
    snprintf(json, sizeof json, "%s/cost_%s.json", work, name);
    FILE *f = fopen(json, "w");
    EXPECT(f != NULL, "write %s", json);
    if (f) {
        dl_topo_json(f, &t);
        fclose(f);
        static dl_machine from_json;
        EXPECT(dl_machine_from_topo_json(json, &from_json, err, sizeof err) == 0, "%s: %s", json, err);
        /* all but the description ("N GPUs read under PATH") */
        memcpy(from_json.desc, m->desc, sizeof m->desc);
        EXPECT(memcmp(&from_json, m, sizeof *m) == 0, "%s: its topo --json gives the same machine",
              name);
        remove(json);
    }
    dl_topo_free(&t);
    topo_fixture_remove(tree);
}

/* A fixture the model cannot use: refused with one line naming why. */
static void fixture_refused(const char *dir, const char *work, const char *name, const char *why)
{
    char spec[512], tree[512], err[512] = "";
    snprintf(spec, sizeof spec, "%s/%s.topo", dir, name);
    snprintf(tree, sizeof tree, "%s/cost_%s", work, name);
    EXPECT(topo_fixture_build(spec, tree, err, sizeof err) == 0, "fixture %s: %s", name, err);
    dl_topo t;
    static dl_machine m;
    err[0] = 0;
    EXPECT(dl_topo_discover(tree, &t) == DL_OK, "discover %s", name);
    EXPECT(dl_machine_from_topo(&t, &m, err, sizeof err) != 0 && strstr(err, why) &&
          !strchr(err, '\n'), "%s refused: '%s'", name, err);
    dl_topo_free(&t);
    topo_fixture_remove(tree);
}

static void test_fixtures(const char *dir, const char *work)
{
    dl_machine m;
    dl_ring_cost r;
    fixture(dir, work, "consumer_x8x8", &m);
    EXPECT(m.n_gpus == 2 && dl_machine_path(&m, 0, 1) == DL_TOPO_NCCL_PHB, "consumer: PHB");
    EXPECT(!dl_machine_p2p(&m, 2, dl_machine_path(&m, 0, 1)), "consumer (Intel): SHM");
    ring(&m, 2, &r);
    EXPECT(r.count[DL_HOP_SHM] == 2, "consumer ring through the CPU");
    fixture(dir, work, "workstation_4gpu_2switch", &m);
    EXPECT(m.n_gpus == 4 && dl_machine_path(&m, 0, 1) == DL_TOPO_NCCL_PIX &&
          dl_machine_path(&m, 0, 2) == DL_TOPO_NCCL_PXB, "workstation: PIX, PXB");
    EXPECT(dl_machine_p2p(&m, 4, DL_TOPO_NCCL_PXB), "PXB is P2P by default");
    ring(&m, 4, &r);
    EXPECT(r.count[DL_HOP_P2P] == 4, "workstation: all P2P: %d", r.count[DL_HOP_P2P]);
    /* nested switches: GPUs 0-1 on x8 ports of the top switch, 2-3 below a
     * second switch on its x16 port; the gen4 cards run at the switches'
     * gen3.  Hop 1->2 (PXB) turns in the top switch, so no hop crosses its
     * uplink to the CPU: the ring runs at the x8 links, 8 x 60 / 80 = 6 GB/s,
     * not at the uplink the old one-level model charged twice with 6/5 */
    EXPECT(m.n_switches == 2 && m.gpu[0].sw == m.gpu[1].sw && m.gpu[2].sw == m.gpu[3].sw &&
          m.gpu[0].sw != m.gpu[2].sw && m.sw[m.gpu[2].sw].parent == m.gpu[0].sw &&
          m.sw[m.gpu[0].sw].parent == -1, "workstation: the lower switch hangs off the top one");
    EXPECT(strcmp(m.sw[m.gpu[0].sw].name, "0000:01:00.0") == 0 &&
          strcmp(m.sw[m.gpu[2].sw].name, "0000:05:00.0") == 0, "switches named by upstream port: %s %s",
          m.sw[m.gpu[0].sw].name, m.sw[m.gpu[2].sw].name);
    EXPECT(m.gpu[0].gen == 3 && m.gpu[0].lanes == 8 && m.gpu[2].gen == 3 && m.gpu[2].lanes == 16,
          "links as trained: gen%d x%d, gen%d x%d", m.gpu[0].gen, m.gpu[0].lanes, m.gpu[2].gen,
          m.gpu[2].lanes);
    EXPECT(dl_machine_common_switch(&m, 1, 2) == m.gpu[0].sw, "1 and 2 meet in the top switch");
    near(r.gbps, 6, "workstation ring: the x8 GPU links");
    EXPECT(strstr(r.bottleneck, "PCIe 3.0 x8 link of GPU 0") && !strstr(r.bottleneck, "6/5"),
          "workstation bottleneck: %s", r.bottleneck);
    /* NCCL's class from the model number: Core i7 model 0x9E is >= 0x8F */
    EXPECT(strcmp(m.cpu_name, "sapphire-rapids") == 0, "i7 model 0x9E: %s", m.cpu_name);
    fixture(dir, work, "dualsocket_server", &m);
    EXPECT(strcmp(m.cpu_name, "skylake") == 0 && m.socket_gbps == 10,
          "Xeon Gold 6248 (model 0x55): %s, %g GB/s", m.cpu_name, m.socket_gbps);
    EXPECT(m.sockets == 2 && dl_machine_path(&m, 2, 3) == DL_TOPO_NCCL_PIX &&
          dl_machine_path(&m, 1, 2) == DL_TOPO_NCCL_SYS, "dual socket: PIX and SYS (%d sockets)",
          m.sockets);
    ring(&m, 4, &r);
    EXPECT(r.count[DL_HOP_P2P] == 1 && r.count[DL_HOP_SHM] == 3, "dual socket: 1 P2P + 3 SHM: %d %d",
          r.count[DL_HOP_P2P], r.count[DL_HOP_SHM]);
    /* ACS (SV RR CR UF) on the Switchtec's downstream ports sends the P2P
     * hop 2->3 up to the root complex and back: with hop 1->2 coming down
     * and 3->0 going up, the switch's x16 gen3 uplink carries 2 crossings
     * each way, 12 / 2 = 6 GB/s, below the socket link's 10 */
    EXPECT(m.acs_redirect[2][3] && !m.acs_redirect[0][1], "ACS redirect between 2 and 3 only");
    near(r.gbps, 6, "dual socket ring: the ACS-redirected switch uplink");
    EXPECT(strstr(r.bottleneck, "uplink of PCIe switch 0000:af:00.0") &&
          strstr(r.bottleneck, "crossed 2 times"), "dual socket bottleneck: %s", r.bottleneck);
    /* Ryzen, two GPUs: one idle at 2.5 GT/s in the CPU's slot, one in a
     * chipset slot wired x4 (running gen3 of the gen4 both ends can do).
     * AMD with two GPUs: P2P through the CPU (PHB), NCCL's exception */
    fixture(dir, work, "degraded_link", &m);
    EXPECT(m.n_gpus == 2 && m.cpu == DL_MCPU_AMD && dl_machine_path(&m, 0, 1) == DL_TOPO_NCCL_PHB &&
          dl_machine_p2p(&m, 2, DL_TOPO_NCCL_PHB), "degraded: AMD pair, PHB, P2P");
    EXPECT(m.gpu[0].gen == 4 && m.gpu[0].lanes == 4 && m.gpu[1].gen == 4 && m.gpu[1].lanes == 16,
          "links at their best common speed, current width: gen%d x%d, gen%d x%d", m.gpu[0].gen,
          m.gpu[0].lanes, m.gpu[1].gen, m.gpu[1].lanes);
    ring(&m, 2, &r);
    near(r.gbps, 6, "degraded: the x4 gen4 link (4 x 120 / 80)");
    EXPECT(r.count[DL_HOP_P2P] == 2 && strstr(r.bottleneck, "x4"), "degraded: %s", r.bottleneck);
    fixture_refused(dir, work, "robustness", "PCIe link of GPU");
    fixture_refused(dir, work, "no_gpu", "no GPU");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: topo_cost_test FIXTURE_DIR WORK_DIR\n");
        return 2;
    }
    test_pcie();
    test_grammar_refusals();
    test_two_switches_two_sockets();
    test_p2p_rule();
    test_intel_overhead();
    test_presets();
    test_network();
    test_fixtures(argv[1], argv[2]);
    printf(failures ? "%d check(s) failed\n" : "all checks passed\n", failures);
    return failures ? 1 : 0;
}
