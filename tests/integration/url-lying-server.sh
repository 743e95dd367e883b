#!/bin/bash
# A server that sends more or fewer bytes than its Content-Length says (a
# tiny python3 http.server subclass on 127.0.0.1: nginx does not lie):
#
# - an image that ends early, again at the same byte when asked to resume,
#   and one with bytes past its Content-Length: exit 1, the URL and "fewer"
#   / "more bytes than it announced" named (the copy may have written
#   before: the card is then called incomplete);
# - a bmap given as such a URL: exit 1, the URL named, DEST not created.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_ours
need_reference
need_cmd python3

www=$TEST_TMP/www
mkdir -p "$www"
mk_sparse_image "$www/disk.img" "size=2M data=0:1M+4K"
"$REF" create -o "$www/disk.img.bmap" "$www/disk.img" 2>/dev/null || fail "reference create failed"

cat >"$TEST_TMP/liar.py" <<'PY'
import http.server, os, socketserver, sys

root, portfile = sys.argv[1], sys.argv[2]

class Liar(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        how, name = self.path.strip("/").split("/", 1)
        data = open(os.path.join(root, name), "rb").read()
        self.send_response(200)
        if how == "fewer":      # announces all, sends all but 1000 bytes
            self.send_header("Content-Length", str(len(data)))
            data = data[:-1000]
        else:                   # announces 1000 bytes fewer than it sends
            self.send_header("Content-Length", str(len(data) - 1000))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

srv = socketserver.TCPServer(("127.0.0.1", 0), Liar)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + ".tmp", portfile)
srv.serve_forever()
PY
python3 "$TEST_TMP/liar.py" "$www" "$TEST_TMP/port" &
liar=$!
on_exit "kill $liar 2>/dev/null; wait $liar 2>/dev/null"
for ((i = 0; i < 100; i++)); do
	[[ -s $TEST_TMP/port ]] && break
	sleep 0.05
done
[[ -s $TEST_TMP/port ]] || fail "the lying server did not start"
base="http://127.0.0.1:$(cat "$TEST_TMP/port")"

out=$TEST_TMP/out
for how in fewer more; do
	if "$BMAPTOOL" copy --bmap "$www/disk.img.bmap" "$base/$how/disk.img" "$TEST_TMP/$how" \
		>"$out" 2>&1; then
		fail "copy from a server sending $how bytes than announced succeeded"
	fi
	grep -q "$base/$how/disk.img.*$how bytes than it announced" "$out" ||
		{ cat "$out" >&2; fail "the image with $how bytes: not named so"; }

	if "$BMAPTOOL" copy --bmap "$base/$how/disk.img.bmap" "$www/disk.img" "$TEST_TMP/new" \
		>"$out" 2>&1; then
		fail "a bmap with $how bytes than announced was used"
	fi
	grep -q "$base/$how/disk.img.bmap.*$how bytes than it announced" "$out" ||
		{ cat "$out" >&2; fail "the bmap with $how bytes: not named so"; }
	[[ ! -e $TEST_TMP/new ]] || fail "a bmap with $how bytes created DEST"
done
log "PASS"
