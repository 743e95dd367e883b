#!/bin/bash
# `bmaptool info` lists what an image holds, as a user needs to see before
# writing it: the partition table and each partition's start, size, file
# system, label and UUID, with the bytes the bmap maps inside it; for an
# image without a table (a bare file system), that file system. Checked
# against tools nobody here wrote, on the raw image: sfdisk --json (table,
# starts, sizes) and `blkid -p --offset --size` (each partition's type,
# label, UUID); the mapped bytes against the reference bmaptool's bmap,
# intersected here in Python. The same listing must come out of every form
# of the image: raw, gzip, zstd, xz (the compressed stream is read only up
# to the last partition's superblocks), qcow2 (qemu-img) and an Android
# sparse image (img2simg), in text and in --json.
#
# Images: GPT with vfat + ext4 + an empty partition; DOS with a primary and
# an extended partition holding three logical ones (their EBRs are found as
# the stream passes them), ext4 and swap inside; a bare ext4 (no table).
# A corrupt compressed image still gets its map shown, and the listing says
# why it is missing (a warning naming the image, exit 0).

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_ours
need_cmd sfdisk
need_cmd blkid
need_cmd mkfs.ext4
need_cmd mkfs.vfat
need_cmd mkswap
need_cmd python3
need_reference

cd "$TEST_TMP" || fail "no temp dir"

# fs_at IMAGE OFFSET_BYTES SIZE_BYTES -> "TYPE|LABEL|UUID" from blkid.
fs_at() {
	local out
	out=$(blkid -p -o export --offset "$2" --size "$3" "$1" 2>/dev/null) || true
	python3 - "$out" <<'EOF'
import sys
kv = dict(l.split("=", 1) for l in sys.argv[1].splitlines() if "=" in l)
print("%s|%s|%s" % (kv.get("TYPE", ""), kv.get("LABEL", ""), kv.get("UUID", "")))
EOF
}

# expected IMAGE BMAP -> one line per partition "N START SIZE MAPPED TYPE|LABEL|UUID"
# (or "whole 0 SIZE MAPPED TYPE|LABEL|UUID"), from sfdisk, blkid and the bmap.
expected() {
	local img=$1 bmap=$2 parts
	parts=$(sfdisk -J "$img" 2>/dev/null | python3 -c '
import json, sys, re
t = json.load(sys.stdin)["partitiontable"]
for p in t["partitions"]:
    n = int(re.search(r"(\d+)$", p["node"]).group(1))
    print(n, p["start"] * 512, p["size"] * 512, p.get("type", ""))
' 2>/dev/null || true)
	if [[ -z $parts ]]; then
		local size
		size=$(stat -c %s "$img")
		echo "whole 0 $size $(mapped_in "$bmap" 0 "$size") $(fs_at "$img" 0 "$size")"
		return
	fi
	while read -r n start size type; do
		local fs="||"
		# The extended partition's own entry holds no file system.
		[[ $type == 5 || $type == f || $type == 85 ]] || fs=$(fs_at "$img" "$start" "$size")
		echo "$n $start $size $(mapped_in "$bmap" "$start" "$size") $fs"
	done <<<"$parts"
}

mapped_in() {
	python3 - "$@" <<'EOF'
import sys, xml.etree.ElementTree as ET
bmap, start, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
root = ET.parse(bmap).getroot()
bs = int(root.find("BlockSize").text)
isz = int(root.find("ImageSize").text)
total = 0
for r in root.find("BlockMap"):
    a, _, b = r.text.strip().partition("-")
    a = int(a) * bs
    b = (int(b or a // bs) + 1) * bs
    b = min(b, isz)
    lo, hi = max(a, start), min(b, start + size)
    total += max(0, hi - lo)
print(total)
EOF
}

# ours IMAGE [info options] -> the same lines, from our --json.
ours() {
	"$BMAPTOOL" info --json "$@" 2>"$TEST_TMP/info.err" | python3 -c '
import json, sys
j = json.load(sys.stdin)
def n(v): return "" if v is None else v
if j["partition_table"] is None:
    f = j["filesystem"] or {}
    print("whole", 0, j["image_size"], j.get("mapped_bytes"),
          "%s|%s|%s" % (n(f.get("type")), n(f.get("label")), n(f.get("uuid"))))
for p in j["partitions"] or []:
    print(p["number"], p["start"], p["size"], p["mapped_bytes"],
          "%s|%s|%s" % (n(p["filesystem"]), n(p["label"]), n(p["uuid"])))
' || fail "info --json $* failed or printed no JSON: $(cat "$TEST_TMP/info.err")"
}

# check NAME IMAGE BMAP: the raw image's listing from the peers equals ours
# for every form of it.
check() {
	local name=$1 img=$2 bmap=$3 want got
	want=$(expected "$img" "$bmap")
	[[ -n $want ]] || fail "$name: the peers found nothing in $img"
	got=$(ours -b "$bmap" "$img")
	[[ $got == "$want" ]] || fail "$name raw: ours:"$'\n'"$got"$'\n'"peers:"$'\n'"$want"
	gzip -1 -c "$img" >"$img.gz"
	zstd -q -c "$img" >"$img.zst"
	xz -0 -T2 -c "$img" >"$img.xz"
	for c in gz zst xz; do
		got=$(ours -b "$bmap" "$img.$c")
		[[ $got == "$want" ]] ||
			fail "$name .$c: ours:"$'\n'"$got"$'\n'"peers:"$'\n'"$want"
	done
	# The text form names the same table and file systems.
	"$BMAPTOOL" info -b "$bmap" "$img.zst" >text.out 2>&1 || fail "$name: info (text) failed"
	while read -r _ _ _ _ fs; do
		local type=${fs%%|*} rest=${fs#*|}
		local label=${rest%%|*}
		[[ -z $type ]] || grep -q -- "$type" text.out ||
			fail "$name: the text listing lacks '$type': $(cat text.out)"
		[[ -z $label ]] || grep -q -- "'$label'" text.out ||
			fail "$name: the text listing lacks label '$label': $(cat text.out)"
	done <<<"$want"
	rm -f "$img".gz "$img".zst "$img".xz
	log "$name: $(wc -l <<<"$want") entries match sfdisk/blkid in raw, gz, zst, xz"

	# Self-mapped forms carry their own map: compare the table and file
	# systems (their mapped bytes are the format's, not the bmap's).
	local strip='s/^\([^ ]* [^ ]* [^ ]*\) [^ ]* /\1 /'
	if command -v qemu-img >/dev/null; then
		qemu-img convert -O qcow2 "$img" "$img.qcow2" || fail "qemu-img convert"
		got=$(ours "$img.qcow2" | sed "$strip")
		[[ $got == "$(sed "$strip" <<<"$want")" ]] ||
			fail "$name qcow2: ours:"$'\n'"$got"$'\n'"peers:"$'\n'"$want"
		rm -f "$img.qcow2"
	fi
	if command -v img2simg >/dev/null; then
		img2simg "$img" "$img.simg" || fail "img2simg"
		got=$(ours "$img.simg" | sed "$strip")
		[[ $got == "$(sed "$strip" <<<"$want")" ]] ||
			fail "$name simg: ours:"$'\n'"$got"$'\n'"peers:"$'\n'"$want"
		# The same sparse image inside a .tar.zst: the archive and its
		# member are named, the listing is the same.
		(cd "$(dirname "$img")" && tar -cf - "$(basename "$img").simg") | zstd -q -o "$img.tar.zst" ||
			fail "tar | zstd"
		got=$(ours "$img.tar.zst" | sed "$strip")
		[[ $got == "$(sed "$strip" <<<"$want")" ]] ||
			fail "$name simg in tar.zst: ours:"$'\n'"$got"$'\n'"peers:"$'\n'"$want"
		"$BMAPTOOL" info --json "$img.tar.zst" 2>/dev/null | python3 -c '
import json, sys
j = json.load(sys.stdin)
assert j["format"] == "simg" and j["container"] == "tar" and j["member"].endswith(".simg"), j
' || fail "$name: info --json of a sparse image in a tar does not name the archive and member"
		"$BMAPTOOL" info "$img.tar.zst" 2>/dev/null | grep -q "^archive: *tar archive, member '$(basename "$img").simg'" ||
			fail "$name: info of a sparse image in a tar has no archive line"
		rm -f "$img.tar.zst"
		rm -f "$img.simg"
	fi
}

M=$((1024 * 1024))

# GPT: vfat, ext4 (at an odd start), and a partition with nothing in it.
truncate -s 120M gpt.img
sfdisk -q gpt.img <<'EOF' || fail "sfdisk gpt"
label: gpt
start=2048, size=34M, type=uefi, name="boot"
start=71681, size=64M, type=linux, name="root fs"
size=8M, type=linux, name="empty"
EOF
mkfs.vfat -n BOOT --offset 2048 gpt.img $((34 * 1024)) >/dev/null 2>&1 || fail "mkfs.vfat"
mkfs.ext4 -q -L rootfs -E offset=$((71681 * 512)) gpt.img 64M || fail "mkfs.ext4"
"$REF" create -o gpt.bmap gpt.img 2>/dev/null || fail "reference create"
check gpt gpt.img gpt.bmap

# DOS: a primary, then an extended partition with three logical ones.
truncate -s 100M dos.img
sfdisk -q dos.img <<'EOF' || fail "sfdisk dos"
label: dos
start=2048, size=10M, type=c
size=12M, type=83
type=5
size=20M, type=83
size=30M, type=82
size=10M, type=83
EOF
parts=$(sfdisk -J dos.img | python3 -c '
import json, sys
for p in json.load(sys.stdin)["partitiontable"]["partitions"]:
    print(p["start"] * 512, p["size"] * 512)')
mapfile -t P <<<"$parts"
read -r s5 z5 <<<"${P[3]}"
read -r s6 z6 <<<"${P[4]}"
mkfs.ext4 -q -L logical5 -E offset="$s5" dos.img $((z5 / 1024))k || fail "mkfs.ext4 logical"
truncate -s "$z6" swap.part && chmod 600 swap.part && mkswap -q -L swp swap.part >/dev/null 2>&1 ||
	fail "mkswap"
dd if=swap.part of=dos.img bs=512 seek=$((s6 / 512)) conv=notrunc status=none || fail "dd swap"
rm -f swap.part
"$REF" create -o dos.bmap dos.img 2>/dev/null || fail "reference create"
check dos dos.img dos.bmap
grep -q "logical5" <("$BMAPTOOL" info -b dos.bmap dos.img 2>&1) || fail "dos: no logical5"

# A bare file system.
truncate -s 40M bare.img
mkfs.ext4 -q -L bare bare.img || fail "mkfs.ext4 bare"
"$REF" create -o bare.bmap bare.img 2>/dev/null || fail "reference create"
check bare bare.img bare.bmap
"$BMAPTOOL" info -b bare.bmap bare.img | grep -q "no partition table" ||
	fail "bare: the text does not say there is no partition table"

# A corrupt compressed image: the map is still shown; the listing's absence
# is explained, naming the image.
zstd -q -c gpt.img >full.zst
# (the listing needs ~75 MiB of the 120: a few KiB of the stream end before)
head -c 3000 full.zst >cut.img.zst
"$BMAPTOOL" info -b gpt.bmap cut.img.zst >cut.out 2>cut.err || fail "info of a cut image failed"
grep -q "^mapped:" cut.out || fail "the map of a cut image was not shown: $(cat cut.out)"
grep -q "partitions of 'cut.img.zst' are not shown" cut.err ||
	fail "no warning naming the cut image: $(cat cut.err)"
"$BMAPTOOL" info --json -b gpt.bmap cut.img.zst 2>/dev/null |
	python3 -c 'import json,sys; j=json.load(sys.stdin); assert j["partitions"] is None' ||
	fail "the JSON of a cut image is not valid with partitions null"

log "PASS"
