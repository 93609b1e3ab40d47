// Every scheduler lvs-ts knows, by name. Adding one is a new file in this folder and a line here.
// The order is ipvsadm's SCHEDULERS list, then twos (kernel and keepalived only).

import type { Scheduler } from '../ip-vs';
import { dh } from './dh';
import { fo } from './fo';
import { lblc } from './lblc';
import { lblcr } from './lblcr';
import { lc } from './lc';
import { mh } from './mh';
import { nq } from './nq';
import { ovf } from './ovf';
import { rr } from './rr';
import { sed } from './sed';
import { sh } from './sh';
import { twos } from './twos';
import { wlc } from './wlc';
import { wrr } from './wrr';

const SCHEDULERS: readonly Scheduler[] = [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos];

const BY_NAME: ReadonlyMap<string, Scheduler> = new Map(SCHEDULERS.map((s) => [s.name, s]));

/** The scheduler registered under `name` (exact, as `ipvsadm -s` spells it), or undefined. */
export function getScheduler(name: string): Scheduler | undefined {
  return BY_NAME.get(name);
}

/** The registered names, in registration order. */
export function schedulerNames(): string[] {
  return SCHEDULERS.map((s) => s.name);
}
