# Helpers for the fault-injection tests (sourced after common.sh): the
# LD_PRELOAD shim built from tests/fault/fault-shim.c (see its header for
# the rule syntax), its control file and its log of injected faults.

FAULT_SHIM=${BMAP_FAULT_SHIM:-${BUILD_DIR:+$BUILD_DIR/tests/bmap-fault-shim.so}}
FAULT_FILE=$TEST_TMP/faults.rules
FAULT_LOG=$TEST_TMP/faults.log
: >"$FAULT_FILE"
: >"$FAULT_LOG"

need_fault_shim() {
	[[ -n $FAULT_SHIM && -f $FAULT_SHIM ]] ||
		fail "the fault shim is not built (set BMAP_FAULT_SHIM; got '$FAULT_SHIM')"
}

# fault_rule RULE: adds one rule ("DEVICE OP FAULT [after=N] [count=N]").
# The shim reads the file at every call: a rule applies at once.
fault_rule() { echo "$*" >>"$FAULT_FILE"; }

# with_faults CMD...: runs CMD with the shim loaded. A sanitizer build
# wants its runtime first in the list; the shim needs no checking.
with_faults() {
	LD_PRELOAD=$FAULT_SHIM BMAP_FAULT_FILE=$FAULT_FILE BMAP_FAULT_LOG=$FAULT_LOG \
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 "$@"
}

# devnum DEV: its MAJOR:MINOR, as the shim's log writes it.
devnum() { cat "/sys/block/$(basename "$1")/dev"; }

# faults_on DEV [KIND]: how many faults were injected on DEV (of KIND, e.g.
# "errno=5", "short=0", "delay=").
faults_on() {
	awk -v d="$(devnum "$1")" -v k="${2:-}" \
		'$3 == d && index($6, k) == 1 { n++ } END { print n + 0 }' "$FAULT_LOG"
}

# fault_offsets DEV: the offsets of the calls that got a fault on DEV.
fault_offsets() { awk -v d="$(devnum "$1")" '$3 == d { print $4 }' "$FAULT_LOG"; }

# wait_fault DEV KIND [SECONDS]: waits until a fault of KIND hit DEV.
wait_fault() {
	for _ in $(seq $((${3:-30} * 10))); do
		[[ $(faults_on "$1" "$2") -gt 0 ]] && return 0
		sleep 0.1
	done
	log "no '$2' fault on $1 within ${3:-30}s; faults log:"
	cat "$FAULT_LOG" >&2
	return 1
}

# pull_busy_card DEV FILE: the medium goes away (size 0) under a worker
# that is writing it. pull_card alone races with the writes in flight: they
# grow the truncated backing file again before 'losetup -c' reads its size,
# and the card shrinks instead of going (no real card does that). So the
# card's writes are held first (a delay rule put in front: the first
# matching rule wins), the writes under way given time to end, the card
# pulled, and the hold lifted: what comes next meets a card of size 0.
pull_busy_card() {
	local rules size
	rules=$(cat "$FAULT_FILE")
	{ echo "backing=$2 write delay=5000"; echo "$rules"; } >"$FAULT_FILE"
	sleep 0.5
	pull_card "$1" "$2"
	echo "$rules" >"$FAULT_FILE"
	size=$(cat "/sys/block/$(basename "$1")/size")
	[[ $size == 0 ]] || fail "$1 still has $size sectors after being pulled"
}

# fault_summary [LOG]: the faults injected, by operation and kind, e.g.
# "write/errno=5:1 write/short=66048:812".
fault_summary() {
	awk '{ n[$2 "/" $6]++ } END { for (k in n) printf "%s:%d ", k, n[k] }' "${1:-$FAULT_LOG}"
}
