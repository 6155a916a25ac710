/* topo_json_read.c: reads back what `dltrain topo --json` wrote (schema
 * dltrain.topo/1), so `predict --machine FILE` can model a machine someone
 * else measured.  A small JSON reader (objects, arrays, strings, numbers,
 * literals) builds a tree; the facts the machine model needs are copied into
 * a dl_topo and handed to dl_machine_from_topo.  A file from another schema,
 * a truncated file or one that is not JSON is refused with one line. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topo_cost.h"

#define SCHEMA "dltrain.topo/1"
#define MAX_NODES 200000
#define MAX_DEPTH 64

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct {
    jtype type;
    const char *key;      /* member name inside an object */
    char *str;
    double num;
    int child, next;      /* first child, next sibling; -1 none */
} jnode;

typedef struct {
    const char *p, *start;
    jnode *n;
    int used;
} jparser;

static void skip_ws(jparser *j)
{
    while (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')
        j->p++;
}

/* Decodes a string in place (the text buffer is ours); -1 if unterminated. */
static int parse_string(jparser *j, char **out)
{
    char *w = (char *)++j->p, *dst = w;
    while (*j->p && *j->p != '"') {
        char c = *j->p++;
        if (c == '\\') {
            char e = *j->p++;
            if (!e)
                return -1;
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b'
                : e == 'f' ? '\f' : e;
            if (e == 'u') { /* only ASCII matters here; the rest becomes '?' */
                unsigned v = 0;
                if (sscanf(j->p, "%4x", &v) != 1)
                    return -1;
                j->p += 4, c = v < 128 ? (char)v : '?';
            }
        }
        *dst++ = c;
    }
    if (*j->p != '"')
        return -1;
    j->p++;
    *dst = 0;
    *out = w;
    return 0;
}

static int parse_value(jparser *j, int depth);

static int parse_members(jparser *j, int self, int depth, int object)
{
    char close = object ? '}' : ']';
    int last = -1;
    j->p++;
    skip_ws(j);
    if (*j->p == close)
        return j->p++, 0;
    for (;;) {
        char *key = NULL;
        skip_ws(j);
        if (object) {
            if (*j->p != '"' || parse_string(j, &key))
                return -1;
            skip_ws(j);
            if (*j->p++ != ':')
                return -1;
        }
        int v = parse_value(j, depth + 1);
        if (v < 0)
            return -1;
        j->n[v].key = key;
        if (last < 0)
            j->n[self].child = v;
        else
            j->n[last].next = v;
        last = v;
        skip_ws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p != close)
            return -1;
        j->p++;
        return 0;
    }
}

static int parse_value(jparser *j, int depth)
{
    skip_ws(j);
    if (depth > MAX_DEPTH || j->used == MAX_NODES)
        return -1;
    int self = j->used++;
    jnode *n = &j->n[self];
    memset(n, 0, sizeof *n);
    n->child = n->next = -1;
    char c = *j->p;
    if (c == '{' || c == '[') {
        n->type = c == '{' ? J_OBJ : J_ARR;
        return parse_members(j, self, depth, c == '{') ? -1 : self;
    }
    if (c == '"')
        return n->type = J_STR, parse_string(j, &n->str) ? -1 : self;
    if (strncmp(j->p, "true", 4) == 0 || strncmp(j->p, "false", 5) == 0) {
        n->type = J_BOOL, n->num = c == 't';
        j->p += c == 't' ? 4 : 5;
        return self;
    }
    if (strncmp(j->p, "null", 4) == 0)
        return n->type = J_NULL, j->p += 4, self;
    char *end;
    n->type = J_NUM, n->num = strtod(j->p, &end);
    if (end == j->p)
        return -1;
    j->p = end;
    return self;
}

/* ---- looking things up ------------------------------------------------------ */

static const jnode *get(const jparser *j, const jnode *obj, const char *key)
{
    if (!obj || obj->type != J_OBJ)
        return NULL;
    for (int i = obj->child; i >= 0; i = j->n[i].next)
        if (j->n[i].key && strcmp(j->n[i].key, key) == 0)
            return &j->n[i];
    return NULL;
}

static const jnode *at(const jparser *j, const jnode *arr, int index)
{
    if (!arr || arr->type != J_ARR)
        return NULL;
    int k = 0;
    for (int i = arr->child; i >= 0; i = j->n[i].next, k++)
        if (k == index)
            return &j->n[i];
    return NULL;
}

static int count(const jparser *j, const jnode *arr)
{
    int k = 0;
    for (int i = arr && arr->type == J_ARR ? arr->child : -1; i >= 0; i = j->n[i].next)
        k++;
    return k;
}

static double num(const jnode *n, double fallback)
{
    return n && (n->type == J_NUM || n->type == J_BOOL) ? n->num : fallback;
}

/* An integer field; out-of-range numbers (hostile files) become the fallback. */
static int inum(const jnode *n, int fallback)
{
    double v = num(n, fallback);
    return v >= -1e9 && v <= 1e9 ? (int)v : fallback;
}

static const char *str(const jnode *n)
{
    return n && n->type == J_STR ? n->str : "";
}

/* link.max_speed.gts / current_width.lanes / max_width.lanes */
static void read_link(const jparser *j, const jnode *link, dl_topo_link *l)
{
    l->max_gts = num(get(j, get(j, link, "max_speed"), "gts"), 0);
    l->cur_gts = num(get(j, get(j, link, "current_speed"), "gts"), 0);
    l->cur_width = inum(get(j, get(j, link, "current_width"), "lanes"), 0);
    l->max_width = inum(get(j, get(j, link, "max_width"), "lanes"), 0);
}

static void read_gpu(const jparser *j, const jnode *g, dl_topo *t, dl_topo_gpu *out)
{
    snprintf(out->bdf, sizeof out->bdf, "%s", str(get(j, g, "bdf")));
    out->package = inum(get(j, get(j, g, "socket"), "value"), -1);
    out->complex = -1;
    const jnode *ports = get(j, g, "path_ports");
    out->n_ports = 0;
    for (int k = 0; k < count(j, ports) && out->n_ports < DL_TOPO_MAX_DEPTH; k++) {
        int port = inum(at(j, ports, k), -1);
        if (port >= 0 && port < t->n_ports)
            out->ports[out->n_ports++] = port;
    }
    read_link(j, get(j, g, "link"), &out->link);
    const jnode *links = get(j, get(j, g, "nvml"), "nvlinks");
    for (int k = 0; k < count(j, links) && out->n_nvlinks < DL_TOPO_MAX_NVLINKS; k++) {
        const jnode *nl = at(j, links, k);
        dl_topo_nvlink *d = &out->nvlinks[out->n_nvlinks++];
        d->version = inum(get(j, nl, "version"), 0);
        d->remote_gpu = inum(get(j, nl, "remote_gpu"), -1);
        d->remote_is_switch = inum(get(j, nl, "remote_is_nvswitch"), 0);
    }
}

static dl_topo_nccl_level level_named(const char *name)
{
    static const char *names[] = {"LOC", "NVL", "PIX", "PXB", "PHB", "SYS"};
    for (int i = 0; i < 6; i++)
        if (strcmp(name, names[i]) == 0)
            return (dl_topo_nccl_level)i;
    return DL_TOPO_NCCL_SYS;
}

static void read_pairs(const jparser *j, const jnode *pairs, dl_topo *t)
{
    for (int k = 0; k < t->n_gpus * t->n_gpus; k++) /* pairs the file leaves out: unknown */
        t->pairs[k].acs_port = -1, t->pairs[k].nvml_p2p = -1;
    for (int k = 0; k < count(j, pairs); k++) {
        const jnode *pr = at(j, pairs, k);
        int a = inum(get(j, pr, "a"), -1), b = inum(get(j, pr, "b"), -1);
        if (a < 0 || b < 0 || a >= t->n_gpus || b >= t->n_gpus)
            continue;
        dl_topo_pair *p = &t->pairs[a * t->n_gpus + b];
        const char *rel = str(get(j, pr, "relationship"));
        p->rel = rel[0] == 'N' && rel[1] == 'V' ? DL_TOPO_REL_NV : DL_TOPO_REL_PHB;
        p->nccl_path = level_named(str(get(j, get(j, pr, "nccl"), "path")));
        const jnode *v = get(j, get(j, pr, "nvml_p2p"), "value");
        p->nvml_p2p = v && v->type == J_BOOL ? (int)v->num : -1;
        p->acs_port = inum(get(j, get(j, pr, "acs"), "redirecting_port"), -1);
        t->pairs[b * t->n_gpus + a] = *p;
    }
}

static int fill_topo(const jparser *j, const jnode *root, dl_topo *t, char *err, size_t cap)
{
    const jnode *cpu_vendor = get(j, get(j, root, "cpu"), "vendor");
    const char *vendor = str(get(j, cpu_vendor, "value"));
    /* the model number decides NCCL's socket link class (topo_machine_topo.c) */
    snprintf(t->cpu_modalias, sizeof t->cpu_modalias, "%s", str(get(j, cpu_vendor, "modalias")));
    t->cpu_vendor = strcmp(vendor, "amd") == 0 ? DL_TOPO_CPU_AMD
                    : strcmp(vendor, "arm") == 0 ? DL_TOPO_CPU_ARM : DL_TOPO_CPU_INTEL;
    const jnode *ports = get(j, root, "ports"), *sws = get(j, root, "switches"),
                *gpus = get(j, root, "gpus");
    if (!gpus || gpus->type != J_ARR)
        return snprintf(err, cap, "no \"gpus\" list: not the JSON of 'dltrain topo --json'"), -1;
    t->n_ports = count(j, ports) < DL_TOPO_MAX_PORTS ? count(j, ports) : DL_TOPO_MAX_PORTS;
    t->n_switches = count(j, sws) < DL_TOPO_MAX_SWITCHES ? count(j, sws) : DL_TOPO_MAX_SWITCHES;
    for (int k = 0; k < t->n_ports; k++) {
        const jnode *pt = at(j, ports, k);
        int sw = inum(get(j, pt, "switch"), -1);
        t->ports[k].sw = sw >= 0 && sw < t->n_switches ? sw : -1;
        int parent = inum(get(j, pt, "parent"), -1);
        t->ports[k].parent = parent >= 0 && parent < t->n_ports ? parent : -1;
        snprintf(t->ports[k].bdf, sizeof t->ports[k].bdf, "%s", str(get(j, pt, "bdf")));
        read_link(j, get(j, pt, "link"), &t->ports[k].link);
    }
    for (int k = 0; k < t->n_switches; k++) {
        int up = inum(get(j, at(j, sws, k), "upstream_port"), -1);
        t->switches[k].upstream = up >= 0 && up < t->n_ports ? up : 0;
    }
    for (int k = 0; k < count(j, gpus) && t->n_gpus < DL_TOPO_MAX_GPUS; k++) {
        const jnode *g = at(j, gpus, k);
        if (!num(get(j, g, "compute"), 0))
            continue;
        t->n_nvidia += strcmp(str(get(j, get(j, g, "vendor"), "value")), "0x10de") == 0;
        read_gpu(j, g, t, &t->gpus[t->n_gpus++]);
    }
    t->n_compute = t->n_gpus; /* NVIDIA GPUs come first, as dltrain topo lists them */
    read_pairs(j, get(j, root, "pairs"), t);
    return 0;
}

static char *slurp(const char *path, char *err, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return snprintf(err, cap, "cannot read it"), NULL;
    size_t len = 0, room = 1 << 16;
    char *buf = malloc(room);
    for (size_t got; buf && (got = fread(buf + len, 1, room - len - 1, f)) > 0;) {
        len += got;
        if (len + 1 == room && room < (64u << 20))
            buf = realloc(buf, room *= 2);
    }
    fclose(f);
    if (buf)
        buf[len] = 0;
    return buf;
}

int dl_machine_from_topo_json(const char *path, dl_machine *m, char *err, size_t cap)
{
    char *text = slurp(path, err, cap);
    if (!text)
        return err[0] ? -1 : (snprintf(err, cap, "out of memory"), -1);
    jparser j = {.p = text, .start = text, .n = calloc(MAX_NODES, sizeof(jnode))};
    int rc = -1, root = j.n ? parse_value(&j, 0) : -1;
    if (root >= 0)
        skip_ws(&j);
    if (root < 0 || *j.p) {
        snprintf(err, cap, "not JSON, or cut short: the text stops making sense at byte %ld of "
                 "%zu (a truncated 'dltrain topo --json' file?)", (long)(j.p - text), strlen(text));
    } else if (strcmp(str(get(&j, &j.n[root], "schema")), SCHEMA) != 0) {
        const char *s = str(get(&j, &j.n[root], "schema"));
        snprintf(err, cap, "written by another dltrain version or another program (schema "
                 "'%.60s'; this dltrain reads '%s')", s[0] ? s : "none", SCHEMA);
    } else {
        dl_topo t;
        memset(&t, 0, sizeof t);
        snprintf(t.root, sizeof t.root, "%.300s", path);
        t.gpus = calloc(DL_TOPO_MAX_GPUS, sizeof *t.gpus);
        t.ports = calloc(DL_TOPO_MAX_PORTS, sizeof *t.ports);
        t.switches = calloc(DL_TOPO_MAX_SWITCHES, sizeof *t.switches);
        t.pairs = calloc((size_t)DL_TOPO_MAX_GPUS * DL_TOPO_MAX_GPUS, sizeof *t.pairs);
        if (!t.gpus || !t.ports || !t.switches || !t.pairs)
            snprintf(err, cap, "out of memory");
        else if (fill_topo(&j, &j.n[root], &t, err, cap) == 0)
            rc = dl_machine_from_topo(&t, m, err, cap);
        dl_topo_free(&t);
    }
    free(j.n);
    free(text);
    return rc;
}
