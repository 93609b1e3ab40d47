#!/usr/bin/env bash
# The lvs-ts demo: set up the machine, build a namespace lab (client, director, two real
# servers), start lvsd in the director, configure LVS's classic example with lvsadm for the
# chosen forwarding method, send requests from the client and show them alternating, then the
# listing with live counters. The lab is torn down at the end, on Ctrl-C and on failure.
#
#   sudo bash scripts/demo.sh [--no-setup] [nat|dr|tun|health|ha|ecmp]
#
#   nat     masquerading (-m): real servers behind the director, replies come back through it
#   dr      direct routing (-g): one LAN, real servers own the VIP on lo and answer directly
#   tun     IP-in-IP (-i): real servers behind a router, they decapsulate and answer directly
#   health  NAT configured by a keepalived.conf with HTTP_GET checks: one real server's HTTP
#           server is stopped and leaves the table, then is started again and comes back
#   ha      two NAT directors with keepalived's VRRP: a download through the VIP goes on when
#           the master's lvsd is killed (scripts/demo-ha.sh)
#   ecmp    three DR directors behind an ECMP router (BIRD): one leaves and joins while
#           long-lived connections keep going (scripts/demo-ecmp.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SETUP=1
MODE=nat
for arg in "$@"; do
  case "$arg" in
    --no-setup) SETUP=0 ;;
    nat | dr | tun | health | ha | ecmp) MODE=$arg ;;
    -h | --help)
      sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "demo: unknown argument $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root (network namespaces, TUN device); run: sudo bash scripts/demo.sh" >&2
  exit 1
fi
[ "$SETUP" -eq 1 ] && bash scripts/setup.sh
[ "$MODE" = ha ] && exec bash scripts/demo-ha.sh
[ "$MODE" = ecmp ] && exec bash scripts/demo-ecmp.sh

P="lvsdemo$$"
DIR_NS="$P-dir"
CLIENT_NS="$P-client"
# lvsd and lvsadm find each other by the namespace they run in (no --socket, no LVS_SOCKET),
# exactly as a user runs them: `ip netns exec NS lvsadm` reaches NS's lvsd.
unset LVS_SOCKET
LVSD_PID=
REQUESTS=${REQUESTS:-10}
VIP=192.168.0.1
LAB_MODE=$MODE
case "$MODE" in
  nat) RS=(172.16.0.1:80 172.16.0.2:80) FLAG=-m ;;
  health) RS=(172.16.0.1:80 172.16.0.2:80) FLAG=-m LAB_MODE=nat ;;
  dr) RS=(192.168.0.11 192.168.0.12) FLAG=-g ;;
  tun) RS=(172.16.0.1 172.16.0.2) FLAG=-i ;;
esac

cleanup() {
  trap - EXIT INT TERM
  echo
  echo "== tearing down the lab"
  # lvsd by its own PID: it removes what it installed, then exits.
  if [ -n "$LVSD_PID" ] && kill "$LVSD_PID" 2>/dev/null; then
    for _ in $(seq 50); do
      kill -0 "$LVSD_PID" 2>/dev/null || break
      sleep 0.1
    done
  fi
  bash netns/lab.sh down "$P" || true
  rm -rf "${LOGS:-}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }
# lvsadm runs in the director's namespace, where lvsd is.
lvsadm() {
  printf '# lvsadm %s\n' "$*"
  ip netns exec "$DIR_NS" "$ROOT/bin/lvsadm.js" "$@"
}
wait_for() {
  for _ in $(seq 100); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "demo: timed out waiting for '$2' in $1" >&2
  cat "$1" >&2
  return 1
}

LOGS=$(mktemp -d)
step "building the $MODE lab: $CLIENT_NS, $DIR_NS, $P-rs1, $P-rs2"
bash netns/lab.sh up "$P" "$LAB_MODE"

if [ "$LAB_MODE" != nat ]; then
  step "preparing the real servers: lvs-realserver $MODE --vip $VIP"
  for i in 1 2; do
    ip netns exec "$P-rs$i" "$ROOT/bin/lvs-realserver.js" "$MODE" --vip "$VIP" >"$LOGS/rs$i.log" 2>&1 &
  done
  for i in 1 2; do
    wait_for "$LOGS/rs$i.log" ready
    sed "s/^/    rs$i: /" "$LOGS/rs$i.log"
  done
fi
# `ip netns exec` execs the server, so $! is the server's own PID.
HTTP_PID=()
start_http() {
  ip netns exec "$P-rs$1" node netns/http-server.js "rs$1" 80 >/dev/null 2>&1 &
  HTTP_PID[$1]=$!
}
start_http 1
start_http 2
requests() {
  for i in $(seq "$1"); do
    # curl runs in the foreground (not in $(...)), so Ctrl-C reaches it and the trap tears down.
    printf '  request %2d -> ' "$i"
    ip netns exec "$CLIENT_NS" curl -sS --max-time 5 "http://$VIP/"
  done
}

LVSD_ARGS=()
if [ "$MODE" = health ]; then
  checked_server() {
    printf '    real_server %s 80 {\n        HTTP_GET {\n            url {\n                path /\n' "$1"
    printf '                status_code 200\n            }\n            connect_timeout 1\n'
    printf '            retry 1\n            delay_before_retry 1\n        }\n    }\n'
  }
  {
    printf 'virtual_server %s 80 {\n    delay_loop 1\n    lvs_sched rr\n    lvs_method NAT\n' "$VIP"
    printf '    protocol TCP\n'
    checked_server "${RS[0]%:*}"
    checked_server "${RS[1]%:*}"
    printf '}\n'
  } >"$LOGS/keepalived.conf"
  LVSD_ARGS=(--keepalived-conf "$LOGS/keepalived.conf")
  step "the keepalived.conf lvsd runs (lvsd --keepalived-conf FILE)"
  sed 's/^/    /' "$LOGS/keepalived.conf"
fi

step "starting lvsd in the director: ip netns exec $DIR_NS lvsd ${LVSD_ARGS[*]}"
# `ip netns exec` execs lvsd, so $! is the daemon's own PID (its output is indented on the way).
ip netns exec "$DIR_NS" "$ROOT/bin/lvsd.js" "${LVSD_ARGS[@]}" > >(sed -u 's/^/    /') 2>&1 &
LVSD_PID=$!
for _ in $(seq 50); do
  ip netns exec "$DIR_NS" "$ROOT/bin/lvsadm.js" -L -n >/dev/null 2>&1 && break
  kill -0 "$LVSD_PID" 2>/dev/null || {
    echo "demo: lvsd exited" >&2
    exit 1
  }
  sleep 0.1
done

if [ "$MODE" = health ]; then
  # Wait (at most 10 s) until `lvsadm -L -n --checks` shows real server $1 in state $2.
  wait_state() {
    for _ in $(seq 50); do
      ip netns exec "$DIR_NS" "$ROOT/bin/lvsadm.js" -L -n --checks | grep -Eq -- "-> $1 +$2 " && return 0
      sleep 0.2
    done
    echo "demo: $1 did not become $2" >&2
    return 1
  }
  step "the virtual server, with the checks' view (lvsadm -L -n --checks)"
  sleep 1.5
  lvsadm -L -n
  lvsadm -L -n --checks
  requests 4
  step "stopping rs2's HTTP server: its check fails and lvsd takes it out of the table"
  kill "${HTTP_PID[2]}"
  wait_state "${RS[1]}" down
  lvsadm -L -n
  lvsadm -L -n --checks
  requests 4
  step "starting rs2's HTTP server again: the next check passes and it is back"
  start_http 2
  wait_state "${RS[1]}" up
  lvsadm -L -n
  requests 4
  exit 0
fi

step "configuring the virtual server"
lvsadm -A -t "$VIP:80" -s rr
lvsadm -a -t "$VIP:80" -r "${RS[0]}" "$FLAG"
lvsadm -a -t "$VIP:80" -r "${RS[1]}" "$FLAG"
lvsadm -L -n

step "$REQUESTS requests from the client to http://$VIP/"
requests "$REQUESTS"

step "the listing with live counters"
lvsadm -L -n
lvsadm -L -n --stats
if [ "$MODE" != nat ]; then
  echo
  echo "(OutPkts stays 0: with $MODE the real servers answer the client directly, not through the director)"
fi
