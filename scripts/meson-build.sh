#!/usr/bin/env bash
# meson-build.sh DIR [MESON_SETUP_ARGS...]: configures DIR if needed, then
# builds it. tests/meson.build picks up tests/test_<module>.c files that
# exist at configure time, which meson does not watch: reconfigure when the
# set of test files changed since DIR was configured.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1
shift
stamp=$dir/.cutover-test-files
tests=$(cd tests && ls test_*.c 2>/dev/null || true)
if [ ! -f "$dir/build.ninja" ]; then
	meson setup "$dir" "$@"
elif [ "$tests" != "$(cat "$stamp" 2>/dev/null)" ]; then
	meson setup --reconfigure "$dir" "$@"
fi
printf '%s\n' "$tests" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
ninja -C "$dir"
