/* run_env.c: the environment, machine and PCIe links a result records. */
#define _GNU_SOURCE
#include "run_env.h"

#include "../comm/nccl_log.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef DLTRAIN_HAVE_TOPO
#include "../comm/topo/topo.h"
#endif

extern char **environ;

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int dl_run_env_recorded(const char *v)
{
    static const char *keep[] = {"NCCL_", "UCX_", "FI_", "I_MPI_", "MV2_", "MPICH_", "OMP_",
                                 "OPENBLAS_", "CUDA_VISIBLE_DEVICES=", "OMPI_MCA_", NULL};
    /* set by mpirun for its own start-up, the same in every run */
    static const char *launcher[] = {"OMPI_MCA_orte_", "OMPI_MCA_ess", "OMPI_MCA_pmix",
                                     "OMPI_MCA_initial_wdir", "OMPI_MCA_shmem_RUNTIME_QUERY_hint",
                                     "OMPI_MCA_mpi_oversubscribe", NULL};
    for (int i = 0; launcher[i]; i++)
        if (starts(v, launcher[i]))
            return 0;
    /* dltrain's own capture of NCCL's log (nccl_log.h), not the user's setting */
    static const char *ours[] = {"NCCL_DEBUG=", "NCCL_DEBUG_SUBSYS=", "NCCL_DEBUG_FILE=", NULL};
    for (int i = 0; ours[i] && dl_nccl_log_owned(); i++)
        if (starts(v, ours[i]))
            return 0;
    for (int i = 0; keep[i]; i++)
        if (starts(v, keep[i]))
            return 1;
    return 0;
}

int dl_run_env_text(char *out, size_t cap)
{
    size_t len = 0;
    int n = 0;
    out[0] = 0;
    for (char **e = environ; e && *e; e++)
        if (dl_run_env_recorded(*e) && len + strlen(*e) + 2 < cap) {
            len += (size_t)snprintf(out + len, cap - len, "%s\n", *e);
            n++;
        }
    return n;
}

void dl_run_env_json(FILE *f)
{
    int n = 0;
    fputc('{', f);
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || !dl_run_env_recorded(*e))
            continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
        fputs(n++ ? "," : "", f);
        dl_json_string(f, name);
        fputc(':', f);
        dl_json_string(f, eq + 1);
    }
    fputc('}', f);
}

static void cpu_model(char *out, size_t cap)
{
    snprintf(out, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (starts(line, "model name")) {
            char *v = strchr(line, ':');
            if (v) {
                v += 1 + (v[1] == ' ');
                v[strcspn(v, "\n")] = 0;
                snprintf(out, cap, "%s", v);
            }
            break;
        }
    if (f)
        fclose(f);
}

void dl_run_machine(char *out, size_t cap)
{
    char host[256] = "unknown host", cpu[256];
    gethostname(host, sizeof host - 1);
    cpu_model(cpu, sizeof cpu);
    snprintf(out, cap, "host %s, %s, %ld cores online", host, cpu, sysconf(_SC_NPROCESSORS_ONLN));
}

int dl_run_gpu_links(char *text, size_t cap, FILE *json)
{
    text[0] = 0;
    if (json)
        fputc('[', json);
    int n = 0;
#ifdef DLTRAIN_HAVE_TOPO
    dl_topo t;
    if (dl_topo_discover("/sys", &t) == DL_OK) {
        dl_topo_refresh_links(&t); /* the speed the links run at now, not at start-up */
        size_t len = 0;
        for (int i = 0; i < t.n_compute; i++, n++) {
            const dl_topo_gpu *g = &t.gpus[i];
            int gen = dl_topo_gen_from_gts(g->link.cur_gts);
            int max_gen = dl_topo_gen_from_gts(g->link.max_gts);
            if (len < cap)
                len += (size_t)snprintf(text + len, cap - len,
                                        "GPU%d %s %s: PCIe gen%d x%d now (max gen%d x%d)\n", i,
                                        g->bdf, g->name, gen, g->link.cur_width, max_gen,
                                        g->link.max_width);
            if (json) {
                fprintf(json, "%s{\"gpu\":%d,\"bdf\":", i ? "," : "", i);
                dl_json_string(json, g->bdf);
                fprintf(json, ",\"name\":");
                dl_json_string(json, g->name);
                fprintf(json, ",\"link_gen\":%d,\"link_width\":%d,\"max_gen\":%d,"
                              "\"max_width\":%d}", gen, g->link.cur_width, max_gen,
                        g->link.max_width);
            }
        }
    }
    dl_topo_free(&t);
#endif
    if (json)
        fputc(']', json);
    return n;
}

void dl_run_nccl_json(FILE *f)
{
    fprintf(f, "{\"version\":");
    dl_json_string(f, dl_nccl_record_version());
    fprintf(f, ",\"routes\":");
    dl_json_string(f, dl_nccl_record_routes());
    fprintf(f, "}");
}

int dl_run_nccl_text(char *out, size_t cap)
{
    out[0] = 0;
    if (!dl_nccl_record_version()[0])
        return 0;
    snprintf(out, cap, "NCCL %s; transports chosen (from NCCL's log, rank->rank): %s\n",
             dl_nccl_record_version(),
             dl_nccl_record_routes()[0] ? dl_nccl_record_routes() : "not seen in NCCL's log");
    return 1;
}
