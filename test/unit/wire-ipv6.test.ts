import { describe, expect, it } from 'vitest';
import { InvalidError } from '../../src/errors';
import { IPPROTO_ICMPV6 } from '../../src/ip-vs';
import {
  formatIpv6,
  formatIpv6Full,
  ipv6Fold,
  ipv6Prefix,
  ipv6ToBytes,
  isValidIpv6,
  parseIpv6,
} from '../../src/wire/addr6';
import { checksum } from '../../src/wire/checksum';
import { IPPROTO_AH, IPPROTO_FRAGMENT, IPV6, IPV6_MAX_EXT_HEADERS, Ipv6Repr, Ipv6View } from '../../src/wire/ipv6';
import { V_BAD_TOTAL_LEN, V_BAD_VERSION, V_OK, V_TRUNCATED, V_UNSUPPORTED } from '../../src/wire/verdict';
import { fromHex } from '../helpers/packet-builder';

// Packets built by an independent tool (scapy 2.5), checksums included:
// IPv6(src=2001:db8::2, dst=2001:db8:1::1, hlim=63, tc=0x28, fl=0x12345) / hop-by-hop (PadN) /
// routing (type 0, no addresses) / destination options (PadN) / TCP SYN 40000 -> 80, seq 1000.
const EXT_TCP = fromHex(`
  62 81 23 45 00 2c 00 3f 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
  20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 01
  2b 00 01 04 00 00 00 00   3c 00 00 00 00 00 00 00   06 00 01 04 00 00 00 00
  9c 40 00 50 00 00 03 e8 00 00 00 00 50 02 fa f0 b9 03 00 00
`);
// UDP 5353 -> 53, payload "hello".
const UDP6 = fromHex(`
  60 00 00 00 00 0d 11 40 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
  20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 01 14 e9 00 35 00 0d 4b 6e 68 65 6c 6c 6f
`);
// ICMPv6 echo request id 7 seq 1 "ping" from fe80::1.
const ECHO6 = fromHex(`
  60 00 00 00 00 0c 3a 40 fe 80 00 00 00 00 00 00 00 00 00 00 00 00 00 01
  20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 01 80 00 74 a3 00 07 00 01 70 69 6e 67
`);
// First fragment (offset 0, M) and a later one (offset 16 bytes), id 0xdeadbeef, TCP inside.
const FRAG_FIRST = fromHex(`
  60 00 00 00 00 18 2c 40 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
  20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 01 06 00 00 01 de ad be ef
  00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
`);
const FRAG_LATER = fromHex(`
  60 00 00 00 00 10 2c 40 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
  20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 01 06 00 00 10 de ad be ef 11 11 11 11 11 11 11 11
`);
// AH (payload length 4: 24 bytes) then UDP 1 -> 2.
const AH_UDP = fromHex(`
  60 00 00 00 00 20 33 40 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02
  20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 01
  11 04 00 00 00 00 01 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00
  00 01 00 02 00 08 00 00
`);

function view(b: Buffer, len = b.length): Ipv6View {
  return new Ipv6View().reset(b, 0, len);
}

describe('Ipv6View: the fixed header', () => {
  it('reads every field of a real header', () => {
    const v = view(EXT_TCP);
    expect(v.checkLen()).toBe(V_OK);
    expect([v.version, v.trafficClass, v.flowLabel, v.payloadLen, v.nextHeader, v.hopLimit]).toEqual([
      6, 0x28, 0x12345, 44, 0, 63,
    ]);
    expect([0, 1, 2, 3].map((i) => v.srcWord(i))).toEqual([0x20010db8, 0, 0, 2]);
    expect([0, 1, 2, 3].map((i) => v.dstWord(i))).toEqual([0x20010db8, 0x00010000, 0, 1]);
    expect(v.totalLen).toBe(84);
  });

  it('writes the hop limit, traffic class and addresses in place, leaving the rest', () => {
    const b = Buffer.from(EXT_TCP);
    const v = view(b);
    expect(v.checkLen()).toBe(V_OK);
    v.hopLimit = 62;
    v.trafficClass = 0xb9;
    v.setDstWord(3, 0x10);
    v.setSrcWord(0, 0xfd000000);
    expect([v.hopLimit, v.trafficClass, v.flowLabel, v.version]).toEqual([62, 0xb9, 0x12345, 6]);
    expect(b.subarray(0, 8).toString('hex')).toBe('6b912345002c003e');
    expect(b.readUInt32BE(IPV6.DST + 12)).toBe(0x10);
    expect(b.readUInt32BE(IPV6.SRC)).toBe(0xfd000000);
  });

  it('refuses short, wrong-version, overlong and zero-length packets', () => {
    expect(view(EXT_TCP, 39).checkLen()).toBe(V_TRUNCATED);
    const v4 = Buffer.from(UDP6);
    v4[0] = 0x45;
    expect(view(v4).checkLen()).toBe(V_BAD_VERSION);
    expect(view(UDP6, UDP6.length - 1).checkLen()).toBe(V_BAD_TOTAL_LEN);
    const zero = Buffer.from(UDP6);
    zero.writeUInt16BE(0, IPV6.PAYLOAD_LEN);
    expect(view(zero).checkLen()).toBe(V_UNSUPPORTED);
  });

  it('ignores link padding beyond the payload length', () => {
    const padded = Buffer.concat([UDP6, Buffer.alloc(9, 0xee)]);
    const v = view(padded);
    expect(v.checkLen()).toBe(V_OK);
    expect([v.protocol, v.l4Offset, v.l4Len]).toEqual([17, 40, 13]);
  });
});

describe('Ipv6View: extension headers', () => {
  it('skips hop-by-hop, routing and destination options to the TCP header', () => {
    const v = view(EXT_TCP);
    expect(v.checkLen()).toBe(V_OK);
    expect([v.protocol, v.l4Offset, v.l4Len, v.isFragment]).toEqual([6, 64, 20, false]);
    expect(EXT_TCP.readUInt16BE(v.l4Offset)).toBe(40000);
  });

  it('sizes AH in 4-byte units', () => {
    const v = view(AH_UDP);
    expect(v.checkLen()).toBe(V_OK);
    expect([v.protocol, v.l4Offset]).toEqual([17, 64]);
    expect(AH_UDP.readUInt16BE(v.l4Offset + 2)).toBe(2);
    expect(AH_UDP[IPV6.NEXT_HEADER]).toBe(IPPROTO_AH);
  });

  it('finds the fragment header; a first fragment shows its upper-layer header, a later one not', () => {
    const first = view(FRAG_FIRST);
    expect(first.checkLen()).toBe(V_OK);
    expect([first.isFragment, first.fragOffset, first.fragOffsetBytes, first.moreFrags, first.fragId]).toEqual([
      true,
      40,
      0,
      true,
      0xdeadbeef,
    ]);
    expect([first.protocol, first.l4Offset]).toEqual([6, 48]);
    const later = view(FRAG_LATER);
    expect(later.checkLen()).toBe(V_OK);
    expect([later.fragOffsetBytes, later.moreFrags, later.protocol, later.l4Offset, later.l4Len]).toEqual([
      16,
      false,
      6,
      48,
      8,
    ]);
    expect(FRAG_FIRST[IPV6.NEXT_HEADER]).toBe(IPPROTO_FRAGMENT);
  });

  it('refuses a chain that runs past the payload, or one too long', () => {
    // The destination options header says 3 * 8 more bytes than there are.
    const over = Buffer.from(EXT_TCP);
    over[IPV6.HEADER + 16 + 1] = 3;
    expect(view(over).checkLen()).toBe(V_TRUNCATED);
    // A payload that ends inside an extension header's first 8 bytes.
    const cut = Buffer.from(EXT_TCP.subarray(0, 44));
    cut.writeUInt16BE(4, IPV6.PAYLOAD_LEN);
    expect(view(cut).checkLen()).toBe(V_TRUNCATED);
    // IPV6_MAX_EXT_HEADERS + 1 destination options headers of 8 bytes, then UDP.
    const n = IPV6_MAX_EXT_HEADERS + 1;
    const long = Buffer.alloc(40 + 8 * n + 8);
    long[0] = 0x60;
    long.writeUInt16BE(8 * n + 8, IPV6.PAYLOAD_LEN);
    long[IPV6.NEXT_HEADER] = 60;
    for (let i = 0; i < n; i++) long[40 + 8 * i] = i === n - 1 ? 17 : 60;
    expect(view(long).checkLen()).toBe(V_UNSUPPORTED);
    long.writeUInt16BE(8 * (n - 1) + 8, IPV6.PAYLOAD_LEN);
    long[40 + 8 * (n - 2)] = 17;
    const ok = view(long, 40 + 8 * (n - 1) + 8);
    expect(ok.checkLen()).toBe(V_OK);
    expect([ok.protocol, ok.l4Offset]).toEqual([17, 40 + 8 * (n - 1)]);
  });
});

describe('Ipv6View.pseudoHeaderSum: upper-layer checksums as scapy computed them', () => {
  it('verifies TCP behind extension headers, UDP and ICMPv6', () => {
    for (const [b, proto] of [
      [EXT_TCP, 6],
      [UDP6, 17],
      [ECHO6, IPPROTO_ICMPV6],
    ] as const) {
      const v = view(b);
      expect(v.checkLen()).toBe(V_OK);
      expect(v.protocol).toBe(proto);
      expect(checksum(b, v.l4Offset, v.l4Len, v.pseudoHeaderSum(proto, v.l4Len))).toBe(0);
    }
  });

  it('a changed address breaks the sum', () => {
    const b = Buffer.from(UDP6);
    const v = view(b);
    expect(v.checkLen()).toBe(V_OK);
    v.setSrcWord(3, 3);
    expect(checksum(b, v.l4Offset, v.l4Len, v.pseudoHeaderSum(17, v.l4Len))).not.toBe(0);
  });
});

describe('Ipv6Repr', () => {
  it('round-trips a real fixed header', () => {
    const r = Ipv6Repr.parse(view(UDP6));
    expect([r.nextHeader, r.hopLimit, r.payloadLen, r.trafficClass, r.flowLabel]).toEqual([17, 64, 13, 0, 0]);
    const out = Buffer.alloc(40);
    r.emit(out, 0);
    expect(out.toString('hex')).toBe(UDP6.subarray(0, 40).toString('hex'));
    const e = Ipv6Repr.parse(view(EXT_TCP));
    const out2 = Buffer.alloc(40);
    e.emit(out2, 0);
    expect(out2.toString('hex')).toBe(EXT_TCP.subarray(0, 40).toString('hex'));
  });

  it('refuses to parse a malformed packet', () => {
    expect(() => Ipv6Repr.parse(view(UDP6, 20))).toThrow(InvalidError);
  });
});

describe('IPv6 text (inet_pton / glibc inet_ntop / %pI6)', () => {
  const hex = (s: string) => Buffer.from(parseIpv6(s) ?? []).toString('hex');

  it('parses what inet_pton accepts', () => {
    expect(hex('2001:db8::1')).toBe('20010db8000000000000000000000001');
    expect(hex('::')).toBe('00000000000000000000000000000000');
    expect(hex('::1')).toBe('00000000000000000000000000000001');
    expect(hex('1::')).toBe('00010000000000000000000000000000');
    expect(hex('FE80::0001:0:0:2')).toBe('fe800000000000000001000000000002');
    expect(hex('1:2:3:4:5:6:7:8')).toBe('00010002000300040005000600070008');
    expect(hex('1:2:3:4:5:6:7::')).toBe('00010002000300040005000600070000');
    expect(hex('::ffff:192.0.2.1')).toBe('00000000000000000000ffffc0000201');
    expect(hex('1:2:3:4:5:6:1.2.3.4')).toBe('00010002000300040005000601020304');
    expect(hex('64:ff9b::10.0.0.1')).toBe('0064ff9b00000000000000000a000001');
  });

  it('refuses what inet_pton refuses', () => {
    for (const bad of [
      '',
      ':',
      ':::',
      '1:::2',
      ':1',
      '1:',
      '1::2::3',
      '1:2:3:4:5:6:7',
      '1:2:3:4:5:6:7:8:9',
      '1:2:3:4:5:6:7:8::',
      '12345::',
      'g::',
      '::1.2.3',
      '::1.2.3.256',
      '::01.2.3.4',
      '1.2.3.4',
      '::1.2.3.4:5',
      '[::1]',
      'fe80::1%eth0',
      '2001:db8::/32',
    ])
      expect(parseIpv6(bad), bad).toBeNull();
    expect(isValidIpv6('2001:db8::1')).toBe(true);
    expect(() => ipv6ToBytes('nope')).toThrow(InvalidError);
  });

  it('formats as glibc inet_ntop does', () => {
    const f = (s: string) => formatIpv6(ipv6ToBytes(s));
    expect(f('2001:0db8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(f('::')).toBe('::');
    expect(f('::1')).toBe('::1');
    expect(f('1::')).toBe('1::');
    // A lone zero group is not compressed; the first of two equal runs is.
    expect(f('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
    expect(f('2001:0:0:1:0:0:1:1')).toBe('2001::1:0:0:1:1');
    expect(f('2001:0:0:1:0:0:0:1')).toBe('2001:0:0:1::1');
    expect(f('FE80::ABCD')).toBe('fe80::abcd');
    // IPv4-mapped and IPv4-compatible addresses end in a dotted quad; other embeddings do not.
    expect(f('::ffff:192.0.2.1')).toBe('::ffff:192.0.2.1');
    expect(f('::192.0.2.1')).toBe('::192.0.2.1');
    expect(f('::ffff:0:0')).toBe('::ffff:0.0.0.0');
    expect(f('64:ff9b::192.0.2.1')).toBe('64:ff9b::c000:201');
    expect(f('::1:ffff:192.0.2.1')).toBe('::1:ffff:c000:201');
  });

  it('formats as the kernel %pI6 does, at an offset', () => {
    const b = Buffer.concat([Buffer.from([0xee, 0xee]), Buffer.from(ipv6ToBytes('2001:db8::a:1'))]);
    expect(formatIpv6Full(b, 2)).toBe('2001:0db8:0000:0000:0000:0000:000a:0001');
    expect(formatIpv6(b, 2)).toBe('2001:db8::a:1');
  });
});

describe('IPv6 for the schedulers and persistence', () => {
  it('folds the four words by XOR (ip6[0] ^ ip6[1] ^ ip6[2] ^ ip6[3], host order)', () => {
    expect(ipv6Fold(ipv6ToBytes('2001:db8::1'))).toBe((0x20010db8 ^ 1) >>> 0);
    expect(ipv6Fold(ipv6ToBytes('ffff:ffff:0:1:8000::2'))).toBe((0xffffffff ^ 1 ^ 0x80000000 ^ 2) >>> 0);
    expect(ipv6Fold(ipv6ToBytes('::'))).toBe(0);
  });

  it('cuts an address to a prefix length', () => {
    const a = ipv6ToBytes('2001:db8:abcd:ef12:3456:789a:bcde:f012');
    const out = new Uint8Array(16);
    const cut = (plen: number) => {
      ipv6Prefix(a, 0, plen, out);
      return formatIpv6(out);
    };
    expect(cut(128)).toBe('2001:db8:abcd:ef12:3456:789a:bcde:f012');
    expect(cut(64)).toBe('2001:db8:abcd:ef12::');
    expect(cut(56)).toBe('2001:db8:abcd:ef00::');
    expect(cut(50)).toBe('2001:db8:abcd:c000::');
    expect(cut(1)).toBe('::');
    expect(cut(0)).toBe('::');
  });
});
