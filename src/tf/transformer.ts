/**
 * A decoder-only transformer over the unified vocabulary: the autoregressive
 * head that reads and writes text and visual ids in one stream (GPT-2,
 * Radford et al. 2019; LlamaGen, Sun et al. 2024, for the Llama-style choices:
 * RMSNorm, RoPE, SwiGLU, no biases). Layout after nanoGPT: embeddings, L
 * pre-norm blocks (attention, MLP), final norm, output head.
 *
 * Padding: `<pad>` (config.padId) is invisible. No query attends to a pad key
 * and pads do not advance positions, so a row may be left-padded (prompts of
 * different lengths in one batch, cond/uncond rows for guidance) or
 * right-padded (training batches) without changing any real token's output.
 *
 * KV cache ownership: `prefill` returns a new KvCache that the caller owns.
 * `step(cache, ...)` consumes its cache (disposes it) and returns the next one;
 * the caller disposes the last cache with `cache.dispose()`. Using a consumed
 * cache throws. Logits returned by forward/prefill/step belong to the caller.
 */

import * as tf from '@tensorflow/tfjs';
import { VtokError, checkInt, checkNumber, checkOneOf, invalidOption, resolveOptions } from '../core/errors';
import { Rng } from '../core/random';
import { MASKED, applyRope, attend, attentionBias, ropeTables, rotateHalfMatrix } from './attention';

export interface TransformerConfig {
  /** Number of ids in the unified vocabulary (required). */
  vocabSize: number;
  /** Longest sequence in positions (prompt + generated, pads excluded). Default 256. */
  contextLength: number;
  /** Width of the residual stream. Default 128. */
  dModel: number;
  /** Number of blocks. Default 4. */
  nLayers: number;
  /** Attention heads; dModel / nHeads must be an even integer (RoPE rotates pairs). Default 4. */
  nHeads: number;
  /** 'swiglu' (Llama, LlamaGen) or 'gelu' (GPT-2). Default 'swiglu'. */
  mlp: 'swiglu' | 'gelu';
  /** MLP hidden width; 0 = 4 * dModel for gelu, 8/3 * dModel rounded up to a multiple of 8 for swiglu (same parameters). Default 0. */
  mlpHidden: number;
  /** 'rms' (RMSNorm, Zhang & Sennrich 2019) or 'layer' (LayerNorm). Default 'rms'. */
  norm: 'rms' | 'layer';
  /** Epsilon inside the norm. Default 1e-5. */
  normEps: number;
  /** 'rope' (rotary, relative) or 'learned' (absolute table, GPT-2). Default 'rope'. */
  positions: 'rope' | 'learned';
  /** RoPE base. Default 10000. */
  ropeBase: number;
  /**
   * Rows and columns of an additive 2D position embedding for visual tokens
   * (row and column of each token's anchor cell, given as pos2d); 0 = off.
   * Default 0, 0.
   */
  gridRows: number;
  gridCols: number;
  /** Output head shares the token embedding matrix (Press & Wolf 2017). Default true. */
  tieEmbeddings: boolean;
  /** Biases in linear layers and LayerNorm. Default false. */
  bias: boolean;
  /** Dropout rate on embeddings, attention weights and residual branches, applied only when training. Default 0. */
  dropout: number;
  /** The id that is never attended to and does not advance positions; -1 for none. Default 0 (`<pad>` in Vocab). */
  padId: number;
  /** Standard deviation of the initial weights (residual projections are scaled by 1/sqrt(2 nLayers), as in GPT-2). Default 0.02. */
  initStd: number;
}

export const TRANSFORMER_DEFAULTS: TransformerConfig = {
  vocabSize: 0,
  contextLength: 256,
  dModel: 128,
  nLayers: 4,
  nHeads: 4,
  mlp: 'swiglu',
  mlpHidden: 0,
  norm: 'rms',
  normEps: 1e-5,
  positions: 'rope',
  ropeBase: 10000,
  gridRows: 0,
  gridCols: 0,
  tieEmbeddings: true,
  bias: false,
  dropout: 0,
  padId: 0,
  initStd: 0.02,
};

/**
 * Named sizes, from tests to a GPU. vocabSize and contextLength come from the
 * data. Weights excluding the embedding (V x dModel): tiny 0.1M, small 4.7M,
 * base 25M, large 85M (GPT-2 small / LlamaGen-B scale).
 */
export const TRANSFORMER_PRESETS = {
  /** Tests and smoke runs, any backend. */
  tiny: { dModel: 64, nLayers: 2, nHeads: 2 },
  /** CPU / wasm experiments (Fashion-MNIST-sized data). */
  small: { dModel: 256, nLayers: 6, nHeads: 4 },
  /** One GPU. */
  base: { dModel: 512, nLayers: 8, nHeads: 8 },
  /** A GPU for a day. */
  large: { dModel: 768, nLayers: 12, nHeads: 12 },
} as const satisfies Record<string, Partial<TransformerConfig>>;

export type TransformerPreset = keyof typeof TRANSFORMER_PRESETS;

/** Fills defaults and checks every field; unknown keys are rejected. */
export function resolveTransformerConfig(config: Partial<TransformerConfig>): TransformerConfig {
  const c = resolveOptions('TransformerConfig', TRANSFORMER_DEFAULTS, config);
  checkInt('vocabSize', c.vocabSize, 2);
  checkInt('contextLength', c.contextLength, 1, 1 << 20);
  checkInt('dModel', c.dModel, 2);
  checkInt('nLayers', c.nLayers, 1);
  checkInt('nHeads', c.nHeads, 1, c.dModel);
  if (c.dModel % c.nHeads !== 0 || (c.dModel / c.nHeads) % 2 !== 0) {
    throw invalidOption('nHeads', `a divisor of dModel ${c.dModel} that leaves an even head size`, c.nHeads);
  }
  checkOneOf('mlp', c.mlp, ['swiglu', 'gelu']);
  checkInt('mlpHidden', c.mlpHidden, 0);
  checkOneOf('norm', c.norm, ['rms', 'layer']);
  checkNumber('normEps', c.normEps, 0, 1);
  checkOneOf('positions', c.positions, ['rope', 'learned']);
  checkNumber('ropeBase', c.ropeBase, 1);
  checkInt('gridRows', c.gridRows, 0, 65535);
  checkInt('gridCols', c.gridCols, 0, 65535);
  if ((c.gridRows === 0) !== (c.gridCols === 0)) throw invalidOption('gridCols', `0 when gridRows is 0 and > 0 otherwise (gridRows ${c.gridRows})`, c.gridCols);
  if (typeof c.tieEmbeddings !== 'boolean') throw invalidOption('tieEmbeddings', 'a boolean', c.tieEmbeddings);
  if (typeof c.bias !== 'boolean') throw invalidOption('bias', 'a boolean', c.bias);
  checkNumber('dropout', c.dropout, 0, 0.99);
  checkInt('padId', c.padId, -1, c.vocabSize - 1);
  checkNumber('initStd', c.initStd, 0);
  return c;
}

/** The MLP hidden width a config resolves to. */
export function mlpWidth(c: TransformerConfig): number {
  if (c.mlpHidden > 0) return c.mlpHidden;
  return c.mlp === 'gelu' ? 4 * c.dModel : Math.ceil((8 * c.dModel) / 3 / 8) * 8;
}

/** Names and shapes of every weight, in a fixed order (the order of getWeights and trainableVariables). */
export function weightShapes(config: TransformerConfig): Record<string, number[]> {
  const { vocabSize: V, dModel: C, nLayers: L, contextLength } = config;
  const F = mlpWidth(config);
  const s: Record<string, number[]> = { tok_emb: [V, C] };
  if (config.positions === 'learned') s.pos_emb = [contextLength, C];
  if (config.gridRows > 0) {
    s.row_emb = [config.gridRows, C];
    s.col_emb = [config.gridCols, C];
  }
  const norm = (name: string): void => {
    s[`${name}.g`] = [C];
    if (config.norm === 'layer' && config.bias) s[`${name}.b`] = [C];
  };
  for (let l = 0; l < L; l++) {
    norm(`h${l}.ln1`);
    s[`h${l}.attn.wqkv`] = [C, 3 * C];
    if (config.bias) s[`h${l}.attn.bqkv`] = [3 * C];
    s[`h${l}.attn.wo`] = [C, C];
    if (config.bias) s[`h${l}.attn.bo`] = [C];
    norm(`h${l}.ln2`);
    s[`h${l}.mlp.w1`] = [C, F];
    if (config.bias) s[`h${l}.mlp.b1`] = [F];
    if (config.mlp === 'swiglu') s[`h${l}.mlp.w3`] = [C, F];
    s[`h${l}.mlp.w2`] = [F, C];
    if (config.bias) s[`h${l}.mlp.b2`] = [C];
  }
  norm('ln_f');
  if (!config.tieEmbeddings) s.head = [C, V];
  return s;
}

/** Number of weights (scalars) a config has, without building the model. */
export function countParams(config: TransformerConfig): number {
  return Object.values(weightShapes(config)).reduce((n, shape) => n + shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Keys and values of every layer for the positions seen so far, with each
 * row's padding and next position. Owned by whoever holds it; see the file
 * comment for the prefill/step/dispose protocol.
 */
export class KvCache {
  /** Rows. */
  readonly batch: number;
  /** Positions held (pads included): S. */
  readonly length: number;
  /** Per layer, [B, H, S, hd]. */
  readonly keys: readonly tf.Tensor4D[];
  readonly values: readonly tf.Tensor4D[];
  /** [B, S]: 0 for real tokens, MASKED for pads. */
  readonly keyBias: tf.Tensor2D;
  /** Per row, the position of its next real token (pads excluded). */
  readonly nextPosition: Int32Array;
  private alive = true;

  constructor(keys: tf.Tensor4D[], values: tf.Tensor4D[], keyBias: tf.Tensor2D, nextPosition: Int32Array) {
    this.keys = keys;
    this.values = values;
    this.keyBias = keyBias;
    this.nextPosition = nextPosition;
    [this.batch, this.length] = keyBias.shape;
  }

  get disposed(): boolean {
    return !this.alive;
  }

  /** Frees every tensor of the cache. Safe to call twice. */
  dispose(): void {
    if (!this.alive) return;
    this.alive = false;
    for (const t of this.keys) t.dispose();
    for (const t of this.values) t.dispose();
    this.keyBias.dispose();
  }
}

/** Rows of ids, all of the same length (left-pad with padId). */
export type IdRows = readonly ArrayLike<number>[];

export interface ForwardOptions {
  /** Anchor (row, column) of each token, -1 for non-visual ids: [B, T, 2] int32. Used when gridRows > 0. */
  pos2d?: tf.Tensor3D;
  /** Applies dropout (when config.dropout > 0). Default false. */
  training?: boolean;
}

export interface StepResult {
  /** Logits of the next id for each row: [B, V]. */
  logits: tf.Tensor2D;
  cache: KvCache;
}

interface Rope {
  cos: tf.Tensor4D; // [B, 1, T, hd]
  sin: tf.Tensor4D;
  rotateHalf: tf.Tensor2D; // [hd, hd]
}

export class Transformer {
  readonly config: TransformerConfig;
  /** Every weight by name (see weightShapes). */
  readonly variables: Readonly<Record<string, tf.Variable>>;
  private readonly ropeCos: tf.Tensor2D | null = null; // [contextLength, hd]
  private readonly ropeSin: tf.Tensor2D | null = null;
  private readonly rotateHalf: tf.Tensor2D | null = null; // [hd, hd]
  private readonly dropoutRng: Rng;
  private alive = true;

  /** A model with freshly initialized weights (seeded: the same seed gives the same weights on every backend). */
  constructor(config: Partial<TransformerConfig>, options: { seed?: number } = {}) {
    this.config = resolveTransformerConfig(config);
    const seed = options.seed ?? 0;
    checkNumber('seed', seed);
    const rng = new Rng(seed);
    this.dropoutRng = new Rng(seed + 1);
    const c = this.config;
    const residualStd = c.initStd / Math.sqrt(2 * c.nLayers);
    const vars: Record<string, tf.Variable> = {};
    for (const [name, shape] of Object.entries(weightShapes(c))) {
      const size = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(size);
      if (name.endsWith('.g')) data.fill(1);
      else if (!/\.b[a-z0-9]*$/.test(name)) {
        const std = name.endsWith('attn.wo') || name.endsWith('mlp.w2') ? residualStd : c.initStd;
        for (let i = 0; i < size; i++) data[i] = rng.normal() * std;
      }
      // tidy frees the initial tensor (a variable made from a tensor does not take ownership of it).
      vars[name] = tf.tidy(() => tf.variable(tf.tensor(data, shape, 'float32'), true));
    }
    this.variables = vars;
    if (c.positions === 'rope') {
      const hd = c.dModel / c.nHeads;
      const { cos, sin } = ropeTables(c.contextLength, hd, c.ropeBase);
      this.ropeCos = tf.tensor2d(cos, [c.contextLength, hd]);
      this.ropeSin = tf.tensor2d(sin, [c.contextLength, hd]);
      this.rotateHalf = tf.tensor2d(rotateHalfMatrix(hd), [hd, hd]);
    }
  }

  /** Number of weights (scalars). */
  get numParams(): number {
    return Object.values(this.variables).reduce((n, v) => n + v.size, 0);
  }

  /** The weights, in weightShapes order (for an optimizer's varList). */
  trainableVariables(): tf.Variable[] {
    return Object.values(this.variables);
  }

  /** Copies of every weight as plain typed arrays, by name. */
  getWeights(): Record<string, Float32Array> {
    this.checkAlive();
    const out: Record<string, Float32Array> = {};
    for (const [name, v] of Object.entries(this.variables)) out[name] = Float32Array.from(v.dataSync() as Float32Array);
    return out;
  }

  /** Replaces every weight; names and sizes must match the config exactly. */
  setWeights(weights: Readonly<Record<string, ArrayLike<number>>>): void {
    this.checkAlive();
    const names = Object.keys(this.variables);
    const missing = names.filter((n) => !(n in weights));
    const unknown = Object.keys(weights).filter((n) => !(n in this.variables));
    if (missing.length > 0 || unknown.length > 0) {
      throw new VtokError(
        'INVALID_INPUT',
        `Weights do not match the transformer config: ${missing.length > 0 ? `missing ${missing.join(', ')}` : ''}${missing.length > 0 && unknown.length > 0 ? '; ' : ''}${unknown.length > 0 ? `unknown ${unknown.join(', ')}` : ''}`,
      );
    }
    for (const name of names) {
      const v = this.variables[name];
      if (weights[name].length !== v.size) {
        throw new VtokError('INVALID_INPUT', `Expected ${v.size} values for weight ${name} [${v.shape.join(', ')}] but received ${weights[name].length}`, {
          subject: name,
        });
      }
    }
    tf.tidy(() => {
      for (const name of names) this.variables[name].assign(tf.tensor(Float32Array.from(weights[name]), this.variables[name].shape, 'float32'));
    });
  }

  /** Frees the weights. */
  dispose(): void {
    if (!this.alive) return;
    this.alive = false;
    for (const v of Object.values(this.variables)) v.dispose();
    this.ropeCos?.dispose();
    this.ropeSin?.dispose();
    this.rotateHalf?.dispose();
  }

  /**
   * Logits for every position: ids [B, T] int32 -> [B, T, V].
   * Position t's logits predict id t+1 from ids 0..t.
   */
  forward(ids: tf.Tensor2D, options: ForwardOptions = {}): tf.Tensor3D {
    this.checkAlive();
    const c = this.config;
    const [B, T] = ids.shape;
    if (ids.dtype !== 'int32') throw invalidOption('ids', 'an int32 tensor', ids.dtype);
    if (T > c.contextLength) throw invalidOption('ids', `at most contextLength ${c.contextLength} positions`, T);
    this.checkPos2dTensor(options.pos2d, [B, T]);
    return tf.tidy(() => {
      const { positions, keyBias } = this.padInfo(ids); // [B, T] int32, [B, T] float32
      const training = options.training === true && c.dropout > 0;
      let x = this.embed(ids, positions, options.pos2d, training); // [B, T, C]
      const bias = attentionBias(keyBias, T); // [B, 1, T, T]
      const rope = this.rope(positions);
      for (let l = 0; l < c.nLayers; l++) x = this.block(l, x, bias, rope, null, training).x;
      return this.head(x); // [B, T, V]
    });
  }

  /**
   * Runs a prompt and keeps its keys and values: ids as rows of equal length
   * (left-pad shorter prompts with padId). Returns the logits of each row's
   * next id [B, V] and a new cache (owned by the caller).
   * pos2d: per row, [row, col] of each id flattened (length 2T), -1 for non-visual.
   */
  prefill(ids: IdRows, pos2d?: IdRows): StepResult {
    this.checkAlive();
    const c = this.config;
    const B = ids.length;
    if (B === 0) throw invalidOption('ids', 'at least one row', ids);
    const T = ids[0].length;
    if (T === 0) throw invalidOption('ids', 'rows of at least one id', ids);
    const flat = new Int32Array(B * T);
    const nextPosition = new Int32Array(B);
    ids.forEach((row, b) => {
      if (row.length !== T) throw invalidOption(`ids[${b}]`, `a row of ${T} ids like ids[0] (left-pad with padId ${c.padId})`, row);
      for (let t = 0; t < T; t++) {
        const id = this.checkId(row[t], b, t);
        flat[b * T + t] = id;
        if (id !== c.padId) nextPosition[b]++;
      }
      if (nextPosition[b] > c.contextLength) {
        throw invalidOption(`ids[${b}]`, `at most contextLength ${c.contextLength} ids (pads excluded)`, row);
      }
    });
    const pos2dFlat = pos2d === undefined ? undefined : this.flatPos2d(pos2d, B, T, 'pos2d');
    const out = tf.tidy(() => {
      const idsT = tf.tensor2d(flat, [B, T], 'int32');
      const { positions, keyBias } = this.padInfo(idsT);
      const p2 = pos2dFlat === undefined ? undefined : tf.tensor3d(pos2dFlat, [B, T, 2], 'int32');
      let x = this.embed(idsT, positions, p2, false); // [B, T, C]
      const bias = attentionBias(keyBias, T);
      const rope = this.rope(positions);
      const keys: tf.Tensor4D[] = [];
      const values: tf.Tensor4D[] = [];
      for (let l = 0; l < c.nLayers; l++) {
        const r = this.block(l, x, bias, rope, null, false);
        x = r.x;
        keys.push(r.k);
        values.push(r.v);
      }
      const last = x.slice([0, T - 1, 0], [B, 1, c.dModel]) as tf.Tensor3D; // [B, 1, C]
      const logits = this.head(last).reshape([B, c.vocabSize]) as tf.Tensor2D;
      return { logits, keys, values, keyBias };
    });
    return { logits: out.logits, cache: new KvCache(out.keys, out.values, out.keyBias, nextPosition) };
  }

  /**
   * Feeds one id per row (padId for a row that should not advance) and
   * returns the next logits [B, V] and the next cache. Consumes `cache`.
   * pos2d: [row, col] per row, flattened (length 2B), -1 for non-visual.
   */
  step(cache: KvCache, ids: ArrayLike<number>, pos2d?: ArrayLike<number>): StepResult {
    this.checkAlive();
    if (cache.disposed) throw new VtokError('INVALID_INPUT', 'This KV cache was consumed by an earlier step (or disposed); use the cache that step returned');
    const c = this.config;
    const B = cache.batch;
    if (ids.length !== B) throw invalidOption('ids', `${B} ids (one per cache row)`, ids);
    const flat = new Int32Array(B);
    const positions = new Int32Array(B);
    const nextPosition = Int32Array.from(cache.nextPosition);
    for (let b = 0; b < B; b++) {
      flat[b] = this.checkId(ids[b], b, cache.length);
      positions[b] = Math.min(nextPosition[b], c.contextLength - 1);
      if (flat[b] !== c.padId) {
        if (nextPosition[b] >= c.contextLength) {
          throw new VtokError('INVALID_INPUT', `Row ${b} would reach position ${nextPosition[b]} but the model's contextLength is ${c.contextLength}`, {
            subject: 'contextLength',
          });
        }
        nextPosition[b]++;
      }
    }
    // One row of B (row, column) pairs: the same memory layout as [B, 1, 2].
    const pos2dFlat = pos2d === undefined ? undefined : this.flatPos2d([pos2d], 1, B, 'step pos2d');
    const out = tf.tidy(() => {
      const idsT = tf.tensor2d(flat, [B, 1], 'int32');
      const posT = tf.tensor2d(positions, [B, 1], 'int32');
      const newBias = tf.tensor2d(Float32Array.from(flat, (id) => (id === c.padId ? MASKED : 0)), [B, 1]);
      const keyBias = tf.concat([cache.keyBias, newBias], 1) as tf.Tensor2D; // [B, S+1]
      const p2 = pos2dFlat === undefined ? undefined : tf.tensor3d(pos2dFlat, [B, 1, 2], 'int32');
      let x = this.embed(idsT, posT, p2, false); // [B, 1, C]
      const bias = attentionBias(keyBias, 1); // [B, 1, 1, S+1]
      const rope = this.rope(posT);
      const keys: tf.Tensor4D[] = [];
      const values: tf.Tensor4D[] = [];
      for (let l = 0; l < c.nLayers; l++) {
        const r = this.block(l, x, bias, rope, { k: cache.keys[l], v: cache.values[l] }, false);
        x = r.x;
        keys.push(r.k);
        values.push(r.v);
      }
      const logits = this.head(x).reshape([B, c.vocabSize]) as tf.Tensor2D;
      return { logits, keys, values, keyBias };
    });
    cache.dispose();
    return { logits: out.logits, cache: new KvCache(out.keys, out.values, out.keyBias, nextPosition) };
  }

  /**
   * Runs the same Q new (non-visual) ids after every row of a cache and
   * returns their logits [B, Q, V], leaving the cache as it was (it is read,
   * not consumed). New id j sits at position nextPosition[b] + offsets[j] and
   * sees the whole cache plus the new ids i with sees[j * Q + i] = 1 (itself
   * always). Several short continuations thus share one pass: give each its
   * own block of ids, offsets 0, 1, ... and a causal mask within the block.
   */
  branch(cache: KvCache, ids: ArrayLike<number>, offsets: ArrayLike<number>, sees: ArrayLike<number>): tf.Tensor3D {
    this.checkAlive();
    if (cache.disposed) throw new VtokError('INVALID_INPUT', 'This KV cache was consumed by an earlier step (or disposed)');
    const c = this.config;
    const B = cache.batch;
    const S = cache.length;
    const Q = ids.length;
    if (Q === 0) throw invalidOption('ids', 'at least one id', ids);
    if (offsets.length !== Q) throw invalidOption('offsets', `${Q} offsets (one per id)`, offsets);
    if (sees.length !== Q * Q) throw invalidOption('sees', `a ${Q} x ${Q} mask (${Q * Q} values)`, sees);
    const flat = Int32Array.from({ length: Q }, (_, j) => this.checkId(ids[j], 0, S + j));
    const offs = Int32Array.from({ length: Q }, (_, j) => checkInt(`offsets[${j}]`, offsets[j], 0));
    const positions = new Int32Array(B * Q);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < Q; j++) {
        const p = cache.nextPosition[b] + offs[j];
        if (p >= c.contextLength) {
          throw new VtokError('INVALID_INPUT', `Row ${b} would reach position ${p} but the model's contextLength is ${c.contextLength}`, { subject: 'contextLength' });
        }
        positions[b * Q + j] = p;
      }
    }
    const own = new Float32Array(Q * Q);
    for (let j = 0; j < Q; j++) for (let i = 0; i < Q; i++) own[j * Q + i] = i === j || sees[j * Q + i] === 1 ? 0 : MASKED;
    return tf.tidy(() => {
      const idsT = tf.tile(tf.tensor2d(flat, [1, Q], 'int32'), [B, 1]) as tf.Tensor2D; // [B, Q]
      const posT = tf.tensor2d(positions, [B, Q], 'int32');
      const p2 = c.gridRows > 0 ? tf.fill([B, Q, 2], -1, 'int32') as tf.Tensor3D : undefined;
      let x = this.embed(idsT, posT, p2, false); // [B, Q, C]
      const past = tf.tile(cache.keyBias.reshape([B, 1, 1, S]), [1, 1, Q, 1]); // [B, 1, Q, S]
      const mine = tf.tile(tf.tensor4d(own, [1, 1, Q, Q]), [B, 1, 1, 1]); // [B, 1, Q, Q]
      const bias = tf.concat([past, mine], 3) as tf.Tensor4D; // [B, 1, Q, S + Q]
      const rope = this.rope(posT);
      for (let l = 0; l < c.nLayers; l++) x = this.block(l, x, bias, rope, { k: cache.keys[l], v: cache.values[l] }, false).x;
      return this.head(x); // [B, Q, V]
    });
  }

  // ---- pieces (called inside tidy) ----

  /** Positions (pads do not count) and the key bias of a batch of ids: [B, T] int32, [B, T] float32. */
  private padInfo(ids: tf.Tensor2D): { positions: tf.Tensor2D; keyBias: tf.Tensor2D } {
    const [B, T] = ids.shape;
    if (this.config.padId < 0) {
      return { positions: tf.tile(tf.range(0, T, 1, 'int32').reshape([1, T]), [B, 1]) as tf.Tensor2D, keyBias: tf.zeros([B, T]) };
    }
    const real = tf.cast(tf.notEqual(ids, this.config.padId), 'float32'); // [B, T]
    const positions = tf.cast(tf.maximum(tf.sub(tf.cumsum(real, 1), 1), 0), 'int32') as tf.Tensor2D;
    const keyBias = tf.mul(tf.sub(1, real), MASKED) as tf.Tensor2D;
    return { positions, keyBias };
  }

  private embed(ids: tf.Tensor2D, positions: tf.Tensor2D, pos2d: tf.Tensor3D | undefined, training: boolean): tf.Tensor3D {
    const c = this.config;
    const w = this.variables;
    let x = embeddingLookup(w.tok_emb, ids); // [B, T, C]
    if (c.positions === 'learned') x = tf.add(x, embeddingLookup(w.pos_emb, positions));
    if (c.gridRows > 0 && pos2d !== undefined) {
      // [B, T, 2] -> [2, B, T]: rows and columns as contiguous slices (a last-axis split is slow on cpu).
      const [rows, cols] = tf.unstack(tf.transpose(pos2d, [2, 0, 1])) as tf.Tensor2D[]; // [B, T] each
      const visual = tf.expandDims(tf.cast(tf.greaterEqual(rows, 0), 'float32'), 2); // [B, T, 1]
      const zero = tf.scalar(0, 'int32'); // a plain 0 would promote the indices to float32
      const r = tf.maximum(rows, zero) as tf.Tensor2D; // [B, T]
      const col = tf.maximum(cols, zero) as tf.Tensor2D;
      x = tf.add(x, tf.mul(tf.add(embeddingLookup(w.row_emb, r), embeddingLookup(w.col_emb, col)), visual));
    }
    return this.dropout(x, training);
  }

  private rope(positions: tf.Tensor2D): Rope | null {
    if (this.ropeCos === null || this.ropeSin === null || this.rotateHalf === null) return null;
    const cos = tf.expandDims(tf.gather(this.ropeCos, positions), 1) as tf.Tensor4D; // [B, 1, T, hd]
    const sin = tf.expandDims(tf.gather(this.ropeSin, positions), 1) as tf.Tensor4D;
    return { cos, sin, rotateHalf: this.rotateHalf };
  }

  /** One pre-norm block; returns the new residual stream and this layer's keys and values (past + new). */
  private block(
    l: number,
    x: tf.Tensor3D,
    bias: tf.Tensor4D,
    rope: Rope | null,
    past: { k: tf.Tensor4D; v: tf.Tensor4D } | null,
    training: boolean,
  ): { x: tf.Tensor3D; k: tf.Tensor4D; v: tf.Tensor4D } {
    const c = this.config;
    const w = this.variables;
    const [B, T, C] = x.shape;
    const H = c.nHeads;
    const hd = C / H;
    const p = `h${l}`;

    const h = this.normalize(x, `${p}.ln1`);
    const qkv = this.linear(h, w[`${p}.attn.wqkv`], w[`${p}.attn.bqkv`]); // [B, T, 3C]
    // [B, T, 3, H, hd] -> [3, B, H, T, hd]: q, k, v become contiguous slices along the first axis
    // (cheap on every backend; a split along the last axis is slow on the cpu backend).
    const [q0, k0, v0] = tf.unstack(qkv.reshape([B, T, 3, H, hd]).transpose([2, 0, 3, 1, 4])) as tf.Tensor4D[]; // [B, H, T, hd] each
    let q = q0;
    let k = k0;
    let v = v0;
    if (rope !== null) {
      q = applyRope(q, rope.cos, rope.sin, rope.rotateHalf);
      k = applyRope(k, rope.cos, rope.sin, rope.rotateHalf);
    }
    if (past !== null) {
      k = tf.concat([past.k, k], 2) as tf.Tensor4D; // [B, H, S, hd]
      v = tf.concat([past.v, v], 2) as tf.Tensor4D;
    }
    const seed = training ? this.dropoutRng.nextUint32() : undefined;
    const y = attend(q, k, v, bias, training ? c.dropout : 0, seed) // [B, H, T, hd]
      .transpose([0, 2, 1, 3])
      .reshape([B, T, C]) as tf.Tensor3D; // [B, T, C]
    x = tf.add(x, this.dropout(this.linear(y, w[`${p}.attn.wo`], w[`${p}.attn.bo`]), training));

    const h2 = this.normalize(x, `${p}.ln2`);
    let m: tf.Tensor3D;
    if (c.mlp === 'swiglu') {
      const gate = this.linear(h2, w[`${p}.mlp.w1`], w[`${p}.mlp.b1`]); // [B, T, F]
      const up = this.linear(h2, w[`${p}.mlp.w3`]);
      m = this.linear(tf.mul(tf.mul(gate, tf.sigmoid(gate)), up) as tf.Tensor3D, w[`${p}.mlp.w2`], w[`${p}.mlp.b2`]);
    } else {
      m = this.linear(gelu(this.linear(h2, w[`${p}.mlp.w1`], w[`${p}.mlp.b1`])), w[`${p}.mlp.w2`], w[`${p}.mlp.b2`]);
    }
    x = tf.add(x, this.dropout(m, training));
    return { x, k, v };
  }

  /** x [B, T, Cin] @ w [Cin, Cout] (+ b) -> [B, T, Cout]. */
  private linear(x: tf.Tensor3D, w: tf.Variable, b?: tf.Variable): tf.Tensor3D {
    const [B, T, Cin] = x.shape;
    const Cout = w.shape[1] as number;
    let y = tf.matMul(x.reshape([B * T, Cin]), w as tf.Tensor2D); // [B*T, Cout]
    if (b !== undefined) y = tf.add(y, b);
    return y.reshape([B, T, Cout]) as tf.Tensor3D;
  }

  private normalize(x: tf.Tensor3D, name: string): tf.Tensor3D {
    const c = this.config;
    const g = this.variables[`${name}.g`];
    if (c.norm === 'rms') {
      const ms = tf.mean(tf.square(x), -1, true); // [B, T, 1]
      return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, c.normEps))), g);
    }
    const { mean, variance } = tf.moments(x, -1, true);
    let y = tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, c.normEps))), g) as tf.Tensor3D;
    const b = this.variables[`${name}.b`];
    if (b !== undefined) y = tf.add(y, b);
    return y;
  }

  /** Final norm and output head: [B, T, C] -> [B, T, V]. */
  private head(x: tf.Tensor3D): tf.Tensor3D {
    const c = this.config;
    const [B, T, C] = x.shape;
    const h = this.normalize(x, 'ln_f').reshape([B * T, C]) as tf.Tensor2D;
    const logits = c.tieEmbeddings
      ? tf.matMul(h, this.variables.tok_emb as tf.Tensor2D, false, true) // [B*T, V]
      : tf.matMul(h, this.variables.head as tf.Tensor2D);
    return logits.reshape([B, T, c.vocabSize]);
  }

  private dropout<T extends tf.Tensor>(x: T, training: boolean): T {
    if (!training) return x;
    return tf.dropout(x, this.config.dropout, undefined, this.dropoutRng.nextUint32()) as T;
  }

  // ---- checks ----

  private checkAlive(): void {
    if (!this.alive) throw new VtokError('INVALID_INPUT', 'This transformer was disposed');
  }

  private checkId(id: number, row: number, t: number): number {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= this.config.vocabSize) {
      throw new VtokError('VOCAB', `Expected an id between 0 and ${this.config.vocabSize - 1} at row ${row}, position ${t} but received ${id}`, {
        subject: String(id),
      });
    }
    return id;
  }

  private flatPos2d(pos2d: IdRows, B: number, T: number, name: string): Int32Array {
    const c = this.config;
    if (c.gridRows === 0) throw invalidOption(name, 'no 2D positions (the model has gridRows 0)', pos2d);
    if (pos2d.length !== B) throw invalidOption(name, `${B} rows`, pos2d);
    const out = new Int32Array(B * T * 2);
    pos2d.forEach((row, b) => {
      const where = B === 1 ? name : `${name}[${b}]`;
      if (row.length !== 2 * T) throw invalidOption(where, `${2 * T} values (row, column per id)`, row);
      for (let t = 0; t < T; t++) {
        const r = row[2 * t];
        const col = row[2 * t + 1];
        const ok = (r === -1 && col === -1) || (Number.isInteger(r) && Number.isInteger(col) && r >= 0 && r < c.gridRows && col >= 0 && col < c.gridCols);
        if (!ok) throw invalidOption(`${where} at ${t}`, `-1, -1 or a cell inside ${c.gridRows}x${c.gridCols}`, `${r}, ${col}`);
        out[(b * T + t) * 2] = r;
        out[(b * T + t) * 2 + 1] = col;
      }
    });
    return out;
  }

  private checkPos2dTensor(pos2d: tf.Tensor3D | undefined, bt: [number, number]): void {
    if (pos2d === undefined) return;
    if (this.config.gridRows === 0) throw invalidOption('pos2d', 'no 2D positions (the model has gridRows 0)', pos2d.shape.join('x'));
    if (pos2d.dtype !== 'int32' || pos2d.shape[0] !== bt[0] || pos2d.shape[1] !== bt[1] || pos2d.shape[2] !== 2) {
      throw invalidOption('pos2d', `an int32 tensor [${bt[0]}, ${bt[1]}, 2]`, `${pos2d.dtype} [${pos2d.shape.join(', ')}]`);
    }
  }
}

/**
 * Rows of an embedding table: table [N, C], ids [B, T] int32 -> [B, T, C].
 * Forward is a gather. The gradient is one_hot(ids)^T @ dy, a dense [N, C]
 * matmul, instead of tfjs's gather gradient (UnsortedSegmentSum): that kernel
 * is missing on the wasm backend and took 45% of a training step on the cpu
 * backend; the matmul costs as much as the output head's and runs everywhere.
 */
function embeddingLookup(table: tf.Tensor, ids: tf.Tensor): tf.Tensor3D {
  // CustomGradientFunc types its arguments as (Tensor | GradSaveFunc)[]; they are (table, ids, save).
  const lookup = tf.customGrad(((t: tf.Tensor, i: tf.Tensor, save: tf.GradSaveFunc) => {
    save([i]); // ids are an intermediate of forward's tidy; the engine keeps saved tensors for the backward pass
    return {
      value: tf.gather(t, i) as tf.Tensor3D, // [B, T, C]
      gradFunc: (dy: tf.Tensor3D, saved: tf.Tensor[]) => {
        const [N, C] = t.shape as [number, number];
        const flat = saved[0].reshape([-1]); // [B*T]
        const oneHot = oneHotFloat(flat, N); // [B*T, N]
        const dTable = tf.matMul(oneHot, dy.reshape([-1, C]), true, false); // [N, C]
        return [dTable, tf.zeros(saved[0].shape)]; // ids get no gradient (the tape prunes them)
      },
    };
  }) as Parameters<typeof tf.customGrad<tf.Tensor3D>>[0]);
  return lookup(table, ids) as tf.Tensor3D;
}

/**
 * One-hot rows as float32: ids [N] int32 -> [N, depth].
 * Built as int32 and cast: tfjs 4.22's wasm OneHot ignores a float32 dtype and
 * writes int32 bit patterns (1 reads back as 1.4e-45).
 */
export function oneHotFloat(ids: tf.Tensor1D | tf.Tensor, depth: number): tf.Tensor2D {
  return tf.tidy(() => tf.cast(tf.oneHot(ids as tf.Tensor1D, depth), 'float32') as tf.Tensor2D);
}

/** GELU, tanh approximation (Hendrycks & Gimpel 2016; GPT-2's choice). tfjs has no gelu op. */
function gelu(x: tf.Tensor3D): tf.Tensor3D {
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
  return tf.mul(tf.mul(0.5, x), tf.add(1, tf.tanh(inner)));
}
