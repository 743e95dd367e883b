#!/bin/bash
# Hooks: station and profile commands run on insert, start, success, failure
# and remove, with %placeholders passed as argv entries, never through a
# shell: a hostile serial (quotes, ';', '$()', backquotes, a placeholder)
# arrives intact and runs nothing. Output, exit status and time-outs are
# recorded in the journal's hooks table.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
ensure_udevd

mkdir -p "$CARD_DIR" "$TEST_TMP/hooks" "$TEST_TMP/cwd"
on_exit "rm -rf '$CARD_DIR'"
rule=/run/udev/rules.d/61-bmap-station-hooks-$$.rules
# udev keeps this value as written ($$ is a '$', %% a '%').
cat >"$rule" <<RULE
SUBSYSTEM=="block", KERNEL=="loop*", ENV{DEVTYPE}=="disk", ATTR{loop/backing_file}=="$CARD_DIR/*", ENV{ID_SERIAL_SHORT}="h;\$\$(touch PWNED) 'q' \`x\` %%job", ENV{ID_BUS}="loop", TAG+="bmap-station"
RULE
on_exit "rm -f '$rule'; udevadm control --reload 2>/dev/null"
udevadm control --reload
serial="h;\$(touch PWNED) 'q' \`x\` %job"

# The hook records its arguments, one per line, in a file per call.
cat >"$TEST_TMP/rec.sh" <<'REC'
#!/bin/sh
out=$(mktemp "$HOOK_DIR/$1.XXXXXX")
shift
printf '%s\n' "$@" >"$out"
echo "hook output for $1"
REC
chmod +x "$TEST_TMP/rec.sh"
sed -i "2i HOOK_DIR=$TEST_TMP/hooks" "$TEST_TMP/rec.sh"
cat >"$TEST_TMP/slow.sh" <<'SLOW'
#!/bin/sh
sleep 30
SLOW
chmod +x "$TEST_TMP/slow.sh"

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=4M:2M"
db=$TEST_TMP/journal.db
args='"%serial", "%slot", "%devnode", "%profile", "%outcome", "%job"'
cat >"$TEST_TMP/station.conf" <<CONF
station = {
  name = "hooks"; database = "$db"; max_device_size = "1G"; hook_timeout = 1;
  cache_dir = "$TEST_TMP/cache";
  hooks = {
    on_insert = [ "rec.sh", "insert", $args ];
    on_start = [ "rec.sh", "start", $args ];
    on_success = [ "rec.sh", "success", $args ];
    on_failure = [ "rec.sh", "failure", $args ];
    on_remove = [ "rec.sh", "remove", $args ];
  };
};
profiles = (
  { name = "p"; image = "disk.img"; removable_only = false;
    hooks = { on_success = [ "slow.sh" ]; };
    match = { bus = "loop"; }; }
);
CONF
# Run from its own folder: a command injected through the serial would
# leave PWNED there.
(cd "$TEST_TMP/cwd" && exec "$BMAP_STATION" run --config "$TEST_TMP/station.conf") \
	>>"$TEST_TMP/station.log" 2>&1 &
STATION_PID=$!
on_exit "stop_station"

card=$(make_card hostile-1.img 16M)
insert_card "$card"
dev=$LOOP_DEV
wait_for "$db" "select outcome from jobs order by job desc limit 1" success || fail "not flashed"
job=$(q "$db" "select job from jobs order by job desc limit 1")
for _ in $(seq 50); do
	[[ $(q "$db" "select count(*) from hooks") -ge 4 ]] && break
	sleep 0.1
done
detach_loop "$dev"
for _ in $(seq 50); do
	ls "$TEST_TMP/hooks"/remove.* >/dev/null 2>&1 && break
	sleep 0.1
done

check_call() { # EVENT OUTCOME JOB
	local f
	f=$(ls "$TEST_TMP/hooks/$1".* 2>/dev/null | head -1)
	[[ -n $f ]] || fail "no $1 hook ran"
	mapfile -t a <"$f"
	[[ ${a[0]} == "$serial" ]] || fail "$1 hook: serial arrived as '${a[0]}', expected '$serial'"
	[[ ${a[2]} == "$dev" ]] || fail "$1 hook: devnode '${a[2]}'"
	[[ ${a[3]} == p ]] || fail "$1 hook: profile '${a[3]}'"
	[[ ${a[4]} == "$2" ]] || fail "$1 hook: outcome '${a[4]}', expected '$2'"
	[[ ${a[5]} == "$3" ]] || fail "$1 hook: job '${a[5]}', expected '$3'"
}
check_call insert "" ""
check_call start "" "$job"
check_call success success "$job"
check_call remove "" "$job"
[[ -z $(find "$TEST_TMP" -name PWNED) && ! -e PWNED ]] || fail "the hostile serial ran a command"

# The journal has what each hook did; the slow one was stopped at hook_timeout.
[[ $(q "$db" "select count(*) from hooks where event = 'on_success' and exit_status = 0 and output like 'hook output%'") == 1 ]] ||
	fail "on_success hook not recorded: $(q "$db" "select * from hooks")"
[[ $(q "$db" "select count(*) from hooks where timed_out = 1 and signal = 9 and command like '%slow.sh%'") == 1 ]] ||
	fail "the slow hook was not stopped and recorded: $(q "$db" "select event, command, exit_status, signal, timed_out from hooks")"
[[ $(q "$db" "select count(*) from hooks where job = $job") -ge 3 ]] || fail "hook rows do not name the job"
log "ok: $(q "$db" "select count(*) from hooks") hook runs recorded"
