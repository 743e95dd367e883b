#!/bin/bash
# The profile's image and bmap replaced or deleted while workers run. A
# worker is held at a known point (after it opened the image and loaded the
# bmap, before it writes) by holding the decompress-once cache's lock of its
# entry; the files are changed there.
#  - replaced by rename: the running job finishes with what it opened; the
#    next job writes the new content, verified against the new bmap, from a
#    new cache entry (the old entry is not served for the new content)
#  - rewritten in place under a running job: it fails cleanly, the error
#    names the file; no cache entry is made of the mixed content
#  - deleted under a running job: it finishes from what it holds; the next
#    card gets a 'failed' row naming the missing file, no worker, and the
#    station keeps running
#  - records lost = 0, PRAGMA integrity_check ok
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
mk_sparse_image "$im/C.img" "size=32M data=0:1M data=9M:8M"
for x in A B C; do
	"$BMAPTOOL" -q create -o "$im/$x.img.bmap" "$im/$x.img" || fail "create $x"
	zstd -q "$im/$x.img" -o "$im/$x.img.zst" || fail "zstd $x"
done
# use X: the profile's files become X's, each replaced by a rename.
use() {
	cp "$im/$1.img.zst" "$im/tmp" && mv -f "$im/tmp" "$im/cur.img.zst" || fail "rename"
	cp "$im/$1.img.bmap" "$im/tmp" && mv -f "$im/tmp" "$im/cur.img.bmap" || fail "rename"
}
use A
db=$TEST_TMP/journal.db
cache=$TEST_TMP/cache

cat >"$TEST_TMP/station.conf" <<CONF
station = {
  name = "image-change";
  database = "$db";
  max_workers = 4;
  require_tag = "bmap-station";
  max_device_size = "1G";
  cache_dir = "$cache";
  cache_prefill = false; # holds the entries' locks at known points
};
profiles = (
  { name = "z"; image = "images/cur.img.zst"; bmap = "images/cur.img.bmap";
    removable_only = false; verify = "readback"; match = { serial = "z-*"; }; }
);
CONF

# key X: the cache entry's name for X.
# (An entry is named after the image file's identity: call it while cur holds X.)
key() { cache_key "$im/cur.img.zst" "$im/cur.img.bmap"; }
# hold X: takes the lock of X's cache entry (workers for X wait there).
hold() {
	mkdir -p "$cache"
	HELD_KEY=$(key "$1")
	exec 8>>"$cache/$HELD_KEY.lock"
	flock -x 8 || fail "flock"
}
release() { exec 8>&-; }
# insert_held NAME: a card whose worker is then waiting at the held lock.
insert_held() {
	local c w
	c=$(make_card "$1.img" 40M)
	insert_card "$c"
	for _ in $(seq 100); do
		w=$(sed -nE "s/.*serial $1\.img.*job [0-9]+ started \(worker ([0-9]+)\).*/\1/p" "$TEST_TMP/station.log" | tail -1)
		[[ -n $w ]] && ls -l "/proc/$w/fd" 2>/dev/null | grep -q '\.lock$' && break
		sleep 0.1
	done
	ls -l "/proc/$w/fd" 2>/dev/null | grep -q '\.lock$' || fail "the worker for $1 is not waiting at the cache lock"
	CARD=$c
}
outcome() { q "$db" "select outcome from jobs where serial='$1.img'"; }

start_station "$TEST_TMP/station.conf"
station_ready "$db"
faults=0

# 1. A first card: image A, its cache entry built.
c=$(make_card z-1.img 40M)
insert_card "$c"
d=$LOOP_DEV
wait_for "$db" "select outcome from jobs where serial='z-1.img'" success || fail "z-1"
"$BMAPTOOL" -q verify --bmap "$im/A.img.bmap" "$im/A.img" "$c" || fail "z-1 does not hold A"
detach_loop "$d"

# 2. Replaced (rename) under a running job.
hold A
insert_held z-2
d2=$LOOP_DEV c2=$CARD
use B
faults=$((faults + 1))
release
wait_for "$db" "select outcome from jobs where serial='z-2.img'" success 20 || fail "z-2: $(q "$db" "select outcome, error from jobs where serial='z-2.img'")"
"$BMAPTOOL" -q verify --bmap "$im/A.img.bmap" "$im/A.img" "$c2" || fail "z-2 does not hold A (what it opened)"

# 3. The next card: B, from an entry of its own, verified against B's bmap.
c=$(make_card z-3.img 40M)
insert_card "$c"
d3=$LOOP_DEV
wait_for "$db" "select outcome from jobs where serial='z-3.img'" success || fail "z-3"
"$BMAPTOOL" -q verify --bmap "$im/B.img.bmap" "$im/B.img" "$c" || fail "z-3 does not hold B"
[[ $(q "$db" "select bmap_sha256 from jobs where serial='z-3.img'") == "$(sha256sum <"$im/B.img.bmap" | cut -c1-64)" ]] ||
	fail "z-3's row does not name B's bmap"
[[ $(grep -c "cache built" "$TEST_TMP/station.log") == 2 && -e $cache/$(key B).img ]] ||
	fail "B did not get a cache entry of its own: $(grep cache "$TEST_TMP/station.log")"
detach_loop "$d2"
detach_loop "$d3"

# 4. Rewritten in place (same inode) under a running job that has no entry.
use C
hold C
insert_held z-4
d4=$LOOP_DEV
cat "$im/A.img.zst" >"$im/cur.img.zst"
faults=$((faults + 1))
release
wait_for "$db" "select outcome in ('failed','verify_failed') from jobs where serial='z-4.img'" 1 20 ||
	fail "z-4 did not fail: $(q "$db" "select outcome, error from jobs where serial='z-4.img'")"
err=$(q "$db" "select error from jobs where serial='z-4.img'")
[[ $err == *cur.img.zst* ]] || fail "z-4's error does not name the image: $err"
log "4: in-place rewrite under a job: $(outcome z-4): $err"
# (HELD_KEY: C's entry, named when it was taken, before the rewrite.)
[[ -e $cache/$HELD_KEY.img ]] && fail "a cache entry was made of mixed content"
station_alive
detach_loop "$d4"

# 5. Deleted under a running job (B has an entry), then a new card.
use B
hold B
insert_held z-5
d5=$LOOP_DEV c5=$CARD
rm -f "$im/cur.img.zst" "$im/cur.img.bmap"
faults=$((faults + 1))
release
wait_for "$db" "select outcome from jobs where serial='z-5.img'" success 20 || fail "z-5: $(q "$db" "select outcome, error from jobs where serial='z-5.img'")"
"$BMAPTOOL" -q verify --bmap "$im/B.img.bmap" "$im/B.img" "$c5" || fail "z-5 does not hold B"
c=$(make_card z-6.img 40M)
sum6=$(sha256sum <"$c")
insert_card "$c"
d6=$LOOP_DEV
wait_for "$db" "select outcome from jobs where serial='z-6.img'" failed || fail "z-6 was not failed"
err=$(q "$db" "select error from jobs where serial='z-6.img'")
[[ $err == *"cur.img.zst"*"No such file"* ]] || fail "z-6's error: $err"
grep -q "z-6.img.*started" "$TEST_TMP/station.log" && fail "a worker was started for a missing image"
[[ $(sha256sum <"$c") == "$sum6" ]] || fail "z-6 was written"
log "5: deleted image: $(outcome z-6): $err"
station_alive
stop_station
detach_loop "$d5"
detach_loop "$d6"

# Records lost = 0.
started=$(grep -oE 'job [0-9]+ started' "$TEST_TMP/station.log" | sort -u | wc -l)
rows=$(q "$db" "select count(*) from jobs where serial like 'z-%' and outcome not in ('running','ignored','refused')")
[[ $started == 5 && $rows == 6 ]] || fail "jobs started (log): $started (want 5), rows with an outcome: $rows (want 6)"
[[ $(q "$db" "select count(*) from jobs where outcome='running'") == 0 ]] || fail "a row stays running"
[[ $(q "$db" "pragma integrity_check") == ok ]] || fail "integrity_check"
log "ok: faults $faults (image replaced, rewritten in place, deleted under running jobs), rows checked $(q "$db" "select count(*) from jobs"), jobs started $started, records lost 0"
