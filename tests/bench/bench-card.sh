# The RAM card the copy benchmarks write to (sourced, not run): a 2.2 GiB
# file in $CARD_DIR, allocated up front so that no run pays for tmpfs pages
# an earlier run already got, on a loop device; and a scratch folder. Both
# go at exit, even on failure.
#
# bench_card NAME: sets $out (the scratch folder), $card_file and $loop;
# needs die() and say() from the benchmark.
bench_card() {
	out=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || die "mktemp failed"
	card_file=
	loop=
	trap _bench_card_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	card_file=$(mktemp "$CARD_DIR/bench-card.XXXXXX.bin") || die "mktemp in $CARD_DIR failed"
	fallocate -l $((2253 * 1048576)) "$card_file" || truncate -s $((2253 * 1048576)) "$card_file"
	loop=$(losetup -f --show -- "$card_file") || die "losetup failed"
}

_bench_card_cleanup() {
	[[ -n $loop ]] && { losetup -d "$loop" || say "could not detach $loop"; }
	[[ -n $card_file ]] && rm -f -- "$card_file"
	rm -rf -- "$out"
}
