#!/usr/bin/env bash
# Namespace labs for the three forwarding methods, shared by the demo and the netns tests.
# Every namespace name starts with PREFIX, so parallel runs never meet; `down` removes them all.
# The VIP is always 192.168.0.1 on the client's LAN: lvsd in the director answers ARP for it
# (proxy) and routes it into its TUN.
#
#   nat  client 192.168.0.2 ── director (cli0 192.168.0.254) ── br0 172.16.0.254/24 ─┬─ rs1 172.16.0.1
#        real servers route back through the director                               └─ rs2 172.16.0.2
#        (the real-server side has MTU $RS_MTU, default 1500; the director's client link
#        $DIR_CLIENT_MTU, default 1500: a bottleneck the client's MSS does not show)
#
#   dr   one L2 segment (a bridge in PREFIX-sw): client 192.168.0.2, director 192.168.0.254,
#        rs1 192.168.0.11, rs2 192.168.0.12; real servers answer the client directly
#
#   tun  client LAN (bridge in PREFIX-sw): client 192.168.0.2, director 192.168.0.254,
#        router 192.168.0.253; router eth1 172.16.0.254/24 ── br1 (in PREFIX-sw) ─┬─ rs1 172.16.0.1
#        (MTU $RS_MTU, default 1500)                                           └─ rs2 172.16.0.2
#        TUN_RS_LAN=router: the real servers' bridge in the router instead, carrying 172.16.0.254
#        the director reaches the real servers through the router; they answer the client
#        through the router, never through the director
#
#   sync the dr lab plus a second director (PREFIX-dir2, 192.168.0.252) and a link between the
#        two directors for connection sync (sync0: 10.9.0.1/30 in dir, 10.9.0.2/30 in dir2); the
#        client reaches the VIP through a host route via 192.168.0.254, which a failover moves
#
#   ha   the sync lab without the client's route: keepalived's VRRP puts the VIP on the master
#
#   hanat  two NAT directors: the client LAN (bridge br0 in PREFIX-sw: client 192.168.0.2, dir
#        eth0 192.168.0.254, dir2 eth0 192.168.0.252), the real servers' LAN (br1: dir eth1
#        172.16.0.253, dir2 eth1 172.16.0.252, rs1 172.16.0.1, rs2 172.16.0.2, whose gateway
#        172.16.0.254 the VRRP master holds) and sync0 between the directors, as in ha
#
#   ecmp three active directors behind a router with kernel ECMP (layer-4 hash): client
#        10.0.0.2 ── rtr (cli0 10.0.0.1, eth1 192.168.0.1) ── LAN (bridge in PREFIX-sw): dir,
#        dir2, dir3 192.168.0.11-13, DR real servers rs1 192.168.0.21, rs2 192.168.0.22; every
#        host on the LAN routes through rtr. The test starts the routing daemons (BIRD)
#
#   routed  NAT real servers two routers beyond the director, with a narrow link between the
#        routers: client 192.168.0.2 ── director (cli0 192.168.0.254, up0 10.1.0.1/30) ──
#        rtr (10.1.0.2/30, 10.2.0.1/30) ══ MTU $LINK_MTU (default 1280) ══ rtr2 (10.2.0.2/30,
#        br0 172.16.0.254/24) ─┬─ rs1 172.16.0.1; the director routes 172.16.0.0/24 via rtr
#                              └─ rs2 172.16.0.2  (unless NO_RS_ROUTE=1: a director that boots
#        before its route to the real servers exists)
#
#   mixed   a NAT and a DR lab in one: the dr lab's LAN (client, director eth0, rs1 and rs2 as
#        DR real servers) plus NAT real servers rs3 172.16.0.3 and rs4 172.16.0.4 behind the
#        director's br0 172.16.0.254/24
#
#   selftest  the topology of the kernel's IPVS selftest (tools/testing/selftests/net/netfilter/
#        ipvs.sh): PREFIX-client (its ns0) bridges veth01 and veth02 on br0 10.0.0.2/24;
#        PREFIX-dir (ns1) veth10 10.0.0.1/24, veth12 172.16.0.1/24; PREFIX-rs1 (ns2) veth21
#        172.16.0.2/24, veth20 10.0.0.3/24 (on the client's bridge). No routes, no VIP: the
#        test adds them as the selftest does.
#
#   IPV6=1 (nat, routed and dr labs): IPv6 beside IPv4, the VIP 2001:db8::1 on the client's LAN:
#        client 2001:db8::2/64, director 2001:db8::fe/64; nat and routed: the real servers' LAN
#        2001:db8:10::/64 (gateway ::fe, rs1 ::1, rs2 ::2); routed: director up0
#        2001:db8:f1::1/64, rtr ::2 there, the narrow link 2001:db8:f2::/64 (rtr ::1, rtr2 ::2);
#        dr: rs1 2001:db8::11, rs2 2001:db8::12 on the one LAN; tun: router 2001:db8::fd on the
#        client LAN, the real servers' LAN 2001:db8:10::/64 behind it (router ::fe, rs1 ::1,
#        rs2 ::2). Addresses skip DAD (nodad).
#
#   netns/lab.sh up PREFIX [nat|dr|tun|sync|ha|hanat|ecmp|routed|mixed|selftest]    build the lab (default nat)
#   netns/lab.sh down PREFIX               kill everything running in it and delete it
set -Eeuo pipefail

cmd=${1:?usage: lab.sh up|down PREFIX [nat|dr|tun|sync|ha|hanat|ecmp|routed|mixed|selftest]}
P=${2:?usage: lab.sh up|down PREFIX [nat|dr|tun|sync|ha|hanat|ecmp|routed|mixed|selftest]}
MODE=${3:-nat}
RS_MTU=${RS_MTU:-1500}
C=$P-client D=$P-dir D2=$P-dir2 D3=$P-dir3 R1=$P-rs1 R2=$P-rs2 R3=$P-rs3 R4=$P-rs4 SW=$P-sw RT=$P-rtr RT2=$P-rtr2
ALL=("$C" "$D" "$D2" "$D3" "$R1" "$R2" "$R3" "$R4" "$SW" "$RT" "$RT2")

down() {
  for ns in "${ALL[@]}"; do
    if ip netns pids "$ns" >/dev/null 2>&1; then
      # shellcheck disable=SC2046
      kill $(ip netns pids "$ns") 2>/dev/null || true
    fi
  done
  # Give lvsd and lvs-realserver a moment to undo what they installed (lvsd first stops the
  # keepalived it runs, which may take a few seconds to hand over).
  for _ in $(seq 60); do
    busy=0
    for ns in "${ALL[@]}"; do
      [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && busy=1
    done
    [ "$busy" -eq 0 ] && break
    sleep 0.1
  done
  for ns in "${ALL[@]}"; do
    if ip netns pids "$ns" >/dev/null 2>&1; then
      # shellcheck disable=SC2046
      kill -9 $(ip netns pids "$ns") 2>/dev/null || true
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}

ns_add() {
  for ns in "$@"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
}

# link NS IFNAME ADDR/LEN BRIDGE_NS BRIDGE PORTNAME: a veth from NS into a bridge elsewhere.
port() {
  local ns=$1 ifname=$2 addr=$3 brns=$4 br=$5 portname=$6
  ip -n "$ns" link add "$ifname" type veth peer name "$portname" netns "$brns"
  ip -n "$brns" link set "$portname" master "$br" up
  ip -n "$ns" addr add "$addr" dev "$ifname"
  ip -n "$ns" link set "$ifname" up
}

# rs_lan NS NAME:ADDR:PORT...: the real servers' LAN, a bridge br0 172.16.0.254/24 in NS, with
# each real server NAME on it at ADDR (its bridge port named PORT), routing through NS.
rs_lan() {
  local ns=$1 spec rs addr portname
  shift
  ip -n "$ns" link add br0 type bridge
  ip -n "$ns" addr add 172.16.0.254/24 dev br0
  [ "${IPV6:-0}" = 1 ] && ip -n "$ns" addr add 2001:db8:10::fe/64 dev br0 nodad
  ip -n "$ns" link set br0 up
  for spec in "$@"; do
    IFS=: read -r rs addr portname <<<"$spec"
    port "$rs" eth0 "$addr/24" "$ns" br0 "$portname"
    ip -n "$rs" route add default via 172.16.0.254
    if [ "${IPV6:-0}" = 1 ]; then
      ip -n "$rs" addr add "2001:db8:10::${addr##*.}/64" dev eth0 nodad
      ip -n "$rs" -6 route add default via 2001:db8:10::fe
    fi
  done
}

# client_link: the nat and routed labs' client 192.168.0.2 on the director's cli0 192.168.0.254
# (and with IPV6=1 2001:db8::2 and 2001:db8::fe).
client_link() {
  ip -n "$C" link add eth0 type veth peer name cli0 netns "$D"
  ip -n "$C" addr add 192.168.0.2/24 dev eth0
  ip -n "$C" link set eth0 up
  ip -n "$D" addr add 192.168.0.254/24 dev cli0
  ip -n "$D" link set cli0 up mtu "${DIR_CLIENT_MTU:-1500}"
  if [ "${IPV6:-0}" = 1 ]; then
    ip -n "$C" addr add 2001:db8::2/64 dev eth0 nodad
    ip -n "$D" addr add 2001:db8::fe/64 dev cli0 nodad
  fi
}

up_nat() {
  ns_add "$C" "$D" "$R1" "$R2"
  client_link
  rs_lan "$D" "$R1:172.16.0.1:rs1p" "$R2:172.16.0.2:rs2p"
  if [ "$RS_MTU" != 1500 ]; then
    for dev in rs1p rs2p br0; do ip -n "$D" link set "$dev" mtu "$RS_MTU"; done
    ip -n "$R1" link set eth0 mtu "$RS_MTU"
    ip -n "$R2" link set eth0 mtu "$RS_MTU"
  fi
}

up_selftest() {
  ns_add "$C" "$D" "$R1"
  ip link add veth01 netns "$C" type veth peer name veth10 netns "$D"
  ip link add veth02 netns "$C" type veth peer name veth20 netns "$R1"
  ip link add veth12 netns "$D" type veth peer name veth21 netns "$R1"
  ip -n "$C" link set veth01 up
  ip -n "$C" link set veth02 up
  ip -n "$C" link add br0 type bridge
  ip -n "$C" link set veth01 master br0
  ip -n "$C" link set veth02 master br0
  ip -n "$C" link set br0 up
  ip -n "$C" addr add 10.0.0.2/24 dev br0
  ip -n "$D" link set veth10 up
  ip -n "$D" addr add 10.0.0.1/24 dev veth10
  ip -n "$D" link set veth12 up
  ip -n "$D" addr add 172.16.0.1/24 dev veth12
  ip -n "$R1" link set veth21 up
  ip -n "$R1" addr add 172.16.0.2/24 dev veth21
  ip -n "$R1" link set veth20 up
  ip -n "$R1" addr add 10.0.0.3/24 dev veth20
}

up_dr() {
  ns_add "$C" "$D" "$R1" "$R2" "$SW"
  ip -n "$SW" link add br0 type bridge
  ip -n "$SW" link set br0 up
  port "$C" eth0 192.168.0.2/24 "$SW" br0 cli
  port "$D" eth0 192.168.0.254/24 "$SW" br0 dir
  port "$R1" eth0 192.168.0.11/24 "$SW" br0 rs1
  port "$R2" eth0 192.168.0.12/24 "$SW" br0 rs2
  if [ "${IPV6:-0}" = 1 ]; then
    ip -n "$C" addr add 2001:db8::2/64 dev eth0 nodad
    ip -n "$D" addr add 2001:db8::fe/64 dev eth0 nodad
    ip -n "$R1" addr add 2001:db8::11/64 dev eth0 nodad
    ip -n "$R2" addr add 2001:db8::12/64 dev eth0 nodad
  fi
}

up_ha() {
  up_dr
  ns_add "$D2"
  port "$D2" eth0 192.168.0.252/24 "$SW" br0 dir2
  sync_link
}

# bridge NS NAME: a bridge, up.
bridge() {
  ip -n "$1" link add "$2" type bridge
  ip -n "$1" link set "$2" up
}

# sync_link: the directors' link for connection sync, sync0 10.9.0.1/30 (dir) -- 10.9.0.2/30 (dir2).
sync_link() {
  ip -n "$D" link add sync0 type veth peer name sync0 netns "$D2"
  ip -n "$D" addr add 10.9.0.1/30 dev sync0
  ip -n "$D2" addr add 10.9.0.2/30 dev sync0
  ip -n "$D" link set sync0 up
  ip -n "$D2" link set sync0 up
}

up_hanat() {
  ns_add "$C" "$D" "$D2" "$R1" "$R2" "$SW"
  bridge "$SW" br0
  bridge "$SW" br1
  port "$C" eth0 192.168.0.2/24 "$SW" br0 cli
  port "$D" eth0 192.168.0.254/24 "$SW" br0 dir
  port "$D2" eth0 192.168.0.252/24 "$SW" br0 dir2
  port "$D" eth1 172.16.0.253/24 "$SW" br1 dirr
  port "$D2" eth1 172.16.0.252/24 "$SW" br1 dir2r
  port "$R1" eth0 172.16.0.1/24 "$SW" br1 rs1
  port "$R2" eth0 172.16.0.2/24 "$SW" br1 rs2
  ip -n "$R1" route add default via 172.16.0.254
  ip -n "$R2" route add default via 172.16.0.254
  sync_link
}

up_ecmp() {
  ns_add "$C" "$RT" "$SW" "$D" "$D2" "$D3" "$R1" "$R2"
  ip -n "$C" link add eth0 type veth peer name cli0 netns "$RT"
  ip -n "$C" addr add 10.0.0.2/24 dev eth0
  ip -n "$C" link set eth0 up
  ip -n "$C" route add default via 10.0.0.1
  ip -n "$RT" addr add 10.0.0.1/24 dev cli0
  ip -n "$RT" link set cli0 up
  bridge "$SW" br0
  port "$RT" eth1 192.168.0.1/24 "$SW" br0 rtr
  port "$D" eth0 192.168.0.11/24 "$SW" br0 dir
  port "$D2" eth0 192.168.0.12/24 "$SW" br0 dir2
  port "$D3" eth0 192.168.0.13/24 "$SW" br0 dir3
  port "$R1" eth0 192.168.0.21/24 "$SW" br0 rs1
  port "$R2" eth0 192.168.0.22/24 "$SW" br0 rs2
  for ns in "$D" "$D2" "$D3" "$R1" "$R2"; do ip -n "$ns" route add default via 192.168.0.1; done
  ip netns exec "$RT" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1
}

up_sync() {
  up_ha
  ip -n "$C" route add 192.168.0.1/32 via 192.168.0.254
}

up_tun() {
  ns_add "$C" "$D" "$R1" "$R2" "$SW" "$RT"
  bridge "$SW" br0
  port "$C" eth0 192.168.0.2/24 "$SW" br0 cli
  port "$D" eth0 192.168.0.254/24 "$SW" br0 dir
  port "$RT" eth0 192.168.0.253/24 "$SW" br0 rtr
  if [ "${TUN_RS_LAN:-switch}" = router ]; then
    # The router bridges the real servers' LAN itself (its br0 carries its address): such a
    # bridge has no encapsulation offloads, so the router cuts IP-in-IP GSO packets into segments.
    rs_lan "$RT" "$R1:172.16.0.1:rs1p" "$R2:172.16.0.2:rs2p"
    for dev in rs1p rs2p br0; do ip -n "$RT" link set "$dev" mtu "$RS_MTU"; done
  else
    # The real servers' LAN is a switch (a bridge in PREFIX-sw) the router is a port of.
    bridge "$SW" br1
    port "$RT" eth1 172.16.0.254/24 "$SW" br1 rtrr
    port "$R1" eth0 172.16.0.1/24 "$SW" br1 rs1p
    port "$R2" eth0 172.16.0.2/24 "$SW" br1 rs2p
    ip -n "$RT" link set eth1 mtu "$RS_MTU"
    for dev in rtrr rs1p rs2p br1; do ip -n "$SW" link set "$dev" mtu "$RS_MTU"; done
    for ns in "$R1" "$R2"; do ip -n "$ns" route add default via 172.16.0.254; done
  fi
  for ns in "$R1" "$R2"; do ip -n "$ns" link set eth0 mtu "$RS_MTU"; done
  ip netns exec "$RT" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$D" route add 172.16.0.0/24 via 192.168.0.253
  if [ "${IPV6:-0}" = 1 ]; then
    ip -n "$C" addr add 2001:db8::2/64 dev eth0 nodad
    ip -n "$D" addr add 2001:db8::fe/64 dev eth0 nodad
    ip -n "$RT" addr add 2001:db8::fd/64 dev eth0 nodad
    local rsdev=eth1
    [ "${TUN_RS_LAN:-switch}" = router ] && rsdev=br0
    ip -n "$RT" addr add 2001:db8:10::fe/64 dev "$rsdev" nodad
    ip -n "$R1" addr add 2001:db8:10::1/64 dev eth0 nodad
    ip -n "$R2" addr add 2001:db8:10::2/64 dev eth0 nodad
    for ns in "$R1" "$R2"; do ip -n "$ns" -6 route add default via 2001:db8:10::fe; done
    ip netns exec "$RT" sysctl -qw net.ipv6.conf.all.forwarding=1
    ip -n "$D" -6 route add 2001:db8:10::/64 via 2001:db8::fd
  fi
}

up_routed() {
  local mtu=${LINK_MTU:-1280}
  ns_add "$C" "$D" "$RT" "$RT2" "$R1" "$R2"
  client_link
  ip -n "$D" link add up0 type veth peer name down0 netns "$RT"
  ip -n "$D" addr add 10.1.0.1/30 dev up0
  ip -n "$D" link set up0 up
  ip -n "$RT" addr add 10.1.0.2/30 dev down0
  ip -n "$RT" link set down0 up
  ip -n "$RT" link add narrow0 type veth peer name narrow0 netns "$RT2"
  ip -n "$RT" addr add 10.2.0.1/30 dev narrow0
  ip -n "$RT" link set narrow0 up mtu "$mtu"
  ip -n "$RT2" addr add 10.2.0.2/30 dev narrow0
  ip -n "$RT2" link set narrow0 up mtu "$mtu"
  rs_lan "$RT2" "$R1:172.16.0.1:rs1p" "$R2:172.16.0.2:rs2p"
  ip -n "$RT" route add 172.16.0.0/24 via 10.2.0.2
  ip -n "$RT" route add default via 10.1.0.1
  ip -n "$RT2" route add default via 10.2.0.1
  ip netns exec "$RT" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$RT2" sysctl -qw net.ipv4.ip_forward=1
  [ "${NO_RS_ROUTE:-0}" = 1 ] || ip -n "$D" route add 172.16.0.0/24 via 10.1.0.2
  if [ "${IPV6:-0}" = 1 ]; then
    ip -n "$D" addr add 2001:db8:f1::1/64 dev up0 nodad
    ip -n "$RT" addr add 2001:db8:f1::2/64 dev down0 nodad
    ip -n "$RT" addr add 2001:db8:f2::1/64 dev narrow0 nodad
    ip -n "$RT2" addr add 2001:db8:f2::2/64 dev narrow0 nodad
    ip -n "$RT" -6 route add 2001:db8:10::/64 via 2001:db8:f2::2
    ip -n "$RT" -6 route add default via 2001:db8:f1::1
    ip -n "$RT2" -6 route add default via 2001:db8:f2::1
    ip netns exec "$RT" sysctl -qw net.ipv6.conf.all.forwarding=1
    ip netns exec "$RT2" sysctl -qw net.ipv6.conf.all.forwarding=1
    [ "${NO_RS_ROUTE:-0}" = 1 ] || ip -n "$D" -6 route add 2001:db8:10::/64 via 2001:db8:f1::2
  fi
}

up_mixed() {
  up_dr
  ns_add "$R3" "$R4"
  rs_lan "$D" "$R3:172.16.0.3:rs3p" "$R4:172.16.0.4:rs4p"
}

case "$cmd" in
  up)
    trap 'down' ERR
    case "$MODE" in
      nat) up_nat ;;
      dr) up_dr ;;
      tun) up_tun ;;
      sync) up_sync ;;
      ha) up_ha ;;
      hanat) up_hanat ;;
      ecmp) up_ecmp ;;
      routed) up_routed ;;
      mixed) up_mixed ;;
      selftest) up_selftest ;;
      *)
        echo "lab.sh: unknown mode $MODE (nat, dr, tun, sync, ha, hanat, ecmp, routed, mixed or selftest)" >&2
        exit 2
        ;;
    esac
    ;;
  down) down ;;
  *)
    echo "usage: lab.sh up|down PREFIX [nat|dr|tun|sync|ha|hanat|ecmp|routed|mixed|selftest]" >&2
    exit 2
    ;;
esac
