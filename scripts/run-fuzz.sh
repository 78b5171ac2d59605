#!/usr/bin/env bash
# run-fuzz.sh [--replay-only | --no-replay] [TARGET...]: the libFuzzer
# targets of tests/fuzz/ (default: all of them, as tests/fuzz/meson.build
# lists them).
#
#  1. builds build-fuzz/ (clang, -Dfuzz=true, ASan+UBSan) if needed;
#  2. replays every input kept in tests/fuzz/regressions/TARGET/ (a crash
#     found once must never come back), each on its own;
#  3. fuzzes each target for FUZZ_SECONDS (default 60) from its committed
#     seeds in tests/fuzz/corpus/TARGET/; what it learns goes to
#     tests/fuzz/out/corpus/TARGET/ (gitignored, kept between runs), a
#     crash to tests/fuzz/out/crashes/TARGET/, the log to
#     tests/fuzz/out/logs/TARGET.log.
# Prints a summary; exits non-zero if a regression input or the fuzzing
# crashed, leaked, timed out or ran out of memory.
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
# One input taking longer than this is a hang; more memory than this a leak.
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-10}
FUZZ_RSS_MB=${FUZZ_RSS_MB:-2048}
OUT=tests/fuzz/out

replay=1 fuzz=1
targets=()
for a in "$@"; do
	case $a in
	--replay-only) fuzz=0 ;;
	--no-replay) replay=0 ;;
	-*) echo "usage: $0 [--replay-only | --no-replay] [TARGET...]" >&2; exit 2 ;;
	*) targets+=("$a") ;;
	esac
done
if [ ${#targets[@]} -eq 0 ]; then
	# The list in tests/fuzz/meson.build is the one source.
	mapfile -t targets < <(sed -n "/^fuzz_targets = \[/,/\]/p" tests/fuzz/meson.build |
		grep -o "'[a-z0-9_]*'" | tr -d "'")
fi
if [ ${#targets[@]} -eq 0 ]; then
	echo "run-fuzz: no targets found in tests/fuzz/meson.build" >&2
	exit 1
fi

# ---- build ----
if [ ! -f "$FUZZ_BUILD/build.ninja" ]; then
	CC=${FUZZ_CC:-clang} meson setup "$FUZZ_BUILD" -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false || exit 1
fi
ninja -C "$FUZZ_BUILD" || exit 1

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Leaks of the libraries themselves, not of cutover (see the file).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0}

# The targets' temp directories (a crashed run leaves its own behind).
CUTOVER_FUZZ_TMP=$(mktemp -d /tmp/cutover-fuzz-XXXXXX) || exit 1
export CUTOVER_FUZZ_TMP
trap 'rm -rf "$CUTOVER_FUZZ_TMP"' EXIT

failed=()
summary=()

# ---- regressions ----
if [ $replay -eq 1 ]; then
	for t in "${targets[@]}"; do
		dir=tests/fuzz/regressions/$t
		[ -d "$dir" ] || continue
		mkdir -p "$OUT/logs"
		for f in "$dir"/*; do
			[ -f "$f" ] || continue
			log=$OUT/logs/$t.regression.$(basename "$f").log
			# A replayed crash is written again: into out/, not the work tree.
			mkdir -p "$OUT/crashes/$t"
			if "$FUZZ_BUILD/tests/fuzz/fuzz_$t" -timeout="$FUZZ_TIMEOUT" \
				-rss_limit_mb="$FUZZ_RSS_MB" -artifact_prefix="$OUT/crashes/$t/replay-" \
				"$f" >"$log" 2>&1; then
				summary+=("$(printf '%-16s %-8s %s' "$t" ok "replayed $f")")
			else
				why=$(grep -m1 -E 'ERROR: |runtime error: |invariant broken' "$log" | cut -c1-160)
				summary+=("$(printf '%-16s %-8s %s: %s (log %s)' "$t" FAILED "$f" "${why:-crashed}" "$log")")
				failed+=("$t:$(basename "$f")")
			fi
		done
	done
fi

# ---- fuzzing ----
stat_of() {  # stat_of LOG NAME: a libFuzzer -print_final_stats value
	sed -n "s/^stat::$2: *//p" "$1" | tail -1
}

if [ $fuzz -eq 1 ]; then
	for t in "${targets[@]}"; do
		seeds=tests/fuzz/corpus/$t
		learned=$OUT/corpus/$t
		crashes=$OUT/crashes/$t
		log=$OUT/logs/$t.log
		mkdir -p "$learned" "$crashes" "$OUT/logs"
		echo "==> fuzz_$t for ${FUZZ_SECONDS} s"
		# The first directory receives new inputs; the committed seeds stay as they are.
		"$FUZZ_BUILD/tests/fuzz/fuzz_$t" -max_total_time="$FUZZ_SECONDS" \
			-timeout="$FUZZ_TIMEOUT" -rss_limit_mb="$FUZZ_RSS_MB" -print_final_stats=1 \
			-artifact_prefix="$crashes/" "$learned" "$seeds" >"$log" 2>&1
		rc=$?
		runs=$(stat_of "$log" number_of_executed_units)
		rate=$(stat_of "$log" average_exec_per_sec)
		cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
		corpus=$(find "$learned" "$seeds" -type f | wc -l)
		if [ $rc -eq 0 ]; then
			summary+=("$(printf '%-16s %-8s %s runs, %s exec/s, cov %s, %s inputs' "$t" ok \
				"${runs:-?}" "${rate:-?}" "${cov:-?}" "$corpus")")
		else
			art=$(grep -oE "Test unit written to [^ ]+" "$log" | tail -1 | cut -d' ' -f5)
			why=$(grep -m1 -E 'ERROR: |runtime error: |invariant broken' "$log" | cut -c1-160)
			summary+=("$(printf '%-16s %-8s %s; input kept in %s (log %s)' "$t" CRASHED \
				"${why:-exit $rc}" "${art:-$crashes}" "$log")")
			failed+=("$t")
		fi
	done
fi

echo
echo "==> fuzz summary ($([ $fuzz -eq 1 ] && echo "${FUZZ_SECONDS} s per target" || echo "replay only"))"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "run-fuzz: FAILED: ${failed[*]}"
	exit 1
fi
echo "run-fuzz: ok"
