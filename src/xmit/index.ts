// Transmitters indexed by forwarding method (IP_VS_CONN_F_FWD_MASK value): a connection stores
// its method and the engine calls TRANSMITTERS[method] with no per-packet switch.

import { FWD_BYPASS, FWD_DROUTE, FWD_LOCALNODE, FWD_MASQ, FWD_TUNNEL } from '../ip-vs';
import type { Transmitter } from './common';
import { dr } from './dr';
import { nat } from './nat';
import { tunnel } from './tunnel';
import { unsupported } from './unsupported';

export const TRANSMITTERS: readonly Transmitter[] = (() => {
  const t: Transmitter[] = [];
  t[FWD_MASQ] = nat;
  t[FWD_LOCALNODE] = unsupported;
  t[FWD_TUNNEL] = tunnel;
  t[FWD_DROUTE] = dr;
  t[FWD_BYPASS] = unsupported;
  return t;
})();
