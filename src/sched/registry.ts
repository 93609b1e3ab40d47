// Every scheduler lvs-ts knows, by name. Adding one is a new file in this folder and a line here.

import type { Scheduler } from '../ip-vs';
import { lc } from './lc';
import { rr } from './rr';
import { wlc } from './wlc';
import { wrr } from './wrr';

const SCHEDULERS: readonly Scheduler[] = [rr, wrr, lc, wlc];

const BY_NAME: ReadonlyMap<string, Scheduler> = new Map(SCHEDULERS.map((s) => [s.name, s]));

/** The scheduler registered under `name` (exact, as `ipvsadm -s` spells it), or undefined. */
export function getScheduler(name: string): Scheduler | undefined {
  return BY_NAME.get(name);
}

/** The registered names, in registration order. */
export function schedulerNames(): string[] {
  return SCHEDULERS.map((s) => s.name);
}
