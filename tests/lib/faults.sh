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
# that is writing it. pull_card's truncate races with the writes in flight,
# which grow the backing file again before 'losetup -c' reads its size:
# repeat until the device says 0 sectors (once it does, writes fail and the
# file stays empty).
pull_busy_card() {
	local size
	for _ in $(seq 50); do
		pull_card "$1" "$2"
		size=$(cat "/sys/block/$(basename "$1")/size")
		[[ $size == 0 ]] && return 0
		sleep 0.05
	done
	fail "$1 keeps a size of $size sectors after being pulled"
}
