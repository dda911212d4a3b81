/* The part of <stdio.h> the firmware self-test uses (start.c implements it). */
#ifndef ENVOL_FW_STDIO_H
#define ENVOL_FW_STDIO_H
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
