import * as fs from 'fs';
import * as path from 'path';
import {
  FeatureStats,
  congruence,
  featureStats,
  frechetDistance,
  pivotedCholesky,
  symmetricEigen,
  type GaussianStats,
} from '../../src/core/metrics';
import { Rng } from '../../src/core/random';

// Made by tests/fixtures/metrics/make_metrics_fixtures.py: float32 feature sets, numpy's
// float64 mean/cov, and the Fréchet distance the way pytorch-fid computes it (scipy sqrtm).
interface FrechetCase {
  name: string;
  dim: number;
  n1: number;
  n2: number;
  x1: string;
  x2: string;
  fdScipy: number;
  fdEigh: number;
  fdSelfScipy: number;
  mean1?: string;
  cov1?: string;
}
const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/metrics/frechet.json'), 'utf8')) as { cases: FrechetCase[] };

function f32(b64: string): Float32Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}
function f64(b64: string): Float64Array {
  const buf = Buffer.from(b64, 'base64');
  return new Float64Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}
function rel(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}
/** Accumulates [N, D] rows in uneven batches (and through a merge), as a long evaluation would. */
function streamed(x: Float32Array, dim: number): GaussianStats {
  const n = x.length / dim;
  const half = Math.floor(n / 2);
  const a = new FeatureStats(dim);
  const b = new FeatureStats(dim);
  for (let i = 0; i < half; i += 7) a.add(x.subarray(i * dim, Math.min(half, i + 7) * dim));
  for (let i = half; i < n; i += 13) b.add(x.subarray(i * dim, Math.min(n, i + 13) * dim));
  return a.merge(b).finalize();
}
/** A random symmetric positive semi-definite matrix X^T X / (m - 1) of rank min(m, n). */
function randomCov(rng: Rng, n: number, m: number): Float64Array {
  const x = Float64Array.from({ length: m * n }, () => rng.normal());
  const c = new Float64Array(n * n);
  for (let r = 0; r < m; r++) for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) c[i * n + j] += (x[r * n + i] * x[r * n + j]) / (m - 1);
  return c;
}
function stats(mean: number[], cov: number[], n = 1000): GaussianStats {
  return { n, dim: mean.length, mean: Float64Array.from(mean), cov: Float64Array.from(cov), notes: [] };
}

describe('Fréchet distance agrees with scipy (pytorch-fid\'s sqrtm formula)', () => {
  for (const c of fixture.cases) {
    const wellPosed = c.n1 > c.dim && c.n2 > c.dim;
    const tol = wellPosed ? 1e-6 : 1e-4;
    it(`${c.name}: relative error < ${tol}, both factorizations`, () => {
      const a = streamed(f32(c.x1), c.dim);
      const b = streamed(f32(c.x2), c.dim);
      for (const method of ['eigen', 'cholesky'] as const) {
        const r = frechetDistance(a, b, { method });
        expect(rel(r.distance, c.fdScipy)).toBeLessThan(tol);
        // numpy's eigh route (float64, same symmetric form) agrees much more closely.
        expect(rel(r.distance, c.fdEigh)).toBeLessThan(wellPosed ? 1e-10 : 1e-7);
        expect(r.illConditioned).toBe(!wellPosed);
        expect(r.notes.length > 0).toBe(!wellPosed);
        expect(r.distance).toBeCloseTo(r.meanTerm + r.covTerm, 10);
        expect([r.dim, r.n1, r.n2, r.method]).toEqual([c.dim, c.n1, c.n2, method]);
      }
    });
    it(`${c.name}: FD(X, X) = 0 exactly (scipy gives ${c.fdSelfScipy.toExponential(1)})`, () => {
      const a = streamed(f32(c.x1), c.dim);
      const copy = { ...a, mean: a.mean.slice(), cov: a.cov.slice() };
      for (const method of ['eigen', 'cholesky'] as const) {
        expect(frechetDistance(a, a, { method }).distance).toBe(0);
        expect(frechetDistance(a, copy, { method }).distance).toBe(0);
      }
    });
  }

  it('streamed statistics equal numpy\'s mean and N - 1 covariance', () => {
    const c = fixture.cases.find((k) => k.mean1 !== undefined)!;
    const s = streamed(f32(c.x1), c.dim);
    const mean = f64(c.mean1!);
    const cov = f64(c.cov1!);
    for (let i = 0; i < mean.length; i++) expect(Math.abs(s.mean[i] - mean[i])).toBeLessThan(1e-12 * (1 + Math.abs(mean[i])));
    for (let i = 0; i < cov.length; i++) expect(Math.abs(s.cov[i] - cov[i])).toBeLessThan(1e-12 * (1 + Math.abs(cov[i])));
    expect(s.n).toBe(c.n1);
  });
});

describe('frechetDistance, hand-worked', () => {
  it('diagonal covariances: |mu1 - mu2|^2 + sum (sqrt a_i - sqrt b_i)^2', () => {
    // mu2 - mu1 = (1, 2): 5; S1 = diag(4, 9), S2 = diag(1, 1): (2 - 1)^2 + (3 - 1)^2 = 5. Total 10.
    const a = stats([0, 0], [4, 0, 0, 9]);
    const b = stats([1, 2], [1, 0, 0, 1]);
    for (const method of ['eigen', 'cholesky'] as const) {
      const r = frechetDistance(a, b, { method });
      expect(r.distance).toBeCloseTo(10, 12);
      expect(r.meanTerm).toBe(5);
      expect(r.traceSqrt).toBeCloseTo(2 + 3, 12);
    }
  });

  it('is invariant to a rotation of both sets and symmetric in its arguments', () => {
    // Rotating by 30 degrees: R diag(4, 9) R^T vs R diag(1, 1) R^T, means rotated too: still 10.
    const [cs, sn] = [Math.cos(Math.PI / 6), Math.sin(Math.PI / 6)];
    const rot = (d0: number, d1: number): number[] => [
      cs * cs * d0 + sn * sn * d1, cs * sn * (d0 - d1),
      cs * sn * (d0 - d1), sn * sn * d0 + cs * cs * d1,
    ];
    const a = stats([0, 0], rot(4, 9));
    const b = stats([cs * 1 - sn * 2, sn * 1 + cs * 2], rot(1, 1));
    expect(frechetDistance(a, b).distance).toBeCloseTo(10, 12);
    expect(frechetDistance(b, a).distance).toBeCloseTo(10, 12);
  });

  it('handles a singular S1 (rank 1): Tr sqrt(S1 S2) = sqrt(v^T S2 v) for S1 = v v^T', () => {
    // S1 = v v^T with v = (1, 2); S2 = [[2, 1], [1, 3]]: v^T S2 v = 2 + 4 + 12 = 18.
    const a = stats([0, 0], [1, 2, 2, 4], 2);
    const b = stats([0, 0], [2, 1, 1, 3], 2);
    for (const method of ['eigen', 'cholesky'] as const) {
      const r = frechetDistance(a, b, { method });
      expect(r.traceSqrt).toBeCloseTo(Math.sqrt(18), 7);
      expect(r.distance).toBeCloseTo(5 + 5 - 2 * Math.sqrt(18), 7);
      expect(r.illConditioned).toBe(true);
    }
    expect(frechetDistance(a, b, { method: 'cholesky' }).rank).toBe(1);
  });

  it('both factorizations agree on random statistics, N > D and N < D', () => {
    const rng = new Rng(11);
    for (const [D, N] of [
      [40, 100],
      [40, 25],
    ]) {
      const a = { ...stats(new Array(D).fill(0), Array.from(randomCov(rng, D, N)), N) };
      const b = { ...stats(Array.from({ length: D }, () => rng.normal() * 0.1), Array.from(randomCov(rng, D, N + 3)), N + 3) };
      const e = frechetDistance(a, b, { method: 'eigen' });
      const c = frechetDistance(a, b, { method: 'cholesky' });
      expect(rel(c.distance, e.distance)).toBeLessThan(N > D ? 1e-12 : 1e-8);
      expect(c.rank).toBe(Math.min(D, N));
    }
  });

  it('rejects mismatched statistics and bad options', () => {
    const a = stats([0, 0], [1, 0, 0, 1]);
    const b = stats([0, 0, 0], [1, 0, 0, 0, 1, 0, 0, 0, 1]);
    expect(() => frechetDistance(a, b)).toThrow('Expected feature statistics of the same dim but received 2 and 3');
    expect(() => frechetDistance(a, a, { method: 'sqrtm' as never })).toThrow('Expected one of "eigen", "cholesky" for method but received "sqrtm" of type string');
    expect(() => frechetDistance(a, a, { eps: 1e-6 } as never)).toThrow('Unknown option "eps" for frechetDistance; known options are method');
    expect(() => frechetDistance({ ...a, cov: new Float64Array(3) }, a)).toThrow('Expected a.cov of 2 x 2 = 4 values for dim 2 but received 3');
    expect(() => frechetDistance({ ...a, mean: [0, 0] as never }, a)).toThrow('Expected GaussianStats with Float64Array mean and cov for a');
  });
});

describe('FeatureStats', () => {
  it('batches, merges and one shot give the same statistics', () => {
    const rng = new Rng(2);
    const D = 5;
    const x = Float32Array.from({ length: 60 * D }, () => rng.normal() * 3 + 1);
    const once = featureStats(x, D);
    const batched = new FeatureStats(D);
    for (let i = 0; i < 60; i += 11) batched.add(x.subarray(i * D, Math.min(60, i + 11) * D));
    const merged = new FeatureStats(D).add(x.subarray(0, 20 * D)).merge(new FeatureStats(D).add(x.subarray(20 * D)));
    // Saved statistics of the first 45 vectors, restored and continued.
    const restored = FeatureStats.fromStats(featureStats(x.subarray(0, 45 * D), D)).add(x.subarray(45 * D));
    for (const s of [batched.finalize(), merged.finalize(), restored.finalize()]) {
      expect(s.n).toBe(60);
      for (let i = 0; i < D; i++) expect(s.mean[i]).toBeCloseTo(once.mean[i], 12);
      for (let i = 0; i < D * D; i++) expect(s.cov[i]).toBeCloseTo(once.cov[i], 12);
    }
    // Two-pass reference for one entry.
    let m0 = 0;
    let m1 = 0;
    for (let r = 0; r < 60; r++) {
      m0 += x[r * D] / 60;
      m1 += x[r * D + 1] / 60;
    }
    let c01 = 0;
    for (let r = 0; r < 60; r++) c01 += ((x[r * D] - m0) * (x[r * D + 1] - m1)) / 59;
    expect(once.cov[1]).toBeCloseTo(c01, 12);
    expect(once.cov[D]).toBe(once.cov[1]); // symmetric
  });

  it('stays accurate with a large common offset (no one-pass cancellation)', () => {
    // Values 1e6 + {0, 1, 2, 3}, one at a time: population variance 1.25. The sum-of-squares
    // formula would subtract two numbers near 1e12 * 1000 and keep few correct digits.
    const s = new FeatureStats(1);
    for (let i = 0; i < 1000; i++) s.add(Float64Array.of(1e6 + (i % 4)));
    expect(s.covariance()[0]).toBeCloseTo((1000 / 999) * 1.25, 9);
    expect(Math.abs(s.mean()[0] - (1e6 + 1.5))).toBeLessThan(1e-14 * 1e6 * 1000);
  });

  it('notes when N <= D', () => {
    const s = new FeatureStats(4).add(new Float32Array([1, 2, 3, 4, 2, 2, 2, 2, 0, 1, 0, 1])).finalize();
    expect(s.notes).toEqual([
      'N = 3 <= D = 4: the covariance is singular (rank at most N - 1), so the Fréchet distance is ill-conditioned ' +
        '(relative error about 1e-6 to 1e-8 between implementations) and strongly biased by N; use more samples than feature dimensions',
    ]);
    expect(new FeatureStats(1).add([1, 2, 4]).finalize().notes).toEqual([]);
  });

  it('rejects bad input without changing its state', () => {
    const s = new FeatureStats(3).add([1, 2, 3]);
    expect(() => s.add([1, 2])).toThrow('Expected a multiple of dim 3 feature values but received an array of length 2');
    expect(() => s.add([1, 2, 3, 4, NaN, 6])).toThrow('Expected finite feature values but value 1 of row 1 is NaN');
    expect(s.n).toBe(1);
    expect(() => s.covariance()).toThrow('Expected at least 2 feature vectors for a covariance but received 1');
    expect(() => s.merge(new FeatureStats(4))).toThrow('Expected FeatureStats of dim 3 to merge but received dim 4');
    expect(() => new FeatureStats(0)).toThrow('Expected integer between 1 and 65536 for dim but received 0 of type number');
    expect(() => FeatureStats.fromStats({ n: 1, dim: 1, mean: Float64Array.of(0), cov: Float64Array.of(0), notes: [] })).toThrow(
      'Expected integer between 2 and 9007199254740991 for stats.n but received 1 of type number',
    );
  });
});

describe('float64 linear algebra', () => {
  it('symmetricEigen: hand-worked 2x2 and 3x3', () => {
    const { values, vectors } = symmetricEigen(new Float64Array([2, 1, 1, 2]), 2);
    expect(Array.from(values)).toEqual([expect.closeTo(1, 14), expect.closeTo(3, 14)]);
    expect(Math.abs(vectors![2] * vectors![3] - 0.5)).toBeLessThan(1e-14); // (1, 1)/sqrt 2 for 3
    // diag(3, -1, 2) with a zero row/column pattern: already tridiagonal.
    expect(Array.from(symmetricEigen([3, 0, 0, 0, -1, 0, 0, 0, 2], 3).values)).toEqual([-1, 2, 3]);
    expect(Array.from(symmetricEigen([5], 1).values)).toEqual([5]);
  });

  it('symmetricEigen: A v = lambda v, orthonormal vectors, and the values-only path agrees (n = 1..70)', () => {
    const rng = new Rng(4);
    for (const n of [1, 2, 3, 7, 33, 70]) {
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = rng.normal();
      const { values, vectors } = symmetricEigen(a, n);
      const v = vectors!;
      let residual = 0;
      let ortho = 0;
      for (let j = 0; j < n; j++) {
        for (let i = 0; i < n; i++) {
          let s = 0;
          for (let k = 0; k < n; k++) s += a[i * n + k] * v[j * n + k];
          residual = Math.max(residual, Math.abs(s - values[j] * v[j * n + i]));
        }
        for (let l = 0; l < n; l++) {
          let d = 0;
          for (let k = 0; k < n; k++) d += v[j * n + k] * v[l * n + k];
          ortho = Math.max(ortho, Math.abs(d - (j === l ? 1 : 0)));
        }
      }
      expect(residual).toBeLessThan(1e-12 * n);
      expect(ortho).toBeLessThan(1e-13 * n);
      for (let j = 1; j < n; j++) expect(values[j]).toBeGreaterThanOrEqual(values[j - 1]);
      const only = symmetricEigen(a, n, { vectors: false });
      expect(only.vectors).toBeUndefined();
      for (let j = 0; j < n; j++) expect(Math.abs(only.values[j] - values[j])).toBeLessThan(1e-12 * n);
    }
  });

  it('symmetricEigen rejects bad input', () => {
    expect(() => symmetricEigen([1, 2, 3], 2)).toThrow('Expected a 2 x 2 matrix (4 values) but received 3 values');
    expect(() => symmetricEigen([1, NaN, NaN, 1], 2)).toThrow('Expected finite matrix entries but entry 1 is NaN');
  });

  it('pivotedCholesky reconstructs P A P^T and finds the rank', () => {
    const rng = new Rng(8);
    const n = 10;
    const a = randomCov(rng, n, 4); // rank 4
    const { factor, rank, perm } = pivotedCholesky(a, n);
    expect(rank).toBe(4);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < rank; k++) s += factor[k * n + i] * factor[k * n + j];
        expect(Math.abs(s - a[perm[i] * n + perm[j]])).toBeLessThan(1e-12);
      }
    }
    for (let k = 0; k < rank; k++) for (let i = 0; i < k; i++) expect(factor[k * n + i]).toBe(0); // trapezoidal
  });

  it('congruence equals W^T S W computed naively', () => {
    const rng = new Rng(6);
    const n = 9;
    const r = 6;
    const s = randomCov(rng, n, 12);
    const w = Float64Array.from({ length: r * n }, () => rng.normal());
    const m = congruence(s, n, w, r);
    for (let a = 0; a < r; a++) {
      for (let b = 0; b < r; b++) {
        let acc = 0;
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) acc += w[a * n + i] * s[i * n + j] * w[b * n + j];
        expect(m[a * r + b]).toBeCloseTo(acc, 10);
      }
    }
  });
});
