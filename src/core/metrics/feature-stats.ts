/**
 * Streaming mean and covariance of feature vectors, in float64, so that the
 * features of 50,000 images never sit in memory at once: add batches as they
 * come, merge accumulators from separate runs, and finish with the unbiased
 * (N - 1) covariance the Fréchet distance needs.
 *
 * Each batch is centred on its own mean and merged with the pairwise update of
 * Chan, Golub and LeVeque ("Updating formulae and a pairwise algorithm for
 * computing sample variances", 1979):
 *   M2 = M2_a + M2_b + (n_a n_b / n) delta delta^T,   delta = mean_b - mean_a,
 * which avoids the cancellation of the one-pass sum-of-squares formula (in
 * float32 that one is off by about 0.25% at 20k x 256; see docs/EVAL.md).
 *
 * Example:
 *   const acc = new FeatureStats(2048);
 *   for (const batch of batches) acc.add(batch);      // Float32Array [B * 2048]
 *   const stats = acc.finalize();                     // { n, dim, mean, cov, notes }
 */

import { VtokError, checkInt, describeValue } from '../errors';

/** Mean and covariance of a set of feature vectors: what a Fréchet distance compares. */
export interface GaussianStats {
  /** Number of feature vectors. */
  n: number;
  /** Feature dimension D. */
  dim: number;
  /** [D] feature mean. */
  mean: Float64Array;
  /** [D, D] row-major unbiased covariance (divided by N - 1), symmetric. */
  cov: Float64Array;
  /** Caveats a report must carry (for example N <= D). */
  notes: string[];
}

/** The note attached to statistics of N <= D samples. */
export function illConditionedNote(n: number, dim: number): string {
  return (
    `N = ${n} <= D = ${dim}: the covariance is singular (rank at most N - 1), so the Fréchet distance is ill-conditioned ` +
    `(relative error about 1e-6 to 1e-8 between implementations) and strongly biased by N; use more samples than feature dimensions`
  );
}

/** Feature vectors folded into M2 per pass over it (see add()). */
const ROWS_PER_PASS = 32;

export class FeatureStats {
  readonly dim: number;
  private count = 0;
  private readonly mu: Float64Array;
  /** Sum of outer products of deviations from the mean; upper triangle only (i <= j) until finalize(). */
  private readonly m2: Float64Array;

  constructor(dim: number) {
    this.dim = checkInt('dim', dim, 1, 65536);
    this.mu = new Float64Array(dim);
    this.m2 = new Float64Array(dim * dim);
  }

  /**
   * An accumulator holding saved statistics (e.g. a reference set's, loaded
   * from disk), so more vectors can be added or merged into them:
   * M2 = cov * (N - 1).
   */
  static fromStats(stats: GaussianStats): FeatureStats {
    const D = stats.dim;
    if (!(stats.mean instanceof Float64Array) || stats.mean.length !== D || !(stats.cov instanceof Float64Array) || stats.cov.length !== D * D) {
      throw new VtokError('INVALID_INPUT', `Expected GaussianStats with a Float64Array mean of ${D} and cov of ${D * D} values but received ${describeValue(stats.mean)} and ${describeValue(stats.cov)}`);
    }
    const acc = new FeatureStats(D);
    acc.count = checkInt('stats.n', stats.n, 2);
    acc.mu.set(stats.mean);
    for (let i = 0; i < D; i++) for (let j = i; j < D; j++) acc.m2[i * D + j] = stats.cov[i * D + j] * (stats.n - 1);
    return acc;
  }

  /** Number of feature vectors added so far. */
  get n(): number {
    return this.count;
  }

  /**
   * Adds a batch of feature vectors, [B, D] row-major (B = features.length / D).
   * Non-finite values are refused (a NaN would silently poison every statistic).
   */
  add(features: ArrayLike<number>): this {
    const D = this.dim;
    if (features.length % D !== 0) {
      throw new VtokError('INVALID_INPUT', `Expected a multiple of dim ${D} feature values but received ${describeValue(features)}`);
    }
    const B = features.length / D;
    if (B === 0) return this;
    // Batch mean, and the batch centred on it, in float64.
    const mb = new Float64Array(D);
    for (let b = 0; b < B; b++) {
      const o = b * D;
      for (let i = 0; i < D; i++) {
        const v = features[o + i];
        if (!Number.isFinite(v)) throw new VtokError('INVALID_INPUT', `Expected finite feature values but value ${i} of row ${b} is ${v}`);
        mb[i] += v;
      }
    }
    for (let i = 0; i < D; i++) mb[i] /= B;
    // M2 += sum_b r_b r_b^T (upper triangle) for the centred rows r_b, ROWS_PER_PASS rows
    // at a time: each row of M2 is then read and written once per pass instead of once
    // per feature vector (at D = 2048 M2 is 32 MB and would stream from memory per row).
    const m2 = this.m2;
    const block = new Float64Array(Math.min(B, ROWS_PER_PASS) * D);
    for (let b0 = 0; b0 < B; b0 += ROWS_PER_PASS) {
      const rows = Math.min(ROWS_PER_PASS, B - b0);
      for (let r = 0; r < rows; r++) {
        const o = (b0 + r) * D;
        for (let i = 0; i < D; i++) block[r * D + i] = features[o + i] - mb[i];
      }
      for (let i = 0; i < D; i++) {
        const oi = i * D;
        let r = 0;
        // Four rows per sweep of M2's row i: one load and store of M2 per four products.
        for (; r + 4 <= rows; r += 4) {
          const o0 = r * D;
          const o1 = o0 + D;
          const o2 = o1 + D;
          const o3 = o2 + D;
          const a0 = block[o0 + i];
          const a1 = block[o1 + i];
          const a2 = block[o2 + i];
          const a3 = block[o3 + i];
          for (let j = i; j < D; j++) m2[oi + j] += a0 * block[o0 + j] + a1 * block[o1 + j] + a2 * block[o2 + j] + a3 * block[o3 + j];
        }
        for (; r < rows; r++) {
          const or = r * D;
          const ri = block[or + i];
          for (let j = i; j < D; j++) m2[oi + j] += ri * block[or + j];
        }
      }
    }
    this.mergeMoments(B, mb, null);
    return this;
  }

  /** Adds another accumulator's vectors to this one (same dim); `other` is unchanged. */
  merge(other: FeatureStats): this {
    if (!(other instanceof FeatureStats)) throw new VtokError('INVALID_INPUT', `Expected a FeatureStats to merge but received ${describeValue(other)}`);
    if (other.dim !== this.dim) throw new VtokError('INVALID_INPUT', `Expected FeatureStats of dim ${this.dim} to merge but received dim ${other.dim}`);
    if (other.count === 0) return this;
    this.mergeMoments(other.count, other.mu, other.m2);
    return this;
  }

  /**
   * Folds a group of nb vectors with mean mb (and, when given, its own upper
   * triangle of M2, else already added into this.m2) into the running moments.
   */
  private mergeMoments(nb: number, mb: Float64Array, m2b: Float64Array | null): void {
    const D = this.dim;
    const na = this.count;
    const n = na + nb;
    const delta = new Float64Array(D);
    for (let i = 0; i < D; i++) delta[i] = mb[i] - this.mu[i];
    const w = (na * nb) / n;
    const m2 = this.m2;
    for (let i = 0; i < D; i++) {
      const oi = i * D;
      const di = w * delta[i];
      if (m2b !== null) for (let j = i; j < D; j++) m2[oi + j] += m2b[oi + j] + di * delta[j];
      else if (di !== 0) for (let j = i; j < D; j++) m2[oi + j] += di * delta[j];
    }
    for (let i = 0; i < D; i++) this.mu[i] += (delta[i] * nb) / n;
    this.count = n;
  }

  /** The [D] mean so far (a copy). */
  mean(): Float64Array {
    return this.mu.slice();
  }

  /** The [D, D] unbiased covariance so far (a copy, full symmetric matrix). Needs N >= 2. */
  covariance(): Float64Array {
    const D = this.dim;
    if (this.count < 2) {
      throw new VtokError('INVALID_INPUT', `Expected at least 2 feature vectors for a covariance but received ${this.count}`);
    }
    const cov = new Float64Array(D * D);
    const s = 1 / (this.count - 1);
    for (let i = 0; i < D; i++) {
      for (let j = i; j < D; j++) {
        const v = this.m2[i * D + j] * s;
        cov[i * D + j] = v;
        cov[j * D + i] = v;
      }
    }
    return cov;
  }

  /** Mean, covariance, N and the caveats to report with them. */
  finalize(): GaussianStats {
    const cov = this.covariance();
    const notes = this.count <= this.dim ? [illConditionedNote(this.count, this.dim)] : [];
    return { n: this.count, dim: this.dim, mean: this.mean(), cov, notes };
  }
}

/** Mean and unbiased covariance of N feature vectors [N, D] held in memory (a one-batch FeatureStats). */
export function featureStats(features: ArrayLike<number>, dim: number): GaussianStats {
  return new FeatureStats(dim).add(features).finalize();
}
