#!/bin/bash
# Regression: a qcow2 image written to in place while the image cache
# unpacks it (cp onto it, rsync --inplace). The entry's bmap is made of
# what was unpacked, and nothing else checks it (a qcow2 has no
# checksums), so an entry of old and new bytes was served with a bmap that
# matches it: every card passed its read-back and was recorded 'success'
# with data that is neither image. Now the filler sees the image changed
# (its size, mtime or ctime) and fails the fill: no card succeeds, no entry
# remains, and the next card gets the new image whole.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/faults.sh"
need_station_env
need_ours
need_fault_shim
need_cmd qemu-img
need_loops 2
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_sparse_image "$TEST_TMP/old.raw" "size=24M data=0:1M data=4M:8M data=16M:4M"
# The same clusters allocated (the same tables, the same size), other bytes
# in them: what a rebuilt image of the same layout is.
cp "$TEST_TMP/old.raw" "$TEST_TMP/new.raw"
head -c 4M /dev/urandom | dd of="$TEST_TMP/new.raw" bs=1M seek=6 conv=notrunc status=none
head -c 2M /dev/urandom | dd of="$TEST_TMP/new.raw" bs=1M seek=17 conv=notrunc status=none
qemu-img convert -q -O qcow2 "$TEST_TMP/old.raw" "$im/disk.qcow2" || fail "qemu-img"
qemu-img convert -q -O qcow2 "$TEST_TMP/new.raw" "$TEST_TMP/new.qcow2" || fail "qemu-img"
[[ $(stat -c %s "$im/disk.qcow2") == $(stat -c %s "$TEST_TMP/new.qcow2") ]] ||
	fail "the two qcow2 images differ in size: the test wants one layout"
# The filler's reads of the image are slow (300 ms each): its fill takes seconds.
fault_rule "file=$im/disk.qcow2 pread delay=300"

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "selfmap-cache-changed"; database = "$db"; max_workers = 2;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache";
  cache_prefill = false; };
profiles = (
  { name = "q"; image = "$im/disk.qcow2"; removable_only = false;
    verify = "readback"; match = { serial = "q-*"; }; }
);
CONF
with_faults start_station "$TEST_TMP/station.conf"
station_ready "$db"

c1=$(make_card q-1.img 32M)
insert_card "$c1"
# The fill under way: its part is there (a card of a self-mapped entry
# says "cache built" only once the fill is complete).
for _ in $(seq 200); do
	compgen -G "$TEST_TMP/cache/*.part" >/dev/null && break
	sleep 0.05
done
compgen -G "$TEST_TMP/cache/*.part" >/dev/null || fail "no fill started: $(ls "$TEST_TMP/cache") $(tail -5 "$TEST_TMP/station.log")"
sleep 0.5
# Written in place, same inode, as cp onto an existing file does.
cp "$TEST_TMP/new.qcow2" "$im/disk.qcow2"
wait_for "$db" "select count(*) from jobs where serial = 'q-1.img' and outcome <> 'running'" 1 120 ||
	fail "card q-1 did not end: $(q "$db" "select serial, outcome, error from jobs")"
IFS='|' read -r outcome error < <(q "$db" "select outcome, error from jobs where serial = 'q-1.img'")
[[ $outcome == failed && $error == *"changed while it was unpacked"* ]] ||
	fail "card q-1, copied while its image changed: $outcome: $error"
[[ -z $(ls "$TEST_TMP/cache"/*.img 2>/dev/null) ]] ||
	fail "an entry of the changed image remains: $(ls "$TEST_TMP/cache")"

: >"$FAULT_FILE"
c2=$(make_card q-2.img 32M)
insert_card "$c2"
wait_for "$db" "select outcome from jobs where serial = 'q-2.img'" success 120 ||
	fail "card q-2: $(q "$db" "select serial, outcome, error from jobs")"
"$BMAPTOOL" -q create -o "$TEST_TMP/new.bmap" "$TEST_TMP/new.raw" || fail "create"
"$BMAPTOOL" -q verify --bmap "$TEST_TMP/new.bmap" "$TEST_TMP/new.raw" "$c2" ||
	fail "card q-2 does not hold the new image"
log "ok: a qcow2 written to while it was unpacked failed its fill and card; the next card got the new image"
