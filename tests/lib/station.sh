# Helpers for the station's end-to-end tests (sourced after common.sh):
# a real systemd-udevd (started when none runs, stopped by its pid), a test
# rule that gives our loop devices an identity, cards, and the daemon.

BMAP_STATION=${BMAP_STATION:-${BUILD_DIR:+$BUILD_DIR/bmap-station}}
UDEVD=${UDEVD:-/lib/systemd/systemd-udevd}

need_station_env() {
	need_root
	need_cmd losetup
	need_cmd udevadm
	need_cmd sqlite3
	[[ -x $UDEVD ]] || skip "systemd-udevd missing (Debian package udev)"
	[[ -n $BMAP_STATION && -x $BMAP_STATION ]] || fail "bmap-station not built"
	have_loop || skip "needs free loop devices"
}

# Starts systemd-udevd unless one answers already.
ensure_udevd() {
	if udevadm control --ping >/dev/null 2>&1; then
		return
	fi
	"$UDEVD" >"$TEST_TMP/udevd.log" 2>&1 &
	local pid=$!
	on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
	for _ in $(seq 50); do
		udevadm control --ping >/dev/null 2>&1 && return
		sleep 0.1
	done
	fail "systemd-udevd did not start (see $TEST_TMP/udevd.log)"
}

# Cards live in memory (/dev/shm): the virtual disk here is slow and noisy.
CARD_DIR=/dev/shm/bmap-station-test.$$

# Loop devices backed by files in $CARD_DIR get a serial (the file's name),
# bus "loop" and the station's tag; nothing else is touched.
# install_test_rule [GROUP]: with GROUP, the tagged cards (and only they)
# also get GROUP and mode 0660, as rules/90-bmap-station.rules does for the
# unprivileged daemon.
install_test_rule() {
	local perms=
	[[ -n ${1:-} ]] && perms=", GROUP=\"$1\", MODE=\"0660\""
	mkdir -p "$CARD_DIR" /run/udev/rules.d
	on_exit "rm -rf '$CARD_DIR'"
	STATION_RULE=/run/udev/rules.d/61-bmap-station-test-$$.rules
	cat >"$STATION_RULE" <<-RULE
	SUBSYSTEM=="block", KERNEL=="loop*", ENV{DEVTYPE}=="disk", ATTR{loop/backing_file}=="$CARD_DIR/*", PROGRAM="/usr/bin/basename \$attr{loop/backing_file}", ENV{ID_SERIAL}="%c", ENV{ID_SERIAL_SHORT}="%c", ENV{ID_BUS}="loop", ENV{ID_VENDOR}="TestVendor", ENV{ID_MODEL}="LoopCard", TAG+="bmap-station"$perms
	RULE
	on_exit "rm -f '$STATION_RULE'; udevadm control --reload 2>/dev/null"
	udevadm control --reload
}

# make_card NAME SIZE: a backing file full of 0xA5 bytes (not attached yet).
make_card() {
	local f=$CARD_DIR/$1
	head -c "$(to_bytes "$2")" /dev/zero | tr '\0' '\245' >"$f"
	echo "$f"
}

# insert_card FILE: attaches it (the station sees a card inserted); sets LOOP_DEV.
insert_card() {
	attach_loop "$1"
}

# pull_card DEV FILE: the medium goes away under the station (size 0, I/O fails).
pull_card() {
	truncate -s 0 "$2"
	losetup -c "$1"
}

# start_station CONFIG [WRAPPER...]: runs the daemon in the background,
# through WRAPPER if given (e.g. `throttled`, tests/lib/throttle.sh; it must
# exec the daemon, so that the pid is the daemon's); sets STATION_PID.
start_station() {
	# Tests keep their image cache to themselves (default: /var/cache/bmap-station).
	grep -q "cache_dir" "$1" || fail "$1 sets no cache_dir: the test would use the machine's cache"
	"${@:2}" "$BMAP_STATION" run --config "$1" >>"$TEST_TMP/station.log" 2>&1 &
	STATION_PID=$!
	on_exit "stop_station"
}

stop_station() {
	[[ -n ${STATION_PID:-} ]] || return 0
	kill -TERM "$STATION_PID" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$STATION_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$STATION_PID" 2>/dev/null
	wait "$STATION_PID" 2>/dev/null
	STATION_PID=
}

# station_alive: fails the test when the daemon is gone.
station_alive() {
	kill -0 "$STATION_PID" 2>/dev/null || fail "the station died: $(tail -5 "$TEST_TMP/station.log")"
}

# station_ready DB: waits until the daemon has created its journal.
station_ready() {
	wait_for "$1" "select count(*) from sqlite_schema where name='jobs'" 1 ||
		fail "the station did not start"
}

# gate_feeder FIFO FILE: feeds FILE through FIFO in the background, the first
# 100000 bytes at once and the rest once $TEST_TMP/go exists (a job that
# holds until the test lets it go); sets FEEDER.
gate_feeder() {
	rm -f "$TEST_TMP/go"
	{
		head -c 100000 "$2"
		while [[ ! -e $TEST_TMP/go ]]; do sleep 0.1; done
		tail -c +100001 "$2"
	} >"$1" 2>/dev/null &
	FEEDER=$!
	on_exit "kill $FEEDER 2>/dev/null"
}

# cache_key IMAGE BMAP: the name of the image cache's entry for these files
# (cache.c: SHA-256 of the image's identity "DEV INO SIZE MTIME CTIME" followed
# by the bmap's SHA-256).
cache_key() {
	{ stat -c '%d %i %s %.9Y %.9Z' "$1" | tr -d '\n'
	  sha256sum <"$2" | cut -c1-64 | perl -ne 'chomp; print pack("H*", $_)'; } |
		sha256sum | cut -c1-64
}

# q DB SQL: one value from the journal.
q() { sqlite3 -cmd '.timeout 5000' "$1" "$2"; }

# wait_for DB SQL WANT [SECONDS]: polls until the query prints WANT.
wait_for() {
	local db=$1 sql=$2 want=$3 t=${4:-60} got=
	for _ in $(seq $((t * 10))); do
		got=$(q "$db" "$sql" 2>/dev/null)
		[[ $got == "$want" ]] && return 0
		sleep 0.1
	done
	log "waited ${t}s for [$sql] = $want, got '$got'; station log:"
	tail -n 30 "$TEST_TMP/station.log" >&2
	return 1
}
