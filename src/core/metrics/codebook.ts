/**
 * Codebook usage and perplexity over a whole evaluation set. Counts
 * accumulate across batches (and merge across runs) into one histogram; the
 * statistics are taken once, at the end, because per-batch averages are much
 * lower and not comparable with published numbers (docs/EVAL.md):
 *
 *   usage      = (codes used at least once) / K
 *   perplexity = exp(H),  H = -sum_k p_k ln p_k,  p_k = count_k / total
 *
 * Perplexity is the effective number of equally used codes: K when all are
 * used equally, 1 when only one is.
 *
 * Example:
 *   const h = new CodeHistogram(4);
 *   h.add([0, 0, 1, 1]).add([2, 2, 3, 3]);   // two batches
 *   h.stats();   // { K: 4, total: 8, used: 4, usage: 1, entropy: ln 4, perplexity: 4 }
 */

import { VtokError, checkInt, describeValue } from '../errors';

export interface CodebookStats {
  /** Codebook size. */
  K: number;
  /** Codes counted. */
  total: number;
  /** Distinct codes seen at least once. */
  used: number;
  /** used / K. */
  usage: number;
  /** Entropy of the code distribution in nats. */
  entropy: number;
  /** exp(entropy), in [1, K]. */
  perplexity: number;
}

export class CodeHistogram {
  readonly K: number;
  /** counts[k]: how often code k was seen (float64: exact up to 2^53). */
  readonly counts: Float64Array;
  private n = 0;

  constructor(K: number) {
    this.K = checkInt('K', K, 1, 1 << 30);
    this.counts = new Float64Array(this.K);
  }

  /** Codes counted so far. */
  get total(): number {
    return this.n;
  }

  /** Counts a batch of codes (integers in [0, K)). A bad code fails before anything is counted. */
  add(codes: ArrayLike<number>): this {
    const K = this.K;
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (!(Number.isInteger(c) && c >= 0 && c < K)) {
        throw new VtokError('INVALID_INPUT', `Expected codes that are integers between 0 and ${K - 1} but code ${i} is ${describeValue(c)}`);
      }
    }
    for (let i = 0; i < codes.length; i++) this.counts[codes[i]]++;
    this.n += codes.length;
    return this;
  }

  /** Adds another histogram's counts (same K); `other` is unchanged. */
  merge(other: CodeHistogram): this {
    if (!(other instanceof CodeHistogram) || other.K !== this.K) {
      throw new VtokError('INVALID_INPUT', `Expected a CodeHistogram with K = ${this.K} to merge but received ${other instanceof CodeHistogram ? `K = ${other.K}` : describeValue(other)}`);
    }
    for (let k = 0; k < this.K; k++) this.counts[k] += other.counts[k];
    this.n += other.n;
    return this;
  }

  /** Usage and perplexity of everything counted so far. */
  stats(): CodebookStats {
    return codebookStats(this.counts);
  }
}

/** Usage and perplexity of a histogram of code counts (counts[k] >= 0; at least one count). */
export function codebookStats(counts: ArrayLike<number>): CodebookStats {
  const K = counts.length;
  let total = 0;
  let used = 0;
  for (let k = 0; k < K; k++) {
    const c = counts[k];
    if (!(Number.isFinite(c) && c >= 0)) throw new VtokError('INVALID_INPUT', `Expected non-negative counts but count ${k} is ${describeValue(c)}`);
    total += c;
    if (c > 0) used++;
  }
  if (total === 0) throw new VtokError('INVALID_INPUT', `Expected at least one counted code but the ${K} counts are all 0`);
  let entropy = 0;
  for (let k = 0; k < K; k++) {
    const c = counts[k];
    if (c > 0) {
      const p = c / total;
      entropy -= p * Math.log(p);
    }
  }
  // Rounding can leave -0 or a hair below 0 for a single used code.
  entropy = Math.max(0, entropy);
  return { K, total, used, usage: used / K, entropy, perplexity: Math.exp(entropy) };
}
