#!/bin/bash
# Images and bmaps from http:// and file: URLs, served by a real nginx on
# 127.0.0.1 (tests/lib/webserver.sh):
#
# - copy of a zstd image and of a raw one from a URL, the bmap discovered
#   next to it (".bmap" added to the path, before the query; then one
#   extension off), gives exactly the file a local copy gives (and the one
#   the reference 3.9 gives from the same URL, when bmaptool-3.9 is
#   installed: CI has only Debian's 3.6, so that comparison is skipped
#   there); --bmap URL; a file: URL; verify and info of a URL;
# - a 404 for the image or for --bmap: exit 1, the URL and "HTTP 404 Not
#   Found" named, DEST not created (nor an existing DEST changed);
# - a redirect loop: exit 1, "redirect loop" named, DEST not created;
# - create refuses a URL;
# - http_proxy from the environment is used as curl uses it: an image at a
#   host name that does not resolve (images.invalid) is copied through a
#   second nginx acting as the proxy, which logs the request.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/webserver.sh"
need_ours
need_reference # its create makes the bmap
need_nginx
need_cmd zstd
need_cmd cmp

www=$TEST_TMP/www
mkdir -p "$www/sub"
mk_sparse_image "$www/disk.img" "size=24M+1000 data=0:256K data=3M+4K:1M data=9M:4K \
	zero=12M:64K data=24M-4K:5096"
"$REF" create -o "$www/disk.bmap" "$www/disk.img" 2>/dev/null || fail "reference create failed"
zstd -q -1 -c "$www/disk.img" >"$www/disk.img.zst" || fail "zstd failed"
cp "$www/disk.img" "$www/sub/raw.img"
cp "$www/disk.bmap" "$www/sub/raw.img.bmap"

web_start a "$www" "location /loop { return 302 /loop2; } location /loop2 { return 302 /loop; }"

# The local copy: what every URL copy must give.
"$BMAPTOOL" -q copy --bmap "$www/disk.bmap" "$www/disk.img.zst" "$TEST_TMP/local" ||
	fail "local copy failed"

out=$TEST_TMP/out
"$BMAPTOOL" copy "$(web_url a 'disk.img.zst?token=1#frag')" "$TEST_TMP/u1" >"$out" 2>&1 ||
	{ cat "$out" >&2; fail "copy of a zstd URL failed"; }
grep -q "discovered bmap file 'http://127.0.0.1:$WEB_PORT_a/disk.bmap?token=1#frag'" "$out" ||
	{ cat "$out" >&2; fail "the bmap was not discovered next to the URL (before its query)"; }
cmp "$TEST_TMP/local" "$TEST_TMP/u1" || fail "the zstd URL's copy differs from the local copy"
grep -Eq '^(GET|HEAD) /disk.img.zst.bmap ' "$WEB_LOG_a" || fail "IMAGE.bmap was not tried first"

"$BMAPTOOL" -q copy "$(web_url a sub/raw.img)" "$TEST_TMP/u2" || fail "copy of a raw URL failed"
cmp "$TEST_TMP/local" "$TEST_TMP/u2" || fail "the raw URL's copy differs from the local copy"

"$BMAPTOOL" -q copy --bmap "$(web_url a disk.bmap)" "$(web_url a disk.img.zst)" "$TEST_TMP/u3" ||
	fail "copy with --bmap URL failed"
cmp "$TEST_TMP/local" "$TEST_TMP/u3" || fail "the --bmap URL copy differs from the local copy"

"$BMAPTOOL" -q copy "file://$www/disk.img.zst" "$TEST_TMP/u4" || fail "copy of a file: URL failed"
cmp "$TEST_TMP/local" "$TEST_TMP/u4" || fail "the file: URL's copy differs from the local copy"

"$BMAPTOOL" -q verify "$(web_url a disk.img.zst)" "$TEST_TMP/u1" || fail "verify of a URL failed"
"$BMAPTOOL" info "$(web_url a disk.img.zst)" >"$out" 2>&1 || { cat "$out" >&2; fail "info of a URL failed"; }
grep -q "^compression: *zstd" "$out" && grep -q "^bmap: .*/disk.bmap (discovered)" "$out" ||
	{ cat "$out" >&2; fail "info of a URL does not name its codec and bmap"; }

if command -v bmaptool-3.9 >/dev/null 2>&1; then
	bmaptool-3.9 copy "$(web_url a disk.img.zst)" "$TEST_TMP/ref" >/dev/null 2>&1 ||
		fail "the reference 3.9 could not copy the URL"
	cmp "$TEST_TMP/ref" "$TEST_TMP/u1" || fail "our URL copy differs from the reference 3.9's"
else
	log "no bmaptool-3.9: the comparison with the reference's URL copy is skipped"
fi

# Failures before the first byte: nothing written.
printf 'keep me' >"$TEST_TMP/kept"
for args in "$(web_url a missing.img.zst)" "--bmap $(web_url a missing.bmap) $(web_url a disk.img.zst)"; do
	for dest in "$TEST_TMP/new" "$TEST_TMP/kept"; do
		# shellcheck disable=SC2086
		if "$BMAPTOOL" copy $args "$dest" >"$out" 2>&1; then
			fail "copy of a 404 ($args) succeeded"
		fi
		grep -q "missing.*HTTP 404 Not Found" "$out" ||
			{ cat "$out" >&2; fail "the 404 ($args) is not named with its URL and status"; }
	done
	[[ ! -e $TEST_TMP/new ]] || fail "a 404 ($args) created DEST"
	[[ $(cat "$TEST_TMP/kept") == "keep me" ]] || fail "a 404 ($args) changed DEST"
done

if "$BMAPTOOL" copy --nobmap "$(web_url a loop)" "$TEST_TMP/new" >"$out" 2>&1; then
	fail "a redirect loop was copied"
fi
grep -q "127.0.0.1:$WEB_PORT_a/loop.*redirect loop" "$out" ||
	{ cat "$out" >&2; fail "the redirect loop is not named"; }
[[ ! -e $TEST_TMP/new ]] || fail "a redirect loop created DEST"

if "$BMAPTOOL" create "$(web_url a sub/raw.img)" >"$out" 2>&1; then
	fail "create of a URL succeeded"
fi
grep -q "cannot create a bmap of the URL" "$out" || { cat "$out" >&2; fail "create's refusal is unclear"; }
# A qcow2 needs random access: at a URL it is refused, saying so, DEST not made.
if command -v qemu-img >/dev/null; then
	qemu-img convert -q -O qcow2 "$www/disk.img" "$www/disk.qcow2" || fail "qemu-img convert"
	if "$BMAPTOOL" copy "$(web_url a disk.qcow2)" "$TEST_TMP/new" >"$out" 2>&1; then
		fail "a qcow2 at a URL was copied"
	fi
	grep -q "needs random access: it cannot be read from a URL" "$out" ||
		{ cat "$out" >&2; fail "the qcow2 URL's refusal does not say why"; }
	[[ ! -e $TEST_TMP/new ]] || fail "a refused qcow2 URL created DEST"
fi
web_start proxy "$www" "location / { proxy_pass http://127.0.0.1:$WEB_PORT_a; }"
http_proxy="http://127.0.0.1:$WEB_PORT_proxy" "$BMAPTOOL" -q copy \
	"http://images.invalid/disk.img.zst" "$TEST_TMP/proxied" || fail "copy through http_proxy failed"
cmp "$TEST_TMP/local" "$TEST_TMP/proxied" || fail "the copy through the proxy differs"
grep -q '^GET /disk.img.zst 206' "$WEB_LOG_proxy" || fail "the proxy did not get the image request"
log "PASS"
