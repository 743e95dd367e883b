#!/bin/bash
# Hook values could become options: a card whose serial is "--output=x"
# gave it to the hook program as an argument it parsed as an option, and
# hooks had no other way to get the values. Now every value is in the
# hook's environment too (BMAP_STATION_SLOT, _SERIAL, _DEVNODE, _PROFILE,
# _OUTCOME, _JOB, _EVENT, _NAME: set, empty when unknown, never inherited
# from the station's own environment), and the shipped example hook
# (config/hooks/log-event) reads only those: the serial reaches it as data.
# A program given "--" before its placeholders (as the README says) takes
# the value as an operand.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
ensure_udevd

example=$TESTS_DIR/../config/hooks/log-event
[[ -x $example ]] || fail "the example hook $example is missing or not executable"
mkdir -p "$CARD_DIR" "$TEST_TMP/env" "$TEST_TMP/cwd"
on_exit "rm -rf '$CARD_DIR'"
port=bmap-test-port-$$
tag=bmap-hooks-$$ # cards other tests attach are not tagged with it
rule=/run/udev/rules.d/61-bmap-station-options-$$.rules
cat >"$rule" <<RULE
SUBSYSTEM=="block", KERNEL=="loop*", ENV{DEVTYPE}=="disk", ATTR{loop/backing_file}=="$CARD_DIR/*", PROGRAM="/usr/bin/basename \$attr{loop/backing_file}", ENV{ID_SERIAL_SHORT}="%c", ENV{ID_BUS}="loop", ENV{ID_PATH}="$port", TAG+="$tag"
RULE
on_exit "rm -f '$rule'; udevadm control --reload 2>/dev/null"
udevadm control --reload

# env.sh EVENT: what the hook's environment says, one NAME=value a line.
cat >"$TEST_TMP/env.sh" <<ENV
#!/bin/sh
env | grep '^BMAP_STATION_' | sort >"$TEST_TMP/env/\$1"
ENV
chmod +x "$TEST_TMP/env.sh"

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=4M:2M"
db=$TEST_TMP/journal.db
events=$TEST_TMP/events.log
cat >"$TEST_TMP/station.conf" <<CONF
station = {
  name = "-n opts"; database = "$db"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache";
  require_tag = "$tag";
  hooks = {
    on_insert = [ "$example", "$events" ];
    on_start = [ "$example", "$events" ];
    on_success = [ "$example", "$events" ];
    on_remove = [ "/bin/mkdir", "-p", "--", "%serial" ];
  };
};
slots = ( { name = "-A1"; path = "$port"; } );
profiles = (
  { name = "--profile"; image = "disk.img"; removable_only = false; match = { bus = "loop"; };
    hooks = { on_success = [ "$TEST_TMP/env.sh", "success" ];
              on_insert = [ "$TEST_TMP/env.sh", "insert" ]; }; }
);
CONF
# From a folder of its own: an option taken from the serial would leave a
# file "x" there. The station's own BMAP_STATION_* variables must not reach
# the hooks.
cd "$TEST_TMP/cwd" || fail "cd"
start_station "$TEST_TMP/station.conf" env BMAP_STATION_SERIAL=stale BMAP_STATION_LEAK=1
station_ready "$db"
card=$(make_card --output=x 16M)
insert_card "$card"
dev=$LOOP_DEV
mine="serial = '--output=x'"
wait_for "$db" "select outcome from jobs where $mine" success 60 || fail "the card was not flashed"
job=$(q "$db" "select job from jobs where $mine")
wait_for "$db" "select count(*) from hooks" 5 30 || fail "the hooks did not run: $(q "$db" "select event, command from hooks")"
detach_loop "$dev"
wait_for "$db" "select count(*) from hooks where event = 'on_remove'" 1 30 || fail "on_remove did not run"

want_env() { # EVENT OUTCOME JOB
	local got want
	got=$(cat "$TEST_TMP/env/$1" 2>/dev/null)
	want=$(printf '%s\n' "BMAP_STATION_DEVNODE=$dev" "BMAP_STATION_EVENT=on_$1" "BMAP_STATION_JOB=$3" \
		"BMAP_STATION_NAME=-n opts" "BMAP_STATION_OUTCOME=$2" "BMAP_STATION_PROFILE=--profile" \
		"BMAP_STATION_SERIAL=--output=x" "BMAP_STATION_SLOT=-A1")
	[[ $got == "$want" ]] || fail "on_$1: the hook's environment is
$got
expected
$want"
}
want_env insert "" ""
want_env success success "$job"

# The example: one line per event, every value as data. Hooks run each in
# a process of its own, as their events come: on_insert and on_start of a
# job that starts at once may write in either order.
mapfile -t lines <"$events"
[[ ${#lines[@]} == 3 ]] || fail "the example hook wrote ${#lines[@]} lines, expected 3: $(cat "$events")"
for ev in on_insert on_start on_success; do
	got=
	for line in "${lines[@]}"; do
		[[ $(cut -f2 <<<"$line") == "$ev" ]] && got=$(cut -f2- <<<"$line" | tr '\t' '|')
	done
	exp="$ev|-n opts|-A1|$dev|--output=x|--profile|"
	case $ev in
	on_insert) exp+="|" ;;
	on_start) exp+="|$job" ;;
	on_success) exp+="success|$job" ;;
	esac
	[[ $got == "$exp" ]] || fail "the example's line for $ev holds '$got', expected '$exp': $(cat "$events")"
done
[[ $(q "$db" "select count(*) from hooks where exit_status != 0 or signal or timed_out") == 0 ]] ||
	fail "a hook failed: $(q "$db" "select event, command, exit_status, output from hooks")"
# "--" before the placeholder: mkdir made a folder of that name.
[[ -d "$TEST_TMP/cwd/--output=x" ]] || fail "mkdir -p -- %serial did not take the serial as its operand"
[[ -z $(find "$TEST_TMP/cwd" -name x) ]] || fail "a file x appeared: the serial was taken as an option"
log "ok: a serial, slot, profile and station name starting with '-' reached the hooks as data"
