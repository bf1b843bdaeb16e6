@ A tiny Cortex-M program for the image-format tests: a vector table, code,
@ read-only data, initialised data (stored in flash, run from RAM) and .bss.
    .syntax unified
    .cpu cortex-m3
    .thumb

    .section .isr_vector, "a"
    .word   0x20005000
    .word   reset + 1
    .word   fault + 1
    .word   fault + 1

    .text
    .thumb_func
reset:
    ldr     r0, =counter
    ldr     r1, [r0]
loop:
    adds    r1, r1, #1
    str     r1, [r0]
    b       loop
    .thumb_func
fault:
    b       fault

    .section .rodata
banner:
    .asciz  "flashrunner test image"

    .data
counter:
    .word   0xCAFEF00D
table:
    .byte   1, 2, 3, 4, 5, 6, 7

    .bss
scratch:
    .space  64

    .section .config, "a"
config:
    .ascii  "CFG1"
    .word   0x12345678
