/* The part of <stdlib.h> the firmware self-test uses (start.c implements it). */
#ifndef ENVOL_FW_STDLIB_H
#define ENVOL_FW_STDLIB_H
#include <stddef.h>
__attribute__((noreturn)) void exit(int status);
#endif
