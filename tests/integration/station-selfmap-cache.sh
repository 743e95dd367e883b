#!/bin/bash
# The image cache unpacks a self-mapped image without a bmap once: a
# .simg.xz (img2simg, then xz: its map is known only once it is read) with
# three cards and a zlib-compressed qcow2 (qemu-img convert -c) with two.
# Each image's entry is filled once (one "cache built" per image, the other
# cards "cache used"), holds the virtual disk with a 2.0 bmap of it next to
# it (KEY.bmap, SHA-256 range checksums), and every card holds what
# simg2img / qemu-img convert -O raw make of the image on every byte that
# bmap maps (and on the raw image's data), read back by the station. The
# CPU the station's children took (workers and filler, cutime+cstime) is
# printed. With station.cache_prefill, both entries are made before any
# card. Before the cache unpacked them, every card decoded the image
# itself, and the log said "cache not used".
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/station.sh"
need_station_env
need_ours
need_cmd qemu-img
need_cmd img2simg
need_cmd simg2img
need_cmd xz
need_loops 5
ensure_udevd
install_test_rule

im=$TEST_TMP/images
mkdir -p "$im"
mk_sparse_image "$TEST_TMP/disk.raw" \
	"size=40M+512 data=0:1M islands=2M:4K:40:64K data=9M:12M data=40M-4K:4608"
"$BMAPTOOL" -q create -o "$TEST_TMP/disk.bmap" "$TEST_TMP/disk.raw" || fail "create"
img2simg "$TEST_TMP/disk.raw" "$TEST_TMP/disk.simg" || fail "img2simg"
xz -T1 -1 -c "$TEST_TMP/disk.simg" >"$im/disk.simg.xz" || fail "xz"
qemu-img convert -q -c -O qcow2 "$TEST_TMP/disk.raw" "$im/disk.qcow2" || fail "qemu-img convert"
# The peers' virtual disks.
xz -dc "$im/disk.simg.xz" >"$TEST_TMP/back.simg" && simg2img "$TEST_TMP/back.simg" "$TEST_TMP/simg.raw" ||
	fail "simg2img"
qemu-img convert -q -O raw "$im/disk.qcow2" "$TEST_TMP/qcow2.raw" || fail "qemu-img convert -O raw"
ls "$im"/*.bmap >/dev/null 2>&1 && fail "a bmap lies next to the images"

db=$TEST_TMP/journal.db
cat >"$TEST_TMP/station.conf" <<CONF
station = { name = "selfmap-cache"; database = "$db"; max_workers = 5;
  require_tag = "bmap-station"; max_device_size = "1G"; cache_dir = "${SELFMAP_CACHE_DIR-$TEST_TMP/cache}";
  cache_prefill = false; };
profiles = (
  { name = "simgxz"; image = "$im/disk.simg.xz"; removable_only = false;
    verify = "readback"; match = { serial = "s-*"; }; },
  { name = "qcow2"; image = "$im/disk.qcow2"; removable_only = false;
    verify = "readback"; match = { serial = "q-*"; }; }
);
CONF
start_station "$TEST_TMP/station.conf"
station_ready "$db"

declare -A c
for s in s-1 s-2 s-3 q-1 q-2; do
	c[$s]=$(make_card "$s.img" 64M)
	insert_card "${c[$s]}"
done
wait_for "$db" "select count(*) from jobs where outcome != 'running'" 5 180 ||
	fail "the jobs did not end: $(q "$db" "select serial, outcome, error from jobs")"
bad=$(q "$db" "select serial || ': ' || outcome || ' ' || coalesce(error, '') from jobs where outcome != 'success'")
[[ -z $bad ]] || fail "not every card succeeded: $bad"
# The filler is the station's child too: gone once its entry is named.
sleep 0.5
read -r ut st < <(awk '{print $16, $17}' "/proc/$STATION_PID/stat")
tck=$(getconf CLK_TCK)
log "CPU of the station's children (workers, fillers): $(awk -v u="$ut" -v s="$st" -v t="$tck" \
	'BEGIN { printf "%.2f s (user %.2f, system %.2f)", (u + s) / t, u / t, s / t }')"
[[ -n ${SELFMAP_CACHE_DIR+x} ]] && { log "cache_dir set by SELFMAP_CACHE_DIR: only measured"; exit 0; }

for f in disk.simg.xz:simg.raw:s-1,s-2,s-3 disk.qcow2:qcow2.raw:q-1,q-2; do
	IFS=: read -r img ref cards <<<"$f"
	key=$(
		{ stat -c '%d %i %s %.9Y %.9Z' "$im/$img" | tr -d '\n'; printf 'self-mapped\0'; } |
			sha256sum | cut -c1-64
	)
	entry=$TEST_TMP/cache/$key.img
	[[ -f $entry && -f $TEST_TMP/cache/$key.bmap ]] ||
		fail "no entry $key.img with its bmap for $img: $(ls "$TEST_TMP/cache")"
	grep -q '<bmap version="2.0">' "$TEST_TMP/cache/$key.bmap" &&
		grep -q 'chksum="[0-9a-f]\{64\}"' "$TEST_TMP/cache/$key.bmap" ||
		fail "$key.bmap is not a 2.0 bmap with SHA-256 checksums"
	n=$(grep -c "cache built: $entry" "$TEST_TMP/station.log")
	[[ $n == 1 ]] || fail "the entry of $img was filled $n times, not once: $(grep cache "$TEST_TMP/station.log")"
	IFS=, read -ra cs <<<"$cards"
	n=$(grep -c "cache used: $entry" "$TEST_TMP/station.log")
	[[ $n == $((${#cs[@]} - 1)) ]] ||
		fail "$img: $n cards used the entry, not $((${#cs[@]} - 1)): $(grep cache "$TEST_TMP/station.log")"
	# (a bmap with checksums: each DEST is checked against them, so the
	# peer's output is checked as a DEST too)
	cp --sparse=always "$TEST_TMP/$ref" "$TEST_TMP/peer.raw"
	"$BMAPTOOL" -q verify --bmap "$TEST_TMP/cache/$key.bmap" "$TEST_TMP/$ref" "$TEST_TMP/peer.raw" ||
		fail "the peer's virtual disk $ref does not match the entry's bmap of $img"
	"$BMAPTOOL" -q verify --bmap "$TEST_TMP/cache/$key.bmap" "$TEST_TMP/$ref" "$entry" ||
		fail "the entry of $img is not the peer's virtual disk"
	for s in "${cs[@]}"; do
		"$BMAPTOOL" -q verify --bmap "$TEST_TMP/cache/$key.bmap" "$TEST_TMP/$ref" "${c[$s]}" ||
			fail "$s does not hold $ref on the entry's mapped bytes"
		# (img2simg rounds the disk up to its block: the raw image is the
		# reference for the raw image's bmap)
		"$BMAPTOOL" -q verify --bmap "$TEST_TMP/disk.bmap" "$TEST_TMP/disk.raw" "${c[$s]}" ||
			fail "$s does not hold the raw image's data"
	done
done
grep -q "cache not used" "$TEST_TMP/station.log" &&
	fail "a card did not use the cache: $(grep 'cache not used' "$TEST_TMP/station.log")"

# With station.cache_prefill, the station unpacks both before any card.
stop_station
rm -rf "$TEST_TMP/cache"
sed -i 's/cache_prefill = false/cache_prefill = true/' "$TEST_TMP/station.conf"
start_station "$TEST_TMP/station.conf"
for img in disk.simg.xz disk.qcow2; do
	key=$(
		{ stat -c '%d %i %s %.9Y %.9Z' "$im/$img" | tr -d '\n'; printf 'self-mapped\0'; } |
			sha256sum | cut -c1-64
	)
	for _ in $(seq 300); do
		[[ -f $TEST_TMP/cache/$key.img ]] && break
		sleep 0.1
	done
	[[ -f $TEST_TMP/cache/$key.img && -f $TEST_TMP/cache/$key.bmap ]] ||
		fail "the prefill did not unpack $img: $(ls "$TEST_TMP/cache"; tail -5 "$TEST_TMP/station.log")"
done
log "ok: a .simg.xz and a compressed qcow2 were each unpacked once into the cache for 5 cards, and by the prefill"
