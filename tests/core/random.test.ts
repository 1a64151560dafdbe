import { Rng } from '../../src/core/random';

describe('Rng', () => {
  it('is reproducible from its seed and from a saved state', () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const xs = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(xs);
    const state = a.getState();
    const next = a.next();
    const c = new Rng(0);
    c.setState(state);
    expect(c.next()).toBe(next);
    expect(new Rng(8).nextUint32()).not.toBe(xs[0]);
  });

  it('has the moments of its distributions', () => {
    const rng = new Rng(1);
    const n = 100000;
    let s = 0;
    let s2 = 0;
    let u = 0;
    const counts = new Array(10).fill(0);
    for (let i = 0; i < n; i++) {
      const z = rng.normal();
      s += z;
      s2 += z * z;
      u += rng.next();
      counts[rng.int(10)]++;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.02);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.02);
    expect(Math.abs(u / n - 0.5)).toBeLessThan(0.01);
    for (const c of counts) expect(Math.abs(c / n - 0.1)).toBeLessThan(0.01);
  });
});
