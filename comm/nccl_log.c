/* nccl_log.c: reading NCCL's choice of transport from its own log. */
#define _POSIX_C_SOURCE 200809L
#include "nccl_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "0[0] -> 1[1]" or "0[18000] -> 1[3b000]": the ranks before the brackets. */
static int parse_ranks(const char *p, int *src, int *dst)
{
    char *end;
    long a = strtol(p, &end, 10);
    if (end == p || *end != '[')
        return 0;
    const char *arrow = strstr(end, "->");
    if (!arrow)
        return 0;
    const char *q = arrow + 2;
    while (*q == ' ')
        q++;
    long b = strtol(q, &end, 10);
    if (end == q || *end != '[')
        return 0;
    *src = (int)a, *dst = (int)b;
    return 1;
}

int dl_nccl_parse_route(const char *line, dl_nccl_route *r)
{
    const char *ch = strstr(line, "NCCL INFO Channel ");
    const char *colon = ch ? strstr(ch, " : ") : NULL;
    const char *via = colon ? strstr(colon, " via ") : NULL;
    if (!via || !parse_ranks(colon + 3, &r->src, &r->dst))
        return 0;
    const char *t = via + 5;
    size_t len = strcspn(t, "\r\n"); /* "P2P/direct pointer" has a space in it */
    while (len > 0 && t[len - 1] == ' ')
        len--;
    if (len == 0)
        return 0;
    if (len >= sizeof r->transport)
        len = sizeof r->transport - 1;
    memcpy(r->transport, t, len);
    r->transport[len] = 0;
    return 1;
}

void dl_nccl_add_route(dl_nccl_route *routes, int *n, int max, const dl_nccl_route *r)
{
    for (int i = 0; i < *n; i++)
        if (routes[i].src == r->src && routes[i].dst == r->dst &&
            strcmp(routes[i].transport, r->transport) == 0)
            return;
    if (*n < max)
        routes[(*n)++] = *r;
}

int dl_nccl_read_routes(const char *path, dl_nccl_route *routes, int max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[1024];
    int n = 0;
    dl_nccl_route r;
    while (fgets(line, sizeof line, f))
        if (dl_nccl_parse_route(line, &r))
            dl_nccl_add_route(routes, &n, max, &r);
    fclose(f);
    return n;
}

void dl_nccl_routes_text(const dl_nccl_route *routes, int n, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < n && len + 1 < cap; i++) {
        int w = snprintf(buf + len, cap - len, "%s%d->%d %s", i ? "; " : "", routes[i].src,
                         routes[i].dst, routes[i].transport);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

int dl_nccl_tail_open(dl_nccl_tail *t, const char *path)
{
    memset(t, 0, sizeof *t);
    t->f = fopen(path, "r");
    return t->f ? 0 : -1;
}

static void tail_line(dl_nccl_tail *t, const char *line, FILE *warn_to)
{
    dl_nccl_route r;
    if (dl_nccl_parse_route(line, &r))
        dl_nccl_add_route(t->routes, &t->n_routes, DL_NCCL_MAX_ROUTES, &r);
    if (strstr(line, "NCCL WARN") && warn_to) {
        fputs(line, warn_to);
        if (line[0] && line[strlen(line) - 1] != '\n')
            fputc('\n', warn_to);
        fflush(warn_to);
        t->warnings++;
    }
}

int dl_nccl_tail_pump(dl_nccl_tail *t, FILE *warn_to)
{
    if (!t->f)
        return 0;
    int lines = 0;
    char chunk[sizeof t->partial];
    clearerr(t->f); /* the file may have grown since the last EOF */
    while (fgets(chunk, sizeof chunk, t->f)) {
        size_t len = strlen(chunk), room = sizeof t->partial - 1 - t->partial_len;
        size_t take = len < room ? len : room; /* an overlong line is cut, not lost */
        memcpy(t->partial + t->partial_len, chunk, take);
        t->partial_len += take;
        t->partial[t->partial_len] = 0;
        if (len && chunk[len - 1] != '\n' && !feof(t->f))
            continue; /* fgets stopped at the chunk size: the line goes on */
        if (len && chunk[len - 1] != '\n')
            break; /* NCCL is mid-line: keep the start for the next pump */
        tail_line(t, t->partial, warn_to);
        t->partial_len = 0;
        t->partial[0] = 0;
        lines++;
    }
    return lines;
}

void dl_nccl_tail_close(dl_nccl_tail *t)
{
    if (t->f)
        fclose(t->f);
    t->f = NULL;
}

static int log_owned;

int dl_nccl_log_owned(void) { return log_owned; }

int dl_nccl_log_capture(char *path, size_t cap)
{
    path[0] = 0;
    if (getenv("NCCL_DEBUG"))
        return 0;
    const char *tmp = getenv("TMPDIR");
    snprintf(path, cap, "%s/dltrain-nccl-%ld.log", tmp && tmp[0] ? tmp : "/tmp", (long)getpid());
    setenv("NCCL_DEBUG", "INFO", 1);
    setenv("NCCL_DEBUG_SUBSYS", "INIT", 1);
    setenv("NCCL_DEBUG_FILE", path, 1);
    log_owned = 1;
    return 1;
}

static char record_version[32], record_routes[2048];

void dl_nccl_record_set(const char *version, const char *routes)
{
    snprintf(record_version, sizeof record_version, "%s", version);
    snprintf(record_routes, sizeof record_routes, "%s", routes);
}

const char *dl_nccl_record_version(void) { return record_version; }
const char *dl_nccl_record_routes(void) { return record_routes; }

void dl_nccl_version_text(int code, char *buf, size_t cap)
{
    int major = code >= 10000 ? code / 10000 : code / 1000;
    int rest = code >= 10000 ? code % 10000 : code % 1000;
    snprintf(buf, cap, "%d.%d.%d", major, rest / 100, rest % 100);
}

enum { ROUTE_RANKS = 64 };

void dl_nccl_share_routes(dl_comm *host, dl_nccl_tail *t, const char *version)
{
    dl_nccl_route mine[DL_NCCL_MAX_ROUTES], all[DL_NCCL_MAX_ROUTES], got[DL_NCCL_MAX_ROUTES];
    memset(mine, 0, sizeof mine);
    dl_nccl_tail_pump(t, stderr);
    int n_mine = t->n_routes;
    memcpy(mine, t->routes, sizeof(dl_nccl_route) * (size_t)n_mine);
    int n_all = 0;
    for (int r = 0; r < host->world && r < ROUTE_RANKS; r++) {
        int n = r == host->rank ? n_mine : 0;
        memcpy(got, mine, sizeof got);
        if (host->broadcast(host, &n, sizeof n, r) != DL_OK ||
            host->broadcast(host, got, sizeof got, r) != DL_OK)
            break;
        for (int i = 0; i < n && i < DL_NCCL_MAX_ROUTES; i++)
            dl_nccl_add_route(all, &n_all, DL_NCCL_MAX_ROUTES, &got[i]);
    }
    char text[2048];
    dl_nccl_routes_text(all, n_all, text, sizeof text);
    dl_nccl_record_set(version, text);
}
