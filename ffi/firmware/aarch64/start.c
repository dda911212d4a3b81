/* Start-up and a minimal C library for the envol firmware self-test on
 * AArch64 (qemu virt, no bare-metal libc in Debian): .bss zeroed, the stack
 * painted so main can report its high-water mark, exit(main()); printf and
 * exit over Arm semihosting (HLT #0xF000); the mem* and str* functions the
 * self-test and the Rust library link against. Built with -ffreestanding
 * -fno-builtin -fno-tree-loop-distribute-patterns so the loops below are
 * not turned back into calls to themselves. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern uint32_t _stack_top, _stack_size, _bss_start, _bss_end;
extern int main(void);
__attribute__((noreturn)) void reset_c(void);
__attribute__((noreturn)) void exception_c(uint64_t index);
uint32_t envol_fw_stack_used(void);

#define STACK_PAINT 0xA5A5A5A5u

/* ---- semihosting ---- */

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static uint64_t semihost(uint64_t op, const void *arg) {
    register uint64_t x0 __asm__("x0") = op;
    register const void *x1 __asm__("x1") = arg;
    __asm__ volatile("hlt #0xf000" : "+r"(x0) : "r"(x1) : "memory");
    return x0;
}

void exit(int status) {
    /* AArch64 form: x1 points to {reason, subcode}; qemu exits with subcode. */
    uint64_t block[2] = {ADP_STOPPED_APPLICATION_EXIT, (uint64_t)(int64_t)status};
    for (;;) semihost(SYS_EXIT, block);
}

/* ---- printf: %d %i %u %x %s %c %% with l/z; output line-buffered ---- */

static char line[256];
static size_t line_len;

static void flush(void) {
    line[line_len] = 0;
    if (line_len) semihost(SYS_WRITE0, line);
    line_len = 0;
}

static void put(char c) {
    line[line_len++] = c;
    if (c == '\n' || line_len == sizeof line - 1) flush();
}

static void put_num(uint64_t v, unsigned base, int neg) {
    char digits[24];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg) put('-');
    while (n) put(digits[--n]);
}

int printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        int longs = 0;
        if (*fmt != '%') {
            put(*fmt);
            continue;
        }
        fmt++;
        while (*fmt == 'l' || *fmt == 'z') longs++, fmt++;
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
            put_num(v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0);
            break;
        }
        case 'u':
        case 'x': {
            uint64_t v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            put_num(v, *fmt == 'x' ? 16 : 10, 0);
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            for (s = s ? s : "(null)"; *s; s++) put(*s);
            break;
        }
        case 'c':
            put((char)va_arg(ap, int));
            break;
        case '%':
            put('%');
            break;
        default: /* unsupported conversion: show it, stop */
            put('%');
            if (*fmt) put(*fmt);
            else fmt--;
            break;
        }
    }
    va_end(ap);
    return 0;
}

/* ---- string functions (the Rust library needs memcpy/memmove/memset/memcmp) ---- */

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x - *y;
    return 0;
}

int strcmp(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}

size_t strlen(const char *s) {
    const char *p = s;
    while (*p) p++;
    return (size_t)(p - s);
}

/* ---- start-up ---- */

/* Lowest stack address still holding the paint: the high-water mark. */
uint32_t envol_fw_stack_used(void) {
    const uint32_t *lo = (const uint32_t *)((uintptr_t)&_stack_top - (uintptr_t)&_stack_size);
    const uint32_t *p = lo;
    while (p < &_stack_top && *p == STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&_stack_top - (uintptr_t)p);
}

void reset_c(void) {
    uint32_t *p;
    for (p = &_bss_start; p < &_bss_end; p++) *p = 0;
    /* Paint the stack below the current frame (leave 256 bytes for it). */
    {
        uint32_t *lo = (uint32_t *)((uintptr_t)&_stack_top - (uintptr_t)&_stack_size);
        uint32_t *sp;
        __asm__ volatile("mov %0, sp" : "=r"(sp));
        for (p = lo; p < sp - 64; p++) *p = STACK_PAINT;
    }
    exit(main());
}

/* Every exception (start.S's vector table) ends the run with exit(99). */
void exception_c(uint64_t index) {
    uint64_t esr, elr, far;
    __asm__ volatile("mrs %0, esr_el1" : "=r"(esr));
    __asm__ volatile("mrs %0, elr_el1" : "=r"(elr));
    __asm__ volatile("mrs %0, far_el1" : "=r"(far));
    printf("\nexception %lu: ESR_EL1 0x%lx ELR_EL1 0x%lx FAR_EL1 0x%lx\n", (unsigned long)index,
           (unsigned long)esr, (unsigned long)elr, (unsigned long)far);
    exit(99);
}
