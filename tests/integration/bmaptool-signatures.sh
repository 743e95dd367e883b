#!/bin/bash
# Signed bmaps in bmaptool copy, verify and info (issue 11): the eight cases
# of upstream's tests/test_CLI.py, with keys this test makes itself in
# temporary GnuPG homes, and more:
#
#   valid detached (--bmap-sig), clearsigned, --fingerprint, --keyring with no
#   GNUPGHOME (and no ~/.gnupg created)          -> 0, "successfully verified ..."
#   unknown signer, signature of another bmap, both -> 1, "discovered a BAD GPG
#                                                   signature", DEST untouched
#   --fingerprint and no signature               -> 1, "no signature found but ..."
#   an expired key, a revoked key (default keyring and --keyring), a signature
#   of another file, a file that holds no signature, another signer than
#   --fingerprint                                -> 1, the reason named, DEST untouched
#   BMAP.asc, then BMAP.sig discovered (explicit --bmap and a discovered bmap)
#   --no-sig-verify: a clearsigned bmap's text used, a bad .asc ignored
#   conflicting options                          -> 2 (copy, verify, info)
#   nothing written on failure: a DEST file (content, mtime) and, where loop
#   devices can be had, a card
#   verify and info with signatures (info shows the signer, --json too)
#
# The upstream cases are compared with the reference 3.9 (bmaptool-3.9)
# when it is installed: same exit status, same words. CI has only Debian's
# 3.6: the comparison is skipped there (and says so).

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_cmd gpg
need_cmd gpgconf
need_cmd gzip

d=$TEST_TMP
REF39=$(command -v bmaptool-3.9 || true)

# ---- keys -------------------------------------------------------------------

# mk_home DIR: an empty GnuPG home whose agent is stopped at exit.
mk_home() {
	mkdir -m 700 "$1" || fail "cannot create $1"
	on_exit "gpgconf --homedir '$1' --kill all"
}
# gen_key HOME UID [EXPIRE [FAKED_TIME]]: a new signing key; sets FPR.
gen_key() {
	local faked=()
	[[ -n ${4:-} ]] && faked=(--faked-system-time "$4")
	gpg --homedir "$1" --batch --passphrase '' "${faked[@]}" \
		--quick-gen-key "$2" default default "${3:-1y}" 2>"$d/gpg.err" ||
		fail "gpg --quick-gen-key '$2': $(cat "$d/gpg.err")"
	FPR=$(gpg --homedir "$1" --with-colons --list-keys "$2" 2>/dev/null |
		awk -F: '/^fpr/ { print $10; exit }')
	[[ $FPR =~ ^[0-9A-F]{40}$ ]] || fail "no fingerprint for '$2'"
}
# sign HOME FPR MODE IN OUT [FAKED_TIME]: MODE detach-sign or clearsign,
# armored.
sign() {
	local faked=()
	[[ -n ${6:-} ]] && faked=(--faked-system-time "$6")
	gpg --homedir "$1" --batch --yes --pinentry-mode loopback --passphrase '' "${faked[@]}" \
		-u "$2" --armor "--$3" -o "$5" "$4" 2>"$d/gpg.err" ||
		fail "gpg --$3 $4: $(cat "$d/gpg.err")"
}

GOOD=$d/good.gnupg
OTHER=$d/unknown.gnupg
mk_home "$GOOD"
mk_home "$OTHER"
gen_key "$GOOD" "correct <foo@bar.org>"
FGOOD=$FPR
gen_key "$OTHER" "unknown <blub@bla.net>"
FOTHER=$FPR
# Expired: made and used at a faked time, valid for a day then.
gen_key "$GOOD" "expired <old@bar.org>" 1d 20200101T000000
FEXP=$FPR
# Revoked: its own revocation certificate imported.
gen_key "$GOOD" "revoked <rev@bar.org>"
FREV=$FPR
gpg --homedir "$GOOD" --with-colons -k >/dev/null 2>&1
# The keyrings as gpgv takes them: binary exports.
gpg --homedir "$GOOD" --export "$FGOOD" >"$d/good.keyring" || fail "export"
gpg --homedir "$OTHER" --export "$FOTHER" >"$d/other.keyring" || fail "export"

# ---- images, bmaps, signatures ------------------------------------------------

img=$d/disk.img
mk_image_bmap "$img" "size=3M+1234 data=0:200K data=1M:64K+17 data=3M:1234"
gzip -k "$img"
mk_image_bmap "$d/other.img" "size=2M data=64K:128K"
bmap=$img.bmap
obmap=$d/other.img.bmap
mkdir "$d/sigs"
S=$d/sigs
sign "$GOOD" "$FGOOD" detach-sign "$bmap" "$S/good.det.asc"
sign "$GOOD" "$FGOOD" clearsign "$bmap" "$S/good.clear.asc"
sign "$OTHER" "$FOTHER" detach-sign "$bmap" "$S/unknown.det.asc"
sign "$GOOD" "$FEXP" detach-sign "$bmap" "$S/expired.det.asc" 20200101T000100
sign "$GOOD" "$FREV" detach-sign "$bmap" "$S/revoked.det.asc"
sign "$GOOD" "$FGOOD" detach-sign "$img" "$S/image.det.asc"
sed 's/^:-----BEGIN/-----BEGIN/' "$GOOD/openpgp-revocs.d/$FREV.rev" |
	gpg --homedir "$GOOD" --batch --import 2>"$d/gpg.err" || fail "revoke: $(cat "$d/gpg.err")"
gpg --homedir "$GOOD" --export "$FGOOD" "$FEXP" "$FREV" >"$d/all.keyring" || fail "export"
export GNUPGHOME=$GOOD

new_file_card $((4 << 20)) dest
dest=$CARD_FILE
touch -d '2001-01-01 00:00:00' "$dest"

# run TAG CMD...: runs CMD, its stdout, stderr and status in OUT, ERR, RC.
run() {
	local tag=$1
	shift
	"$@" >"$d/$tag.out" 2>"$d/$tag.err"
	RC=$?
	OUT=$(cat "$d/$tag.out")
	ERR=$(cat "$d/$tag.err")
}

# ok TAG WORDS CMD...: exit 0, nothing on stdout, WORDS on stderr, DEST the image.
ok() {
	local tag=$1 words=$2
	shift 2
	fill_pattern "$dest" $((4 << 20))
	run "$tag" "$@"
	[[ $RC -eq 0 ]] || { bad "$tag: exit $RC, expected 0: $ERR"; return; }
	[[ -z $OUT ]] || bad "$tag: stdout is not empty: $OUT"
	grep -qF -- "$words" <<<"$ERR" || bad "$tag: no '$words' in: $ERR"
	cmp -s -n "$(stat -c %s "$img")" "$img" "$dest" || bad "$tag: DEST does not hold the image"
}

# refused TAG STATUS WORDS CMD...: exit STATUS, WORDS on stderr (an extended
# regex), nothing on stdout, DEST as it was (content and mtime).
refused() {
	local tag=$1 want=$2 words=$3 mtime
	shift 3
	fill_pattern "$dest" $((4 << 20))
	touch -d '2001-01-01 00:00:00' "$dest"
	mtime=$(stat -c %Y "$dest")
	run "$tag" "$@"
	[[ $RC -eq $want ]] || bad "$tag: exit $RC, expected $want: $ERR"
	[[ -z $OUT ]] || bad "$tag: stdout is not empty: $OUT"
	grep -Eq -- "$words" <<<"$ERR" || bad "$tag: no /$words/ in: $ERR"
	[[ $(stat -c %Y "$dest") == "$mtime" ]] || bad "$tag: DEST's mtime changed"
	is_pattern "$dest" || bad "$tag: DEST was written to"
}

BAD="discovered a BAD GPG signature"
GOODMSG="successfully verified bmap file signature"
gz=$img.gz

# ---- upstream's eight cases ---------------------------------------------------

ok valid-detached "$GOODMSG of correct <foo@bar.org> (fingerprint $FGOOD)" \
	"$BMAPTOOL" copy --bmap "$bmap" --bmap-sig "$S/good.det.asc" "$gz" "$dest"
ok clearsign "$GOODMSG" "$BMAPTOOL" copy --bmap "$S/good.clear.asc" "$gz" "$dest"
grep -q "discovered inline signature" "$d/clearsign.err" || bad "clearsign: no 'discovered inline signature'"
ok fingerprint "$GOODMSG" \
	"$BMAPTOOL" copy --bmap "$S/good.clear.asc" --fingerprint "$FGOOD" "$gz" "$dest"
mkdir "$d/nohome"
ok keyring-no-gnupghome "$GOODMSG" env -u GNUPGHOME HOME="$d/nohome" \
	"$BMAPTOOL" copy --bmap "$S/good.clear.asc" --fingerprint "$FGOOD" \
	--keyring "$d/good.keyring" "$gz" "$dest"
[[ ! -e $d/nohome/.gnupg ]] || bad "keyring-no-gnupghome: ~/.gnupg was created"
refused unknown-signer 1 "$BAD" \
	"$BMAPTOOL" copy --bmap "$bmap" --bmap-sig "$S/unknown.det.asc" "$gz" "$dest"
grep -q "not in the keyring" "$d/unknown-signer.err" || bad "unknown-signer: reason not named"
refused other-bmap 1 "$BAD" \
	"$BMAPTOOL" copy --bmap "$obmap" --bmap-sig "$S/good.det.asc" "$gz" "$dest"
refused fingerprint-no-signature 1 "no signature found but --fingerprint given" \
	"$BMAPTOOL" copy --bmap "$bmap" --fingerprint "$FGOOD" "$gz" "$dest"
refused other-bmap-unknown-signer 1 "$BAD" \
	"$BMAPTOOL" copy --bmap "$obmap" --bmap-sig "$S/unknown.det.asc" "$gz" "$dest"

# The same against the reference 3.9: same status, same words (its DEST is
# not checked: it truncates DEST before it verifies).
if [[ -n $REF39 ]]; then
	ref_same() {
		local tag=$1 want=$2 words=$3
		shift 3
		"$REF39" "$@" >"$d/ref.out" 2>"$d/ref.err"
		local rc=$?
		[[ $rc -eq $want ]] || bad "reference $tag: exit $rc, expected $want: $(tail -n 3 "$d/ref.err")"
		grep -qF -- "$words" "$d/ref.err" || bad "reference $tag: no '$words': $(tail -n 3 "$d/ref.err")"
	}
	ref_same valid-detached 0 "$GOODMSG" copy --bmap "$bmap" --bmap-sig "$S/good.det.asc" "$gz" "$d/ref.img"
	ref_same clearsign 0 "$GOODMSG" copy --bmap "$S/good.clear.asc" "$gz" "$d/ref.img"
	ref_same fingerprint 0 "$GOODMSG" copy --bmap "$S/good.clear.asc" --fingerprint "$FGOOD" "$gz" "$d/ref.img"
	env -u GNUPGHOME HOME="$d/nohome" "$REF39" copy --bmap "$S/good.clear.asc" --fingerprint "$FGOOD" \
		--keyring "$d/good.keyring" "$gz" "$d/ref.img" >/dev/null 2>"$d/ref.err" ||
		bad "reference keyring-no-gnupghome: $(tail -n 3 "$d/ref.err")"
	ref_same unknown-signer 1 "$BAD" copy --bmap "$bmap" --bmap-sig "$S/unknown.det.asc" "$gz" "$d/ref.img"
	ref_same other-bmap 1 "$BAD" copy --bmap "$obmap" --bmap-sig "$S/good.det.asc" "$gz" "$d/ref.img"
	ref_same fingerprint-no-signature 1 "no signature found but --fingerprint given" \
		copy --bmap "$bmap" --fingerprint "$FGOOD" "$gz" "$d/ref.img"
	ref_same other-bmap-unknown-signer 1 "$BAD" copy --bmap "$obmap" --bmap-sig "$S/unknown.det.asc" "$gz" "$d/ref.img"
	ref_same expired 1 "$BAD" copy --bmap "$bmap" --bmap-sig "$S/expired.det.asc" "$gz" "$d/ref.img"
	ref_same revoked 1 "$BAD" copy --bmap "$bmap" --bmap-sig "$S/revoked.det.asc" "$gz" "$d/ref.img"
	rm -rf "$d/nohome/.gnupg"
else
	log "SKIP (comparison only): bmaptool-3.9 is not installed (CI has Debian's 3.6 only)"
fi

# ---- more reasons a signature does not verify -----------------------------------

refused expired-key 1 "$BAD.*expired" \
	"$BMAPTOOL" copy --bmap "$bmap" --bmap-sig "$S/expired.det.asc" "$gz" "$dest"
refused revoked-key 1 "$BAD.*revoked" \
	"$BMAPTOOL" copy --bmap "$bmap" --bmap-sig "$S/revoked.det.asc" "$gz" "$dest"
refused expired-key-keyring 1 "$BAD.*expired" env -u GNUPGHOME HOME="$d/nohome" \
	"$BMAPTOOL" copy --keyring "$d/all.keyring" --bmap "$bmap" --bmap-sig "$S/expired.det.asc" "$gz" "$dest"
refused revoked-key-keyring 1 "$BAD.*revoked" env -u GNUPGHOME HOME="$d/nohome" \
	"$BMAPTOOL" copy --keyring "$d/all.keyring" --bmap "$bmap" --bmap-sig "$S/revoked.det.asc" "$gz" "$dest"
refused unknown-in-keyring 1 "$BAD.*not in the keyring" env -u GNUPGHOME HOME="$d/nohome" \
	"$BMAPTOOL" copy --keyring "$d/good.keyring" --bmap "$bmap" --bmap-sig "$S/unknown.det.asc" "$gz" "$dest"
[[ ! -e $d/nohome/.gnupg ]] || bad "a --keyring run created ~/.gnupg"
refused signature-of-image 1 "$BAD.*does not match" \
	"$BMAPTOOL" copy --bmap "$bmap" --bmap-sig "$S/image.det.asc" "$gz" "$dest"
grep -qF "$S/image.det.asc" "$d/signature-of-image.err" || bad "signature-of-image: the signature file is not named"
grep -qF "$bmap" "$d/signature-of-image.err" || bad "signature-of-image: the bmap file is not named"
refused not-a-signature 1 "$BAD.*no OpenPGP signature" \
	"$BMAPTOOL" copy --bmap "$bmap" --bmap-sig "$obmap" "$gz" "$dest"
refused wrong-fingerprint 1 "requested fingerprint $FOTHER did not sign" \
	"$BMAPTOOL" copy --bmap "$bmap" --bmap-sig "$S/good.det.asc" --fingerprint "$FOTHER" "$gz" "$dest"
refused keyring-no-signature 1 "no signature found but --keyring given" \
	"$BMAPTOOL" copy --bmap "$bmap" --keyring "$d/good.keyring" "$gz" "$dest"
refused missing-sig-file 1 "cannot open bmap signature file" \
	"$BMAPTOOL" copy --bmap "$bmap" --bmap-sig "$S/nonexistent.asc" "$gz" "$dest"
# A clearsigned bmap changed after signing.
sed 's/<BlockSize>/<BlockSize> /' "$S/good.clear.asc" >"$S/changed.clear.asc"
refused changed-clearsigned 1 "$BAD" "$BMAPTOOL" copy --bmap "$S/changed.clear.asc" "$gz" "$dest"

# ---- discovery: BMAP.asc, then BMAP.sig ----------------------------------------

mkdir "$d/disc"
cp "$img" "$gz" "$bmap" "$d/disc/"
dimg=$d/disc/disk.img.gz
gpg --homedir "$GOOD" --batch -u "$FGOOD" --detach-sign -o "$d/disc/disk.img.bmap.sig" \
	"$d/disc/disk.img.bmap" 2>/dev/null || fail "binary signature"
ok discovered-sig "discovered signature file for bmap '$d/disc/disk.img.bmap.sig'" \
	"$BMAPTOOL" copy "$dimg" "$dest"
grep -qF "$GOODMSG" "$d/discovered-sig.err" || bad "discovered-sig: not verified"
cp "$S/unknown.det.asc" "$d/disc/disk.img.bmap.asc"
refused discovered-asc-first 1 "$BAD" "$BMAPTOOL" copy "$dimg" "$dest"
grep -qF "disk.img.bmap.asc" "$d/discovered-asc-first.err" || bad "discovered-asc-first: .asc not taken first"
refused explicit-bmap-discovered-asc 1 "$BAD" "$BMAPTOOL" copy --bmap "$d/disc/disk.img.bmap" "$dimg" "$dest"
ok no-sig-verify-ignores-asc "copying image" "$BMAPTOOL" copy --no-sig-verify "$dimg" "$dest"
grep -qF "$BAD" "$d/no-sig-verify-ignores-asc.err" && bad "--no-sig-verify still checked the .asc"
sign "$OTHER" "$FOTHER" clearsign "$bmap" "$S/unknown.clear.asc"
refused unknown-clearsigned 1 "$BAD" "$BMAPTOOL" copy --bmap "$S/unknown.clear.asc" "$gz" "$dest"
ok no-sig-verify-clearsigned "copying image" \
	"$BMAPTOOL" copy --no-sig-verify --bmap "$S/unknown.clear.asc" "$gz" "$dest"

# ---- conflicting options: usage errors in copy, verify and info -----------------

for cmd in copy verify; do
	refused "$cmd-sig-no-verify" 2 "--bmap-sig and --no-sig-verify cannot be used together" \
		"$BMAPTOOL" "$cmd" --bmap "$bmap" --bmap-sig "$S/good.det.asc" --no-sig-verify "$gz" "$dest"
	refused "$cmd-keyring-no-verify" 2 "--no-sig-verify and --keyring cannot be used together" \
		"$BMAPTOOL" "$cmd" --bmap "$bmap" --keyring "$d/good.keyring" --no-sig-verify "$gz" "$dest"
	refused "$cmd-fpr-no-verify" 2 "--no-sig-verify and --fingerprint cannot be used together" \
		"$BMAPTOOL" "$cmd" --bmap "$bmap" --fingerprint "$FGOOD" --no-sig-verify "$gz" "$dest"
	refused "$cmd-sig-nobmap" 2 "--nobmap and --bmap-sig cannot be used together" \
		"$BMAPTOOL" "$cmd" --nobmap --bmap-sig "$S/good.det.asc" "$gz" "$dest"
	refused "$cmd-fpr-nobmap" 2 "--nobmap and --fingerprint cannot be used together" \
		"$BMAPTOOL" "$cmd" --nobmap --fingerprint "$FGOOD" "$gz" "$dest"
done
run info-sig-no-verify "$BMAPTOOL" info --bmap "$bmap" --bmap-sig "$S/good.det.asc" --no-sig-verify "$img"
[[ $RC -eq 2 ]] || bad "info --bmap-sig --no-sig-verify: exit $RC, expected 2"
# A raw sparse image without a bmap file: nothing the signature could be of.
cp "$d/other.img" "$d/lonely.img"
refused sig-without-bmap-raw 1 "the bmap signature file was specified, but bmap file was not found" \
	"$BMAPTOOL" copy --bmap-sig "$S/good.det.asc" "$d/lonely.img" "$dest"
refused fpr-without-bmap-raw 1 "no signature found but --fingerprint given" \
	"$BMAPTOOL" copy --fingerprint "$FGOOD" "$d/lonely.img" "$dest"

# Several DESTs at once: the same check, before either is touched.
new_file_card $((4 << 20)) dest2
dest2=$CARD_FILE
touch -d '2001-01-01 00:00:00' "$dest2"
refused multi-dest 1 "$BAD" \
	"$BMAPTOOL" copy --bmap "$bmap" --bmap-sig "$S/unknown.det.asc" "$gz" "$dest" "$dest2"
is_pattern "$dest2" || bad "multi-dest: the second DEST was written to"
[[ $(stat -c %Y "$dest2") == $(date -d '2001-01-01 00:00:00' +%s) ]] || bad "multi-dest: the second DEST's mtime changed"
run multi-dest-good "$BMAPTOOL" copy --bmap "$bmap" --bmap-sig "$S/good.det.asc" "$gz" "$dest" "$dest2"
[[ $RC -eq 0 ]] || bad "multi-dest-good: exit $RC: $ERR"
grep -qF "$GOODMSG" <<<"$ERR" || bad "multi-dest-good: no '$GOODMSG'"
# A clearsigned bmap needs no detached signature: giving one is refused.
refused clearsigned-and-bmap-sig 1 "is clearsigned: it needs no --bmap-sig" \
	"$BMAPTOOL" copy --bmap "$S/good.clear.asc" --bmap-sig "$S/good.det.asc" "$gz" "$dest"

# ---- nothing written to a card on a bad signature --------------------------------

if have_loop; then
	new_card $((4 << 20))
	card=$CARD_DEV
	run card-bad "$BMAPTOOL" copy --bmap "$bmap" --bmap-sig "$S/unknown.det.asc" "$gz" "$card"
	[[ $RC -eq 1 ]] || bad "card-bad: exit $RC, expected 1: $ERR"
	grep -qF "$BAD" <<<"$ERR" || bad "card-bad: no '$BAD': $ERR"
	dev_is_pattern "$card" || bad "card-bad: the card was written to"
	run card-good "$BMAPTOOL" copy --bmap "$bmap" --bmap-sig "$S/good.det.asc" "$gz" "$card"
	[[ $RC -eq 0 ]] || bad "card-good: exit $RC: $ERR"
	"$BMAPTOOL" -q verify --bmap "$bmap" "$gz" "$card" || bad "card-good: the card does not hold the image"
else
	log "SKIP (card part only): no loop device here; DEST files were checked"
fi

# ---- verify and info --------------------------------------------------------------

fill_pattern "$dest" $((4 << 20))
"$BMAPTOOL" -q copy --bmap "$bmap" "$gz" "$dest" || fail "plain copy"
run verify-good "$BMAPTOOL" verify --bmap "$bmap" --bmap-sig "$S/good.det.asc" --fingerprint "$FGOOD" "$gz" "$dest"
[[ $RC -eq 0 ]] || bad "verify-good: exit $RC: $ERR"
grep -qF "$GOODMSG" <<<"$ERR" || bad "verify-good: no '$GOODMSG': $ERR"
run verify-bad "$BMAPTOOL" verify --bmap "$bmap" --bmap-sig "$S/unknown.det.asc" "$gz" "$dest"
[[ $RC -eq 1 ]] || bad "verify-bad: exit $RC, expected 1"
grep -qF "$BAD" <<<"$ERR" || bad "verify-bad: no '$BAD': $ERR"
grep -q "verifying '" <<<"$ERR" && bad "verify-bad: it went on to read DEST"
run verify-clear "$BMAPTOOL" verify --bmap "$S/good.clear.asc" "$gz" "$dest"
[[ $RC -eq 0 ]] || bad "verify-clear: exit $RC: $ERR"

run info-text "$BMAPTOOL" info --bmap "$S/good.clear.asc" "$img"
[[ $RC -eq 0 ]] || bad "info-text: exit $RC: $ERR"
grep -qx "signature:      valid (clearsigned)" <<<"$OUT" || bad "info-text: no signature line: $OUT"
grep -qx "signer:         $FGOOD" <<<"$OUT" || bad "info-text: no signer line: $OUT"
grep -qx "signer uid:     correct <foo@bar.org>" <<<"$OUT" || bad "info-text: no uid line: $OUT"
run info-json "$BMAPTOOL" info --json --bmap "$bmap" --bmap-sig "$S/good.det.asc" "$img"
[[ $RC -eq 0 ]] || bad "info-json: exit $RC: $ERR"
python3 - "$d/info-json.out" "$FGOOD" "$S/good.det.asc" <<-'EOF' || bad "info-json: $OUT"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["signature"] == "valid", j
assert j["signer_fingerprint"] == sys.argv[2], j
assert j["signer_uid"] == "correct <foo@bar.org>", j
assert j["signature_file"] == sys.argv[3], j
assert j["clearsigned"] is False, j
EOF
run info-unsigned "$BMAPTOOL" info --json --bmap "$obmap" "$img"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["signature"]=="none" and j["signer_fingerprint"] is None' \
	"$d/info-unsigned.out" || bad "info-unsigned: $OUT"
run info-bad "$BMAPTOOL" info --bmap "$bmap" --bmap-sig "$S/unknown.det.asc" "$img"
[[ $RC -eq 1 ]] || bad "info-bad: exit $RC, expected 1"
grep -qF "$BAD" <<<"$ERR" || bad "info-bad: no '$BAD': $ERR"
run info-discovered "$BMAPTOOL" info "$d/disc/disk.img"
[[ $RC -eq 1 ]] || bad "info-discovered: the bad .asc beside the discovered bmap was not checked"

# No private GnuPG home left behind.
for h in "${TMPDIR:-/tmp}"/bmap-gnupg.*; do
	[[ -e $h && $(stat -c %Y "$h") -ge $(stat -c %Y "$d") ]] && bad "a private GnuPG home was left: $h"
done

finish "signatures: upstream's eight cases, expired, revoked, other files, discovery, conflicts, verify and info"
