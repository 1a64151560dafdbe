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
 * Rotary tables for positions 0..maxLength-1: angle(p, i) = p * base^(-2i/hd), i < hd/2.
 * Host arrays [maxLength * hd/2], row-major.
 */
export function ropeTables(maxLength: number, headDim: number, base: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(maxLength * half);
  const sin = new Float32Array(maxLength * half);
  for (let i = 0; i < half; i++) {
    const freq = Math.pow(base, (-2 * i) / headDim);
    for (let p = 0; p < maxLength; p++) {
      cos[p * half + i] = Math.cos(p * freq);
      sin[p * half + i] = Math.sin(p * freq);
    }
  }
  return { cos, sin };
}

/**
 * Rotates pairs (x_i, x_{i+hd/2}) of every head vector by its position's
 * angles ("rotate half" layout, as in GPT-NeoX and Llama ports).
 * x: [B, H, T, hd]; cos, sin: [B, 1, T, hd/2] (one position per row and token).
 */
export function applyRope(x: tf.Tensor4D, cos: tf.Tensor4D, sin: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const [x1, x2] = tf.split(x, 2, 3); // [B, H, T, hd/2] each
    return tf.concat([tf.sub(tf.mul(x1, cos), tf.mul(x2, sin)), tf.add(tf.mul(x1, sin), tf.mul(x2, cos))], 3) as tf.Tensor4D;
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
