/* topo.h: how each GPU is attached, read from Linux's own records.
 *
 * Discovery is a pure function of a sysfs root directory ("/sys" on a real
 * machine, a fixture tree in tests): the symlink target of
 * bus/pci/devices/DDDD:BB:DD.F is the device's path from its host bridge
 * (devices/pciDDDD:BB/...) down through every bridge, which IS its PCIe path.
 * From that path we derive root complexes, root ports, switches, the link
 * speed and width of every hop, and for each GPU pair the relationship in
 * nvidia-smi's vocabulary (X, NV#, PIX, PXB, PHB, NODE, SYS), the narrowest
 * link and its theoretical bandwidth, ACS state and NCCL's default transport.
 *
 * NVML (NVLink, the driver's view of the link) and CUDA (--wake) are loaded
 * at run time with dlopen; nothing here needs the driver at build time.
 *
 * Every fact remembers where it came from so the JSON can say so: sysfs facts
 * keep the raw text they were parsed from (empty = the file was unreadable),
 * other facts carry a dl_topo_src. */
#ifndef DL_TOPO_H
#define DL_TOPO_H

#include <stddef.h>
#include <stdio.h>

#include "common.h"

#define DL_TOPO_MAX_GPUS 64
#define DL_TOPO_MAX_PORTS 256      /* distinct bridges on GPU paths */
#define DL_TOPO_MAX_DEPTH 16       /* bridges between host bridge and GPU */
#define DL_TOPO_MAX_COMPLEXES 64
#define DL_TOPO_MAX_SWITCHES 64
#define DL_TOPO_MAX_NVLINKS 18     /* NVML_NVLINK_MAX_LINKS (H100) */
#define DL_TOPO_MAX_WARNINGS 64
#define DL_TOPO_MAX_ENTRIES 8192   /* bus/pci/devices entries looked at */
#define DL_TOPO_BDF_LEN 24         /* "ffffffff:ff:1f.7" + NUL, with room */
#define DL_TOPO_PATH_LEN 384       /* sysfs path relative to the root */
#define DL_TOPO_RAW_LEN 32         /* raw attribute text kept for the report */
#define DL_TOPO_CPULIST_LEN 128
#define DL_TOPO_NOTE_LEN 160

/* ACS control register bits (PCIe base spec, ACS extended capability 0x000D). */
#define DL_TOPO_ACS_CAP_ID 0x000D
#define DL_TOPO_ACS_SV 0x0001 /* source validation */
#define DL_TOPO_ACS_TB 0x0002 /* translation blocking */
#define DL_TOPO_ACS_RR 0x0004 /* P2P request redirect */
#define DL_TOPO_ACS_CR 0x0008 /* P2P completion redirect */
#define DL_TOPO_ACS_UF 0x0010 /* upstream forwarding */
#define DL_TOPO_ACS_EC 0x0020 /* P2P egress control */
#define DL_TOPO_ACS_DT 0x0040 /* direct translated P2P */
/* The bits that stop peer traffic from going straight across a switch. */
#define DL_TOPO_ACS_P2P_BITS (DL_TOPO_ACS_SV | DL_TOPO_ACS_RR | DL_TOPO_ACS_CR | DL_TOPO_ACS_EC)

typedef enum {
    DL_TOPO_SRC_NONE = 0, /* unknown */
    DL_TOPO_SRC_SYSFS,    /* a sysfs attribute file */
    DL_TOPO_SRC_CONFIG,   /* the binary config file in sysfs */
    DL_TOPO_SRC_NVML,     /* an NVML call */
    DL_TOPO_SRC_PCIIDS,   /* the pci.ids name database */
    DL_TOPO_SRC_DERIVED,  /* inferred from other facts (position in the tree) */
} dl_topo_src;

/* One PCIe link as one device reports it.  Speeds in GT/s per lane. */
typedef struct {
    double cur_gts, max_gts;                 /* 0 = unknown */
    int cur_width, max_width;                /* lanes, 0 = unknown */
    char cur_speed_raw[DL_TOPO_RAW_LEN];     /* text as read; "" = unreadable */
    char max_speed_raw[DL_TOPO_RAW_LEN];
    char cur_width_raw[DL_TOPO_RAW_LEN];
    char max_width_raw[DL_TOPO_RAW_LEN];
    int woke;                                /* current values re-read under --wake */
} dl_topo_link;

typedef enum { DL_TOPO_ACS_UNKNOWN = 0, DL_TOPO_ACS_ABSENT, DL_TOPO_ACS_PRESENT } dl_topo_acs_state;

typedef struct {
    dl_topo_acs_state state;
    unsigned cap, ctrl;              /* capability / control registers when present */
    int offset;                      /* config-space offset of the capability */
    char note[DL_TOPO_NOTE_LEN];     /* why unknown, e.g. short read as non-root */
} dl_topo_acs;

typedef enum {
    DL_TOPO_PORT_ROOT = 0,   /* root port: on the host bridge's root bus */
    DL_TOPO_PORT_UPSTREAM,   /* switch upstream port */
    DL_TOPO_PORT_DOWNSTREAM, /* switch downstream port */
    DL_TOPO_PORT_BRIDGE,     /* PCI/PCI-X bridge or unclassified */
} dl_topo_port_kind;

/* A bridge on some GPU's path (shared between GPUs behind the same switch). */
typedef struct {
    char bdf[DL_TOPO_BDF_LEN];
    char path[DL_TOPO_PATH_LEN];     /* relative to the sysfs root */
    int parent;                      /* port index, -1 on the root bus */
    int complex;                     /* index into dl_topo.complexes */
    int vendor, device, class_code;  /* -1 = unknown */
    dl_topo_port_kind kind;
    dl_topo_src kind_src;            /* CONFIG (PCIe capability) or DERIVED */
    int sw;                          /* switch index, -1 if not a switch port */
    dl_topo_link link;
    dl_topo_acs acs;
} dl_topo_port;

typedef struct {
    int upstream;                    /* port index of the upstream port */
    int vendor, device;
    char vendor_name[32];            /* "PLX/Broadcom", "Microsemi", ... */
    int n_gpus;                      /* GPUs below it */
} dl_topo_switch;

/* A root complex = one host bridge = one sysfs "pciDDDD:BB" directory. */
typedef struct {
    char name[32];                   /* "pci0000:00" */
    char path[DL_TOPO_PATH_LEN];
    unsigned domain, bus;
    int numa_node;                   /* from the devices below it; -1 none/unknown */
    int package;                     /* CPU socket, -1 unknown */
} dl_topo_complex;

typedef struct {
    int link;                        /* NVLink number on this GPU */
    int version;                     /* nvmlNvlinkVersion_t: 4 = NVLink 3.0, 0 = unknown */
    char remote_bdf[DL_TOPO_BDF_LEN];
    int remote_gpu;                  /* index into gpus, -1 if not one of ours */
    int remote_is_switch;            /* the far end is an NVSwitch */
} dl_topo_nvlink;

typedef struct {
    char bdf[DL_TOPO_BDF_LEN];
    char path[DL_TOPO_PATH_LEN];
    int vendor, device, class_code;  /* -1 = unknown */
    char name[96];
    dl_topo_src name_src;
    int compute;                     /* 0 for BMC display adapters (ASPEED, Matrox) */
    int numa_node;                   /* -1 = none reported */
    dl_topo_src numa_src;            /* NONE: numa_node unreadable */
    char cpulist[DL_TOPO_CPULIST_LEN];
    dl_topo_src cpulist_src;
    int package;                     /* CPU socket of its local CPUs, -1 unknown */
    int complex;
    int ports[DL_TOPO_MAX_DEPTH];    /* root port first */
    int n_ports;
    dl_topo_link link;
    int iommu_group;                 /* -1 none/unknown */
    char iommu_type[24];             /* "DMA", "DMA-FQ", "identity", "" unknown */
    /* The driver's view, filled by dl_topo_nvml_apply(). */
    int nvml_found;
    int nvml_cur_gen, nvml_cur_width, nvml_max_gen, nvml_max_width; /* 0 = unknown */
    dl_topo_nvlink nvlinks[DL_TOPO_MAX_NVLINKS];                    /* active links */
    int n_nvlinks;
} dl_topo_gpu;

typedef enum {
    DL_TOPO_REL_UNKNOWN = 0,
    DL_TOPO_REL_X,    /* self */
    DL_TOPO_REL_NV,   /* NVLink, nvlinks links */
    DL_TOPO_REL_PIX,  /* at most one PCIe switch (or bridge) */
    DL_TOPO_REL_PXB,  /* several switches, no host bridge */
    DL_TOPO_REL_PHB,  /* through one host bridge (the CPU's root complex) */
    DL_TOPO_REL_NODE, /* between host bridges of one NUMA node */
    DL_TOPO_REL_SYS,  /* across the SMP interconnect between NUMA nodes */
} dl_topo_rel;

/* NCCL path levels, in NCCL's order (comparable with <=). */
typedef enum {
    DL_TOPO_NCCL_LOC = 0,
    DL_TOPO_NCCL_NVL,
    DL_TOPO_NCCL_PIX,
    DL_TOPO_NCCL_PXB,
    DL_TOPO_NCCL_PHB,
    DL_TOPO_NCCL_SYS,
} dl_topo_nccl_level;

typedef enum { DL_TOPO_CPU_UNKNOWN = 0, DL_TOPO_CPU_INTEL, DL_TOPO_CPU_AMD, DL_TOPO_CPU_ZHAOXIN,
               DL_TOPO_CPU_X86_OTHER, DL_TOPO_CPU_ARM, DL_TOPO_CPU_OTHER } dl_topo_cpu_vendor;

/* A physical link on a path is named by the device on its lower end. */
typedef struct {
    int gpu;                         /* GPU index, or -1 */
    int port;                        /* port index (upstream port), or -1 */
} dl_topo_hop;

typedef struct {
    dl_topo_rel rel;
    dl_topo_rel pcie_rel;            /* the same over PCIe alone (rel without NVLink) */
    int nvlinks;                     /* for NV# */
    double nvlink_gbps;              /* NVLink GB/s per direction, 0 if none/unknown */
    double pcie_gbps;                /* narrowest PCIe link at full speed, 0 unknown */
    double pcie_gbps_now;            /* the same at the speed it runs at right now */
    double gbps;                     /* what peer traffic gets: NVLink if any, else PCIe */
    dl_topo_hop bottleneck;          /* narrowest PCIe link (gpu = port = -1: unknown) */
    double bottleneck_gts;           /* its best common speed */
    int bottleneck_width;
    int n_switches;                  /* PCIe switches crossed */
    int common_port;                 /* deepest shared bridge, -1 if none */
    unsigned acs_ctrl;               /* OR of ACS control bits on the bridges crossed */
    int acs_port;                    /* first bridge with ACS P2P bits set, -1 none */
    int acs_unknown;                 /* some bridge crossed had unreadable ACS */
    dl_topo_nccl_level nccl_path;    /* the path as NCCL classifies it */
    int nccl_p2p;                    /* NCCL uses P2P for the pair by default */
    int nvml_p2p;                    /* NVML P2P read+write status: 1 ok, 0 not, -1 unknown */
} dl_topo_pair;

typedef enum {
    DL_TOPO_WARN_WIDTH = 0,  /* fewer lanes than the device supports */
    DL_TOPO_WARN_SPEED,      /* below its maximum generation */
    DL_TOPO_WARN_SOCKETS,    /* GPUs under different sockets */
    DL_TOPO_WARN_COMPLEXES,  /* GPUs under different root complexes */
    DL_TOPO_WARN_LANES,      /* more GPUs than CPU lanes feed at x8 */
    DL_TOPO_WARN_ACS,        /* ACS redirects peer traffic */
    DL_TOPO_WARN_IOMMU,      /* IOMMU translating DMA */
    DL_TOPO_WARN_NUMA,       /* no NUMA node on a multi-socket machine */
    DL_TOPO_WARN_UNREAD,     /* something could not be read */
} dl_topo_warn_kind;

typedef struct {
    dl_topo_warn_kind kind;
    int gpu;                         /* GPU it concerns, -1 for machine-wide */
    char text[320];
} dl_topo_warning;

/* What the NCCL environment says; NULL in dl_topo_analyze() means unset. */
typedef struct {
    int p2p_disable;                 /* NCCL_P2P_DISABLE=1 */
    int p2p_level;                   /* NCCL_P2P_LEVEL parsed, -1 unset */
    char p2p_level_raw[16];
} dl_topo_nccl_env;

typedef enum { DL_TOPO_NVML_NOT_TRIED = 0, DL_TOPO_NVML_UNAVAILABLE, DL_TOPO_NVML_OK } dl_topo_nvml_state;

typedef struct {
    char root[DL_TOPO_PATH_LEN];     /* sysfs root as given */
    dl_topo_cpu_vendor cpu_vendor;
    char cpu_modalias[64];           /* start of devices/system/cpu/modalias */
    int n_packages;                  /* CPU sockets seen in cpu topology, 0 unknown */
    int iommu_units;                 /* entries in class/iommu, -1 unreadable */
    int iommu_groups;                /* entries in kernel/iommu_groups, -1 unreadable */
    dl_topo_nvml_state nvml;
    char nvml_note[DL_TOPO_NOTE_LEN];
    char driver_version[32];
    int woke;                        /* --wake ran while link speeds were re-read */
    char wake_note[DL_TOPO_NOTE_LEN];
    int pci_visible;                 /* bus/pci/devices could be listed */
    int n_entries;                   /* entries in bus/pci/devices */
    int n_skipped;                   /* entries that could not be read */
    char skipped_note[DL_TOPO_NOTE_LEN];
    dl_topo_nccl_env nccl_env;
    dl_topo_nccl_level nccl_default; /* NCCL's default P2P level for this CPU */

    dl_topo_gpu *gpus;               /* [DL_TOPO_MAX_GPUS], NVIDIA first */
    int n_gpus, n_compute;           /* compute GPUs come before display-only ones */
    int n_nvidia;                    /* NVIDIA GPUs: the first n_nvidia entries */
    dl_topo_port *ports;             /* [DL_TOPO_MAX_PORTS] */
    int n_ports;
    dl_topo_complex *complexes;      /* [DL_TOPO_MAX_COMPLEXES] */
    int n_complexes;
    dl_topo_switch *switches;        /* [DL_TOPO_MAX_SWITCHES] */
    int n_switches;
    dl_topo_pair *pairs;             /* [DL_TOPO_MAX_GPUS * DL_TOPO_MAX_GPUS], i*n_gpus+j */
    dl_topo_warning *warnings;       /* [DL_TOPO_MAX_WARNINGS] */
    int n_warnings;
} dl_topo;

/* ---- discovery (topo_discover.c) ---------------------------------------- */

/* Reads the PCI tree under sysfs_root (NULL = "/sys") and analyses it with an
 * unset NCCL environment.  Missing or odd files become "unknown"; fails only
 * when sysfs_root itself cannot be opened or memory runs out.  Free with
 * dl_topo_free() even after a failure. */
dl_status dl_topo_discover(const char *sysfs_root, dl_topo *out);
void dl_topo_free(dl_topo *t);

/* Re-reads the current link speed and width of every GPU and port. */
void dl_topo_refresh_links(dl_topo *t);

/* Names from a pci.ids database (NULL: the usual system locations); names
 * already set by NVML are kept.  Returns DL_ERR_IO if no database opened. */
dl_status dl_topo_names_apply(dl_topo *t, const char *pci_ids_path);

/* ---- analysis (topo_pairs.c) --------------------------------------------- */

/* Recomputes pairs, NCCL choices and warnings; env NULL = NCCL vars unset. */
void dl_topo_analyze(dl_topo *t, const dl_topo_nccl_env *env);
/* Reads NCCL_P2P_DISABLE / NCCL_P2P_LEVEL from envp (NULL: environ). */
void dl_topo_nccl_env_read(dl_topo_nccl_env *env, char *const *envp);

const dl_topo_pair *dl_topo_pair_get(const dl_topo *t, int a, int b);
/* Relationship and bandwidth for one pair, usable by predict/scale. */
dl_topo_rel dl_topo_pair_rel(const dl_topo *t, int a, int b);
double dl_topo_pair_gbps(const dl_topo *t, int a, int b);
/* "X", "NV", "PIX", ...; nvidia-smi style cell ("NV4") into buf. */
const char *dl_topo_rel_name(dl_topo_rel rel);
const char *dl_topo_rel_cell(dl_topo_rel rel, int nvlinks, char *buf, size_t cap);
const char *dl_topo_nccl_level_name(dl_topo_nccl_level level);
dl_topo_nccl_level dl_topo_rel_nccl_level(dl_topo_rel rel);

/* ---- PCIe arithmetic and parsing (topo_pci.c) ---------------------------- */

/* Theoretical GB/s per direction of a link: GT/s x lanes x encoding / 8.
 * 8b/10b up to 5 GT/s, 128b/130b for 8..32 GT/s, ~242/256 (FLIT) from 64.
 * Returns 0 for unknown speed or width. */
double dl_topo_link_gbps(double gts, int width);
double dl_topo_encoding(double gts);
/* PCIe generation (1..7) for a per-lane rate, 0 if not a PCIe rate. */
int dl_topo_gen_from_gts(double gts);
double dl_topo_gts_from_gen(int gen);
/* Parses "16.0 GT/s PCIe", "8 GT/s", "2.5 GT/s"; 0 for "Unknown" or junk. */
double dl_topo_parse_speed(const char *text);
/* Parses "16" or "x16"; 0 for junk or a link that is down. */
int dl_topo_parse_width(const char *text);
/* NVLink GB/s per direction per link for an nvmlNvlinkVersion_t value (NVML
 * numbers versions 1 = 1.0, 2 = 2.0, 3 = 2.2, 4 = 3.0, 5 = 3.1, 6 = 4.0,
 * 7 = 5.0); 0 for unknown.  _name gives "3.0" ("unknown" for others). */
double dl_topo_nvlink_gbps(int version);
const char *dl_topo_nvlink_version_name(int version);
/* Counts CPUs in "0-15,32-47"; -1 if malformed.  first gets the lowest. */
int dl_topo_cpulist_count(const char *list, int *first);
/* PCI vendor name for switches and GPUs we know ("NVIDIA", "PLX/Broadcom"). */
const char *dl_topo_vendor_name(int vendor);

/* ---- config space and IOMMU (topo_acs.c) --------------------------------- */

/* Finds ACS in a config-space image of len bytes (len < 0x108: unknown). */
void dl_topo_acs_parse(const unsigned char *cfg, size_t len, dl_topo_acs *out);
/* PCIe port type (PCIe capability bits 7:4) from config, -1 if not readable. */
int dl_topo_pcie_port_type(const unsigned char *cfg, size_t len);

/* ---- NVML and CUDA, loaded at run time (topo_nvml.c, topo_wake.c) -------- */

/* Loads NVML (lib NULL = "libnvidia-ml.so.1") and adds names, NVLinks and the
 * driver's PCIe view, then re-analyses.  Without NVML, records why in
 * t->nvml_note and returns DL_ERR_DEVICE; the topology stays usable. */
dl_status dl_topo_nvml_apply(dl_topo *t, const char *lib, const dl_topo_nccl_env *env);

/* Keeps every NVIDIA GPU busy with host-to-device copies (libcuda.so.1) and,
 * while they run, re-reads link speeds (sysfs and NVML via nvml_lib, NULL =
 * default; skip_nvml skips it).  Records the outcome in t->wake_note. */
dl_status dl_topo_wake_and_refresh(dl_topo *t, const char *nvml_lib, int skip_nvml,
                                   const dl_topo_nccl_env *env);

/* ---- placement and binding (topo_bind.c) --------------------------------- */

typedef struct {
    int rank, world, local_rank;     /* -1 = not set by any launcher */
    char source[48];                 /* the variable local_rank came from */
} dl_topo_launch;

/* Reads OMPI_COMM_WORLD_*, MPI_LOCALRANKID, PMI_*, SLURM_* from envp (NULL: environ). */
void dl_topo_launch_read(dl_topo_launch *l, char *const *envp);
/* The GPU a local rank uses: local_rank modulo the compute GPUs, -1 if none. */
int dl_topo_gpu_for_local_rank(const dl_topo *t, int local_rank);
/* Binds the calling thread (and threads it starts later) to the CPUs local
 * to the GPU, intersected with the CPUs it may use.  msg says what happened. */
dl_status dl_topo_bind_local_cpus(const dl_topo *t, int gpu_index, char *msg, size_t cap);
/* Where one rank runs, as dl_topo_place_local_rank() decided it. */
typedef struct {
    int gpu;                         /* GPU index, -1: no GPU (CPU only) */
    int numa_node;                   /* the GPU's NUMA node, -1 none/unknown */
    int bound;                       /* CPU affinity was set */
    char binding[256];               /* what happened to the CPU affinity */
    char line[512];                  /* one line for the log, no newline */
} dl_topo_placement;

/* The whole placement step for a training rank: picks the GPU for
 * local_rank (see dl_topo_gpu_for_local_rank), binds the calling thread to
 * its local CPUs when bind is set (call before starting threads), and
 * describes the outcome in out->line.  Returns DL_OK, or the binding's
 * error (out is filled either way; training can go on unbound). */
dl_status dl_topo_place_local_rank(const dl_topo *t, int local_rank, int bind,
                                   dl_topo_placement *out);
/* One line: which rank runs on which GPU, NUMA node and CPUs. */
void dl_topo_print_placement(FILE *f, const dl_topo *t, int rank, int world, int local_rank,
                             int gpu_index);

/* ---- output (topo_report.c, topo_json.c) ---------------------------------- */

/* Readable report: summary, tree per root complex, matrix, pairs, warnings, legend. */
void dl_topo_report(FILE *f, const dl_topo *t);
void dl_topo_report_matrix(FILE *f, const dl_topo *t);
/* Every fact with its source, as one JSON object. */
void dl_topo_json(FILE *f, const dl_topo *t);

#endif
