#!/bin/bash
# Logins: an nginx on 127.0.0.1 behind auth_basic (an htpasswd file made
# with `openssl passwd -apr1`).
#
# - no login: exit 1, "HTTP 401 Unauthorized" and the URL named, DEST not
#   created;
# - the login in ~/.netrc (HOME pointed at a folder of the test): the image
#   and the bmap discovered next to it are fetched, the copy equals a local
#   one;
# - the login in the URL (user:password@): the same, and the password is
#   in no line that copy, verify or info print, with -d too, nor when the
#   password is wrong (401) or the bmap given as a URL is missing (404).

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/webserver.sh"
need_ours
need_reference
need_nginx
need_cmd openssl
need_cmd cmp

www=$TEST_TMP/www
mkdir -p "$www" "$TEST_TMP/home"
mk_sparse_image "$www/disk.img" "size=6M+100 data=4K:64K data=3M:8K data=6M-4K:4196"
"$REF" create -o "$www/disk.img.bmap" "$www/disk.img" 2>/dev/null || fail "reference create failed"
xz -0 -c "$www/disk.img" >"$www/disk.img.xz" || fail "xz failed"
"$BMAPTOOL" -q copy "$www/disk.img.xz" "$TEST_TMP/local" || fail "local copy failed"

pw="Pw-$RANDOM$RANDOM-secret"
printf 'lab:%s\n' "$(openssl passwd -apr1 "$pw")" >"$TEST_TMP/htpasswd"
web_start a "$www" "auth_basic images; auth_basic_user_file $TEST_TMP/htpasswd;"
port=$WEB_PORT_a
export HOME=$TEST_TMP/home

out=$TEST_TMP/out
# no_password FILE WHAT: the password (and the URL's userinfo) is nowhere.
no_password() {
	if grep -q -e "$pw" -e "wrong-$pw" -e "lab:" "$1"; then
		cat "$1" >&2
		fail "$2 printed the password"
	fi
}

if "$BMAPTOOL" copy "http://127.0.0.1:$port/disk.img.xz" "$TEST_TMP/new" >"$out" 2>&1; then
	fail "copy without a login succeeded"
fi
grep -q "127.0.0.1:$port/disk.img.xz.*HTTP 401 Unauthorized" "$out" ||
	{ cat "$out" >&2; fail "the 401 is not named with the URL"; }
[[ ! -e $TEST_TMP/new ]] || fail "a refused login created DEST"

printf 'machine 127.0.0.1\nlogin lab\npassword %s\n' "$pw" >"$HOME/.netrc"
chmod 600 "$HOME/.netrc"
"$BMAPTOOL" copy "http://127.0.0.1:$port/disk.img.xz" "$TEST_TMP/netrc" >"$out" 2>&1 ||
	{ cat "$out" >&2; fail "copy with the login in ~/.netrc failed"; }
grep -q "discovered bmap file" "$out" || { cat "$out" >&2; fail "the bmap was not found with ~/.netrc"; }
cmp "$TEST_TMP/local" "$TEST_TMP/netrc" || fail "the ~/.netrc copy differs from the local copy"
no_password "$out" "copy with ~/.netrc"
rm "$HOME/.netrc"

url="http://lab:$pw@127.0.0.1:$port/disk.img.xz"
"$BMAPTOOL" -d copy "$url" "$TEST_TMP/inurl" >"$out" 2>&1 ||
	{ cat "$out" >&2; fail "copy with the login in the URL failed"; }
cmp "$TEST_TMP/local" "$TEST_TMP/inurl" || fail "the user:password@ copy differs from the local copy"
grep -q "discovered bmap file 'http://127.0.0.1:$port/disk.img.bmap'" "$out" ||
	{ cat "$out" >&2; fail "the discovered bmap is not named without the login"; }
no_password "$out" "copy -d of a user:password@ URL"

"$BMAPTOOL" -d verify "$url" "$TEST_TMP/inurl" >"$out" 2>&1 ||
	{ cat "$out" >&2; fail "verify of a user:password@ URL failed"; }
no_password "$out" "verify -d of a user:password@ URL"
"$BMAPTOOL" -d info --json "$url" >"$out" 2>&1 ||
	{ cat "$out" >&2; fail "info of a user:password@ URL failed"; }
no_password "$out" "info of a user:password@ URL"

for args in "http://lab:wrong-$pw@127.0.0.1:$port/disk.img.xz" \
	"--bmap http://lab:$pw@127.0.0.1:$port/missing.bmap $url"; do
	# shellcheck disable=SC2086
	if "$BMAPTOOL" -d copy $args "$TEST_TMP/new" >"$out" 2>&1; then
		fail "copy $args succeeded"
	fi
	grep -q "HTTP 40[14]" "$out" || { cat "$out" >&2; fail "copy $args: no HTTP status named"; }
	no_password "$out" "a failed copy"
	[[ ! -e $TEST_TMP/new ]] || fail "a failed login created DEST"
done
log "PASS"
