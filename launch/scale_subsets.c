/* scale_subsets.c: choosing GPU pairs that differ in topology. */
#include "scale_subsets.h"

#include <math.h>
#include <stdio.h>

static int same_class(const dl_scale_pair *p, dl_topo_rel rel, double gbps)
{
    /* bandwidths read from sysfs are exact multiples; 1% absorbs rounding */
    return p->rel == rel && fabs(p->gbps - gbps) <= 0.01 * fmax(p->gbps, gbps);
}

static int known_class(const dl_scale_pair *out, int n, dl_topo_rel rel, double gbps)
{
    for (int i = 0; i < n; i++)
        if (same_class(&out[i], rel, gbps))
            return 1;
    return 0;
}

int dl_scale_distinct_pairs(const dl_topo *t, const int *gpu_of_rank, int world,
                            dl_scale_pair *out, int max)
{
    int n = 0;
    for (int a = 0; a < world && n < max; a++)
        for (int b = a + 1; b < world && n < max; b++) {
            int ga = gpu_of_rank[a], gb = gpu_of_rank[b];
            if (ga < 0 || gb < 0 || ga == gb || ga >= t->n_gpus || gb >= t->n_gpus)
                continue;
            dl_topo_rel rel = dl_topo_pair_rel(t, ga, gb);
            double gbps = dl_topo_pair_gbps(t, ga, gb);
            if (rel == DL_TOPO_REL_UNKNOWN || known_class(out, n, rel, gbps))
                continue;
            out[n++] = (dl_scale_pair){a, b, ga, gb, rel, gbps};
        }
    return n;
}

void dl_scale_pair_label(const dl_topo *t, const dl_scale_pair *p, char *buf, size_t cap)
{
    const dl_topo_pair *pair = dl_topo_pair_get(t, p->gpu_a, p->gpu_b);
    char link[64] = "";
    if (p->rel == DL_TOPO_REL_NV && pair)
        snprintf(link, sizeof link, "%d NVLink(s)", pair->nvlinks);
    else if (pair && pair->bottleneck_width > 0)
        snprintf(link, sizeof link, "x%d gen%d", pair->bottleneck_width,
                 dl_topo_gen_from_gts(pair->bottleneck_gts));
    snprintf(buf, cap, "GPU%d,GPU%d via %s, bottleneck %s%s(%.1f GB/s)", p->gpu_a, p->gpu_b,
             dl_topo_rel_name(p->rel), link, link[0] ? " " : "", p->gbps);
}
