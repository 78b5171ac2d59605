#!/usr/bin/env bash
# install-deps.sh PKG...: installs the Debian packages among PKG that are not
# installed yet. Does nothing (and needs no root) when all are present.
set -euo pipefail

missing=()
for pkg in "$@"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [ "$status" != "install ok installed" ]; then
		missing+=("$pkg")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#} packages installed"
	exit 0
fi

echo "deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: must run as root to install them (or install them yourself: apt-get install ${missing[*]})" >&2
	exit 1
fi

# Installing nginx-light or haproxy would start their system services; cutover
# uses neither (the bench and the tests start their own instances on free
# ports), so keep them from starting during the install unless the host
# already has its own policy (Debian's container images do).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# temporary, from cutover scripts/install-deps.sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
echo "deps: installed ${missing[*]}"
