/* cmd_topo.c: `dltrain topo`, how each GPU is attached, from Linux's records.
 *
 *   dltrain topo                      report for this machine
 *   dltrain topo --json               JSON (every fact and its source) on stdout
 *   dltrain topo --json=topo.json     report on stdout, JSON into topo.json
 *   dltrain topo --sysfs-root DIR     read a fixture tree (or a copied /sys)
 *   mpirun -np 4 dltrain topo         each rank prints its GPU, NUMA node, CPUs
 *
 * Options come from one table that drives getopt_long and --help.  Only this
 * file prints and chooses exit codes; comm/topo*.c returns facts. */
#define _GNU_SOURCE
#include "cmd_topo.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topo.h"

enum { OPT_SYSFS = 1000, OPT_JSON, OPT_WAKE, OPT_NO_BIND, OPT_NO_NVML, OPT_NVML_LIB, OPT_PCI_IDS };

typedef struct {
    const char *name;
    int has_arg; /* no_argument, required_argument, optional_argument */
    int id;
    const char *arg;
    const char *help;
} topo_option;

static const topo_option options[] = {
    {"sysfs-root", required_argument, OPT_SYSFS, "DIR",
     "read PCI facts under DIR instead of /sys (fixture trees); NVML is then not queried"},
    {"json", optional_argument, OPT_JSON, "[=FILE]",
     "JSON with every fact and its source: alone, on stdout instead of the report; =FILE, into FILE"},
    {"wake", no_argument, OPT_WAKE, NULL,
     "keep NVIDIA GPUs busy (short copy loop, needs the CUDA driver) while reading link speeds"},
    {"no-bind", no_argument, OPT_NO_BIND, NULL,
     "do not bind this process to the CPUs local to its GPU"},
    {"no-nvml", no_argument, OPT_NO_NVML, NULL, "do not load NVML"},
    {"nvml-lib", required_argument, OPT_NVML_LIB, "PATH",
     "load NVML from PATH (default libnvidia-ml.so.1); queried even with --sysfs-root"},
    {"pci-ids", required_argument, OPT_PCI_IDS, "FILE",
     "PCI name database (default: /usr/share/misc/pci.ids or /usr/share/hwdata/pci.ids)"},
    {"help", no_argument, 'h', NULL, "this help"},
};

typedef struct {
    const char *sysfs_root;
    int json;              /* 0 none, 1 stdout, 2 file */
    const char *json_file;
    int wake, no_bind, no_nvml;
    const char *nvml_lib;
    const char *pci_ids;
} topo_args;

static void help(FILE *f)
{
    fprintf(f, "usage: dltrain topo [options]\n"
               "how each GPU is attached: PCIe lanes and generation, switches, root complexes,\n"
               "NUMA nodes, NVLink; GPU-pair relationships, bandwidths, ACS and NCCL's transport.\n\n");
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        char left[40];
        snprintf(left, sizeof left, "--%s%s%s", options[i].name,
                 options[i].arg && options[i].has_arg == required_argument ? " " : "",
                 options[i].arg ? options[i].arg : "");
        fprintf(f, "  %-22s %s\n", left, options[i].help);
    }
    fprintf(f, "\nSee docs/topology.md for how to read the report.\n");
}

/* "--name" or "--name=value" naming an option exactly.  getopt_long also
 * takes unique prefixes; like `dltrain train`, topo refuses them so that a
 * typo cannot silently become another option. */
static int exact_long(const char *tok)
{
    if (strncmp(tok, "--", 2) != 0)
        return 0;
    size_t len = strcspn(tok + 2, "=");
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (strlen(options[i].name) == len && strncmp(tok + 2, options[i].name, len) == 0)
            return 1;
    return 0;
}

static int bad_option(const char *tok, int c)
{
    if (c == '?' && exact_long(tok))
        fprintf(stderr, "dltrain topo: option '%s' needs a value", tok);
    else
        fprintf(stderr, "dltrain topo: unknown option '%s'", tok);
    fprintf(stderr, " (see 'dltrain topo --help')\n");
    return 2;
}

static void apply(topo_args *a, int c)
{
    switch (c) {
    case OPT_SYSFS: a->sysfs_root = optarg; break;
    case OPT_JSON: a->json = optarg ? 2 : 1; a->json_file = optarg; break;
    case OPT_WAKE: a->wake = 1; break;
    case OPT_NO_BIND: a->no_bind = 1; break;
    case OPT_NO_NVML: a->no_nvml = 1; break;
    case OPT_NVML_LIB: a->nvml_lib = optarg; break;
    case OPT_PCI_IDS: a->pci_ids = optarg; break;
    default: break;
    }
}

/* Returns -1 to continue, else the exit status. */
static int parse(topo_args *a, int argc, char **argv)
{
    struct option longopts[sizeof options / sizeof options[0] + 1];
    size_t n = sizeof options / sizeof options[0];
    for (size_t i = 0; i < n; i++)
        longopts[i] = (struct option){options[i].name, options[i].has_arg, NULL, options[i].id};
    longopts[n] = (struct option){NULL, 0, NULL, 0};
    memset(a, 0, sizeof *a);
    opterr = 0;
    optind = 1;
    /* "+": stop at the first non-option, so argv[prev] is the option just read. */
    for (int prev = optind, c; (c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1; prev = optind) {
        const char *tok = argv[prev];
        if (c == '?' || (tok[1] == '-' && !exact_long(tok)))
            return bad_option(tok, c);
        if (c == 'h') {
            help(stdout);
            return 0;
        }
        apply(a, c);
    }
    if (optind < argc) {
        fprintf(stderr, "dltrain topo: unexpected argument '%s' (see 'dltrain topo --help')\n", argv[optind]);
        return 2;
    }
    return -1;
}

static int is_live(const char *root)
{
    return !root || strcmp(root, "/sys") == 0 || strcmp(root, "/sys/") == 0;
}

/* Names, NVML, NCCL environment, --wake: everything beyond pure sysfs. */
static void enrich(dl_topo *t, const topo_args *a, const dl_topo_nccl_env *env)
{
    int live = is_live(a->sysfs_root);
    if (a->pci_ids || live)
        dl_topo_names_apply(t, a->pci_ids); /* optional: ids alone are fine */
    if (a->no_nvml)
        snprintf(t->nvml_note, sizeof t->nvml_note, "not queried (--no-nvml)");
    else if (!live && !a->nvml_lib)
        snprintf(t->nvml_note, sizeof t->nvml_note,
                 "not queried (--sysfs-root describes another tree than this machine's driver)");
    else
        dl_topo_nvml_apply(t, a->nvml_lib, env); /* failure is recorded in t->nvml_note */
    dl_topo_analyze(t, env);
    if (a->wake && dl_topo_wake_and_refresh(t, a->nvml_lib, a->no_nvml || !live, env) != DL_OK)
        fprintf(stderr, "dltrain topo: --wake: %s\n", t->wake_note);
}

static void placement(FILE *f, const dl_topo *t, const topo_args *a, const dl_topo_launch *l)
{
    /* A fixture's CPU lists describe another machine: never bind to them. */
    int bind = !a->no_bind && is_live(a->sysfs_root);
    dl_topo_placement p;
    dl_topo_place_local_rank(t, l->local_rank, bind, &p); /* p.binding says what happened */
    const char *binding = p.binding;
    if (p.gpu >= 0 && a->no_bind)
        binding = "not bound (--no-bind)";
    else if (p.gpu >= 0 && !bind)
        binding = "not bound (--sysfs-root: those CPUs are not this machine's)";
    char line[512];
    snprintf(line, sizeof line, "  CPU binding: %s; %s\n", binding,
             l->source[0] ? l->source : "no launcher variables: a single process");
    dl_topo_print_placement(f, t, l->rank, l->world, l->local_rank, p.gpu);
    fputs(line, f);
    fflush(f);
}

static int write_json_file(const dl_topo *t, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "dltrain topo: cannot write %s\n", path);
        return 1;
    }
    dl_topo_json(f, t);
    if (fclose(f) != 0) {
        fprintf(stderr, "dltrain topo: short write to %s\n", path);
        return 1;
    }
    return 0;
}

int dl_cmd_topo(int argc, char **argv)
{
    topo_args a;
    int rc = parse(&a, argc, argv);
    if (rc >= 0)
        return rc;
    if (a.wake && !is_live(a.sysfs_root)) {
        fprintf(stderr, "dltrain topo: --wake reads this machine's GPUs; it cannot be used with --sysfs-root\n");
        return 2;
    }
    dl_topo_launch launch;
    dl_topo_launch_read(&launch, NULL);
    dl_topo_nccl_env env;
    dl_topo_nccl_env_read(&env, NULL);
    dl_topo t;
    if (dl_topo_discover(a.sysfs_root, &t) != DL_OK) {
        fprintf(stderr, "dltrain topo: %s\n", dl_error_message());
        dl_topo_free(&t);
        return 1;
    }
    enrich(&t, &a, &env);
    int lead = launch.rank <= 0; /* rank 0, or not under a launcher */
    if (a.json == 1) {
        if (lead)
            dl_topo_json(stdout, &t);
        placement(stderr, &t, &a, &launch); /* keep stdout pure JSON */
    } else {
        if (lead) {
            dl_topo_report(stdout, &t);
            fprintf(stdout, "\nPlacement (rank -> GPU; under mpirun every rank prints its line)\n");
        }
        placement(stdout, &t, &a, &launch);
        if (a.json == 2 && lead)
            rc = write_json_file(&t, a.json_file);
    }
    dl_topo_free(&t);
    return rc < 0 ? 0 : rc;
}
