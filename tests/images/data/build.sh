#!/bin/sh
# Rebuilds the checked-in test images with Debian's binutils-arm-none-eabi.
# Usage: sh build.sh [OUTDIR]   (default: this folder). The .dfu files are made by
# flashrunner's own writer from the .bin (see make_dfu.py): no peer tool writes DfuSe.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
mkdir -p "$out"
arm-none-eabi-as -o "$out/blink.o" "$here/blink.s"
for layout in flat sparse; do
    arm-none-eabi-ld -z max-page-size=0x100 -T "$here/$layout.ld" -o "$out/$layout.elf" "$out/blink.o"
    arm-none-eabi-objcopy -O binary --gap-fill 0xff "$out/$layout.elf" "$out/$layout.bin"
    arm-none-eabi-objcopy -O ihex "$out/$layout.elf" "$out/$layout.hex"
    arm-none-eabi-objcopy -O srec "$out/$layout.elf" "$out/$layout.srec"
done
rm -f "$out/blink.o"
python3 "$here/make_dfu.py" "$out"
