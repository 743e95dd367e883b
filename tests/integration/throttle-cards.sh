#!/bin/bash
# Cards with a speed (tests/lib/throttle.sh) against the kernel:
#
# - two cards of different speeds in the test's cgroup, written and then
#   read at the same time with dd (O_DIRECT), each get their own limit
#   within 15% (20 MiB/s write, 60 MiB/s read; 10 and 30 MiB/s), 40 MiB
#   written, 120 MiB read on the fast one;
# - the same dd outside the cgroup is not held back (more than 3x the limit);
# - a stalled card (512 B/s): dd makes no progress in 2.5 s and, waiting
#   for its I/O in state D, outlives timeout's SIGTERM; lifting the limit
#   lets it end at once;
# - a test that exits with a stalled dd and a sleep left in its cgroup
#   leaves nothing behind: its cgroup removed, its card detached, the sleep
#   moved to the parent cgroup.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/throttle.sh"
need_loop
need_cmd dd
need_cmd timeout
throttle_init
export LC_ALL=C # dd's decimal point

# The child test, run at the end: exits with a card stalled under a dd.
if [[ ${1:-} == --leave-behind ]]; then
	out=$2
	truncate -s 16M "$CARD_DIR/left.bin"
	attach_card_at_speed "$CARD_DIR/left.bin" 0 0
	card_stall "$CARD_DEV"
	throttled dd if=/dev/zero of="$CARD_DEV" bs=64K count=4 oflag=direct status=none &
	throttled sleep 60 &
	printf '%s\n' "$THROTTLE_CG" "$CARD_DEV" "$CARD_DIR/left.bin" "$!" >"$out"
	sleep 0.5
	exit 0
fi

# The child test stopped while attach_cards_at_speed attaches its cards:
# writes the cards' files to OUT, then attaches them; the parent sends it
# SIGTERM once the first is on a device.
if [[ ${1:-} == --term-attaching ]]; then
	specs=()
	for i in $(seq 16); do
		truncate -s 4M "$CARD_DIR/t$i.bin"
		specs+=("$CARD_DIR/t$i.bin:20M:0")
	done
	echo "$CARD_DIR" >"$2"
	ATTACH_CARDS_PAUSE=0.1 attach_cards_at_speed "${specs[@]}"
	sleep 60
	exit 0
fi

# The child test that attaches two cards together and detaches them itself:
# its exit must not detach their numbers again (another test's by then).
if [[ ${1:-} == --attach-detach ]]; then
	truncate -s 4M "$CARD_DIR/d1.bin" "$CARD_DIR/d2.bin"
	attach_cards_at_speed "$CARD_DIR/d1.bin:20M:0" "$CARD_DIR/d2.bin:20M:0"
	for dev in "${CARD_DEVS[@]}"; do detach_loop "$dev"; done
	exit 0
fi

# rate LOG: bytes/s from dd's summary line.
rate() { awk '/ copied, / { print $1 / $(NF - 3) }' "$1"; }
# within RATE LIMIT: RATE is within 15% of LIMIT.
within() { awk -v r="$1" -v l="$2" 'BEGIN { exit !(r >= 0.85 * l && r <= 1.15 * l) }'; }
mibs() { awk -v r="$1" 'BEGIN { printf "%.1f MiB/s", r / 1048576 }'; }

# check WHAT LOG LIMIT: the rate dd reported against the card's limit.
check() {
	local r
	r=$(rate "$2")
	[[ -n $r ]] || { bad "$1: no dd summary: $(cat "$2")"; return; }
	if within "$r" "$3"; then
		log "$1: $(mibs "$r") (limit $(mibs "$3"))"
	else
		bad "$1: $(mibs "$r"), not within 15% of $(mibs "$3")"
	fi
}

truncate -s 128M "$CARD_DIR/fast.bin" "$CARD_DIR/slow.bin" "$CARD_DIR/stall.bin"
attach_card_at_speed "$CARD_DIR/fast.bin" 20M 60M
fast=$CARD_DEV
attach_card_at_speed "$CARD_DIR/slow.bin" 10M 30M
slow=$CARD_DEV

# Both cards at once: the limits are per device within one cgroup.
throttled dd if=/dev/zero of="$fast" bs=1M count=40 oflag=direct 2>"$TEST_TMP/fast.w" &
p1=$!
throttled dd if=/dev/zero of="$slow" bs=1M count=20 oflag=direct 2>"$TEST_TMP/slow.w" &
p2=$!
wait "$p1" || bad "dd writing $fast failed: $(cat "$TEST_TMP/fast.w")"
wait "$p2" || bad "dd writing $slow failed: $(cat "$TEST_TMP/slow.w")"
check "write $fast (20M)" "$TEST_TMP/fast.w" $((20 * 1048576))
check "write $slow (10M)" "$TEST_TMP/slow.w" $((10 * 1048576))

throttled dd if="$fast" of=/dev/null bs=1M count=120 iflag=direct 2>"$TEST_TMP/fast.r" &
p1=$!
throttled dd if="$slow" of=/dev/null bs=1M count=60 iflag=direct 2>"$TEST_TMP/slow.r" &
p2=$!
wait "$p1" || bad "dd reading $fast failed: $(cat "$TEST_TMP/fast.r")"
wait "$p2" || bad "dd reading $slow failed: $(cat "$TEST_TMP/slow.r")"
check "read $fast (60M)" "$TEST_TMP/fast.r" $((60 * 1048576))
check "read $slow (30M)" "$TEST_TMP/slow.r" $((30 * 1048576))

# Outside the cgroup the card is RAM-fast.
dd if=/dev/zero of="$fast" bs=1M count=40 oflag=direct 2>"$TEST_TMP/free.w" ||
	bad "dd writing $fast unthrottled failed"
r=$(rate "$TEST_TMP/free.w")
if awk -v r="${r:-0}" 'BEGIN { exit !(r > 3 * 20 * 1048576) }'; then
	log "write $fast outside the cgroup: $(mibs "$r")"
else
	bad "write $fast outside the cgroup: $(mibs "${r:-0}"), held back"
fi

# A stalled card.
attach_card_at_speed "$CARD_DIR/stall.bin" 0 0
stall=$CARD_DEV
card_stall "$stall"
read -r _ w0 < <(card_io_bytes "$stall")
throttled timeout 2 dd if=/dev/zero of="$stall" bs=64K count=16 oflag=direct status=none &
p=$!
sleep 2.5
read -r _ w1 < <(card_io_bytes "$stall")
if ((w1 - w0 <= 4096)); then
	log "stalled $stall: $((w1 - w0)) bytes written in 2.5 s"
else
	bad "stalled $stall: $((w1 - w0)) bytes written in 2.5 s"
fi
kill -0 "$p" 2>/dev/null || bad "dd on the stalled card ended before its I/O could"
t0=$EPOCHREALTIME
card_unthrottle "$stall"
wait "$p"
rc=$?
t=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
[[ $rc == 124 ]] || bad "timeout dd on the stalled card: exit $rc, not 124"
if awk -v t="$t" 'BEGIN { exit !(t < 2) }'; then
	log "unthrottled $stall: dd ended ${t} s later (exit $rc)"
else
	bad "unthrottled $stall: dd took ${t} s to end"
fi

# A test that leaves processes and a stalled card behind cleans up.
bash "$0" --leave-behind "$TEST_TMP/left" 2>"$TEST_TMP/left.log"
rc=$?
[[ $rc == 0 ]] || bad "the child test exited $rc: $(cat "$TEST_TMP/left.log")"
mapfile -t left <"$TEST_TMP/left"
if [[ ${#left[@]} == 4 ]]; then
	on_exit "kill ${left[3]} 2>/dev/null"
	[[ ! -e ${left[0]} ]] || bad "the child's cgroup ${left[0]} is still there"
	# (detached for good once the dd has closed it)
	sysfs=/sys/class/block/$(basename "${left[1]}")/loop/backing_file
	for _ in $(seq 50); do
		[[ $(cat "$sysfs" 2>/dev/null) == "${left[2]}"* ]] || break
		sleep 0.1
	done
	[[ $(cat "$sysfs" 2>/dev/null) != "${left[2]}"* ]] ||
		bad "the child's card ${left[1]} is still attached to $(cat "$sysfs")"
	cg=$(sed -n 's/^[0-9]*:blkio:\(.*\)$/\1/p; s/^0::\(.*\)$/\1/p' "/proc/${left[3]}/cgroup" 2>/dev/null | head -n 1)
	[[ $cg != *bmaptest-* ]] || bad "the child's sleep is still in $cg"
	kill "${left[3]}" 2>/dev/null
	log "a test leaving a stalled dd and a sleep behind: cgroup removed, card detached" \
		"(the child said: $(tr '\n' ' ' <"$TEST_TMP/left.log"))"
else
	bad "the child test said nothing: $(cat "$TEST_TMP/left.log")"
fi

# A test stopped while its cards are being attached (a timeout, a ^C)
# detaches those it had: the cards attached before the SIGTERM stayed.
bash "$0" --term-attaching "$TEST_TMP/term" 2>"$TEST_TMP/term.log" &
child=$!
on_exit "kill $child 2>/dev/null"
# child_cards: the loop devices whose backing file is in the child's card
# folder (their files are removed with it: "... (deleted)").
child_cards() {
	local b dir
	dir=$(cat "$TEST_TMP/term" 2>/dev/null)
	[[ -n $dir ]] || return 0
	for b in /sys/block/loop*/loop/backing_file; do
		[[ $(cat "$b" 2>/dev/null) == "$dir/"* ]] && echo "/dev/$(basename "${b%/loop/backing_file}")"
	done
}
for _ in $(seq 500); do
	[[ -n $(child_cards) ]] && break
	sleep 0.01
done
kill -TERM "$child"
wait "$child"
rc=$?
sleep 0.5 # (what went on attaching after it would show by now)
mapfile -t left < <(child_cards)
if ((${#left[@]})); then
	bad "a test stopped while attaching its cards left ${#left[@]} of them attached (exit $rc): ${left[*]}"
	for dev in "${left[@]}"; do losetup -d "$dev"; done
else
	log "a test stopped while attaching its cards (exit $rc): none left attached"
fi

bash "$0" --attach-detach 2>"$TEST_TMP/detach.log" || bad "the attach-detach child failed: $(cat "$TEST_TMP/detach.log")"
if grep -q 'could not detach' "$TEST_TMP/detach.log"; then
	bad "cards a test had detached were detached again at its exit: $(cat "$TEST_TMP/detach.log")"
else
	log "cards attached together and detached by the test are not detached again at its exit"
fi

finish "two cards at their own speeds, a stalled card, nothing left behind"
