#!/bin/bash
# A self-mapped image in the image cache replaced under its name: a qcow2
# without a bmap is flashed (its entry filled), then rewritten in place (cp
# onto it: same inode, new content), flashed again, then replaced by a
# rename (a new inode), flashed again. Each version gets an entry of its
# own (the key is the image's identity: a new size, mtime or ctime, or a
# new inode, is another key) and each card holds the version that was in
# place when it was inserted, never an older entry's data. Before the cache
# unpacked self-mapped images, no entry was made at all ("cache not used").
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd qemu-img
need_loops 3
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_sparse_image "$TEST_TMP/v1.raw" "size=16M data=0:1M islands=2M:4K:20:64K data=9M:2M"
cp --sparse=always "$TEST_TMP/v1.raw" "$TEST_TMP/v2.raw"
dd if=/dev/urandom of="$TEST_TMP/v2.raw" bs=64K count=8 conv=notrunc status=none
cp --sparse=always "$TEST_TMP/v1.raw" "$TEST_TMP/v3.raw"
dd if=/dev/urandom of="$TEST_TMP/v3.raw" bs=64K count=8 seek=144 conv=notrunc status=none
for v in 1 2 3; do
	qemu-img convert -q -O qcow2 "$TEST_TMP/v$v.raw" "$TEST_TMP/v$v.qcow2" || fail "qemu-img convert"
done
cp "$TEST_TMP/v1.qcow2" "$im/disk.qcow2"

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "selfmap-cache-stale"; database = "$db"; max_workers = 1;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache";
  cache_prefill = false; };
profiles = (
  { name = "qcow2"; image = "$im/disk.qcow2"; removable_only = false;
    verify = "readback"; match = { serial = "q-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

declare -A entries
for v in 1 2 3; do
	case $v in
	2) cp "$TEST_TMP/v2.qcow2" "$im/disk.qcow2" ;; # in place: cp keeps the inode
	3) cp "$TEST_TMP/v3.qcow2" "$im/new.qcow2" && mv "$im/new.qcow2" "$im/disk.qcow2" ;;
	esac
	card=$(make_card "q-$v.img" 32M)
	insert_card "$card"
	wait_for "$db" "select outcome from jobs where serial = 'q-$v.img'" success 90 ||
		fail "card $v: $(q "$db" "select serial, outcome, error from jobs")"
	line=$(grep "(serial q-$v.img): cache built: " "$TEST_TMP/station.log") ||
		fail "card $v did not fill an entry of its own: $(grep "q-$v.img" "$TEST_TMP/station.log")"
	entry=${line#*cache built: }
	entry=${entry%% *}
	[[ -z ${entries[$entry]:-} ]] || fail "version $v has the entry of version ${entries[$entry]}"
	entries[$entry]=$v
	qemu-img convert -q -O raw "$TEST_TMP/v$v.qcow2" "$TEST_TMP/ref.raw" || fail "qemu-img convert -O raw"
	# (the entry's bmap has checksums: every DEST is checked against them,
	# qemu-img's output of this version too, and not that of the last one)
	"$BMAPTOOL" -q verify --bmap "${entry%.img}.bmap" "$TEST_TMP/v$v.raw" "$TEST_TMP/ref.raw" "$card" ||
		fail "card $v does not hold version $v of the image"
	[[ $v == 1 ]] || ! "$BMAPTOOL" -q verify --bmap "${entry%.img}.bmap" "$TEST_TMP/v$v.raw" \
		"$TEST_TMP/prev.raw" 2>/dev/null || fail "version $v's entry also matches version $((v - 1))"
	mv "$TEST_TMP/ref.raw" "$TEST_TMP/prev.raw"
done
log "ok: a qcow2 replaced in place and by a rename gave each card the version in place"
