#!/usr/bin/env bash
# run-tests.sh: what `make test` does after building build/ and build-asan/.
# The layer check of the includes, then unit tests (cmocka, via meson) and
# integration tests (pytest, driving the real binary) on the normal build,
# then again on the ASan+UBSan build; a 40 s soak smoke (scripts/soak.py);
# then the fuzz targets' regressions and
# a short fuzz smoke (scripts/run-fuzz.sh, build-fuzz/).
# Runs every stage, prints a summary, exits non-zero if any stage failed or
# if no test ran at all.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-/usr/bin/python3}
# pytest -m expression for the ASan+UBSan pass; empty = every test.
# The sanitized pass runs everything by default (see README); set
# ASAN_PYTEST_MARK='not slow' to skip the long streaming tests there.
ASAN_PYTEST_MARK=${ASAN_PYTEST_MARK-}

failed=()
ran=0

stage() {  # stage NAME CMD...: runs CMD, records a failure under NAME
	local name=$1
	shift
	echo
	echo "==> $name"
	local start=$SECONDS rc=0
	"$@" || rc=$?
	echo "==> $name: $([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)") in $((SECONDS - start)) s"
	[ $rc -eq 0 ] || failed+=("$name")
	ran=$((ran + 1))
}

unit_tests() {  # number of tests in suite "unit" of build dir $1
	meson introspect "$1" --tests |
		"$PYTHON" -c 'import json,sys; print(sum(1 for t in json.load(sys.stdin) if any(s == "unit" or s.endswith(":unit") for s in t["suite"])))'
}

# The modules' includes against the layer map; the self-test proves the
# check still fails on a wrong-way include and on a cycle.
stage "layer check" "$PYTHON" scripts/check-layers.py
stage "layer check self-test" "$PYTHON" scripts/check-layers.py --self-test

for dir in build build-asan; do
	n=$(unit_tests "$dir") || { failed+=("introspect $dir"); n=0; }
	if [ "$n" -gt 0 ]; then
		stage "unit tests ($dir, $n)" meson test -C "$dir" --suite unit --print-errorlogs
	else
		echo "==> unit tests ($dir): none defined yet"
	fi
done

if compgen -G 'tests/integration/test_*.py' >/dev/null; then
	# pytest exits 5 when it collected nothing: a failure once test files exist.
	stage "integration tests (build/cutover)" \
		env CUTOVER_BIN=build/cutover \
		"$PYTHON" -m pytest tests/integration -q -p no:cacheprovider
	mark=()
	[ -n "$ASAN_PYTEST_MARK" ] && mark=(-m "$ASAN_PYTEST_MARK")
	stage "integration tests (build-asan/cutover${ASAN_PYTEST_MARK:+, -m \"$ASAN_PYTEST_MARK\"})" \
		env CUTOVER_BIN=build-asan/cutover CUTOVER_SANITIZED=1 \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		"$PYTHON" -m pytest tests/integration -q -p no:cacheprovider "${mark[@]}"
else
	echo "==> integration tests: none in tests/integration yet"
fi

# A short `make soak` (scripts/soak.py) on the ASan build: a kill -9, flips
# and a maintenance window with its replay within 40 s (the kill falls in
# the window, with records spooled), so the script stays
# working; its lives are too short to judge RSS (SOAK_RSS_LIMIT=0).
stage "soak smoke (40 s, build-asan/cutover)" \
	env CUTOVER_BIN=build-asan/cutover SOAK_SECONDS=40 SOAK_FLIP_SECONDS=8 \
	SOAK_KILL_SECONDS=20 SOAK_LONG_LIFE=15 SOAK_WARMUP=10 SOAK_RSS_LIMIT=0 \
	"$PYTHON" scripts/soak.py

# The libFuzzer targets (build-fuzz/): the crashes kept in
# tests/fuzz/regressions/ replayed, then a 10 s smoke of each target from
# its seeds (make fuzz runs them longer).
stage "fuzz regressions" scripts/run-fuzz.sh --replay-only
stage "fuzz smoke (${FUZZ_SMOKE_SECONDS:-10} s per target)" \
	env FUZZ_SECONDS="${FUZZ_SMOKE_SECONDS:-10}" scripts/run-fuzz.sh --no-replay

echo
if [ "$ran" -eq 0 ]; then
	echo "make test: FAILED: no test ran at all"
	exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
	echo "make test: FAILED: ${failed[*]}"
	exit 1
fi
echo "make test: all $ran stages passed"
