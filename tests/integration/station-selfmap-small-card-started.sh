#!/bin/bash
# A profile image that carries its own map (a qcow2, an Android sparse image,
# no bmap) was sized by its file, not by its virtual disk: a card bigger than
# the file but smaller than the disk was queued, a worker started ("job N
# started (worker PID)") and only the worker's open of the card refused it.
# Now the policy sizes such an image by its virtual disk and refuses the card
# before a worker starts: no worker is started for it, the job is "refused",
# its reason (the policy's) says "too small for the image" with the virtual
# size and the format, and the card (a loop device filled with 0xA5) is
# untouched. A card big enough for the disk is
# still written (the decision does not refuse everything).
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd qemu-img
need_cmd img2simg
need_loops 3
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
# A 24 MiB disk with 1 MiB of data: both formats' files are far smaller.
mk_sparse_image "$TEST_TMP/disk.raw" "size=24M data=0:512K data=23M:512K"
"$BMAPTOOL" -q create -o "$TEST_TMP/disk.bmap" "$TEST_TMP/disk.raw" || fail "create"
qemu-img convert -q -c -O qcow2 "$TEST_TMP/disk.raw" "$im/disk.qcow2" || fail "qemu-img convert"
img2simg "$TEST_TMP/disk.raw" "$im/disk.simg" || fail "img2simg"
for f in "$im/disk.qcow2" "$im/disk.simg"; do
	(($(stat -c %s "$f") < 8 * 1048576)) || fail "$f is not smaller than the small card"
done

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "selfmap-small"; database = "$db"; max_workers = 3;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = (
  { name = "qcow2"; image = "$im/disk.qcow2"; removable_only = false;
    verify = "readback"; match = { serial = "q-*"; }; },
  { name = "simg"; image = "$im/disk.simg"; removable_only = false;
    verify = "readback"; match = { serial = "s-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

declare -A c
for s in q-small s-small q-big; do
	size=16M
	[[ $s == *big ]] && size=32M
	c[$s]=$(make_card "$s.img" $size)
	insert_card "${c[$s]}"
done
wait_for "$db" "select count(*) from jobs where outcome != 'running'" 3 120 ||
	fail "the jobs did not end: $(q "$db" "select serial, outcome, error from jobs")"
for s in q-small s-small; do
	grep -q "(serial $s.img): profile .*: job [0-9]* started" "$TEST_TMP/station.log" &&
		fail "$s: a worker was started for a card too small for the virtual disk"
	got=$(q "$db" "select outcome || ': ' || coalesce(error, '') from jobs where serial = '$s.img'")
	[[ $got == "refused: too small for the image: 16.0 MiB < 24.0 MiB (the virtual disk of the "* ]] ||
		fail "$s: not refused for the virtual disk's size before a worker: '$got'"
	cmp -s "${c[$s]}" <(head -c 16M /dev/zero | tr '\0' '\245') || fail "$s: the card was written to"
	log "$s: $got"
done
[[ $(q "$db" "select outcome from jobs where serial = 'q-big.img'") == success ]] ||
	fail "the big card was not written: $(q "$db" "select outcome, error from jobs where serial = 'q-big.img'")"
"$BMAPTOOL" -q verify --bmap "$TEST_TMP/disk.bmap" "$TEST_TMP/disk.raw" "${c[q-big]}" ||
	fail "the big card does not hold the virtual disk"
log "ok: self-mapped images sized by their virtual disk; small cards refused before a worker"
