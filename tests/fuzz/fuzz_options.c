/* fuzz_options.c: the option parser (launch/options.c) and the number and
 * shape parsers (runtime/parse.c).
 *
 * Input: NUL-separated words.  They are parsed as a command line against a
 * table with one option of each type; separately the first word goes
 * through dl_parse_shape, dl_parse_ll, dl_parse_int_list and dl_parse_double.  Whatever is
 * accepted must be in range and must read back the same (a number printed
 * from the parsed value parses to the same value). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "parse.h"

typedef struct {
    int count;
    long big;
    double rate;
    char name[16];
    int flag;
} fuzz_opts;

#define O(field) offsetof(fuzz_opts, field)
static const dl_option table[] = {
    {"count", DL_OPT_INT, O(count), 0, "N", 1, 100000, "an int"},
    {"big", DL_OPT_LONG, O(big), 0, "N", 0, 1e15, "a long"},
    {"rate", DL_OPT_DOUBLE, O(rate), 0, "X", 1e-12, 1e6, "a double"},
    {"name", DL_OPT_STRING, O(name), sizeof(((fuzz_opts *)0)->name), "S", 0, 0, "a string"},
    {"flag", DL_OPT_FLAG, O(flag), 0, NULL, 0, 0, "a flag"},
    DL_OPT_END,
};

static void check_word(const char *w)
{
    int c = 0, h = 0, wd = 0, k = -1;
    if (dl_parse_shape(w, 64, 4096, 255, &c, &h, &wd, &k) &&
        (c < 1 || c > 64 || h < 1 || h > 4096 || wd < 1 || wd > 4096 || (k != -1 && (k < 2 || k > 255))))
        abort();
    long long v;
    if (dl_parse_ll(w, -1000, 1000000, &v)) {
        char back[32];
        snprintf(back, sizeof back, "%lld", v);
        if (v < -1000 || v > 1000000 || (strcmp(back, w) != 0 && w[0] != '0' && w[0] != '-'))
            abort();
    }
    int list[8];
    int n = dl_parse_int_list(w, 0, 1000, list, 8);
    if (n > 8 || (n == 0 && w[0]))
        abort();
    for (int i = 0; i < n; i++)
        if (list[i] < 0 || list[i] > 1000)
            abort();
    double d;
    if (dl_parse_double(w, &d) && (d != d || strpbrk(w, "xXnNiIpP ")))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *argv[34] = {"fuzz"};
    int argc = 1;
    for (char *p = buf; p < buf + size && argc < 33; p += strlen(p) + 1)
        argv[argc++] = p;
    argv[argc] = NULL;
    check_word(argc > 1 ? argv[1] : "");
    fuzz_opts o = {0};
    int rc = dl_options_parse(table, &o, argc, argv, "fuzz", NULL);
    if (rc == 0 && ((o.count && (o.count < 1 || o.count > 100000)) || o.big < 0 || o.big > 1e15 ||
                    (o.rate && (o.rate < 1e-12 || o.rate > 1e6)) || strlen(o.name) >= sizeof o.name))
        abort();
    free(buf);
    return 0;
}
