#!/usr/bin/env bash
# The scale-out demo (scripts/demo.sh ecmp): three active DR directors behind a router with
# kernel ECMP. Each director runs `lvsd --announce-table 19543 --sysctl sloppy_tcp=1` with the
# same mh service and BIRD, which announces the VIP to the router's BIRD by BGP. A client holds
# 100 long-lived connections (and opens short ones) while one director leaves and joins again:
# the flows ECMP moves keep their real servers. Torn down at the end, on Ctrl-C and on failure.
# Run through scripts/demo.sh, which sets the machine up first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/demo-lib.sh
source scripts/demo-lib.sh

P="lvsecmp$$"
C="$P-client" RT="$P-rtr"
DIRS=("$P-dir" "$P-dir2" "$P-dir3")
VIP=10.99.0.1
unset LVS_SOCKET
PIDS=()
LVSD=()
LOGS=$(mktemp -d)

cleanup() { teardown "${LVSD[@]}" "${PIDS[@]}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

hops() { ip netns exec "$RT" ip route show "$VIP" | grep -c via || true; }
wait_hops() {
  for _ in $(seq 150); do
    [ "$(hops)" = "$1" ] && return 0
    sleep 0.1
  done
  echo "demo: the router never had $1 next hops" >&2
  return 1
}

bgp_peer() { # local-addr local-as peer-addr peer-as
  printf 'protocol bgp {\n  local %s as %s;\n  neighbor %s as %s;\n  hold time 3;\n  keepalive time 1;\n' "$@"
  printf '  connect delay time 1;\n  connect retry time 1;\n'
}

step "building the lab: client -- router (BIRD, kernel ECMP) -- LAN with dir, dir2, dir3 and two DR real servers"
bash netns/lab.sh up "$P" ecmp
for i in 1 2; do
  ip netns exec "$P-rs$i" "$ROOT/bin/lvs-realserver.js" dr --vip "$VIP" >"$LOGS/rs$i.log" 2>&1 &
  PIDS+=($!)
  ip netns exec "$P-rs$i" node -e "require('net').createServer((s)=>{s.on('error',()=>{});s.pipe(s)}).listen(7)" &
  PIDS+=($!)
done
{
  printf 'router id 192.168.0.1;\nprotocol device {}\nprotocol kernel {\n  merge paths yes;\n  ipv4 { export all; };\n}\n'
  for n in 1 2 3; do
    bgp_peer 192.168.0.1 65000 "192.168.0.1$n" "6500$n"
    printf '  ipv4 { import all; export none; };\n}\n'
  done
} >"$LOGS/rtr.conf"
ip netns exec "$RT" bird -f -c "$LOGS/rtr.conf" -s "$LOGS/rtr.ctl" &
PIDS+=($!)

start_director() { # n
  local n=$1 ns=${DIRS[$1 - 1]}
  ip netns exec "$ns" "$ROOT/bin/lvsd.js" --socket "$LOGS/lvsd$n.sock" --announce-table 19543 \
    --sysctl sloppy_tcp=1 >"$LOGS/lvsd$n.log" 2>&1 &
  LVSD[$n]=$!
  for _ in $(seq 50); do
    grep -q ready: "$LOGS/lvsd$n.log" && break
    sleep 0.1
  done
  for args in "-A -t $VIP:7 -s mh" "-a -t $VIP:7 -r 192.168.0.21 -g" "-a -t $VIP:7 -r 192.168.0.22 -g"; do
    # shellcheck disable=SC2086
    LVS_SOCKET="$LOGS/lvsd$n.sock" ip netns exec "$ns" "$ROOT/bin/lvsadm.js" $args
  done
}

step "on each director: lvsd --announce-table 19543 --sysctl sloppy_tcp=1, one mh service, BIRD"
for n in 1 2 3; do
  {
    printf 'router id 192.168.0.1%s;\nprotocol device {}\n' "$n"
    printf 'protocol kernel {\n  kernel table 19543;\n  learn;\n  ipv4 { import all; export none; };\n}\n'
    bgp_peer "192.168.0.1$n" "6500$n" 192.168.0.1 65000
    printf '  ipv4 { import none; export all; };\n}\n'
  } >"$LOGS/d$n.conf"
  ip netns exec "${DIRS[$n - 1]}" bird -f -c "$LOGS/d$n.conf" -s "$LOGS/d$n.ctl" &
  PIDS+=($!)
  start_director "$n"
done
sed 's/^/    /' "$LOGS/d1.conf"
LVS_SOCKET="$LOGS/lvsd1.sock" on "${DIRS[0]}" "$ROOT/bin/lvsadm.js" -L -n
on "${DIRS[0]}" ip route show table 19543
wait_hops 3
on "$RT" ip route show "$VIP"

step "a client: 100 long-lived connections (a line every 100 ms each) and a short one every 50 ms, for 20 s"
ip netns exec "$C" node netns/long-lived-client.js "$VIP" 7 100 20 --progress >"$LOGS/client.out" &
CLIENT=$!
tail -f "$LOGS/client.out" &
TAIL=$!
sleep 6
echo "  -- dir3 leaves: its lvsd stops, the route goes with its TUN, BIRD withdraws it"
kill "${LVSD[3]}"
wait_hops 2
on "$RT" ip route show "$VIP"
sleep 5
echo "  -- dir3 joins again: announced as soon as its service has a real server"
start_director 3
wait_hops 3
on "$RT" ip route show "$VIP"
wait "$CLIENT"
kill "$TAIL" 2>/dev/null || true
step "result (the last line: long-lived connections opened and failed, short ones ok and failed)"
tail -1 "$LOGS/client.out"
