import { describe, expect, it } from 'vitest';
import {
  FTP_ADDR_PORT_MAX_TEXT,
  FTP_EPSV,
  FTP_NOT_PASSIVE,
  FTP_PASV,
  FtpMatch,
  find227,
  find229,
  findEprt,
  findEprt6,
  findPort,
  isPasv,
  rewriteAddrPort,
  spliceText,
  writeAddrPort,
} from '../../src/app/ftp';
import { ipToU32, u32ToIp } from '../../src/wire/addr';
import { formatIpv6Words } from '../../src/wire/addr6';
import { mulberry32 } from '../helpers/prng';

type Finder = (buf: Uint8Array, off: number, len: number, out: FtpMatch) => boolean;

const FINDERS: [string, Finder][] = [
  ['findPort', findPort],
  ['findEprt', findEprt],
  ['find227', find227],
  ['find229', find229],
];

/**
 * A buffer whose reads outside [lo, hi) are recorded: the finders must only index the region
 * they were given (and ask for .length).
 */
function guarded(bytes: Uint8Array, lo: number, hi: number): { buf: Uint8Array; strays: number[] } {
  const strays: number[] = [];
  const buf = new Proxy(bytes, {
    get(target, key, receiver) {
      if (typeof key === 'string' && /^-?\d+$/.test(key)) {
        const i = Number(key);
        if (i < lo || i >= hi) strays.push(i);
        return target[i];
      }
      const v = Reflect.get(target, key, target);
      return typeof v === 'function' && receiver !== target ? v.bind(target) : v;
    },
  });
  return { buf, strays };
}

const PAD = 'XX\r\n';

/** `text` framed by junk on both sides (which completes or extends it if a finder reads past). */
function framed(text: string, after = '9\r\n'): { buf: Uint8Array; off: number; len: number } {
  const buf = Buffer.from(PAD + text + after, 'latin1');
  return { buf, off: PAD.length, len: text.length };
}

/** Runs `find` on `text` framed in junk, checking it reads only its region; the match or null. */
function run(find: Finder, text: string, after?: string): FtpMatch | null {
  const { buf, off, len } = framed(text, after);
  const g = guarded(buf, off, off + len);
  const m = new FtpMatch();
  const found = find(g.buf, off, len, m);
  expect(g.strays).toEqual([]);
  if (!found) return null;
  expect(m.start).toBeGreaterThanOrEqual(off);
  expect(m.end).toBeLessThanOrEqual(off + len);
  return m;
}

/** The matched address text, and fields, with start/end made payload-relative. */
function summary(text: string, m: FtpMatch | null) {
  if (m === null) return null;
  const start = m.start - PAD.length;
  const end = m.end - PAD.length;
  return { addr: m.addr, port: m.port, start, end, text: text.slice(start, end), delim: m.delim };
}

function port(text: string, after?: string) {
  return summary(text, run(findPort, text, after));
}
function eprt(text: string, after?: string) {
  return summary(text, run(findEprt, text, after));
}
function r227(text: string, after?: string) {
  return summary(text, run(find227, text, after));
}
function r229(text: string, after?: string) {
  return summary(text, run(find229, text, after));
}
function pasv(text: string): number {
  const { buf, off, len } = framed(text, '\r\n');
  const g = guarded(buf, off, off + len);
  const kind = isPasv(g.buf, off, len);
  expect(g.strays).toEqual([]);
  return kind;
}

const A_192_168_1_2 = ipToU32('192.168.1.2');
const A_10_0_0_1 = ipToU32('10.0.0.1');

describe('findPort: client PORT command', () => {
  it('parses a PORT command: address, port p1*256+p2, and the range of the six numbers', () => {
    expect(port('PORT 192,168,1,2,7,138\r\n')).toEqual({
      addr: A_192_168_1_2,
      port: 7 * 256 + 138,
      start: 5,
      end: 22,
      text: '192,168,1,2,7,138',
      delim: 0,
    });
  });

  it('is case-insensitive and accepts several spaces', () => {
    expect(port('port 10,0,0,1,4,1\r\n')?.port).toBe(1025);
    expect(port('PoRt 10,0,0,1,4,1\r\n')?.addr).toBe(A_10_0_0_1);
    expect(port('PORT    10,0,0,1,4,1\r\n')).toMatchObject({ start: 8, text: '10,0,0,1,4,1' });
  });

  it('accepts leading zeros up to three digits', () => {
    expect(port('PORT 010,000,000,001,004,001\r\n')).toMatchObject({ addr: A_10_0_0_1, port: 1025 });
  });

  it('needs only the CR of the CRLF (the LF may be in the next segment)', () => {
    expect(port('PORT 10,0,0,1,4,1\r', '')?.port).toBe(1025);
  });

  it('finds a PORT command on a later line of a pipelined segment', () => {
    expect(port('TYPE I\r\nPORT 10,0,0,1,4,1\r\n')).toMatchObject({ start: 13, port: 1025 });
  });

  it('rejects a PORT that is not at the start of a line', () => {
    expect(port('SUPPORT 10,0,0,1,4,1\r\n')).toBeNull();
    expect(port(' PORT 10,0,0,1,4,1\r\n')).toBeNull();
    expect(port('NOOP PORT 10,0,0,1,4,1\r\n')).toBeNull();
  });

  it.each([
    ['no space', 'PORT10,0,0,1,4,1\r\n'],
    ['a tab instead of a space', 'PORT\t10,0,0,1,4,1\r\n'],
    ['a number above 255', 'PORT 256,0,0,1,4,1\r\n'],
    ['a port byte above 255', 'PORT 10,0,0,1,4,256\r\n'],
    ['four digits', 'PORT 0010,0,0,1,4,1\r\n'],
    ['five numbers', 'PORT 10,0,0,1,4\r\n'],
    ['seven numbers', 'PORT 10,0,0,1,4,1,2\r\n'],
    ['an empty field', 'PORT 10,,0,1,4,1\r\n'],
    ['a trailing comma', 'PORT 10,0,0,1,4,1,\r\n'],
    ['a space before CR', 'PORT 10,0,0,1,4,1 \r\n'],
    ['a bare LF', 'PORT 10,0,0,1,4,1\n'],
    ['no terminator at all', 'PORT 10,0,0,1,4,1'],
    ['spaces inside', 'PORT 10, 0,0,1,4,1\r\n'],
    ['a negative number', 'PORT -10,0,0,1,4,1\r\n'],
    ['port 0', 'PORT 10,0,0,1,0,0\r\n'],
    ['a different command', 'PORX 10,0,0,1,4,1\r\n'],
    ['an empty payload', ''],
  ])('rejects %s', (_name, text) => {
    expect(port(text)).toBeNull();
  });

  it('rejects every truncation of a valid command short of the CR', () => {
    const text = 'PORT 192,168,1,2,7,138\r\n';
    for (let n = 0; n < text.indexOf('\r') + 1; n++) expect(port(text.slice(0, n), '\r\n')).toBeNull();
    expect(port(text.slice(0, text.indexOf('\r') + 1), '')).not.toBeNull();
  });

  it('rejects huge digit strings without reading them as numbers', () => {
    expect(port(`PORT ${'9'.repeat(10000)},0,0,1,4,1\r\n`)).toBeNull();
    expect(port(`PORT 1${'0'.repeat(400)},0,0,1,4,1\r\n`)).toBeNull();
    expect(port(`PORT 10,0,0,1,4,${'1'.repeat(30)}\r\n`)).toBeNull();
  });

  it('rejects binary junk around and inside the keyword', () => {
    expect(port('\x00\xffPORT 10,0,0,1,4,1\r\n')).toBeNull();
    expect(port('PO\x00RT 10,0,0,1,4,1\r\n')).toBeNull();
    expect(port('PORT 10,0\x00,0,1,4,1\r\n')).toBeNull();
    expect(port('\x00\xff\r\nPORT 10,0,0,1,4,1\r\n')?.port).toBe(1025);
  });
});

describe('findEprt: client EPRT command (RFC 2428)', () => {
  it('parses the RFC 2428 example: address, port, delimiter and the address+port range', () => {
    expect(eprt('EPRT |1|132.235.1.2|6275|\r\n')).toEqual({
      addr: ipToU32('132.235.1.2'),
      port: 6275,
      start: 8,
      end: 24,
      text: '132.235.1.2|6275',
      delim: 0x7c,
    });
  });

  it('takes the delimiter from the first character after the space(s)', () => {
    expect(eprt('EPRT !1!10.0.0.1!21!\r\n')).toMatchObject({ addr: A_10_0_0_1, port: 21, delim: 0x21 });
    expect(eprt('eprt   ~1~10.0.0.1~65535~\r\n')).toMatchObject({ port: 65535, delim: 0x7e, start: 10 });
  });

  it.each([
    ['IPv6 (net-prt 2)', 'EPRT |2|1080::8:800:200C:417A|5282|\r\n'],
    ['an unknown net-prt', 'EPRT |3|10.0.0.1|21|\r\n'],
    ['an empty net-prt', 'EPRT ||10.0.0.1|21|\r\n'],
    ['a digit delimiter', 'EPRT 515105.0.0.1521\r\n'],
    ['a dot delimiter', 'EPRT .1.10.0.0.1.21.\r\n'],
    ['a space delimiter', 'EPRT  1 10.0.0.1 21 \r\n'],
    ['a control-character delimiter', 'EPRT \x011\x0110.0.0.1\x0121\x01\r\n'],
    ['mismatched delimiters', 'EPRT |1|10.0.0.1!21|\r\n'],
    ['an octet above 255', 'EPRT |1|10.0.0.256|21|\r\n'],
    ['three octets', 'EPRT |1|10.0.1|21|\r\n'],
    ['five octets', 'EPRT |1|10.0.0.1.2|21|\r\n'],
    ['port 0', 'EPRT |1|10.0.0.1|0|\r\n'],
    ['port 65536', 'EPRT |1|10.0.0.1|65536|\r\n'],
    ['a six-digit port', 'EPRT |1|10.0.0.1|000021|\r\n'],
    ['no port', 'EPRT |1|10.0.0.1||\r\n'],
    ['a missing final delimiter', 'EPRT |1|10.0.0.1|21\r\n'],
    ['no CR', 'EPRT |1|10.0.0.1|21|\n'],
    ['no space', 'EPRT|1|10.0.0.1|21|\r\n'],
    ['a hostname', 'EPRT |1|example.com|21|\r\n'],
  ])('rejects %s', (_name, text) => {
    expect(eprt(text)).toBeNull();
  });

  it('rejects every truncation of a valid command short of the CR', () => {
    const text = 'EPRT |1|132.235.1.2|6275|\r\n';
    for (let n = 0; n <= text.indexOf('\r'); n++) expect(eprt(text.slice(0, n), '\r\n')).toBeNull();
    expect(eprt(text.slice(0, text.indexOf('\r') + 1), '')).not.toBeNull();
  });
});

describe('findEprt6: client EPRT command over IPv6 (RFC 2428 net-prt 2)', () => {
  const eprt6 = (text: string) => {
    const b = Buffer.from(text, 'latin1');
    const m = new FtpMatch();
    if (!findEprt6(b, 0, b.length, m)) return null;
    return { addr: formatIpv6Words(m.addr6), port: m.port, text: b.toString('latin1', m.start, m.end), delim: m.delim };
  };

  it('parses the RFC 2428 example', () => {
    expect(eprt6('EPRT |2|1080::8:800:200C:417A|5282|\r\n')).toEqual({
      addr: '1080::8:800:200c:417a',
      port: 5282,
      text: '1080::8:800:200C:417A|5282',
      delim: 0x7c,
    });
    expect(eprt6('NOOP\r\neprt !2!::ffff:10.0.0.1!21!\r\n')).toMatchObject({ addr: '::ffff:10.0.0.1', port: 21 });
  });

  it.each([
    ['IPv4 (net-prt 1)', 'EPRT |1|132.235.1.2|6275|\r\n'],
    ['a colon delimiter', 'EPRT :2:1080::1:21:\r\n'],
    ['a bad address', 'EPRT |2|1080:::1|21|\r\n'],
    ['an address too long', `EPRT |2|${'1'.repeat(60)}|21|\r\n`],
    ['port 0', 'EPRT |2|2001:db8::1|0|\r\n'],
    ['no CR', 'EPRT |2|2001:db8::1|21|'],
    ['an unterminated address', 'EPRT |2|2001:db8::1'],
  ])('refuses %s', (_what, text) => {
    expect(eprt6(text)).toBeNull();
  });
});

describe('find227: server reply to PASV', () => {
  it('parses the usual form: address, port and the range of the six numbers', () => {
    expect(r227('227 Entering Passive Mode (192,168,1,2,19,137).\r\n')).toEqual({
      addr: A_192_168_1_2,
      port: 19 * 256 + 137,
      start: 27,
      end: 45,
      text: '192,168,1,2,19,137',
      delim: 0,
    });
  });

  it('finds the numbers without parentheses (RFC 1123: scan for the first digit)', () => {
    expect(r227('227 Entering Passive Mode 10,0,0,1,4,1\r\n')).toMatchObject({ start: 26, port: 1025 });
    expect(r227('227 =10,0,0,1,4,1\r\n')).toMatchObject({ start: 5, addr: A_10_0_0_1 });
    expect(r227('227 10,0,0,1,4,1\r\n')).toMatchObject({ start: 4, end: 16 });
  });

  it('skips digit runs that are not six numbers, and finds the first that is', () => {
    expect(r227('227 Entering Passive Mode v2 (10,0,0,1,4,1)\r\n')).toMatchObject({ text: '10,0,0,1,4,1' });
    expect(r227('227 OK 1,2,3 then (10,0,0,1,4,1)\r\n')).toMatchObject({ text: '10,0,0,1,4,1' });
  });

  it('does not read six numbers out of the middle of a longer list', () => {
    expect(r227('227 Entering Passive Mode (1,10,0,0,1,4,1)\r\n')).toBeNull();
  });

  it('finds the reply on a later line', () => {
    expect(r227('200 Type set to I\r\n227 Entering Passive Mode (10,0,0,1,4,1)\r\n')).toMatchObject({ port: 1025 });
  });

  it('does not take numbers from the following line', () => {
    expect(r227('227 Entering Passive Mode\r\n(10,0,0,1,4,1)\r\n')).toBeNull();
  });

  it.each([
    ['another code', '226 Transfer complete (10,0,0,1,4,1)\r\n'],
    ['a four-digit code', '2270 Entering Passive Mode (10,0,0,1,4,1)\r\n'],
    ['a continuation line', '227-Entering Passive Mode (10,0,0,1,4,1)\r\n'],
    ['a number above 255', '227 Entering Passive Mode (10,0,0,300,4,1)\r\n'],
    ['four digits', '227 Entering Passive Mode (10,0,0,1,4,1000)\r\n'],
    ['five numbers', '227 Entering Passive Mode (10,0,0,1,4)\r\n'],
    ['port 0', '227 Entering Passive Mode (10,0,0,1,0,0)\r\n'],
    ['no numbers', '227 Entering Passive Mode\r\n'],
    ['a huge digit string', `227 Entering Passive Mode (${'7'.repeat(5000)},0,0,1,4,1)\r\n`],
  ])('rejects %s', (_name, text) => {
    expect(r227(text)).toBeNull();
  });

  it('rejects a reply cut right after the last number (it may go on in the next segment)', () => {
    expect(r227('227 Entering Passive Mode (10,0,0,1,4,1', '3)\r\n')).toBeNull();
    expect(r227('227 Entering Passive Mode (10,0,0,1,4,1)', '')?.port).toBe(1025);
  });

  it('rejects every truncation up to the last digit', () => {
    const text = '227 Entering Passive Mode (192,168,1,2,19,137)\r\n';
    for (let n = 0; n <= text.indexOf(')'); n++) expect(r227(text.slice(0, n), ')\r\n')).toBeNull();
  });
});

describe('find229: server reply to EPSV', () => {
  it('parses the RFC 2428 form: the port, its range and the delimiter', () => {
    expect(r229('229 Entering Extended Passive Mode (|||6446|)\r\n')).toEqual({
      addr: 0,
      port: 6446,
      start: 39,
      end: 43,
      text: '6446',
      delim: 0x7c,
    });
  });

  it('accepts another delimiter and a minimal text', () => {
    expect(r229('229 (!!!65535!)\r\n')).toMatchObject({ port: 65535, delim: 0x21 });
    expect(r229('150 Ok\r\n229 EPSV ok (|||1|)\r\n')).toMatchObject({ port: 1 });
  });

  it.each([
    ['mixed delimiters', '229 Entering Extended Passive Mode (||!6446|)\r\n'],
    ['two leading delimiters', '229 Entering Extended Passive Mode (||6446|)\r\n'],
    ['an address in the reply', '229 Entering Extended Passive Mode (|1|10.0.0.1|6446|)\r\n'],
    ['a digit delimiter', '229 Entering Extended Passive Mode (0006446)\r\n'],
    ['port 0', '229 Entering Extended Passive Mode (|||0|)\r\n'],
    ['port 65536', '229 Entering Extended Passive Mode (|||65536|)\r\n'],
    ['a six-digit port', '229 Entering Extended Passive Mode (|||006446|)\r\n'],
    ['no closing parenthesis', '229 Entering Extended Passive Mode (|||6446|\r\n'],
    ['no parenthesis', '229 Entering Extended Passive Mode |||6446|\r\n'],
    ['another code', '228 Entering Extended Passive Mode (|||6446|)\r\n'],
    ['the port on the next line', '229 Entering Extended Passive Mode\r\n(|||6446|)\r\n'],
  ])('rejects %s', (_name, text) => {
    expect(r229(text)).toBeNull();
  });

  it('rejects every truncation short of the closing parenthesis', () => {
    const text = '229 Entering Extended Passive Mode (|||6446|)\r\n';
    for (let n = 0; n <= text.indexOf(')'); n++) expect(r229(text.slice(0, n), ')\r\n')).toBeNull();
  });
});

describe('isPasv: passive-mode requests', () => {
  it.each([
    ['PASV\r\n', FTP_PASV],
    ['pasv\r\n', FTP_PASV],
    ['PASV\r', FTP_PASV],
    ['EPSV\r\n', FTP_EPSV],
    ['ePsV\r\n', FTP_EPSV],
    ['EPSV 1\r\n', FTP_EPSV],
    ['EPSV   1\r\n', FTP_EPSV],
    ['TYPE I\r\nPASV\r\n', FTP_PASV],
    ['EPSV 2\r\n', FTP_NOT_PASSIVE],
    ['EPSV ALL\r\n', FTP_NOT_PASSIVE],
    ['EPSV 1 \r\n', FTP_NOT_PASSIVE],
    ['EPSV 12\r\n', FTP_NOT_PASSIVE],
    ['PASV', FTP_NOT_PASSIVE],
    ['PASV \r\n', FTP_NOT_PASSIVE],
    ['PASVX\r\n', FTP_NOT_PASSIVE],
    ['XPASV\r\n', FTP_NOT_PASSIVE],
    ['NOOP PASV\r\n', FTP_NOT_PASSIVE],
    ['PAS', FTP_NOT_PASSIVE],
    ['', FTP_NOT_PASSIVE],
    ['\x00\x01\xfe\xff', FTP_NOT_PASSIVE],
  ])('%j -> %i', (text, kind) => {
    expect(pasv(text)).toBe(kind);
  });

  it.each([
    ['EPSV\r\n', FTP_EPSV],
    ['EPSV 2\r\n', FTP_EPSV],
    ['EPSV 1\r\n', FTP_NOT_PASSIVE],
    ['PASV\r\n', FTP_NOT_PASSIVE],
    ['EPSV ALL\r\n', FTP_NOT_PASSIVE],
  ])('on an IPv6 connection %j -> %i', (text, kind) => {
    const b = Buffer.from(text, 'latin1');
    expect(isPasv(b, 0, b.length, true)).toBe(kind);
  });
});

describe('region bounds', () => {
  it('the guarded buffer used by these tests does record reads outside its region', () => {
    const g = guarded(Buffer.from('abcdef'), 1, 3);
    expect([g.buf[1], g.buf[2], g.buf.length]).toEqual([0x62, 0x63, 6]);
    expect(g.strays).toEqual([]);
    expect([g.buf[0], g.buf[3]]).toEqual([0x61, 0x64]);
    expect(g.strays).toEqual([0, 3]);
  });

  it('never looks past off + len, even when the buffer goes on to complete a command', () => {
    const buf = Buffer.from('PORT 10,0,0,1,4,1\r\n', 'latin1');
    const m = new FtpMatch();
    expect(findPort(buf, 0, buf.length - 2, m)).toBe(false);
    expect(findPort(buf, 0, buf.length - 1, m)).toBe(true);
    expect(isPasv(Buffer.from('PASV\r\n'), 0, 4)).toBe(FTP_NOT_PASSIVE);
  });

  it('returns no match for a region that is not inside the buffer', () => {
    const buf = Buffer.from('PORT 10,0,0,1,4,1\r\n', 'latin1');
    const m = new FtpMatch();
    for (const [, find] of FINDERS) {
      expect(find(buf, 0, buf.length + 1, m)).toBe(false);
      expect(find(buf, -1, 4, m)).toBe(false);
      expect(find(buf, 0, -1, m)).toBe(false);
    }
    expect(isPasv(buf, 3, buf.length)).toBe(FTP_NOT_PASSIVE);
  });

  it('fuzz: random payloads near the grammar never throw, never read outside, report ranges inside', () => {
    const next = mulberry32(0xf7b);
    const pieces = ['PORT', 'port', 'EPRT', '227 ', '229 ', 'PASV', 'EPSV', ' ', ',', '.', '|', '(', ')', '\r', '\n'];
    const m = new FtpMatch();
    let found = 0;
    for (let iter = 0; iter < 3000; iter++) {
      let text = '';
      const parts = 1 + (next() % 20);
      for (let i = 0; i < parts; i++) {
        const r = next() % 4;
        if (r === 0) text += pieces[next() % pieces.length];
        else if (r === 1) text += String(next() % 300);
        else if (r === 2) text += String.fromCharCode(next() % 256);
        else text += ['PORT 10,0,0,1,4,1\r\n', 'EPRT |1|10.0.0.1|21|\r\n', '227 (1,2,3,4,5,6)\r\n'][next() % 3];
      }
      const bytes = Buffer.from(
        `${String.fromCharCode(next() % 256)}${text}${String.fromCharCode(next() % 256)}`,
        'latin1',
      );
      const off = 1;
      const len = Math.max(0, bytes.length - 2 - (next() % 3));
      const g = guarded(bytes, off, off + len);
      for (const [, find] of FINDERS) {
        if (find(g.buf, off, len, m)) {
          found++;
          expect(m.start).toBeGreaterThanOrEqual(off);
          expect(m.end).toBeGreaterThan(m.start);
          expect(m.end).toBeLessThan(off + len);
          expect(m.port).toBeGreaterThan(0);
          expect(m.port).toBeLessThanOrEqual(0xffff);
          expect(m.addr).toBeGreaterThanOrEqual(0);
          expect(m.addr).toBeLessThanOrEqual(0xffffffff);
        }
      }
      isPasv(g.buf, off, len);
      expect(g.strays).toEqual([]);
    }
    expect(found).toBeGreaterThan(100);
  });
});

describe('writeAddrPort', () => {
  function written(addr: number, p: number): string {
    const out = Buffer.alloc(FTP_ADDR_PORT_MAX_TEXT);
    const n = writeAddrPort(out, 0, addr, p);
    return out.toString('latin1', 0, n);
  }

  it('writes h1,h2,h3,h4,p1,p2 in decimal without padding', () => {
    expect(written(A_10_0_0_1, 1025)).toBe('10,0,0,1,4,1');
    expect(written(A_192_168_1_2, 5001)).toBe('192,168,1,2,19,137');
    expect(written(0, 0)).toBe('0,0,0,0,0,0');
    expect(written(0xffffffff, 0xffff)).toBe('255,255,255,255,255,255');
    expect('255,255,255,255,255,255'.length).toBe(FTP_ADDR_PORT_MAX_TEXT);
  });

  it('writes at an offset and returns the length', () => {
    const out = Buffer.from('##############################');
    expect(writeAddrPort(out, 3, ipToU32('172.16.0.5'), 21)).toBe(15);
    expect(out.toString('latin1')).toBe(`###172,16,0,5,0,21${'#'.repeat(12)}`);
  });

  it('returns -1 and writes nothing when out is too short', () => {
    const out = Buffer.from('############');
    expect(writeAddrPort(out, 0, A_10_0_0_1, 1025)).toBe(12);
    const short = Buffer.from('###########');
    expect(writeAddrPort(short, 0, A_10_0_0_1, 1025)).toBe(-1);
    expect(short.toString('latin1')).toBe('###########');
    expect(writeAddrPort(out, 1, A_10_0_0_1, 1025)).toBe(-1);
  });

  it('round-trips through findPort, find227 and findEprt for random addresses and ports', () => {
    const next = mulberry32(2024);
    const text = Buffer.alloc(FTP_ADDR_PORT_MAX_TEXT);
    const m = new FtpMatch();
    for (let i = 0; i < 2000; i++) {
      const addr = next();
      const p = 1 + (next() % 0xffff);
      const n = writeAddrPort(text, 0, addr, p);
      const body = text.toString('latin1', 0, n);
      const cmd = Buffer.from(`PORT ${body}\r\n`, 'latin1');
      expect(findPort(cmd, 0, cmd.length, m)).toBe(true);
      expect([m.addr, m.port, m.start, m.end]).toEqual([addr, p, 5, 5 + n]);
      const reply = Buffer.from(`227 Entering Passive Mode (${body})\r\n`, 'latin1');
      expect(find227(reply, 0, reply.length, m)).toBe(true);
      expect([m.addr, m.port]).toEqual([addr, p]);
      const eprt = `${u32ToIp(addr)}|${p}`;
      const ecmd = Buffer.from(`EPRT |1|${eprt}|\r\n`, 'latin1');
      expect(findEprt(ecmd, 0, ecmd.length, m)).toBe(true);
      expect([m.addr, m.port, m.start, m.end]).toEqual([addr, p, 8, 8 + eprt.length]);
    }
  });
});

describe('spliceText', () => {
  /** A packet buffer: 4 header bytes "HDR:", the payload, then spare bytes '~' up to `size`. */
  function packet(payload: string, size: number): Buffer {
    const buf = Buffer.alloc(size, '~');
    buf.write(`HDR:${payload}`, 0, 'latin1');
    return buf;
  }

  /** The reference: string surgery. */
  function reference(payload: string, start: number, end: number, text: string): string {
    return payload.slice(0, start) + text + payload.slice(end);
  }

  it.each([
    ['grows the region and shifts the tail right', 'abcXYdef', 3, 5, 'LONGER'],
    ['shrinks the region and shifts the tail left', 'abcLONGERdef', 3, 9, 'XY'],
    ['replaces a region of the same size', 'abcXYZdef', 3, 6, '123'],
    ['inserts at an empty range', 'abcdef', 3, 3, '++'],
    ['deletes with an empty text', 'abc---def', 3, 6, ''],
    ['replaces at the very start', 'XYdef', 0, 2, 'abc'],
    ['replaces at the very end', 'abcXY', 3, 5, 'def!'],
  ])('%s', (_name, payload, start, end, text) => {
    const buf = packet(payload, 64);
    const t = Buffer.from(`##${text}##`, 'latin1');
    const newLen = spliceText(buf, 4, payload.length, 4 + start, 4 + end, t, 2, text.length, 60);
    const expected = reference(payload, start, end, text);
    expect(newLen).toBe(expected.length);
    expect(buf.toString('latin1', 0, 4 + newLen)).toBe(`HDR:${expected}`);
    // Beyond the new and old payload ends the spare bytes are untouched.
    expect(buf.toString('latin1', 4 + Math.max(newLen, payload.length))).toBe(
      '~'.repeat(64 - 4 - Math.max(newLen, payload.length)),
    );
  });

  it('refuses, leaving the buffer untouched, when the result exceeds the capacity', () => {
    const buf = packet('abcXYdef', 16);
    const before = Buffer.from(buf);
    const t = Buffer.from('LONGER');
    expect(spliceText(buf, 4, 8, 7, 9, t, 0, 6, 11)).toBe(-1); // needs 12
    expect(buf).toEqual(before);
    expect(spliceText(buf, 4, 8, 7, 9, Buffer.from('LONGERR'), 0, 7, 100)).toBe(-1); // 4 + 13 > 16 bytes
    expect(buf).toEqual(before);
    expect(spliceText(buf, 4, 8, 7, 9, t, 0, 6, 12)).toBe(12);
    expect(buf.toString('latin1')).toBe('HDR:abcLONGERdef');
  });

  it('refuses a range outside the payload or a text range outside the text', () => {
    const buf = packet('abcdef', 16);
    const before = Buffer.from(buf);
    const t = Buffer.from('xy');
    expect(spliceText(buf, 4, 6, 3, 5, t, 0, 2, 12)).toBe(-1);
    expect(spliceText(buf, 4, 6, 6, 11, t, 0, 2, 12)).toBe(-1);
    expect(spliceText(buf, 4, 6, 7, 6, t, 0, 2, 12)).toBe(-1);
    expect(spliceText(buf, 4, 6, 5, 6, t, 1, 2, 12)).toBe(-1);
    expect(spliceText(buf, 4, 20, 5, 6, t, 0, 2, 30)).toBe(-1);
    expect(buf).toEqual(before);
  });

  it('matches string surgery on random payloads, ranges and texts', () => {
    const next = mulberry32(77);
    for (let i = 0; i < 1000; i++) {
      const len = next() % 40;
      const payload = Array.from({ length: len }, () => String.fromCharCode(97 + (next() % 26))).join('');
      const a = next() % (len + 1);
      const b = a + (next() % (len - a + 1));
      const text = 'Z'.repeat(next() % 25);
      const buf = packet(payload, 4 + 70);
      const newLen = spliceText(buf, 4, len, 4 + a, 4 + b, Buffer.from(text), 0, text.length, 70);
      expect(buf.toString('latin1', 4, 4 + newLen)).toBe(reference(payload, a, b, text));
    }
  });
});

describe('rewriteAddrPort: the NAT rewrite of a 227 reply', () => {
  it('replaces the real server address with the VIP in place, growing the payload', () => {
    const reply = '227 Entering Passive Mode (10,0,0,5,19,137).\r\n';
    const buf = Buffer.alloc(20 + 80, 0);
    buf.write(reply, 20, 'latin1');
    const m = new FtpMatch();
    expect(find227(buf, 20, reply.length, m)).toBe(true);
    expect([m.addr, m.port]).toEqual([ipToU32('10.0.0.5'), 5001]);
    const vip = ipToU32('192.168.100.200');
    const newLen = rewriteAddrPort(buf, 20, reply.length, m, vip, m.port, 80);
    const expected = '227 Entering Passive Mode (192,168,100,200,19,137).\r\n';
    expect(newLen - reply.length).toBe(expected.length - reply.length);
    expect(buf.toString('latin1', 20, 20 + newLen)).toBe(expected);
    expect(find227(buf, 20, newLen, m)).toBe(true);
    expect([m.addr, m.port]).toEqual([vip, 5001]);
  });

  it('shrinks the payload when the VIP text is shorter', () => {
    const reply = '227 Entering Passive Mode (172,016,100,200,19,137)\r\n';
    const buf = Buffer.from(reply, 'latin1');
    const m = new FtpMatch();
    expect(find227(buf, 0, buf.length, m)).toBe(true);
    const newLen = rewriteAddrPort(buf, 0, buf.length, m, A_10_0_0_1, m.port, buf.length);
    expect(newLen).toBe(reply.length - 7);
    expect(buf.toString('latin1', 0, newLen)).toBe('227 Entering Passive Mode (10,0,0,1,19,137)\r\n');
  });
});
