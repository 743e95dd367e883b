#!/bin/sh
# The built-in demo: installs what is needed, builds, makes a sample disk
# image (GPT + ext4 filled from /usr/share/doc, sparse), shows bmaptool
# create, info, copy and verify on it, then runs the station: starts
# systemd-udevd if none runs, starts bmap-station with config/demo.conf,
# inserts four cards (loop devices) at staggered moments, shows the live
# status while they flash, and prints the log and the report. Without root
# or loop devices it copies to a file instead. Everything it creates is
# removed at the end, and what it started is stopped by its pid.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
"$top/deploy/install-deps.sh"
BUILD_DIR=$build "$top/deploy/build.sh" >/dev/null
bmaptool=$build/bmaptool

work=$(mktemp -d "${TMPDIR:-/var/tmp}/bmap-demo.XXXXXX")
loop="" loops="" cards="" rule="" station_pid="" udevd_pid=""
cleanup() {
	if [ -n "$station_pid" ]; then
		kill -TERM "$station_pid" 2>/dev/null
		wait "$station_pid" 2>/dev/null
	fi
	for l in $loops $loop; do losetup -d "$l" 2>/dev/null; done
	if [ -n "$rule" ]; then
		rm -f "$rule"
		udevadm control --reload 2>/dev/null
	fi
	if [ -n "$udevd_pid" ]; then
		kill "$udevd_pid" 2>/dev/null
		wait "$udevd_pid" 2>/dev/null
	fi
	rm -rf "$work" ${cards:+"$cards"}
	return 0
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

if [ "$(id -u)" != 0 ] || ! losetup -f >/dev/null 2>&1 || ! [ -x /lib/systemd/systemd-udevd ]; then
	dest=$work/card.img
	step "not root (or no loop devices): the station needs cards, so a file stands in for one"
	"$bmaptool" copy "$img.zst" "$dest"
	step "bmaptool verify: read the card back, bypassing the page cache"
	"$bmaptool" verify "$img.zst" "$dest"
	step "done; cleaning up"
	exit 0
fi

step "bmaptool copy and verify onto one card, by hand"
cards=$(mktemp -d /dev/shm/bmap-demo-cards.XXXXXX)
truncate -s 300M "$cards/manual.img"
loop=$(losetup -f --show "$cards/manual.img")
"$bmaptool" copy "$img.zst" "$loop"
"$bmaptool" verify "$img.zst" "$loop"
losetup -d "$loop"
loop=""

# ---- The station: udevd, a rule that makes our loop devices cards, the
# daemon, and four cards inserted at staggered moments.
station=$build/bmap-station
cp "$top/config/demo.conf" "$work/station.conf"
if ! udevadm control --ping >/dev/null 2>&1; then
	/lib/systemd/systemd-udevd >"$work/udevd.log" 2>&1 &
	udevd_pid=$!
	for i in $(seq 50); do udevadm control --ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
rule=/run/udev/rules.d/61-bmap-station-demo-$$.rules
mkdir -p /run/udev/rules.d
cat >"$rule" <<RULE
SUBSYSTEM=="block", KERNEL=="loop*", ENV{DEVTYPE}=="disk", ATTR{loop/backing_file}=="$cards/card-*", PROGRAM="/usr/bin/basename \$attr{loop/backing_file} .img", ENV{ID_SERIAL}="%c", ENV{ID_SERIAL_SHORT}="%c", ENV{ID_BUS}="loop", ENV{ID_VENDOR}="Demo", ENV{ID_MODEL}="LoopCard", TAG+="bmap-station"
RULE
udevadm control --reload

step "bmap-station check: the configuration and the disks it sees"
"$station" check --config "$work/station.conf" | head -n 12

step "bmap-station run, and four cards inserted one after another"
"$station" run --config "$work/station.conf" >"$work/station.log" 2>&1 &
station_pid=$!
sleep 0.5
for i in 1 2 3 4; do
	truncate -s 300M "$cards/card-$i.img"
	loops="$loops $(losetup -f --show "$cards/card-$i.img")"
	sleep 0.4
done

db=$work/journal.db
clear_screen=""
[ -t 1 ] && clear_screen=$(printf '\033[H\033[J')
for i in $(seq 240); do
	ended=$(sqlite3 -cmd '.timeout 2000' "$db" "select count(*) from jobs where profile = 'demo' and outcome <> 'running'" 2>/dev/null || echo 0)
	printf '%s' "$clear_screen"
	echo "bmap-station status ($ended of 4 cards done):"
	"$station" status --db "$db" 2>/dev/null
	[ "$ended" -ge 4 ] && break
	sleep 0.5
done

step "the station's log"
cat "$work/station.log"

step "bmap-station report"
"$station" report --db "$db"
echo
"$station" report --db "$db" --summary

step "done; cleaning up"
