import { describe, expect, it } from 'vitest';
import { rr } from '../../src/sched/rr';
import {
  addDest,
  delDest,
  makeService,
  order,
  pick,
  serviceWith,
  setOverloaded,
  setWeight,
} from '../helpers/sched-fixtures';

describe('rr', () => {
  it('starts at the most recently added dest and alternates (add .1 then .2 gives .2 .1 .2 .1)', () => {
    const svc = makeService(rr);
    addDest(svc, { name: '172.16.0.1' });
    addDest(svc, { name: '172.16.0.2' });
    expect(order(svc)).toEqual(['172.16.0.2', '172.16.0.1']);
    expect(pick(svc, 6)).toEqual(['172.16.0.2', '172.16.0.1', '172.16.0.2', '172.16.0.1', '172.16.0.2', '172.16.0.1']);
  });

  it('rotates through three dests in list order, ignoring weights above 0', () => {
    const { svc } = serviceWith(rr, [
      { name: 'A', weight: 5 },
      { name: 'B', weight: 1 },
      { name: 'C', weight: 100 },
    ]);
    expect(pick(svc, 7)).toEqual(['A', 'B', 'C', 'A', 'B', 'C', 'A']);
  });

  it('skips a weight-0 (quiescent) dest', () => {
    const { svc } = serviceWith(rr, [{ name: 'A' }, { name: 'B', weight: 0 }, { name: 'C' }]);
    expect(pick(svc, 4)).toEqual(['A', 'C', 'A', 'C']);
  });

  it('skips an overloaded dest, and takes it back into the rotation once the flag clears', () => {
    const { svc, d } = serviceWith(rr, [{ name: 'A' }, { name: 'B', overloaded: true }, { name: 'C' }]);
    expect(pick(svc, 3)).toEqual(['A', 'C', 'A']);
    setOverloaded(d.B!, false);
    expect(pick(svc, 3)).toEqual(['B', 'C', 'A']);
  });

  it('returns null for a service without dests', () => {
    expect(pick(makeService(rr), 1)).toEqual([null]);
  });

  it('returns null when no dest is usable, then resumes where it stood', () => {
    const { svc, d } = serviceWith(rr, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    expect(pick(svc, 1)).toEqual(['A']);
    setWeight(svc, d.A!, 0);
    setWeight(svc, d.B!, 0);
    setOverloaded(d.C!, true);
    expect(pick(svc, 2)).toEqual([null, null]);
    setWeight(svc, d.B!, 1);
    setOverloaded(d.C!, false);
    expect(pick(svc, 3)).toEqual(['B', 'C', 'B']);
  });

  it('keeps picking the only usable dest, including when it is the one picked last', () => {
    const { svc } = serviceWith(rr, [{ name: 'A', weight: 0 }, { name: 'B' }, { name: 'C', overloaded: true }]);
    expect(pick(svc, 3)).toEqual(['B', 'B', 'B']);
  });

  it('deleting the last-picked dest continues with the dest that followed it', () => {
    const { svc, d } = serviceWith(rr, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    expect(pick(svc, 2)).toEqual(['A', 'B']);
    delDest(svc, d.B!);
    expect(pick(svc, 4)).toEqual(['C', 'A', 'C', 'A']);
  });

  it('deleting the last-picked dest when it is dests[0] continues from the new head', () => {
    const { svc, d } = serviceWith(rr, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    expect(pick(svc, 1)).toEqual(['A']);
    delDest(svc, d.A!);
    expect(pick(svc, 3)).toEqual(['B', 'C', 'B']);
  });

  it('deleting the last-picked dest when it is the list tail wraps to the head', () => {
    const { svc, d } = serviceWith(rr, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    expect(pick(svc, 3)).toEqual(['A', 'B', 'C']);
    delDest(svc, d.C!);
    expect(pick(svc, 3)).toEqual(['A', 'B', 'A']);
  });

  it('deleting a dest before the last-picked one does not disturb the rotation', () => {
    const { svc, d } = serviceWith(rr, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    expect(pick(svc, 2)).toEqual(['A', 'B']);
    delDest(svc, d.A!);
    expect(pick(svc, 3)).toEqual(['C', 'B', 'C']);
  });

  it('deleting a dest after the last-picked one just drops it from the rotation', () => {
    const { svc, d } = serviceWith(rr, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]);
    expect(pick(svc, 1)).toEqual(['A']);
    delDest(svc, d.C!);
    expect(pick(svc, 3)).toEqual(['B', 'A', 'B']);
  });

  it('a dest added mid-rotation (at the head) is reached when the rotation wraps', () => {
    const { svc } = serviceWith(rr, [{ name: 'A' }, { name: 'B' }]);
    expect(pick(svc, 1)).toEqual(['A']);
    addDest(svc, { name: 'C' });
    expect(order(svc)).toEqual(['C', 'A', 'B']);
    expect(pick(svc, 4)).toEqual(['B', 'C', 'A', 'B']);
  });

  it('a dest added before the first pick is picked first', () => {
    const { svc } = serviceWith(rr, [{ name: 'A' }, { name: 'B' }]);
    addDest(svc, { name: 'C' });
    expect(pick(svc, 3)).toEqual(['C', 'A', 'B']);
  });

  it('two services using rr keep separate positions', () => {
    const one = serviceWith(rr, [{ name: 'A' }, { name: 'B' }, { name: 'C' }]).svc;
    const two = serviceWith(rr, [{ name: 'X' }, { name: 'Y' }]).svc;
    expect(pick(one, 2)).toEqual(['A', 'B']);
    expect(pick(two, 1)).toEqual(['X']);
    expect(pick(one, 1)).toEqual(['C']);
    expect(pick(two, 2)).toEqual(['Y', 'X']);
    expect(one.schedData).not.toBe(two.schedData);
  });
});
