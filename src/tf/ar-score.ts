/**
 * Closed-set scoring with the KV cache: the log-probability of every
 * candidate continuation after every prompt, like scoreContinuations
 * (ar-loss.ts), but each prompt runs once. The prompts are prefilled, the
 * cache is repeated once per candidate (row b * C + c), and the candidates'
 * ids are fed one step at a time (a finished candidate is fed `<pad>`, which
 * neither advances nor is seen). For an image prompt of ~70 ids and class
 * names of 1-3 ids this is about C times cheaper than one full pass per
 * (prompt, candidate) pair.
 */

import * as tf from '@tensorflow/tfjs';
import { invalidOption } from '../core/errors';
import { KvCache, Transformer } from './transformer';

/**
 * Log-probabilities [prompts x candidates] (row-major). Prompts may differ in
 * length (they are left-padded); promptPos2d as for prefill (per prompt, 2 values
 * per id, -1 for non-visual), needed when the model has gridRows > 0.
 * Candidate ids are taken to be non-visual (text and specials). Tidy.
 */
export function scoreCandidatesCached(
  model: Transformer,
  prompts: readonly ArrayLike<number>[],
  candidates: readonly ArrayLike<number>[],
  promptPos2d?: readonly ArrayLike<number>[],
): Float64Array {
  const B = prompts.length;
  const C = candidates.length;
  if (B === 0) throw invalidOption('prompts', 'at least one prompt', prompts);
  if (C === 0 || candidates.some((c) => c.length === 0)) throw invalidOption('candidates', 'non-empty candidates', candidates);
  const pad = model.config.padId;
  const V = model.config.vocabSize;
  const hasGrid = model.config.gridRows > 0;
  if (hasGrid && promptPos2d === undefined) throw invalidOption('promptPos2d', '2D positions of the prompts (the model has gridRows > 0)', undefined);
  const L = Math.max(...prompts.map((p) => p.length));
  const rows = prompts.map((p) => [...new Array<number>(L - p.length).fill(pad), ...Array.from(p)]);
  const pos = hasGrid ? promptPos2d!.map((p, b) => [...new Array<number>(2 * (L - prompts[b].length)).fill(-1), ...Array.from(p)]) : undefined;
  const out = new Float64Array(B * C);
  const maxLen = Math.max(...candidates.map((c) => c.length));
  const R = B * C;

  const { logits: first, cache: promptCache } = model.prefill(rows, pos);
  let cache: KvCache | null = null;
  let logits: tf.Tensor2D | null = null;
  try {
    const lp0 = tf.tidy(() => tf.logSoftmax(first).dataSync() as Float32Array); // [B * V]
    first.dispose();
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) out[b * C + c] = lp0[b * V + candidates[c][0]];
    if (maxLen === 1) return out;
    // Repeat each prompt's cache once per candidate: row r = b * C + c.
    const idx = tf.tensor1d(Int32Array.from({ length: R }, (_, r) => Math.floor(r / C)), 'int32');
    const tile = <T extends tf.Tensor>(t: T): T => tf.gather(t, idx, 0) as T;
    cache = new KvCache(
      promptCache.keys.map(tile),
      promptCache.values.map(tile),
      tile(promptCache.keyBias),
      Int32Array.from({ length: R }, (_, r) => promptCache.nextPosition[Math.floor(r / C)]),
    );
    idx.dispose();
    promptCache.dispose();
    const ids = new Int32Array(R);
    const nonVisual = hasGrid ? new Int32Array(2 * R).fill(-1) : undefined;
    for (let j = 0; j + 1 < maxLen; j++) {
      for (let r = 0; r < R; r++) {
        const cand = candidates[r % C];
        ids[r] = j + 1 < cand.length ? cand[j] : pad;
      }
      ({ logits, cache } = model.step(cache, ids, nonVisual));
      const lp = tf.tidy(() => tf.logSoftmax(logits!).dataSync() as Float32Array); // [R * V]
      logits.dispose();
      logits = null;
      for (let r = 0; r < R; r++) {
        const cand = candidates[r % C];
        if (j + 1 < cand.length) out[r] += lp[r * V + cand[j + 1]];
      }
    }
    return out;
  } finally {
    if (!first.isDisposed) first.dispose();
    promptCache.dispose();
    cache?.dispose();
    logits?.dispose();
  }
}
