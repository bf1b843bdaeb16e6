@ RAM flash loader for the STM32 flash controllers, run by the ST-Link driver.
@
@ Thumb-1 only (ARMv6-M), so one image runs on every core from Cortex-M0 to M33.
@ Loaded at the start of SRAM; the host sets PC to an entry below, r0..r2 to its
@ arguments, clears C_HALT, and waits for the core to halt at a bkpt (ARMv7-M
@ C1.6: with C_DEBUGEN set, BKPT enters Debug state). Interrupts stay masked
@ (C_MASKINTS), no stack is used.
@
@ The families differ only in data, which the host puts in each block's header:
@ where the status register is, which bits mean busy and failed, and the
@ program unit (F0/F1/F3: a half-word, PM0075 §2.3.3, any other width is a
@ bus error; F2/F4/F7: a word at PSIZE x32, RM0090 §3.6.2; L4/G0/G4/WB/WL/C0
@ and L5: a double word, RM0351 §3.3.7; U5/H5: a quad word; H7: a 256-bit
@ flash word, RM0433 §4.3.9; L0/L1: a word, or a half page under FPRG).
@ The host sets the control register (PG, PSIZE, FPRG) before it starts us.

    .syntax unified
    .cpu cortex-m0
    .thumb
    .text
    .global _start

_start:
    b.n     program             @ offset 0: program one block
    b.n     crc32               @ offset 2: CRC-32 of a flash range

@ program: r0 = block header
@   [0] destination address   [4] byte count (whole units)
@   [8] status register       [12] program unit in bytes (2, or a multiple of 4)
@   [16] busy mask            [20] error mask          [24..] the data
@ Returns r0 = 0 when every unit was programmed and reads back as written,
@ the status register's error bits when one failed, 0x80000000 when a unit
@ reads back different; r1 = the address of the unit it stopped at.
program:
    movs    r7, r0              @ r7: header
    ldr     r1, [r7, #0]
    ldr     r2, [r7, #4]
    ldr     r4, [r7, #12]
    adds    r0, #24             @ r0: source
next_unit:
    cmp     r2, #0
    ble     done
    cmp     r4, #2
    bne     copy_words
    ldrh    r5, [r0]
    strh    r5, [r1]
    b       wait
copy_words:
    movs    r6, #0
copy_word:
    ldr     r5, [r0, r6]
    str     r5, [r1, r6]        @ the unit's last word starts the operation
    adds    r6, #4
    cmp     r6, r4
    blo     copy_word
wait:
    dsb                         @ the store has left the core (M7 write buffer)
poll:
    ldr     r3, [r7, #8]
    ldr     r5, [r3]
    ldr     r6, [r7, #16]
    tst     r5, r6
    bne     poll                @ busy: the operation runs
    ldr     r6, [r7, #20]
    ands    r5, r6
    bne     failed
    cmp     r4, #2
    bne     check_words
    ldrh    r5, [r0]
    ldrh    r6, [r1]
    cmp     r5, r6
    bne     mismatch
    b       advance
check_words:
    movs    r6, #0
check_word:
    ldr     r5, [r0, r6]
    ldr     r3, [r1, r6]
    cmp     r5, r3
    bne     mismatch
    adds    r6, #4
    cmp     r6, r4
    blo     check_word
advance:
    adds    r0, r0, r4
    adds    r1, r1, r4
    subs    r2, r2, r4
    b       next_unit
done:
    movs    r0, #0
    bkpt    #0
failed:
    movs    r0, r5
    bkpt    #0
mismatch:
    movs    r0, #1
    lsls    r0, r0, #31
    bkpt    #0

@ crc32: r0 = address, r1 = byte count (a multiple of 4), r2 = CRC so far
@ (0xFFFFFFFF to start). Returns r0 = the CRC as the STM32 CRC unit computes
@ it (CRC-32/MPEG-2 over little-endian words, MSB first: the bootloader's Get
@ Checksum, AN3155 §3.14), from a 256-entry table.
crc32:
    adr     r5, table
crc_word:
    cmp     r1, #0
    ble     crc_done
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
    b       crc_word
crc_done:
    movs    r0, r2
    bkpt    #0

    .align  2
table:
    .include "crc32_table.inc"
