/* AArch64 entry for the envol firmware self-test on qemu virt (-cpu max,
 * -kernel loads this ELF at 0x40080000 and enters at EL1 with the MMU off).
 * Installs an exception vector table that reports and exits, enables
 * FP/SIMD (CPACR_EL1.FPEN; the armv8 AES kernel uses the vector registers),
 * sets the stack pointer and continues in reset_c (start.c). */
        .section .text.boot, "ax"
        .global _start
        .type   _start, %function
_start:
        mrs     x0, CurrentEL
        cmp     x0, #(1 << 2)           /* EL1 */
        b.ne    wrong_el
        adr     x0, vectors
        msr     vbar_el1, x0
        mov     x0, #(3 << 20)          /* CPACR_EL1.FPEN = 0b11: no FP/SIMD traps */
        msr     cpacr_el1, x0
        isb
        ldr     x0, =_stack_top
        mov     sp, x0
        bl      reset_c
wrong_el:                               /* not at EL1: exit(97) via semihosting */
        adr     x1, wrong_el_block
        mov     w0, #0x18               /* SYS_EXIT */
        hlt     #0xf000
        b       .
        .size   _start, . - _start

        .balign 8
wrong_el_block:
        .quad   0x20026, 97             /* ADP_Stopped_ApplicationExit, status */

/* 16 entries of 0x80 bytes: every exception ends the test with a report. */
        .macro  vec n
        .balign 0x80
        mov     x0, #\n
        b       exception_c
        .endm
        .balign 0x800
vectors:
        vec 0
        vec 1
        vec 2
        vec 3
        vec 4
        vec 5
        vec 6
        vec 7
        vec 8
        vec 9
        vec 10
        vec 11
        vec 12
        vec 13
        vec 14
        vec 15
