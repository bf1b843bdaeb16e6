#!/bin/sh
# Rebuilds the checked-in test images with Debian's binutils-arm-none-eabi.
# Usage: sh build.sh [OUTDIR]   (default: this folder). The .dfu files are made by
# flashrunner's own writer from the .bin and .hex (make_dfu.py): no peer tool writes DfuSe.
# Tools run on relative names so that no local path ends up in the files.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "${1:-$here}" && cd "${1:-$here}" && pwd)
cd "$here"
arm-none-eabi-as -o "$out/blink.o" blink.s
cd "$out"
for layout in flat sparse; do
    arm-none-eabi-ld -z max-page-size=0x100 -T "$here/$layout.ld" -o "$layout.elf" blink.o
    arm-none-eabi-objcopy -O binary --gap-fill 0xff "$layout.elf" "$layout.bin"
    arm-none-eabi-objcopy -O ihex "$layout.elf" "$layout.hex"
    arm-none-eabi-objcopy -O srec "$layout.elf" "$layout.srec"
done
rm -f blink.o
python3 "$here/make_dfu.py" "$out"
