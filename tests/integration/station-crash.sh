#!/bin/bash
# The daemon killed with SIGKILL while workers run, then started again:
#  - its workers die with it (PR_SET_PDEATHSIG): none keeps a card open or
#    writes it unrecorded once nobody can record what it does
#  - the restarted daemon closes the rows the dead one left 'running' as
#    'interrupted' (exactly one final outcome per started job, no duplicates)
#  - a card still in its reader whose job was cut is flashed again (its last
#    job was interrupted); a card that was flashed is left alone
#  - records lost = 0: every "job N started" in the log has one row with a
#    final outcome; PRAGMA integrity_check is ok
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd zstd
ensure_udevd
install_test_rule

mkdir -p "$TEST_TMP/images"
img=$TEST_TMP/images/disk.img
mk_image_bmap "$img" "size=48M data=0:1M data=3M:20M islands=30M:64K:20:256K" zst
db=$TEST_TMP/journal.db
# Two stalling images (FIFOs fed a little, then nothing): their jobs run
# until something ends them.
for s in a b; do mkfifo "$TEST_TMP/images/stall-$s.img.zst"; done

cat >"$TEST_TMP/station.conf" <<CONF
station = {
  name = "crash";
  database = "$db";
  cache_dir = "$TEST_TMP/cache";
  max_workers = 4;
  require_tag = "bmap-station";
  max_device_size = "1G";
};
profiles = (
  { name = "fast"; image = "images/disk.img.zst"; bmap = "images/disk.img.bmap";
    removable_only = false; verify = "readback"; match = { serial = "card-*"; }; },
  { name = "stall-a"; image = "images/stall-a.img.zst"; bmap = "images/disk.img.bmap";
    removable_only = false; verify = "readback"; match = { serial = "stall-a*"; }; },
  { name = "stall-b"; image = "images/stall-b.img.zst"; bmap = "images/disk.img.bmap";
    removable_only = false; verify = "readback"; match = { serial = "stall-b*"; }; }
);
CONF

# gone PID: the process does not exist any more (or is a zombie nobody reaped).
gone() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
	[[ -z $st || $st == Z* ]]
}

start_station "$TEST_TMP/station.conf"
station_ready "$db"

card=$(make_card card-1.img 64M)
insert_card "$card"
card_dev=$LOOP_DEV
wait_for "$db" "select outcome from jobs where serial='card-1.img'" success || fail "card-1 was not flashed"

declare -A feeder sdev scard
for s in a b; do
	{ head -c 200000 "$img.zst"; exec sleep 120; } >"$TEST_TMP/images/stall-$s.img.zst" 2>/dev/null &
	feeder[$s]=$!
	on_exit "kill ${feeder[$s]} 2>/dev/null"
	scard[$s]=$(make_card stall-$s.img 64M)
	insert_card "${scard[$s]}"
	sdev[$s]=$LOOP_DEV
done
wait_for "$db" "select count(*) from jobs where serial like 'stall-%' and outcome='running'" 2 ||
	fail "the stalling jobs did not start"
# Their workers, from the log; each holds its card open.
mapfile -t workers < <(sed -nE 's/.*stall-.*job [0-9]+ started \(worker ([0-9]+)\).*/\1/p' "$TEST_TMP/station.log")
[[ ${#workers[@]} == 2 ]] || fail "expected two workers in the log: ${workers[*]}"
for _ in $(seq 50); do
	held=0
	for s in a b; do
		for w in "${workers[@]}"; do
			ls -l "/proc/$w/fd" 2>/dev/null | grep -q " ${sdev[$s]}\$" && held=$((held + 1))
		done
	done
	[[ $held == 2 ]] && break
	sleep 0.1
done
[[ $held == 2 ]] || fail "the workers do not hold their cards open"

# SIGKILL: no chance to record anything.
kill -KILL "$STATION_PID"
wait "$STATION_PID" 2>/dev/null
STATION_PID=
t_kill=$(date +%s.%N)
for _ in $(seq 30); do
	gone "${workers[0]}" && gone "${workers[1]}" && break
	sleep 0.1
done
for w in "${workers[@]}"; do
	gone "$w" || fail "worker $w outlived the killed station (it would write a card nobody records)"
done
log "workers gone $(echo "$(date +%s.%N) - $t_kill" | bc)s after the station's SIGKILL"
[[ $(q "$db" "select count(*) from jobs where outcome='running'") == 2 ]] ||
	fail "the dead station's rows: $(q "$db" "select serial, outcome from jobs")"
for s in a b; do kill "${feeder[$s]}" 2>/dev/null; wait "${feeder[$s]}" 2>/dev/null; done

# The images are there now (a regular file in place of each FIFO).
for s in a b; do
	rm -f "$TEST_TMP/images/stall-$s.img.zst"
	cp "$img.zst" "$TEST_TMP/images/stall-$s.img.zst"
done

# The restart: the cut jobs become 'interrupted', and their cards, still
# in place, are flashed again; card-1 (flashed) is left alone.
start_station "$TEST_TMP/station.conf"
wait_for "$db" "select count(*) from jobs where serial like 'stall-%' and outcome='success'" 2 ||
	fail "the interrupted cards were not flashed again after the restart"
grep -q "2 job(s) left running by an earlier run marked interrupted" "$TEST_TMP/station.log" ||
	fail "the restart did not say it closed the dead run's jobs"
for s in a b; do
	[[ $(q "$db" "select group_concat(outcome, ',') from (select outcome from jobs where serial='stall-$s.img' order by job)") == interrupted,success ]] ||
		fail "stall-$s rows: $(q "$db" "select job, outcome, error from jobs where serial='stall-$s.img'")"
	"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "${scard[$s]}" || fail "stall-$s does not hold the image"
done
[[ $(q "$db" "select count(*) from jobs where serial='card-1.img'") == 1 ]] ||
	fail "card-1 (flashed before the crash) was flashed again"

# Killed again, this time between jobs, and started: nothing changes.
kill -KILL "$STATION_PID"
wait "$STATION_PID" 2>/dev/null
STATION_PID=
start_station "$TEST_TMP/station.conf"
sleep 2
stop_station

# Records lost = 0.
started=$(grep -oE 'job [0-9]+ started' "$TEST_TMP/station.log" | sort -u | wc -l)
rows=$(q "$db" "select count(*) from jobs where outcome not in ('running','ignored','refused')")
[[ $started == 5 && $rows == 5 ]] || fail "jobs started (log): $started, rows with an outcome: $rows (want 5 and 5)"
[[ $(q "$db" "select count(*) from jobs where outcome='running'") == 0 ]] || fail "a row stays running"
[[ $(q "$db" "select count(*) from (select syspath, diskseq, outcome from jobs group by 1, 2, 3 having count(*) > 1)") == 0 ]] ||
	fail "duplicate rows: $(q "$db" "select job, serial, diskseq, outcome from jobs")"
[[ $(q "$db" "pragma integrity_check") == ok ]] || fail "integrity_check"
for s in a b; do detach_loop "${sdev[$s]}"; done
detach_loop "$card_dev"
log "ok: faults 2 (SIGKILL mid-job with 2 workers, SIGKILL idle), rows checked $(q "$db" "select count(*) from jobs"), jobs started $started, records lost $((started - rows))"
