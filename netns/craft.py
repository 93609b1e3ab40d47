#!/usr/bin/python3
"""Hostile and malformed packets for the VIP, crafted with scapy (Debian: python3-scapy).

    netns/craft.py KIND COUNT [--vip 192.168.0.1] [--iface eth0] [--port 80] [--udp-port 53]
    netns/craft.py --serve [options as above]
    netns/craft.py --list

Run in the lab's client namespace: sends COUNT instances of KIND to the VIP at layer 3 (scapy's
send(), which resolves the next hop itself), all in one burst, then prints one JSON line:

    {"kind": KIND, "count": COUNT, "packets": packets sent, "replies": N or null}

(or {"error": ...}). With --serve it prints {"ready": [kinds]}, then reads "KIND COUNT" lines
from stdin and answers each with that line, until stdin closes: scapy loads once (about a
second) however many kinds a test sends.

"replies" counts what the VIP sent back to these instances (a reset, a UDP answer), watched on
IFACE from before the first packet until one per instance has arrived or REPLY_WAIT seconds have
passed; null for kinds with nothing to watch. Instance i uses source port SPORT_BASE + i, below
the kernel's ephemeral range, so no crafted packet ever meets a real client's connection.

Each kind survives the director's ip_rcv (version 4, IHL 5 or more, total length and header
checksum right) unless its description says otherwise, so lvsd sees it and must judge it; which
drop reason it must land in is the test's business (test/netns/crafted.test.ts).
"""

import argparse
import json
import random
import sys
import time

from scapy.all import ICMP, IP, TCP, UDP, AsyncSniffer, IPOption_NOP, Raw, conf, send

SPORT_BASE = 1024
MAX_COUNT = 1000
REPLY_WAIT = 1.5
TCP_RST = 0x04

# What a kind's instances may get back from the VIP.
RESET_FROM_PORT = "reset from --port"
RESET_FROM_PORT_PLUS_1 = "reset from --port + 1"
UDP_ANSWER = "answer from --udp-port"

KINDS = {}


def kind(reply=None):
    """Register a Crafter method as a kind; `reply` is what to watch for (None: nothing)."""

    def register(fn):
        KINDS[fn.__name__] = (fn, reply)
        return fn

    return register


def checksum_broken(pkt, layer):
    """`pkt` with `layer`'s checksum replaced by a wrong one (never its one's-complement twin)."""
    good = IP(bytes(pkt))[layer].chksum
    pkt[layer].chksum = good ^ 0x00FF
    return pkt


class Crafter:
    """Instance i of each kind: its packets, in sending order."""

    def __init__(self, src, vip, port, udp_port):
        self.src, self.vip, self.port, self.udp_port = src, vip, port, udp_port
        self.rng = random.Random(8)

    def ip(self, **kw):
        return IP(src=self.src, dst=self.vip, **kw)

    def l4_bytes(self, seg):
        """A TCP or UDP segment's bytes, its checksum over the real pseudo-header."""
        return bytes(IP(src=self.src, dst=self.vip) / seg)[20:]

    def ack(self, i):
        return TCP(sport=SPORT_BASE + i, dport=self.port, flags="A", seq=1000 + i, ack=7)

    # -- a malformed TCP header -------------------------------------------------------------
    @kind()
    def tcp_doff_short(self, i):
        """A SYN whose data offset is 4 words: a header shorter than 20 bytes."""
        return [self.ip() / TCP(sport=SPORT_BASE + i, dport=self.port, flags="S", dataofs=4)]

    @kind()
    def tcp_doff_beyond(self, i):
        """A SYN whose data offset is 15 words (60 bytes) in a 20-byte segment."""
        return [self.ip() / TCP(sport=SPORT_BASE + i, dport=self.port, flags="S", dataofs=15)]

    @kind()
    def tcp_header_truncated(self, i):
        """IP protocol 6 carrying only the first 12 bytes of a SYN's header."""
        seg = self.l4_bytes(TCP(sport=SPORT_BASE + i, dport=self.port, flags="S"))
        return [self.ip(proto=6) / Raw(seg[:12])]

    # -- a malformed UDP header -------------------------------------------------------------
    @kind()
    def udp_header_truncated(self, i):
        """IP protocol 17 carrying 4 bytes: half a UDP header."""
        seg = self.l4_bytes(UDP(sport=SPORT_BASE + i, dport=self.udp_port))
        return [self.ip(proto=17) / Raw(seg[:4])]

    @kind()
    def udp_length_beyond(self, i):
        """A datagram whose length field says 200 bytes; 16 are there."""
        return [self.ip() / UDP(sport=SPORT_BASE + i, dport=self.udp_port, len=200) / Raw(b"q" * 8)]

    @kind()
    def udp_length_short(self, i):
        """A datagram whose length field says 4: less than its own header."""
        return [self.ip() / UDP(sport=SPORT_BASE + i, dport=self.udp_port, len=4) / Raw(b"q" * 8)]

    # -- TCP to the service that no connection explains -------------------------------------
    @kind(reply=RESET_FROM_PORT)
    def tcp_ack_no_conn(self, i):
        """A bare ACK to the service, as from a connection lvsd never saw."""
        return [self.ip() / self.ack(i)]

    @kind(reply=RESET_FROM_PORT)
    def tcp_ack_no_conn_ip_options(self, i):
        """The same ACK behind an IPv4 header with options (four NOPs: IHL 6)."""
        return [self.ip(options=[IPOption_NOP()] * 4) / self.ack(i)]

    @kind(reply=RESET_FROM_PORT)
    def tcp_rst_no_conn(self, i):
        """A reset for a connection lvsd never saw (a reset is never answered)."""
        return [self.ip() / TCP(sport=SPORT_BASE + i, dport=self.port, flags="R", seq=1000 + i)]

    @kind(reply=RESET_FROM_PORT)
    def tcp_syn_rst(self, i):
        """SYN and RST together: may not open a connection, and is not answered."""
        return [self.ip() / TCP(sport=SPORT_BASE + i, dport=self.port, flags="SR", seq=1000 + i)]

    # -- to the VIP, but to no service ------------------------------------------------------
    @kind(reply=RESET_FROM_PORT_PLUS_1)
    def tcp_syn_no_service(self, i):
        """A SYN to a TCP port of the VIP with no service (--port + 1)."""
        return [self.ip() / TCP(sport=SPORT_BASE + i, dport=self.port + 1, flags="S", seq=1000 + i)]

    @kind()
    def udp_no_service(self, i):
        """A datagram to a UDP port of the VIP with no service (--udp-port + 1)."""
        return [self.ip() / UDP(sport=SPORT_BASE + i, dport=self.udp_port + 1) / Raw(b"q%05d" % i)]

    @kind()
    def proto_no_service(self, i):
        """IP protocol 47 (GRE), which no virtual service can match, with 24 bytes of junk."""
        return [self.ip(proto=47) / Raw(self.rng.randbytes(24))]

    # -- ICMP to the VIP --------------------------------------------------------------------
    @kind()
    def icmp_error_no_conn(self, i):
        """Port unreachable quoting a well-formed VIP:port -> client segment of no connection."""
        quoted = bytes(IP(src=self.vip, dst=self.src) / TCP(sport=self.port, dport=SPORT_BASE + i, flags="SA"))
        return [self.ip() / ICMP(type=3, code=3) / Raw(quoted[:28])]

    @kind()
    def icmp_error_junk_quote(self, i):
        """Host unreachable quoting 28 bytes of junk (version nibble 6: no IPv4 header)."""
        return [self.ip() / ICMP(type=3, code=1) / Raw(bytes([0x65]) + self.rng.randbytes(27))]

    @kind()
    def icmp_error_truncated_quote(self, i):
        """Time exceeded quoting an IPv4 header and only 4 bytes of its TCP header."""
        quoted = bytes(IP(src=self.vip, dst=self.src) / TCP(sport=self.port, dport=SPORT_BASE + i))
        return [self.ip() / ICMP(type=11, code=0) / Raw(quoted[:24])]

    @kind()
    def icmp_echo_bad_checksum(self, i):
        """An echo request whose ICMP checksum is wrong."""
        return [checksum_broken(self.ip() / ICMP(type=8, id=0x4C56, seq=i) / Raw(b"crafted"), ICMP)]

    # -- IPv4 fragments (24-byte UDP datagrams to the UDP service, one IP id per instance) ---
    def datagram(self, i, tag):
        payload = b"%s-%011d" % (tag, i)
        assert len(payload) == 16
        return self.l4_bytes(UDP(sport=SPORT_BASE + i, dport=self.udp_port) / Raw(payload))

    def frag(self, ident, data, offset, more):
        return self.ip(proto=17, id=ident, frag=offset // 8, flags="MF" if more else 0) / Raw(data)

    @kind()
    def frag_overlap(self, i):
        """Bytes [0, 16) with MF, then bytes [8, 24) as the last fragment: they overlap."""
        d = self.datagram(i, b"ovlp")
        return [self.frag(0x5000 + i, d[:16], 0, True), self.frag(0x5000 + i, d[8:], 8, False)]

    @kind(reply=UDP_ANSWER)
    def frag_duplicate(self, i):
        """Bytes [0, 16) with MF twice, then [16, 24): the resend goes, the datagram is whole."""
        d = self.datagram(i, b"dupl")
        first = self.frag(0x6000 + i, d[:16], 0, True)
        return [first, first, self.frag(0x6000 + i, d[16:], 16, False)]

    @kind()
    def frag_bad_length(self, i):
        """A first fragment (MF) of 13 payload bytes: not a multiple of 8."""
        return [self.frag(0x7000 + i, self.datagram(i, b"badl")[:13], 0, True)]

    # -- what the director's kernel drops before lvsd ---------------------------------------
    @kind()
    def ip_bad_checksum(self, i):
        """A bare ACK to the service with a wrong IPv4 header checksum (ip_rcv drops it)."""
        return [checksum_broken(self.ip() / self.ack(i), IP)]


def reply_filter(reply, vip, port, udp_port, count):
    """Does a sniffed packet answer one of the `count` instances just sent?"""
    ours = range(SPORT_BASE, SPORT_BASE + count)
    if reply == UDP_ANSWER:
        return lambda p: UDP in p and p[IP].src == vip and p[UDP].sport == udp_port and p[UDP].dport in ours
    sport = port + (1 if reply == RESET_FROM_PORT_PLUS_1 else 0)
    return lambda p: (
        TCP in p
        and p[IP].src == vip
        and p[TCP].sport == sport
        and p[TCP].dport in ours
        and (int(p[TCP].flags) & TCP_RST) != 0
    )


def craft(a, name, count):
    """Send `count` instances of kind `name`; returns what main() prints."""
    if name not in KINDS or not 1 <= count <= MAX_COUNT:
        return {"error": f"need a known KIND and COUNT 1..{MAX_COUNT}, got {name} {count}"}
    make, reply = KINDS[name]
    crafter = Crafter(conf.route.route(a.vip)[1], a.vip, a.port, a.udp_port)
    pkts = [p for i in range(count) for p in make(crafter, i)]

    sniffer = None
    replies = []
    if reply is not None:
        started = []
        sniffer = AsyncSniffer(
            iface=a.iface,
            lfilter=reply_filter(reply, a.vip, a.port, a.udp_port, count),
            prn=replies.append,
            store=False,
            started_callback=lambda: started.append(True),
        )
        sniffer.start()
        deadline = time.monotonic() + 5
        while not started and time.monotonic() < deadline:
            time.sleep(0.01)

    send(pkts, iface=a.iface, verbose=0)

    if sniffer is not None:
        deadline = time.monotonic() + REPLY_WAIT
        while len(replies) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        sniffer.stop()
    return {"kind": name, "count": count, "packets": len(pkts), "replies": len(replies) if sniffer else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", nargs="?", choices=sorted(KINDS))
    ap.add_argument("count", nargs="?", type=int)
    ap.add_argument("--list", action="store_true", help="print each kind and what it is, then exit")
    ap.add_argument("--serve", action="store_true", help="read 'KIND COUNT' lines, answer each with its JSON line")
    ap.add_argument("--vip", default="192.168.0.1")
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--port", type=int, default=80, help="the TCP service's port")
    ap.add_argument("--udp-port", type=int, default=53, help="the UDP service's port")
    a = ap.parse_args()
    conf.verb = 0
    if a.list:
        for name, (fn, _) in KINDS.items():
            print(f"{name}: {fn.__doc__}")
        return 0
    if a.serve:
        print(json.dumps({"ready": sorted(KINDS)}), flush=True)
        for line in sys.stdin:
            words = line.split()
            count = int(words[1]) if len(words) == 2 and words[1].isdigit() else 0
            print(json.dumps(craft(a, words[0] if words else "", count)), flush=True)
        return 0
    if a.kind is None or a.count is None:
        ap.error("need KIND and COUNT, or --serve, or --list")
    result = craft(a, a.kind, a.count)
    print(json.dumps(result))
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
