/* Minimal Cortex-M4 start-up for the envol firmware self-test: a vector
 * table at 0 (initial SP, reset handler), FPU enabled before any float code,
 * .data copied, .bss zeroed, the stack painted so main can report its
 * high-water mark, newlib semihosting set up, then exit(main()). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

extern uint32_t _stack_top, _stack_size, _data_load, _data_start, _data_end, _bss_start, _bss_end;
extern int main(void);
extern void initialise_monitor_handles(void);

#define STACK_PAINT 0xA5A5A5A5u

void reset_handler(void);
void default_handler(void);

__attribute__((section(".vectors"), used))
static const void *const vectors[16] = {
    &_stack_top, (const void *)reset_handler,
    (const void *)default_handler, (const void *)default_handler, /* NMI, HardFault */
    (const void *)default_handler, (const void *)default_handler, /* MemManage, BusFault */
    (const void *)default_handler, 0, 0, 0, 0,                     /* UsageFault, reserved */
    (const void *)default_handler, (const void *)default_handler, /* SVC, DebugMon */
    0, (const void *)default_handler, (const void *)default_handler, /* reserved, PendSV, SysTick */
};

void default_handler(void) {
    exit(99);
}

/* Lowest stack address still holding the paint: the high-water mark. */
uint32_t envol_fw_stack_used(void) {
    const uint32_t *lo = (const uint32_t *)((uintptr_t)&_stack_top - (uintptr_t)&_stack_size);
    const uint32_t *p = lo;
    while (p < &_stack_top && *p == STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&_stack_top - (uintptr_t)p);
}

__attribute__((naked, noreturn)) void reset_handler(void) {
    __asm__ volatile(
        /* CPACR: full access to CP10 and CP11 (the FPU). */
        "ldr r0, =0xE000ED88\n"
        "ldr r1, [r0]\n"
        "orr r1, r1, #(0xF << 20)\n"
        "str r1, [r0]\n"
        "dsb\n"
        "isb\n"
        "b reset_c\n");
}

__attribute__((noreturn, used)) void reset_c(void) {
    uint32_t *src = &_data_load, *dst = &_data_start;
    while (dst < &_data_end) *dst++ = *src++;
    for (dst = &_bss_start; dst < &_bss_end; dst++) *dst = 0;
    /* Paint the stack below the current frame (leave 256 bytes for it). */
    {
        uint32_t *lo = (uint32_t *)((uintptr_t)&_stack_top - (uintptr_t)&_stack_size);
        uint32_t *sp;
        __asm__ volatile("mov %0, sp" : "=r"(sp));
        for (uint32_t *p = lo; p < sp - 64; p++) *p = STACK_PAINT;
    }
    initialise_monitor_handles();
    exit(main());
}

/* newlib wants these with -nostartfiles. */
void _init(void) {}
void _fini(void) {}
