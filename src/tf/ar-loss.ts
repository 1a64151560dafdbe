/**
 * Next-token cross-entropy on the target part of each stream (the image in a
 * generation stream, the text in an understanding stream; see
 * core/ar-streams.ts), computed stably with logSoftmax (logits - logsumexp(logits)).
 */

import * as tf from '@tensorflow/tfjs';
import { invalidOption } from '../core/errors';
import type { ArBatch } from '../core/ar-streams';
import { Transformer, oneHotFloat } from './transformer';

export interface ArLossOptions {
  /** Dropout on (when the model has dropout > 0). Default true. */
  training?: boolean;
}

/**
 * Mean cross-entropy over weighted positions: sum(w * -log p(target)) / sum(w).
 * Returns a scalar tensor (owned by the caller). Tidy.
 */
export function arLoss(model: Transformer, batch: ArBatch, options: ArLossOptions = {}): tf.Scalar {
  const { batch: B, length: T } = batch;
  const V = model.config.vocabSize;
  if (batch.inputs.length !== B * T || batch.targets.length !== B * T || batch.weights.length !== B * T) {
    throw invalidOption('batch', `inputs, targets and weights of ${B} x ${T} values`, batch.inputs);
  }
  let wsum = 0;
  for (let i = 0; i < batch.weights.length; i++) wsum += batch.weights[i];
  if (!(wsum > 0)) throw invalidOption('batch.weights', 'at least one target position (positive weight)', batch.weights);
  if (batch.pos2d !== null && model.config.gridRows === 0) throw invalidOption('batch.pos2d', 'null (the model has no 2D positions)', batch.pos2d);
  return tf.tidy(() => {
    const ids = tf.tensor2d(batch.inputs, [B, T], 'int32');
    const pos2d = batch.pos2d !== null ? tf.tensor3d(batch.pos2d, [B, T, 2], 'int32') : undefined;
    const logits = model.forward(ids, { pos2d, training: options.training ?? true }).reshape([B * T, V]); // [B*T, V]
    const logp = tf.logSoftmax(logits); // [B*T, V], stable: logits - logsumexp(logits)
    // one-hot product rather than gather: no gather gradient needed (the wasm backend lacks UnsortedSegmentSum).
    const picked = tf.sum(tf.mul(logp, oneHotFloat(tf.tensor1d(batch.targets, 'int32'), V)), -1); // [B*T]
    return tf.div(tf.neg(tf.sum(tf.mul(picked, tf.tensor1d(batch.weights)))), wsum) as tf.Scalar;
  });
}

/**
 * The loss as a closure for `optimizer.minimize(arLossFn(model, batch), true, model.trainableVariables())`.
 */
export function arLossFn(model: Transformer, batch: ArBatch, options: ArLossOptions = {}): () => tf.Scalar {
  return () => arLoss(model, batch, options);
}

/**
 * Log-probability of each candidate continuation after each prompt: a
 * [prompts x candidates] matrix (row-major), the sum over the candidate's ids
 * of log p(id | everything before it). Append `<eos>` to the candidates to
 * score complete texts (then the scores of a closed set are comparable).
 * promptPos2d: per prompt, (row, column) per id flattened, -1 for non-visual
 * (needed when the model has gridRows > 0). Batches `batchRows` rows per pass.
 */
export function scoreContinuations(
  model: Transformer,
  prompts: readonly ArrayLike<number>[],
  candidates: readonly ArrayLike<number>[],
  options: { promptPos2d?: readonly ArrayLike<number>[]; batchRows?: number } = {},
): Float64Array {
  const V = model.config.vocabSize;
  const pad = model.config.padId;
  const hasGrid = model.config.gridRows > 0;
  if (hasGrid && options.promptPos2d === undefined) throw invalidOption('promptPos2d', '2D positions of the prompts (the model has gridRows > 0)', undefined);
  if (candidates.length === 0 || candidates.some((c) => c.length === 0)) throw invalidOption('candidates', 'non-empty candidates', candidates);
  if (pad < 0) throw invalidOption('model.config.padId', 'a pad id (rows are padded on the right)', pad);
  const C = candidates.length;
  const out = new Float64Array(prompts.length * C);
  const pairs: [number, number][] = [];
  for (let p = 0; p < prompts.length; p++) for (let c = 0; c < C; c++) pairs.push([p, c]);
  const per = options.batchRows ?? 64;
  for (let start = 0; start < pairs.length; start += per) {
    const chunk = pairs.slice(start, start + per);
    const T = Math.max(...chunk.map(([p, c]) => prompts[p].length + candidates[c].length)) - 1;
    const R = chunk.length;
    const inputs = new Int32Array(R * T).fill(pad);
    const targets = new Int32Array(R * T).fill(pad);
    const weights = new Float32Array(R * T);
    const pos2d = hasGrid ? new Int32Array(R * T * 2).fill(-1) : null;
    chunk.forEach(([p, c], r) => {
      const row = [...Array.from(prompts[p]), ...Array.from(candidates[c])];
      const first = prompts[p].length - 1; // logits at this position predict the candidate's first id
      for (let t = 0; t < row.length - 1; t++) {
        inputs[r * T + t] = row[t];
        targets[r * T + t] = row[t + 1];
        if (t >= first) weights[r * T + t] = 1;
      }
      if (pos2d !== null) pos2d.set(Array.from(options.promptPos2d![p]).slice(0, 2 * T), r * T * 2);
    });
    const picked = tf.tidy(() => {
      const ids = tf.tensor2d(inputs, [R, T], 'int32');
      const p2 = pos2d !== null ? tf.tensor3d(pos2d, [R, T, 2], 'int32') : undefined;
      const logits = model.forward(ids, { pos2d: p2 }).reshape([R * T, V]);
      const logp = tf.logSoftmax(logits); // [R*T, V]
      return tf.sum(tf.mul(logp, oneHotFloat(tf.tensor1d(targets, 'int32'), V)), -1); // [R*T]
    });
    const data = picked.dataSync();
    picked.dispose();
    chunk.forEach(([p, c], r) => {
      let s = 0;
      for (let t = 0; t < T; t++) if (weights[r * T + t] === 1) s += data[r * T + t];
      out[p * C + c] = s;
    });
  }
  return out;
}
