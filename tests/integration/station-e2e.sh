#!/bin/bash
# The station end to end, with real parts: systemd-udevd, a test udev rule,
# loop devices as cards, the daemon as a process, its SQLite journal.
#  - four cards inserted at different moments are flashed in parallel from a
#    zstd image and verified by read-back; their bytes checked against the image
#  - two profiles chosen by serial pattern and size
#  - a card too small is refused and recorded
#  - a card matching no profile is ignored and its bytes are unchanged
#  - a card pulled mid-copy ends 'removed' while the others finish
#  - SIGHUP reloads the configuration without touching running jobs; a job
#    over its job_timeout ends 'timeout'
#  - the daemon stopped mid-job records 'interrupted' for the cut job, and
#    after a restart every other row is still there
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/throttle.sh"
need_station_env
need_ours
need_cmd zstd
need_cmd bc
need_cmd sgdisk
throttle_init
ensure_udevd
install_test_rule

img=$TEST_TMP/images/disk.img
mkdir -p "$TEST_TMP/images"
mk_sparse_image "$img" "size=100M data=0:1M data=3M:40M islands=50M:64K:30:256K zero=60M:1M data=64M:30M+512"
sgdisk -o -n 1:2048:0 "$img" >/dev/null || fail "sgdisk"
"$BMAPTOOL" -q create -o "$TEST_TMP/images/disk.img.bmap" "$img" || fail "create"
zstd -q -T2 "$img" -o "$img.zst" || fail "zstd"
db=$TEST_TMP/journal.db
fifo=$TEST_TMP/images/slow.img.zst
mkfifo "$fifo"

cat >"$TEST_TMP/station.conf" <<CONF
station = {
  name = "test-line";
  database = "$db";
  max_workers = 4;
  require_tag = "bmap-station";
  max_device_size = "1G";
  cache_dir = "$TEST_TMP/cache";
  cache_prefill = false; # counts the cache's fills by its cards
};
profiles = (
  { name = "small-cards"; image = "images/disk.img.zst"; removable_only = false;
    match = { serial = "card-*"; bus = "loop"; max_size = "150M"; }; },
  { name = "big-cards"; image = "images/disk.img.zst"; bmap = "images/disk.img.bmap";
    removable_only = false; verify = "readback";
    match = { serial = "card-*"; min_size = "150M"; }; },
  { name = "slow"; image = "images/slow.img.zst"; bmap = "images/disk.img.bmap";
    removable_only = false; match = { serial = "slow-*"; }; },
  { name = "stall"; image = "images/stall.img.zst"; bmap = "images/disk.img.bmap";
    removable_only = false; match = { serial = "stall-*"; }; }
);
CONF
"$BMAP_STATION" check --config "$TEST_TMP/station.conf" >"$TEST_TMP/check.out" ||
	fail "check refused the configuration: $(cat "$TEST_TMP/check.out")"

# In the cgroup: the four cards below have a card's speed (the others none).
start_station "$TEST_TMP/station.conf" throttled
sleep 0.5

# One card alone first, to compare with four.
declare -a card
card[1]=$(make_card card-1.img 112M)
t0=$(date +%s.%N)
insert_card "${card[1]}"
dev1=$LOOP_DEV
wait_for "$db" "select count(*) from jobs where serial='card-1.img' and outcome='success'" 1 ||
	fail "card-1 was not flashed"
t1=$(date +%s.%N)
detach_loop "$dev1"

# Four cards at different moments.
for i in 2 3 4 5; do card[$i]=$(make_card card-$i.img 112M); done
t2=$(date +%s.%N)
declare -a cdev
# At 64 MiB/s each job takes about a second, so the four must overlap
# (RAM cards copy from a complete cache entry in 0.07 s: faster than the
# insertions' gaps, they overlapped only on a slow machine).
for i in 2 3 4 5; do
	attach_card_at_speed "${card[$i]}" 64M 0
	cdev[$i]=$LOOP_DEV
	sleep 0.1
done
wait_for "$db" "select count(*) from jobs where serial in ('card-2.img','card-3.img','card-4.img','card-5.img') and outcome='success'" 4 ||
	fail "four cards were not all flashed"
t3=$(date +%s.%N)
log "one card: $(echo "$t1 - $t0" | bc)s; four cards: $(echo "$t3 - $t2" | bc)s (inserted 0.1s apart)"
# Five cards from one zstd image: decompressed once, into the cache.
[[ $(grep -c "cache built" "$TEST_TMP/station.log") == 1 && $(grep -c "cache used" "$TEST_TMP/station.log") == 4 ]] ||
	fail "the cache was not built once and used four times: $(grep cache "$TEST_TMP/station.log")"
[[ $(ls "$TEST_TMP/cache"/*.img | wc -l) == 1 ]] || fail "cache entries: $(ls "$TEST_TMP/cache")"

# Their bytes: the image's mapped data, checked through the backing files.
for i in 1 2 3 4 5; do
	"$BMAPTOOL" -q verify --bmap "$TEST_TMP/images/disk.img.bmap" "$img" "${card[$i]}" ||
		fail "card-$i does not hold the image"
done
# The four ran in parallel: their jobs overlap in time.
overlap=$(q "$db" "select count(*) from jobs a join jobs b on a.job < b.job
	where a.serial in ('card-2.img','card-3.img','card-4.img','card-5.img')
	  and b.serial in ('card-2.img','card-3.img','card-4.img','card-5.img')
	  and a.started < b.finished and b.started < a.finished")
[[ $overlap -ge 1 ]] || fail "the four jobs did not overlap: $(q "$db" "select serial, started, finished from jobs")"
# One digest for every card of a profile, written and read back alike.
[[ $(q "$db" "select count(distinct data_sha256) || '/' || count(distinct readback_sha256) from jobs where outcome='success' and profile='small-cards'") == 1/1 ]] ||
	fail "digests differ between cards"
[[ $(q "$db" "select count(*) from jobs where outcome='success' and data_sha256 is not readback_sha256") == 0 ]] ||
	fail "a card's read-back digest differs from what was written"
# What each card held before and after, as libblkid saw it.
[[ $(q "$db" "select content_before || ' / ' || substr(content_after, 1, 3) from jobs where serial='card-2.img'") == "none / gpt" ]] ||
	fail "content before/after: $(q "$db" "select content_before, content_after from jobs where serial='card-2.img'")"
# Unmapped blocks keep the card's old content (0xA5).
[[ $(dd if="${card[2]}" bs=1 skip=$((2 * 1024 * 1024)) count=4 status=none | od -An -tx1 | tr -d ' ') == a5a5a5a5 ]] ||
	fail "an unmapped block of card-2 was written"

# Few loop devices at a time: card-2 stays (the restart below must leave it alone).
for i in 3 4 5; do detach_loop "${cdev[$i]}"; done

# A card whose image stalls (it arrives through a FIFO): its job keeps
# running while the next cards come and go.
slow1=$(make_card slow-1.img 112M)
{ head -c 300000 "$img.zst"; exec sleep 60; } >"$fifo" 2>/dev/null &
feeder=$!
on_exit "kill $feeder 2>/dev/null"
insert_card "$slow1"
slow_dev=$LOOP_DEV
wait_for "$db" "select outcome from jobs where serial='slow-1.img'" running || fail "slow job did not start"

# A changed image file (recompressed: other bytes, same data) gets a cache
# entry of its own.
zstd -q -f -1 "$img" -o "$img.zst" || fail "zstd -1"

# Two profiles by size; a card too small; a card no profile wants.
big=$(make_card card-big.img 160M)
tiny=$(make_card card-tiny.img 16M)
other=$(make_card other-1.img 64M)
sum_before=$(sha256sum <"$other")
insert_card "$big"
big_dev=$LOOP_DEV
insert_card "$tiny"
tiny_dev=$LOOP_DEV
insert_card "$other"
other_dev=$LOOP_DEV
wait_for "$db" "select outcome || ' ' || profile from jobs where serial='card-big.img'" "success big-cards" ||
	fail "the 160M card did not get profile big-cards"
wait_for "$db" "select outcome from jobs where serial='card-tiny.img'" refused ||
	fail "the tiny card was not refused"
q "$db" "select error from jobs where serial='card-tiny.img'" | grep -q "too small" ||
	fail "the tiny card's refusal does not say why"
wait_for "$db" "select outcome from jobs where serial='other-1.img'" ignored ||
	fail "the other card was not ignored"
[[ $(sha256sum <"$other") == "$sum_before" ]] || fail "the ignored card was modified"
for d in "$big_dev" "$tiny_dev" "$other_dev"; do detach_loop "$d"; done
[[ $(grep -c "cache built" "$TEST_TMP/station.log") == 2 ]] ||
	fail "the changed image did not get a new cache entry: $(grep cache "$TEST_TMP/station.log")"

# SIGHUP: a new job_timeout applies to new jobs; the running one keeps its own.
sed -i 's/max_device_size = "1G";/max_device_size = "1G"; job_timeout = 2;/' "$TEST_TMP/station.conf"
kill -HUP "$STATION_PID"
for _ in $(seq 50); do grep -q "configuration reloaded" "$TEST_TMP/station.log" && break; sleep 0.1; done
grep -q "configuration reloaded" "$TEST_TMP/station.log" || fail "SIGHUP did not reload the configuration"
fifo2=$TEST_TMP/images/stall.img.zst
mkfifo "$fifo2"
{ head -c 300000 "$img.zst"; exec sleep 60; } >"$fifo2" 2>/dev/null &
feeder2=$!
on_exit "kill $feeder2 2>/dev/null"
stall=$(make_card stall-1.img 112M)
insert_card "$stall"
stall_dev=$LOOP_DEV
wait_for "$db" "select outcome from jobs where serial='stall-1.img'" timeout 20 ||
	fail "the stalled job did not time out"
[[ $(q "$db" "select outcome from jobs where serial='slow-1.img'") == running ]] ||
	fail "the reload touched the job that was running"
kill "$feeder2" 2>/dev/null
wait "$feeder2" 2>/dev/null
detach_loop "$stall_dev"
# Back to the generous default for what follows.
sed -i 's/ job_timeout = 2;//' "$TEST_TMP/station.conf"
kill -HUP "$STATION_PID"
for _ in $(seq 50); do
	[[ $(grep -c "configuration reloaded" "$TEST_TMP/station.log") -ge 2 ]] && break
	sleep 0.1
done
[[ $(grep -c "configuration reloaded" "$TEST_TMP/station.log") -ge 2 ]] || fail "the second SIGHUP did not reload"

# The slow card pulled mid-copy: 'removed', while the others finished.
pull_card "$slow_dev" "$slow1"
wait_for "$db" "select outcome from jobs where serial='slow-1.img'" removed 20 ||
	fail "the pulled card did not end 'removed'"
kill "$feeder" 2>/dev/null
wait "$feeder" 2>/dev/null
detach_loop "$slow_dev"

# The daemon stopped mid-job, then started again.
slow2=$(make_card slow-2.img 112M)
{ head -c 300000 "$img.zst"; exec sleep 60; } >"$fifo" 2>/dev/null &
feeder=$!
on_exit "kill $feeder 2>/dev/null"
insert_card "$slow2"
slow_dev=$LOOP_DEV
wait_for "$db" "select outcome from jobs where serial='slow-2.img'" running || fail "slow job 2 did not start"
rows_before=$(q "$db" "select count(*) from jobs")
stop_station
[[ $(q "$db" "select outcome from jobs where serial='slow-2.img'") == interrupted ]] ||
	fail "the cut job is not 'interrupted': $(q "$db" "select outcome, error from jobs where serial='slow-2.img'")"
kill "$feeder" 2>/dev/null
wait "$feeder" 2>/dev/null
detach_loop "$slow_dev"
start_station "$TEST_TMP/station.conf"
sleep 2
stop_station
[[ $(q "$db" "select count(*) from jobs") -ge $rows_before ]] || fail "rows were lost across the restart"
[[ $(q "$db" "select count(*) from jobs where outcome='running'") == 0 ]] || fail "a job was left running"
[[ $(q "$db" "select count(*) from jobs where outcome='success' and profile='small-cards'") == 5 ]] ||
	fail "successful rows were lost, or cards still in place were flashed again after the restart"
[[ $(q "$db" "select count(*) from jobs where serial='card-2.img'") == 1 ]] ||
	fail "card-2 got a second job after the restart"
[[ $(q "$db" "pragma integrity_check") == ok ]] || fail "journal integrity check failed"

# The report lists them, with the CSV header the issue names.
"$BMAP_STATION" report --db "$db" --format csv >"$TEST_TMP/report.csv" || fail "report failed"
head -1 "$TEST_TMP/report.csv" |
	grep -q '^job,started,finished,slot,devnode,serial,vendor,model,size,profile,image,outcome,error,bytes_written,data_sha256,readback_sha256' ||
	fail "CSV header: $(head -1 "$TEST_TMP/report.csv")"
log "ok: $(q "$db" "select group_concat(outcome || '=' || n, ' ') from (select outcome, count(*) n from jobs group by outcome)")"
