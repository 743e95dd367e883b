#!/bin/bash
# Fast swaps were dropped (issue 10, item 8): a change event with a new
# DISKSEQ was ignored while the disk's card waited or was being written, so
# the card that went was later refused ("the medium changed") and the one put
# in its place was never flashed. A new DISKSEQ is a new card: the running
# job ends 'removed' (its worker stopped), the waiting card is recorded
# 'removed' before its job started, and the new medium is queued and
# flashed (once the old worker let go of the disk).
#
# A loop device cannot change its medium while a worker holds it open (a
# detach waits for the last close: AUTOCLEAR; an attach meanwhile gets
# EBUSY), so the running jobs are held before their worker opens the disk:
# the test holds the image cache entry's lock, which every worker takes
# first. max_workers = 1, verify = checksums (a job that could span two
# media and still pass its checks). Three swaps, each a detach and an attach
# of another file on the same loop device (two DISKSEQs up):
#  1. the daemon stopped (SIGSTOP) while a running and a waiting card are
#     both swapped, so that it reads the events of the swaps in one go, as
#     it does when its loop is busy: the medium in the disk is already the
#     new one when it reads the events of the old one going
#  2. a running card swapped while the daemon runs: it sees the old medium
#     go (size 0) and the new one come, before or after its stopped worker
#     ended, as the timing falls
#  3. a running card swapped while udevd holds back every event (udevadm
#     control --stop-exec-queue), as udevd does for a disk a worker keeps
#     locked: the daemon sees the disk's DISKSEQ change by itself
# Environment: ROUNDS (default "1 2 3"), the swaps to make.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd zstd
need_cmd flock
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=3M:2M" zst
db=$TEST_TMP/journal.db
cache=$TEST_TMP/cache
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "fast-swap"; database = "$db"; max_workers = 1; max_device_size = "1G";
            require_tag = "bmap-station"; cache_dir = "$cache"; job_timeout = 120; };
profiles = (
  { name = "z"; image = "disk.img.zst"; bmap = "disk.img.bmap"; verify = "checksums";
    removable_only = false; match = { serial = "swap-*"; }; }
);
CONF
outcome() { q "$db" "select group_concat(outcome || ': ' || ifnull(error, ''), ' / ') from jobs where serial='$1.img'"; }

# A failing test may leave the daemon stopped: it gets SIGCONT before
# stop_station's SIGTERM.
on_exit '[[ -n ${STATION_PID:-} ]] && kill -CONT "$STATION_PID" 2>/dev/null'
start_station "$TEST_TMP/station.conf"
station_ready "$db"
mkdir -p "$cache"
lock=$cache/$(cache_key "$img.zst" "$img.bmap").lock

# hold / let_go: the cache entry's lock, held exclusively by the test.
hold() { exec 8>>"$lock" && flock -x 8 || fail "cannot lock $lock"; }
let_go() { exec 8>&-; }

# at_lock NAME: waits until NAME's job runs and its worker waits for the lock.
at_lock() {
	local w=
	for _ in $(seq 200); do
		w=$(sed -nE "s/.*serial $1\.img.*job [0-9]+ started \(worker ([0-9]+)\).*/\1/p" "$TEST_TMP/station.log" | tail -1)
		[[ -n $w ]] && ls -l "/proc/$w/fd" 2>/dev/null | grep -q '\.lock$' && return 0
		sleep 0.05
	done
	fail "$1: no worker waiting at the cache lock"
}

# swap DEV NAME: NAME's file goes onto DEV in place of the one there.
swap() {
	losetup -d "$1" || fail "cannot detach $1"
	for _ in $(seq 50); do losetup "$1" "${card[$2]}" 2>/dev/null && return 0; sleep 0.05; done
	fail "cannot attach ${card[$2]} to $1"
}

ROUNDS=${ROUNDS:-1 2 3}
declare -A card
for n in a1 a2 b1 b2 c1 c2 d1 d2; do card[$n]=$(make_card "swap-$n.img" 16M); done
expected=0

# 1. Both swapped while the daemon does not read: one running, one waiting.
round1() {
	hold
	insert_card "${card[a1]}"
	dev_a=$LOOP_DEV
	at_lock swap-a1
	insert_card "${card[b1]}"
	dev_b=$LOOP_DEV
	wait_for "$db" "select state from live where serial='swap-b1.img'" waiting 20 || fail "b1 is not waiting"
	kill -STOP "$STATION_PID"
	swap "$dev_b" b2
	swap "$dev_a" a2
	udevadm settle
	kill -CONT "$STATION_PID"
	# The running job ends while the lock is still held: its worker was stopped.
	wait_for "$db" "select outcome from jobs where serial='swap-a1.img'" removed 20 ||
		fail "a1, running and swapped: $(outcome swap-a1)"
	wait_for "$db" "select outcome from jobs where serial='swap-b1.img'" removed 20 ||
		fail "b1, waiting and swapped: $(outcome swap-b1)"
	[[ $(outcome swap-b1) == "removed: the card was swapped for another (DISKSEQ "*") before its job started (after "* ]] ||
		fail "b1's row does not say it went before its job: $(outcome swap-b1)"
	let_go
	for n in a2 b2; do
		wait_for "$db" "select outcome from jobs where serial='swap-$n.img'" success 60 ||
			fail "$n, put in by the swap: $(outcome swap-$n)"
	done
	"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$dev_a" || fail "a2 does not hold the image"
	"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$dev_b" || fail "b2 does not hold the image"
	wait_for "$db" "select group_concat(serial || '=' || state, ' ') from (select * from live where serial glob 'swap-*' order by serial)" \
		"swap-a2.img=done swap-b2.img=done" 10 || fail "the live view does not show the new cards done"
	expected=$((expected + 4))
}

# 2. A running card swapped while the daemon runs.
round2() {
	hold
	insert_card "${card[c1]}"
	dev_c=$LOOP_DEV
	at_lock swap-c1
	swap "$dev_c" c2
	wait_for "$db" "select outcome from jobs where serial='swap-c1.img'" removed 20 ||
		fail "c1, running and swapped: $(outcome swap-c1)"
	let_go
	wait_for "$db" "select outcome from jobs where serial='swap-c2.img'" success 60 ||
		fail "c2, put in by the swap: $(outcome swap-c2)"
	"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$dev_c" || fail "c2 does not hold the image"
	expected=$((expected + 2))
}

# 3. A running card swapped while udevd holds every event back.
round3() {
	hold
	insert_card "${card[d1]}"
	dev_d=$LOOP_DEV
	at_lock swap-d1
	on_exit "udevadm control --start-exec-queue 2>/dev/null"
	udevadm control --stop-exec-queue || fail "cannot stop udevd's queue"
	swap "$dev_d" d2
	for _ in $(seq 100); do
		grep -q "serial swap-d1\.img.*another medium in the disk during job" "$TEST_TMP/station.log" && break
		sleep 0.05
	done
	udevadm control --start-exec-queue
	grep -q "serial swap-d1\.img.*another medium in the disk during job" "$TEST_TMP/station.log" ||
		fail "d1: the daemon did not see the DISKSEQ change without udev's events"
	wait_for "$db" "select outcome from jobs where serial='swap-d1.img'" removed 20 ||
		fail "d1, running and swapped: $(outcome swap-d1)"
	let_go
	wait_for "$db" "select outcome from jobs where serial='swap-d2.img'" success 60 ||
		fail "d2, put in by the swap: $(outcome swap-d2)"
	"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$dev_d" || fail "d2 does not hold the image"
	expected=$((expected + 2))
}

for r in $ROUNDS; do
	[[ $r == [123] ]] || fail "ROUNDS: no round '$r'"
	"round$r"
done

# Nothing was refused, every medium got one row, none ran twice.
[[ $(q "$db" "select count(*) from jobs where serial glob 'swap-*' and outcome not in ('success', 'removed')") == 0 ]] ||
	fail "other outcomes: $(q "$db" "select serial || '=' || outcome || ': ' || ifnull(error, '') from jobs where serial glob 'swap-*' and outcome not in ('success', 'removed')")"
[[ $(q "$db" "select count(*) || ' ' || count(distinct serial) from jobs where serial glob 'swap-*'") == "$expected $expected" ]] ||
	fail "rows: $(q "$db" "select group_concat(serial || '=' || outcome, ' ') from jobs where serial glob 'swap-*'")"
stop_station
log "ok: $(q "$db" "select group_concat(serial || '=' || outcome, ' ') from jobs where serial glob 'swap-*'")"
