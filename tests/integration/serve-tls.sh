#!/bin/bash
# `bmap-station serve` off loopback: refused without TLS and a password
# (each alone is not enough, and the refusal is an exit status 2 before
# anything listens), served with both: HTTPS with a self-signed certificate
# the test makes (curl --cacert), HTTP Basic with the password file's
# password, 401 without it or with a wrong one, and the password never in
# the log. On loopback a configured password is asked too.
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/serve.sh"

[[ -x $STATION ]] || skip "bmap-station not built"
need_cmd curl
need_cmd openssl

db=$TEST_TMP/journal.db
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
	-addext subjectAltName=IP:127.0.0.1,DNS:localhost \
	-keyout "$TEST_TMP/key.pem" -out "$TEST_TMP/cert.pem" 2>"$TEST_TMP/openssl.err" ||
	fail "openssl cannot make a certificate: $(cat "$TEST_TMP/openssl.err")"
secret='s3cret-Pa55:with colon'
printf '%s\n' "$secret" >"$TEST_TMP/password"
chmod 600 "$TEST_TMP/password"

conf() { # FILE SERVE_SETTINGS
	cat >"$1" <<CONF
station = { name = "line-1"; database = "$db"; };
profiles = ( { name = "p"; image = "$TEST_TMP/none.img"; } );
serve = { $2 };
CONF
}
refused() { # CONF LISTEN WHY
	local rc=0
	timeout 20 "$STATION" serve --config "$1" --listen "$2" >"$TEST_TMP/out" 2>"$TEST_TMP/err" ||
		rc=$?
	[[ $rc == 2 ]] || fail "$3: serve --listen $2 exited $rc, not 2: $(cat "$TEST_TMP/err")"
	grep -qF "refusing to listen on $2, which is not a loopback address" "$TEST_TMP/err" ||
		fail "$3: no refusal message: $(cat "$TEST_TMP/err")"
}
conf "$TEST_TMP/plain.conf" ""
refused "$TEST_TMP/plain.conf" 0.0.0.0:0 "without TLS and password"
refused "$TEST_TMP/plain.conf" "[::]:0" "without TLS and password (IPv6)"
conf "$TEST_TMP/tls.conf" "tls_cert = \"$TEST_TMP/cert.pem\"; tls_key = \"$TEST_TMP/key.pem\";"
refused "$TEST_TMP/tls.conf" 0.0.0.0:0 "TLS without a password"
conf "$TEST_TMP/pw.conf" "password_file = \"$TEST_TMP/password\";"
refused "$TEST_TMP/pw.conf" 0.0.0.0:0 "a password without TLS"
# The listen address from the configuration is held to the same rule.
conf "$TEST_TMP/cfg-listen.conf" "listen = \"0.0.0.0:0\";"
rc=0
timeout 20 "$STATION" serve --config "$TEST_TMP/cfg-listen.conf" >/dev/null 2>"$TEST_TMP/err" || rc=$?
[[ $rc == 2 ]] && grep -q "refusing to listen on 0.0.0.0:0" "$TEST_TMP/err" ||
	fail "serve.listen off loopback without TLS: exit $rc: $(cat "$TEST_TMP/err")"
rc=0
"$STATION" serve --config "$TEST_TMP/plain.conf" --listen nonsense >/dev/null 2>&1 || rc=$?
[[ $rc == 2 ]] || fail "--listen nonsense: exit $rc, not 2"

# -- TLS and a password: served.
conf "$TEST_TMP/full.conf" "tls_cert = \"$TEST_TMP/cert.pem\"; tls_key = \"$TEST_TMP/key.pem\";
	password_file = \"$TEST_TMP/password\";"
serve_start tls --config "$TEST_TMP/full.conf" --listen 0.0.0.0:0 || fail "serve did not start"
url=$(serve_url tls)
[[ $url == https://0.0.0.0:* ]] || fail "not HTTPS: $url"
port=${url##*:}
base=https://127.0.0.1:$port
code=$(curl -s --cacert "$TEST_TMP/cert.pem" -o /dev/null -D "$TEST_TMP/h" -w '%{http_code}' "$base/")
[[ $code == 401 ]] || fail "no password: $code, not 401"
tr -d '\r' <"$TEST_TMP/h" | grep -q '^WWW-Authenticate: Basic realm="bmap-station"' ||
	fail "401 without WWW-Authenticate: $(cat "$TEST_TMP/h")"
tr -d '\r' <"$TEST_TMP/h" | grep -q "^Content-Security-Policy: default-src 'none';" ||
	fail "401 without the CSP"
code=$(curl -s --cacert "$TEST_TMP/cert.pem" -u "x:wrong" -o /dev/null -w '%{http_code}' "$base/api/live")
[[ $code == 401 ]] || fail "wrong password: $code, not 401"
code=$(curl -s --cacert "$TEST_TMP/cert.pem" -u "x:${secret}x" -o /dev/null -w '%{http_code}' "$base/api/live")
[[ $code == 401 ]] || fail "the password and more: $code, not 401"
code=$(curl -s --cacert "$TEST_TMP/cert.pem" -u "x:${secret%?}" -o /dev/null -w '%{http_code}' "$base/api/live")
[[ $code == 401 ]] || fail "a prefix of the password: $code, not 401"
code=$(curl -s --cacert "$TEST_TMP/cert.pem" -u "x:$secret" -X POST -o /dev/null -w '%{http_code}' "$base/")
[[ $code == 405 ]] || fail "POST with the password: $code, not 405"
curl -sf --cacert "$TEST_TMP/cert.pem" -u "anyone:$secret" "$base/api/live" >"$TEST_TMP/live.json" ||
	fail "the right password over TLS was not served"
grep -q '"journal":"missing"' "$TEST_TMP/live.json" || fail "/api/live: $(cat "$TEST_TMP/live.json")"
# Unverified TLS is not accepted by curl, and plain HTTP is not answered.
curl -s -o /dev/null -u "x:$secret" "$base/" && fail "curl accepted the certificate without --cacert"
curl -s -o /dev/null --max-time 5 -u "x:$secret" "http://127.0.0.1:$port/" &&
	fail "plain HTTP was answered on the TLS port"
serve_stop tls
grep -qF "$secret" "$SERVE_LOG_tls" && fail "the password is in the log"
grep -q "password required" "$SERVE_LOG_tls" || fail "the log does not say a password is asked"

# -- On loopback, a configured password is asked as well.
serve_start lo --config "$TEST_TMP/pw.conf" --listen 127.0.0.1:0 || fail "serve did not start"
code=$(curl -s -o /dev/null -w '%{http_code}' "$(serve_url lo)/")
[[ $code == 401 ]] || fail "loopback with a password file, no password: $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -u "x:$secret" "$(serve_url lo)/")
[[ $code == 200 ]] || fail "loopback with the password: $code"
log "ok"
