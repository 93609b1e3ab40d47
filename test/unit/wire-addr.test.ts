import { describe, expect, it } from 'vitest';
import { InvalidError } from '../../src/errors';
import { inetAton, ipToU32, isValidIpv4, u32ToIp } from '../../src/wire/addr';
import * as verdict from '../../src/wire/verdict';

describe('ipToU32 / u32ToIp', () => {
  it.each([
    ['0.0.0.0', 0],
    ['10.0.0.1', 0x0a000001],
    ['192.168.0.1', 0xc0a80001],
    ['255.255.255.255', 0xffffffff],
    ['128.0.0.0', 0x80000000],
  ])('%s <-> %d, an unsigned host-order number', (s, n) => {
    expect(ipToU32(s)).toBe(n);
    expect(ipToU32(s)).toBeGreaterThanOrEqual(0);
    expect(u32ToIp(n)).toBe(s);
  });

  it('u32ToIp accepts a signed 32-bit value for the same address', () => {
    expect(u32ToIp(0xc0a80001 | 0)).toBe('192.168.0.1');
  });

  it.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.0.0.1',
    '1.2.3.-4',
    '01.2.3.4',
    '1.2.3.4 ',
    ' 1.2.3.4',
    'a.b.c.d',
    '1..3.4',
    '::1',
    '1.2.3.1000',
  ])('rejects %j', (s) => {
    expect(isValidIpv4(s)).toBe(false);
    expect(() => ipToU32(s)).toThrow(InvalidError);
  });

  it('accepts what it prints', () => {
    for (const s of ['1.2.3.4', '0.0.0.0', '100.64.0.10']) expect(isValidIpv4(s)).toBe(true);
  });
});

describe('inetAton: glibc inet_aton, the looser syntax of ipvsadm command lines', () => {
  it.each([
    ['1.2.3.4', 0x01020304],
    ['10.1', 0x0a000001],
    ['10.1.2', 0x0a010002],
    ['10.1.65535', 0x0a01ffff],
    ['167772161', 0x0a000001],
    ['0x0a000001', 0x0a000001],
    ['0X0A.0x1.0.1', 0x0a010001],
    ['012.0.0.1', 0x0a000001],
    ['0', 0],
    ['255.255.255.255', 0xffffffff],
    ['1.2.3.4\tanything', 0x01020304],
  ])('reads %j as %d', (s, n) => {
    expect(inetAton(s)).toBe(n);
  });

  it.each([
    '',
    ' 1.2.3.4',
    '1.2.3.4x',
    '1.2.3.4.5',
    '256.1.1.1',
    '1.256.0',
    '1.2.65536',
    '4294967296',
    '09',
    '0x',
    '-1',
    '1..2',
  ])('rejects %j', (s) => {
    expect(inetAton(s)).toBeNull();
  });
});

describe('wire verdicts', () => {
  it('numbers each verdict as its index in WIRE_VERDICT_NAMES', () => {
    const table: [number, string][] = [
      [verdict.V_OK, 'ok'],
      [verdict.V_TRUNCATED, 'truncated'],
      [verdict.V_BAD_VERSION, 'bad_version'],
      [verdict.V_BAD_IHL, 'bad_ihl'],
      [verdict.V_BAD_TOTAL_LEN, 'bad_total_len'],
      [verdict.V_BAD_CHECKSUM, 'bad_checksum'],
      [verdict.V_BAD_DATA_OFFSET, 'bad_data_offset'],
      [verdict.V_UNSUPPORTED, 'unsupported'],
    ];
    for (const [i, [v, name]] of table.entries()) {
      expect(v).toBe(i);
      expect(verdict.WIRE_VERDICT_NAMES[v]).toBe(name);
    }
    expect(verdict.WIRE_VERDICT_NAMES.length).toBe(verdict.WIRE_VERDICT_COUNT);
    expect(verdict.WIRE_VERDICT_COUNT).toBe(table.length);
  });
});
