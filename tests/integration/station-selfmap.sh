#!/bin/bash
# The station with profiles whose images carry their own map and no bmap
# anywhere: a qcow2 with zlib-compressed clusters (qemu-img convert -c), an
# Android sparse image (img2simg) and the same sparse image compressed with
# zstd (its map is known only once it is read: copied as a stream). Each
# card (a loop device filled with 0xA5) must hold the virtual disk's data
# where the raw image has data (checked by our verify against the raw image
# and its bmap, made from the raw image, not from the formats), the job must
# succeed with read-back verification (the image itself is read again: its
# map has no checksums), and the log must say where the map came from.
# Before the worker took the image's own map, these cards failed with "no
# bmap found for the compressed image" (qcow2 and sparse alike).
# The cache is off (cache_dir = ""): this covers the worker decoding the
# image itself; station-selfmap-cache.sh covers the cache unpacking it once.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd qemu-img
need_cmd img2simg
need_cmd zstd
need_loops 3
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_sparse_image "$TEST_TMP/disk.raw" "size=20M+512 data=0:1M islands=2M:4K:40:64K data=9M:3M data=20M-4K:4608"
"$BMAPTOOL" -q create -o "$TEST_TMP/disk.bmap" "$TEST_TMP/disk.raw" || fail "create"
qemu-img convert -q -c -O qcow2 "$TEST_TMP/disk.raw" "$im/disk.qcow2" || fail "qemu-img convert"
img2simg "$TEST_TMP/disk.raw" "$im/disk.simg" || fail "img2simg"
zstd -q -c "$im/disk.simg" >"$im/stream.simg.zst" || fail "zstd"
# No bmap next to the images: the map must be their own.
ls "$im"/*.bmap >/dev/null 2>&1 && fail "a bmap lies next to the images"

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "selfmap"; database = "$db"; max_workers = 3;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = ""; };
profiles = (
  { name = "qcow2"; image = "$im/disk.qcow2"; removable_only = false;
    verify = "readback"; match = { serial = "q-*"; }; },
  { name = "simg"; image = "$im/disk.simg"; removable_only = false;
    verify = "readback"; match = { serial = "s-*"; }; },
  { name = "simgzst"; image = "$im/stream.simg.zst"; removable_only = false;
    verify = "readback"; match = { serial = "z-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

declare -A c
for s in q-1 s-1 z-1; do
	c[$s]=$(make_card "$s.img" 32M)
	insert_card "${c[$s]}"
done
wait_for "$db" "select count(*) from jobs where outcome != 'running'" 3 120 ||
	fail "the jobs did not end: $(q "$db" "select serial, outcome, error from jobs")"
bad=$(q "$db" "select serial || ': ' || outcome || ' ' || coalesce(error, '') from jobs where outcome != 'success'")
[[ -z $bad ]] || fail "not every card succeeded: $bad"
for s in q-1 s-1 z-1; do
	"$BMAPTOOL" -q verify --bmap "$TEST_TMP/disk.bmap" "$TEST_TMP/disk.raw" "${c[$s]}" ||
		fail "$s does not hold the virtual disk's data"
done
for f in qcow2 "Android sparse"; do
	grep -q "the map comes from the $f image itself" "$TEST_TMP/station.log" ||
		fail "the log does not say the map came from the $f image: $(grep note "$TEST_TMP/station.log")"
done
# The qcow2's unallocated clusters were not written: past the raw image's
# last data, up to the card's end, the card keeps its 0xA5.
tail -c $((32 * 1024 * 1024 - 20 * 1024 * 1024 - 512)) "${c[q-1]}" | cmp -s - \
	<(head -c $((32 * 1024 * 1024 - 20 * 1024 * 1024 - 512)) /dev/zero | tr '\0' '\245') ||
	fail "the qcow2 card was written past the virtual disk"
log "ok: qcow2, sparse and compressed sparse profile images were flashed from their own maps"
