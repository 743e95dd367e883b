#!/bin/bash
# https with a certificate nobody trusts: an nginx on 127.0.0.1 with a
# self-signed certificate (made here with openssl). copy, verify and info
# refuse it (exit 1, the URL named and "--insecure" suggested, DEST not
# created); with --insecure the copy succeeds and equals a local copy, and
# the bmap discovered next to the image is fetched the same way. A server
# whose certificate is trusted (through CURL_CA_BUNDLE, which libcurl takes
# from the environment) is accepted without --insecure.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/webserver.sh"
need_ours
need_reference
need_nginx
need_cmd openssl
need_cmd cmp

www=$TEST_TMP/www
mkdir -p "$www"
mk_sparse_image "$www/disk.img" "size=8M+512 data=0:64K data=5M:12K data=8M-4K:4608"
"$REF" create -o "$www/disk.img.bmap" "$www/disk.img" 2>/dev/null || fail "reference create failed"
gzip -1 -c "$www/disk.img" >"$www/disk.img.gz"

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TEST_TMP/key.pem" -out "$TEST_TMP/cert.pem" \
	-days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 ||
	fail "openssl could not make a certificate"
web_start s "$www" "ssl_certificate $TEST_TMP/cert.pem; ssl_certificate_key $TEST_TMP/key.pem;" ssl
url=$(web_url s disk.img.gz https)

"$BMAPTOOL" -q copy "$www/disk.img.gz" "$TEST_TMP/local" || fail "local copy failed"

out=$TEST_TMP/out
for cmd in "copy $url $TEST_TMP/new" "verify $url $TEST_TMP/local" "info $url"; do
	# shellcheck disable=SC2086
	if "$BMAPTOOL" $cmd >"$out" 2>&1; then
		fail "'$cmd' accepted a self-signed certificate"
	fi
	grep -q "https://127.0.0.1:$WEB_PORT_s/disk.img.gz.*certificate.*--insecure" "$out" ||
		{ cat "$out" >&2; fail "'$cmd': the refusal does not name the URL and --insecure"; }
done
[[ ! -e $TEST_TMP/new ]] || fail "a refused certificate created DEST"

"$BMAPTOOL" copy --insecure "$url" "$TEST_TMP/new" >"$out" 2>&1 ||
	{ cat "$out" >&2; fail "copy --insecure failed"; }
grep -q "discovered bmap file 'https://127.0.0.1:$WEB_PORT_s/disk.img.gz.bmap'\|discovered bmap file 'https://127.0.0.1:$WEB_PORT_s/disk.img.bmap'" "$out" ||
	{ cat "$out" >&2; fail "the bmap was not discovered over https"; }
cmp "$TEST_TMP/local" "$TEST_TMP/new" || fail "the https copy differs from the local copy"
"$BMAPTOOL" -q verify --insecure "$url" "$TEST_TMP/new" || fail "verify --insecure failed"
"$BMAPTOOL" info --insecure "$url" >/dev/null 2>&1 || fail "info --insecure failed"

CURL_CA_BUNDLE=$TEST_TMP/cert.pem "$BMAPTOOL" -q copy "$url" "$TEST_TMP/trusted" ||
	fail "a trusted certificate (CURL_CA_BUNDLE) was refused"
cmp "$TEST_TMP/local" "$TEST_TMP/trusted" || fail "the trusted https copy differs"
log "PASS"
