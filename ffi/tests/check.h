/*
 * check.h - the check bookkeeping the C test programs share: CHECK and
 * CHECK_STATUS record a result and, on failure, print file, line and the
 * context last set with where(), then go on; run() prints one line per
 * group; check_summary() prints "N passed, M failed" and gives the exit
 * status. Include it once, after envol.h. Not thread-safe: checks are made
 * from the main thread (worker threads report back through their own
 * structs).
 */
#ifndef ENVOL_TEST_CHECK_H
#define ENVOL_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>

/* Failures printed in full; later ones are only counted. */
#define MAX_REPORTED 100

static int g_passed;
static int g_failed;
static char g_where[200] = "start-up";

/* Sets the context shown with any failure that follows. */
static inline void where(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_where, sizeof g_where, fmt, ap);
    va_end(ap);
}

static inline void check_(int ok, const char *expr, const char *file, int line)
{
    if (ok) {
        g_passed++;
        return;
    }
    g_failed++;
    if (g_failed <= MAX_REPORTED) {
        fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n", file, line, g_where, expr);
    }
}

static inline void check_status_(envol_status got, envol_status want, const char *expr,
                          const char *file, int line)
{
    if (got == want) {
        g_passed++;
        return;
    }
    g_failed++;
    if (g_failed <= MAX_REPORTED) {
        fprintf(stderr, "%s:%d: [%s] %s gave %s (%d), expected %s (%d)\n", file, line,
                g_where, expr, envol_status_name(got), (int)got, envol_status_name(want),
                (int)want);
    }
}

/* Records a check; on failure prints file, line and context, and goes on. */
#define CHECK(cond) check_((cond) ? 1 : 0, #cond, __FILE__, __LINE__)
/* Checks that a call returns the expected status. */
#define CHECK_STATUS(call, want) check_status_((call), (want), #call, __FILE__, __LINE__)
/* Checks that a call refuses a NULL pointer. */
#define CHECK_NULL(call) CHECK_STATUS(call, ENVOL_ERR_NULL_POINTER)

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Runs one group of checks and prints how many it made and failed. */
static inline void run(const char *name, void (*group)(void))
{
    int before = g_passed + g_failed;
    int failed_before = g_failed;
    group();
    printf("%-18s: %d checks, %d failed\n", name, g_passed + g_failed - before,
           g_failed - failed_before);
}

/* Prints the summary line; the program's exit status. */
static inline int check_summary(void)
{
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}

#endif
