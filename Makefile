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
	ca-certificates openssl testssl.sh clang libclang-rt-14-dev \
	prometheus libsystemd-dev systemd logrotate chromium

# Seconds of mixed load in `make soak` (make soak SOAK_SECONDS=600).
SOAK_SECONDS ?= 1800

# Seconds per fuzz target in `make fuzz` (make test runs a 10 s smoke).
FUZZ_SECONDS ?= 60

.PHONY: all deps build build-asan build-release build-fuzz run test fuzz tls-audit bench soak clean install

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

# `make install` (DESTDIR-aware, PREFIX default /usr): the binary (the
# release build if there is one, else build/), the unit, the sysusers file
# for its user, the logrotate snippet, the Prometheus snippets and the
# reference config, never overwriting an edited /etc/cutover/cutover.conf
# (the new one goes beside it as cutover.conf.dist). Builds nothing and
# needs no root with a DESTDIR; see README "Running as a service".
PREFIX ?= /usr
DESTDIR ?=
INSTALL ?= install
CUTOVER_INSTALL_BIN ?= $(firstword $(wildcard build-release/cutover build/cutover))

install:
	@test -n "$(CUTOVER_INSTALL_BIN)" || { echo "install: no build-release/cutover or build/cutover: run make build-release first" >&2; exit 1; }
	$(INSTALL) -d -m 0755 $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)/etc/cutover \
		$(DESTDIR)/lib/systemd/system $(DESTDIR)/etc/logrotate.d \
		$(DESTDIR)/usr/lib/sysusers.d $(DESTDIR)$(PREFIX)/share/cutover \
		$(DESTDIR)$(PREFIX)/share/doc/cutover
	$(INSTALL) -m 0755 $(CUTOVER_INSTALL_BIN) $(DESTDIR)$(PREFIX)/sbin/cutover
	sed 's|/usr/sbin/cutover|$(PREFIX)/sbin/cutover|g' conf/cutover.service >$(DESTDIR)/lib/systemd/system/cutover.service.tmp
	chmod 0644 $(DESTDIR)/lib/systemd/system/cutover.service.tmp
	mv $(DESTDIR)/lib/systemd/system/cutover.service.tmp $(DESTDIR)/lib/systemd/system/cutover.service
	$(INSTALL) -m 0644 conf/cutover.sysusers $(DESTDIR)/usr/lib/sysusers.d/cutover.conf
	$(INSTALL) -m 0644 conf/cutover.logrotate $(DESTDIR)/etc/logrotate.d/cutover
	$(INSTALL) -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/cutover/README.md
	@for f in conf/prometheus*; do \
		[ -f "$$f" ] || continue; \
		echo "$(INSTALL) -m 0644 $$f $(DESTDIR)$(PREFIX)/share/cutover/"; \
		$(INSTALL) -m 0644 "$$f" $(DESTDIR)$(PREFIX)/share/cutover/ || exit 1; \
	done
	@if [ -e $(DESTDIR)/etc/cutover/cutover.conf ]; then \
		echo "install: keeping $(DESTDIR)/etc/cutover/cutover.conf; the new one is cutover.conf.dist"; \
		$(INSTALL) -m 0644 conf/cutover.conf $(DESTDIR)/etc/cutover/cutover.conf.dist; \
	else \
		$(INSTALL) -m 0644 conf/cutover.conf $(DESTDIR)/etc/cutover/cutover.conf; \
	fi

clean:
	rm -rf build build-asan build-release build-fuzz bench/out
