#!/bin/bash
# Processes a hook leaves behind outlived hook_timeout: a background job, a
# `setsid` child (a new session and process group) and a double fork, from
# a hook that ends at once and from one still running at hook_timeout. Only
# the hook's process group was killed, and only while the hook itself ran.
# Now nothing a hook started is left once hook_timeout has passed (its
# keeper is their subreaper and kills them), and the hook's row says it
# timed out.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd setsid
ensure_udevd
# A tag of this test's own: cards other tests attach are not tagged with it
# and get no hooks here.
tag=bmap-hooks-$$
mkdir -p "$CARD_DIR"
on_exit "rm -rf '$CARD_DIR'"
rule=/run/udev/rules.d/61-bmap-station-leftover-$$.rules
cat >"$rule" <<RULE
SUBSYSTEM=="block", KERNEL=="loop*", ENV{DEVTYPE}=="disk", ATTR{loop/backing_file}=="$CARD_DIR/*", PROGRAM="/usr/bin/basename \$attr{loop/backing_file}", ENV{ID_SERIAL_SHORT}="%c", ENV{ID_BUS}="loop", TAG+="$tag"
RULE
on_exit "rm -f '$rule'; udevadm control --reload 2>/dev/null"
udevadm control --reload

# Every process a hook starts sleeps for 1000.TOKEN seconds: TOKEN is this
# test's own, so /proc/*/cmdline finds them (and only them).
token=$$$RANDOM
# (The pattern's backslash keeps grep's own command line out of it.)
procs() { # the pids whose command line holds our token
	local f
	for f in $(grep -las "1000\.$token" /proc/[0-9]*/cmdline); do
		f=${f#/proc/}
		echo "${f%/cmdline}"
	done
}
on_exit 'for p in $(procs); do kill -KILL "$p" 2>/dev/null; done'

cat >"$TEST_TMP/leave.sh" <<HOOK
#!/bin/sh
sleep 1000.${token}1 &
setsid sleep 1000.${token}2 </dev/null >/dev/null 2>&1 &
( setsid sh -c 'sleep 1000.${token}3 & sleep 1000.${token}4' </dev/null >/dev/null 2>&1 & )
exit 0
HOOK
cat >"$TEST_TMP/stay.sh" <<HOOK
#!/bin/sh
setsid sleep 1000.${token}5 </dev/null >/dev/null 2>&1 &
exec sleep 1000.${token}6
HOOK
chmod +x "$TEST_TMP/leave.sh" "$TEST_TMP/stay.sh"

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "hooks-leftover"; database = "$db"; max_device_size = "1G"; require_tag = "$tag";
  hook_timeout = 2; cache_dir = "$TEST_TMP/cache";
  hooks = { on_insert = [ "$TEST_TMP/leave.sh" ]; on_remove = [ "$TEST_TMP/stay.sh" ]; }; };
profiles = ( { name = "none"; image = "none.img"; match = { serial = "no-such-card"; }; } );
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"
card=$(make_card leftover-1.img 8M)
insert_card "$card"
dev=$LOOP_DEV
for _ in $(seq 50); do
	[[ $(procs | wc -l) -ge 4 ]] && break
	sleep 0.1
done
[[ $(procs | wc -l) -ge 4 ]] || fail "the on_insert hook did not start its processes: $(procs)"
detach_loop "$dev"

# Each hook's row comes once it and all it started are gone; give the old
# behaviour every chance (hook_timeout is 2 s).
wait_for "$db" "select count(*) from hooks" 2 30 || fail "the hooks were not recorded"
for _ in $(seq 50); do
	[[ -z $(procs) ]] && break
	sleep 0.1
done
left=$(procs)
[[ -z $left ]] || fail "processes the hooks started outlived hook_timeout: $(for p in $left; do tr '\0' ' ' <"/proc/$p/cmdline"; echo "(pid $p)"; done)"
row=$(q "$db" "select ifnull(exit_status, 0), ifnull(signal, 0), timed_out from hooks where event = 'on_insert'")
[[ $row == "0|0|1" ]] || fail "on_insert (ended at once, left 4 or 5 behind): '$row', expected 0|0|1"
row=$(q "$db" "select ifnull(exit_status, 0), ifnull(signal, 0), timed_out from hooks where event = 'on_remove'")
[[ $row == "0|9|1" ]] || fail "on_remove (still running at hook_timeout): '$row', expected 0|9|1"
grep -Eq "on_insert hook .* left [4-9] process\(es\) running at hook_timeout" "$TEST_TMP/station.log" ||
	fail "the log does not say what the on_insert hook left behind"
station_alive
log "ok: nothing the hooks started outlived hook_timeout"
