#!/bin/bash
# Regression: a self-mapped image's cache entry was counted at its virtual
# disk's size, not its data's: a qcow2 of a 96 MiB disk holding 6 MiB was
# "larger than cache_max_size" at 32M and never cached (and below the limit
# the cache evicted other entries to make room for the whole disk). Now it
# takes its data: cached, the card good, and a 3 MiB entry of another
# profile that fits beside it stays.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd qemu-img
need_cmd zstd
need_loops 2
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_sparse_image "$TEST_TMP/disk.raw" "size=96M data=0:1M data=40M:4M data=90M:1M"
qemu-img convert -q -O qcow2 "$TEST_TMP/disk.raw" "$im/disk.qcow2" || fail "qemu-img"
mk_image_bmap "$im/small.img" "size=16M data=0:1M data=8M:2M" zst

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "selfmap-cache-room"; database = "$db"; max_workers = 2;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache";
  cache_max_size = "32M"; cache_prefill = false; };
profiles = (
  { name = "q"; image = "$im/disk.qcow2"; removable_only = false;
    verify = "readback"; match = { serial = "q-*"; }; },
  { name = "z"; image = "$im/small.img.zst"; bmap = "$im/small.img.bmap"; removable_only = false;
    verify = "readback"; match = { serial = "z-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

z=$(make_card z-1.img 32M)
insert_card "$z"
wait_for "$db" "select outcome from jobs where serial = 'z-1.img'" success 60 ||
	fail "card z-1: $(q "$db" "select serial, outcome, error from jobs")"
zentry=$(ls "$TEST_TMP/cache"/*.img)
c=$(make_card q-1.img 128M)
insert_card "$c"
wait_for "$db" "select outcome from jobs where serial = 'q-1.img'" success 60 ||
	fail "card q-1: $(q "$db" "select serial, outcome, error from jobs")"
grep -q "q-1.img.*cache built" "$TEST_TMP/station.log" ||
	fail "the qcow2 was not cached: $(grep 'q-1.img' "$TEST_TMP/station.log" | grep cache)"
[[ -f $zentry ]] || fail "the other profile's entry $zentry was evicted for the qcow2's"
"$BMAPTOOL" -q create -o "$TEST_TMP/disk.bmap" "$TEST_TMP/disk.raw" || fail "create"
"$BMAPTOOL" -q verify --bmap "$TEST_TMP/disk.bmap" "$TEST_TMP/disk.raw" "$c" || fail "card q-1 does not hold the image"
log "ok: a 96 MiB qcow2 of 6 MiB data cached under cache_max_size 32M, beside another entry"
