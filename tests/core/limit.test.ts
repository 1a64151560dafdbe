import { limitConcurrency } from '../../src/core/limit';

describe('limitConcurrency', () => {
  test('never runs more than n calls at once, runs all of them in order of arrival, and passes results and errors through', async () => {
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const f = limitConcurrency(2, async (i: number) => {
      started.push(i);
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5 + ((i * 7) % 5)));
      running--;
      if (i === 3) throw new Error('three');
      return i * 10;
    });
    const results = await Promise.allSettled([0, 1, 2, 3, 4, 5, 6].map(f));
    expect(peak).toBe(2);
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([0, 10, 20, 'three', 40, 50, 60]);
  });

  test('a synchronous throw is a rejection and frees the slot', async () => {
    const f = limitConcurrency(1, (i: number) => {
      if (i === 0) throw new Error('sync');
      return Promise.resolve(i);
    });
    await expect(f(0)).rejects.toThrow('sync');
    await expect(f(1)).resolves.toBe(1);
  });

  test('rejects a bad limit', () => {
    expect(() => limitConcurrency(0, async () => 1)).toThrow(/concurrency/);
  });
});
