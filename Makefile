# Thin wrapper: `make run` and `make test` do all the set-up on a fresh
# Debian 12 (as root). The logic lives in scripts/ and bench/.

SHELL := /bin/bash
# Debian's python3, the one `make deps` gives pytest to (not whatever
# python3 comes first in PATH, e.g. a pyenv shim).
PYTHON ?= /usr/bin/python3
export PYTHON

PACKAGES := gcc libc6-dev pkg-config meson ninja-build libevent-dev libssl-dev \
	libc-ares-dev libconfig-dev libjansson-dev libpcre2-dev libcmocka-dev \
	node-llhttp python3 python3-pytest nginx-light haproxy wrk curl procps \
	ca-certificates openssl testssl.sh clang libclang-rt-14-dev

# Seconds of mixed load in `make soak` (make soak SOAK_SECONDS=600).
SOAK_SECONDS ?= 1800

# Seconds per fuzz target in `make fuzz` (make test runs a 10 s smoke).
FUZZ_SECONDS ?= 60

.PHONY: all deps build build-asan build-release build-fuzz run test fuzz tls-audit bench soak clean

all: build

deps:
	@scripts/install-deps.sh $(PACKAGES)

build: deps
	scripts/meson-build.sh build

build-asan: deps
	scripts/meson-build.sh build-asan -Db_sanitize=address,undefined -Db_lundef=false

# libFuzzer targets only (clang, ASan+UBSan); the other builds do not need clang.
build-fuzz: deps
	CC=clang scripts/meson-build.sh build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false

build-release: deps
	scripts/meson-build.sh build-release --buildtype=release -Db_lto=true

run: build
	scripts/run-demo.sh

test: build build-asan build-fuzz
	scripts/run-tests.sh

# Every fuzz target for FUZZ_SECONDS (make fuzz FUZZ_SECONDS=600), after
# replaying the crashes kept in tests/fuzz/regressions/; see scripts/run-fuzz.sh.
fuzz: build-fuzz
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/run-fuzz.sh

# testssl against cutover's TLS front; exit 1 on any HIGH or CRITICAL finding
# (make test runs it too, in tests/integration/test_tls_audit.py).
tls-audit: build
	CUTOVER_BIN=build/cutover scripts/tls-audit.sh

# The ASan+UBSan build under mixed load for SOAK_SECONDS (flips, maintenance
# windows with spool and replay, kill -9 + restart): RSS per process life,
# acknowledged submissions missing upstream, sanitizer reports; exit 1 when
# a criterion fails (scripts/soak.py). Not part of `make test` (which runs
# a 40 s smoke of it).
soak: build-asan
	CUTOVER_BIN=build-asan/cutover SOAK_SECONDS=$(SOAK_SECONDS) $(PYTHON) scripts/soak.py

bench: build-release
	CUTOVER_BIN=build-release/cutover bench/run.sh

clean:
	rm -rf build build-asan build-release build-fuzz bench/out
