import { Rng } from '../../src/core/random';
import { PixelPool } from '../../src/pipeline/pixel-pool';

describe('PixelPool', () => {
  test('a buffer given back is the one taken next; copy copies', () => {
    const pool = new PixelPool(4);
    const a = pool.take();
    const b = pool.take();
    expect(pool.allocated).toBe(2);
    pool.give(a);
    expect(pool.take()).toBe(a);
    const c = pool.copy(Float32Array.from([1, -1, 0.5, 0.25]));
    expect(c).not.toBe(a);
    expect(c).not.toBe(b);
    expect(Array.from(c)).toEqual([1, -1, 0.5, 0.25]);
    expect(pool.allocated).toBe(3);
  });

  test('allocated equals the most buffers out at once over a long random run (bounded, not the number of takes)', () => {
    const rng = new Rng(6);
    const pool = new PixelPool(3);
    const out: Float32Array[] = [];
    let most = 0;
    let takes = 0;
    for (let step = 0; step < 20000; step++) {
      if (out.length < 50 && (out.length === 0 || rng.int(2) === 0)) {
        out.push(pool.take());
        takes++;
        most = Math.max(most, out.length);
      } else {
        pool.give(out.splice(rng.int(out.length), 1)[0]);
      }
    }
    expect(takes).toBeGreaterThan(5000);
    expect(pool.allocated).toBe(most);
    expect(most).toBeLessThanOrEqual(50);
  });

  test('bad buffers and sizes are refused by name', () => {
    const pool = new PixelPool(4);
    expect(() => pool.give(new Float32Array(5))).toThrow('Expected a Float32Array of 4 floats from this pool for buffer');
    expect(() => pool.copy(new Float32Array(3))).toThrow('Expected 4 floats for pixels');
    expect(() => new PixelPool(0)).toThrow(/size/);
  });
});
