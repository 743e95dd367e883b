#!/bin/bash
# once_per_serial was checked only when a card was queued (issue 10, item
# 10): two cards with one serial inserted together both passed the check
# and both were flashed. The rule now holds at job start: the second waits
# for the first and is refused once it has passed.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
. "$TESTS_DIR/lib/throttle.sh"
need_station_env
need_ours
need_loops 2
throttle_init
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M data=4M:2M"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "once-queued"; database = "$db"; max_device_size = "1G"; max_workers = 2;
            cache_dir = "$TEST_TMP/cache"; };
profiles = (
  { name = "serialised"; image = "disk.img"; removable_only = false; once_per_serial = true;
    match = { serial = "dup*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf" throttled
station_ready "$db"

# Two cards, one serial (the test rule names a card after its backing
# file), each 3 MiB at 2 MiB/s: the first job runs while the second is queued.
mkdir -p "$CARD_DIR/a" "$CARD_DIR/b"
for d in a b; do
	head -c 16M /dev/zero | tr '\0' '\245' >"$CARD_DIR/$d/dup.img"
done
attach_card_at_speed "$CARD_DIR/a/dup.img" 2M 0
first=$CARD_DEV
attach_card_at_speed "$CARD_DIR/b/dup.img" 2M 0
second=$CARD_DEV

wait_for "$db" "select count(*) from jobs where serial='dup.img' and outcome!='running'" 2 60 ||
	fail "the two jobs did not end"
got=$(q "$db" "select group_concat(outcome, ',') from (select outcome from jobs where serial='dup.img' order by job)")
[[ $got == success,refused ]] || fail "outcomes $got, expected success,refused (one serial flashed twice?)"
q "$db" "select error from jobs where serial='dup.img' and outcome='refused'" |
	grep -q "already passed with profile serialised" || fail "the refusal does not say why"
# The refused card is untouched.
refused=$(q "$db" "select devnode from jobs where outcome='refused'")
file=$CARD_DIR/b/dup.img
[[ $refused == "$first" ]] && file=$CARD_DIR/a/dup.img
cmp -s <(head -c 1M "$file") <(head -c 1M /dev/zero | tr '\0' '\245') || fail "the refused card $refused was written"
log "ok ($first, $second)"
