/* parse.c: checked integer, number and shape parsing; non-blocking open. */
#define _POSIX_C_SOURCE 200809L
#include "parse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int all_digits(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

int dl_parse_ll(const char *text, long long lo, long long hi, long long *out)
{
    if (!text)
        return 0;
    const char *digits = text[0] == '-' ? text + 1 : text;
    /* strtoll alone would take " 12", "+12", "0x1f" (base 0) or "12abc". */
    if (!all_digits(digits, strlen(digits)))
        return 0;
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno == ERANGE || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

int dl_parse_int_n(const char *text, size_t len, int lo, int hi, int *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf)
        return 0;
    memcpy(buf, text, len);
    buf[len] = '\0';
    long long v;
    if (!dl_parse_ll(buf, lo, hi, &v))
        return 0;
    *out = (int)v;
    return 1;
}

int dl_parse_double(const char *text, double *out)
{
    if (!text || !text[0])
        return 0;
    /* strtod also reads "0x10", "inf", "nan" and leading spaces. */
    for (const char *p = text; *p; p++)
        if (!strchr("0123456789.eE+-", *p))
            return 0;
    if (!strchr("0123456789.+-", text[0]))
        return 0;
    errno = 0;
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end || errno == ERANGE)
        return 0;
    *out = v;
    return 1;
}

int dl_parse_int_list(const char *text, int lo, int hi, int *out, int max)
{
    int n = 0;
    for (const char *p = text; *p;) {
        size_t len = strcspn(p, ",");
        if (n == max || !dl_parse_int_n(p, len, lo, hi, &out[n]))
            return -1;
        n++;
        p += len;
        if (*p == ',' && !*++p)
            return -1; /* "1,2," */
    }
    return n;
}

/* The next 'x'-separated size of a shape: digits up to stop (or the end). */
static const char *shape_field(const char *s, const char *stops, int lo, int hi, int *out)
{
    size_t len = strcspn(s, stops);
    if (!dl_parse_int_n(s, len, lo, hi, out))
        return NULL;
    return s + len;
}

int dl_parse_shape(const char *text, int max_c, int max_dim, int max_classes, int *c, int *h,
                   int *w, int *classes)
{
    int cc, hh, ww;
    const char *p = shape_field(text, "x:", 1, max_c, &cc);
    if (!p || *p != 'x' || !(p = shape_field(p + 1, "x:", 1, max_dim, &hh)))
        return 0;
    if (*p != 'x' || !(p = shape_field(p + 1, "x:", 1, max_dim, &ww)))
        return 0;
    if (*p == ':') {
        int k;
        if (!classes || !(p = shape_field(p + 1, "", 2, max_classes, &k)) || *p)
            return 0;
        *classes = k;
    } else if (*p) {
        return 0;
    }
    *c = cc, *h = hh, *w = ww;
    return 1;
}

static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

int dl_path_not_regular(const char *path, const char **why)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || S_ISREG(sb.st_mode))
        return 0;
    *why = file_kind(sb.st_mode);
    return 1;
}

dl_status dl_open_regular(const char *path, const char *what, int *fd_out)
{
    const char *why;
    if (dl_path_not_regular(path, &why))
        return dl_fail(DL_ERR_ARG, "%s %s is %s, not a regular file", what, path, why);
    /* O_NONBLOCK: if a FIFO replaced the file after the stat, open still
     * returns at once, and fstat below refuses it. */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return dl_fail(errno == ENOENT ? DL_ERR_ARG : DL_ERR_IO, "cannot open %s %s: %s", what,
                       path, strerror(errno));
    struct stat sb;
    dl_status st = DL_OK;
    if (fstat(fd, &sb) != 0)
        st = dl_fail(DL_ERR_IO, "cannot read %s %s: %s", what, path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = dl_fail(DL_ERR_ARG, "%s %s is %s, not a regular file", what, path,
                     file_kind(sb.st_mode));
    int flags = fcntl(fd, F_GETFL);
    if (st == DL_OK && flags >= 0)
        fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    if (st != DL_OK) {
        close(fd);
        return st;
    }
    *fd_out = fd;
    return DL_OK;
}
