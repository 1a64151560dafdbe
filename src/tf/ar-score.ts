/**
 * Closed-set scoring with the KV cache: the log-probability of every
 * candidate continuation after every prompt, like scoreContinuations
 * (ar-loss.ts), but each prompt runs once. The prompts are prefilled; then one
 * more pass (Transformer.branch) runs every candidate's ids at once after each
 * prompt's cache, each candidate in its own causal block that sees the prompt
 * and its own earlier ids only. For an image prompt of ~70 ids and ten class
 * names of 1-5 ids this costs about 1.4 prompt passes.
 */

import * as tf from '@tensorflow/tfjs';
import { invalidOption } from '../core/errors';
import type { Transformer } from './transformer';

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

  const { logits: first, cache } = model.prefill(rows, pos);
  try {
    const lp0 = tf.tidy(() => tf.logSoftmax(first).dataSync() as Float32Array); // [B * V]
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) out[b * C + c] = lp0[b * V + candidates[c][0]];
    // Every id but the last of every candidate, one block per candidate.
    const ids: number[] = [];
    const offsets: number[] = [];
    const owner: number[] = [];
    candidates.forEach((cand, c) => {
      for (let j = 0; j + 1 < cand.length; j++) {
        ids.push(cand[j]);
        offsets.push(j);
        owner.push(c);
      }
    });
    const Q = ids.length;
    if (Q === 0) return out;
    const sees = new Uint8Array(Q * Q);
    for (let q = 0; q < Q; q++) for (let i = 0; i < q; i++) if (owner[i] === owner[q]) sees[q * Q + i] = 1;
    const lp = tf.tidy(() => tf.logSoftmax(model.branch(cache, ids, offsets, sees)).dataSync() as Float32Array); // [B * Q * V]
    for (let b = 0; b < B; b++) {
      for (let q = 0; q < Q; q++) {
        const c = owner[q];
        out[b * C + c] += lp[(b * Q + q) * V + candidates[c][offsets[q] + 1]];
      }
    }
    return out;
  } finally {
    first.dispose();
    cache.dispose();
  }
}
