# Helpers for the tests of the station's image cache fill (sourced after
# common.sh and station.sh): an image whose fill takes seconds, and the
# station's processes found by their parents.
#
#   mk_slow_bz2 IMG BLOCKS   IMG (BLOCKS pieces of 784 KiB of random data,
#                            every byte mapped), IMG.bmap and IMG.bz2
#   worker_of SERIAL         the pid of SERIAL's latest worker, from the log
#   filler_of SERIAL         waits (2 s) for the filler SERIAL's worker forked;
#                            sets WORKER and FILLER (empty: none)
#   children_of PID          the pids whose parent is PID
#   descendants_of PID       all processes below PID
#   proc_alive PID           PID exists and is not a zombie
#   sig_pending PID SIG      signal number SIG is pending for PID
#   kill_ours SIG PID        sends SIG to PID only if it runs $BMAP_STATION
#                            (a worker or filler of this test's daemon)
#
# Random data is bzip2's slowest case (~7 MB/s decoded here): a fill
# runs long enough for a test to act on it while it runs. One block is
# compressed once and its stream repeated: concatenated streams are one
# image to the decoder, and making the image costs no compression time.

# mk_slow_bz2 IMG BLOCKS
mk_slow_bz2() {
	local img=$1 n=$2 i
	pattern 7 802816 >"$img.chunk" || fail "cannot make $img.chunk"
	bzip2 -9 -c "$img.chunk" >"$img.chunk.bz2" || fail "bzip2"
	: >"$img" && : >"$img.bz2" || fail "cannot create $img"
	for ((i = 0; i < n; i++)); do
		cat "$img.chunk" >>"$img" && cat "$img.chunk.bz2" >>"$img.bz2" ||
			fail "cannot write $img"
	done
	rm -f "$img.chunk" "$img.chunk.bz2"
	"$BMAPTOOL" -q create -o "$img.bmap" "$img" || fail "bmaptool create $img"
}

# worker_of SERIAL: from "SERIAL ...: job N started (worker PID)".
worker_of() {
	sed -nE "s/.*$1.*job [0-9]+ started \\(worker ([0-9]+)\\).*/\\1/p" "$TEST_TMP/station.log" |
		tail -n 1
}

filler_of() {
	WORKER= FILLER=
	for _ in $(seq 100); do
		WORKER=$(worker_of "$1")
		[[ -n $WORKER ]] && FILLER=$(children_of "$WORKER") && [[ -n $FILLER ]] && return 0
		sleep 0.02
	done
	FILLER=
}

children_of() { pgrep -P "$1"; }

descendants_of() {
	local p
	for p in $(pgrep -P "$1"); do
		echo "$p"
		descendants_of "$p"
	done
}

proc_alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ -n $st && $st != Z* ]]
}

# sig_pending PID SIG: SIG in the process's shared or thread pending set.
sig_pending() {
	local mask bit=$(($2 - 1))
	for mask in $(sed -nE 's/^(ShdPnd|SigPnd):\s*([0-9a-f]+)/\2/p' "/proc/$1/status" 2>/dev/null); do
		(((0x$mask >> bit) & 1)) && return 0
	done
	return 1
}

kill_ours() {
	local exe
	exe=$(readlink "/proc/$2/exe" 2>/dev/null) || return 0
	[[ $exe == "$(readlink -f "$BMAP_STATION")" ]] && kill "-$1" "$2" 2>/dev/null
	return 0
}
