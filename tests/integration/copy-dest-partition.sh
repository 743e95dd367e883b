#!/bin/bash
# A partition as DEST (`bmaptool copy rootfs.ext4 /dev/mmcblk0p2`): what
# broke, it was refused ("give the whole disk instead"). Now it is taken
# with a disk's guards: O_EXCL (refused while held, as a mount holds it),
# not read-only, big enough (the partition's own size), --removable-device
# by its disk's flag; written, synced and verified within the partition,
# the rest of the disk untouched. The whole disk holding a held partition
# stays refused. The partitions are made on a loop device (`losetup -P`,
# then `partx -a`: BLKPG, as this kernel reads no partition table itself);
# where no node appears the test is skipped.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_loop
need_cmd sfdisk
need_cmd partx
need_cmd blockdev

cd "$TEST_TMP" || fail "cd"
# 16 MiB card of 0xA5: p1 1..5 MiB (4 MiB), p2 5..16 MiB (11 MiB).
CARD_FILE=$CARD_DIR/card.bin
fill_pattern "$CARD_FILE" $((16 << 20))
printf 'label: dos\n2048,8192,83\n10240,,83\n' | sfdisk -q "$CARD_FILE" >/dev/null ||
	fail "sfdisk"
attach_card "$CARD_FILE" -P
dev=$CARD_DEV
# Partitions may outlive the loop device's detach: deleted first (on_exit
# runs before common.sh detaches).
on_exit "partx -d '$dev' 2>/dev/null"
p1=${dev}p1 p2=${dev}p2
if [[ ! -b $p2 ]]; then
	partx -a "$dev" 2>"$TEST_TMP/partx.err" || skip "partx -a $dev: $(cat "$TEST_TMP/partx.err")"
fi
for _ in $(seq 50); do [[ -b $p1 && -b $p2 ]] && break; sleep 0.1; done
[[ -b $p1 && -b $p2 ]] || skip "no partition nodes $p1, $p2 appeared"
[[ $(blockdev --getsize64 "$p1") -eq $((4 << 20)) ]] || fail "$p1 is not 4 MiB"

mk_sparse_image rootfs.img "size=3M data=0:8K data=1M:300K data=3M-4K:4K"
"$BMAPTOOL" create -o rootfs.img.bmap rootfs.img 2>/dev/null || fail "create"
mk_sparse_image big.img "size=6M data=0:4K data=5M:4K"
"$BMAPTOOL" create -o big.img.bmap big.img 2>/dev/null || fail "create"

# The card as read with O_DIRECT: the bytes outside a partition.
card_sum() { dd if="$dev" bs=1M iflag=direct status=none | sha256sum; }
range_sum() { # OFFSET_MIB COUNT_MIB
	dd if="$dev" bs=1M skip="$1" count="$2" iflag=direct status=none | sha256sum
}

# run CODE NEEDLE ARGS...
run() {
	local code=$1 needle=$2 rc
	shift 2
	"$BMAPTOOL" "$@" >out 2>err
	rc=$?
	if [[ $rc -ne $code ]]; then
		bad "'$*': exit $rc, expected $code: $(head -c 400 err)"
		return 1
	elif [[ -n $needle ]] && ! grep -qF -- "$needle" err; then
		bad "'$*': no '$needle' in: $(head -c 400 err)"
		return 1
	fi
}

# --- p2: copied, verified, the rest of the card untouched -------------------
head_before=$(range_sum 0 5)
run 0 "copying image 'rootfs.img' to block device '$p2' using bmap file 'rootfs.img.bmap'" \
	copy rootfs.img "$p2"
run 0 "everything matches" verify rootfs.img "$p2"
[[ $(range_sum 0 5) == "$head_before" ]] || bad "copy to $p2 changed bytes outside it"
# The image's mapped bytes at the partition's start, read through the disk.
dd if="$dev" bs=1M skip=5 count=3 iflag=direct status=none | cmp -s - rootfs.img ||
	log "note: unmapped blocks keep the old pattern (expected)"
dd if="$dev" bs=4K skip=$(((5 << 20) / 4096)) count=2 iflag=direct status=none |
	cmp -s - <(head -c 8192 rootfs.img) || bad "the image's first 8 KiB are not at ${p2}'s start"

# --- the guards --------------------------------------------------------------
before=$(card_sum)
run 1 "too small" copy big.img "$p1"
[[ $(card_sum) == "$before" ]] || bad "the refused copy to $p1 (too small) changed the card"

if hold_card "$p1"; then
	run 1 "busy" copy rootfs.img "$p1"
	# The whole disk of a held partition stays refused.
	run 1 "busy" copy rootfs.img "$dev"
	release_card
	[[ $(card_sum) == "$before" ]] || bad "the refused copies to a held $p1 changed the card"
else
	bad "could not hold $p1: $HOLD_ERROR"
fi

if blockdev --setro "$p1"; then
	on_exit "blockdev --setrw '$p1' 2>/dev/null"
	run 1 "read-only" copy rootfs.img "$p1"
	blockdev --setrw "$p1"
	[[ $(card_sum) == "$before" ]] || bad "the refused copy to a read-only $p1 changed the card"
fi

# --removable-device: the disk's flag (a loop device is not removable).
run 1 "($(basename "$dev")) is not removable" copy --removable-device rootfs.img "$p1"
[[ $(card_sum) == "$before" ]] || bad "the refused --removable-device copy changed the card"

# And p1 takes an image that fits.
run 0 "" copy rootfs.img "$p1"
run 0 "everything matches" verify rootfs.img "$p1"
[[ $(range_sum 5 11) == $(dd if="$p2" bs=1M iflag=direct status=none | sha256sum) ]] ||
	bad "p2 read through the disk differs from p2 read itself"

finish "partitions as DEST: copied and verified within them, with a disk's guards"
