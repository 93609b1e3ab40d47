#!/usr/bin/env bash
# The NAT lab: four network namespaces, shared by the demo and the netns tests.
#
#   client (192.168.0.2/24) ── director ── br0 (172.16.0.254/24) ─┬─ rs1 (172.16.0.1/24)
#                         cli0: 192.168.0.254/24                   └─ rs2 (172.16.0.2/24)
#
# The VIP 192.168.0.1 sits on the client's LAN; lvsd in the director answers ARP for it (proxy)
# and routes it into its TUN. Real servers use the director as their default gateway (NAT).
# Every namespace name starts with PREFIX, so parallel runs never meet; `down` removes them all.
#
#   netns/lab.sh up PREFIX      build the lab
#   netns/lab.sh down PREFIX    kill everything running in it and delete it
set -euo pipefail

cmd=${1:?usage: lab.sh up|down PREFIX}
P=${2:?usage: lab.sh up|down PREFIX}
C=$P-client D=$P-dir R1=$P-rs1 R2=$P-rs2

down() {
  for ns in "$C" "$D" "$R1" "$R2"; do
    if ip netns pids "$ns" >/dev/null 2>&1; then
      # shellcheck disable=SC2046
      kill $(ip netns pids "$ns") 2>/dev/null || true
    fi
  done
  sleep 0.2
  for ns in "$C" "$D" "$R1" "$R2"; do
    if ip netns pids "$ns" >/dev/null 2>&1; then
      # shellcheck disable=SC2046
      kill -9 $(ip netns pids "$ns") 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}

up() {
  for ns in "$C" "$D" "$R1" "$R2"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  # client <-> director
  ip -n "$C" link add eth0 type veth peer name cli0 netns "$D"
  ip -n "$C" addr add 192.168.0.2/24 dev eth0
  ip -n "$C" link set eth0 up
  ip -n "$D" addr add 192.168.0.254/24 dev cli0
  ip -n "$D" link set cli0 up
  # director's real-server LAN: a bridge with one port per real server
  ip -n "$D" link add br0 type bridge
  ip -n "$D" addr add 172.16.0.254/24 dev br0
  ip -n "$D" link set br0 up
  local i=1
  for ns in "$R1" "$R2"; do
    ip -n "$ns" link add eth0 type veth peer name "rs${i}p" netns "$D"
    ip -n "$D" link set "rs${i}p" master br0 up
    ip -n "$ns" addr add "172.16.0.${i}/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via 172.16.0.254
    i=$((i + 1))
  done
}

case "$cmd" in
  up)
    trap 'down' ERR
    up
    ;;
  down) down ;;
  *)
    echo "usage: lab.sh up|down PREFIX" >&2
    exit 2
    ;;
esac
