#!/bin/bash
# Regression: the 1 MiB bound on the TLS certificate and key never applied
# (it read open_memstream's length, which only fflush updates), so
# `tls_cert = "/dev/zero"` had `serve` read forever at start, and the
# password file was read with an unbounded getline. Each of /dev/zero, a
# 2 MiB file and a folder as serve.tls_cert, serve.tls_key or
# serve.password_file must give a clear message and exit status 1 before
# anything listens (timeout 20: a hang is a failure).
. "$TESTS_DIR/lib/common.sh"
. "$TESTS_DIR/lib/serve.sh"

[[ -x $STATION ]] || skip "bmap-station not built"
need_cmd openssl

db=$TEST_TMP/journal.db
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
	-keyout "$TEST_TMP/key.pem" -out "$TEST_TMP/cert.pem" 2>"$TEST_TMP/openssl.err" ||
	fail "openssl cannot make a certificate: $(cat "$TEST_TMP/openssl.err")"
printf 'pw\n' >"$TEST_TMP/password"
head -c $((2 << 20)) /dev/zero | tr '\0' 'A' >"$TEST_TMP/big"
mkdir "$TEST_TMP/folder"
cert=$TEST_TMP/cert.pem key=$TEST_TMP/key.pem pw=$TEST_TMP/password

# bad SETTING VALUE WORDS: serve refuses at once, saying WORDS.
bad() {
	local c=$cert k=$key p=$pw rc=0
	case $1 in
	tls_cert) c=$2 ;; tls_key) k=$2 ;; password_file) p=$2 ;;
	esac
	cat >"$TEST_TMP/s.conf" <<CONF
station = { name = "line-1"; database = "$db"; };
profiles = ( { name = "p"; image = "$TEST_TMP/none.img"; } );
serve = { tls_cert = "$c"; tls_key = "$k"; password_file = "$p"; };
CONF
	timeout 20 "$STATION" serve --config "$TEST_TMP/s.conf" --listen 127.0.0.1:0 \
		>"$TEST_TMP/out" 2>"$TEST_TMP/err" </dev/null || rc=$?
	[[ $rc == 124 ]] && fail "$1 = $2: serve still reading after 20 s"
	[[ $rc == 1 ]] || fail "$1 = $2: exit $rc, not 1: $(cat "$TEST_TMP/err" "$TEST_TMP/out")"
	grep -qF "$3" "$TEST_TMP/err" || fail "$1 = $2: not \"$3\": $(cat "$TEST_TMP/err")"
	! grep -q "listening on" "$TEST_TMP/out" "$TEST_TMP/err" || fail "$1 = $2: it listened"
	log "$1 = $2: $(head -n 1 "$TEST_TMP/err")"
}
for s in tls_cert tls_key password_file; do
	bad $s /dev/zero "is not a regular file"
	bad $s "$TEST_TMP/big" "is too big (at most 1048576 bytes)"
	bad $s "$TEST_TMP/folder" "is not a regular file"
done
: >"$TEST_TMP/empty"
bad tls_cert "$TEST_TMP/empty" "is empty"
bad password_file "$TEST_TMP/empty" "is empty"
exit 0
