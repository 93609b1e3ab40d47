#!/usr/bin/env bash
# Set up a fresh Debian machine for lvs-ts: system packages, npm dependencies, the native addon
# and the TypeScript build. Idempotent; needs root for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(iproute2 iputils-ping curl ca-certificates python3 make g++ procps coreutils tcpdump iperf3 wrk haproxy nftables nginx-light vsftpd hping3 python3-scapy socat keepalived bird2)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v node >/dev/null 2>&1; then
  echo "setup: Node.js 20 or newer is required" >&2
  exit 1
fi

echo "setup: npm ci"
npm ci --no-audit --no-fund --loglevel=error
echo "setup: building the native addon and the TypeScript sources"
npm run --silent build
bash scripts/install.sh
