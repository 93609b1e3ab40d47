#!/usr/bin/env bash
# The lvs-ts demo: set up the machine, build a namespace lab (client, director, two real
# servers), start lvsd in the director, configure LVS's classic NAT example with lvsadm, send
# requests from the client and show them alternating, then the listing with live counters.
# The lab is torn down at the end, on Ctrl-C and on failure.
#
#   sudo bash scripts/demo.sh             set up (apt-get, npm ci, build) and run
#   sudo bash scripts/demo.sh --no-setup  skip the set-up step
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root (network namespaces, TUN device); run: sudo bash scripts/demo.sh" >&2
  exit 1
fi
if [ "${1:-}" != "--no-setup" ]; then
  bash scripts/setup.sh
fi

P="lvsdemo$$"
DIR_NS="$P-dir"
CLIENT_NS="$P-client"
export LVS_SOCKET="/run/lvs/demo-$P.sock"
REQUESTS=${REQUESTS:-10}

cleanup() {
  trap - EXIT INT TERM
  echo
  echo "== tearing down the lab"
  if [ -n "${LVSD_PID:-}" ] && kill -0 "$LVSD_PID" 2>/dev/null; then
    kill -TERM "$LVSD_PID" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$LVSD_PID" 2>/dev/null || break
      sleep 0.1
    done
  fi
  bash netns/lab.sh down "$P" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }
# lvsadm runs in the director's namespace, where lvsd is.
lvsadm() {
  printf '# lvsadm %s\n' "$*"
  ip netns exec "$DIR_NS" "$ROOT/bin/lvsadm.js" "$@"
}

step "building the lab: $CLIENT_NS (192.168.0.2), $DIR_NS, $P-rs1 (172.16.0.1), $P-rs2 (172.16.0.2)"
bash netns/lab.sh up "$P"
for i in 1 2; do
  ip netns exec "$P-rs$i" node netns/http-server.js "rs$i" 80 >/dev/null 2>&1 &
done

step "starting lvsd in the director"
ip netns exec "$DIR_NS" node dist/cli/lvsd.js 2>&1 | sed -u 's/^/    /' &
for _ in $(seq 50); do
  [ -S "$LVS_SOCKET" ] && break
  sleep 0.1
done
LVSD_PID=$(ip netns pids "$DIR_NS" | head -n 1)

step "configuring the virtual server (LVS's classic NAT example)"
lvsadm -A -t 192.168.0.1:80 -s rr
lvsadm -a -t 192.168.0.1:80 -r 172.16.0.1:80 -m
lvsadm -a -t 192.168.0.1:80 -r 172.16.0.2:80 -m
lvsadm -L -n

step "$REQUESTS requests from the client to http://192.168.0.1/"
for i in $(seq "$REQUESTS"); do
  # curl runs in the foreground (not in $(...)), so Ctrl-C reaches it and the trap tears down.
  printf '  request %2d -> ' "$i"
  ip netns exec "$CLIENT_NS" curl -sS --max-time 5 http://192.168.0.1/
done

step "the listing with live counters"
lvsadm -L -n
lvsadm -L -n --stats
