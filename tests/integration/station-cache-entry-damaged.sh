#!/bin/bash
# A complete image cache entry whose bytes changed after it was filled
# (one flipped byte inside a mapped range): cards copied from a complete
# entry are not hashed on the way (the entry was checked as it was filled,
# the card is read back against the bmap), so the damage shows at the
# card's read-back. The card is failed naming the damaged entry, the entry
# is removed, and the next card fills it again and is good. Before, every
# card after the damage failed on the same entry ("checksum mismatch ...
# (image file .../cache/KEY.img)"), which stayed. And an image that does
# not match its bmap, read along while the cache is filled (no hashing on
# the way either): the cards fail with the filler's verdict, not as cards
# that read back wrong.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd zstd
need_loops 3
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_image_bmap "$im/disk.img" "size=24M data=0:1M data=4M:6M data=20M:2M" zst
cp "$im/disk.img" "$im/bad.img"
cp "$im/disk.img.bmap" "$im/bad.img.bmap"
printf 'X' | dd of="$im/bad.img" bs=1 seek=$((5 * 1048576 + 77)) conv=notrunc status=none
zstd -q "$im/bad.img" -o "$im/bad.img.zst" || fail "zstd"

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "entry-damaged"; database = "$db"; max_workers = 2;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache"; cache_prefill = false; };
profiles = (
  { name = "zst"; image = "$im/disk.img.zst"; bmap = "$im/disk.img.bmap"; removable_only = false;
    verify = "readback"; match = { serial = "a-*"; }; },
  { name = "sum"; image = "$im/disk.img.zst"; bmap = "$im/disk.img.bmap"; removable_only = false;
    verify = "checksums"; match = { serial = "s-*"; }; },
  { name = "bad"; image = "$im/bad.img.zst"; bmap = "$im/bad.img.bmap"; removable_only = false;
    verify = "readback"; match = { serial = "b-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

card() { # card N OUTCOME [PREFIX]: inserts card PREFIX-N (a-N), waits for OUTCOME
	c[$1]=$(make_card "${3:-a}-$1.img" 32M)
	insert_card "${c[$1]}"
	wait_for "$db" "select outcome from jobs where serial = '${3:-a}-$1.img'" "$2" 60 ||
		fail "card ${3:-a}-$1: $(q "$db" "select serial, outcome, error from jobs")"
}
flip() { # flip: one byte in the middle of the 6 MiB range of the entry, in place
	local off=$((7 * 1048576 + 12345)) b
	b=$(od -An -tu1 -j "$off" -N1 "$entry" | tr -d ' ')
	printf "\\$(printf '%03o' $((b ^ 0xff)))" | dd of="$entry" bs=1 seek="$off" conv=notrunc status=none
}
card 1 success
entry=$TEST_TMP/cache/$(cache_key "$im/disk.img.zst" "$im/disk.img.bmap").img
[[ -f $entry ]] || fail "no cache entry $entry: $(ls "$TEST_TMP/cache")"
flip

card 2 failed
err=$(q "$db" "select error from jobs where serial = 'a-2.img'")
[[ $err == *"image cache entry '$entry' is damaged"* && $err == *removed* ]] ||
	fail "card a-2's error does not name the damaged entry: $err"
[[ ! -e $entry ]] || fail "the damaged entry $entry is still there"

card 3 success
"$BMAPTOOL" -q verify --bmap "$im/disk.img.bmap" "$im/disk.img" "${c[3]}" || fail "a-3 does not hold the image"
n=$(grep -c "cache built" "$TEST_TMP/station.log")
[[ $n == 2 ]] || fail "the cache was built $n times, not twice: $(grep cache "$TEST_TMP/station.log")"

# With verify = checksums the card's copy hashes what it reads from the
# entry and finds the damage itself. Regression: the entry stayed, and
# every later card failed on it ("checksum mismatch").
flip
card 1 failed s
err=$(q "$db" "select error from jobs where serial = 's-1.img'")
[[ $err == *"image cache entry '$entry' is damaged"* && $err == *removed* ]] ||
	fail "card s-1's error does not name the damaged entry: $err"
[[ ! -e $entry ]] || fail "the damaged entry $entry is still there after a checksums copy"
card 2 success s
"$BMAPTOOL" -q verify --bmap "$im/disk.img.bmap" "$im/disk.img" "${c[2]}" || fail "s-2 does not hold the image"
for i in 1 2; do
	b[$i]=$(make_card "b-$i.img" 32M)
	insert_card "${b[$i]}"
done
wait_for "$db" "select count(*) from jobs where serial glob 'b-*' and outcome is not null and outcome <> 'running'" 2 60 ||
	fail "the bad image's cards: $(q "$db" "select serial, outcome, error from jobs")"
while IFS='|' read -r serial outcome error; do
	[[ $outcome == failed && $error == *"filling the image cache failed"*"checksum mismatch"* ]] ||
		fail "card $serial of the image that does not match its bmap: $outcome: $error"
done < <(q "$db" "select serial, outcome, error from jobs where serial glob 'b-*'")
log "the bad image's cards: $(q "$db" "select serial, outcome, substr(error, 1, 90) from jobs where serial glob 'b-*'")"
log "ok: a damaged cache entry failed one card, naming it, and was filled again for the next"
