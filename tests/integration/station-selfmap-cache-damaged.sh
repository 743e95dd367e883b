#!/bin/bash
# A complete cache entry of a qcow2 without a bmap (unpacked once, with the
# bmap its filler made) whose bytes changed after it was filled: the card
# copied from it fails its read-back, and the entry is checked again by the
# same mechanism as any entry's (cache_entry_check): the card is failed
# naming the damaged entry, the entry is removed, the next card fills it
# again and is good. At the station's next start, the bmap left by the
# removed entry is swept. Before the cache unpacked self-mapped images, no
# entry was made ("cache not used").
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd qemu-img
need_loops 3
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_sparse_image "$TEST_TMP/disk.raw" "size=24M data=0:1M data=4M:6M data=20M:2M"
"$BMAPTOOL" -q create -o "$TEST_TMP/disk.bmap" "$TEST_TMP/disk.raw" || fail "create"
qemu-img convert -q -c -O qcow2 "$TEST_TMP/disk.raw" "$im/disk.qcow2" || fail "qemu-img convert"

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "selfmap-damaged"; database = "$db"; max_workers = 1;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; cache_prefill = false; };
profiles = (
  { name = "qcow2"; image = "$im/disk.qcow2"; removable_only = false;
    verify = "readback"; match = { serial = "a-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

declare -A c
card() { # card N OUTCOME: inserts card a-N, waits for OUTCOME
	c[$1]=$(make_card "a-$1.img" 32M)
	insert_card "${c[$1]}"
	wait_for "$db" "select outcome from jobs where serial = 'a-$1.img'" "$2" 60 ||
		fail "card a-$1: $(q "$db" "select serial, outcome, error from jobs")"
}
card 1 success
key=$({ stat -c '%d %i %s %.9Y %.9Z' "$im/disk.qcow2" | tr -d '\n'; printf 'self-mapped\0'; } |
	sha256sum | cut -c1-64)
entry=$TEST_TMP/cache/$key.img
[[ -f $entry && -f $TEST_TMP/cache/$key.bmap ]] || fail "no cache entry $entry: $(ls "$TEST_TMP/cache")"
# One byte in the middle of the 6 MiB range, flipped in place.
off=$((7 * 1048576 + 12345))
b=$(od -An -tu1 -j "$off" -N1 "$entry" | tr -d ' ')
printf "\\$(printf '%03o' $((b ^ 0xff)))" | dd of="$entry" bs=1 seek="$off" conv=notrunc status=none

card 2 failed
err=$(q "$db" "select error from jobs where serial = 'a-2.img'")
[[ $err == *"image cache entry '$entry' is damaged"* && $err == *removed* ]] ||
	fail "card 2's error does not name the damaged entry: $err"
[[ ! -e $entry ]] || fail "the damaged entry is still there"
card 3 success
[[ -f $entry ]] || fail "card 3 did not fill the entry again: $(ls "$TEST_TMP/cache")"
"$BMAPTOOL" -q verify --bmap "$TEST_TMP/disk.bmap" "$TEST_TMP/disk.raw" "${c[3]}" ||
	fail "card 3 does not hold the image"

# An entry removed with nobody filling it again: its bmap goes at the next start.
stop_station
rm -f "$entry"
start_station "$TEST_TMP/station.conf"
for _ in $(seq 50); do
	[[ -e $TEST_TMP/cache/$key.bmap ]] || break
	sleep 0.1
done
[[ ! -e $TEST_TMP/cache/$key.bmap ]] || fail "the bmap of a removed entry was not swept: $(ls "$TEST_TMP/cache")"
log "ok: a damaged entry of a self-mapped image was found, removed and filled again"
