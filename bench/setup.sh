#!/usr/bin/env bash
# Installs what the proxy benchmark (bench/proxies.py) needs, from Debian's packages: nginx (the
# origin server), e2guardian 5.3.5 (the comparison, run with Debian's default configuration), iproute2
# (the network namespace) and openssl (the origin's certificates). Idempotent; needs root.
# The packaged services are never started: the benchmark runs its own instances on loopback only.
set -euo pipefail
needed=(nginx e2guardian iproute2 openssl procps)
missing=()
for pkg in "${needed[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "bench/setup.sh: run as root to install: ${missing[*]}" >&2
    exit 1
fi
# policy-rc.d 101: Debian's maintainer scripts must not start nginx or e2guardian (they would listen on
# every address); the benchmark starts its own, on loopback, inside its network namespace.
policy=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created=1
fi
trap '[ "$created" = 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
