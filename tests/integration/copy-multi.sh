#!/bin/bash
# `bmaptool copy IMAGE DEST1 DEST2 ...` and `verify` with several
# destinations (issue 9), on loop devices over 0xA5-filled backing files:
#  - a sparse image (holes of several sizes, mapped zeros, an odd size), raw,
#    zstd, xz (several blocks) and xz from a pipe, copied to four cards at
#    once: every card equals the image on every mapped byte and keeps the
#    pattern elsewhere, past the image too (the reference bmaptool's card
#    for the raw image is the same); every destination prints its own result
#    lines with its own, equal digest; exit 0 and "copied to 4 of 4"
#  - a truncated zstd image: both destinations fail with the decoder's error
#  - --nobmap from a pipe: every byte, on both cards
#  - --discard: each card's gaps read back as zeros, its own line says how much
#  - a card too small among three: refused (untouched), the others written,
#    exit 1, the summary names it
#  - the same device twice (also through a symlink): usage error (exit 2),
#    nothing written
#  - a card pulled in the middle of a zstd copy (made slow by the fault shim,
#    then truncated and 'losetup -c'): that one 'removed', the others good
#  - SIGINT in the middle: every destination interrupted, exit 1
#  - no room for the spill file (a tiny tmpfs as TMPDIR and /var/tmp in a
#    mount namespace): exit 1 naming both folders, no card touched
#  - verify of four cards, one altered afterwards (one byte): exit 1, that one
#    named, the others match; the same by byte comparison (a bmap without
#    checksums and an xz image, through the spill)
#  - the spill file leaves nothing in TMPDIR, even while it is used
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/faults.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/discard.sh"
need_ours
need_root
need_loop
need_fault_shim
need_cmd zstd
need_cmd xz
need_cmd perl
need_cmd python3
need_loops 5

# The spill goes here: a test can see that nothing is left in it.
SPILL=$TEST_TMP/spill
mkdir -p "$SPILL"
export TMPDIR=$SPILL

img=$TEST_TMP/disk.img
# Holes of 4 KiB, 8 KiB, ~1.3 MiB, ~5 MiB; mapped zeros; an odd size.
mk_image_bmap "$img" "size=24M+1234 data=0:64K islands=1M:4K:40:12K data=3M+512:700K
	data=9M:1M zero=12M:256K data=13M+8K:4K data=20M:2M data=24M:1234"
size=$(stat -c %s "$img")
csize=$(card_size "$size")
zstd -q -c "$img" >"$img.zst" || fail "zstd"
xz -q -T2 --block-size=4MiB -c "$img" >"$img.xz" || fail "xz"
"$BMAPTOOL" -q create --no-checksum -o "$TEST_TMP/nock.bmap" "$img" || fail "create --no-checksum"

# expected_card OUT [all]: a card as it must be: the 0xA5 pattern with the
# image's mapped ranges (every byte of the image with "all") over it.
expected_card() {
	fill_pattern "$1" "$csize"
	perl -e 'my ($img, $out, $bs, $size, $all) = @ARGV; binmode STDIN;
		open(my $i, "<", $img) or die; open(my $o, "+<", $out) or die;
		binmode $i; binmode $o;
		my @r = $all ? ([0, int(($size - 1) / $bs)]) : map { [split] } <STDIN>;
		for my $r (@r) {
			my $off = $r->[0] * $bs; my $end = ($r->[1] + 1) * $bs;
			$end = $size if $end > $size;
			sysseek($i, $off, 0); sysread($i, my $b, $end - $off) == $end - $off or die;
			sysseek($o, $off, 0); syswrite($o, $b) == length($b) or die;
		}' "$img" "$1" "$(bmap_field "$img.bmap" BlockSize)" "$size" "${2:-}" \
		< <(bmap_ranges "$img.bmap") || fail "cannot build the expected card $1"
}
expected_card "$TEST_TMP/expected.bin"
expected_card "$TEST_TMP/expected-all.bin" all

# cards N: N fresh cards; CARDS (devices) and FILES (backing files).
cards() {
	CARDS=() FILES=()
	for i in $(seq "$1"); do
		new_card "$csize" "c$i"
		CARDS+=("$CARD_DEV")
		FILES+=("$CARD_FILE")
	done
}
drop_cards() {
	for i in "${!CARDS[@]}"; do
		detach_loop "${CARDS[$i]}"
		rm -f -- "${FILES[$i]}"
	done
	CARDS=() FILES=()
}

# card_is TAG FILE EXPECTED: the backing file equals the expected card.
card_is() {
	cmp -s "$2" "$3" && return 0
	local off
	off=$(first_diff "$2" "$3")
	bad "$1: $(basename "$2") differs from the expected card${off:+ at byte $off}"
}

# results TAG LOG KIND N: N destinations each with its own result lines,
# all with the same digest; sets DIGEST.
results() {
	local tag=$1 logf=$2 kind=$3 n=$4 d dg
	DIGEST=
	for d in "${CARDS[@]:0:$n}"; do
		dg=$(sed -nE "s|^bmaptool: info: $d: sha256 of the data $kind: ([0-9a-f]{64})\$|\1|p" "$logf")
		[[ -n $dg ]] || { bad "$tag: no digest line for $d"; continue; }
		[[ -z $DIGEST || $dg == "$DIGEST" ]] || bad "$tag: $d's digest $dg is not $DIGEST"
		DIGEST=$dg
	done
}

no_spill_left() {
	[[ -z $(ls -A "$SPILL") ]] || bad "$1: left in TMPDIR: $(ls -A "$SPILL")"
}

# ---- four cards at once: raw, zstd, xz, xz from a pipe ----
ref_digest=
for v in raw zst xz pipe; do
	cards 4
	case $v in
	raw) "$BMAPTOOL" copy "$img" "${CARDS[@]}" >"$TEST_TMP/$v.log" 2>&1 ;;
	zst | xz) "$BMAPTOOL" copy "$img.$v" "${CARDS[@]}" >"$TEST_TMP/$v.log" 2>&1 ;;
	pipe) cat "$img.xz" | "$BMAPTOOL" copy --bmap "$img.bmap" - "${CARDS[@]}" \
		>"$TEST_TMP/$v.log" 2>&1 ;;
	esac
	rc=$?
	[[ $rc == 0 ]] || { bad "$v: exit $rc"; tail -n 5 "$TEST_TMP/$v.log" >&2; }
	grep -qx "bmaptool: info: copied to 4 of 4 destinations" "$TEST_TMP/$v.log" ||
		bad "$v: no 'copied to 4 of 4 destinations'"
	[[ $v == raw ]] || grep -q "into a spill file in '$SPILL'" "$TEST_TMP/$v.log" ||
		bad "$v: the spill file's place is not said"
	results "$v" "$TEST_TMP/$v.log" written 4
	[[ -z $ref_digest || $DIGEST == "$ref_digest" ]] || bad "$v: digest $DIGEST, raw gave $ref_digest"
	ref_digest=${ref_digest:-$DIGEST}
	for f in "${FILES[@]}"; do card_is "$v" "$f" "$TEST_TMP/expected.bin"; done
	no_spill_left "$v"
	[[ $v == pipe ]] || drop_cards
done

# The reference, one card at a time, leaves its card the same way.
if [[ -x $REF ]]; then
	new_card "$csize" ref
	if "$REF" copy --bmap "$img.bmap" "$img" "$CARD_DEV" >"$TEST_TMP/ref.log" 2>&1; then
		card_is "reference" "$CARD_FILE" "$TEST_TMP/expected.bin"
	else
		bad "the reference's copy failed: $(tail -n 1 "$TEST_TMP/ref.log")"
	fi
	detach_loop "$CARD_DEV"
	rm -f -- "$CARD_FILE"
else
	log "no reference bmaptool ($REF): the expected cards are not checked against it"
fi

# ---- verify the four cards; then one altered ----
"$BMAPTOOL" verify "$img" "${CARDS[@]}" >"$TEST_TMP/verify.log" 2>&1 ||
	bad "verify of four good cards: exit $?"
results verify "$TEST_TMP/verify.log" "read back" 4
[[ $DIGEST == "$ref_digest" ]] || bad "verify: digest $DIGEST, copy wrote $ref_digest"
grep -qx "bmaptool: info: verified 4 of 4 destinations" "$TEST_TMP/verify.log" ||
	bad "verify: no 'verified 4 of 4 destinations'"
poke "${FILES[2]}" $((20 * 1048576 + 4321))
for how in checksums bytes; do
	if [[ $how == checksums ]]; then
		"$BMAPTOOL" verify "$img" "${CARDS[@]}" >"$TEST_TMP/verify-$how.log" 2>&1
	else
		"$BMAPTOOL" verify --bmap "$TEST_TMP/nock.bmap" "$img.xz" "${CARDS[@]}" \
			>"$TEST_TMP/verify-$how.log" 2>&1
	fi
	rc=$?
	logf=$TEST_TMP/verify-$how.log
	[[ $rc == 1 ]] || bad "verify ($how), one card altered: exit $rc, not 1"
	grep -qx "bmaptool: error: verified 3 of 4 destinations; 1 failed:" "$logf" ||
		bad "verify ($how): no summary of 3 of 4"
	grep -q "^bmaptool: error:   ${CARDS[2]}: failed: '${CARDS[2]}' does not match" "$logf" ||
		bad "verify ($how): the summary does not name ${CARDS[2]}"
	[[ $how == checksums ]] || grep -q "first difference at byte $((20 * 1048576 + 4321))" "$logf" ||
		bad "verify ($how): the first difference is not named"
	for i in 0 1 3; do
		grep -q "^bmaptool: info: ${CARDS[$i]}: verified .*: everything matches" "$logf" ||
			bad "verify ($how): ${CARDS[$i]} is not said to match"
	done
	no_spill_left "verify ($how)"
done
drop_cards

# ---- a truncated stream: the decoder's failure is everyone's ----
# From a pipe (not a file on stdin: that is checked), the cut is found when
# it is reached.
head -c -100 "$img.zst" >"$TEST_TMP/cut.zst" || fail "cannot cut the zstd image"
cards 2
cat "$TEST_TMP/cut.zst" | "$BMAPTOOL" copy --bmap "$img.bmap" - "${CARDS[@]}" >"$TEST_TMP/cut.log" 2>&1
rc=$?
[[ $rc == 1 ]] || bad "a truncated image: exit $rc, not 1"
grep -qx "bmaptool: error: copied to 0 of 2 destinations; 2 failed:" "$TEST_TMP/cut.log" ||
	bad "a truncated image: no summary of 0 of 2"
for d in "${CARDS[@]}"; do
	grep -q "^bmaptool: error:   $d: failed: .*standard input is truncated" "$TEST_TMP/cut.log" ||
		bad "a truncated image: $d does not fail with the decoder's error"
done
no_spill_left "a truncated image"
drop_cards
# A file is found cut before any card is opened: every card is untouched.
cards 2
"$BMAPTOOL" copy --bmap "$img.bmap" "$TEST_TMP/cut.zst" "${CARDS[@]}" >"$TEST_TMP/cut.log" 2>&1
rc=$?
[[ $rc == 1 ]] || bad "a truncated file: exit $rc, not 1"
grep -q "cut.zst' is truncated: .*nothing was written" "$TEST_TMP/cut.log" ||
	bad "a truncated file: not refused before writing: $(grep error "$TEST_TMP/cut.log")"
for d in "${CARDS[@]}"; do
	dev_is_pattern "$d" || bad "a truncated file: $d was written to"
done
no_spill_left "a truncated file"
drop_cards

# ---- --nobmap from a pipe: every byte ----
cards 2
zstd -q -c "$img" | "$BMAPTOOL" copy --nobmap - "${CARDS[@]}" >"$TEST_TMP/nobmap.log" 2>&1 ||
	bad "--nobmap from a pipe: exit $?"
for f in "${FILES[@]}"; do card_is "--nobmap" "$f" "$TEST_TMP/expected-all.bin"; done
results "--nobmap" "$TEST_TMP/nobmap.log" written 2
drop_cards

# ---- --discard: each card's gaps discarded once it is written ----
cards 2
"$BMAPTOOL" copy --discard "$img.zst" "${CARDS[@]}" >"$TEST_TMP/discard.log" 2>&1 ||
	bad "--discard: exit $?"
for d in "${CARDS[@]}"; do
	read_back "$d" "$TEST_TMP/readback"
	want=$(check_unmapped "$TEST_TMP/readback" "$img" "$img.bmap" 512 discarded) ||
		bad "--discard: $d's gaps are not discarded, or its data is wrong"
	got=$(discarded_bytes "$TEST_TMP/discard.log" "bmaptool: info: $d: discarded")
	[[ -n $want && $got == "$want" ]] || bad "--discard: $d: discarded '$got' bytes, expected $want"
done
results --discard "$TEST_TMP/discard.log" written 2
drop_cards

# ---- a card too small among three ----
cards 2
new_card $((csize / 2)) small
small=$CARD_DEV small_file=$CARD_FILE
CARDS+=("$small") FILES+=("$small_file")
"$BMAPTOOL" copy "$img.zst" "${CARDS[0]}" "$small" "${CARDS[1]}" >"$TEST_TMP/small.log" 2>&1
rc=$?
[[ $rc == 1 ]] || bad "a card too small: exit $rc, not 1"
grep -qx "bmaptool: error: copied to 2 of 3 destinations; 1 failed:" "$TEST_TMP/small.log" ||
	bad "a card too small: no summary of 2 of 3"
grep -q "^bmaptool: error:   $small: refused: device '$small' is too small" "$TEST_TMP/small.log" ||
	bad "a card too small: the summary does not name $small"
is_pattern "$small_file" || bad "a card too small: $small was written"
results small "$TEST_TMP/small.log" written 2
card_is small "${FILES[0]}" "$TEST_TMP/expected.bin"
card_is small "${FILES[1]}" "$TEST_TMP/expected.bin"
drop_cards

# ---- the same device twice ----
cards 2
ln -s "${CARDS[0]}" "$TEST_TMP/alias"
for twice in "${CARDS[0]} ${CARDS[1]} ${CARDS[0]}" "${CARDS[0]} $TEST_TMP/alias"; do
	# shellcheck disable=SC2086
	"$BMAPTOOL" copy "$img" $twice >"$TEST_TMP/twice.log" 2>&1
	rc=$?
	[[ $rc == 2 ]] || bad "the same device twice ($twice): exit $rc, not 2"
	grep -q "are the same device" "$TEST_TMP/twice.log" ||
		bad "the same device twice: $(head -n 1 "$TEST_TMP/twice.log")"
done
for f in "${FILES[@]}"; do is_pattern "$f" || bad "the same device twice: $(basename "$f") was written"; done
"$BMAPTOOL" verify "$img" "${CARDS[1]}" "${CARDS[1]}" >"$TEST_TMP/twice.log" 2>&1
[[ $? == 2 ]] || bad "verify of the same device twice: not a usage error"
drop_cards

# faulty_copy LOG ARGS...: bmaptool copy ARGS under the fault shim in the
# background; sets pid to bmaptool's own (with_faults, a function, would
# leave a subshell's there).
faulty_copy() {
	local logf=$1
	shift
	LD_PRELOAD=$FAULT_SHIM BMAP_FAULT_FILE=$FAULT_FILE BMAP_FAULT_LOG=$FAULT_LOG \
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
		"$BMAPTOOL" copy "$@" >"$logf" 2>&1 &
	pid=$!
	on_exit "kill $pid 2>/dev/null"
}

# ---- a card pulled mid-copy ----
pull_card() {
	truncate -s 0 "$2"
	losetup -c "$1"
}
cards 3
pulled=${CARDS[1]} pulled_file=${FILES[1]}
: >"$FAULT_LOG"
fault_rule "backing=$pulled_file pwrite delay=150"
faulty_copy "$TEST_TMP/pulled.log" "$img.zst" "${CARDS[@]}"
wait_fault "$pulled" delay= 20 || bad "the slow card got no write"
sleep 1
[[ -z $(ls -A "$SPILL") ]] || bad "the spill file has a name while it is used: $(ls -A "$SPILL")"
pull_busy_card "$pulled" "$pulled_file"
wait "$pid"
rc=$?
[[ $rc == 1 ]] || bad "a pulled card: exit $rc, not 1"
grep -qx "bmaptool: error: copied to 2 of 3 destinations; 1 failed:" "$TEST_TMP/pulled.log" ||
	bad "a pulled card: no summary of 2 of 3"
grep -q "^bmaptool: error:   $pulled: removed: " "$TEST_TMP/pulled.log" ||
	bad "a pulled card: the summary does not name $pulled as removed"
grep -q "^bmaptool: error: $pulled: the medium went away" "$TEST_TMP/pulled.log" ||
	bad "a pulled card: its own line does not say it went away"
card_is pulled "${FILES[0]}" "$TEST_TMP/expected.bin"
card_is pulled "${FILES[2]}" "$TEST_TMP/expected.bin"
no_spill_left pulled
: >"$FAULT_FILE"
drop_cards

# ---- SIGINT stops every destination ----
cards 3
for f in "${FILES[@]}"; do fault_rule "backing=$f pwrite delay=200"; done
: >"$FAULT_LOG"
faulty_copy "$TEST_TMP/sigint.log" "$img.xz" "${CARDS[@]}"
wait_fault "${CARDS[2]}" delay= 20 || bad "SIGINT: no write started"
kill -INT "$pid"
t0=$EPOCHREALTIME
wait "$pid"
rc=$?
[[ $rc == 1 ]] || bad "SIGINT: exit $rc, not 1"
awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { exit !(b - a < 5) }' ||
	bad "SIGINT: took more than 5 s to stop"
for d in "${CARDS[@]}"; do
	grep -q "^bmaptool: error:   $d: interrupted" "$TEST_TMP/sigint.log" ||
		bad "SIGINT: $d is not said to be interrupted"
done
no_spill_left SIGINT
: >"$FAULT_FILE"
drop_cards

# ---- no room for the spill file ----
if command -v unshare >/dev/null 2>&1; then
	cards 2
	unshare -m sh -c 'mount -t tmpfs -o size=64k tmpfs "$1" && mount -t tmpfs -o size=64k tmpfs /var/tmp &&
		exec "$2" copy "$3" "$4" "$5"' sh "$SPILL" "$BMAPTOOL" "$img.zst" "${CARDS[@]}" \
		>"$TEST_TMP/noroom.log" 2>&1
	rc=$?
	[[ $rc == 1 ]] || bad "no room for the spill: exit $rc, not 1"
	grep -q "no room for the spill file of '$img.zst'.*'$SPILL' has .* free, '/var/tmp' has .* free" \
		"$TEST_TMP/noroom.log" || bad "no room for the spill: $(grep error: "$TEST_TMP/noroom.log" | head -n 1)"
	for f in "${FILES[@]}"; do is_pattern "$f" || bad "no room for the spill: $(basename "$f") was written"; done
	drop_cards
else
	log "no unshare: the no-room case is not tested"
fi

finish "four cards at once (raw, zstd, xz, pipe, --nobmap), too small, twice, pulled, SIGINT, no room, verify"
