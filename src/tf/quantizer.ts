/**
 * Dual-codebook vector quantizer with one shared index (TokenFlow, Qu et al.
 * 2024, arXiv:2412.03069), and everything that keeps its codebooks healthy.
 *
 * For one position with l2-normalized latents z_s [d_s] and z_p [d_p], and
 * l2-normalized codebooks E_s [K, d_s], E_p [K, d_p]:
 *   d[k]  = v |z_s - E_s[k]|^2 + w |z_p - E_p[k]|^2,   index = argmin_k d[k]
 *   q_s, q_p = E_s[index], E_p[index], passed on with the straight-through
 *   estimator (value of q, gradient of z).
 * v is semanticWeight (default 1, TokenFlow's distance), w is pixelWeight;
 * v = 0 chooses codes by the pixel branch alone (the pixel-only ablation),
 * w = 0 by the semantic branch alone.
 * Losses, averaged over positions (with the same weights v, w as the distance):
 *   commit   = beta * (v |z_s - sg(q_s)|^2 + w |z_p - sg(q_p)|^2)   (trains the encoder)
 *   codebook =        v |sg(z_s) - q_s|^2 + w |sg(z_p) - q_p|^2     (trains the codebooks when codebookUpdate is 'loss'; with 'ema' it is a metric)
 *
 * Codebook health (the state lives on the host as typed arrays; `update` is
 * called once per training step with what the forward pass saw):
 * - k-means initialization on the latents of the first batches (kmeans.ts),
 *   on concatenated [z_s, z_p] rows with the quantizer's own weighted distance,
 *   each branch re-normalized after every Lloyd step (spherical k-means).
 * - EMA updates (van den Oord et al. 2017, appendix; VQ-VAE-2): cluster sizes
 *   and sums of assigned latents decay with emaDecay, sizes get Laplace
 *   smoothing, and each code becomes its smoothed mean re-normalized per
 *   branch. (With unit-length codes the smoothing only rescales the mean; it is
 *   kept so that the stored EMA state means what it means in other code bases.)
 * - Dead-code restart (Dhariwal et al. 2020, Jukebox; vector-quantize-pytorch):
 *   a code that no position chose in deadCodeSteps updates, or (EMA mode)
 *   whose EMA cluster size fell below deadCodeThreshold, is replaced by a
 *   latent drawn from a reservoir of recent latents.
 * - Usage (fraction of codes chosen at least once) and perplexity (exp of the
 *   entropy of the code histogram) over the last usageWindow updates and
 *   since the start.
 *
 * The whole host state round-trips through getState/setState as a record of
 * typed arrays, so a resumed run continues exactly.
 */

import * as tf from '@tensorflow/tfjs';
import { VtokError } from '../core/errors';
import { Rng } from '../core/random';
import { type TensorMap, type TensorRecord, tensorRecord } from '../core/tensor-map';
import { type TokenizerConfig, kmeansSampleCount } from '../core/tokenizer-config';
import { kmeans } from './kmeans';
import { detached, l2Normalize, normalizeRows, straightThrough, stopGradient } from './layers';

/** Weight names of the two codebooks (rows are codes). */
export const SEMANTIC_CODEBOOK = 'quantizer.semantic'; // [K, d_s]
export const PIXEL_CODEBOOK = 'quantizer.pixel'; // [K, d_p]

/** What one training forward pass saw, on the host: the input of `update`. */
export interface QuantizerBatch {
  /** Chosen code of every position: [N]. */
  codes: Int32Array;
  /** Normalized semantic latents: [N, d_s] row-major. */
  zs: Float32Array;
  /** Normalized pixel latents: [N, d_p] row-major. */
  zp: Float32Array;
}

/** Tensors of one quantization, flat over positions. */
export interface QuantizeResult {
  /** [N] int32. */
  codes: tf.Tensor1D;
  /** Straight-through quantized vectors: value E_s[codes] [N, d_s], gradient to z_s. */
  qs: tf.Tensor2D;
  /** Value E_p[codes] [N, d_p], gradient to z_p. */
  qp: tf.Tensor2D;
  /** beta * mean weighted |z - sg(q)|^2. */
  commit: tf.Scalar;
  /** mean weighted |sg(z) - q|^2. */
  codebook: tf.Scalar;
}

export interface CodebookStats {
  /** Updates applied so far. */
  step: number;
  /** Whether the codebooks have been initialized (always true without kmeansInit). */
  initialized: boolean;
  /** Fraction of the K codes chosen at least once in the last usageWindow updates. */
  usage: number;
  /** exp(entropy) of the code histogram of the last usageWindow updates (K at best, 1 at worst). */
  perplexity: number;
  /** The same since the first update. */
  totalUsage: number;
  totalPerplexity: number;
  /** Codes restarted since the first update. */
  restarts: number;
}

export interface UpdateReport {
  /** This update's number (1 for the first). */
  step: number;
  /** True when this update ran the k-means initialization. */
  initialized: boolean;
  /** Codes restarted by this update, ascending. */
  restarted: number[];
}

/** Rows of the [rows, K] distance matrix computed at once (bounds memory at ~16 MB of float32). */
const DISTANCE_BUDGET = 1 << 22;

/** Order of the fields of the 'quantizer.counters' state tensor. */
const COUNTERS = ['step', 'initialized', 'initRows', 'reservoirFill', 'reservoirNext', 'rngState', 'restarts', 'windowLength'] as const;
const TWO_POW_31 = 2147483648;

interface WindowEntry {
  codes: Int32Array;
  counts: Int32Array;
}

export class DualQuantizer {
  readonly config: TokenizerConfig;
  /** E_s [K, d_s] and E_p [K, d_p]. Trainable only when codebookUpdate is 'loss'. Stored un-normalized in 'loss' mode; used normalized. */
  readonly semantic: tf.Variable;
  readonly pixel: tf.Variable;

  private readonly K: number;
  private readonly ds: number;
  private readonly dp: number;
  private rng: Rng;
  private stepCount = 0;
  private isInitialized: boolean;
  private initRows: Float32Array[] = [];
  private initCount = 0;
  private readonly clusterSize: Float32Array;
  private readonly sumS: Float32Array;
  private readonly sumP: Float32Array;
  private readonly lastUsed: Int32Array;
  private readonly totalCounts: Float64Array;
  private readonly windowCounts: Float64Array;
  private window: WindowEntry[] = [];
  private readonly reservoir: Float32Array;
  private reservoirFill = 0;
  private reservoirNext = 0;
  private restartCount = 0;

  /** Codebook variables come from the caller (the model creates every weight in one seeded pass). */
  constructor(config: TokenizerConfig, semantic: tf.Variable, pixel: tf.Variable, seed: number) {
    this.config = config;
    this.K = config.codebookSize;
    this.ds = config.semanticDim;
    this.dp = config.pixelDim;
    const expect = (v: tf.Variable, d: number, name: string): void => {
      if (v.shape.length !== 2 || v.shape[0] !== this.K || v.shape[1] !== d) {
        throw new VtokError('INVALID_INPUT', `Expected ${name} of shape [${this.K}, ${d}] but received [${v.shape.join(', ')}]`, { subject: name });
      }
    };
    expect(semantic, this.ds, SEMANTIC_CODEBOOK);
    expect(pixel, this.dp, PIXEL_CODEBOOK);
    this.semantic = semantic;
    this.pixel = pixel;
    this.rng = new Rng(seed);
    this.isInitialized = !config.kmeansInit;
    const ema = config.codebookUpdate === 'ema';
    this.clusterSize = new Float32Array(ema ? this.K : 0);
    this.sumS = new Float32Array(ema ? this.K * this.ds : 0);
    this.sumP = new Float32Array(ema ? this.K * this.dp : 0);
    this.lastUsed = new Int32Array(this.K);
    this.totalCounts = new Float64Array(this.K);
    this.windowCounts = new Float64Array(this.K);
    this.reservoir = new Float32Array(config.reservoirSize * (this.ds + this.dp));
    if (ema) {
      const { es, ep } = this.readCodebooks();
      this.setEmaState(new Float32Array(this.K), es, ep);
    }
  }

  get initialized(): boolean {
    return this.isInitialized;
  }

  get step(): number {
    return this.stepCount;
  }

  // ---- tensors (call inside tf.tidy) ----

  /** The codebooks as used: each row l2-normalized. [K, d_s], [K, d_p]. Connected to the variables (for the 'loss' mode gradient). */
  codebooks(): { es: tf.Tensor2D; ep: tf.Tensor2D } {
    return { es: l2Normalize(this.semantic as tf.Tensor2D), ep: l2Normalize(this.pixel as tf.Tensor2D) };
  }

  /**
   * argmin_k of d[k] for every row: zs [N, d_s], zp [N, d_p] (normalized) -> [N] int32.
   * With |a - b|^2 = |a|^2 - 2 a.b + |b|^2 and |z|^2 the same for every k,
   * argmin_k d[k] = argmax_k (v z_s.E_s[k] + w z_p.E_p[k] - (v |E_s[k]|^2 + w |E_p[k]|^2) / 2):
   * one matmul of [v z_s, w z_p, 1] with [E_s, E_p, -norms/2] (no broadcast op
   * over the [N, K] scores, which is slow on the cpu backend).
   */
  nearest(zs: tf.Tensor2D, zp: tf.Tensor2D, es: tf.Tensor2D, ep: tf.Tensor2D): tf.Tensor1D {
    const { pixelWeight: w, semanticWeight: v } = this.config;
    const N = zs.shape[0];
    const D = this.ds + this.dp + 1;
    // v = 1 (the default) skips its multiplications, so the default's ops are the ones it always ran.
    const byV = <T extends tf.Tensor>(t: T): T => (v === 1 ? t : tf.mul(t, v));
    const halfNorms = tf.mul(-0.5, tf.add(byV(tf.sum(tf.square(es), 1, true)), tf.mul(w, tf.sum(tf.square(ep), 1, true)))); // [K, 1]
    const ecat = tf.concat([es, ep, halfNorms], 1); // [K, D]
    const zcat = tf.concat([byV(zs), tf.mul(zp, w), tf.ones([N, 1])], 1); // [N, D]
    const chunk = Math.max(1, Math.floor(DISTANCE_BUDGET / this.K));
    const parts: tf.Tensor1D[] = [];
    for (let start = 0; start < N; start += chunk) {
      const rows = Math.min(chunk, N - start);
      parts.push(
        tf.tidy(() => {
          const z = rows === N ? zcat : tf.slice(zcat, [start, 0], [rows, D]);
          return tf.argMax(tf.matMul(z, ecat, false, true), 1) as tf.Tensor1D; // [rows, K] scores -> [rows]
        }),
      );
    }
    return parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor1D);
  }

  /** Quantizes flat latents zs [N, d_s], zp [N, d_p] (normalized); see QuantizeResult. */
  quantize(zs: tf.Tensor2D, zp: tf.Tensor2D): QuantizeResult {
    const { beta, pixelWeight: w, semanticWeight: v } = this.config;
    const { es, ep } = this.codebooks();
    const codes = detached(() => this.nearest(zs, zp, es, ep)); // [N], off the gradient tape
    const qsRaw = tf.gather(es, codes) as tf.Tensor2D; // [N, d_s]
    const qpRaw = tf.gather(ep, codes) as tf.Tensor2D; // [N, d_p]
    const dist = (a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D => tf.sum(tf.square(tf.sub(a, b)), 1); // [N]
    const byV = (t: tf.Tensor1D): tf.Tensor1D => (v === 1 ? t : tf.mul(v, t)); // v = 1: the default's ops unchanged
    const commit = tf.mul(beta, tf.mean(tf.add(byV(dist(zs, stopGradient(qsRaw))), tf.mul(w, dist(zp, stopGradient(qpRaw)))))) as tf.Scalar;
    const codebook = tf.mean(tf.add(byV(dist(stopGradient(zs), qsRaw)), tf.mul(w, dist(stopGradient(zp), qpRaw)))) as tf.Scalar;
    return { codes, qs: straightThrough(zs, qsRaw), qp: straightThrough(zp, qpRaw), commit, codebook };
  }

  /** Code vectors of codes [N] int32: [N, d_s], [N, d_p] (normalized rows). */
  lookup(codes: tf.Tensor1D): { qs: tf.Tensor2D; qp: tf.Tensor2D } {
    const { es, ep } = this.codebooks();
    return { qs: tf.gather(es, codes) as tf.Tensor2D, qp: tf.gather(ep, codes) as tf.Tensor2D };
  }

  // ---- host-side codebook health ----

  /**
   * One training update from what a forward pass saw: k-means initialization
   * (while collecting the first batches), usage counters, EMA update ('ema'
   * mode), the reservoir of recent latents and dead-code restarts. Call after
   * the optimizer step, once per step.
   */
  update(batch: QuantizerBatch): UpdateReport {
    const N = this.checkBatch(batch);
    const t = this.stepCount + 1;
    const report: UpdateReport = { step: t, initialized: false, restarted: [] };
    this.recordUsage(batch.codes, t);
    this.addToReservoir(batch, N);
    if (!this.isInitialized) {
      this.collectForInit(batch, N);
      if (this.initCount >= kmeansSampleCount(this.config)) {
        this.initFromLatents(concatRows(this.initRows, this.initCount * (this.ds + this.dp)), this.initCount, N);
        this.initRows = [];
        this.initCount = 0;
        this.lastUsed.fill(t);
        report.initialized = true;
      }
      this.stepCount = t;
      return report;
    }
    if (this.config.codebookUpdate === 'ema') this.emaUpdate(batch, N);
    report.restarted = this.restartDeadCodes(t);
    this.stepCount = t;
    return report;
  }

  /**
   * Initializes both codebooks by k-means on `n` latent rows [z_s, z_p]
   * ([n, d_s + d_p] row-major, normalized), with the distance's weights v and w
   * (with v = 0 the clusters are the pixel branch's; the semantic rows of the
   * codebook are then the normalized means of the semantic latents of each
   * cluster). `batchRows` scales the EMA cluster sizes to one batch (expected
   * positions per code per update).
   */
  initFromLatents(rows: Float32Array, n: number, batchRows = n): void {
    const { ds, dp, K } = this;
    const D = ds + dp;
    const weights = new Float32Array(D).fill(this.config.semanticWeight, 0, ds).fill(this.config.pixelWeight, ds);
    const project = (c: Float32Array): void => normalizeBranches(c, K, ds, dp);
    const r = kmeans(rows, n, D, K, { iters: this.config.kmeansIters, seeding: this.config.kmeansSeeding, rng: this.rng, weights, project });
    const es = new Float32Array(K * ds);
    const ep = new Float32Array(K * dp);
    for (let k = 0; k < K; k++) {
      es.set(r.centroids.subarray(k * D, k * D + ds), k * ds);
      ep.set(r.centroids.subarray(k * D + ds, (k + 1) * D), k * dp);
    }
    this.assignCodebooks(es, ep);
    this.isInitialized = true;
    if (this.config.codebookUpdate === 'ema') {
      this.setEmaState(Float32Array.from(r.counts, (c) => (c * batchRows) / n), es, ep);
    }
  }

  /** Usage and perplexity (see CodebookStats). */
  stats(): CodebookStats {
    const w = histogramStats(this.windowCounts);
    const total = histogramStats(this.totalCounts);
    return {
      step: this.stepCount,
      initialized: this.isInitialized,
      usage: w.usage,
      perplexity: w.perplexity,
      totalUsage: total.usage,
      totalPerplexity: total.perplexity,
      restarts: this.restartCount,
    };
  }

  /** Chosen-code counts over the window and since the start (copies). */
  histograms(): { window: Float64Array; total: Float64Array } {
    return { window: Float64Array.from(this.windowCounts), total: Float64Array.from(this.totalCounts) };
  }

  /** Reads a forward pass's codes and latents to the host (the argument of update). */
  static readBatch(codes: tf.Tensor, zs: tf.Tensor, zp: tf.Tensor): QuantizerBatch {
    return {
      codes: Int32Array.from(codes.dataSync() as Int32Array),
      zs: Float32Array.from(zs.dataSync() as Float32Array),
      zp: Float32Array.from(zp.dataSync() as Float32Array),
    };
  }

  // ---- state ----

  /** The complete host state (not the codebooks themselves: those are weights) as named typed arrays. */
  getState(): TensorMap {
    const { K, ds, dp } = this;
    const D = ds + dp;
    const counters = new Int32Array(COUNTERS.length);
    const values: Record<(typeof COUNTERS)[number], number> = {
      step: this.stepCount,
      initialized: this.isInitialized ? 1 : 0,
      initRows: this.initCount,
      reservoirFill: this.reservoirFill,
      reservoirNext: this.reservoirNext,
      rngState: this.rng.getState() | 0,
      restarts: this.restartCount,
      windowLength: this.window.length,
    };
    COUNTERS.forEach((name, i) => (counters[i] = values[name]));
    const lo = new Int32Array(K);
    const hi = new Int32Array(K);
    for (let k = 0; k < K; k++) {
      hi[k] = Math.floor(this.totalCounts[k] / TWO_POW_31);
      lo[k] = this.totalCounts[k] - hi[k] * TWO_POW_31;
    }
    const windowTotal = this.window.reduce((n, e) => n + e.codes.length, 0);
    const wCodes = new Int32Array(windowTotal);
    const wCounts = new Int32Array(windowTotal);
    const wLengths = new Int32Array(this.window.length);
    let at = 0;
    this.window.forEach((e, i) => {
      wCodes.set(e.codes, at);
      wCounts.set(e.counts, at);
      wLengths[i] = e.codes.length;
      at += e.codes.length;
    });
    const out: Record<string, TensorRecord> = {
      'quantizer.counters': tensorRecord('int32', [COUNTERS.length], counters),
      'quantizer.last_used': tensorRecord('int32', [K], Int32Array.from(this.lastUsed)),
      'quantizer.total_counts_lo': tensorRecord('int32', [K], lo),
      'quantizer.total_counts_hi': tensorRecord('int32', [K], hi),
      'quantizer.window_codes': tensorRecord('int32', [windowTotal], wCodes),
      'quantizer.window_counts': tensorRecord('int32', [windowTotal], wCounts),
      'quantizer.window_lengths': tensorRecord('int32', [this.window.length], wLengths),
      'quantizer.reservoir': tensorRecord('float32', [this.config.reservoirSize, D], Float32Array.from(this.reservoir)),
      'quantizer.init_rows': tensorRecord('float32', [this.initCount, D], concatRows(this.initRows, this.initCount * D)),
    };
    if (this.config.codebookUpdate === 'ema') {
      out['quantizer.ema_cluster_size'] = tensorRecord('float32', [K], Float32Array.from(this.clusterSize));
      out['quantizer.ema_sum_s'] = tensorRecord('float32', [K, ds], Float32Array.from(this.sumS));
      out['quantizer.ema_sum_p'] = tensorRecord('float32', [K, dp], Float32Array.from(this.sumP));
    }
    return out;
  }

  /** Restores what getState returned (for the same config); checks names, dtypes and shapes first, so a bad record changes nothing. */
  setState(state: TensorMap): void {
    const { K, ds, dp } = this;
    const D = ds + dp;
    const expected = this.getState();
    const missing = Object.keys(expected).filter((n) => !(n in state));
    const unknown = Object.keys(state).filter((n) => !(n in expected));
    if (missing.length > 0 || unknown.length > 0) {
      throw new VtokError('INVALID_INPUT', `Quantizer state does not match the config: ${describeMismatch(missing, unknown)}`);
    }
    const counters = state['quantizer.counters'];
    checkRecord('quantizer.counters', counters, 'int32', [COUNTERS.length]);
    const c = Object.fromEntries(COUNTERS.map((name, i) => [name, counters.data[i]])) as Record<(typeof COUNTERS)[number], number>;
    const fixed: [string, 'int32' | 'float32', number[]][] = [
      ['quantizer.last_used', 'int32', [K]],
      ['quantizer.total_counts_lo', 'int32', [K]],
      ['quantizer.total_counts_hi', 'int32', [K]],
      ['quantizer.window_lengths', 'int32', [c.windowLength]],
      ['quantizer.reservoir', 'float32', [this.config.reservoirSize, D]],
      ['quantizer.init_rows', 'float32', [c.initRows, D]],
    ];
    if (this.config.codebookUpdate === 'ema') {
      fixed.push(['quantizer.ema_cluster_size', 'float32', [K]], ['quantizer.ema_sum_s', 'float32', [K, ds]], ['quantizer.ema_sum_p', 'float32', [K, dp]]);
    }
    for (const [name, dtype, shape] of fixed) checkRecord(name, state[name], dtype, shape);
    const lengths = state['quantizer.window_lengths'].data as Int32Array;
    const windowTotal = lengths.reduce((a, b) => a + b, 0);
    checkRecord('quantizer.window_codes', state['quantizer.window_codes'], 'int32', [windowTotal]);
    checkRecord('quantizer.window_counts', state['quantizer.window_counts'], 'int32', [windowTotal]);

    this.stepCount = c.step;
    this.isInitialized = c.initialized === 1;
    this.reservoirFill = c.reservoirFill;
    this.reservoirNext = c.reservoirNext;
    this.rng.setState(c.rngState >>> 0);
    this.restartCount = c.restarts;
    this.lastUsed.set(state['quantizer.last_used'].data as Int32Array);
    const lo = state['quantizer.total_counts_lo'].data as Int32Array;
    const hi = state['quantizer.total_counts_hi'].data as Int32Array;
    for (let k = 0; k < K; k++) this.totalCounts[k] = hi[k] * TWO_POW_31 + lo[k];
    const wCodes = state['quantizer.window_codes'].data as Int32Array;
    const wCounts = state['quantizer.window_counts'].data as Int32Array;
    this.window = [];
    this.windowCounts.fill(0);
    let at = 0;
    for (const len of lengths) {
      const e = { codes: wCodes.slice(at, at + len), counts: wCounts.slice(at, at + len) };
      for (let i = 0; i < len; i++) this.windowCounts[e.codes[i]] += e.counts[i];
      this.window.push(e);
      at += len;
    }
    this.reservoir.set(state['quantizer.reservoir'].data as Float32Array);
    this.initCount = c.initRows;
    this.initRows = c.initRows > 0 ? [Float32Array.from(state['quantizer.init_rows'].data as Float32Array)] : [];
    if (this.config.codebookUpdate === 'ema') {
      this.clusterSize.set(state['quantizer.ema_cluster_size'].data as Float32Array);
      this.sumS.set(state['quantizer.ema_sum_s'].data as Float32Array);
      this.sumP.set(state['quantizer.ema_sum_p'].data as Float32Array);
    }
  }

  // ---- pieces ----

  private checkBatch(batch: QuantizerBatch): number {
    const N = batch.codes.length;
    if (batch.zs.length !== N * this.ds || batch.zp.length !== N * this.dp) {
      throw new VtokError(
        'INVALID_INPUT',
        `Expected ${N} rows of d_s ${this.ds} and d_p ${this.dp} for ${N} codes but received ${batch.zs.length} and ${batch.zp.length} values`,
      );
    }
    for (let i = 0; i < N; i++) {
      const k = batch.codes[i];
      if (!(k >= 0 && k < this.K)) throw new VtokError('INVALID_INPUT', `Expected codes between 0 and ${this.K - 1} but received ${k} at ${i}`);
    }
    return N;
  }

  private recordUsage(codes: Int32Array, t: number): void {
    const counts = new Map<number, number>();
    for (const k of codes) counts.set(k, (counts.get(k) ?? 0) + 1);
    const entry: WindowEntry = { codes: new Int32Array(counts.size), counts: new Int32Array(counts.size) };
    let i = 0;
    for (const [k, n] of [...counts.entries()].sort((a, b) => a[0] - b[0])) {
      entry.codes[i] = k;
      entry.counts[i++] = n;
      this.totalCounts[k] += n;
      this.windowCounts[k] += n;
      this.lastUsed[k] = t;
    }
    this.window.push(entry);
    while (this.window.length > this.config.usageWindow) {
      const old = this.window.shift() as WindowEntry;
      for (let j = 0; j < old.codes.length; j++) this.windowCounts[old.codes[j]] -= old.counts[j];
    }
  }

  /** Adds a random subset (at most a quarter of the reservoir) of this batch's latents to the ring. */
  private addToReservoir(batch: QuantizerBatch, N: number): void {
    const { ds, dp } = this;
    const D = ds + dp;
    const R = this.config.reservoirSize;
    const m = Math.min(N, Math.ceil(R / 4));
    const order = Int32Array.from({ length: N }, (_, i) => i);
    for (let j = 0; j < m; j++) {
      const r = j + this.rng.int(N - j);
      const src = order[r];
      order[r] = order[j];
      order[j] = src;
      const at = this.reservoirNext * D;
      this.reservoir.set(batch.zs.subarray(src * ds, (src + 1) * ds), at);
      this.reservoir.set(batch.zp.subarray(src * dp, (src + 1) * dp), at + ds);
      this.reservoirNext = (this.reservoirNext + 1) % R;
      this.reservoirFill = Math.min(R, this.reservoirFill + 1);
    }
  }

  private collectForInit(batch: QuantizerBatch, N: number): void {
    const { ds, dp } = this;
    const rows = new Float32Array(N * (ds + dp));
    for (let i = 0; i < N; i++) {
      rows.set(batch.zs.subarray(i * ds, (i + 1) * ds), i * (ds + dp));
      rows.set(batch.zp.subarray(i * dp, (i + 1) * dp), i * (ds + dp) + ds);
    }
    this.initRows.push(rows);
    this.initCount += N;
  }

  /** cluster_size <- decay * size + (1 - decay) * n_k; sums likewise; code k <- normalize(sum_k / smoothed n_k) per branch. */
  private emaUpdate(batch: QuantizerBatch, N: number): void {
    const { K, ds, dp } = this;
    const { emaDecay: decay, emaEps: eps } = this.config;
    const counts = new Float64Array(K);
    const bs = new Float64Array(K * ds);
    const bp = new Float64Array(K * dp);
    for (let i = 0; i < N; i++) {
      const k = batch.codes[i];
      counts[k]++;
      for (let j = 0; j < ds; j++) bs[k * ds + j] += batch.zs[i * ds + j];
      for (let j = 0; j < dp; j++) bp[k * dp + j] += batch.zp[i * dp + j];
    }
    let total = 0;
    for (let k = 0; k < K; k++) {
      this.clusterSize[k] = decay * this.clusterSize[k] + (1 - decay) * counts[k];
      total += this.clusterSize[k];
    }
    for (let i = 0; i < K * ds; i++) this.sumS[i] = decay * this.sumS[i] + (1 - decay) * bs[i];
    for (let i = 0; i < K * dp; i++) this.sumP[i] = decay * this.sumP[i] + (1 - decay) * bp[i];
    const { es, ep } = this.readCodebooks();
    for (let k = 0; k < K; k++) {
      const smoothed = ((this.clusterSize[k] + eps) / (total + K * eps)) * total;
      if (!(smoothed > 0)) continue;
      setNormalizedRow(es, k, ds, this.sumS, 1 / smoothed);
      setNormalizedRow(ep, k, dp, this.sumP, 1 / smoothed);
    }
    this.assignCodebooks(es, ep);
  }

  /** Replaces dead codes by reservoir latents; returns their indices. */
  private restartDeadCodes(t: number): number[] {
    const { K, ds, dp } = this;
    const D = ds + dp;
    const { deadCodeSteps, deadCodeThreshold } = this.config;
    const dead: number[] = [];
    for (let k = 0; k < K; k++) {
      const idle = deadCodeSteps > 0 && t - this.lastUsed[k] >= deadCodeSteps;
      const small = deadCodeThreshold > 0 && this.clusterSize[k] < deadCodeThreshold;
      if (idle || small) dead.push(k);
    }
    if (dead.length === 0 || this.reservoirFill === 0) return [];
    const F = this.reservoirFill;
    // Distinct reservoir rows when there are enough, else with replacement.
    const order = Int32Array.from({ length: F }, (_, i) => i);
    const { es, ep } = this.readCodebooks();
    dead.forEach((k, j) => {
      let src: number;
      if (dead.length <= F) {
        const r = j + this.rng.int(F - j);
        src = order[r];
        order[r] = order[j];
        order[j] = src;
      } else {
        src = this.rng.int(F);
      }
      es.set(this.reservoir.subarray(src * D, src * D + ds), k * ds);
      ep.set(this.reservoir.subarray(src * D + ds, (src + 1) * D), k * dp);
      normalizeRows(es, ds, k, k + 1);
      normalizeRows(ep, dp, k, k + 1);
      this.lastUsed[k] = t;
    });
    if (this.config.codebookUpdate === 'ema') {
      // A restarted code starts at the threshold size (vector-quantize-pytorch), with the new latent as its sum's direction.
      const sizes = Float32Array.from(this.clusterSize);
      for (const k of dead) sizes[k] = deadCodeThreshold;
      this.setEmaState(sizes, es, ep, dead);
    }
    this.assignCodebooks(es, ep);
    this.restartCount += dead.length;
    return dead;
  }

  /**
   * Sets the EMA state of some codes (all when `rows` is omitted) from the
   * codebooks and cluster sizes (indexed by code): sum_k = E_k * size_k, or
   * E_k itself when size_k is 0, so that an unused code's sum still holds its
   * direction (vector-quantize-pytorch starts embed_avg at the codes too).
   */
  private setEmaState(sizes: ArrayLike<number>, es: Float32Array, ep: Float32Array, rows?: readonly number[]): void {
    const { ds, dp } = this;
    const set = (k: number): void => {
      this.clusterSize[k] = sizes[k];
      const scale = sizes[k] > 0 ? sizes[k] : 1;
      for (let i = 0; i < ds; i++) this.sumS[k * ds + i] = es[k * ds + i] * scale;
      for (let i = 0; i < dp; i++) this.sumP[k * dp + i] = ep[k * dp + i] * scale;
    };
    if (rows === undefined) for (let k = 0; k < this.K; k++) set(k);
    else rows.forEach(set);
  }

  private readCodebooks(): { es: Float32Array; ep: Float32Array } {
    return { es: Float32Array.from(this.semantic.dataSync() as Float32Array), ep: Float32Array.from(this.pixel.dataSync() as Float32Array) };
  }

  private assignCodebooks(es: Float32Array, ep: Float32Array): void {
    tf.tidy(() => {
      this.semantic.assign(tf.tensor2d(es, [this.K, this.ds]));
      this.pixel.assign(tf.tensor2d(ep, [this.K, this.dp]));
    });
  }
}

/** Usage and perplexity of a histogram. */
export function histogramStats(counts: ArrayLike<number>): { usage: number; perplexity: number } {
  let total = 0;
  let used = 0;
  for (let k = 0; k < counts.length; k++) {
    if (counts[k] > 0) {
      total += counts[k];
      used++;
    }
  }
  if (total === 0) return { usage: 0, perplexity: 0 };
  let entropy = 0;
  for (let k = 0; k < counts.length; k++) {
    if (counts[k] > 0) {
      const p = counts[k] / total;
      entropy -= p * Math.log(p);
    }
  }
  return { usage: used / counts.length, perplexity: Math.exp(entropy) };
}

/** Normalizes the [0, ds) and [ds, ds + dp) parts of each of K rows of width ds + dp, in place. */
function normalizeBranches(rows: Float32Array, K: number, ds: number, dp: number): void {
  const D = ds + dp;
  for (let k = 0; k < K; k++) {
    normalizeRows(rows.subarray(k * D, k * D + ds), ds);
    normalizeRows(rows.subarray(k * D + ds, (k + 1) * D), dp);
  }
}

/** target row k <- normalize(scale * source row k); keeps the old row when the source is (almost) zero. */
function setNormalizedRow(target: Float32Array, k: number, d: number, source: Float32Array, scale: number): void {
  let s = 0;
  for (let j = 0; j < d; j++) s += (source[k * d + j] * scale) ** 2;
  if (!(s > 1e-24)) return;
  const inv = scale / Math.sqrt(s);
  for (let j = 0; j < d; j++) target[k * d + j] = source[k * d + j] * inv;
}

function concatRows(parts: Float32Array[], length: number): Float32Array {
  if (parts.length === 1 && parts[0].length === length) return parts[0];
  const out = new Float32Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function describeMismatch(missing: string[], unknown: string[]): string {
  const parts: string[] = [];
  if (missing.length > 0) parts.push(`missing ${missing.join(', ')}`);
  if (unknown.length > 0) parts.push(`unknown ${unknown.join(', ')}`);
  return parts.join('; ');
}

function checkRecord(name: string, rec: TensorRecord, dtype: 'int32' | 'float32', shape: number[]): void {
  const ok = rec !== undefined && rec.dtype === dtype && rec.shape.length === shape.length && rec.shape.every((d, i) => d === shape[i]);
  const size = shape.reduce((a, b) => a * b, 1);
  if (!ok || rec.data.length !== size) {
    throw new VtokError(
      'INVALID_INPUT',
      `Expected ${name} to be ${dtype} [${shape.join(', ')}] but received ${rec === undefined ? 'nothing' : `${rec.dtype} [${rec.shape.join(', ')}]`}`,
      { subject: name },
    );
  }
}
