#!/bin/bash
# The bmap parser's cost is bounded by what it keeps, not by what a hostile
# (or merely large) bmap holds (issue 10, item 17). Each case once cost:
#   one element of 100k attributes (1 MB)   50 s of CPU     -> refused at once
#   240 MiB of unknown <x/> elements       8.4 GB of memory -> accepted, < 256 MiB
#   6M ranges without checksums (138 MB)   2.8 GB           -> accepted, < 512 MiB
#   2M ranges with SHA-256 (193 MB)        1.9 GB           -> accepted, < 512 MiB
# Bounds are limits with wide margins (ulimit -t, ulimit -v), never timings.
# ASan reserves terabytes of address space: in a sanitizer build the memory
# bounds are not checked, only the results.

source "${TESTS_DIR:-$(dirname "$0")/..}/lib/common.sh"
need_ours
need_cmd perl

# gen_bmap KIND N OUT: a valid 2.0 bmap, its own checksum filled in:
#   attrs   one unknown element with N attributes, one range
#   x       N unknown <x/> elements, one range
#   plain   N one-block ranges without checksums
#   sums    N one-block ranges with SHA-256 checksums
gen_bmap() {
	perl -e '
		use strict; use warnings; use Digest::SHA;
		my ($kind, $n, $out) = @ARGV;
		my $many = $kind eq "plain" || $kind eq "sums";
		my $blocks = $many ? 2 * $n : 16;
		my $zeros = "0" x 64;
		my $head = qq(<?xml version="1.0" ?>\n<bmap version="2.0">\n) .
			"    <ImageSize> " . $blocks * 4096 . " </ImageSize>\n" .
			"    <BlockSize> 4096 </BlockSize>\n" .
			"    <BlocksCount> $blocks </BlocksCount>\n" .
			"    <MappedBlocksCount> " . ($many ? $n : 1) . " </MappedBlocksCount>\n" .
			"    <ChecksumType> sha256 </ChecksumType>\n" .
			"    <BmapFileChecksum> $zeros </BmapFileChecksum>\n";
		my $sha = Digest::SHA->new(256);
		open(my $f, ">", $out) or die "$out: $!";
		binmode $f;
		my $put = sub { print $f $_[0] or die "$out: $!"; $sha->add($_[0]); };
		$put->($head);
		if ($kind eq "attrs") {
			$put->("    <x " . join(" ", map { "a$_=\"\"" } 0 .. $n - 1) . "/>\n");
		} elsif ($kind eq "x") {
			my $chunk = "<x/>" x 16384;
			$put->($chunk) for 1 .. int($n / 16384);
			$put->("<x/>" x ($n % 16384));
		}
		$put->("    <BlockMap>\n");
		if ($many) {
			my ($buf, $cs) = ("", "a" x 64);
			for my $i (0 .. $n - 1) {
				$buf .= $kind eq "sums"
					? "<Range chksum=\"$cs\">" . 2 * $i . "</Range>\n"
					: "<Range>" . 2 * $i . "</Range>\n";
				if (length($buf) >= 65536) { $put->($buf); $buf = ""; }
			}
			$put->($buf);
		} else {
			$put->("        <Range> 3 </Range>\n");
		}
		$put->("    </BlockMap>\n</bmap>\n");
		close($f) or die "$out: $!";
		open($f, "+<", $out) or die "$out: $!";
		seek($f, index($head, $zeros), 0) or die;
		print $f $sha->hexdigest or die;
		close($f) or die "$out: $!";
	' "$@" || fail "cannot generate a bmap ($*)"
}

img=$TEST_TMP/image.raw
truncate -s 64K "$img" || fail "cannot create $img"
timing=()
[[ -x /usr/bin/time ]] && timing=(/usr/bin/time -f "%U s of CPU, peak RSS %M KiB")

# info_under WHAT [OPTION VALUE]... -- BMAP: `bmaptool info --bmap BMAP` in a
# subshell with those ulimits (e.g. -t 20 -v 262144); sets RC, OUT and ERR.
info_under() {
	local what=$1 limits=() bmap
	shift
	while [[ $1 != -- ]]; do limits+=("$1"); shift; done
	bmap=$2
	(
		set -- "${limits[@]}"
		while (($# >= 2)); do ulimit "$1" "$2" || exit 99; shift 2; done
		exec "${timing[@]}" "$BMAPTOOL" info --bmap "$bmap" "$img"
	) >"$TEST_TMP/out" 2>"$TEST_TMP/err"
	RC=$?
	OUT=$(cat "$TEST_TMP/out")
	ERR=$(cat "$TEST_TMP/err")
	((RC == 99)) && fail "$what: cannot set the limits ${limits[*]}"
	((RC > 128)) && fail "$what: killed by signal $((RC - 128)) under ulimit ${limits[*]}" \
		"(SIGXCPU: over the CPU limit; the parser is not linear)"
	[[ ${#timing[@]} -eq 0 ]] || log "$what: $(tail -n 1 "$TEST_TMP/err")"
}

# expect_accepted WHAT RANGES: the last info_under succeeded with RANGES ranges
# and a good self-checksum.
expect_accepted() {
	((RC == 0)) || fail "$1: refused (exit $RC): $ERR"
	grep -Eq "^ranges: +$2\$" <<<"$OUT" || fail "$1: expected $2 ranges, got: $OUT"
	grep -Eq "^bmap checksum: +good\$" <<<"$OUT" || fail "$1: self-checksum not good: $OUT"
}

mem_limit() {
	if [[ -n ${BMAP_SANITIZERS:-} ]]; then
		echo "-v unlimited"
	else
		echo "-v $1"
	fi
}
[[ -z ${BMAP_SANITIZERS:-} ]] || log "sanitizer build: memory bounds not checked"

# ---- one element of 100k attributes: refused, in far less than 20 s of CPU
f=$TEST_TMP/attrs.bmap
gen_bmap attrs 100000 "$f"
info_under "100k attributes" -t 20 -- "$f"
((RC == 1)) || fail "100k attributes: expected a refusal (exit 1), got exit $RC: $OUT $ERR"
grep -q "more than 32 attributes" <<<"$ERR" || fail "100k attributes: unexpected error: $ERR"
rm -f -- "$f"

# ---- 240 MiB of unknown elements: nothing kept, nothing much used
f=$TEST_TMP/x.bmap
gen_bmap x $((240 * 1024 * 1024 / 4)) "$f"
# shellcheck disable=SC2046 # the limit is two words
info_under "240 MiB of <x/>" -t 300 $(mem_limit 262144) -- "$f"
expect_accepted "240 MiB of <x/>" 1
rm -f -- "$f"

# ---- millions of ranges: a few dozen bytes each
f=$TEST_TMP/plain.bmap
gen_bmap plain 6000000 "$f"
# shellcheck disable=SC2046
info_under "6M ranges" -t 300 $(mem_limit 524288) -- "$f"
expect_accepted "6M ranges" 6000000
rm -f -- "$f"

f=$TEST_TMP/sums.bmap
gen_bmap sums 2000000 "$f"
# shellcheck disable=SC2046
info_under "2M ranges with checksums" -t 300 $(mem_limit 524288) -- "$f"
expect_accepted "2M ranges with checksums" 2000000
grep -Eq "^checksum type: +sha256 \(every range\)\$" <<<"$OUT" ||
	fail "2M ranges with checksums: not every range has its checksum: $OUT"
rm -f -- "$f"

log "PASS"
