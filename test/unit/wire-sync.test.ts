// The IPVS sync message codec (src/wire/sync.ts) against byte vectors written from the kernel's
// struct layouts (ip_vs_sync_mesg, ip_vs_sync_v4, ip_vs_sync_mesg_v0, ip_vs_sync_conn_v0).

import { describe, expect, it } from 'vitest';
import {
  appendEntry,
  beginMessage,
  decodeMessage,
  newSyncConn,
  SYNC_BAD_ENTRY,
  SYNC_BAD_SIZE,
  SYNC_OK,
  SYNC_OTHER_SYNCID,
  SYNC_SHORT,
  type SyncConn,
} from '../../src/wire/sync';
import { fromHex, toHex } from '../helpers/packet-builder';

function conn(over: Partial<SyncConn> = {}): SyncConn {
  return {
    ...newSyncConn(),
    protocol: 6,
    flags: 0x0100, // INACTIVE, masq
    state: 3, // SYN_RECV
    caddr: 0xc0a80002, // 192.168.0.2
    cport: 40000,
    vaddr: 0xc0a80001, // 192.168.0.1
    vport: 80,
    daddr: 0xac100001, // 172.16.0.1
    dport: 8080,
    fwmark: 0,
    timeout: 60,
    ...over,
  };
}

/** The v1 message of one TCP entry above, syncid 7. */
const ONE_ENTRY =
  '00 07 002c 01 01 0000' + // header: reserved, syncid, size 44, nr_conns 1, version 1, spare
  '00 06 0024' + // type v4, TCP, version 0 / size 36
  '00000100' + // flags
  '0003 9c40 0050 1f90' + // state, cport 40000, vport 80, dport 8080
  '00000000 0000003c' + // fwmark, timeout 60
  'c0a80002 c0a80001 ac100001';

function decodeAll(buf: Buffer, syncid = 0): { why: number; conns: SyncConn[] } {
  const conns: SyncConn[] = [];
  const why = decodeMessage(buf, 0, buf.length, syncid, newSyncConn(), (e) =>
    conns.push({ ...e, inSeq: { ...e.inSeq }, outSeq: { ...e.outSeq } }),
  );
  return { why, conns };
}

describe('sync v1 encoding', () => {
  it('writes the header and a 36-byte IPv4 entry byte for byte', () => {
    const buf = Buffer.alloc(100);
    let size = beginMessage(buf, 0, 7);
    size = appendEntry(buf, 0, size, conn());
    expect(size).toBe(44);
    expect(toHex(buf.subarray(0, size))).toBe(toHex(fromHex(ONE_ENTRY)));
  });

  it('adds sequence options (type 1, 24 bytes) and pads the next entry to 4 bytes', () => {
    const buf = Buffer.alloc(200, 0xee);
    let size = beginMessage(buf, 0, 1);
    const seq = conn({
      flags: 0x0600,
      inSeq: { initSeq: 1, delta: 2, previousDelta: 3 },
      outSeq: { initSeq: 0xfffffffe, delta: 0xffffffff, previousDelta: 0 },
    });
    size = appendEntry(buf, 0, size, seq);
    expect(size).toBe(8 + 36 + 2 + 24);
    expect(toHex(buf.subarray(44, 70))).toBe(
      toHex(fromHex('01 18 00000001 00000002 00000003 fffffffe ffffffff 00000000')),
    );
    expect(buf.readUInt16BE(8 + 2)).toBe(62); // ver_size: the entry's own length
    size = appendEntry(buf, 0, size, conn({ cport: 1 }));
    // 70 is padded to 72 with zeroes, then the second entry.
    expect(buf.readUInt16BE(70)).toBe(0);
    expect(size).toBe(72 + 36);
    expect(buf[4]).toBe(2);
    expect(buf.readUInt16BE(2)).toBe(108);
    const { why, conns } = decodeAll(buf.subarray(0, size));
    expect(why).toBe(SYNC_OK);
    expect(conns).toHaveLength(2);
    expect(conns[0]).toMatchObject({ hasSeq: true, inSeq: seq.inSeq, outSeq: seq.outSeq, flags: 0x0600 });
    expect(conns[1]).toMatchObject({ hasSeq: false, cport: 1 });
  });
});

describe('sync decoding', () => {
  it('reads back every field of a v1 entry', () => {
    const { why, conns } = decodeAll(fromHex(ONE_ENTRY));
    expect(why).toBe(SYNC_OK);
    expect(conns).toEqual([conn()]);
  });

  it('filters on syncid unless the backup listens with syncid 0', () => {
    expect(decodeAll(fromHex(ONE_ENTRY), 7).conns).toHaveLength(1);
    expect(decodeAll(fromHex(ONE_ENTRY), 8)).toEqual({ why: SYNC_OTHER_SYNCID, conns: [] });
  });

  it('reads the legacy v0 format (timeout 0: the backup uses its own)', () => {
    const v0 = fromHex(
      '01 05 001c' + // nr_conns 1, syncid 5, size 28
        '00 11 3039 0035 0035' + // reserved, UDP, cport 12345, vport 53, dport 53
        'c0a80002 c0a80001 ac100002' +
        '0000 0000', // flags (masq), state NORMAL
    );
    const { why, conns } = decodeAll(v0);
    expect(why).toBe(SYNC_OK);
    expect(conns).toEqual([
      conn({
        protocol: 17,
        flags: 0,
        state: 0,
        cport: 12345,
        vport: 53,
        dport: 53,
        daddr: 0xac100002,
        timeout: 0,
      }),
    ]);
  });

  it('skips entries with persistence-engine data, keeps the rest', () => {
    const buf = Buffer.alloc(300);
    let size = beginMessage(buf, 0, 0);
    // An entry with a PE name option (type 3): 36 + 2 + 3 bytes.
    size = appendEntry(buf, 0, size, conn({ cport: 1 }));
    buf[size - 36 + 3] = 36 + 5;
    buf.writeUInt16BE(36 + 5, size - 36 + 2);
    buf[size] = 3;
    buf[size + 1] = 3;
    buf.write('sip', size + 2);
    size += 5;
    buf.writeUInt16BE(size, 2);
    size = appendEntry(buf, 0, size, conn());
    const { why, conns } = decodeAll(buf.subarray(0, size));
    expect(why).toBe(SYNC_OK);
    expect(conns).toEqual([conn()]);
  });

  it.each([
    ['shorter than any header', '00 07 00', SYNC_SHORT],
    ['size field not the datagram length', ONE_ENTRY.replace('002c', '002d'), SYNC_BAD_SIZE],
    ['entry size beyond the message', ONE_ENTRY.replace('00 06 0024', '00 06 0030'), SYNC_BAD_ENTRY],
    ['nr_conns beyond the entries', ONE_ENTRY.replace('01 01 0000', '02 01 0000'), SYNC_BAD_ENTRY],
    ['unknown entry version', ONE_ENTRY.replace('00 06 0024', '00 06 1024'), SYNC_BAD_ENTRY],
    ['unknown entry type', ONE_ENTRY.replace('00 06 0024', '02 06 0024'), SYNC_BAD_ENTRY],
  ])('refuses a message with %s', (_what, hex, reason) => {
    const { why } = decodeAll(fromHex(hex));
    expect(why).toBe(reason);
  });

  it('never throws or reads outside the datagram on random bytes', () => {
    let seed = 12345;
    const rnd = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed >>> 16;
    };
    for (let i = 0; i < 5000; i++) {
      const len = rnd() % 120;
      const buf = Buffer.alloc(len);
      for (let j = 0; j < len; j++) buf[j] = rnd() & 255;
      if (len >= 4) buf.writeUInt16BE(len, 2);
      if (len >= 8 && i % 2 === 0) {
        buf[0] = 0;
        buf[5] = 1;
        buf.writeUInt16BE(0, 6);
      }
      expect(() => decodeAll(buf)).not.toThrow();
    }
  });
});

describe('sync v1 IPv6 entries (struct ip_vs_sync_v6)', () => {
  /** 2001:db8::2:40000 -> [2001:db8::1]:80 -> [fd00::10]:8080, TCP, INACTIVE masq, SYN_RECV. */
  const WORDS = [0x20010db8, 0, 0, 2, 0x20010db8, 0, 0, 1, 0xfd000000, 0, 0, 0x10];
  const V6_ENTRY =
    '00 07 0050 01 01 0000' + // header: size 80, one entry
    '01 06 0048' + // type IPv6, TCP, version 0 / size 72
    '00000100' + // flags
    '0003 9c40 0050 1f90' + // state, cport, vport, dport
    '00000000 0000003c' + // fwmark, timeout 60
    '20010db8 00000000 00000000 00000002' + // caddr
    '20010db8 00000000 00000000 00000001' + // vaddr
    'fd000000 00000000 00000000 00000010'; // daddr
  const v6conn = () => {
    const e = conn({ af: 10 });
    e.addr6 = Uint32Array.from(WORDS);
    return e;
  };

  it('writes a 72-byte IPv6 entry byte for byte, with sequence options after it', () => {
    const buf = Buffer.alloc(200);
    let size = beginMessage(buf, 0, 7);
    size = appendEntry(buf, 0, size, v6conn());
    expect(toHex(buf.subarray(0, size))).toBe(toHex(fromHex(V6_ENTRY)));
    const seq = v6conn();
    seq.flags |= 0x0400; // IN_SEQ
    seq.inSeq = { initSeq: 1, delta: 2, previousDelta: 3 };
    size = appendEntry(buf, 0, size, seq);
    expect(size).toBe(80 + 72 + 2 + 24);
    expect(buf.readUInt16BE(80 + 2)).toBe(98);
    expect(buf.subarray(80 + 72, 80 + 72 + 2).toString('hex')).toBe('0118');
  });

  it('reads an IPv6 entry: its family, its addresses as words, their folds in the IPv4 fields', () => {
    const { why, conns } = decodeAll(fromHex(V6_ENTRY));
    expect(why).toBe(SYNC_OK);
    expect(conns).toHaveLength(1);
    const e = conns[0]!;
    expect([e.af, e.protocol, e.cport, e.vport, e.dport, e.state, e.timeout]).toEqual([10, 6, 40000, 80, 8080, 3, 60]);
    expect([...e.addr6]).toEqual(WORDS);
    expect([e.caddr, e.vaddr, e.daddr]).toEqual([(0x20010db8 ^ 2) >>> 0, (0x20010db8 ^ 1) >>> 0, 0xfd000010]);
    // An IPv4 entry after it in the same message reads as IPv4 again.
    const buf = Buffer.alloc(200);
    fromHex(V6_ENTRY).copy(buf);
    const size = appendEntry(buf, 0, 80, conn());
    const both = decodeAll(buf.subarray(0, size)).conns;
    expect(both.map((c) => c.af)).toEqual([10, 2]);
  });

  it('refuses an IPv6 entry shorter than 72 bytes', () => {
    const hex = V6_ENTRY.replace('01 06 0048', '01 06 0024').replace('00 07 0050', '00 07 0050');
    expect(decodeAll(fromHex(hex)).why).toBe(SYNC_BAD_ENTRY);
  });
});
