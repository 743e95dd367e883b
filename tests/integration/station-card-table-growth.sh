#!/bin/bash
# The card table grew forever (issue 10, item 7): every syspath the station
# saw kept its card until exit, and a USB stick gets a new syspath at every
# plug (a new SCSI host). Here PLUGS (default 500) plugs on changing
# syspaths: each on a loop device made for it with LOOP_CTL_ADD (a real
# 'add' event, a number no one uses), a card attached (tagged, matched, and
# refused as too small for the image: one row and no worker), detached and
# the device deleted with LOOP_CTL_REMOVE (a real 'remove'). Each plug is
# waited for: the daemon logged its row before the card goes. Then:
#  - one 'refused' row per plug, none of them in the live view any more
#  - no growth between the end of the warm-up (WARMUP plugs) and the last
#    plug in open fds, nor in VmData or VmRSS beyond the journal's growth
#    (SQLite's page cache, at most 2000 KiB) plus MEM_SLACK_KB (512): the
#    old card table kept about 5 KiB per plug (2.2 MiB over 450 plugs)
# Figures go to the test's output. Sanitizer builds (ASan's quarantine grows
# by design) run PLUGS=100 and do not judge memory.
# Environment: PLUGS, WARMUP (50; at most PLUGS/2), MEM_SLACK_KB.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd perl
[[ -c /dev/loop-control ]] || skip "no /dev/loop-control"
ensure_udevd
install_test_rule

PLUGS=${PLUGS:-$([[ -n ${BMAP_SANITIZERS:-} ]] && echo 100 || echo 500)}
WARMUP=${WARMUP:-50}
MEM_SLACK_KB=${MEM_SLACK_KB:-512}
[[ $PLUGS =~ ^[0-9]+$ && $PLUGS -ge 2 ]] || fail "PLUGS must be a number >= 2 (got '$PLUGS')"
((WARMUP > PLUGS / 2)) && WARMUP=$((PLUGS / 2))

# loopctl add|remove N: LOOP_CTL_ADD / LOOP_CTL_REMOVE on /dev/loop-control,
# through one perl for the whole test that answers "ok" or the error per
# line: a perl started for each of the 1000 calls was a third of its time.
coproc LOOPCTL {
	exec perl -e '$| = 1;
		open(my $f, "+<", "/dev/loop-control") or die "/dev/loop-control: $!\n";
		while (my $l = <STDIN>) {
			my ($op, $n) = split " ", $l;
			print defined(ioctl($f, $op eq "add" ? 0x4C80 : 0x4C81, $n + 0)) ? "ok\n" : "$op $n: $!\n";
		}'
}
LOOPCTL_IN=${LOOPCTL[1]} LOOPCTL_OUT=${LOOPCTL[0]}
loopctl() {
	local reply
	echo "$1 $2" >&"$LOOPCTL_IN" && read -r reply <&"$LOOPCTL_OUT" ||
		{ echo "loopctl $1 $2: the perl helper is gone" >&2; return 1; }
	[[ $reply == ok ]] || { echo "$reply" >&2; return 1; }
}

# The loop number this test created and has not removed yet (only that
# one is removed at exit), and the node attached at the moment.
ADDED=
ATTACHED=
remove_loop() {
	local n=$1
	for _ in $(seq 100); do
		# udevd's probe after the detach holds the device for a moment (EBUSY).
		loopctl remove "$n" 2>/dev/null && return 0
		sleep 0.05
	done
	loopctl remove "$n"
}
cleanup_loops() {
	[[ -n $ATTACHED ]] && losetup -d "$ATTACHED" 2>/dev/null
	[[ -n $ADDED ]] && { remove_loop "$ADDED" || log "could not remove loop$ADDED"; }
}
on_exit cleanup_loops
on_exit "kill $LOOPCTL_PID 2>/dev/null"

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=2M data=0:64K"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "plugs"; database = "$db"; max_device_size = "1G";
            require_tag = "bmap-station"; cache_dir = "$TEST_TMP/cache"; };
profiles = (
  { name = "plug"; image = "disk.img"; removable_only = false;
    match = { serial = "plug-*"; bus = "loop"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# measure LABEL: "LABEL fds rss_kb vmdata_kb journal_kb"
measure() {
	printf '%s %s %s %s %s\n' "$1" "$(ls "/proc/$STATION_PID/fd" | wc -l)" \
		"$(status_kb "$STATION_PID" VmRSS)" "$(status_kb "$STATION_PID" VmData)" \
		"$(q "$db" "select page_count * page_size / 1024 from pragma_page_count, pragma_page_size")"
}
# The station has seen every card go: none left in its live view.
all_gone() { wait_for "$db" "select count(*) from live where serial glob 'plug-*'" 0 30; }

# plug I N: the card plug-I.img on a new loop device N, until the station
# recorded it; then pulled and the device deleted.
plug() {
	local i=$1 n=$2 file=$CARD_DIR/plug-$1.img node=/dev/loop$2
	loopctl add "$n" || fail "LOOP_CTL_ADD $n"
	ADDED=$n
	# Without a devtmpfs /dev gets no node for a new number (PLATFORM.md).
	if [[ ! -b $node ]]; then
		node=$TEST_TMP/loop$n
		mknod "$node" b "$(cut -d: -f1 "/sys/block/loop$n/dev")" \
			"$(cut -d: -f2 "/sys/block/loop$n/dev")" || fail "mknod $node"
	fi
	truncate -s 1M "$file" || fail "cannot create $file"
	losetup "$node" "$file" || fail "cannot attach $file to $node"
	ATTACHED=$node
	for _ in $(seq 1000); do
		grep -qF "(serial plug-$i.img): refused (job " "$TEST_TMP/station.log" && break
		sleep 0.01
	done
	grep -qF "(serial plug-$i.img): refused (job " "$TEST_TMP/station.log" ||
		fail "plug $i (loop$n): the station did not record it within 10 s"
	losetup -d "$node" || fail "cannot detach $node"
	ATTACHED=
	rm -f -- "$file" "$TEST_TMP/loop$n"
	remove_loop "$n" || fail "LOOP_CTL_REMOVE $n"
	ADDED=
}

# Numbers far above what `losetup -f` hands out, below the 2^20 minors;
# one taken by someone else is passed over.
n=$((600000 + ($$ % 1000) * 400))
t0=$(date +%s.%N)
for ((i = 1; i <= PLUGS; i++)); do
	while [[ -e /sys/block/loop$n ]]; do n=$((n + 1)); done
	plug "$i" "$n"
	n=$((n + 1))
	station_alive
	if ((i == WARMUP)); then
		all_gone || fail "after plug $i the station still shows cards that went"
		warm=$(measure warm-up)
	fi
done
all_gone || fail "after the last plug the station still shows cards that went"
end=$(measure end)
t1=$(date +%s.%N)

read -r _ wfd wrss wdata wdb <<<"$warm"
read -r _ efd erss edata edb <<<"$end"
log "$PLUGS plugs on as many syspaths in $(printf '%.1f' "$(echo "$t1 - $t0" | bc)")s"
log "after plug $WARMUP: fds $wfd, RSS $wrss kB, VmData $wdata kB, journal $wdb KiB"
log "after plug $PLUGS: fds $efd, RSS $erss kB, VmData $edata kB, journal $edb KiB"
[[ $efd == "$wfd" ]] || fail "open fds grew from $wfd to $efd"
cache=$((edb - wdb < 2000 ? edb - wdb : 2000))
[[ -n ${BMAP_SANITIZERS:-} ]] && log "sanitizer build: memory growth not judged (ASan's quarantine)"
for v in "RSS $wrss $erss" "VmData $wdata $edata"; do
	[[ -n ${BMAP_SANITIZERS:-} ]] && break
	read -r what from to <<<"$v"
	((to - from <= cache + MEM_SLACK_KB)) ||
		fail "$what grew from $from kB to $to kB over $((PLUGS - WARMUP)) plugs, more than the journal's growth ($((edb - wdb)) KiB, at most 2000 KiB cached) + $MEM_SLACK_KB kB"
done
# One row per plug: an event read late (a loop device's 'add' once its file
# is on it) is not a medium of its own.
[[ $(q "$db" "select count(*) from jobs where serial glob 'plug-*'") == "$PLUGS" ]] ||
	fail "$(q "$db" "select count(*) from jobs where serial glob 'plug-*'") rows for $PLUGS plugs"
[[ $(q "$db" "select count(*) from jobs where serial glob 'plug-*' and outcome = 'refused' and error like 'too small%'") == "$PLUGS" ]] ||
	fail "not every plug was refused as too small: $(q "$db" "select outcome, count(*), min(error) from jobs where serial glob 'plug-*' group by 1")"
[[ $(q "$db" "select count(distinct syspath) from jobs where serial glob 'plug-*'") == "$PLUGS" ]] ||
	fail "the plugs did not get a syspath each"

stop_station
log "ok"
