#!/bin/bash
# bmaptool copy and verify under the fault shim (tests/fault), on a loop
# device: the engine the station's workers run, without the daemon.
#  - a write error (EIO) past 8 MiB, from a raw image (pool of workers) and
#    from a zstd stream (pipeline): exit 1, the message names the device and
#    the byte where the write failed
#  - a write that writes nothing (returns 0): exit 1 at once, no endless retry
#  - every write short (64.5 KiB at a time): completed; exit 0; the card holds
#    the image
#  - a read error during verify: exit 1, the message names the bytes and
#    blocks that could not be read and their bmap range
#  - a device that ends early during verify (reads return 0): exit 1
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/cards.sh"
. "$TESTS_DIR/lib/faults.sh"
need_ours
need_fault_shim
need_loop
need_cmd zstd

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=48M data=0:1M data=2M:20M data=30M:4M" zst
card=$CARD_DIR/card.img
fill_pattern "$card" $((56 << 20))
attach_loop "$card"
dev=$LOOP_DEV

# run NAME RULE CMD...: CMD under the shim with RULE alone; its messages go
# to $TEST_TMP/NAME.err, its exit status to $rc.
injected=0
run() {
	local name=$1 before
	before=$(wc -l <"$FAULT_LOG")
	echo "$2" >"$FAULT_FILE"
	shift 2
	with_faults timeout -k 5 60 "$BMAPTOOL" "$@" 2>"$TEST_TMP/$name.err"
	rc=$?
	injected=$((injected + $(wc -l <"$FAULT_LOG") - before))
	tail -n +$((before + 1)) "$FAULT_LOG" >>"$TEST_TMP/all-faults.log"
	msg=$(grep 'error:' "$TEST_TMP/$name.err")
}
copy() { run "$1" "$2" copy --bmap "$img.bmap" "$3" "$dev"; }
verify() { run "$1" "$2" verify --bmap "$img.bmap" "$img" "$dev"; }

for src in "$img" "$img.zst"; do
	: >"$FAULT_LOG"
	copy eio "$dev pwrite EIO after=8M" "$src"
	[[ $rc == 1 ]] || bad "write EIO, $src: exit $rc, not 1"
	[[ $msg =~ cannot\ write\ to\ \'$dev\'\ at\ byte\ ([0-9]+)\ .*Input/output\ error ]] ||
		bad "write EIO, $src: the message does not name the device and byte: $msg"
	awk '{ print $4 }' "$FAULT_LOG" | grep -qx "${BASH_REMATCH[1]:-none}" ||
		bad "write EIO, $src: byte ${BASH_REMATCH[1]:-?} is not where a write failed"
done

: >"$FAULT_LOG"
copy short0 "$dev pwrite short=0 after=8M" "$img"
[[ $rc == 1 ]] || bad "zero-byte write: exit $rc, not 1"
[[ $msg == *"cannot write to '$dev' at byte"* ]] || bad "zero-byte write: $msg"
n=$(faults_on "$dev" short=0)
[[ $n -ge 1 && $n -le 4 ]] || bad "zero-byte write: $n calls got it (1..4 expected: one per writer, no retry)"

: >"$FAULT_LOG"
fill_pattern "$card" $((56 << 20))
copy short "$dev pwrite short=66048" "$img.zst"
[[ $rc == 0 ]] || bad "short writes: exit $rc: $msg"
[[ $(faults_on "$dev" short=) -ge 100 ]] || bad "short writes: only $(faults_on "$dev" short=) were injected"
"$BMAPTOOL" -q verify --bmap "$img.bmap" "$img" "$card" || bad "short writes: the card does not hold the image"

: >"$FAULT_LOG"
verify readerr "$dev pread EIO after=8M"
[[ $rc == 1 ]] || bad "read EIO: exit $rc, not 1"
re="cannot read '$dev' at bytes ([0-9]+)-([0-9]+) \(blocks ([0-9]+)-([0-9]+) of blocks range ([0-9]+)-([0-9]+)\): Input/output error"
if [[ $msg =~ $re ]]; then
	from=${BASH_REMATCH[1]} to=${BASH_REMATCH[2]}
	grep -q " $from [0-9]* errno=5\$" "$FAULT_LOG" || bad "read EIO: byte $from is not where a read failed"
	[[ ${BASH_REMATCH[3]} == $((from / 4096)) && ${BASH_REMATCH[4]} == $((to / 4096)) && $to -ge $((8 << 20)) ]] ||
		bad "read EIO: bytes and blocks disagree: $msg"
	[[ ${BASH_REMATCH[5]} -le ${BASH_REMATCH[3]} && ${BASH_REMATCH[6]} -ge ${BASH_REMATCH[4]} ]] ||
		bad "read EIO: the blocks are not inside the range named: $msg"
else
	bad "read EIO: the message does not name the range: $msg"
fi

verify readeof "$dev pread short=0 after=8M"
[[ $rc == 1 ]] || bad "reads of 0 bytes: exit $rc, not 1"
[[ $msg == *"'$dev' ends at byte"* ]] || bad "reads of 0 bytes: $msg"

# Without faults the same card verifies: the failures above were the shim's.
: >"$FAULT_FILE"
verify clean ""
[[ $rc == 0 ]] || bad "verify without faults: exit $rc: $msg"
finish "ok: $injected faults injected: $(fault_summary "$TEST_TMP/all-faults.log")"
