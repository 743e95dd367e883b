# Cards with a speed (sourced after common.sh): the kernel's block I/O
# throttling gives each loop device a card's own write and read bandwidth,
# for the processes of one cgroup that belongs to the test.
#
#   throttle_init                  the test's cgroup (skips with 77 without one)
#   card_speed DEV WRITE READ      DEV's limits in that cgroup (0: none)
#   card_stall DEV [BPS]           a card that stalls: BPS both ways (512 B/s)
#   card_unthrottle DEV            DEV's limits lifted
#   attach_card_at_speed FILE WRITE READ   a loop device over FILE, limited
#                                  before the file is attached (CARD_DEV, LOOP_DEV,
#                                  CARD_INSERTED_AT)
#   attach_cards_at_speed FILE:WRITE:READ...   the same for several cards in
#                                  one quick loop (CARD_DEVS, CARDS_INSERTED_AT)
#   throttled CMD...               runs CMD in the cgroup
#   card_io_bytes DEV              "READ WRITTEN": bytes DEV has done (all processes)
#
# Speeds are bytes per second, read through to_bytes: "20M" is 20 MiB/s
# (20971520, as in PLATFORM.md), so a card of "20 MB/s" in an issue is 20M
# here, 5% above 20 * 10^6. Measured on these machines: dd with O_DIRECT
# gets 2-8% above the limit over ~40 MiB (the first throttle slice is a
# burst), buffered writes with fsync are held too.
#
# Limits apply only to processes in the cgroup. Run the station there (its
# workers inherit it) or the tool, with `throttled`; udevd and the test's
# own commands keep full speed. Each cgroup's limits are its own: tests
# never slow each other down.
#
# The cgroup is /sys/fs/cgroup/blkio/bmaptest-TEST.PID (cgroup v1, as on
# these machines), else the same name at the root of a cgroup v2 hierarchy
# whose io controller can be enabled (io.max); neither: exit 77.
#
# A process waiting for a stalled card's I/O sits in state D: no signal,
# not even SIGKILL, ends it before the I/O completes (a job_timeout cannot
# kill such a worker either). card_unthrottle lets it go on at once. At
# exit (common.sh's on_exit) every limit set is lifted first, then any
# process still in the cgroup is moved to its parent, and the cgroup is
# removed once empty.

THROTTLE_CG=
THROTTLE_VERSION=
_THROTTLE_DEVS=()

# _throttle_v2_root: a cgroup v2 mount whose children can have io.max.
_throttle_v2_root() {
	local dev mnt type rest
	while read -r dev mnt type rest; do
		[[ $type == cgroup2 ]] || continue
		grep -qw io "$mnt/cgroup.controllers" 2>/dev/null || continue
		grep -qw io "$mnt/cgroup.subtree_control" 2>/dev/null ||
			echo +io >"$mnt/cgroup.subtree_control" 2>/dev/null || continue
		echo "$mnt"
		return 0
	done </proc/mounts
	return 1
}

# throttle_init: creates the test's cgroup (once); sets THROTTLE_CG and
# THROTTLE_VERSION (1 or 2).
throttle_init() {
	local name=bmaptest-$TEST_NAME.$$ root
	[[ -z $THROTTLE_CG ]] || return 0
	need_root
	root=/sys/fs/cgroup/blkio
	if [[ -e $root/cgroup.procs ]] && mkdir "$root/$name" 2>/dev/null; then
		if [[ -e $root/$name/blkio.throttle.write_bps_device ]]; then
			THROTTLE_CG=$root/$name THROTTLE_VERSION=1
		else
			rmdir "$root/$name"
		fi
	fi
	if [[ -z $THROTTLE_CG ]] && root=$(_throttle_v2_root) && mkdir "$root/$name" 2>/dev/null; then
		if [[ -e $root/$name/io.max ]]; then
			THROTTLE_CG=$root/$name THROTTLE_VERSION=2
		else
			rmdir "$root/$name"
		fi
	fi
	[[ -n $THROTTLE_CG ]] ||
		skip "no block I/O throttling here (no cgroup v1 blkio hierarchy, no cgroup v2 with the io controller)"
	on_exit _throttle_cleanup
}

# _throttle_devnum DEV: DEV's MAJOR:MINOR (decimal).
_throttle_devnum() {
	local t
	[[ -b $1 ]] && t=$(stat -L -c '%t %T' -- "$1") || return 1
	printf '%d:%d\n' "0x${t% *}" "0x${t#* }"
}

# _throttle_set MAJ:MIN WRITE READ: bytes/s, 0 for no limit.
_throttle_set() {
	if [[ $THROTTLE_VERSION == 1 ]]; then
		echo "$1 $2" >"$THROTTLE_CG/blkio.throttle.write_bps_device" &&
			echo "$1 $3" >"$THROTTLE_CG/blkio.throttle.read_bps_device"
	else
		echo "$1 wbps=$( (($2)) && echo "$2" || echo max) rbps=$( (($3)) && echo "$3" || echo max)" \
			>"$THROTTLE_CG/io.max"
	fi
}

# card_speed DEV WRITE READ: DEV's write and read bandwidth for the
# processes in the cgroup, in bytes/s (to_bytes: "20M", "512"; 0: no limit).
# Applies at once, also to I/O already waiting.
card_speed() {
	local mm w r
	[[ -n $THROTTLE_CG ]] || fail "card_speed: call throttle_init first"
	mm=$(_throttle_devnum "$1") || fail "card_speed: $1 is not a block device"
	w=$(to_bytes "$2") && r=$(to_bytes "$3") || fail "card_speed: bad speed '$2' or '$3'"
	_throttle_set "$mm" "$w" "$r" || fail "cannot set the speed of $1 ($mm) in $THROTTLE_CG"
	[[ " ${_THROTTLE_DEVS[*]} " == *" $mm "* ]] || _THROTTLE_DEVS+=("$mm")
}

# card_stall DEV [BPS]: a card that hangs: BPS (default 512) bytes/s both
# ways, so a 4 KiB write takes 8 s and a 1 MiB one half an hour.
card_stall() { card_speed "$1" "${2:-512}" "${2:-512}"; }

# card_unthrottle DEV: DEV at full speed again (what waits on it goes on).
card_unthrottle() { card_speed "$1" 0 0; }

# attach_card_at_speed FILE WRITE READ: attaches FILE to a free loop device
# that has its limits before FILE is on it (no byte of the card goes at
# full speed; `losetup -f` creates the device where the machine does that);
# retries for a few seconds when another process takes the device first.
# Sets CARD_DEV and LOOP_DEV (detached on exit, as with attach_loop) and
# CARD_INSERTED_AT ($EPOCHREALTIME just before the file went onto it: a
# station may start its job before losetup has returned).
attach_card_at_speed() {
	local dev
	for _ in $(seq 20); do
		if dev=$(losetup -f 2>"$TEST_TMP/losetup.err"); then
			card_speed "$dev" "$2" "$3"
			CARD_INSERTED_AT=$EPOCHREALTIME
			if losetup -- "$dev" "$1" 2>"$TEST_TMP/losetup.err"; then
				_LOOPS+=("$dev")
				CARD_DEV=$dev
				LOOP_DEV=$dev
				return 0
			fi
			card_unthrottle "$dev"
		fi
		sleep 0.25
	done
	fail "cannot attach $1 to a loop device: $(cat "$TEST_TMP/losetup.err")"
}

# attach_cards_at_speed FILE:WRITE:READ...: attach_card_at_speed for
# several cards at once, in one process (tests/lib/attach-cards.py: no
# shell, losetup or stat per card competing with the workers of the cards
# already in). Sets CARD_DEVS and CARDS_INSERTED_AT (arrays, in the order
# given); every device is detached on exit, also when a later one failed.
attach_cards_at_speed() {
	local spec path w r dev mm at cmd out=$TEST_TMP/attach-cards.$$ rc=0
	local -a args=()
	[[ -n $THROTTLE_CG ]] || fail "attach_cards_at_speed: call throttle_init first"
	for spec in "$@"; do
		IFS=: read -r path w r <<<"$spec"
		args+=("$path:$(to_bytes "$w"):$(to_bytes "$r")")
	done
	: >"$out"
	# Registered before the cards are there: a test stopped meanwhile
	# (SIGTERM, a timeout) stops the attaching and detaches what it did.
	python3 "$TESTS_DIR/lib/attach-cards.py" "$THROTTLE_CG" "$THROTTLE_VERSION" "$out" "${args[@]}" &
	_ATTACH_PID=$!
	# First of all at exit: no card is attached after the others went.
	printf -v cmd '_attach_cards_collect %q' "$out"
	[[ " ${_CLEANUP_CMDS[*]} " == *"$cmd"* ]] || _CLEANUP_CMDS=("$cmd" "${_CLEANUP_CMDS[@]}")
	wait "$_ATTACH_PID" || rc=$?
	_ATTACH_PID=
	_attach_cards_collect "$out"
	# Collected: the exit command must not take them again (the caller may
	# have detached them by then, and another test attached those numbers).
	rm -f -- "$out"
	((rc == 0)) || fail "attach_cards_at_speed: attached ${#CARD_DEVS[@]} of $# cards"
}

# _attach_cards_collect OUT: the cards attach-cards.py attached (its OUT),
# once its process is over, for detaching at exit; sets CARD_DEVS and
# CARDS_INSERTED_AT.
_attach_cards_collect() {
	local dev mm at
	if [[ -n ${_ATTACH_PID:-} ]]; then
		kill "$_ATTACH_PID" 2>/dev/null
		wait "$_ATTACH_PID" 2>/dev/null
		_ATTACH_PID=
	fi
	CARD_DEVS=() CARDS_INSERTED_AT=()
	[[ -f $1 ]] || return 0
	while read -r dev mm at; do
		[[ " ${_LOOPS[*]} " == *" $dev "* ]] || _LOOPS+=("$dev")
		[[ " ${_THROTTLE_DEVS[*]} " == *" $mm "* ]] || _THROTTLE_DEVS+=("$mm")
		CARD_DEVS+=("$dev")
		CARDS_INSERTED_AT+=("$at")
	done <"$1"
}

# throttled CMD...: runs CMD in the cgroup and returns its status. In a
# subshell of its own (`throttled CMD &`, `$(throttled CMD)`) it replaces
# that subshell, so $! is CMD's pid (stop it by that pid); nothing after it
# in the same subshell runs.
throttled() {
	[[ -n $THROTTLE_CG ]] || fail "throttled: call throttle_init first"
	if [[ $BASHPID != "$$" ]]; then
		exec sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$THROTTLE_CG" "$@"
	fi
	sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$THROTTLE_CG" "$@"
}

# card_io_bytes DEV: "READ WRITTEN", the bytes DEV has read and written
# since the machine started (every process; a loop device keeps its counts
# across detach and attach: compare two readings).
card_io_bytes() {
	local s
	read -r -a s <"/sys/class/block/$(basename "$1")/stat" || return 1
	echo "$((s[2] * 512)) $((s[6] * 512))"
}

_throttle_cleanup() {
	local cg=$THROTTLE_CG parent=${THROTTLE_CG%/*} mm pid left try
	[[ -n $cg && -d $cg ]] || return 0
	for mm in "${_THROTTLE_DEVS[@]}"; do
		_throttle_set "$mm" 0 0 2>/dev/null
	done
	for try in $(seq 50); do
		left=0
		while read -r pid; do
			left=$((left + 1))
			echo "$pid" >"$parent/cgroup.procs" 2>/dev/null
		done <"$cg/cgroup.procs"
		((try == 1 && left > 0)) && log "moving $left process(es) left in $cg to $parent"
		if ((left == 0)) && rmdir "$cg" 2>/dev/null; then
			THROTTLE_CG=
			return 0
		fi
		sleep 0.1
	done
	log "could not remove the cgroup $cg: $(wc -l <"$cg/cgroup.procs") process(es) in it"
}
