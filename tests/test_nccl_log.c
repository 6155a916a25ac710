/* test_nccl_log.c: reading NCCL's choice of transport from its log lines
 * (formats copied from NCCL 2.7 to 2.2x logs), and taking over the log only
 * when the user has not configured it. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nccl_log.h"

static int failures;
#include "expect.h"

static const struct {
    const char *line;
    int ok, src, dst;
    const char *transport;
} cases[] = {
    {"gpu1:919:1150 [0] NCCL INFO Channel 01/0 : 8[0] -> 15[7] via P2P/IPC/read\n", 1, 8, 15,
     "P2P/IPC/read"},
    {"hw14:798:813 [3] NCCL INFO Channel 02/0 : 3[3] -> 4[4] via P2P/direct pointer\n", 1, 3, 4,
     "P2P/direct pointer"},
    {"m1:16194:18586 [6] NCCL INFO Channel 03 : 7[b2000] -> 14[b1000] [receive] via "
     "NET/IB/0/GDRDMA\n", 1, 7, 14, "NET/IB/0/GDRDMA"},
    {"c:926:1151 [7] NCCL INFO Channel 03/0 : 15[7] -> 6[6] [send] via NET/Socket/3\r\n", 1, 15, 6,
     "NET/Socket/3"},
    {"2025-11-12 20:42:20,261 - INFO - g340:4450:4887 [5] NCCL INFO Channel 31/1 : 5[5] -> 0[0] "
     "via P2P/IPC", 1, 5, 0, "P2P/IPC"},
    {"h:7:7 [1] NCCL INFO Channel 01/0 : 1[1] -> 0[0] via SHM/direct/direct\n", 1, 1, 0,
     "SHM/direct/direct"},
    {"h:7:7 [0] NCCL INFO Channel 00/02 :    0   1\n", 0, 0, 0, ""},
    {"h:7:7 [0] NCCL INFO Connected all rings\n", 0, 0, 0, ""},
    {"h:7:7 [0] NCCL INFO Channel 00/0 : x[0] -> 1[1] via P2P/IPC\n", 0, 0, 0, ""},
    {"h:7:7 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via \n", 0, 0, 0, ""},
    {"", 0, 0, 0, ""},
};

static void test_lines(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dl_nccl_route r;
        memset(&r, 0, sizeof r);
        int ok = dl_nccl_parse_route(cases[i].line, &r);
        EXPECT(ok == cases[i].ok, "line %zu: parsed %d, expected %d", i, ok, cases[i].ok);
        if (ok && cases[i].ok)
            EXPECT(r.src == cases[i].src && r.dst == cases[i].dst &&
                      strcmp(r.transport, cases[i].transport) == 0,
                  "line %zu: %d->%d '%s', expected %d->%d '%s'", i, r.src, r.dst, r.transport,
                  cases[i].src, cases[i].dst, cases[i].transport);
    }
}

static void test_file(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/nccl-log-test.log", dir);
    FILE *f = fopen(path, "w");
    EXPECT(f != NULL, "cannot write %s", path);
    if (!f)
        return;
    /* 2 channels each way on a 2-GPU ring: one line per pair and transport remains */
    fputs("h:1:1 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/IPC\n"
          "h:1:1 [0] NCCL INFO Channel 01/0 : 0[0] -> 1[1] via P2P/IPC\n"
          "h:1:1 [0] NCCL INFO Channel 00/0 : 1[1] -> 0[0] via P2P/IPC\n"
          "h:1:1 [0] NCCL INFO Channel 01/0 : 1[1] -> 0[0] via P2P/IPC\n"
          "h:1:1 [0] NCCL INFO Connected all rings\n"
          "h:1:1 [0] NCCL INFO Channel 02/0 : 0[0] -> 1[1] via SHM/direct/direct\n", f);
    fclose(f);
    dl_nccl_route routes[DL_NCCL_MAX_ROUTES];
    int n = dl_nccl_read_routes(path, routes, DL_NCCL_MAX_ROUTES);
    char text[512];
    dl_nccl_routes_text(routes, n, text, sizeof text);
    EXPECT(strcmp(text, "0->1 P2P/IPC; 1->0 P2P/IPC; 0->1 SHM/direct/direct") == 0, "routes: %s",
          text);
    char small[12];
    dl_nccl_routes_text(routes, n, small, sizeof small);
    EXPECT(strlen(small) < sizeof small, "text fits its buffer");
    unlink(path);
    EXPECT(dl_nccl_read_routes(path, routes, DL_NCCL_MAX_ROUTES) == 0, "missing file: no routes");
}

/* The log followed while NCCL writes it: a line in two writes is read once,
 * complete; routes that come late (at the first collective since NCCL 2.22)
 * are kept; every WARN line is copied on, nothing else. */
static void test_tail(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/nccl-tail-test.log", dir);
    FILE *w = fopen(path, "w");
    FILE *warn = tmpfile();
    EXPECT(w && warn, "cannot write %s or a temporary file", path);
    if (!w || !warn)
        return;
    dl_nccl_tail t;
    EXPECT(dl_nccl_tail_open(&t, path) == 0, "open %s", path);
    unlink(path); /* as the backend does: the open handles keep it */
    fputs("h:1:1 [0] NCCL INFO NCCL version 2.28.3+cuda13.0\n"
          "h:1:1 [0] NCCL WARN NET/Socket : no usable interface found\n"
          "h:1:1 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2", w);
    fflush(w);
    EXPECT(dl_nccl_tail_pump(&t, warn) == 2, "two complete lines, the third is unfinished");
    EXPECT(t.n_routes == 0 && t.warnings == 1, "no route yet (%d), one warning (%d)", t.n_routes,
          t.warnings);
    EXPECT(dl_nccl_tail_pump(&t, warn) == 0, "nothing new");
    fputs("P/IPC\nh:1:1 [0] NCCL INFO Channel 00/0 : 1[1] -> 0[0] via P2P/IPC\n"
          "h:1:1 [0] NCCL WARN Cuda failure 'out of memory'\n", w);
    fflush(w);
    EXPECT(dl_nccl_tail_pump(&t, warn) == 3, "the finished line and two more");
    char text[256];
    dl_nccl_routes_text(t.routes, t.n_routes, text, sizeof text);
    EXPECT(strcmp(text, "0->1 P2P/IPC; 1->0 P2P/IPC") == 0, "late routes: %s", text);
    EXPECT(t.warnings == 2, "two warnings copied (%d)", t.warnings);
    /* an overlong line is cut, and the next one is still read whole */
    for (int i = 0; i < 300; i++)
        fputs("xxxxxxxxxx", w);
    fputs("\nh:1:1 [0] NCCL WARN last\n", w);
    fflush(w);
    EXPECT(dl_nccl_tail_pump(&t, warn) == 2 && t.warnings == 3, "overlong line, then a warning");
    rewind(warn);
    char got[1024] = "";
    size_t len = fread(got, 1, sizeof got - 1, warn);
    got[len] = 0;
    EXPECT(strcmp(got, "h:1:1 [0] NCCL WARN NET/Socket : no usable interface found\n"
                      "h:1:1 [0] NCCL WARN Cuda failure 'out of memory'\n"
                      "h:1:1 [0] NCCL WARN last\n") == 0,
          "warnings copied as written: '%s'", got);
    dl_nccl_tail_close(&t);
    fclose(w);
    fclose(warn);
}

static void test_capture(void)
{
    char path[512];
    setenv("NCCL_DEBUG", "WARN", 1);
    EXPECT(dl_nccl_log_capture(path, sizeof path) == 0 && !dl_nccl_log_owned(),
          "the user's NCCL_DEBUG stands");
    EXPECT(strcmp(getenv("NCCL_DEBUG"), "WARN") == 0, "NCCL_DEBUG untouched");
    unsetenv("NCCL_DEBUG");
    EXPECT(dl_nccl_log_capture(path, sizeof path) == 1 && dl_nccl_log_owned(), "taken over");
    EXPECT(strcmp(getenv("NCCL_DEBUG"), "INFO") == 0 &&
              strcmp(getenv("NCCL_DEBUG_SUBSYS"), "INIT") == 0 &&
              strcmp(getenv("NCCL_DEBUG_FILE"), path) == 0,
          "INFO for INIT into %s", path);
    EXPECT(dl_nccl_record_version()[0] == 0, "nothing recorded before NCCL ran");
    dl_nccl_record_set("2.21.5", "0->1 P2P/IPC");
    EXPECT(strcmp(dl_nccl_record_version(), "2.21.5") == 0 &&
              strcmp(dl_nccl_record_routes(), "0->1 P2P/IPC") == 0, "record kept");
}

static void test_version(void)
{
    char v[32];
    dl_nccl_version_text(22805, v, sizeof v);
    EXPECT(strcmp(v, "2.28.5") == 0, "22805 -> %s", v);
    dl_nccl_version_text(2708, v, sizeof v);
    EXPECT(strcmp(v, "2.7.8") == 0, "2708 -> %s", v);
}

/* One rank over the local backend: its own routes are the record. */
static void test_share(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/nccl_share.log", dir);
    FILE *f = fopen(path, "w");
    EXPECT(f != NULL, "cannot write %s", path);
    if (!f)
        return;
    fputs("h:1:2 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/IPC\n", f);
    fclose(f);
    dl_nccl_tail t;
    EXPECT(dl_nccl_tail_open(&t, path) == 0, "tail_open");
    dl_nccl_share_routes(dl_comm_local(), &t, "2.28.5");
    dl_nccl_tail_close(&t);
    remove(path);
    EXPECT(strcmp(dl_nccl_record_version(), "2.28.5") == 0, "version %s",
          dl_nccl_record_version());
    EXPECT(strstr(dl_nccl_record_routes(), "P2P") != NULL, "routes '%s'", dl_nccl_record_routes());
}

int main(int argc, char **argv)
{
    test_lines();
    test_file(argc > 1 ? argv[1] : ".");
    test_tail(argc > 1 ? argv[1] : ".");
    test_capture();
    test_version();
    test_share(argc > 1 ? argv[1] : ".");
    if (failures)
        return 1;
    printf("nccl_log: routes read from NCCL log lines, also as they come; warnings copied on; "
           "the log is taken over only when unset\n");
    return 0;
}
