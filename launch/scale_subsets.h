/* scale_subsets.h: which GPU pairs `dltrain scale` measures besides the
 * first two ranks.  Two GPUs under one switch and two GPUs on different root
 * complexes (or CPUs) move gradients over different links, so where the
 * machine offers such a choice each kind of pair is measured and labelled
 * with its path and bottleneck link. */
#ifndef DL_SCALE_SUBSETS_H
#define DL_SCALE_SUBSETS_H

#include <stddef.h>

#include "../comm/topo/topo.h"

#define DL_SCALE_MAX_PAIRS 8

typedef struct dl_scale_pair {
    int rank_a, rank_b; /* ranks of the job */
    int gpu_a, gpu_b;   /* their GPUs (dl_topo indices) */
    dl_topo_rel rel;    /* the path between them (PIX, PXB, PHB, NODE, SYS, NV) */
    double gbps;        /* what peer traffic gets: NVLink, else the narrowest PCIe link */
} dl_scale_pair;

/* One pair of ranks per distinct (path, bottleneck bandwidth) class among the
 * GPUs the ranks use, in rank order of first appearance; gpu_of_rank[r] < 0
 * means rank r has no GPU.  Returns the number written (<= max). */
int dl_scale_distinct_pairs(const dl_topo *t, const int *gpu_of_rank, int world,
                            dl_scale_pair *out, int max);

/* "GPU0,GPU1 via PIX, bottleneck x8 gen3 (7.9 GB/s)" */
void dl_scale_pair_label(const dl_topo *t, const dl_scale_pair *p, char *buf, size_t cap);

#endif
