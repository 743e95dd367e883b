#!/bin/bash
# `bmap-station check` (issue 10, items 5 and 24): it printed device strings
# and names unescaped (the one output path without the sanitizer), and said
# "ok" to configurations `run` fails on: an image or bmap that is a
# directory, a hook program that does not exist, a journal folder that is
# missing or read-only (exit 1 now), and a missing image (a warning: the
# image may be copied in later, its cards fail until then).
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
ensure_udevd
install_test_rule

img=$TEST_TMP/disk.img
mk_image_bmap "$img" "size=8M data=0:1M"
mkdir -p "$TEST_TMP/images.d" "$TEST_TMP/ro"
conf() { # conf FILE DATABASE IMAGE HOOK [PROFILE-NAME]
	cat >"$1" <<-CONF
	station = { name = "check\x1b[2J"; database = "$2"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; };
	profiles = ( { name = "${5:-p}"; image = "$3"; removable_only = false; hooks = { on_success = [ "$4" ]; };
	               match = { serial = "good-*"; }; } );
	CONF
}
# check_fails CONF NEEDLE: exit 1, NEEDLE on stderr, no "ok" claimed.
check_fails() {
	local rc=0
	"$BMAP_STATION" check --config "$1" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
	[[ $rc -ne 0 ]] || fail "check said ok to $2: $(cat "$TEST_TMP/out")"
	grep -qF -- "$2" "$TEST_TMP/err" || fail "check does not name '$2': $(cat "$TEST_TMP/err")"
	grep -q ': ok$' "$TEST_TMP/out" && fail "check still prints ok: $(head -1 "$TEST_TMP/out")"
	return 0
}

conf "$TEST_TMP/good.conf" "$TEST_TMP/journal.db" "$img" /bin/true
"$BMAP_STATION" check --config "$TEST_TMP/good.conf" >"$TEST_TMP/out" 2>&1 ||
	fail "a good configuration: $(cat "$TEST_TMP/out")"

# An image not there yet is a warning (it may be copied in later), not "ok".
conf "$TEST_TMP/c1.conf" "$TEST_TMP/journal.db" "$TEST_TMP/missing.img" /bin/true
"$BMAP_STATION" check --config "$TEST_TMP/c1.conf" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
	fail "check failed on a missing image: $(cat "$TEST_TMP/err")"
grep -qF "$TEST_TMP/missing.img' is not there" "$TEST_TMP/err" || fail "no warning for the missing image: $(cat "$TEST_TMP/err")"
grep -q ': ok$' "$TEST_TMP/out" && fail "check says ok with the image missing"
conf "$TEST_TMP/c2.conf" "$TEST_TMP/journal.db" "$TEST_TMP/images.d" /bin/true
check_fails "$TEST_TMP/c2.conf" "is a directory"
conf "$TEST_TMP/c3.conf" "$TEST_TMP/journal.db" "$img" /usr/bin/no-such-hook-$$
check_fails "$TEST_TMP/c3.conf" "/usr/bin/no-such-hook-$$"
conf "$TEST_TMP/c4.conf" "$TEST_TMP/no-such-folder/journal.db" "$img" /bin/true
check_fails "$TEST_TMP/c4.conf" "$TEST_TMP/no-such-folder"
mount -t tmpfs -o ro,size=1M tmpfs "$TEST_TMP/ro" || fail "cannot mount a read-only tmpfs"
on_exit "umount '$TEST_TMP/ro'"
conf "$TEST_TMP/c5.conf" "$TEST_TMP/ro/journal.db" "$img" /bin/true
check_fails "$TEST_TMP/c5.conf" "read-only"

# Hostile strings: a vendor (set by a rule, as a card's firmware would
# report it), a profile and a station name with terminal controls. Nothing
# reaches the output raw.
rule=/run/udev/rules.d/62-bmap-station-check-$$.rules
cat >"$rule" <<RULE
SUBSYSTEM=="block", KERNEL=="loop*", ENV{DEVTYPE}=="disk", ATTR{loop/backing_file}=="$CARD_DIR/*", ENV{ID_VENDOR}=e"Evil\x1b[31m\x1b]0;pwned\x07Corp"
RULE
on_exit "rm -f '$rule'; udevadm control --reload"
udevadm control --reload
card=$(make_card good-1.img 16M)
insert_card "$card"
udevadm settle
sed 's|match = { serial = "good-\*"; };|match = { vendor = "Nice*"; };|' "$TEST_TMP/good.conf" |
	sed 's|name = "p";|name = "prof\\x1b[1m";|' >"$TEST_TMP/c6.conf"
"$BMAP_STATION" check --config "$TEST_TMP/c6.conf" >"$TEST_TMP/out" 2>&1 || fail "check: $(cat "$TEST_TMP/out")"
grep -q "$LOOP_DEV" "$TEST_TMP/out" || fail "check does not list $LOOP_DEV: $(cat "$TEST_TMP/out")"
if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$TEST_TMP/out"; then
	fail "control characters in check's output: $(od -c "$TEST_TMP/out" | grep -m3 '033')"
fi
grep -q 'Evil?\[31m' "$TEST_TMP/out" || fail "the vendor is not shown (made safe): $(grep -a "$LOOP_DEV" "$TEST_TMP/out")"
grep -q 'prof?\[1m' "$TEST_TMP/out" || fail "the profile name is not shown (made safe): $(cat "$TEST_TMP/out")"
log "ok"
