#!/bin/bash
# once_per_serial with a USB card reader (issue 10, item 10): the serial of
# a card in such a reader is the reader's, so after one success every later
# card in it was refused. A card udev marks as sitting in a reader
# (BMAP_STATION_CARD_READER=1, as the shipped rules set for USB disks with
# removable media) is refused by such a profile with the reason, before
# anything is written, and `check` says the configuration cannot work.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
ensure_udevd
install_test_rule

rule=/run/udev/rules.d/62-bmap-station-reader-$$.rules
cat >"$rule" <<RULE
SUBSYSTEM=="block", KERNEL=="loop*", ENV{DEVTYPE}=="disk", ATTR{loop/backing_file}=="$CARD_DIR/reader-*", ENV{BMAP_STATION_CARD_READER}="1"
RULE
on_exit "rm -f '$rule'; udevadm control --reload"
udevadm control --reload

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M"
db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "once-reader"; database = "$db"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
profiles = (
  { name = "serialised"; image = "disk.img"; removable_only = false; once_per_serial = true;
    match = { serial = "reader-*"; }; }
);
CONF
card=$(make_card reader-1.img 16M)
sum=$(sha256sum <"$card")
insert_card "$card"
udevadm settle
rc=0
"$BMAP_STATION" check --config "$TEST_TMP/station.conf" >"$TEST_TMP/check.out" 2>"$TEST_TMP/check.err" || rc=$?
[[ $rc -ne 0 ]] || fail "check accepted once_per_serial for a card reader: $(cat "$TEST_TMP/check.out")"
grep -q "card reader: its cards have no serial of their own" "$TEST_TMP/check.err" ||
	fail "check does not say why: $(cat "$TEST_TMP/check.err")"

start_station "$TEST_TMP/station.conf"
wait_for "$db" "select outcome from jobs where serial='reader-1.img'" refused 30 ||
	fail "the card in a reader was not refused"
q "$db" "select error from jobs where serial='reader-1.img'" | grep -q "the card reader's, not the card's" ||
	fail "the refusal does not say why: $(q "$db" "select error from jobs where serial='reader-1.img'")"
[[ $(sha256sum <"$card") == "$sum" ]] || fail "the refused card was written"
log "ok"
