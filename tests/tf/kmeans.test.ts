import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/random';
import { assignNearest, kmeans } from '../../src/tf/kmeans';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** n points around each of the centres (2D), shuffled; returns data and the true blob of each point. */
function blobs(centres: number[][], n: number, spread: number, rng: Rng): { data: Float32Array; label: Int32Array } {
  const order = rng.shuffle(Array.from({ length: centres.length * n }, (_, i) => i));
  const data = new Float32Array(order.length * 2);
  const label = new Int32Array(order.length);
  order.forEach((src, i) => {
    const c = Math.floor(src / n);
    label[i] = c;
    data[i * 2] = centres[c][0] + spread * rng.normal();
    data[i * 2 + 1] = centres[c][1] + spread * rng.normal();
  });
  return { data, label };
}

describe('kmeans', () => {
  const centres = [
    [0, 0],
    [10, 0],
    [0, 10],
    [10, 10],
  ];

  it.each(['random', 'kmeans++'] as const)('recovers well-separated blobs (%s seeding)', (seeding) => {
    const rng = new Rng(1);
    const { data, label } = blobs(centres, 50, 0.5, rng);
    const r = kmeans(data, 200, 2, 4, { iters: 20, seeding: seeding, rng: new Rng(seeding === 'random' ? 2 : 3) });
    // Every blob maps to one centroid, a different one per blob, close to its centre.
    const blobToCluster = new Map<number, number>();
    for (let i = 0; i < 200; i++) {
      const prev = blobToCluster.get(label[i]);
      if (prev === undefined) blobToCluster.set(label[i], r.assignments[i]);
      else expect(r.assignments[i]).toBe(prev);
    }
    expect(new Set(blobToCluster.values()).size).toBe(4);
    for (const [blob, c] of blobToCluster) {
      expect(Math.hypot(r.centroids[c * 2] - centres[blob][0], r.centroids[c * 2 + 1] - centres[blob][1])).toBeLessThan(0.3);
    }
    expect(Array.from(r.counts)).toEqual([50, 50, 50, 50]);
    expect(r.meanDistance).toBeGreaterThan(0.25); // about 2 * spread^2 = 0.5
    expect(r.meanDistance).toBeLessThan(0.8);
  });

  it('is deterministic for a seed', () => {
    const { data } = blobs(centres, 20, 3, new Rng(4));
    const a = kmeans(data, 80, 2, 5, { iters: 5, seeding: 'kmeans++', rng: new Rng(9) });
    const b = kmeans(data, 80, 2, 5, { iters: 5, seeding: 'kmeans++', rng: new Rng(9) });
    expect(Array.from(a.centroids)).toEqual(Array.from(b.centroids));
  });

  it('weights dimensions: with weights [1, 0] only the first coordinate separates clusters', () => {
    // Two groups along x (0 and 10), each spread far along y: unweighted k-means may split along y, weighted must split along x.
    const rng = new Rng(6);
    const data = new Float32Array(100 * 2);
    for (let i = 0; i < 100; i++) {
      data[i * 2] = (i % 2) * 10 + 0.1 * rng.normal();
      data[i * 2 + 1] = 100 * rng.normal();
    }
    const r = kmeans(data, 100, 2, 2, { iters: 10, seeding: 'kmeans++', rng: new Rng(1), weights: new Float32Array([1, 0]) });
    for (let i = 2; i < 100; i++) expect(r.assignments[i]).toBe(r.assignments[i % 2]);
    expect(r.assignments[0]).not.toBe(r.assignments[1]);
  });

  it('projects centroids after every update (spherical k-means)', () => {
    const { data } = blobs(centres.slice(1), 30, 0.5, new Rng(2));
    const project = (c: Float32Array): void => {
      for (let k = 0; k < c.length / 2; k++) {
        const n = Math.hypot(c[k * 2], c[k * 2 + 1]);
        c[k * 2] /= n;
        c[k * 2 + 1] /= n;
      }
    };
    const r = kmeans(data, 90, 2, 3, { iters: 5, seeding: 'random', rng: new Rng(3), project });
    for (let k = 0; k < 3; k++) expect(Math.hypot(r.centroids[k * 2], r.centroids[k * 2 + 1])).toBeCloseTo(1, 6);
  });

  it('assignNearest equals a brute-force weighted distance', () => {
    const rng = new Rng(12);
    const [n, dim, k] = [60, 5, 9];
    const data = Float32Array.from({ length: n * dim }, () => rng.normal());
    const cs = Float32Array.from({ length: k * dim }, () => rng.normal());
    const weights = Float32Array.from({ length: dim }, (_, t) => t + 0.5);
    const { assignments, distances } = assignNearest(data, n, dim, cs, k, weights);
    for (let i = 0; i < n; i++) {
      const d = Array.from({ length: k }, (_, c) => {
        let s = 0;
        for (let t = 0; t < dim; t++) s += weights[t] * (data[i * dim + t] - cs[c * dim + t]) ** 2;
        return s;
      });
      const best = Math.min(...d);
      expect(d[assignments[i]] - best).toBeLessThan(1e-4);
      expect(distances[i]).toBeCloseTo(best, 3);
    }
  });

  it('needs at least k points', () => {
    expect(() => kmeans(new Float32Array(6), 3, 2, 4, { iters: 1, seeding: 'random', rng: new Rng(0) })).toThrow(
      'kmeans: needs at least as many points as centres, but received 3 points for 4 centres',
    );
  });
});
