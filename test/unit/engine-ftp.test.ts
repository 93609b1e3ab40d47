// The FTP helper through the engine (REFERENCE.md §1.8): a NAT service on port 21 inspects its
// control connections; PASV/EPSV replies and PORT/EPRT commands make the data connections
// expected, a 227 reply's real-server address is rewritten to the VIP, and the sequence
// numbers of both directions are adjusted after a length change, across retransmissions.
// DR/TUN FTP works with a persistent service (data connections find the FTP service).

import { beforeEach, describe, expect, it } from 'vitest';
import { CONN_F_OUT_SEQ, FWD_DROUTE, FWD_MASQ, SVC_F_PERSISTENT } from '../../src/ip-vs';
import { ipToU32 } from '../../src/wire/addr';
import {
  CLIENT,
  DEV_MAC,
  DIRECTOR,
  destSpec,
  director,
  drops,
  RS_MAC,
  RS1,
  RS2,
  svcSpec,
  type TestDirector,
  VIP,
} from '../helpers/engine-lab';
import { decodePacket, expectValidPacket } from '../helpers/packet-assert';
import { packet } from '../helpers/packet-builder';

const CPORT = 40000;

/** Client → VIP:21 (or another port). */
function fromClient(flags: string, seq: number, ack: number, text = '', dport = 21, sport = CPORT): Buffer {
  return packet()
    .ipv4({ src: CLIENT, dst: VIP, ttl: 63 })
    .tcp({ sport, dport, flags, seq, ack })
    .payload(Buffer.from(text))
    .build();
}

/** Real server → client, from port 21 (or another). */
function fromServer(rs: string, flags: string, seq: number, ack: number, text = '', sport = 21, dport = CPORT): Buffer {
  return packet()
    .ipv4({ src: rs, dst: CLIENT, ttl: 64 })
    .tcp({ sport, dport, flags, seq, ack })
    .payload(Buffer.from(text))
    .build();
}

function one(out: Buffer[]) {
  expect(out).toHaveLength(1);
  const p = expectValidPacket(out[0]);
  return { ...p, text: p.payload.toString() };
}

function conns(d: TestDirector): string[] {
  return d
    .connections()
    .map((c) => `${c.state} ${c.caddr}:${c.cport} ${c.vaddr}:${c.vport} ${c.daddr}:${c.dport}`)
    .sort();
}

describe('FTP helper on a NAT service', () => {
  let d: TestDirector;
  let rs: string;

  /** A control connection in ESTABLISHED: returns the RS it went to. */
  function control(): string {
    const syn = one(d.send(fromClient('S', 1000, 0)));
    d.send(fromServer(syn.dst, 'SA', 5000, 1001));
    d.send(fromClient('A', 1001, 5001));
    return syn.dst;
  }

  beforeEach(async () => {
    d = director();
    const key = svcSpec(VIP, 21, { sched: 'rr' });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS1, 21, { fwd: FWD_MASQ }));
    await d.balancer.addDest(key, destSpec(RS2, 21, { fwd: FWD_MASQ }));
    rs = control();
  });

  it('PASV: rewrites the 227 address to the VIP, expects the data connection, fixes seq and ack after', () => {
    one(d.send(fromClient('PA', 1001, 5001, 'PASV\r\n')));
    const reply = '227 Entering Passive Mode (172,16,0,2,117,48).\r\n';
    const out = one(d.send(fromServer(rs, 'PA', 5001, 1007, reply)));
    expect(out.text).toBe('227 Entering Passive Mode (192,168,0,1,117,48).\r\n');
    expect([out.src, out.sport, out.seq]).toEqual([VIP, 21, 5001]);
    expect(conns(d)).toContain(`LISTEN ${CLIENT}:0 ${VIP}:30000 ${RS2}:30000`);
    // One byte longer on the wire: the client acks 5001 + 50, the server must see 5001 + 49.
    const ack = one(d.send(fromClient('A', 1007, 5001 + reply.length + 1)));
    expect(ack.ack).toBe(5001 + reply.length);
    // The server's next segment moves up by one.
    const next = one(d.send(fromServer(rs, 'PA', 5001 + reply.length, 1007, '150 Here\r\n')));
    expect(next.seq).toBe(5001 + reply.length + 1);
    // A retransmitted 227 is rewritten again, at its old place, without a second shift.
    const again = one(d.send(fromServer(rs, 'PA', 5001, 1007, reply)));
    expect([again.seq, again.text.length]).toEqual([5001, reply.length + 1]);
    const later = one(d.send(fromServer(rs, 'PA', 5001 + reply.length + 10, 1007, '226 Done\r\n')));
    expect(later.seq).toBe(5001 + reply.length + 10 + 1);

    // The client's data connection, from any port, goes to the real server's data port.
    const data = one(d.send(fromClient('S', 9000, 0, '', 30000, 41000)));
    expect([data.dst, data.dport, data.sport]).toEqual([RS2, 30000, 41000]);
    expect(conns(d)).toContain(`SYN_RECV ${CLIENT}:41000 ${VIP}:30000 ${RS2}:30000`);
    const dataReply = one(d.send(fromServer(RS2, 'SA', 7000, 9001, '', 30000, 41000)));
    expect([dataReply.src, dataReply.sport]).toEqual([VIP, 30000]);
    expect(d.engine.ftp.counts.pasv).toBe(2);
    expect(conns(d).filter((x) => x.includes(':30000'))).toHaveLength(1);
    const c = d.engine.conns.lookupIn(6, ipToU32(CLIENT), CPORT, ipToU32(VIP), 21);
    expect(d.engine.conns.flags[c] & CONN_F_OUT_SEQ).toBe(CONN_F_OUT_SEQ);
  });

  it('EPSV: the 229 reply is left alone and the data connection expected on its port', () => {
    d.send(fromClient('PA', 1001, 5001, 'EPSV\r\n'));
    const reply = '229 Entering Extended Passive Mode (|||30001|)\r\n';
    const out = one(d.send(fromServer(rs, 'PA', 5001, 1007, reply)));
    expect(out.text).toBe(reply);
    expect(conns(d)).toContain(`LISTEN ${CLIENT}:0 ${VIP}:30001 ${rs}:30001`);
    expect(one(d.send(fromClient('S', 9000, 0, '', 30001, 41001))).dst).toBe(rs);
  });

  it('a 227 without a preceding PASV is not touched', () => {
    const reply = '227 Entering Passive Mode (172,16,0,2,117,48).\r\n';
    expect(one(d.send(fromServer(rs, 'PA', 5001, 1001, reply))).text).toBe(reply);
    expect(conns(d)).toHaveLength(1);
  });

  it("PORT and EPRT: the real server's connection from port 20 is translated to come from the VIP", () => {
    const port = one(d.send(fromClient('PA', 1001, 5001, 'PORT 192,168,0,2,200,10\r\n')));
    expect(port.text).toBe('PORT 192,168,0,2,200,10\r\n');
    expect(conns(d)).toContain(`LISTEN ${CLIENT}:51210 ${VIP}:20 ${rs}:20`);
    const syn = one(d.send(fromServer(rs, 'S', 100, 0, '', 20, 51210)));
    expect([syn.src, syn.sport, syn.dst, syn.dport]).toEqual([VIP, 20, CLIENT, 51210]);
    const synAck = one(d.send(fromClient('SA', 300, 101, '', 20, 51210)));
    expect([synAck.dst, synAck.dport]).toEqual([rs, 20]);

    d.send(fromClient('PA', 1026, 5001, 'EPRT |1|192.168.0.2|51211|\r\n'));
    expect(conns(d)).toContain(`LISTEN ${CLIENT}:51211 ${VIP}:20 ${rs}:20`);
    expect(d.engine.ftp.counts).toMatchObject({ port: 1, eprt: 1 });
  });

  it('keeps the control connection while its data connections live, and drops malformed commands', () => {
    d.send(fromClient('PA', 1001, 5001, 'PORT 999,1,1,1,1,1\r\n'));
    d.send(fromClient('PA', 1021, 5001, 'PORT 192,168,0,2,200,11\r\n'));
    expect(conns(d)).toHaveLength(2);
    // The control connection's ESTABLISHED timeout is 900 s; the data one's LISTEN 120 s.
    d.send(fromClient('R', 1046, 0));
    d.advance(11); // the control connection (CLOSE, 10 s) is due, but controls the data one
    expect(conns(d)).toHaveLength(2);
    d.advance(120); // the data connection's LISTEN timeout ran out: it is gone
    expect(conns(d)).toEqual([`CLOSE ${CLIENT}:${CPORT} ${VIP}:21 ${rs}:21`]);
    d.advance(11);
    expect(conns(d)).toEqual([]);
    expect(drops(d)).toEqual({});
  });

  it('binds only to the FTP ports: another NAT service carries PASV replies unchanged', async () => {
    const key = svcSpec(VIP, 2121, { sched: 'rr' });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS1, 2121, { fwd: FWD_MASQ }));
    d.send(fromClient('S', 1, 0, '', 2121, 45000));
    d.send(fromServer(RS1, 'SA', 1, 2, '', 2121, 45000));
    d.send(fromClient('A', 2, 2, '', 2121, 45000));
    d.send(fromClient('PA', 2, 2, 'PASV\r\n', 2121, 45000));
    const reply = '227 Entering Passive Mode (172,16,0,1,117,48).\r\n';
    expect(one(d.send(fromServer(RS1, 'PA', 2, 8, reply, 2121, 45000))).text).toBe(reply);
  });
});

describe('FTP through DR with persistence', () => {
  it('sends the data connections of a client to the real server of its control connection', async () => {
    const d = director();
    for (const [ip, mac] of [
      [RS1, RS_MAC],
      [RS2, Buffer.from([2, 0, 0, 0, 0, 2])],
    ] as const) {
      d.host.paths.set(ip, { dev: 'eth1', src: ipToU32(DIRECTOR), mtu: 1500, devMac: DEV_MAC, mac });
    }
    const key = svcSpec(VIP, 21, { sched: 'rr', flags: SVC_F_PERSISTENT, timeout: 360 });
    await d.balancer.addService(key);
    await d.balancer.addDest(key, destSpec(RS1, 21, { fwd: FWD_DROUTE }));
    await d.balancer.addDest(key, destSpec(RS2, 21, { fwd: FWD_DROUTE }));
    const to = (p: Buffer) => d.send(p)[0].subarray(0, 6).toString('hex');
    const first = to(fromClient('S', 1, 0));
    // Passive data ports (unprivileged) and the active data port 20 find the FTP service.
    expect(to(fromClient('S', 1, 0, '', 30000, 41000))).toBe(first);
    expect(to(fromClient('S', 1, 0, '', 20, 41001))).toBe(first);
    // A privileged port other than 20 does not.
    expect(d.send(fromClient('S', 1, 0, '', 443, 41002))).toHaveLength(1);
    expect(drops(d)).toEqual({ no_service: 1 });
    expect(decodePacket(d.send(fromClient('S', 1, 0, '', 30001, 41003))[0].subarray(14)).dport).toBe(30001);
  });
});
