/* topo_bind.c: which rank uses which GPU, and CPU binding near that GPU.
 *
 * Launchers tell each process its place through environment variables
 * (Open MPI, MPICH/Intel MPI via PMI, Slurm).  A rank takes GPU
 * local_rank % (number of GPUs) and binds its threads to the CPUs the
 * kernel lists as local to that GPU (local_cpulist): host buffers and the
 * threads filling them then sit on the GPU's own socket.  Binding uses
 * sched_setaffinity on the calling thread; threads started afterwards
 * (OpenMP, the loader) inherit the mask, so bind before starting them. */
#define _GNU_SOURCE
#include "topo_internal.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/* Reads from envp (tests pass their own), or the process environment. */
const char *dl_topo_env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = envp ? envp : environ; e && *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

/* First variable of the list that holds a valid number; -1 if none. */
static int env_int(char *const *envp, const char *const *names, char *src, size_t cap)
{
    for (; *names; names++) {
        const char *v = dl_topo_env_get(envp, *names);
        long n;
        if (v && dl_topo_parse_int(v, 0, 1 << 24, &n) == 0) {
            if (src)
                dl_topo_copy(src, cap, *names);
            return (int)n;
        }
    }
    return -1;
}

void dl_topo_launch_read(dl_topo_launch *l, char *const *envp)
{
    static const char *const local[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                                        "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", NULL};
    static const char *const rank[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK",
                                       "MV2_COMM_WORLD_RANK", "SLURM_PROCID", NULL};
    static const char *const world[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                        "MV2_COMM_WORLD_SIZE", "SLURM_NTASKS", NULL};
    memset(l, 0, sizeof *l);
    l->local_rank = env_int(envp, local, l->source, sizeof l->source);
    l->rank = env_int(envp, rank, NULL, 0);
    l->world = env_int(envp, world, NULL, 0);
    if (l->world == 0)
        l->world = -1;
}

int dl_topo_gpu_for_local_rank(const dl_topo *t, int local_rank)
{
    /* CUDA sees only NVIDIA GPUs; other GPUs count when there is no NVIDIA one. */
    int n = t->n_nvidia ? t->n_nvidia : t->n_compute;
    if (n <= 0)
        return -1;
    return (local_rank < 0 ? 0 : local_rank) % n;
}

/* Fills set from a CPU list; returns the number of CPUs set. */
static int cpulist_to_set(const char *list, cpu_set_t *set, size_t size)
{
    int count = 0;
    const char *s = list;
    CPU_ZERO_S(size, set);
    while (*s) {
        char *end;
        long a = strtol(s, &end, 10), b = a;
        if (end == s)
            break;
        s = end;
        if (*s == '-') {
            b = strtol(s + 1, &end, 10);
            s = end;
        }
        for (long c = a; c <= b && c < (long)(size * 8); c++, count++)
            CPU_SET_S((size_t)c, size, set);
        if (*s != ',')
            break;
        s++;
    }
    return count;
}

dl_status dl_topo_bind_local_cpus(const dl_topo *t, int gpu_index, char *msg, size_t cap)
{
    if (!t || gpu_index < 0 || gpu_index >= t->n_gpus) {
        snprintf(msg, cap, "not bound: no GPU");
        return dl_fail(DL_ERR_ARG, "%s", msg);
    }
    const dl_topo_gpu *g = &t->gpus[gpu_index];
    if (!g->cpulist_src) {
        snprintf(msg, cap, "not bound: local CPUs of GPU%d unknown", gpu_index);
        return dl_fail(DL_ERR_IO, "%s", msg);
    }
    enum { MAX_CPUS = 8192 };
    size_t size = CPU_ALLOC_SIZE(MAX_CPUS);
    cpu_set_t *want = CPU_ALLOC(MAX_CPUS), *allowed = CPU_ALLOC(MAX_CPUS);
    dl_status st = DL_OK;
    if (!want || !allowed) {
        snprintf(msg, cap, "not bound: out of memory");
        st = dl_fail(DL_ERR_OOM, "%s", msg);
        goto out;
    }
    cpulist_to_set(g->cpulist, want, size);
    /* Stay inside what cgroups / the launcher already allow. */
    if (sched_getaffinity(0, size, allowed) == 0)
        CPU_AND_S(size, want, want, allowed);
    int n = CPU_COUNT_S(size, want);
    if (n == 0) {
        snprintf(msg, cap, "not bound: none of GPU%d's CPUs (%s) are allowed to this process",
                 gpu_index, g->cpulist);
        st = dl_fail(DL_ERR_ARG, "%s", msg);
    } else if (sched_setaffinity(0, size, want) != 0) {
        snprintf(msg, cap, "not bound: sched_setaffinity failed (%s)", strerror(errno));
        st = dl_fail(DL_ERR_IO, "%s", msg);
    } else {
        snprintf(msg, cap, "bound to %d CPU%s local to GPU%d (%s)", n, n == 1 ? "" : "s",
                 gpu_index, g->cpulist);
    }
out:
    if (want)
        CPU_FREE(want);
    if (allowed)
        CPU_FREE(allowed);
    return st;
}

void dl_topo_print_placement(FILE *f, const dl_topo *t, int rank, int world, int local_rank,
                             int gpu_index)
{
    char line[512];
    int n = snprintf(line, sizeof line, "rank %d/%d (local %d): ", rank < 0 ? 0 : rank,
                     world < 0 ? 1 : world, local_rank < 0 ? 0 : local_rank);
    if (!t || gpu_index < 0 || gpu_index >= t->n_gpus) {
        snprintf(line + n, sizeof line - (size_t)n, "no GPU, CPU only\n");
    } else {
        const dl_topo_gpu *g = &t->gpus[gpu_index];
        char numa[24];
        if (!g->numa_src)
            snprintf(numa, sizeof numa, "unknown");
        else if (g->numa_node < 0)
            snprintf(numa, sizeof numa, "none");
        else
            snprintf(numa, sizeof numa, "%d", g->numa_node);
        snprintf(line + n, sizeof line - (size_t)n, "GPU%d %s%s%s, NUMA node %s, CPUs %s\n",
                 gpu_index, g->bdf, g->name[0] ? " " : "", g->name, numa,
                 g->cpulist_src ? g->cpulist : "unknown");
    }
    /* One write per line keeps lines from several ranks whole. */
    fputs(line, f);
    fflush(f);
}

dl_status dl_topo_place_local_rank(const dl_topo *t, int local_rank, int bind,
                                   dl_topo_placement *out)
{
    memset(out, 0, sizeof *out);
    out->gpu = t ? dl_topo_gpu_for_local_rank(t, local_rank) : -1;
    out->numa_node = -1;
    dl_status st = DL_OK;
    if (out->gpu < 0) {
        snprintf(out->binding, sizeof out->binding, "not bound (no GPU)");
    } else {
        const dl_topo_gpu *g = &t->gpus[out->gpu];
        out->numa_node = g->numa_src ? g->numa_node : -1;
        if (!bind)
            snprintf(out->binding, sizeof out->binding, "not bound (binding off)");
        else if ((st = dl_topo_bind_local_cpus(t, out->gpu, out->binding, sizeof out->binding)) == DL_OK)
            out->bound = 1;
    }
    int lr = local_rank < 0 ? 0 : local_rank;
    if (out->gpu < 0) {
        snprintf(out->line, sizeof out->line, "local rank %d: no GPU, CPU only; %s", lr, out->binding);
        return st;
    }
    const dl_topo_gpu *g = &t->gpus[out->gpu];
    char numa[16] = "none";
    if (out->numa_node >= 0)
        snprintf(numa, sizeof numa, "%d", out->numa_node);
    snprintf(out->line, sizeof out->line, "local rank %d: GPU%d %s%s%s, NUMA node %s; %s", lr, out->gpu,
             g->bdf, g->name[0] ? " " : "", g->name, numa, out->binding);
    return st;
}
