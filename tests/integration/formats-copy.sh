#!/bin/bash
# Self-mapped images with no .bmap anywhere: qcow2 made by qemu-img (plain
# v3 and v2, zlib and zstd compressed clusters, extended L2 entries, 512 B
# and 2 MiB clusters, zero clusters from qemu-io) and Android sparse images
# made by img2simg (a file, a pipe, .xz/.zst/.gz), each copied by ours onto
# a card (a loop device; a regular file without root) that was filled with
# 0xAA first:
#
# - every byte the image maps (qemu-img map's data extents; the sparse
#   image's RAW and FILL chunks, read from its chunk headers here in Python)
#   equals what qemu-img convert -O raw / simg2img make of the image, and
#   every other byte of the card still holds 0xAA: only the data was written
#   (img2simg writes holes as FILL chunks of zeros, which are data: a second
#   sparse image has them turned into DONT_CARE chunks, holes);
# - `verify IMAGE CARD` passes, and fails naming the byte once a mapped byte
#   of the card is changed;
# - --nobmap writes the whole virtual disk (the card equals the raw disk);
# - `create IMAGE` writes a 2.0 bmap of the virtual disk whose checksums are
#   those of qemu-img's raw disk: `copy --bmap` with it passes on the image
#   and on that raw disk, and a bmap of another size is refused;
# - `info` (and --json) says where the map came from and the format's facts;
# - refused with the reason: a qcow2 with a backing file (naming it), a
#   qcow2 from a pipe, a sparse image with a wrong CRC32 (naming the chunk).

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_cmd qemu-img
need_cmd qemu-io
need_cmd img2simg
need_cmd simg2img
need_cmd python3

d=$TEST_TMP
M=1048576
checked=0
failures=0
bad() { log "FAIL: $*"; failures=$((failures + 1)); }

# The disk: 40 MiB + 12800 bytes (a multiple of 512, as qemu sizes disks,
# and of no cluster size), data islands, a run of zeros that is data, and
# data up to its last byte.
raw=$d/disk.raw
mk_sparse_image "$raw" "size=40M+12800 data=4K:300K data=3M:2M zero=8M:1M data=9M:64K \
	islands=12M:5000:40:70000 data=40M:12800"
size=$(stat -c %s "$raw")

# The card's backing file in tmpfs (CARD_DIR, cards.sh): 29 fills and 40
# read-backs of 48 MiB, no disk I/O.
card=$CARD_DIR/card.bin
if have_loop; then
	truncate -s 48M "$card"
	attach_loop "$card"
	dev=$LOOP_DEV
else
	dev=$d/card.file
fi

# fill_card: 0xAA everywhere (a file card is recreated by copy: keep its
# size, so truncation by copy is not mistaken for a skipped hole). Written
# from one pattern file made once: a device is overwritten from its start,
# a file card rewritten whole.
aa=$CARD_DIR/aa.bin
head -c $((48 * M)) /dev/zero | tr '\0' '\252' >"$aa" || fail "cannot make the 0xAA pattern"
fill_card() {
	cat "$aa" >"$dev" || fail "cannot fill $dev"
}

# extents_qcow2 IMG: "offset length" of each data extent, from qemu-img.
extents_qcow2() {
	qemu-img map --output=json "$1" | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    if e["data"]:
        print(e["start"], e["length"])'
}

# extents_simg IMG: "offset length" of each RAW or FILL chunk, from the
# chunk headers (libsparse's format, read here independently of ours).
extents_simg() {
	python3 - "$1" <<'PY'
import struct, sys
f = open(sys.argv[1], "rb")
magic, major, minor, fh, ch, bs, blks, chunks, _ = struct.unpack("<IHHHHIIII", f.read(28))
f.seek(fh)
pos = 0
for _ in range(chunks):
    t, _, n, total = struct.unpack("<HHII", f.read(12))
    f.seek(ch - 12 + total - ch, 1)
    if t in (0xcac1, 0xcac2) and n:
        print(pos * bs, n * bs)
    pos += n
PY
}

# check_card TAG EXTENTS_FILE REFERENCE: mapped bytes equal the reference
# (the virtual disk, which img2simg pads to whole blocks), the others are
# 0xAA.
check_card() {
	checked=$((checked + 1))
	python3 - "$dev" "$2" "$3" "$(stat -c %s "$3")" <<'PY' || bad "$1: the card is not the image's data and 0xAA elsewhere"
import sys
dev, ext, ref, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
card = open(dev, "rb").read(size)
want = bytearray(b"\xaa" * size)
r = open(ref, "rb").read()
for line in open(ext):
    off, n = map(int, line.split())
    want[off:off + n] = r[off:off + n]
if card != bytes(want):
    i = next(i for i in range(size) if card[i] != want[i])
    sys.exit(f"first difference at byte {i}: card {card[i]:#x}, want {want[i]:#x}")
PY
}

# one IMAGE KIND TAG [copy args]: copy with no bmap, check, verify, damage;
# the data digests copy and verify print in digest[TAG] and rdigest[TAG].
declare -A digest rdigest
one() {
	local img=$1 kind=$2 tag=$3 ref=$d/ref.raw ext=$d/ext.txt
	shift 3
	if [[ $kind == qcow2 ]]; then
		qemu-img convert -q -O raw "$img" "$ref" || fail "$tag: qemu-img convert -O raw"
		extents_qcow2 "$img" >"$ext"
	else
		simg2img "$img" "$ref" || fail "$tag: simg2img"
		extents_simg "$img" >"$ext"
	fi
	[[ -s $ext ]] || fail "$tag: no data extents"
	fill_card
	if ! "$BMAPTOOL" copy "$@" "$dev" >"$d/copy.log" 2>&1; then
		bad "$tag: copy failed: $(tail -n 1 "$d/copy.log")"
		return
	fi
	grep -q "the map comes from" "$d/copy.log" || bad "$tag: no line on where the map came from"
	digest[$tag]=$(sed -nE 's/.*sha256 of the data written: ([0-9a-f]{64})$/\1/p' "$d/copy.log")
	check_card "$tag" "$ext" "$ref"
	if [[ $1 != - ]]; then
		"$BMAPTOOL" verify "$img" "$dev" >"$d/verify.log" 2>&1 ||
			bad "$tag: verify failed: $(tail -n 1 "$d/verify.log")"
		rdigest[$tag]=$(sed -nE 's/.*sha256 of the data read back: ([0-9a-f]{64})$/\1/p' \
			"$d/verify.log")
		read -r off _ <"$ext"
		printf '\x55' | dd of="$dev" bs=1 seek=$((off + 7)) conv=notrunc status=none
		if "$BMAPTOOL" verify "$img" "$dev" >"$d/verify.log" 2>&1; then
			bad "$tag: verify passed a damaged card"
		else
			grep -q "byte $((off + 7))" "$d/verify.log" ||
				bad "$tag: verify does not name byte $((off + 7)): $(tail -n 1 "$d/verify.log")"
		fi
		checked=$((checked + 2))
	fi
}

# qcow2, every variant.
i=0
for opts in "" "-o compat=0.10" "-c" "-c -o compat=0.10" "-c -o compression_type=zstd" \
	"-o extended_l2=on,cluster_size=64k" "-c -o extended_l2=on,cluster_size=32k,compression_type=zstd" \
	"-o cluster_size=512" "-c -o cluster_size=2M"; do
	q=$d/v$i.qcow2
	# shellcheck disable=SC2086 # the options are words
	qemu-img convert -q -O qcow2 $opts "$raw" "$q" || fail "qemu-img convert $opts"
	one "$q" qcow2 "qcow2 ${opts:-plain}" "$q"
	i=$((i + 1))
done

# Zero clusters between data (v3), and the last cluster compressed.
z=$d/zero.qcow2
qemu-img create -q -f qcow2 "$z" "$size" || fail "qemu-img create"
qemu-io -f qcow2 -c "write -q -P 0x11 0 1M" -c "write -q -z 256K 512K" \
	-c "write -q -P 0x22 $((size - 64 * 1024)) 64K" "$z" >/dev/null || fail "qemu-io"
one "$z" qcow2 "qcow2 zero clusters" "$z"
c=$d/last.qcow2
qemu-img convert -q -c -O qcow2 "$raw" "$c"
python3 - "$c" "$size" <<'PY' || bad "the last cluster of $c is not compressed"
import struct, sys
f = open(sys.argv[1], "rb"); h = f.read(48)
l1 = struct.unpack(">Q", h[40:48])[0]; f.seek(l1); l2 = struct.unpack(">Q", f.read(8))[0] & 0x00fffffffffffe00
f.seek(l2 + ((int(sys.argv[2]) - 1) // 65536) * 8); e = struct.unpack(">Q", f.read(8))[0]
sys.exit(0 if e >> 62 & 1 else 1)
PY

# Android sparse: a file, a pipe, compressed; with holes (its zero FILL
# chunks made DONT_CARE) the same ways.
s=$d/disk.simg
h=$d/holes.simg
img2simg "$raw" "$s" || fail "img2simg"
simg2img "$s" "$d/simg.raw" || fail "simg2img"
python3 - "$s" "$h" <<'PY' || fail "cannot make the sparse image with holes"
import struct, sys
src = open(sys.argv[1], "rb").read()
hdr = struct.unpack("<IHHHHIIII", src[:28])
fh, ch = hdr[3], hdr[4]
out, pos, holes = [src[:fh]], fh, 0
for _ in range(hdr[7]):
    t, r, n, total = struct.unpack("<HHII", src[pos:pos + 12])
    if t == 0xcac2 and src[pos + ch:pos + ch + 4] == b"\0\0\0\0":
        out.append(struct.pack("<HHII", 0xcac3, r, n, ch) + src[pos + 12:pos + ch])
        holes += 1
    else:
        out.append(src[pos:pos + total])
    pos += total
assert holes > 2, holes
open(sys.argv[2], "wb").write(b"".join(out))
PY
for img in "$s" "$h"; do
	one "$img" simg "simg file ${img##*/}" "$img"
	one "$img" simg "simg pipe ${img##*/}" - < <(cat "$img")
	for z in xz zstd gzip; do
		"$z" -c "$img" >"$img.$z" || fail "$z"
		one "$img" simg "${img##*/}.$z" "$img.$z"
	done
done

# One data digest for an image however it is read: copy and verify cut a
# sparse image's map into 16 MiB pieces for their workers (img2simg's image
# maps the whole disk as one range of 40 MiB), a file read at random through
# its chunk index, a pipe or a compressed file as the chunks go by, and a
# copy to several destinations from the spill file of its disk.
for img in "$s" "$h"; do
	n=${img##*/}
	want=${digest[simg file $n]}
	[[ -n $want ]] || bad "$n: copy printed no data digest"
	for tag in "simg pipe $n" "$n.xz" "$n.zstd" "$n.gzip"; do
		[[ ${digest[$tag]} == "$want" ]] ||
			bad "$tag: data digest ${digest[$tag]}, the file's is $want"
	done
	[[ ${rdigest[simg file $n]} == "$want" ]] ||
		bad "$n: verify's digest ${rdigest[simg file $n]}, copy's $want"
	rm -f "$d/m1.img" "$d/m2.img"
	"$BMAPTOOL" copy "$img" "$d/m1.img" "$d/m2.img" >"$d/multi.log" 2>&1 ||
		bad "$n: copy to two files failed: $(tail -n 1 "$d/multi.log")"
	for m in m1 m2; do
		got=$(sed -nE "s|.*$d/$m.img: sha256 of the data written: ([0-9a-f]{64})\$|\1|p" \
			"$d/multi.log")
		[[ $got == "$want" ]] || bad "$n: the copy to $m.img has data digest '$got', one copy $want"
	done
	checked=$((checked + 7))
done
rm -f "$d/m1.img" "$d/m2.img"

# --nobmap: the whole disk, holes as zeros.
fill_card
"$BMAPTOOL" copy --nobmap "$d/v0.qcow2" "$dev" >"$d/copy.log" 2>&1 || bad "--nobmap copy failed"
cmp -s -n "$size" "$dev" "$raw" || bad "--nobmap: the card is not the whole disk"
checked=$((checked + 1))

# create: a bmap of the virtual disk, checksums of the raw disk (qemu's;
# simg2img's, padded to whole blocks).
for q in "$d/v2.qcow2" "$d/v5.qcow2" "$h.xz" "$s"; do
	r=$raw
	[[ $q == *.qcow2 ]] || r=$d/simg.raw
	"$BMAPTOOL" create -o "$d/made.bmap" "$q" >"$d/create.log" 2>&1 ||
		{ bad "create $q failed: $(tail -n 1 "$d/create.log")"; continue; }
	grep -q '<bmap version="2.0">' "$d/made.bmap" || bad "create $q: not a 2.0 bmap"
	[[ $(bmap_field "$d/made.bmap" ImageSize) -eq $(stat -c %s "$r") ]] ||
		bad "create $q: ImageSize"
	for from in "$q" "$r"; do
		fill_card
		"$BMAPTOOL" copy --bmap "$d/made.bmap" "$from" "$dev" >"$d/copy.log" 2>&1 ||
			bad "copy --bmap (made from $q) of $from: $(tail -n 1 "$d/copy.log")"
		checked=$((checked + 1))
	done
done
mk_sparse_image "$d/other.raw" "size=8M data=0:64K"
"$BMAPTOOL" -q create -o "$d/other.bmap" "$d/other.raw" || fail "create other.raw"
if "$BMAPTOOL" copy --bmap "$d/other.bmap" "$d/v0.qcow2" "$dev" >"$d/copy.log" 2>&1 ||
	! grep -q "does not belong" "$d/copy.log"; then
	bad "a bmap of another size was not refused: $(tail -n 1 "$d/copy.log")"
fi
checked=$((checked + 1))

# info, text and JSON.
"$BMAPTOOL" info "$d/v6.qcow2" >"$d/info.txt" 2>&1 || bad "info failed"
for want in "format:         qcow2, version 3" "cluster tables" "subclusters of 1024" \
	"compressed (zstd)" "extended_l2" "image size:     $size bytes"; do
	grep -qF "$want" "$d/info.txt" || bad "info does not say '$want'"
done
"$BMAPTOOL" info --json "$h.zstd" | python3 -c "
import json, sys
j = json.load(sys.stdin)
assert j['format'] == 'simg' and j['compression'] == 'zstd', j
assert j['image_size'] == $(stat -c %s "$d/simg.raw"), j
assert j['simg']['chunks']['raw'] > 0 and j['simg']['chunks']['dont_care'] > 2, j
assert 0 < j['mapped_bytes'] < j['image_size'], j" || bad "info --json of a sparse image"
checked=$((checked + 2))

# Refusals.
qemu-img create -q -f qcow2 -b "$d/v0.qcow2" -F qcow2 "$d/over.qcow2" || fail "qemu-img create -b"
if "$BMAPTOOL" copy "$d/over.qcow2" "$dev" >"$d/copy.log" 2>&1 ||
	! grep -q "backing file '$d/v0.qcow2'.*qemu-img convert" "$d/copy.log"; then
	bad "a qcow2 with a backing file: $(tail -n 1 "$d/copy.log")"
fi
if cat "$d/v0.qcow2" | "$BMAPTOOL" copy - "$dev" >"$d/copy.log" 2>&1 ||
	! grep -q "random access" "$d/copy.log"; then
	bad "a qcow2 from a pipe: $(tail -n 1 "$d/copy.log")"
fi
python3 - "$s" "$d/badcrc.simg" <<'PY' || fail "cannot make the bad-CRC image"
import struct, sys, zlib
src = open(sys.argv[1], "rb").read()
magic, major, minor, fh, ch, bs, blks, chunks, _ = struct.unpack("<IHHHHIIII", src[:28])
# A CRC32 chunk after the first chunk, one off from the right value.
first_total = struct.unpack("<I", src[fh + 8:fh + 12])[0]
t, _, n, total = struct.unpack("<HHII", src[fh:fh + 12])
data = src[fh + ch:fh + first_total]
crc = zlib.crc32(data if t == 0xcac1 else (data * (n * bs // 4) if t == 0xcac2 else b"\0" * n * bs))
hdr = struct.pack("<IHHHHIIII", magic, major, minor, fh, ch, bs, blks, chunks + 1, 0)
bad = struct.pack("<HHII", 0xcac4, 0, 0, 16) + struct.pack("<I", crc ^ 1)
open(sys.argv[2], "wb").write(hdr + src[28:fh + first_total] + bad + src[fh + first_total:])
PY
if "$BMAPTOOL" copy "$d/badcrc.simg" "$dev" >"$d/copy.log" 2>&1 ||
	! grep -q "chunk 2 of .*CRC32" "$d/copy.log"; then
	bad "a wrong CRC32: $(tail -n 1 "$d/copy.log")"
fi
checked=$((checked + 3))

[[ $failures -eq 0 ]] || fail "$failures of $checked checks failed"
log "ok: $checked checks"
