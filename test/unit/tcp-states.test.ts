import { describe, expect, it } from 'vitest';
import {
  DEFAULT_TCP_TIMEOUTS,
  TCP_DIR_INPUT,
  TCP_DIR_INPUT_ONLY,
  TCP_DIR_OUTPUT,
  TCP_S_CLOSE,
  TCP_S_CLOSE_WAIT,
  TCP_S_ESTABLISHED,
  TCP_S_FIN_WAIT,
  TCP_S_LAST,
  TCP_S_LAST_ACK,
  TCP_S_LISTEN,
  TCP_S_NONE,
  TCP_S_SYN_RECV,
  TCP_S_SYN_SENT,
  TCP_S_SYNACK,
  TCP_S_TIME_WAIT,
  TCP_STATE_NAMES,
  tcpNextState,
  tcpStateIdx,
} from '../../src/proto/tcp-states';
import { DEFAULT_UDP_TIMEOUT, UDP_S_NORMAL, UDP_STATE_NAMES } from '../../src/proto/udp-states';

// TCP header flag bits (RFC 9293), typed here rather than imported.
const F = 0x01;
const S = 0x02;
const R = 0x04;
const P = 0x08;
const A = 0x10;
const U = 0x20;

// The normal transition table, copied by hand from REFERENCE.md §1.4 (ip_vs_proto_tcp.c
// tcp_states[]), with Part B5's correction for current kernels: an ACK in NONE (INPUT and
// INPUT_ONLY) leads to ESTABLISHED, not CLOSE (2.6.3x's table), which is what a connection that
// sloppy_tcp starts from a mid-flow ACK needs. Columns: the current state in the order below;
// each entry the expected next state.
const COLUMNS = ['NO', 'ES', 'SS', 'SR', 'FW', 'TW', 'CL', 'CW', 'LA', 'LI', 'SA'];
const EXPECTED: Record<string, Record<string, string>> = {
  INPUT: {
    syn: 'SR ES ES SR SR SR SR SR SR SR SR',
    fin: 'CL CW SS TW TW TW CL CW LA LI TW',
    ack: 'ES ES SS ES FW TW CL CW CL LI ES',
    rst: 'CL CL CL SR CL CL CL CL LA LI SR',
  },
  OUTPUT: {
    syn: 'SS ES SS SR SS SS SS SS SS LI SR',
    fin: 'TW FW SS TW FW TW CL TW LA LI TW',
    ack: 'ES ES SS ES FW TW CL CW LA ES ES',
    rst: 'CL CL SS CL CL TW CL CL CL CL CL',
  },
  INPUT_ONLY: {
    syn: 'SR ES ES SR SR SR SR SR SR SR SR',
    fin: 'CL FW SS TW FW TW CL CW LA LI TW',
    ack: 'ES ES SS ES FW TW CL CW CL LI ES',
    rst: 'CL CL CL SR CL CL CL CL LA LI CL',
  },
};

const STATE_BY_ABBREV: Record<string, number> = {
  NO: TCP_S_NONE,
  ES: TCP_S_ESTABLISHED,
  SS: TCP_S_SYN_SENT,
  SR: TCP_S_SYN_RECV,
  FW: TCP_S_FIN_WAIT,
  TW: TCP_S_TIME_WAIT,
  CL: TCP_S_CLOSE,
  CW: TCP_S_CLOSE_WAIT,
  LA: TCP_S_LAST_ACK,
  LI: TCP_S_LISTEN,
  SA: TCP_S_SYNACK,
};
const DIR_OFFSET: Record<string, number> = {
  INPUT: TCP_DIR_INPUT,
  OUTPUT: TCP_DIR_OUTPUT,
  INPUT_ONLY: TCP_DIR_INPUT_ONLY,
};
// A packet carrying exactly the event's flag (the ACK row is a pure ACK).
const EVENT_FLAGS: Record<string, number> = { syn: S, fin: F, ack: A, rst: R };

const NAME_OF: Record<number, string> = {};
for (const [abbrev, state] of Object.entries(STATE_BY_ABBREV)) NAME_OF[state] = abbrev;

const cells: [string, string, string, string, number, number, number][] = [];
for (const [dir, rows] of Object.entries(EXPECTED)) {
  for (const [event, row] of Object.entries(rows)) {
    const next = row.split(' ');
    if (next.length !== COLUMNS.length) throw new Error(`EXPECTED.${dir}.${event} has ${next.length} entries`);
    COLUMNS.forEach((from, i) => {
      cells.push([dir, event, from, next[i], DIR_OFFSET[dir], EVENT_FLAGS[event], STATE_BY_ABBREV[from]]);
    });
  }
}

describe('TCP state table (normal, REFERENCE §1.4)', () => {
  it('covers 3 directions x 4 events x 11 states', () => {
    expect(cells).toHaveLength(132);
  });

  it.each(cells)('%s %s in s%s -> s%s', (_dir, _event, _from, to, dirOffset, flags, fromState) => {
    expect(NAME_OF[tcpNextState(fromState, dirOffset, flags)]).toBe(to);
  });
});

describe('tcpStateIdx / flag precedence (rst > syn > fin > ack)', () => {
  it.each([
    ['SYN', S, 0],
    ['FIN', F, 1],
    ['ACK', A, 2],
    ['RST', R, 3],
    ['SYN|RST', S | R, 3],
    ['SYN|FIN', S | F, 0],
    ['FIN|ACK', F | A, 1],
    ['SYN|ACK', S | A, 0],
    ['RST|ACK', R | A, 3],
    ['all four', S | F | R | A, 3],
    ['PSH|ACK', P | A, 2],
    ['none', 0, -1],
    ['PSH|URG only', P | U, -1],
  ] as [string, number, number][])('%s -> event %i', (_name, flags, idx) => {
    expect(tcpStateIdx(flags)).toBe(idx);
  });

  it('SYN|RST takes the rst row (NONE on INPUT -> CLOSE, not SYN_RECV)', () => {
    expect(tcpNextState(TCP_S_NONE, TCP_DIR_INPUT, S | R)).toBe(TCP_S_CLOSE);
  });

  it('SYN|FIN takes the syn row (NONE on INPUT -> SYN_RECV, not CLOSE)', () => {
    expect(tcpNextState(TCP_S_NONE, TCP_DIR_INPUT, S | F)).toBe(TCP_S_SYN_RECV);
  });

  it('FIN|ACK takes the fin row (ESTABLISHED on INPUT -> CLOSE_WAIT, not ESTABLISHED)', () => {
    expect(tcpNextState(TCP_S_ESTABLISHED, TCP_DIR_INPUT, F | A)).toBe(TCP_S_CLOSE_WAIT);
  });

  it('a packet with none of rst/syn/fin/ack moves any state to CLOSE, in every direction', () => {
    for (const dir of [TCP_DIR_INPUT, TCP_DIR_OUTPUT, TCP_DIR_INPUT_ONLY]) {
      for (let s = 0; s < TCP_S_LAST; s++) {
        expect(tcpNextState(s, dir, 0)).toBe(TCP_S_CLOSE);
        expect(tcpNextState(s, dir, P | U)).toBe(TCP_S_CLOSE);
      }
    }
  });
});

type Step = [dir: number, flags: number, expected: number];

/** Feeds the steps to a new connection (state NONE) and checks the state after each one. */
function expectWalk(steps: Step[]): void {
  const seen: string[] = [];
  let state = TCP_S_NONE;
  for (const [dir, flags] of steps) {
    state = tcpNextState(state, dir, flags);
    seen.push(TCP_STATE_NAMES[state]);
  }
  expect(seen).toEqual(steps.map(([, , expected]) => TCP_STATE_NAMES[expected]));
}

describe('connection walks', () => {
  const IN = TCP_DIR_INPUT;
  const OUT = TCP_DIR_OUTPUT;
  const IN_ONLY = TCP_DIR_INPUT_ONLY;

  it('NAT, client closes first: handshake, data, FIN both ways', () => {
    const steps: Step[] = [
      [IN, S, TCP_S_SYN_RECV], // client SYN
      [OUT, S | A, TCP_S_SYN_RECV], // server SYN+ACK
      [IN, A, TCP_S_ESTABLISHED], // client ACK completes the handshake
      [IN, P | A, TCP_S_ESTABLISHED], // request
      [OUT, P | A, TCP_S_ESTABLISHED], // response
      [IN, F | A, TCP_S_CLOSE_WAIT], // client FIN
      [OUT, A, TCP_S_CLOSE_WAIT], // server ACKs it
      [OUT, F | A, TCP_S_TIME_WAIT], // server FIN
      [IN, A, TCP_S_TIME_WAIT], // client's last ACK
    ];
    expectWalk(steps);
  });

  it('NAT, server closes first: FIN_WAIT then TIME_WAIT', () => {
    const steps: Step[] = [
      [IN, S, TCP_S_SYN_RECV],
      [OUT, S | A, TCP_S_SYN_RECV],
      [IN, A, TCP_S_ESTABLISHED],
      [OUT, F | A, TCP_S_FIN_WAIT], // server FIN
      [IN, A, TCP_S_FIN_WAIT], // client ACKs it
      [IN, F | A, TCP_S_TIME_WAIT], // client FIN
      [OUT, A, TCP_S_TIME_WAIT], // server's last ACK
    ];
    expectWalk(steps);
  });

  it('NAT, server refuses with RST: SYN_RECV -> CLOSE', () => {
    const steps: Step[] = [
      [IN, S, TCP_S_SYN_RECV],
      [OUT, R | A, TCP_S_CLOSE],
    ];
    expectWalk(steps);
  });

  it('DR (INPUT_ONLY): only client packets, ending in FIN_WAIT', () => {
    const steps: Step[] = [
      [IN_ONLY, S, TCP_S_SYN_RECV], // client SYN
      [IN_ONLY, A, TCP_S_ESTABLISHED], // client ACK (server's SYN+ACK bypasses the director)
      [IN_ONLY, P | A, TCP_S_ESTABLISHED], // request
      [IN_ONLY, F | A, TCP_S_FIN_WAIT], // client FIN (INPUT would say CLOSE_WAIT)
      [IN_ONLY, A, TCP_S_FIN_WAIT], // client ACKs the server's FIN
    ];
    expectWalk(steps);
  });

  it('DR (INPUT_ONLY): a client RST ends an established connection in CLOSE', () => {
    const steps: Step[] = [
      [IN_ONLY, S, TCP_S_SYN_RECV],
      [IN_ONLY, A, TCP_S_ESTABLISHED],
      [IN_ONLY, R, TCP_S_CLOSE],
    ];
    expectWalk(steps);
  });
});

describe('state names and timeouts', () => {
  it('names every state as /proc/net/ip_vs_conn prints it', () => {
    expect(TCP_STATE_NAMES).toEqual([
      'NONE',
      'ESTABLISHED',
      'SYN_SENT',
      'SYN_RECV',
      'FIN_WAIT',
      'TIME_WAIT',
      'CLOSE',
      'CLOSE_WAIT',
      'LAST_ACK',
      'LISTEN',
      'SYNACK',
    ]);
    expect(TCP_STATE_NAMES).toHaveLength(TCP_S_LAST);
  });

  it('default timeouts match tcp_timeouts[] (seconds)', () => {
    const bySeconds: Record<string, number> = {};
    TCP_STATE_NAMES.forEach((name, s) => {
      bySeconds[name] = DEFAULT_TCP_TIMEOUTS[s];
    });
    expect(bySeconds).toEqual({
      NONE: 2,
      ESTABLISHED: 900,
      SYN_SENT: 120,
      SYN_RECV: 60,
      FIN_WAIT: 120,
      TIME_WAIT: 120,
      CLOSE: 10,
      CLOSE_WAIT: 60,
      LAST_ACK: 30,
      LISTEN: 120,
      SYNACK: 120,
    });
    expect(DEFAULT_TCP_TIMEOUTS).toHaveLength(TCP_S_LAST);
  });

  it('UDP has one state, named UDP, with a 300 s timeout', () => {
    expect(UDP_S_NORMAL).toBe(0);
    expect(UDP_STATE_NAMES[UDP_S_NORMAL]).toBe('UDP');
    expect(UDP_STATE_NAMES).toHaveLength(1);
    expect(DEFAULT_UDP_TIMEOUT).toBe(300);
  });
});
