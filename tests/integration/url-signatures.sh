#!/bin/bash
# Signed bmaps at URLs: an image, its bmap and the bmap's detached signature
# on a real nginx on 127.0.0.1, keys made here (gpg --quick-gen-key in a
# temporary GNUPGHOME).
#
# - the signature is discovered next to a discovered bmap URL (BMAP.asc
#   before the query), verified ("successfully verified bmap file
#   signature"), and the card equals a local copy; `info` shows the signer;
# - --bmap URL and --bmap-sig URL given, also as BMAP.sig when there is no
#   .asc (the .asc answers 404);
# - a signature of another file at BMAP.asc: "discovered a BAD GPG
#   signature", exit 1, DEST never created;
# - --fingerprint of another key: refused, nothing written;
# - a clearsigned bmap at a URL: its XML is taken from inside the signature.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/webserver.sh"
need_ours
need_nginx
need_cmd gpg
need_cmd gpgconf
need_cmd cmp

export GNUPGHOME=$TEST_TMP/gnupg
mkdir -m 700 "$GNUPGHOME"
on_exit 'gpgconf --homedir "$GNUPGHOME" --kill all 2>/dev/null'
gpg --batch --passphrase '' --quick-gen-key "Release <release@example.com>" default default never \
	2>/dev/null || fail "gpg could not make a key"
fpr=$(gpg --with-colons --list-keys | awk -F: '/^fpr:/ { print $10; exit }')
[[ ${#fpr} == 40 ]] || fail "no fingerprint: '$fpr'"

www=$TEST_TMP/www
mkdir -p "$www/s"
mk_sparse_image "$TEST_TMP/disk.img" "size=6M+100 data=4K:64K data=3M:8K data=6M-4K:4196"
"$BMAPTOOL" -q create -o "$www/disk.img.bmap" "$TEST_TMP/disk.img" || fail "create failed"
zstd -q -c "$TEST_TMP/disk.img" >"$www/disk.img.zst" || fail "zstd failed"
gpg --batch --armor --detach-sign -o "$www/disk.img.bmap.asc" "$www/disk.img.bmap" ||
	fail "gpg --detach-sign failed"
# Another directory: the signature only as BMAP.sig (binary), a clearsigned
# bmap, a signature of another file.
cp "$www/disk.img.zst" "$www/disk.img.bmap" "$www/s/"
gpg --batch --detach-sign -o "$www/s/disk.img.bmap.sig" "$www/s/disk.img.bmap" || fail "gpg .sig"
gpg --batch --clearsign -o "$www/s/clear.bmap" "$www/disk.img.bmap" || fail "gpg --clearsign"
gpg --batch --armor --detach-sign -o "$www/s/other.asc" "$www/disk.img.zst" || fail "gpg other"
"$BMAPTOOL" -q copy "$www/disk.img.zst" "$TEST_TMP/local" || fail "local copy failed"

web_start a "$www"
url=$(web_url a)
url=${url%/}

out=$TEST_TMP/out
"$BMAPTOOL" copy "$url/disk.img.zst?t=1" "$TEST_TMP/c1" 2>"$out" || fail "copy failed: $(cat "$out")"
grep -q "discovered signature file for bmap '$url/disk.img.bmap.asc?t=1'" "$out" ||
	fail "the .asc next to the bmap URL was not discovered: $(cat "$out")"
grep -q "successfully verified bmap file signature" "$out" || fail "not verified: $(cat "$out")"
cmp -s "$TEST_TMP/c1" "$TEST_TMP/local" || fail "the card differs from a local copy"
"$BMAPTOOL" info "$url/disk.img.zst" 2>/dev/null | grep -q "^signer: *$fpr" ||
	fail "info does not show the signer $fpr"

"$BMAPTOOL" copy --bmap "$url/s/disk.img.bmap" "$url/s/disk.img.zst" "$TEST_TMP/c2" 2>"$out" ||
	fail "copy with a .sig failed: $(cat "$out")"
grep -q "discovered signature file for bmap '$url/s/disk.img.bmap.sig'" "$out" ||
	fail "BMAP.sig was not taken when BMAP.asc is missing: $(cat "$out")"
cmp -s "$TEST_TMP/c2" "$TEST_TMP/local" || fail "the card (.sig) differs from a local copy"

"$BMAPTOOL" copy --bmap "$url/s/disk.img.bmap" --bmap-sig "$url/disk.img.bmap.asc" \
	"$url/s/disk.img.zst" "$TEST_TMP/c3" 2>"$out" || fail "--bmap-sig URL failed: $(cat "$out")"
grep -q "successfully verified" "$out" || fail "--bmap-sig URL not verified: $(cat "$out")"

"$BMAPTOOL" copy --bmap "$url/s/clear.bmap" "$url/s/disk.img.zst" "$TEST_TMP/c4" 2>"$out" ||
	fail "a clearsigned bmap URL failed: $(cat "$out")"
grep -q "successfully verified" "$out" || fail "the clearsigned URL was not verified: $(cat "$out")"
cmp -s "$TEST_TMP/c4" "$TEST_TMP/local" || fail "the card (clearsigned) differs"

# Refusals: nothing is written, DEST is not even created.
rc=0
"$BMAPTOOL" copy --bmap "$url/s/disk.img.bmap" --bmap-sig "$url/s/other.asc" \
	"$url/s/disk.img.zst" "$TEST_TMP/bad1" 2>"$out" || rc=$?
[[ $rc == 1 ]] || fail "a signature of another file: exit $rc, expected 1: $(cat "$out")"
grep -q "discovered a BAD GPG signature" "$out" || fail "no BAD signature line: $(cat "$out")"
[[ ! -e $TEST_TMP/bad1 ]] || fail "DEST was created before the signature was checked"
rc=0
"$BMAPTOOL" copy --fingerprint 0123456789ABCDEF0123456789ABCDEF01234567 "$url/disk.img.zst" \
	"$TEST_TMP/bad2" 2>"$out" || rc=$?
[[ $rc == 1 ]] || fail "another signer wanted: exit $rc, expected 1: $(cat "$out")"
[[ ! -e $TEST_TMP/bad2 ]] || fail "DEST was created for a bmap of another signer"

log "PASS"
