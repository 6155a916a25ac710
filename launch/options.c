/* options.c: table-driven option parsing with suggestions for typos. */
#define _GNU_SOURCE
#include "options.h"

#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/parse.h"

#define MAX_OPTIONS 64

static size_t table_len(const dl_option *t)
{
    size_t n = 0;
    while (t[n].name)
        n++;
    return n;
}

static int edit_distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    int d[41][41];
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

static void unknown_option(const dl_option *t, const char *cmd, const char *arg)
{
    const char *name = arg;
    while (*name == '-')
        name++;
    char bare[64];
    snprintf(bare, sizeof bare, "%.*s", (int)strcspn(name, "="), name);
    const char *best = NULL;
    int best_d = 3;
    for (size_t i = 0; t[i].name; i++) {
        int d = edit_distance(bare, t[i].name);
        if (d < best_d || (strncmp(t[i].name, bare, strlen(bare)) == 0 && bare[0] && !best))
            best = t[i].name, best_d = d;
    }
    if (best)
        fprintf(stderr, "dltrain %s: unknown option '%s' (did you mean --%s?)\n", cmd, arg, best);
    else
        fprintf(stderr, "dltrain %s: unknown option '%s' (see 'dltrain %s --help')\n", cmd, arg,
                cmd);
}

static int is_abbreviation(const char *token, const char *name)
{
    if (strncmp(token, "--", 2) != 0)
        return 0;
    token += 2;
    size_t len = strcspn(token, "=");
    return len != strlen(name) || strncmp(token, name, len) != 0;
}

static int set_value(const dl_option *o, void *dst, const char *text, const char *cmd)
{
    char *base = (char *)dst + o->offset;
    if (o->type == DL_OPT_STRING) {
        if (strlen(text) >= o->size) {
            fprintf(stderr, "dltrain %s: --%s value is too long\n", cmd, o->name);
            return 2;
        }
        strcpy(base, text);
        return 0;
    }
    /* Integers are decimal and whole ("0x10", "1e3", "16.0" are refused);
     * numbers are decimal too (no hex floats, inf or nan). */
    int integral = o->type != DL_OPT_DOUBLE;
    long long iv = 0;
    double v = 0;
    int ok = integral ? dl_parse_ll(text, LLONG_MIN, LLONG_MAX, &iv)
                      : dl_parse_double(text, &v) && isfinite(v);
    if (!ok) {
        fprintf(stderr, "dltrain %s: --%s needs %s, got '%s'\n", cmd, o->name,
                integral ? "a decimal integer" : "a number", text);
        return 2;
    }
    if (integral)
        v = (double)iv;
    if (v < o->min || v > o->max) {
        fprintf(stderr, "dltrain %s: --%s must be between %g and %g, got %s\n", cmd, o->name,
                o->min, o->max, text);
        return 2;
    }
    if (o->type == DL_OPT_INT)
        *(int *)base = (int)iv;
    else if (o->type == DL_OPT_LONG)
        *(long *)base = (long)iv;
    else
        *(double *)base = v;
    return 0;
}

int dl_options_parse(const dl_option *table, void *dst, int argc, char **argv, const char *cmd,
                     const char *usage)
{
    size_t n = table_len(table);
    struct option longopts[MAX_OPTIONS + 2];
    if (n > MAX_OPTIONS)
        n = MAX_OPTIONS;
    for (size_t i = 0; i < n; i++)
        longopts[i] = (struct option){table[i].name,
                                      table[i].type == DL_OPT_FLAG ? no_argument
                                                                   : required_argument,
                                      NULL, (int)(1000 + i)};
    longopts[n] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n + 1] = (struct option){NULL, 0, NULL, 0};
    opterr = 0;
    /* 0, not 1: glibc then forgets where it stopped in a previous argv (a
     * pointer into it), which matters when parsing more than once. */
    optind = 0;
    for (;;) {
        int prev = optind ? optind : 1;
        int c = getopt_long(argc, argv, "h", longopts, NULL);
        if (c == -1)
            break;
        if (c == 'h') {
            dl_options_help(stdout, table, cmd, usage);
            return 1;
        }
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1 >= prev ? optind - 1 : prev];
            if (c == ':' || (optopt >= 1000 && optopt < 1000 + (int)n))
                fprintf(stderr, "dltrain %s: option '%s' needs a value\n", cmd, bad);
            else
                unknown_option(table, cmd, bad);
            return 2;
        }
        const dl_option *o = &table[c - 1000];
        if (is_abbreviation(argv[prev], o->name)) {
            /* getopt_long accepts unique prefixes; a typo such as --epoch would silently
             * become --epochs, so only exact names are taken. */
            unknown_option(table, cmd, argv[prev]);
            return 2;
        }
        if (o->type == DL_OPT_FLAG)
            *(int *)((char *)dst + o->offset) = 1;
        else if (set_value(o, dst, optarg, cmd))
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "dltrain %s: unexpected argument '%s' (see 'dltrain %s --help')\n", cmd,
                argv[optind], cmd);
        return 2;
    }
    return 0;
}

void dl_options_help(FILE *f, const dl_option *table, const char *cmd, const char *usage)
{
    fprintf(f, "usage: dltrain %s [options]\n%s\n\noptions:\n", cmd, usage ? usage : "");
    for (size_t i = 0; table[i].name; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", table[i].name, table[i].arg ? " " : "",
                 table[i].arg ? table[i].arg : "");
        fprintf(f, "  %-26s %s\n", left, table[i].help);
    }
    fprintf(f, "  %-26s %s\n", "--help", "show this help");
}
