#!/bin/bash
# The image cache is filled before any card arrives (station.cache_prefill,
# default true; issue 9: cold, xz decoding held the fast cards back): at the
# station's start and after SIGHUP, every profile whose image the cache
# serves gets its entry, by a process of the station's own.
#
#  1. start with a zstd profile, no card: the log says the prefill finished,
#     the entry is complete (KEY.img, no part) and holds the image;
#  2. a card then: its worker uses the complete entry ("cache used", not
#     built, not read while filled) and the card verifies;
#  3. SIGHUP with another image: its entry is prefilled too;
#  4. SIGHUP to a big bzip2 image, SIGTERM while it is prefilled: the
#     station ends, the filler with it (its pid gone), no part and no
#     entry left; the next start fills it anew (not taken as complete);
#  5. a card inserted during that prefill reads along its fill, and a
#     SIGHUP then stops the prefill but not its fill: the new prefill
#     follows it, the card succeeds;
#  6. two profiles in a cache with room for one: the second one's fill does
#     not evict the first one's prefilled entry (a warning says no room).
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/fill.sh"
need_station_env
need_ours
need_cmd zstd
need_cmd bzip2
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_image_bmap "$im/a.img" "size=40M data=0:6M data=9M:6M data=30M:4M" zst
mk_image_bmap "$im/b.img" "size=40M data=1M:5M data=20M:7M" zst
mk_slow_bz2 "$im/big.img" 80
db=$TEST_TMP/journal.db
cache=$TEST_TMP/cache
conf=$TEST_TMP/station.conf

# write_conf IMAGE: one profile "p" for IMAGE.zst or .bz2 (IMAGE.bmap).
write_conf() {
	cat >"$conf" <<-CONF
	station = { name = "prefill"; database = "$db"; max_workers = 2;
	  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$cache"; };
	profiles = (
	  { name = "p"; image = "$1"; bmap = "${1%.*}.bmap";
	    removable_only = false; verify = "readback"; match = { serial = "pf-*"; }; }
	);
	CONF
}

# wait_log PATTERN N [SECONDS]: waits until the station's log has N lines
# matching PATTERN (extended regex).
wait_log() {
	local t=${3:-60}
	for _ in $(seq $((t * 10))); do
		(($(grep -cE "$1" "$TEST_TMP/station.log") >= $2)) && return 0
		station_alive
		sleep 0.1
	done
	log "waited ${t}s for $2 line(s) of '$1'; station log:"
	tail -n 30 "$TEST_TMP/station.log" >&2
	return 1
}

# entry_ok KEY IMG: KEY.img is complete, no part, and holds IMG's data.
entry_ok() {
	[[ -f $cache/$1.img ]] || fail "no complete entry $1.img: $(ls -l "$cache")"
	[[ ! -e $cache/$1.part ]] || fail "a part $1.part is left: $(ls -l "$cache")"
	"$BMAPTOOL" -q verify --bmap "$2.bmap" "$2" "$cache/$1.img" ||
		fail "the entry $1.img does not hold $2"
}

# 1. prefilled at the start, no card inserted.
write_conf "$im/a.img.zst"
start_station "$conf"
station_ready "$db"
wait_log "image cache prefill finished" 1 ||
	fail "the prefill did not finish (no card was inserted)"
grep -q "image cache prefill: profile p: '.*' complete in" "$TEST_TMP/station.log" ||
	fail "the log does not say profile p's entry was filled: $(grep prefill "$TEST_TMP/station.log")"
ka=$(cache_key "$im/a.img.zst" "$im/a.img.bmap")
entry_ok "$ka" "$im/a.img"
[[ $(q "$db" "select count(*) from jobs") == 0 ]] || fail "a job ran without a card"
log "prefilled at the start: $ka.img"

# 2. a card is written from the complete entry.
card=$(make_card "pf-1.img" 64M)
insert_card "$card"
wait_for "$db" "select count(*) from jobs where outcome = 'success'" 1 60 ||
	fail "the card failed: $(q "$db" "select outcome, error from jobs")"
grep -q "pf-1.*cache used: $cache/$ka.img\$" "$TEST_TMP/station.log" ||
	fail "the card's worker did not use the complete entry: $(grep -E 'pf-1.*cache' "$TEST_TMP/station.log")"
grep -qE "pf-1.*cache built" "$TEST_TMP/station.log" && fail "the card's worker filled the cache itself"
"$BMAPTOOL" -q verify --bmap "$im/a.img.bmap" "$im/a.img" "$card" || fail "the card does not hold a.img"
detach_loop "$LOOP_DEV"
log "the card was written from the prefilled entry"

# 3. SIGHUP with another image: prefilled too, the first entry left alone.
write_conf "$im/b.img.zst"
kill -HUP "$STATION_PID"
wait_log "image cache prefill finished" 2 || fail "no prefill after SIGHUP"
kb=$(cache_key "$im/b.img.zst" "$im/b.img.bmap")
entry_ok "$kb" "$im/b.img"
entry_ok "$ka" "$im/a.img"
log "SIGHUP: the new image's entry $kb.img prefilled"

# 4. SIGTERM while a big image is prefilled.
write_conf "$im/big.img.bz2"
kbig=$(cache_key "$im/big.img.bz2" "$im/big.img.bmap")
kill -HUP "$STATION_PID"
wait_log "image cache prefill started" 3 || fail "no prefill for the big image"
pf=$(sed -nE 's/.*image cache prefill started \(pid ([0-9]+)\).*/\1/p' "$TEST_TMP/station.log" | tail -n 1)
filler=
for _ in $(seq 100); do
	filler=$(children_of "$pf")
	[[ -n $filler && -e $cache/$kbig.part ]] && break
	sleep 0.05
done
[[ -n $filler && -e $cache/$kbig.part ]] || fail "the prefill $pf forked no filler for the big image"
for _ in $(seq 100); do
	(($(stat -c %b "$cache/$kbig.part" 2>/dev/null || echo 0) * 512 >= 4 << 20)) && break
	sleep 0.05
done
[[ -e $cache/$kbig.part ]] || fail "the big image's fill ended before the test could stop the station"
on_exit "kill_ours KILL $filler; kill_ours KILL $pf"
kill -TERM "$STATION_PID"
for _ in $(seq 100); do
	kill -0 "$STATION_PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$STATION_PID" 2>/dev/null && fail "the station did not stop within 10 s of SIGTERM during a prefill"
wait "$STATION_PID" 2>/dev/null
STATION_PID=
proc_alive "$filler" && fail "the prefill's filler $filler outlived the stopped station"
proc_alive "$pf" && fail "the prefill $pf outlived the stopped station"
[[ -e $cache/$kbig.part ]] && fail "the stopped fill left its part"
[[ -e $cache/$kbig.img ]] && fail "the stopped fill left an entry named complete"
grep -q "image cache prefill (pid $pf) stopped: the station stops" "$TEST_TMP/station.log" ||
	fail "the log does not say the prefill was stopped"
log "SIGTERM during the prefill: filler $filler gone, no part, no entry"

# 5. The next start fills it anew; a card reads along, a SIGHUP comes.
start_station "$conf"
wait_log "image cache prefill: profile p: filling '$cache/$kbig.part'" 2 ||
	fail "the restart did not fill the big image's entry anew"
pf=$(sed -nE 's/.*image cache prefill started \(pid ([0-9]+)\).*/\1/p' "$TEST_TMP/station.log" | tail -n 1)
card2=$(make_card "pf-2.img" 96M)
insert_card "$card2"
wait_log "pf-2.*cache used: $cache/$kbig.part \(read while it is filled\)" 1 ||
	fail "the card inserted during the prefill did not read along its fill"
filler=$(children_of "$pf")
[[ -n $filler ]] || fail "the prefill $pf has no filler any more: the fill ended before the SIGHUP"
kill -HUP "$STATION_PID"
wait_log "image cache prefill \(pid $pf\) stopped for the new configuration" 1 ||
	fail "SIGHUP did not stop the running prefill"
wait_log "image cache prefill: profile p: following the fill of '$cache/$kbig.part'" 1 ||
	fail "the new prefill did not follow the fill under way"
wait_log "image cache prefill finished" 3 120 || fail "the new prefill did not finish"
wait_for "$db" "select count(*) from jobs where serial = 'pf-2.img' and outcome = 'success'" 1 60 ||
	fail "the card reading along the fill failed: $(q "$db" "select outcome, error from jobs where serial = 'pf-2.img'")"
grep -q "image cache prefill: profile p: '$cache/$kbig.img' complete in" "$TEST_TMP/station.log" ||
	fail "the new prefill does not say the entry is complete"
entry_ok "$kbig" "$im/big.img"
"$BMAPTOOL" -q verify --bmap "$im/big.img.bmap" "$im/big.img" "$card2" || fail "the card does not hold big.img"

# 6. Room for one entry of two.
stop_station
cache2=$TEST_TMP/cache2
cat >"$conf" <<CONF
station = { name = "prefill"; database = "$db"; max_workers = 2;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$cache2"; cache_max_size = "20M"; };
profiles = (
  { name = "a"; image = "$im/a.img.zst"; bmap = "$im/a.img.bmap";
    removable_only = false; match = { serial = "pfa-*"; }; },
  { name = "b"; image = "$im/b.img.zst"; bmap = "$im/b.img.bmap";
    removable_only = false; match = { serial = "pfb-*"; }; }
);
CONF
start_station "$conf"
wait_log "image cache prefill finished" 4 || fail "no prefill with two profiles"
grep -q "image cache prefill finished .*some profiles failed" "$TEST_TMP/station.log" ||
	fail "the prefill does not say a profile failed"
grep -q "image cache prefill: profile b: failed: no room in the image cache .*cache2. (cache_max_size)" "$TEST_TMP/station.log" ||
	fail "no warning that b's entry has no room: $(grep 'profile b' "$TEST_TMP/station.log")"
cache=$cache2
entry_ok "$ka" "$im/a.img"
[[ -e $cache2/$kb.img || -e $cache2/$kb.part ]] && fail "b's entry was made beyond cache_max_size"
log "room for one: a's prefilled entry kept, b refused with a warning"
log "ok: prefilled at start and SIGHUP, used by the cards (complete, and read along), stopped cleanly with the station, a fill under way kept at SIGHUP"
