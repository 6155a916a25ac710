/* fuzz_topo_tree.c: whole topology discovery (dl_topo_discover, then the
 * text and JSON reports) over a sysfs tree built from fuzzed fixture specs
 * (the tests/topo/fixtures/NAME.topo language, see tests/topo/topo_fixture.h;
 * the fixtures are the seed corpus).
 *
 * The tree is built for real, so a spec must not write outside its own
 * directory, nor make discovery open files elsewhere: lines with absolute
 * paths or ".." are dropped, except symlinks whose targets stay inside the
 * tree by the letter of the path, and no symlink may sit where the builder
 * or a later link would resolve through it. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "topo.h"
#include "topo_fixture.h"

#define MAX_LINKS 64
#define MAX_TOKENS 32

static char root[512];
static char links[MAX_LINKS][256];
static int n_links;

static char top[512]; /* the first of the directories above root */

static void remove_root(void) { topo_fixture_remove(top); }

static int has_dotdot(const char *p)
{
    for (const char *s = p; (s = strstr(s, "..")); s += 2)
        if ((s == p || s[-1] == '/') && (s[2] == '/' || s[2] == '\0'))
            return 1;
    return 0;
}

static int safe_rel(const char *p) { return p[0] != '/' && !has_dotdot(p); }

/* 1 if a is a component-wise prefix of b (or equal). */
static int path_prefix(const char *a, const char *b)
{
    size_t n = strlen(a);
    return strncmp(a, b, n) == 0 && (b[n] == '/' || b[n] == '\0');
}

/* A path that passes through an earlier symlink resolves somewhere the
 * letter of the path does not say. */
static int through_link(const char *rel)
{
    for (int i = 0; i < n_links; i++)
        if (path_prefix(links[i], rel) && strcmp(links[i], rel) != 0)
            return 1;
    return 0;
}

static int link_is_safe(const char *rel, const char *target)
{
    static const char *const builder[] = {"bus/pci/devices/x", "class/iommu/x",
                                          "devices/virtual/iommu/x", "devices/system/cpu/x",
                                          "devices/x"};
    if (!safe_rel(rel) || target[0] == '/' || through_link(rel) || n_links == MAX_LINKS ||
        strlen(rel) >= sizeof links[0])
        return 0;
    for (size_t i = 0; i < sizeof builder / sizeof builder[0]; i++)
        if (path_prefix(rel, builder[i]))
            return 0;
    int depth = 0; /* of the link's directory */
    for (const char *s = rel; *s; s++)
        depth += *s == '/';
    char copy[512];
    snprintf(copy, sizeof copy, "%s", target);
    for (char *save, *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, "..") == 0 && --depth < 0)
            return 0;
        if (strcmp(c, "..") != 0 && strcmp(c, ".") != 0)
            depth++;
    }
    snprintf(links[n_links++], sizeof links[0], "%s", rel);
    return 1;
}

static int line_is_safe(char **tok, int n)
{
    if (n >= 3 && strcmp(tok[0], "symlink") == 0)
        return n == 3 && link_is_safe(tok[1], tok[2]);
    for (int i = 1; i < n; i++)
        if (!safe_rel(tok[i]) || (i == 1 && through_link(tok[i])))
            return 0;
    return 1;
}

/* Copies the spec to out without its unsafe lines, chunk by chunk exactly as
 * topo_fixture_build reads it (fgets into 2048 bytes), so the builder sees
 * the same lines; returns the number of lines dropped, -1 on an I/O error.
 * (The robustness fixture's links to /sys and /etc are dropped this way.) */
static int filter_spec(const char *in, const char *out)
{
    FILE *f = fopen(in, "r"), *g = fopen(out, "w");
    int dropped = 0;
    if (!f || !g) {
        if (f)
            fclose(f);
        if (g)
            fclose(g);
        return -1;
    }
    char line[2048], copy[2048];
    n_links = 0;
    while (fgets(line, sizeof line, f)) {
        char *tok[MAX_TOKENS];
        memcpy(copy, line, sizeof line);
        int n = topo_fixture_tokens(copy, tok, MAX_TOKENS);
        if (n <= 0 || line_is_safe(tok, n))
            fputs(line, g);
        else
            dropped++;
    }
    fclose(f);
    return fclose(g) == 0 ? dropped : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!root[0]) {
        /* deep inside the scratch directory: one more guard against escape */
        snprintf(root, sizeof root, "%s/a/b/c/d/e/f/g/h/sys", fuzz_scratch_dir());
        snprintf(top, sizeof top, "%s/a", fuzz_scratch_dir());
        atexit(remove_root);
        if (topo_fixture_write(root, "x", "", 0) != 0) /* makes the parents */
            abort();
    }
    /* FUZZ_TOPO_DEBUG=1: say why an input (a seed, say) goes no further */
    int debug = getenv("FUZZ_TOPO_DEBUG") != NULL;
    const char *raw = fuzz_write_file("spec", data, size, 0, 0);
    const char *spec = fuzz_write_file("spec-safe", (const uint8_t *)"", 0, 0, 1);
    int dropped = raw && spec ? filter_spec(raw, spec) : -1;
    if (debug)
        fprintf(stderr, "fuzz_topo_tree: %d unsafe lines dropped\n", dropped);
    if (dropped < 0)
        return 0;
    char err[512];
    if (topo_fixture_build(spec, root, err, sizeof err) != 0) {
        if (debug)
            fprintf(stderr, "fuzz_topo_tree: %s\n", err);
        return 0;
    }
    dl_topo t;
    dl_status st = dl_topo_discover(root, &t);
    if (debug)
        fprintf(stderr, "fuzz_topo_tree: discovery %s, %d GPUs\n", st == DL_OK ? "ok" : "failed",
                t.n_gpus);
    FILE *sink = fopen("/dev/null", "w");
    if (st == DL_OK && sink) {
        dl_topo_report(sink, &t);
        dl_topo_json(sink, &t);
    }
    if (sink)
        fclose(sink);
    dl_topo_free(&t);
    return 0;
}
