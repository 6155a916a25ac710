/* topo_golden_test.c: one fixture machine, its golden report and JSON.
 *
 *   topo_golden_test SPEC GOLDEN_DIR WORK_DIR
 *
 * Builds the fixture tree from SPEC into WORK_DIR/NAME, runs discovery with
 * the relative root "NAME" (so outputs do not depend on the build path),
 * compares the report and JSON byte for byte with GOLDEN_DIR/NAME.txt and
 * NAME.json, then checks the "expect" lines of the spec (matrix letters,
 * bottleneck GB/s, NCCL transport, warnings).  With DLTRAIN_UPDATE_GOLDEN=1
 * (or DL_TOPO_UPDATE_GOLDEN=1) it rewrites the golden files instead of
 * comparing them (then review the diff with git before committing). */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "topo.h"
#include "topo_fixture.h"

static int failures;

#include "../expect.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static int spill(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

/* Reports the first differing line, which is what one needs to fix it. */
static void compare(const char *what, const char *golden_path, const char *actual, size_t alen,
                    const char *actual_path)
{
    size_t glen = 0;
    char *golden = slurp(golden_path, &glen);
    if (!golden) {
        EXPECT(0, "%s: golden file %s missing (run with DLTRAIN_UPDATE_GOLDEN=1 to create it)",
              what, golden_path);
        return;
    }
    if (glen != alen || memcmp(golden, actual, alen) != 0) {
        int line = 1;
        size_t i = 0, start = 0;
        while (i < glen && i < alen && golden[i] == actual[i]) {
            if (golden[i] == '\n')
                line++, start = i + 1;
            i++;
        }
        const char *ge = strchr(golden + start, '\n'), *ae = memchr(actual + start, '\n', alen - start);
        int gl = ge ? (int)(ge - golden - (long)start) : (int)(glen - start);
        int al = ae ? (int)(ae - actual - (long)start) : (int)(alen - start);
        spill(actual_path, actual, alen);
        EXPECT(0, "%s differs from %s at line %d\n  golden: %.*s\n  actual: %.*s\n  (full output in %s)",
              what, golden_path, line, gl, golden + start, al, actual + start, actual_path);
    }
    free(golden);
}

static int pair_index(const dl_topo *t, const char *s)
{
    int v = atoi(s);
    return v >= 0 && v < t->n_gpus ? v : -1;
}

static void check_pair(const dl_topo *t, char **tok, int n)
{
    EXPECT(n >= 5, "expect pair needs: A B REL GBPS [P2P|SHM]");
    if (n < 5)
        return;
    int a = pair_index(t, tok[2]), b = pair_index(t, tok[3]);
    EXPECT(a >= 0 && b >= 0, "expect pair %s %s: no such GPUs", tok[2], tok[3]);
    if (a < 0 || b < 0)
        return;
    const dl_topo_pair *p = dl_topo_pair_get(t, a, b);
    char cell[16];
    dl_topo_rel_cell(p->rel, p->nvlinks, cell, sizeof cell);
    EXPECT(strcmp(cell, tok[4]) == 0, "GPU%d-GPU%d relationship %s, expected %s", a, b, cell, tok[4]);
    EXPECT(dl_topo_pair_rel(t, b, a) == p->rel, "GPU%d-GPU%d matrix not symmetric", a, b);
    if (n >= 6) {
        if (strcmp(tok[5], "?") == 0)
            EXPECT(p->gbps == 0, "GPU%d-GPU%d bandwidth %.3f, expected unknown", a, b, p->gbps);
        else
            EXPECT(fabs(p->gbps - atof(tok[5])) < 0.01, "GPU%d-GPU%d bandwidth %.3f GB/s, expected %s",
                  a, b, p->gbps, tok[5]);
        EXPECT(fabs(dl_topo_pair_gbps(t, a, b) - dl_topo_pair_gbps(t, b, a)) < 1e-9,
              "GPU%d-GPU%d bandwidth not symmetric", a, b);
    }
    if (n >= 7)
        EXPECT(strcmp(tok[6], p->nccl_p2p ? "P2P" : "SHM") == 0, "GPU%d-GPU%d NCCL %s, expected %s",
              a, b, p->nccl_p2p ? "P2P" : "SHM", tok[6]);
}

static int has_warning(const dl_topo *t, const char *text)
{
    for (int i = 0; i < t->n_warnings; i++)
        if (strstr(t->warnings[i].text, text))
            return 1;
    return 0;
}

static void check_expectations(const char *spec, const dl_topo *t)
{
    FILE *f = fopen(spec, "r");
    char line[2048];
    int checked = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *tok[16];
        int n = topo_fixture_tokens(line, tok, 16);
        if (n < 2 || strcmp(tok[0], "expect") != 0)
            continue;
        checked++;
        int want = n > 2 ? atoi(tok[2]) : -1;
        if (strcmp(tok[1], "gpus") == 0)
            EXPECT(t->n_gpus == want, "%d GPUs, expected %d", t->n_gpus, want);
        else if (strcmp(tok[1], "nvidia") == 0)
            EXPECT(t->n_nvidia == want, "%d NVIDIA GPUs, expected %d", t->n_nvidia, want);
        else if (strcmp(tok[1], "compute") == 0)
            EXPECT(t->n_compute == want, "%d compute GPUs, expected %d", t->n_compute, want);
        else if (strcmp(tok[1], "switches") == 0)
            EXPECT(t->n_switches == want, "%d switches, expected %d", t->n_switches, want);
        else if (strcmp(tok[1], "pair") == 0)
            check_pair(t, tok, n);
        else if (strcmp(tok[1], "warning") == 0 && n > 2)
            EXPECT(has_warning(t, tok[2]), "no warning containing \"%s\"", tok[2]);
        else if (strcmp(tok[1], "nowarning") == 0 && n > 2)
            EXPECT(!has_warning(t, tok[2]), "unexpected warning containing \"%s\"", tok[2]);
        else
            EXPECT(0, "unknown expectation '%s'", tok[1]);
    }
    if (f)
        fclose(f);
    EXPECT(checked > 0, "%s has no expect lines", spec);
}

static int update_requested(void)
{
    const char *a = getenv("DLTRAIN_UPDATE_GOLDEN"), *b = getenv("DL_TOPO_UPDATE_GOLDEN");
    return (a && strcmp(a, "1") == 0) || (b && strcmp(b, "1") == 0);
}

static char *render(const dl_topo *t, int json, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    if (json)
        dl_topo_json(f, t);
    else
        dl_topo_report(f, t);
    fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s SPEC GOLDEN_DIR WORK_DIR\n", argv[0]);
        return 2;
    }
    /* Absolute paths: the test changes into WORK_DIR below. */
    char *spec = realpath(argv[1], NULL), *golden_dir = realpath(argv[2], NULL);
    const char *work = argv[3];
    if (!spec || !golden_dir) {
        fprintf(stderr, "FAIL: %s or %s not found\n", argv[1], argv[2]);
        return 1;
    }
    char name[256], err[512], path[2048];
    const char *base = strrchr(spec, '/') ? strrchr(spec, '/') + 1 : spec;
    snprintf(name, sizeof name, "%.*s", (int)strcspn(base, "."), base);
    snprintf(path, sizeof path, "%s/%s", work, name);
    if (topo_fixture_build(spec, path, err, sizeof err) != 0 || chdir(work) != 0) {
        fprintf(stderr, "FAIL: cannot build fixture: %s\n", err);
        return 1;
    }
    dl_topo t;
    if (dl_topo_discover(name, &t) != DL_OK) {
        fprintf(stderr, "FAIL: discovery: %s\n", dl_error_message());
        return 1;
    }
    size_t rlen = 0, jlen = 0;
    char *report = render(&t, 0, &rlen), *json = render(&t, 1, &jlen);
    char golden_txt[2048], golden_json[2048], actual_txt[512], actual_json[512];
    snprintf(golden_txt, sizeof golden_txt, "%s/%s.txt", golden_dir, name);
    snprintf(golden_json, sizeof golden_json, "%s/%s.json", golden_dir, name);
    snprintf(actual_txt, sizeof actual_txt, "%s.actual.txt", name);
    snprintf(actual_json, sizeof actual_json, "%s.actual.json", name);
    if (update_requested()) {
        EXPECT(spill(golden_txt, report, rlen) == 0 && spill(golden_json, json, jlen) == 0,
              "cannot write golden files in %s", golden_dir);
        printf("updated %s and %s\n", golden_txt, golden_json);
    } else {
        compare("report", golden_txt, report, rlen, actual_txt);
        compare("json", golden_json, json, jlen, actual_json);
    }
    check_expectations(spec, &t);
    free(report);
    free(json);
    dl_topo_free(&t);
    free(spec);
    free(golden_dir);
    if (failures)
        fprintf(stderr, "%s: %d failure(s)\n", name, failures);
    else
        printf("%s: report, JSON and expectations match\n", name);
    return failures ? 1 : 0;
}
