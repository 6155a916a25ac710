/* predict_link.c: the link of `dltrain predict --link`: a named one, this
 * machine's narrowest (--link this), or one fitted to a `bench allreduce`
 * sweep (--allreduce-json); and the network between nodes (--net). */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "predict.h"

const dl_link *predict_find_link(const char *opt, const char *name)
{
    const dl_link *l = dl_link_find(name);
    if (!l)
        fprintf(stderr, "dltrain predict: unknown link '%s' for --%s (choose from %s)\n", name,
                opt, dl_link_names());
    return l;
}

/* --link this: the narrowest link between this machine's GPUs. */
int predict_link_this(const predict_opts *o, ring_link *r)
{
#ifdef DLTRAIN_HAVE_TOPO
    const char *root = o->sysfs_root[0] ? o->sysfs_root : "/sys";
    dl_topo t;
    if (dl_topo_discover(root, &t) != DL_OK) {
        fprintf(stderr, "dltrain predict: --link this: cannot read the topology under %s: %s\n",
                root, dl_error_message());
        dl_topo_free(&t);
        return DL_EXIT_ERROR;
    }
    if (!o->sysfs_root[0])
        dl_topo_nvml_apply(&t, NULL, NULL); /* NVLink, when NVML is there; fine without */
    int n = t.n_nvidia > 0 ? t.n_nvidia : t.n_compute;
    if (n == 0) {
        fprintf(stderr, "dltrain predict: --link this: no GPU found on this machine (under %s; "
                "'dltrain topo' shows what was read).  Name a link instead: --link NAME, one of "
                "%.*s\n", root, (int)(strlen(dl_link_names()) - strlen(", this")), dl_link_names());
        dl_topo_free(&t);
        return DL_EXIT_ERROR;
    }
    double best = INFINITY;
    int nv = 1, ga = 0, gb = 0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++) {
            double g = dl_topo_pair_gbps(&t, a, b);
            if (g > 0 && g < best)
                best = g, ga = a, gb = b, nv = dl_topo_pair_rel(&t, a, b) == DL_TOPO_REL_NV;
        }
    if (n == 1 || !isfinite(best)) {
        /* one GPU (or pairs of unknown bandwidth): its own link to the host */
        const dl_topo_link *l = &t.gpus[0].link;
        best = dl_topo_link_gbps(l->max_gts ? l->max_gts : l->cur_gts,
                                 l->cur_width ? l->cur_width : l->max_width);
        nv = 0;
        snprintf(r->what, sizeof r->what, "%d GPU%s under %s; GPU0 (%s)'s own PCIe link", n,
                 n == 1 ? "" : "s", root, t.gpus[0].bdf);
    } else {
        snprintf(r->what, sizeof r->what, "%d GPUs under %s; narrowest pair GPU%d-GPU%d (%s)", n,
                 root, ga, gb, nv ? "NVLink" : "PCIe");
    }
    dl_topo_free(&t);
    if (!(best > 0)) {
        fprintf(stderr, "dltrain predict: --link this: %d GPU%s found, but the bandwidth of "
                "their links is unknown ('dltrain topo' says why); name a link instead\n", n,
                n == 1 ? "" : "s");
        return DL_EXIT_ERROR;
    }
    snprintf(r->name, sizeof r->name, "this");
    r->link_gbps = best;
    r->alpha_us = dl_link_find(nv ? "nvlink3" : "pcie3x16")->alpha_us;
    r->this_gpus = n;
    return 0;
#else
    (void)o, (void)r;
    fprintf(stderr, "dltrain predict: --link this needs topology detection, which this dltrain "
            "was built without; name a link instead (%s)\n", dl_link_names());
    return DL_EXIT_ERROR;
#endif
}

/* The value after "key": in text from p on (spaces allowed around the
 * colon, as any JSON writer may put them), or NULL. */
static const char *json_value(const char *p, const char *key)
{
    char quoted[40];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    for (const char *k = p ? strstr(p, quoted) : NULL; k; k = strstr(k + 1, quoted)) {
        const char *v = k + strlen(quoted);
        v += strspn(v, " \t\r\n");
        if (*v == ':')
            return v + 1 + strspn(v + 1, " \t\r\n");
    }
    return NULL;
}

/* Reads bytes/time_us pairs and world from a `bench allreduce --json` file. */
int predict_calibrate_sweep(const char *path, ring_link *r)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "dltrain predict: cannot read --allreduce-json %s\n", path);
        return DL_EXIT_USAGE;
    }
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    double bytes[256], time_us[256];
    int n = 0;
    const char *w = json_value(text, "world"), *bench = json_value(text, "bench");
    int world = w ? atoi(w) : 0;
    const char *res = json_value(text, "results");
    for (const char *p = res; p && n < 256;) {
        const char *b = json_value(p, "bytes"), *t = b ? json_value(b, "time_us") : NULL;
        if (!t)
            break;
        bytes[n] = strtod(b, NULL), time_us[n] = strtod(t, NULL);
        n++;
        p = t;
    }
    if (!bench || strncmp(bench, "\"allreduce\"", 11) != 0 || !res || n == 0) {
        fprintf(stderr, "dltrain predict: %s is not the JSON of 'dltrain bench allreduce --json'\n",
                path);
        return DL_EXIT_USAGE;
    }
    double gbps, alpha;
    if (dl_link_calibrate(world, bytes, time_us, n, &gbps, &alpha) != 0) {
        fprintf(stderr, "dltrain predict: %s: cannot calibrate from a run over %d rank%s (needs 2 "
                "or more, and measured times)\n", path, world, world == 1 ? "" : "s");
        return DL_EXIT_USAGE;
    }
    snprintf(r->name, sizeof r->name, "measured");
    snprintf(r->what, sizeof r->what, "bench allreduce over %d ranks (%s): best bus bandwidth, "
             "latency from the smallest message", world, path);
    r->link_gbps = gbps, r->alpha_us = alpha, r->ranks = world;
    return 0;
}

/* --net: the machine model's names (1gbit .. ib-ndr) or the link table's
 * InfiniBand and Ethernet entries (eth-10g, ...). */
int predict_resolve_net(const char *name, dl_mnet *out)
{
    const dl_mnet *n = dl_mnet_find(name);
    if (n) {
        *out = *n;
        return 0;
    }
    const dl_link *l = dl_link_find(name);
    if (l && (l->kind == DL_LINK_IB || l->kind == DL_LINK_ETH)) {
        out->name = l->name, out->gbps = l->gbps, out->alpha_us = l->alpha_us;
        return 0;
    }
    fprintf(stderr, "dltrain predict: unknown link '%s' for --net (choose from %s, eth-10g, "
            "eth-25g, eth-100g)\n", name, dl_mnet_names());
    return DL_EXIT_USAGE;
}
