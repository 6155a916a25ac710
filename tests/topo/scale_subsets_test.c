/* scale_subsets_test.c: `dltrain scale` picks one GPU pair per kind of link,
 * on fixture machines whose pairs are known (see the fixtures' expect lines). */
#include <stdio.h>
#include <string.h>

#include "scale_subsets.h"
#include "topo_fixture.h"

static int failures;
#include "../expect.h"

static int load(const char *fixtures, const char *work, const char *name, dl_topo *t)
{
    char spec[1024], dir[1024], err[512];
    snprintf(spec, sizeof spec, "%s/%s.topo", fixtures, name);
    snprintf(dir, sizeof dir, "%s/scale_subsets/%s", work, name);
    if (topo_fixture_build(spec, dir, err, sizeof err) != 0) {
        EXPECT(0, "%s: %s", name, err);
        return -1;
    }
    if (dl_topo_discover(dir, t) != DL_OK) {
        EXPECT(0, "%s: discovery failed", name);
        return -1;
    }
    return 0;
}

/* Expected pairs as "a-b REL" joined with "; ", in order. */
static void expect_pairs(const dl_topo *t, const int *gpu_of_rank, int world, const char *want,
                         const char *what)
{
    dl_scale_pair p[DL_SCALE_MAX_PAIRS];
    int n = dl_scale_distinct_pairs(t, gpu_of_rank, world, p, DL_SCALE_MAX_PAIRS);
    char got[512] = "";
    for (int i = 0; i < n; i++) {
        size_t len = strlen(got);
        snprintf(got + len, sizeof got - len, "%s%d-%d %s", i ? "; " : "", p[i].rank_a, p[i].rank_b,
                 dl_topo_rel_name(p[i].rel));
    }
    EXPECT(strcmp(got, want) == 0, "%s\n  got:      %s\n  expected: %s", what, got, want);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: scale_subsets_test FIXTURES_DIR WORK_DIR\n");
        return 2;
    }
    dl_topo t;
    int identity[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    if (load(argv[1], argv[2], "workstation_4gpu_2switch", &t) == 0) {
        /* 0-1 share an x8-fed switch, 2-3 an x16-fed one: same path, other bottleneck */
        expect_pairs(&t, identity, 4, "0-1 PIX; 0-2 PXB; 2-3 PIX", "4 GPUs, 2 switches");
        int reversed[4] = {3, 2, 1, 0};
        expect_pairs(&t, reversed, 4, "0-1 PIX; 0-2 PXB; 2-3 PIX", "ranks in reverse GPU order");
        int shared[3] = {0, 0, 1};
        expect_pairs(&t, shared, 3, "0-2 PIX", "two ranks on one GPU are not a pair");
        dl_scale_pair p[1];
        dl_scale_distinct_pairs(&t, identity, 2, p, 1);
        char label[160];
        dl_scale_pair_label(&t, p, label, sizeof label);
        EXPECT(strcmp(label, "GPU0,GPU1 via PIX, bottleneck x8 gen3 (7.9 GB/s)") == 0, "label: %s",
              label);
        dl_topo_free(&t);
    }
    if (load(argv[1], argv[2], "dualsocket_server", &t) == 0) {
        expect_pairs(&t, identity, 4, "0-1 NODE; 0-2 SYS; 2-3 PIX", "two sockets");
        int none[4] = {-1, -1, -1, -1};
        expect_pairs(&t, none, 4, "", "ranks without GPUs");
        dl_topo_free(&t);
    }
    if (failures)
        return 1;
    printf("scale_subsets: one pair per kind of link on the fixture machines\n");
    return 0;
}
