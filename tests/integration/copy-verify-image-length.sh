#!/bin/bash
# An image's length against the bmap's ImageSize, copy and verify alike.
# - A compressed image that holds all its mapped data but ends before
#   ImageSize (cut after its last data): copied, exit 0, a regular DEST
#   sized to ImageSize, as the reference does (what broke: refused as
#   "shorter than the bmap's image size"); verify takes it too.
# - An over-long image with a bmap without checksums: what broke, verify
#   accepted what copy refuses. Now both refuse a raw one (before anything
#   is read, as the reference's copy does: "cannot set image size"; with
#   checksums too), and both refuse a compressed one at its end (the
#   reference's copy does not look past the mapped data there: we are
#   stricter, data after ImageSize says the bmap is another image's).
# Compared with bmaptool-3.9 where installed, else $REF (3.6 copies the
# same); skipped without either for the comparison only.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_ours
need_cmd python3
ref=$REF
command -v bmaptool-3.9 >/dev/null && ref=$(command -v bmaptool-3.9)

failures=0
bad() { log "FAIL: $*"; failures=$((failures + 1)); }
cd "$TEST_TMP" || fail "cd"

# 4 MiB image, data up to 2 MiB + 20 KiB; cut at 2.5 MiB (inside a hole).
mk_sparse_image full.img "size=4M data=0:12K data=1M:300K data=2M:20K"
"$BMAPTOOL" create -o full.bmap full.img 2>/dev/null || fail "create"
"$BMAPTOOL" create --no-checksum -o nock.bmap full.img 2>/dev/null || fail "create"
head -c $((2560 << 10)) full.img >short.img
codecs=(gz)
gzip -c short.img >short.img.gz
command -v xz >/dev/null && xz -c short.img >short.img.xz && codecs+=(xz)
command -v zstd >/dev/null && zstd -q -c short.img >short.img.zst && codecs+=(zst)
cp full.img long.img
head -c 5000 /dev/urandom >>long.img
gzip -c long.img >long.img.gz

# code WANT ARGS...: ours exits WANT.
code() {
	local want=$1 rc
	shift
	"$BMAPTOOL" "$@" >out 2>err
	rc=$?
	[[ $rc -eq $want ]] || bad "'$*': exit $rc, expected $want: $(tail -n 2 err)"
	[[ -s out ]] && bad "'$*': wrote to stdout"
}

for c in "${codecs[@]}"; do
	for b in full.bmap nock.bmap; do
		rm -f dest.img
		code 0 copy --bmap "$b" "short.img.$c" dest.img
		[[ $(stat -c %s dest.img 2>/dev/null) -eq $((4 << 20)) ]] ||
			bad "copy short.img.$c ($b): DEST is $(stat -c %s dest.img 2>/dev/null) bytes, not ImageSize"
		cmp -s full.img dest.img || bad "copy short.img.$c ($b): DEST is not the image"
		code 0 verify --bmap "$b" "short.img.$c" dest.img
	done
done
# The reference's DEST, where it copies that codec: the same bytes, the
# same size.
if [[ -x $ref ]]; then
	rm -f ref.img dest.img
	if "$ref" copy --bmap full.bmap short.img.gz ref.img >/dev/null 2>&1; then
		code 0 copy --bmap full.bmap short.img.gz dest.img
		cmp -s ref.img dest.img || bad "short.img.gz: our DEST differs from the reference's"
		[[ $(stat -c %s ref.img) -eq $(stat -c %s dest.img) ]] || bad "short.img.gz: sizes differ"
	else
		bad "the reference refused short.img.gz"
	fi
else
	log "no reference bmaptool: the comparison of DESTs is skipped"
fi

# Over-long: copy and verify agree.
"$BMAPTOOL" -q copy --bmap full.bmap full.img good.img || fail "copy of the good image"
# (With checksums, verify reads DEST only, never a compressed image: its
# length is not looked at then; a raw image's size is, as it costs nothing.)
for case in "long.img nock.bmap" "long.img full.bmap" "long.img.gz nock.bmap"; do
	read -r img b <<<"$case"
	code 1 copy --bmap "$b" "$img" scratch.img
	code 1 verify --bmap "$b" "$img" good.img
	grep -q "does not belong" err || bad "verify $img ($b): $(tail -n 1 err)"
done
code 1 copy --bmap full.bmap long.img.gz scratch.img
code 0 verify --bmap nock.bmap full.img good.img

if ((failures)); then
	log "$failures failure(s)"
	exit 1
fi
log "image length against ImageSize: copy and verify agree"
