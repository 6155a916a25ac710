/* topo_cost.h: the machine model behind `dltrain predict --machine` and the
 * predicted column of `dltrain scale`: which path each ring hop takes (NVLink,
 * P2P over PCIe, shared memory through the CPU, the network), how often every
 * link is crossed, and so what bandwidth and latency a ring all-reduce gets
 * and which link sets it.  The rules are NCCL's (docs/scaling.md cites the
 * file and line for each); pure functions, no I/O, so tests call them.
 *
 * A machine comes from a compact description ("8x pcie4x16, 2 sockets, 4 per
 * switch, no-p2p", topo_machine.c), a shipped name ("dgx1"), or the topology
 * dltrain topo reads (dl_machine_from_topo). */
#ifndef DL_TOPO_COST_H
#define DL_TOPO_COST_H

#include <stddef.h>

#include "topo.h"

#define DL_MACHINE_MAX_GPUS 64
#define DL_MACHINE_MAX_SOCKETS 8

typedef enum { DL_MCPU_INTEL = 0, DL_MCPU_AMD, DL_MCPU_ARM } dl_mcpu;

/* What one GPU hangs off. */
typedef struct {
    int gen, lanes;          /* its own PCIe link */
    int sw;                  /* the PCIe switch it hangs off, -1: directly on a CPU root port */
    int socket;              /* CPU socket (NUMA node) it is attached to */
} dl_mgpu;

typedef struct {
    int gen, lanes;          /* the switch's uplink towards the CPU */
    int socket;
    int parent;              /* the switch its uplink goes into, -1: a CPU root port */
    char name[24];           /* its upstream port's PCI address ("" from a description) */
} dl_mswitch;

typedef struct {
    char desc[256];          /* the description it was built from, normalised */
    int n_gpus;
    dl_mgpu gpu[DL_MACHINE_MAX_GPUS];
    int n_switches;
    dl_mswitch sw[DL_MACHINE_MAX_GPUS];
    int sockets;
    dl_mcpu cpu;
    double socket_gbps;      /* CPU-to-CPU link per direction (NCCL's figure) */
    const char *cpu_name;    /* "skylake", "amd", ... */
    double mem_gbps;         /* host memory bandwidth per socket */
    int p2p;                 /* the driver allows PCIe peer-to-peer (0: GeForce) */
    int nccl_version;        /* 22304 = 2.23.4: decides NCCL's default P2P level */
    int p2p_level_sys;       /* NCCL_P2P_LEVEL=SYS (what-ifs) */
    /* NVLink: links between each pair of GPUs, each nvl_link_gbps per direction */
    unsigned char nvl[DL_MACHINE_MAX_GPUS][DL_MACHINE_MAX_GPUS];
    double nvl_link_gbps;
    const char *nvl_name;    /* "nvlink1", ...; NULL without NVLink */
    int nvswitch;            /* every pair reaches every other through NVSwitches */
    int nvl_per_gpu;         /* with nvswitch: each GPU's links into the switches */
    /* path types dltrain topo worked out (level + 1; 0: derive from the above),
     * so nested switches (PXB) keep their class */
    unsigned char path_of[DL_MACHINE_MAX_GPUS][DL_MACHINE_MAX_GPUS];
    /* ACS on a bridge between them redirects their P2P up to the root
     * complex (dltrain topo's ACS reading; never from a description) */
    unsigned char acs_redirect[DL_MACHINE_MAX_GPUS][DL_MACHINE_MAX_GPUS];
} dl_machine;

/* PCIe GB/s per direction as NCCL counts it: lanes x (15, 30, 60, 120, 240,
 * 480 for 2.5..64 GT/s) / 80 (src/graph/topo.cc), so gen3 x16 = 12 GB/s. */
double dl_nccl_pcie_gbps(int gen, int lanes);

/* Parses a description or a shipped name into m.  Returns 0, or -1 with one
 * line in err saying what was not understood and the words that are. */
int dl_machine_parse(const char *text, dl_machine *m, char *err, size_t cap);
/* The shipped machines: name, description, one line on what it is. */
typedef struct {
    const char *name, *desc, *what;
} dl_machine_preset;
extern const dl_machine_preset dl_machine_presets[];
/* "consumer-x8x8, workstation-4gpu, ..." for messages. */
const char *dl_machine_preset_names(void);
/* The vocabulary of the grammar, for messages and --help. */
const char *dl_machine_words(void);

/* A machine from dltrain topo's view of one: each GPU's link at its best
 * speed, switches, sockets, CPU vendor, NVLinks, NVML's P2P verdict. */
int dl_machine_from_topo(const dl_topo *t, dl_machine *m, char *err, size_t cap);
/* The same from a saved `dltrain topo --json` file (topo_json_read.c); -1
 * with one line in err for another schema, a truncated file or not JSON. */
int dl_machine_from_topo_json(const char *path, dl_machine *m, char *err, size_t cap);

/* The network between nodes: "1gbit", "10gbit", "25gbit", "100gbit",
 * "ib-edr", "ib-hdr", "ib-ndr".  GB/s per direction and latency per step. */
typedef struct {
    const char *name;
    double gbps, alpha_us;
} dl_mnet;
const dl_mnet *dl_mnet_find(const char *name);
const char *dl_mnet_names(void);

/* One ring hop. */
typedef struct {
    int from, to;                /* GPU index within its node */
    int node_from, node_to;
    dl_topo_nccl_level path;     /* NVL, PIX, PXB, PHB, SYS; LOC for the network */
    int transport;               /* DL_HOP_* */
} dl_hop;

enum { DL_HOP_NVL = 0, DL_HOP_P2P, DL_HOP_SHM, DL_HOP_NET };

#define DL_RING_MAX (DL_MACHINE_MAX_GPUS * 16)

/* What a ring all-reduce gets on n GPUs (n / nodes per node). */
typedef struct {
    int n, nodes;
    int n_hops;
    dl_hop hops[DL_RING_MAX];
    int count[4];                /* hops per DL_HOP_* */
    double gbps;                 /* ring (bus) bandwidth per direction: worst link / its uses */
    double alpha_us;             /* per ring step: NCCL's hardware latency of the slowest hop */
    double uses;                 /* crossings of the bottleneck link per ring round */
    double link_gbps;            /* the bottleneck link's own bandwidth */
    char bottleneck[256];        /* in words: "the x16 uplink of switch 0, crossed 4 times" */
} dl_ring_cost;

/* NCCL's default: does a hop of path type `path` between two of n GPUs use
 * P2P (1) or go through the CPU (0)?  NVLink always P2P. */
int dl_machine_p2p(const dl_machine *m, int n, dl_topo_nccl_level path);
/* The PCIe path type between GPUs a and b (PIX, PXB, PHB, SYS) or NVL. */
dl_topo_nccl_level dl_machine_path(const dl_machine *m, int a, int b);
/* The lowest PCIe switch above both GPUs, -1 when only the CPU joins them. */
int dl_machine_common_switch(const dl_machine *m, int a, int b);

/* The ring over the first n/nodes GPUs of each of `nodes` identical nodes
 * (net NULL for one node).  Returns 0, or -1 when n is not a multiple of
 * nodes or needs more GPUs than the machine has. */
int dl_machine_ring(const dl_machine *m, int n, int nodes, const dl_mnet *net,
                    dl_ring_cost *out);

#endif
