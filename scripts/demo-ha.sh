#!/usr/bin/env bash
# The high-availability demo (scripts/demo.sh ha): two NAT directors, each running
# `lvsd --keepalived-conf` with the same keepalived.conf but for the priority; keepalived's VRRP
# puts the VIP (and the real servers' gateway) on the master, lvsd syncs its connections to the
# backup. A client starts a download through the VIP, the master's lvsd is killed (SIGKILL), and
# the download goes on through the other director. The lab is torn down at the end, on Ctrl-C
# and on failure. Run through scripts/demo.sh, which sets the machine up first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=scripts/demo-lib.sh
source scripts/demo-lib.sh

P="lvsha$$"
C="$P-client" D1="$P-dir" D2="$P-dir2"
VIP=192.168.0.1
SIZE=$((20 << 20))
unset LVS_SOCKET
PIDS=()
LOGS=$(mktemp -d)

cleanup() { teardown "${PIDS[@]}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

state_of() { ip netns exec "$1" "$ROOT/bin/lvsadm.js" -L --daemon 2>/dev/null | sed -n 's/^vrrp instance VI_1: \([A-Z]*\).*/\1/p'; }
wait_state() {
  for _ in $(seq 100); do
    [ "$(state_of "$1")" = "$2" ] && return 0
    sleep 0.2
  done
  echo "demo: ${1#"$P"-} never became $2" >&2
  return 1
}

keepalived_conf() {
  local name=$1 priority=$2
  cat <<EOF
global_defs {
    router_id $name
    lvs_sync_daemon sync0 VI_1 id 7
}
vrrp_sync_group G1 {
    group {
        VI_1
        VI_GW
    }
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority $priority
    advert_int 1
    preempt_delay 3
    virtual_ipaddress {
        $VIP/24 dev eth0
    }
}
vrrp_instance VI_GW {
    state BACKUP
    interface eth1
    virtual_router_id 52
    priority $priority
    advert_int 1
    preempt_delay 3
    virtual_ipaddress {
        172.16.0.254/24 dev eth1
    }
}
virtual_server $VIP 80 {
    delay_loop 2
    lb_algo rr
    lb_kind NAT
    protocol TCP
    real_server 172.16.0.1 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
    real_server 172.16.0.2 80 {
        TCP_CHECK {
            connect_timeout 1
        }
    }
}
EOF
}

step "building the lab: a client, two NAT directors ($D1, $D2) with a sync link, two real servers"
bash netns/lab.sh up "$P" hanat
for i in 1 2; do
  ip netns exec "$P-rs$i" node netns/http-server.js "rs$i" 80 >/dev/null 2>&1 &
  PIDS+=($!)
done
keepalived_conf dir1 150 >"$LOGS/dir1.conf"
keepalived_conf dir2 100 >"$LOGS/dir2.conf"
step "the keepalived.conf of dir (dir2's has priority 100)"
sed 's/^/    /' "$LOGS/dir1.conf"

step "starting lvsd --keepalived-conf on both directors"
ip netns exec "$D1" "$ROOT/bin/lvsd.js" --keepalived-conf "$LOGS/dir1.conf" >"$LOGS/dir1.log" 2>&1 &
DIR1_PID=$!
PIDS+=("$DIR1_PID")
disown "$DIR1_PID"
ip netns exec "$D2" "$ROOT/bin/lvsd.js" --keepalived-conf "$LOGS/dir2.conf" >"$LOGS/dir2.log" 2>&1 &
PIDS+=($!)
wait_state "$D1" MASTER
wait_state "$D2" BACKUP
on "$D1" "$ROOT/bin/lvsadm.js" -L --daemon
on "$D2" "$ROOT/bin/lvsadm.js" -L --daemon
on "$D1" "$ROOT/bin/lvsadm.js" -L -n

step "a client downloads 20 MiB through http://$VIP/ at 2 MB/s"
want=$(ip netns exec "$C" curl -sS "http://$VIP/bytes/$SIZE" | sha256sum | cut -d' ' -f1)
ip netns exec "$C" sh -c "curl -sS --max-time 60 --limit-rate 2M http://$VIP/bytes/$SIZE | sha256sum" >"$LOGS/got" &
DL=$!
sleep 3
on "$D1" "$ROOT/bin/lvsadm.js" -L -n -c
echo "  (the backup's copy, from the sync daemon:)"
on "$D2" "$ROOT/bin/lvsadm.js" -L -n -c

step "killing the master's lvsd (SIGKILL)"
kill -9 "$DIR1_PID"
start=$(date +%s%N)
wait_state "$D2" MASTER
echo "  dir2 is MASTER $((($(date +%s%N) - start) / 1000000)) ms later"
on "$D2" "$ROOT/bin/lvsadm.js" -L --daemon
on "$D2" "$ROOT/bin/lvsadm.js" -L -n -c
on "$D2" ip -br addr show eth0
on "$D2" ip -br addr show eth1

step "waiting for the download"
wait "$DL"
got=$(cut -d' ' -f1 "$LOGS/got")
if [ "$got" = "$want" ]; then
  echo "  the download completed through the failover, byte-identical (sha256 $got)"
else
  echo "  the download differs: $got, expected $want" >&2
  exit 1
fi
