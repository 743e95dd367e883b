#!/bin/bash
# Hostile device strings: serials, vendors and models holding quotes, commas,
# semicolons, '$()', backquotes, '%serial', ESC sequences, tabs, C1 controls
# and bidi overrides, invalid UTF-8, 4 KiB, given to loop devices by a udev
# rule (IMPORT{program}), go through the daemon and come out
#  - in the journal, byte for byte (and udev gave exactly these bytes)
#  - in `report --format csv`, byte for byte, every record with the header's
#    number of fields (python's csv module)
#  - in `report --format json`, valid JSON and UTF-8 (invalid sequences as
#    U+FFFD), equal to the value
#  - in the report table, `history SERIAL` and `status`: one line per row,
#    no control character, bidi override or invalid UTF-8 for a terminal
#  - `history SERIAL` finds the job by the exact bytes; `status --json` parses
#  - in the daemon's log: one line per message, nothing a terminal acts on,
#    also when a hook with the value in its command line fails
#  - in an on_success hook's argv: each '%serial' argument whole, and nothing
#    run by a shell (no 'pwned' file)
# Newline and CR cannot come from udev (see tests/lib/hostile.py): rows with
# them are copied into the journal to check the reports.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd python3
ensure_udevd

H="python3 $TESTS_DIR/lib/hostile.py"
mkdir -p "$CARD_DIR" "$TEST_TMP/hooks" "$TEST_TMP/cwd"
on_exit "rm -rf '$CARD_DIR'"
read -r -a names <<<"$($H values "$TEST_TMP")" || fail "values"
$H props "$TEST_TMP" "$CARD_DIR" || fail "props"
rule=/run/udev/rules.d/61-bmap-station-hostile-$$.rules
cat >"$rule" <<RULE
SUBSYSTEM=="block", KERNEL=="loop*", ENV{DEVTYPE}=="disk", ATTR{loop/backing_file}=="$CARD_DIR/hx-*.img", IMPORT{program}="/bin/cat \$attr{loop/backing_file}.props", ENV{ID_BUS}="hostile", TAG+="bmap-station"
RULE
on_exit "rm -f '$rule'; udevadm control --reload 2>/dev/null"
udevadm control --reload

# The hook writes its arguments, NUL-separated, to hooks/job-JOB, then
# fails, so that the daemon logs its command line.
cat >"$TEST_TMP/argv.sh" <<HOOK
#!/bin/bash
f=$TEST_TMP/hooks/job-\$1
shift
printf '%s\0' "\$@" >"\$f"
exit 3
HOOK
chmod +x "$TEST_TMP/argv.sh"

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=2M data=0:64K data=1M:64K"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = {
  name = "hostile"; database = "$db"; max_workers = 4; max_device_size = "1G";
  cache_dir = "$TEST_TMP/cache";
};
profiles = (
  { name = "p"; image = "$img"; removable_only = false;
    hooks = { on_success = [ "$TEST_TMP/argv.sh", "%job", "%serial", "<%serial>", "%serial%serial" ]; };
    match = { bus = "hostile"; }; }
);
CONF
# Run from its own folder: a command injected through a value would leave
# its file there or in $TEST_TMP.
(cd "$TEST_TMP/cwd" && exec "$BMAP_STATION" run --config "$TEST_TMP/station.conf") \
	>>"$TEST_TMP/station.log" 2>&1 &
STATION_PID=$!
on_exit "stop_station"
for _ in $(seq 50); do
	grep -q "' running: " "$TEST_TMP/station.log" && break
	sleep 0.1
done

# Four cards at a time.
done_jobs=0
for ((b = 0; b < ${#names[@]}; b += 4)); do
	batch=("${names[@]:b:4}")
	devs=()
	for n in "${batch[@]}"; do
		insert_card "$(make_card "hx-$n.img" 4M)"
		devs+=("$LOOP_DEV")
	done
	done_jobs=$((done_jobs + ${#batch[@]}))
	wait_for "$db" "select count(*) from jobs where bus = 'hostile' and outcome <> 'running'" $done_jobs 60 ||
		fail "cards ${batch[*]} were not flashed"
	wait_for "$db" "select count(*) from hooks" $done_jobs 30 || fail "hooks of ${batch[*]} did not run"
	for i in "${!batch[@]}"; do
		$H udev "$TEST_TMP" "${batch[$i]}" "${devs[$i]}" || exit 1
	done
	$H status "$BMAP_STATION" "$db" "$TEST_TMP" "${batch[@]}" || exit 1
	for d in "${devs[@]}"; do detach_loop "$d"; done
	wait_for "$db" "select count(*) from live" 0 30 || fail "the station did not see ${batch[*]} go"
done
stop_station
$H inject "$db" "$TEST_TMP" || fail "inject"
$H final "$BMAP_STATION" "$db" "$TEST_TMP" || exit 1
log "ok"
