// Placeholder for forwarding methods that are configured but not transmitted yet (DR and TUN
// arrive in the next increment): their packets are dropped and counted, never mis-sent.

import type { Transmitter } from './common';
import { D_FWD_UNSUPPORTED } from './verdict';

export const unsupported: Transmitter = {
  in: () => D_FWD_UNSUPPORTED,
  out: () => D_FWD_UNSUPPORTED,
};
