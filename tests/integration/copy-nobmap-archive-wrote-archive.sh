#!/bin/bash
# Regression: `copy --nobmap disk.img.tar.gz DEST` gunzipped the archive and
# wrote the tar stream itself (headers, padding, end blocks) onto DEST, and a
# .zip was written as it is. The image is the archive's first regular file:
# DEST must end up holding exactly that member, from a file and from a pipe,
# for a plain tar, a tar under gzip and zstd, a GNU sparse tar and a zip.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
source "${TESTS_DIR:-$(dirname "$0")/..}/lib/cards.sh"
need_ours
need_cmd tar
need_cmd cmp
need_cmd perl

d=$TEST_TMP
mk_sparse_image "$d/disk.img" "size=2M+333 data=0:8K data=1M:5000 data=2M:333"
# A README after the image: only the first regular file is the image.
echo "release notes" >"$d/README"
(cd "$d" && tar -cf disk.img.tar disk.img README) || fail "tar failed"
gzip -c "$d/disk.img.tar" >"$d/disk.img.tar.gz" || fail "gzip failed"
forms=(disk.img.tar disk.img.tar.gz)
if command -v zstd >/dev/null; then
	zstd -q -c "$d/disk.img.tar" >"$d/disk.img.tar.zst" && forms+=(disk.img.tar.zst)
fi
(cd "$d" && tar -S -cf sparse.tar disk.img) && forms+=(sparse.tar)
if command -v zip >/dev/null; then
	(cd "$d" && zip -q disk.img.zip disk.img README) && forms+=(disk.img.zip)
else
	log "no zip: the zip case is not tested"
fi

checked=0
for f in "${forms[@]}"; do
	for how in file pipe; do
		new_file_card 4194304 "$f.$how"
		if [[ $how == file ]]; then
			"$BMAPTOOL" copy --nobmap "$d/$f" "$CARD_FILE" >"$d/log" 2>&1
		else
			cat "$d/$f" | "$BMAPTOOL" copy --nobmap - "$CARD_FILE" >"$d/log" 2>&1
		fi || { bad "$f ($how): copy --nobmap failed: $(tail -n 2 "$d/log")"; continue; }
		if ! cmp -s "$d/disk.img" "$CARD_FILE"; then
			bad "$f ($how): DEST is not the member disk.img ($(stat -c %s "$CARD_FILE")" \
				"bytes, first difference at $(first_diff "$d/disk.img" "$CARD_FILE"))"
		fi
		checked=$((checked + 1))
		rm -f "$CARD_FILE"
	done
done
finish "$checked copies with --nobmap wrote the archive's member, not the archive"
