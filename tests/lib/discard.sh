# Helpers for the discard tests (sourced after common.sh): what a card must
# hold after a copy with or without --discard / discard = true.
#
# Owns: checking a card's bytes, read back, against the image and its bmap:
# mapped bytes, the unmapped ranges (zeros where discarded, the 0xA5 pattern
# elsewhere) and everything past the image's end.

# check_unmapped READBACK IMAGE BMAP SECTOR discarded|kept: the card's bytes as
# read back. Mapped bytes equal the image's; with "discarded", the whole
# sectors inside each gap are zeros and the rest of the gap (the sectors a
# gap shares with mapped data, the image's partial last sector) holds the
# 0xA5 pattern; with "kept", every unmapped byte holds it; past the image's
# end, every byte holds it. Prints the number of bytes that should have been
# discarded.
check_unmapped() {
	python3 - "$@" <<-'PY'
	import re, sys
	rb_path, img_path, bmap_path, sector, mode = sys.argv[1:6]
	sector = int(sector)
	bmap = open(bmap_path).read()
	bs = int(re.search(r"<BlockSize>\s*(\d+)", bmap)[1])
	size = int(re.search(r"<ImageSize>\s*(\d+)", bmap)[1])
	ranges = [(int(a), int(b or a)) for a, b in
	          re.findall(r"<Range[^>]*>\s*(\d+)(?:-(\d+))?\s*</Range>", bmap)]
	img = open(img_path, "rb").read()
	rb = open(rb_path, "rb").read()
	bad = []

	def expect(a, b, byte, what):
	    if a >= b:
	        return
	    want = bytes([byte]) * (b - a)
	    if rb[a:b] != want:
	        first = next(i for i in range(a, b) if rb[i] != byte)
	        bad.append("%s: byte %d is 0x%02x, expected 0x%02x (bytes %d-%d)"
	                   % (what, first, rb[first], byte, a, b - 1))

	spans = [(f * bs, min((l + 1) * bs, size)) for f, l in ranges]
	for s, e in spans:
	    if rb[s:e] != img[s:e]:
	        first = next(i for i in range(s, e) if rb[i] != img[i])
	        bad.append("mapped bytes %d-%d differ from the image at byte %d" % (s, e - 1, first))
	edges = [0] + [x for sp in spans for x in sp] + [size]
	discarded = 0
	for i in range(0, len(edges), 2):
	    s, e = edges[i], edges[i + 1]
	    if s >= e:
	        continue
	    zs, ze = -(-s // sector) * sector, e // sector * sector
	    if mode == "discarded" and ze > zs:
	        discarded += ze - zs
	        expect(s, zs, 0xA5, "gap %d-%d, head of its first sector" % (s, e - 1))
	        expect(zs, ze, 0x00, "gap %d-%d, whole sectors" % (s, e - 1))
	        expect(ze, e, 0xA5, "gap %d-%d, tail of its last sector" % (s, e - 1))
	    else:
	        expect(s, e, 0xA5, "gap %d-%d" % (s, e - 1))
	expect(size, len(rb), 0xA5, "past the image's end")
	for b in bad[:10]:
	    print("check_unmapped: " + b, file=sys.stderr)
	print(discarded)
	sys.exit(1 if bad else 0)
	PY
}

# read_back DEV FILE: the whole device, read with O_DIRECT (what its page
# cache holds is not trusted), into FILE.
read_back() {
	dd if="$1" of="$2" bs=1M iflag=direct status=none || fail "cannot read $1 back"
}

# discarded_bytes LOG [MATCH]: N from the last "discarded ... (N bytes) in M
# unmapped ranges" line of LOG (bmaptool's info line, the worker's note),
# among the lines holding MATCH.
discarded_bytes() {
	grep -F -- "${2:-discarded}" "$1" |
		sed -nE 's/.*discarded .* \(([0-9]+) bytes\) in [0-9]+ unmapped ranges.*/\1/p' |
		tail -n 1
}
