#!/bin/bash
# Soak: CYCLES (default 200) insert/remove cycles of four cards, with the
# daemon as a real process, a real systemd-udevd and loop devices as cards.
# Each cycle attaches four cards, waits until their four jobs ended and their
# on_success hooks ran, detaches them and waits until the station saw them go
# (live view empty, on_remove hooks ran). Then:
#  - every cycle is recorded: exactly 4*CYCLES job rows, all 'success', one
#    per (device, DISKSEQ), CYCLES per card; 8*CYCLES hook rows, all exit 0
#  - no growth between the end of the warm-up cycle and the last cycle in
#    the daemon's open fds or child processes (equal counts), nor in its
#    memory beyond the journal's growth plus MEM_SLACK_KB (see below)
# Figures go to the test's output: cycles, seconds, fds/children/RSS/VmData
# after the warm-up, at mid-run and at the end.
# Environment: CYCLES (200), WARMUP (10; at most CYCLES/2), MEM_SLACK_KB (512).
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
ensure_udevd
install_test_rule

CYCLES=${CYCLES:-200}
WARMUP=${WARMUP:-10}
[[ $CYCLES =~ ^[0-9]+$ && $CYCLES -ge 2 ]] || fail "CYCLES must be a number >= 2 (got '$CYCLES')"
((WARMUP > CYCLES / 2)) && WARMUP=$((CYCLES / 2))
# Memory allowed to grow after the warm-up: SQLite's page cache fills as the
# journal grows (the file grows by about 4 KiB a cycle here), up to its
# cache_size (2000 KiB by default), and malloc keeps freed arenas. So the
# growth may be the journal's growth, at most 2000 KiB, plus MEM_SLACK_KB;
# a leak of 1 KiB per job (760 KiB over 190 cycles) goes beyond it.
MEM_SLACK_KB=${MEM_SLACK_KB:-512}

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=2M data=0:128K data=512K:256K islands=1M:16K:8:64K data=2M-4096:4096"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = {
  name = "cycles"; database = "$db"; max_workers = 4; max_device_size = "1G";
  cache_dir = "$TEST_TMP/cache";
  hooks = {
    on_success = [ "/bin/true", "%serial", "%job" ];
    on_remove = [ "/bin/true", "%serial" ];
  };
};
profiles = (
  { name = "soak"; image = "disk.img"; removable_only = false;
    match = { serial = "soak-*"; bus = "loop"; }; }
);
CONF
"$BMAP_STATION" check --config "$TEST_TMP/station.conf" >"$TEST_TMP/check.out" ||
	fail "check refused the configuration: $(cat "$TEST_TMP/check.out")"

declare -a card dev
for i in 1 2 3 4; do card[$i]=$(make_card "soak-$i.img" 8M); done

start_station "$TEST_TMP/station.conf"
for _ in $(seq 50); do
	grep -q "' running: " "$TEST_TMP/station.log" 2>/dev/null && break
	sleep 0.1
done

# until_q SQL WANT SECONDS: like wait_for, polling faster (a cycle is short).
until_q() {
	local got= end=$((SECONDS + $3))
	while ((SECONDS <= end)); do
		got=$(q "$db" "$1" 2>/dev/null)
		[[ $got == "$2" ]] && return 0
		kill -0 "$STATION_PID" 2>/dev/null || fail "the daemon died; log: $(tail -n 20 "$TEST_TMP/station.log")"
		sleep 0.02
	done
	log "waited $3s for [$1] = $2, got '$got'; station log:"
	tail -n 30 "$TEST_TMP/station.log" >&2
	return 1
}

# children PID: processes whose parent is PID (zombies included).
children() {
	local n=0 f stat
	for f in /proc/[0-9]*/stat; do
		stat=$(<"$f") 2>/dev/null || continue
		stat=${stat##*) }
		read -r _ ppid _ <<<"$stat"
		[[ $ppid == "$1" ]] && n=$((n + 1))
	done
	echo "$n"
}

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# measure LABEL: one line "LABEL fds children rss_kb vmdata_kb journal_kb".
measure() {
	printf '%s %s %s %s %s %s\n' "$1" "$(ls "/proc/$STATION_PID/fd" | wc -l)" \
		"$(children "$STATION_PID")" "$(status_kb "$STATION_PID" VmRSS)" \
		"$(status_kb "$STATION_PID" VmData)" \
		"$(q "$db" "select page_count * page_size / 1024 from pragma_page_count, pragma_page_size")"
}

mine="serial glob 'soak-*'"
# The first cycle takes four free loop devices; the next ones attach the
# same cards to the same devices, the four at once (a new DISKSEQ each time:
# a new medium for the station). The lock on the loop devices keeps other
# tests from taking them in between.
insert_four() {
	local i pids=()
	if [[ -z ${dev[1]:-} ]]; then
		for i in 1 2 3 4; do
			insert_card "${card[$i]}"
			dev[$i]=$LOOP_DEV
		done
		return
	fi
	for i in 1 2 3 4; do
		losetup "${dev[$i]}" "${card[$i]}" &
		pids+=($!)
		_LOOPS+=("${dev[$i]}")
	done
	for i in 0 1 2 3; do
		wait "${pids[$i]}" || fail "cycle $c: cannot attach ${card[$((i + 1))]} to ${dev[$((i + 1))]}"
	done
}

remove_four() {
	local i pids=()
	for i in 1 2 3 4; do
		losetup -d "${dev[$i]}" &
		pids+=($!)
	done
	for i in 0 1 2 3; do
		wait "${pids[$i]}" || fail "cycle $c: cannot detach ${dev[$((i + 1))]}"
	done
	_LOOPS=()
}

half=$(((CYCLES + WARMUP) / 2))
t0=$(date +%s.%N)
for ((c = 1; c <= CYCLES; c++)); do
	insert_four
	until_q "select count(*) from jobs where $mine and outcome <> 'running'" $((4 * c)) 60 ||
		fail "cycle $c: the four jobs did not end"
	until_q "select count(*) from hooks" $((8 * c - 4)) 30 ||
		fail "cycle $c: the on_success hooks did not run"
	remove_four
	until_q "select count(*) from live" 0 30 || fail "cycle $c: the station did not see the cards go"
	until_q "select count(*) from hooks" $((8 * c)) 30 ||
		fail "cycle $c: the on_remove hooks did not run"
	if ((c == WARMUP)); then
		warm=$(measure warm-up)
		tw=$(date +%s.%N)
	elif ((c == half)); then
		mid=$(measure mid)
	elif ((c == CYCLES)); then
		end=$(measure end)
	fi
done
t1=$(date +%s.%N)

# Every cycle recorded, once.
[[ $(q "$db" "select count(*) from jobs where $mine") == $((4 * CYCLES)) ]] ||
	fail "$(q "$db" "select count(*) from jobs where $mine") job rows, expected $((4 * CYCLES))"
# Disks present at the start (the machine's own) get an 'ignored' row.
[[ $(q "$db" "select count(*) from jobs where not ($mine) and outcome <> 'ignored'") == 0 ]] ||
	fail "rows for other devices: $(q "$db" "select devnode, serial, outcome from jobs where not ($mine)")"
[[ $(q "$db" "select count(*) from jobs where $mine and outcome = 'success'") == $((4 * CYCLES)) ]] ||
	fail "not every job succeeded: $(q "$db" "select outcome, count(*), min(error) from jobs where $mine group by outcome")"
[[ $(q "$db" "select count(distinct syspath || ' ' || diskseq) from jobs where $mine") == $((4 * CYCLES)) ]] ||
	fail "a (device, DISKSEQ) was recorded twice"
[[ $(q "$db" "select group_concat(n, ',') from (select count(*) n from jobs where $mine group by serial order by serial)") == "$CYCLES,$CYCLES,$CYCLES,$CYCLES" ]] ||
	fail "jobs per card: $(q "$db" "select serial, count(*) from jobs group by serial")"
[[ $(q "$db" "select count(*) from hooks where exit_status = 0") == $((8 * CYCLES)) ]] ||
	fail "hook runs: $(q "$db" "select event, exit_status, count(*) from hooks group by 1, 2")"
[[ $(grep -c 'serial soak-[1-4].img): inserted (' "$TEST_TMP/station.log") == $((4 * CYCLES)) ]] ||
	fail "the log has $(grep -c 'serial soak-[1-4].img): inserted (' "$TEST_TMP/station.log") insertions, expected $((4 * CYCLES))"

read -r _ wfd wch wrss wdata wdb <<<"$warm"
read -r _ mfd mch mrss mdata mdb <<<"$mid"
read -r _ efd ech erss edata edb <<<"$end"
log "$CYCLES cycles of 4 cards in $(printf '%.1f' "$(echo "$t1 - $t0" | bc)")s" \
	"($(printf '%.2f' "$(echo "($t1 - $tw) / ($CYCLES - $WARMUP)" | bc -l)")s per cycle after the warm-up);" \
	"$(q "$db" "select count(*) from jobs where $mine") job rows (expected $((4 * CYCLES))), $(q "$db" "select count(*) from hooks") hook runs"
log "after cycle $WARMUP: fds $wfd, children $wch, RSS $wrss kB, VmData $wdata kB, journal $wdb KiB"
log "after cycle $half: fds $mfd, children $mch, RSS $mrss kB, VmData $mdata kB, journal $mdb KiB"
log "after cycle $CYCLES: fds $efd, children $ech, RSS $erss kB, VmData $edata kB, journal $edb KiB"
[[ $efd == "$wfd" ]] ||
	fail "open fds grew from $wfd to $efd:" $(for f in "/proc/$STATION_PID/fd"/*; do echo "${f##*/}=$(readlink "$f")"; done)
[[ $ech == "$wch" && $ech == 0 ]] || fail "child processes: $wch after the warm-up, $ech at the end"
cache=$((edb - wdb < 2000 ? edb - wdb : 2000))
# Under ASan freed memory waits in a quarantine of up to 256 MiB (to catch
# use after free), so RSS grows by design; LeakSanitizer checks leaks there.
[[ -n ${BMAP_SANITIZERS:-} ]] && log "sanitizer build: memory growth not judged (ASan's quarantine)"
for v in "RSS $wrss $erss" "VmData $wdata $edata"; do
	[[ -n ${BMAP_SANITIZERS:-} ]] && break
	read -r what from to <<<"$v"
	((to - from <= cache + MEM_SLACK_KB)) ||
		fail "$what grew from $from kB to $to kB, more than the journal's growth ($((edb - wdb)) KiB, at most 2000 KiB cached) + $MEM_SLACK_KB kB"
done
stop_station
[[ $(q "$db" "pragma integrity_check") == ok ]] || fail "journal integrity check failed"
log "ok"
