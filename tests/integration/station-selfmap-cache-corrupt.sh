#!/bin/bash
# An Android sparse image with a wrong CRC32 chunk (after its first, RAW
# chunk), no bmap, the image cache on, two cards: the cache's filler checks
# the CRC as it unpacks the image, the fill fails and its entry is removed,
# and both cards fail with an error naming the chunk. Nothing of the image
# reaches a card (a fill is not served before it is complete): both keep
# their 0xA5. No entry, part or bmap remains in the cache. Before the cache
# unpacked self-mapped images, each worker decoded the image itself and
# wrote its first chunk to the card before the CRC failed it.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd img2simg
need_cmd python3
need_loops 2
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_sparse_image "$TEST_TMP/disk.raw" "size=20M data=0:1M islands=2M:4K:40:64K data=9M:3M"
img2simg "$TEST_TMP/disk.raw" "$TEST_TMP/good.simg" || fail "img2simg"
python3 - "$TEST_TMP/good.simg" "$im/bad.simg" <<'PY' || fail "cannot make the bad-CRC image"
import struct, sys, zlib
src = open(sys.argv[1], "rb").read()
magic, major, minor, fh, ch, bs, blks, chunks, _ = struct.unpack("<IHHHHIIII", src[:28])
# A CRC32 chunk after the first chunk, one off from the right value.
t, _, n, total = struct.unpack("<HHII", src[fh:fh + 12])
assert t == 0xcac1, "the first chunk is not RAW"
crc = zlib.crc32(src[fh + ch:fh + total])
hdr = struct.pack("<IHHHHIIII", magic, major, minor, fh, ch, bs, blks, chunks + 1, 0)
bad = struct.pack("<HHII", 0xcac4, 0, 0, 16) + struct.pack("<I", crc ^ 1)
open(sys.argv[2], "wb").write(hdr + src[28:fh + total] + bad + src[fh + total:])
PY

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "selfmap-cache-corrupt"; database = "$db"; max_workers = 2;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "$TEST_TMP/cache";
  cache_prefill = false; };
profiles = (
  { name = "badsimg"; image = "$im/bad.simg"; removable_only = false;
    verify = "readback"; match = { serial = "b-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

declare -A c
for s in b-1 b-2; do
	c[$s]=$(make_card "$s.img" 32M)
	insert_card "${c[$s]}"
done
wait_for "$db" "select count(*) from jobs where outcome != 'running'" 2 120 ||
	fail "the jobs did not end: $(q "$db" "select serial, outcome, error from jobs")"
n=$(q "$db" "select count(*) from jobs where outcome = 'success'")
[[ $n == 0 ]] || fail "$n card(s) of the image with a wrong CRC32 succeeded"
for s in b-1 b-2; do
	err=$(q "$db" "select error from jobs where serial = '$s.img'")
	[[ $err == *"filling the image cache failed"*"chunk 2 of"*CRC32* ]] ||
		fail "$s's error is not the fill's, naming the chunk: $err"
	cmp -s "${c[$s]}" <(head -c 32M /dev/zero | tr '\0' '\245') ||
		fail "$s was written to from an image that fails its CRC32"
done
sleep 0.5
left=$(ls "$TEST_TMP/cache" | grep -E '\.(img|part|bmap|tmp)$')
[[ -z $left ]] || fail "the failed fill left $left in the cache"
log "ok: a sparse image with a wrong CRC32 failed its fill, every card, and left no entry"
