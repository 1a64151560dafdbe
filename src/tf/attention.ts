/**
 * Causal multi-head self-attention pieces for the autoregressive transformer
 * (Vaswani et al. 2017, "Attention Is All You Need"), with rotary position
 * embeddings (Su et al. 2021, "RoFormer"). Layout follows nanoGPT: heads are
 * split as [B, H, T, hd]. TensorFlow.js API only; every function is tidy.
 *
 * Masking is one additive bias [B, 1, T, S] over the scores: 0 where a query
 * may look, MASKED where it may not (a later position, or a `<pad>` key).
 * MASKED is finite so that a query that may see nothing (a left-padding
 * position) gets a uniform, finite average instead of NaN; such rows are
 * never used.
 */

import * as tf from '@tensorflow/tfjs';

/** Additive score bias for a key that a query must not see. */
export const MASKED = -1e9;

/**
 * Rotary tables for positions 0..maxLength-1: angle(p, i) = p * base^(-2i/hd)
 * for i < hd/2, repeated for the second half of the head (the "rotate half"
 * layout pairs x_i with x_{i+hd/2}). Host arrays [maxLength * hd], row-major.
 */
export function ropeTables(maxLength: number, headDim: number, base: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(maxLength * headDim);
  const sin = new Float32Array(maxLength * headDim);
  for (let i = 0; i < half; i++) {
    const freq = Math.pow(base, (-2 * i) / headDim);
    for (let p = 0; p < maxLength; p++) {
      const c = Math.cos(p * freq);
      const s = Math.sin(p * freq);
      cos[p * headDim + i] = cos[p * headDim + half + i] = c;
      sin[p * headDim + i] = sin[p * headDim + half + i] = s;
    }
  }
  return { cos, sin };
}

/**
 * The [hd, hd] matrix R with x @ R = rotate_half(x) = [-x2, x1] for x = [x1, x2].
 * A matmul with it replaces slicing the head in halves: slices along the last
 * axis take a slow element-by-element path on the cpu backend.
 */
export function rotateHalfMatrix(headDim: number): Float32Array {
  const half = headDim / 2;
  const r = new Float32Array(headDim * headDim);
  for (let i = 0; i < half; i++) {
    r[(i + half) * headDim + i] = -1; // out[i] = -x[i + half]
    r[i * headDim + i + half] = 1; // out[i + half] = x[i]
  }
  return r;
}

/**
 * Rotates each pair (x_i, x_{i+hd/2}) of every head vector by its position's
 * angle: x * cos + rotate_half(x) * sin (GPT-NeoX / Llama-port layout).
 * x: [B, H, T, hd]; cos, sin: [B, 1, T, hd] (one position per row and token);
 * rotateHalf: [hd, hd] from rotateHalfMatrix.
 */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D, rotateHalf: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, H, T, hd] = x.shape;
    const rotated = tf.matMul(x.reshape([B * H * T, hd]), rotateHalf).reshape([B, H, T, hd]); // [B, H, T, hd]
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin)) as tf.Tensor4D;
  });
}

/**
 * The score bias [B, 1, T, S] for T new queries over S keys, the last T of
 * which are the queries' own tokens (S - T keys come from a cache): query i
 * sees key j when j <= S - T + i and key j is not padding.
 * keyBias: [B, S], 0 for real tokens, MASKED for `<pad>`.
 */
export function attentionBias(keyBias: tf.Tensor2D, queries: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [B, S] = keyBias.shape;
    const keys = keyBias.reshape([B, 1, 1, S]) as tf.Tensor4D;
    if (queries === 1) return keys; // one new query sees every key
    const past = S - queries;
    const causal = new Float32Array(queries * S);
    for (let i = 0; i < queries; i++) causal.fill(MASKED, (i * S) + past + i + 1, (i + 1) * S);
    return tf.add(keys, tf.tensor4d(causal, [1, 1, queries, S])) as tf.Tensor4D;
  });
}

/**
 * Scaled dot-product attention: softmax(q k^T / sqrt(hd) + bias) v.
 * q: [B, H, T, hd]; k, v: [B, H, S, hd]; bias: [B, 1, T, S] -> [B, H, T, hd].
 * `dropout` (rate) drops attention weights when > 0 (training only).
 */
export function attend(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, bias: tf.Tensor4D, dropout = 0, seed?: number): tf.Tensor4D {
  return tf.tidy(() => {
    const hd = q.shape[3];
    const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), bias); // [B, H, T, S]
    let weights = tf.softmax(scores, -1);
    if (dropout > 0) weights = tf.dropout(weights, dropout, undefined, seed);
    return tf.matMul(weights, v) as tf.Tensor4D; // [B, H, T, hd]
  });
}
