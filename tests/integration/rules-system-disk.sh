#!/bin/bash
# The udev rules never tag the disk the system stands on. They used to tag
# every USB disk and SD card and give it to the station's group 0660: on a
# board booting from an SD card or a USB disk that handed the daemon, and
# every hook, write access to its own root disk.
#
# A loop device cannot be the machine's root disk, so each case makes a loop
# card look like a USB disk (ID_BUS, ID_PATH) and runs `udevadm test` on it
# in a private mount namespace: there the only rules are that identity rule
# and the rules under test (the packaged 90-bmap-station.rules, or those
# `bmap-station udev-rules` writes), /run/udev and /dev are the test's own,
# and the card is made a system disk for real:
#  - mounted on /boot (and /boot/efi);
#  - "/" of a chroot in which udevadm runs;
#  - an active swap area (swapon: the machine's, for a moment);
#  - named in fstab (bound over /etc/fstab) by UUID= for a /boot not mounted
#    (noauto), by PARTUUID= for a /boot/efi, by UUID= for a swap area;
# and controls that must be tagged: the same card plain, a card whose file
# system has the UUID fstab gives the mounted "/" (a card flashed with the
# system's own image), and the slot rules' card in its slot. The slot rules
# must not tag a USB disk in another port. Every refusal must come from the
# helper (BMAP_STATION_DISK=system, with its reason), not from a rule that
# failed. The host's /dev, /run/udev and mounts are not touched.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_root
need_loop
need_ours
for c in udevadm unshare chroot mkfs.ext4 mkswap swapon swapoff sgdisk blkid; do need_cmd "$c"; done
[[ -n $BMAP_STATION && -x $BMAP_STATION ]] || fail "bmap-station not built"
BMAP_STATION=$(readlink -f "$BMAP_STATION")
# The packaged rules as the build made them (the old ones were a plain file).
RULES=${BMAP_RULES:-$BUILD_DIR/rules/90-bmap-station.rules}
[[ -f $RULES ]] || RULES=$TESTS_DIR/../rules/90-bmap-station.rules
[[ -f $RULES ]] || fail "no rules to test"

mkdir -p "$CARD_DIR"
on_exit "rm -rf '$CARD_DIR'"
# The rules under test, running this build's helper.
sed "s|\"/[^\" ]*/bmap-station system-disk|\"$BMAP_STATION system-disk|" "$RULES" >"$TEST_TMP/90-bmap-station.rules"

# ---- the cards ---------------------------------------------------------------
card() { # card NAME SIZE: an empty backing file in $CARD_DIR
	truncate -s "$2" "$CARD_DIR/$1"
	echo "$CARD_DIR/$1"
}
fs=$(card fs.img 32M)
mkfs.ext4 -q -F "$fs" || fail "mkfs.ext4"
fs_uuid=$(blkid -o value -s UUID "$fs")
gpt=$(card gpt.img 32M)
part_uuid=$(cat /proc/sys/kernel/random/uuid)
sgdisk -o -n 1:2048:0 -u "1:$part_uuid" "$gpt" >/dev/null || fail "sgdisk"
swp=$(card swap.img 32M)
chmod 600 "$swp"
mkswap "$swp" >/dev/null || fail "mkswap"
swap_uuid=$(blkid -o value -s UUID "$swp")
[[ -n $fs_uuid && -n $swap_uuid ]] || fail "blkid found no UUID on the test cards"
attach_loop "$fs"
dev_fs=$LOOP_DEV
attach_loop "$gpt"
dev_gpt=$LOOP_DEV
attach_loop "$swp"
dev_swap=$LOOP_DEV

# ---- one udev event, simulated in a namespace of its own ----------------------
cat >"$TEST_TMP/event.sh" <<'SCRIPT'
# event.sh DEV RULES ID_PATH FSTAB MOUNTPOINT CHROOT: mounts what the case
# wants, then prints the properties udevadm test gives DEV.
set -eu
dev=$1 rules=$2 id_path=$3 fstab=$4 mnt=$5 root=$6 tmp=$7 helper=$8
name=${dev#/dev/}
devnum=$(cat "/sys/block/$name/dev")
for d in /etc/udev/rules.d /usr/lib/udev/rules.d /run/udev; do mount -t tmpfs tmpfs "$d"; done
mkdir /run/udev/rules.d
echo "KERNEL==\"$name\", ENV{ID_BUS}=\"usb\", ENV{ID_PATH}=\"$id_path\"" >/run/udev/rules.d/00-identity.rules
cp "$rules" /run/udev/rules.d/90-bmap-station.rules
# A /dev of our own: udevadm test sets the node's mode and makes links.
mount -t tmpfs -o mode=0755 tmpfs /dev
mknod -m 0666 /dev/null c 1 3
mknod -m 0600 "$dev" b "${devnum%:*}" "${devnum#*:}"
[[ $fstab == - ]] || mount --bind "$fstab" /etc/fstab
[[ $mnt == - ]] || { mkdir -p "$mnt"; mount "$dev" "$mnt"; }
if [[ $root == 1 ]]; then
	# The card's file system is "/" of a chroot that sees the host's programs.
	r=$tmp/root
	mkdir -p "$r"
	mount "$dev" "$r"
	mkdir -p "$r"/{usr,etc,sys,proc,dev,run/udev,"$(dirname "$helper")"}
	for l in bin sbin lib lib64; do [[ -L /$l ]] && ln -sfn "$(readlink "/$l")" "$r/$l"; done
	mount --rbind /usr "$r/usr"
	mount --rbind /etc "$r/etc"
	mount --rbind /sys "$r/sys"
	mount -t proc proc "$r/proc"
	mount --bind /dev "$r/dev"
	mount --bind /run/udev "$r/run/udev"
	mount --bind "$(dirname "$helper")" "$r/$(dirname "$helper")"
	exec chroot "$r" udevadm test --action=change "/sys/block/$name" 2>&1
fi
exec udevadm test --action=change "/sys/block/$name" 2>&1
SCRIPT

# event DEV RULES ID_PATH [FSTAB|-] [MOUNTPOINT|-] [CHROOT 0|1]: sets PROPS
# (the device's properties after the rules) and TAGGED (1 or 0).
event() {
	local out=$TEST_TMP/event.out
	unshare -m --propagation private bash "$TEST_TMP/event.sh" "$1" "$2" "$3" "${4:--}" "${5:--}" \
		"${6:-0}" "$TEST_TMP" "$BMAP_STATION" >"$out" 2>&1 ||
		fail "udevadm test for $1 failed: $(tail -n 20 "$out")"
	PROPS=$(sed -n '/^DEVPATH=/,$p' "$out")
	[[ -n $PROPS ]] || fail "udevadm test printed no properties: $(tail -n 20 "$out")"
	TAGGED=0
	grep -q '^CURRENT_TAGS=.*:bmap-station:' <<<"$PROPS" && TAGGED=1
	return 0
}
# tagged LABEL ARGS...: the card must be tagged (a control).
tagged() {
	local label=$1
	shift
	event "$@"
	((TAGGED)) || fail "$label: not tagged: $(grep BMAP_STATION <<<"$PROPS")$(grep -i 'bmap-station\|system-disk' "$TEST_TMP/event.out" | tail -n 5)"
	log "$label: tagged"
}
# refused LABEL WHY ARGS...: the helper must call it a system disk, saying WHY.
refused() {
	local label=$1 why=$2
	shift 2
	event "$@"
	((TAGGED == 0)) || fail "$label: the system disk was tagged for the station"
	grep -qx 'BMAP_STATION_DISK=system' <<<"$PROPS" ||
		fail "$label: untagged, but not by the helper: $(grep -i 'bmap\|system-disk' "$TEST_TMP/event.out" | tail -n 5)"
	grep -qF "BMAP_STATION_SYSTEM_DISK=$why" <<<"$PROPS" ||
		fail "$label: the reason is not '$why': $(grep BMAP_STATION_SYSTEM_DISK <<<"$PROPS")"
	grep -q 'MODE 0660\|GROUP' <(grep '90-bmap-station.rules' "$TEST_TMP/event.out") &&
		fail "$label: the rules gave the system disk a group or mode"
	log "$label: not tagged: $why"
}
R=$TEST_TMP/90-bmap-station.rules
P=pci-0000:00:14.0-usb-0:9:1.0-scsi-0:0:0:0

# ---- the packaged rules --------------------------------------------------------
tagged "plain card" "$dev_fs" "$R" "$P"
refused "mounted on /boot" "holds /boot" "$dev_fs" "$R" "$P" - /boot
refused "mounted on /boot/efi" "holds /boot/efi" "$dev_fs" "$R" "$P" - /boot/efi
refused "the root of a chroot" "holds / (the root file system)" "$dev_fs" "$R" "$P" - - 1

printf 'UUID=%s /boot ext4 noauto 0 2\n' "$fs_uuid" >"$TEST_TMP/fstab.boot"
refused "fstab: /boot by UUID, not mounted" "holds /boot listed in /etc/fstab" \
	"$dev_fs" "$R" "$P" "$TEST_TMP/fstab.boot"
printf '# a comment\nPARTUUID=%s /boot/efi vfat umask=0077,noauto 0 1\n' "${part_uuid^^}" >"$TEST_TMP/fstab.efi"
refused "fstab: /boot/efi by PARTUUID" "holds /boot/efi listed in /etc/fstab" \
	"$dev_gpt" "$R" "$P" "$TEST_TMP/fstab.efi"
printf 'UUID=%s none swap sw 0 0\n' "$swap_uuid" >"$TEST_TMP/fstab.swap"
refused "fstab: swap by UUID" "holds a swap area listed in /etc/fstab" \
	"$dev_swap" "$R" "$P" "$TEST_TMP/fstab.swap"
# "/" is mounted (from the machine's disk): fstab's UUID for it says nothing
# about a card that carries the same UUID (flashed with the same image).
printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$fs_uuid" >"$TEST_TMP/fstab.root"
tagged "a card with the UUID of the mounted /" "$dev_fs" "$R" "$P" "$TEST_TMP/fstab.root"
tagged "a GPT card, fstab naming /boot by another UUID" "$dev_gpt" "$R" "$P" "$TEST_TMP/fstab.boot"

swapon "$dev_swap" || fail "swapon $dev_swap"
SWAP_ON=$dev_swap
on_exit '[[ -n $SWAP_ON ]] && swapoff "$SWAP_ON"'
refused "active swap" "holds an active swap area" "$dev_swap" "$R" "$P"
swapoff "$dev_swap" || fail "swapoff"
SWAP_ON=
tagged "the swap card once swapped off" "$dev_swap" "$R" "$P"

# ---- the station's own rules: its slots only -------------------------------------
conf=$TEST_TMP/station.conf
cat >"$conf" <<CONF
station = { name = "rules"; database = "$TEST_TMP/journal.db"; cache_dir = "$TEST_TMP/cache"; };
slots = ( { name = "A1"; path = "$P"; },
          { name = "A2"; path = "pci-0000:00:14.0-usb-0:10:1.0-scsi-0:0:0:0"; } );
profiles = ( { name = "p"; image = "$TEST_TMP/none.img"; } );
CONF
"$BMAP_STATION" udev-rules --config "$conf" >"$TEST_TMP/slots.rules" ||
	fail "bmap-station udev-rules failed"
S=$TEST_TMP/slots.rules
grep -qF "$BMAP_STATION system-disk" "$S" || fail "the slot rules do not ask $BMAP_STATION system-disk"
tagged "slot rules: a card in slot A1" "$dev_fs" "$S" "$P"
event "$dev_fs" "$S" "pci-0000:00:14.0-usb-0:11:1.0-scsi-0:0:0:0"
((TAGGED == 0)) || fail "slot rules: a USB disk in no slot of the station was tagged"
grep -q '^BMAP_STATION_DISK=' <<<"$PROPS" && fail "slot rules: the helper ran for a disk in no slot"
log "slot rules: a USB disk in another port: not tagged"
refused "slot rules: the card in A1 mounted on /boot" "holds /boot" "$dev_fs" "$S" "$P" - /boot
refused "slot rules: the card in A1 as the root" "holds / (the root file system)" "$dev_fs" "$S" "$P" - - 1

log "ok: the system disk is never tagged, by the packaged rules or the slot rules"
