#!/bin/bash
# The profile's image and bmap replaced while a card waits in the queue
# (max_workers = 1, the running worker held at its cache entry's lock): the
# waiting card gets the new image, verified against the new bmap, and its
# journal row names the bmap it was really flashed with.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd zstd
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_sparse_image "$im/A.img" "size=32M data=0:1M data=3M:12M"
mk_sparse_image "$im/B.img" "size=32M data=0:2M data=5M:10M"
for x in A B; do
	"$BMAPTOOL" -q create -o "$im/$x.img.bmap" "$im/$x.img" || fail "create $x"
	zstd -q "$im/$x.img" -o "$im/$x.img.zst" || fail "zstd $x"
done
use() {
	cp "$im/$1.img.zst" "$im/tmp" && mv -f "$im/tmp" "$im/cur.img.zst" || fail "rename"
	cp "$im/$1.img.bmap" "$im/tmp" && mv -f "$im/tmp" "$im/cur.img.bmap" || fail "rename"
}
use A
db=$TEST_TMP/journal.db
cache=$TEST_TMP/cache
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "queue-change"; database = "$db"; max_workers = 1;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$cache"; };
profiles = (
  { name = "z"; image = "images/cur.img.zst"; bmap = "images/cur.img.bmap";
    removable_only = false; match = { serial = "q-*"; }; }
);
CONF
# key X: the cache entry's name for X; holding its lock holds A's workers
# before they write.
# (An entry is named after the image file's identity: call it while cur holds X.)
key() { cache_key "$im/cur.img.zst" "$im/cur.img.bmap"; }
bmap_sum() { sha256sum <"$im/$1.img.bmap" | cut -c1-64; }

start_station "$TEST_TMP/station.conf"
station_ready "$db"
mkdir -p "$cache"
exec 8>>"$cache/$(key A).lock"
flock -x 8 || fail "flock"

c1=$(make_card q-1.img 40M)
insert_card "$c1"
for _ in $(seq 100); do
	w=$(sed -nE "s/.*serial q-1\.img.*job [0-9]+ started \(worker ([0-9]+)\).*/\1/p" "$TEST_TMP/station.log" | tail -1)
	[[ -n $w ]] && ls -l "/proc/$w/fd" 2>/dev/null | grep -q '\.lock$' && break
	sleep 0.1
done
ls -l "/proc/$w/fd" 2>/dev/null | grep -q '\.lock$' || fail "q-1's worker is not waiting at the cache lock"
c2=$(make_card q-2.img 40M)
insert_card "$c2"
wait_for "$db" "select state from live where serial='q-2.img'" waiting 20 || fail "q-2 is not waiting in the queue"
[[ $(q "$db" "select count(*) from jobs where serial='q-2.img'") == 0 ]] || fail "q-2 got a job row while queued"

use B
exec 8>&-
wait_for "$db" "select outcome from jobs where serial='q-1.img'" success 30 ||
	fail "q-1: $(q "$db" "select outcome, error from jobs where serial='q-1.img'")"
wait_for "$db" "select outcome from jobs where serial='q-2.img'" success 30 ||
	fail "q-2: $(q "$db" "select outcome, error from jobs where serial='q-2.img'")"
"$BMAPTOOL" -q verify --bmap "$im/A.img.bmap" "$im/A.img" "$c1" || fail "q-1 does not hold A (what it opened)"
"$BMAPTOOL" -q verify --bmap "$im/B.img.bmap" "$im/B.img" "$c2" || fail "q-2 does not hold B"
[[ $(q "$db" "select bmap_sha256 from jobs where serial='q-1.img'") == "$(bmap_sum A)" ]] ||
	fail "q-1's row does not name A's bmap"
[[ $(q "$db" "select bmap_sha256 from jobs where serial='q-2.img'") == "$(bmap_sum B)" ]] ||
	fail "q-2's row names $(q "$db" "select bmap_sha256 from jobs where serial='q-2.img'"), not B's bmap $(bmap_sum B)"
[[ $(q "$db" "select data_sha256 = readback_sha256 from jobs where serial='q-2.img'") == 1 ]] ||
	fail "q-2 was not read back"
log "ok: the queued card got the new image and bmap, and its row names them"
