#!/bin/bash
# Regression (issue 10, item 3): the image cache's temp files leaked until
# the disk was full. A fill killed (SIGKILL, OOM, a power cut) left its
# KEY.part, with its KEY.fill and KEY.lock; versions before the filler left
# KEY.img.tmp.PID; nothing removed them at the station's start, and a part
# being filled counted only the bytes filled so far, so two fills together
# could pass cache_max_size. Now:
#  - at the start, stale files are removed (and the log says how many):
#    old temp files, parts whose filler is dead, state files of keys that
#    have neither entry nor part; a complete entry stays;
#  - a part being filled counts at the size it will have: a second image
#    that does not fit beside it is copied without the cache;
#  - a fill killed with SIGKILL leaves a part that the next eviction
#    removes (with an old temp file that appeared meanwhile);
#  - after another killed fill and a restart, nothing stale is left.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/fill.sh"
need_station_env
need_ours
need_cmd bzip2
need_cmd zstd
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_slow_bz2 "$im/one.img" 40                          # 31 MiB mapped, slow to fill
mk_image_bmap "$im/two.img" "size=16M data=0:8M" zst # 8 MiB mapped
key1=$(cache_key "$im/one.img.bz2" "$im/one.img.bmap")
db=$TEST_TMP/journal.db
cache=$TEST_TMP/cache
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "cache-stale"; database = "$db"; max_workers = 4;
  require_tag = "bmap-station"; max_device_size = "1G";
  cache_dir = "$cache"; cache_max_size = "36M"; cache_prefill = false; };
profiles = (
  { name = "one"; image = "$im/one.img.bz2"; bmap = "$im/one.img.bmap";
    removable_only = false; verify = "readback"; match = { serial = "a-*"; }; },
  { name = "two"; image = "$im/two.img.zst"; bmap = "$im/two.img.bmap";
    removable_only = false; verify = "readback"; match = { serial = "b-*"; }; }
);
CONF

# k LETTER: a key made of one letter.
k() { printf "$1%.0s" $(seq 64); }
# stale_in DIR: what must not be there: parts, old temp files, and state
# files of keys without a complete entry.
stale_in() {
	local f key
	for f in "$1"/*; do
		[[ -e $f ]] || continue
		key=$(basename "$f")
		key=${key:0:64}
		case $f in
		*.part | *.img.tmp.*) echo "$f" ;;
		*.fill | *.lock) [[ -e $1/$key.img ]] || echo "$f" ;;
		esac
	done
}

# Left by earlier runs: an old-format temp file, a dead fill's part with
# its state and lock, a state and lock without entry, a complete entry.
mkdir -p "$cache"
pattern 1 4M >"$cache/$(k a).img.tmp.4242"
pattern 2 2M >"$cache/$(k b).part"
head -c 4096 /dev/zero >"$cache/$(k b).fill"
: >"$cache/$(k b).lock"
head -c 4096 /dev/zero >"$cache/$(k c).fill"
: >"$cache/$(k c).lock"
pattern 3 1M >"$cache/$(k d).img"
: >"$cache/$(k d).lock"
head -c 4096 /dev/zero >"$cache/$(k d).fill"

start_station "$TEST_TMP/station.conf"
station_ready "$db"
grep -q "image cache '$cache': removed 6 stale file(s)" "$TEST_TMP/station.log" ||
	fail "the start did not remove the six stale files: $(grep -i cache "$TEST_TMP/station.log"; ls -l "$cache")"
[[ -z $(stale_in "$cache") ]] || fail "stale files after the start: $(stale_in "$cache")"
[[ -e $cache/$(k d).img ]] || fail "the start removed a complete entry"

# A fill that has hardly begun (its filler stopped) counts at its full size.
card=$(make_card a-1.img 48M)
insert_card "$card"
dev_a1=$LOOP_DEV
filler_of a-1.img
filler=$FILLER
[[ -n $filler ]] || fail "card a-1's worker forked no filler"
kill_ours STOP "$filler"
on_exit "kill_ours KILL $filler"
filled=$(($(stat -c %b "$cache/$key1.part") * 512))
log "the fill of one.img stopped with $filled bytes filled"
card=$(make_card b-1.img 48M)
insert_card "$card"
wait_for "$db" "select outcome from jobs where serial='b-1.img'" success 60 ||
	fail "b-1: $(q "$db" "select outcome, error from jobs where serial='b-1.img'")"
grep -q "b-1.img.*cache not used: no room in the image cache .*(cache_max_size)" "$TEST_TMP/station.log" ||
	fail "two.img was cached beside a fill that leaves no room for it: $(grep b-1.img "$TEST_TMP/station.log")"

# The filler killed: its part stays until the next eviction.
kill_ours KILL "$filler"
wait_for "$db" "select outcome from jobs where serial='a-1.img'" failed 30 ||
	fail "a-1: $(q "$db" "select outcome, error from jobs where serial='a-1.img'")"
[[ -e $cache/$key1.part ]] || fail "the killed fill left no part (the test needs one)"
pattern 4 1M >"$cache/$(k e).img.tmp.77"
detach_loop "$dev_a1"
card=$(make_card b-2.img 48M)
insert_card "$card"
wait_for "$db" "select outcome from jobs where serial='b-2.img'" success 60 ||
	fail "b-2: $(q "$db" "select outcome, error from jobs where serial='b-2.img'")"
grep -q "b-2.img.*cache built" "$TEST_TMP/station.log" ||
	fail "b-2 did not fill the cache: $(grep b-2.img "$TEST_TMP/station.log")"
[[ -e $cache/$key1.part ]] && fail "the eviction left the killed fill's part"
[[ -e $cache/$(k e).img.tmp.77 ]] && fail "the eviction left an old temp file"

# Another fill killed, then a restart.
card=$(make_card a-2.img 48M)
insert_card "$card"
filler_of a-2.img
filler=$FILLER
[[ -n $filler ]] || fail "card a-2's worker forked no filler"
kill_ours KILL "$filler"
wait_for "$db" "select outcome from jobs where serial='a-2.img'" failed 30 ||
	fail "a-2: $(q "$db" "select outcome, error from jobs where serial='a-2.img'")"
stop_station
[[ -e $cache/$key1.part ]] || fail "the second killed fill left no part (the test needs one)"
start_station "$TEST_TMP/station.conf"
for _ in $(seq 50); do
	[[ $(grep -c "image cache '$cache': removed" "$TEST_TMP/station.log") == 2 ]] && break
	sleep 0.1
done
grep "image cache '$cache': removed 3 stale file(s)" "$TEST_TMP/station.log" ||
	fail "the restart did not remove the killed fill's part, state and lock: $(ls -l "$cache")"
[[ -z $(stale_in "$cache") ]] || fail "stale files after the restart: $(stale_in "$cache")"
log "ok: stale parts, old temp files and orphaned state removed at the start and in eviction; parts count at their full size"
