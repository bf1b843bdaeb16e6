@ Read-only CRC-32 routine for every STM32, run by the ST-Link driver in SRAM.
@
@ It reads flash (or any memory) and writes its result into its own parameter
@ block in SRAM; it stores nothing anywhere else, so it cannot change flash or
@ a peripheral whatever the flash controller's state. The register write path
@ uses it for verify and skip-unchanged (docs/architecture.md, "On-target
@ CRC"); the RAM flash loader (stm32_flash.s) carries its own copy of the
@ loop. Both take the table from crc32_table.inc; build with
@ `arm-none-eabi-as -mcpu=cortex-m0 -mthumb -I <this directory>` and
@ `objcopy -O binary` (a test checks the checked-in .bin is what that gives).
@
@ Thumb-1 only (ARMv6-M), so one image runs on every core from Cortex-M0 to M33.
@ Loaded at the start of SRAM; the host writes the parameter block, sets PC to
@ the image's start, clears C_HALT and waits for the core to halt at the bkpt
@ (ARMv7-M C1.6: with C_DEBUGEN set, BKPT enters Debug state). No stack is
@ used and interrupts stay masked (C_MASKINTS).
@
@ The CRC is the STM32 CRC unit's (CRC-32/MPEG-2 over little-endian words, MSB
@ first: the bootloader's Get Checksum, AN3155 §3.14), from a 256-entry table.
@
@ Parameter block (its offset from the image's start is the half-word at
@ offset 2):
@   [0] address (word aligned)   [4] byte count (a multiple of 4)
@   [8] CRC so far (0xFFFFFFFF to start)   [12] the run's tag
@ Results, written when the run is done:
@   [16] the CRC   [20] the address it stopped at   [24] the tag, echoed last

    .syntax unified
    .cpu cortex-m0
    .thumb
    .text
    .global _start

_start:
    b.n     crc32
    .hword  params - _start     @ where the host finds the parameter block

crc32:
    adr     r7, params
    ldr     r0, [r7, #0]
    ldr     r1, [r7, #4]
    ldr     r2, [r7, #8]
    adr     r5, table
    cmp     r1, #0
    ble     finish
crc_word:
    ldr     r3, [r0]
    eors    r2, r3
    .rept   4
    lsrs    r3, r2, #24
    lsls    r3, r3, #2
    ldr     r3, [r5, r3]
    lsls    r2, r2, #8
    eors    r2, r3
    .endr
    adds    r0, #4
    subs    r1, #4
    bgt     crc_word
finish:
    str     r2, [r7, #16]
    str     r0, [r7, #20]
    ldr     r3, [r7, #12]
    str     r3, [r7, #24]       @ last: the host takes the results only with its tag
    bkpt    #0

    .align  2
params:
    .word   0, 0, 0, 0          @ address, byte count, CRC so far, tag
    .word   0, 0, 0             @ CRC, stop address, tag echo
table:
    .include "crc32_table.inc"
