/* expect.h: the C tests' soft assertion.  EXPECT(cond, fmt, ...) prints
 * the file, the line and the message when cond is false, counts it in the
 * test's own `failures` and goes on, so one run reports every broken check
 * (the test returns non-zero at the end when failures > 0). */
#ifndef DL_TEST_EXPECT_H
#define DL_TEST_EXPECT_H

#include <stdio.h>

#define EXPECT(cond, ...)                                                \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "%s: line %d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                                \
            fputc('\n', stderr);                                         \
            failures++;                                                  \
        }                                                                \
    } while (0)

#endif
