/* The part of <string.h> the firmware self-test and the library use
 * (start.c implements it). */
#ifndef ENVOL_FW_STRING_H
#define ENVOL_FW_STRING_H
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
int strcmp(const char *a, const char *b);
size_t strlen(const char *s);
#endif
