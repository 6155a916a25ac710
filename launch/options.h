/* options.h: command-line options from one table that drives both parsing
 * (getopt_long) and --help, with range checks, so every subcommand rejects
 * bad values the same way: one line naming the option, exit status 2. */
#ifndef DL_OPTIONS_H
#define DL_OPTIONS_H

#include <stddef.h>
#include <stdio.h>

typedef enum { DL_OPT_INT, DL_OPT_LONG, DL_OPT_DOUBLE, DL_OPT_STRING, DL_OPT_FLAG } dl_opt_type;

typedef struct dl_option {
    const char *name;   /* long name, without the dashes */
    dl_opt_type type;
    size_t offset;      /* where the value lives in the options struct */
    size_t size;        /* DL_OPT_STRING: buffer size */
    const char *arg;    /* metavariable for --help ("N", "FILE"), NULL for flags */
    double min, max;    /* accepted range for numbers (inclusive) */
    const char *help;
} dl_option;

#define DL_OPT_END {NULL, DL_OPT_FLAG, 0, 0, NULL, 0, 0, NULL}

/* Parses argv[1..] into dst.  On error prints "dltrain CMD: message" to
 * stderr and returns 2; returns 1 if --help was printed, 0 on success. */
int dl_options_parse(const dl_option *table, void *dst, int argc, char **argv, const char *cmd,
                     const char *usage);
void dl_options_help(FILE *f, const dl_option *table, const char *cmd, const char *usage);

#endif
