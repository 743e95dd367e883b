#!/bin/sh
# The built-in demo: installs what is needed, builds, makes a sample disk
# image (GPT + ext4 filled from /usr/share/doc, sparse), and runs the main
# job on it: bmaptool create, info, copy of the zstd-compressed image onto a
# card (a loop device when run as root, else a file), and read-back verify.
# Everything it creates is removed at the end.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
"$top/deploy/install-deps.sh"
BUILD_DIR=$build "$top/deploy/build.sh" >/dev/null
bmaptool=$build/bmaptool

work=$(mktemp -d "${TMPDIR:-/var/tmp}/bmap-demo.XXXXXX")
loop=""
cleanup() {
	[ -n "$loop" ] && losetup -d "$loop" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "making a 256 MiB sample image with a GPT and an ext4 partition"
img=$work/demo.img
truncate -s 256M "$img"
sgdisk -n 1:2048:0 -t 1:8300 -c 1:rootfs "$img" >/dev/null
mkdir -p "$work/root"
cp -r /usr/share/doc/. "$work/root/" 2>/dev/null || true
truncate -s $((256 * 1024 * 1024 - 2048 * 512 - 34 * 512)) "$work/part.img"
mkfs.ext4 -q -F -L demo -d "$work/root" "$work/part.img"
dd if="$work/part.img" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
rm -rf "$work/root" "$work/part.img"
echo "$(du -h --apparent-size "$img" | cut -f1) image, $(du -h "$img" | cut -f1) of it data"

step "bmaptool create"
"$bmaptool" create -o "$work/demo.img.bmap" "$img"
grep -E 'MappedBlocksCount|<Range' "$work/demo.img.bmap" | head -n 4

step "bmaptool info"
zstd -q -T0 "$img" -o "$img.zst"
"$bmaptool" info "$img.zst"

if [ "$(id -u)" = 0 ] && card_file=$work/card.img && truncate -s 300M "$card_file" &&
	loop=$(losetup -f --show "$card_file" 2>/dev/null); then
	dest=$loop
	step "bmaptool copy demo.img.zst onto $dest (a loop device standing in for a card)"
else
	loop=""
	dest=$work/card.img
	step "bmaptool copy demo.img.zst to $dest (not root: a file stands in for the card)"
fi
"$bmaptool" copy "$img.zst" "$dest"

step "bmaptool verify: read the card back, bypassing the page cache"
"$bmaptool" verify "$img.zst" "$dest"

step "done; cleaning up"
