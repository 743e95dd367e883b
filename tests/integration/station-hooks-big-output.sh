#!/bin/bash
# A hook that prints more than its pipe holds (1 MiB) was killed as timed
# out: the station read its output only on its half-second tick, so the hook
# sat blocked on a full pipe until hook_timeout. Now its output is read as
# it comes: the hook finishes, and its row has its own exit status, no
# time-out, and the first 4 KiB of what it printed.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
ensure_udevd
# A tag of this test's own: cards other tests attach are not tagged with it
# and get no hooks here.
tag=bmap-hooks-$$
mkdir -p "$CARD_DIR"
on_exit "rm -rf '$CARD_DIR'"
rule=/run/udev/rules.d/61-bmap-station-big-output-$$.rules
cat >"$rule" <<RULE
SUBSYSTEM=="block", KERNEL=="loop*", ENV{DEVTYPE}=="disk", ATTR{loop/backing_file}=="$CARD_DIR/*", PROGRAM="/usr/bin/basename \$attr{loop/backing_file}", ENV{ID_SERIAL_SHORT}="%c", ENV{ID_BUS}="loop", TAG+="$tag"
RULE
on_exit "rm -f '$rule'; udevadm control --reload 2>/dev/null"
udevadm control --reload

# The card matches no profile (ignored): no worker runs, so nothing but the
# hook wakes the station.
cat >"$TEST_TMP/loud.sh" <<'LOUD'
#!/bin/sh
seq 1 200000
echo "after 1 MiB" >&2
exit 3
LOUD
chmod +x "$TEST_TMP/loud.sh"
[[ $(seq 1 200000 | wc -c) -gt 1048576 ]] || fail "the hook would print less than 1 MiB"
want=$(seq 1 200000 | head -c 4096)

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "hooks-big-output"; database = "$db"; max_device_size = "1G"; require_tag = "$tag";
  hook_timeout = 4; cache_dir = "$TEST_TMP/cache";
  hooks = { on_insert = [ "$TEST_TMP/loud.sh" ]; }; };
profiles = ( { name = "none"; image = "none.img"; match = { serial = "no-such-card"; }; } );
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"
card=$(make_card loud-1.img 8M)
insert_card "$card"
wait_for "$db" "select count(*) from hooks where event = 'on_insert'" 1 30 ||
	fail "the on_insert hook was not recorded"
row=$(q "$db" "select ifnull(exit_status, 0), ifnull(signal, 0), timed_out, length(output) from hooks")
[[ $row == "3|0|0|4096" ]] ||
	fail "the hook's row (exit_status|signal|timed_out|output length) is '$row', expected 3|0|0|4096"
[[ $(q "$db" "select output from hooks") == "$want" ]] ||
	fail "the output kept is not the first 4 KiB the hook printed"
station_alive
log "ok: a hook printing $(seq 1 200000 | wc -c) bytes ended with its own status after $(q "$db" "select round(duration, 3) from hooks") s, 4 KiB kept"
