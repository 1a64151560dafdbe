/**
 * Functional building blocks of the tokenizer's convolutional networks, on
 * explicit parameter maps (`Record<string, tf.Variable>`, names like
 * `encoder.down0.res0.conv1.w`) instead of tf.layers: every weight has a
 * stable name that is also its name in the codebook store, save/load is a
 * loop over a record of typed arrays, and a custom training step can take
 * gradients of any subset of weights with tf.variableGrads.
 *
 * Every op used here has a gradient on every backend, chosen with care:
 * - GroupNorm is written with reshape/mean/sub/rsqrt (rank 4 only), not a
 *   fused kernel (tfjs has none).
 * - Nearest-neighbour 2x upsampling is reshape + Tile of rank 4 (whose
 *   gradient is slices and adds), not tf.image.resizeNearestNeighbor: the cpu
 *   backend's ResizeNearestNeighborGrad in tfjs 4.22 uses a wrong batch
 *   stride for batch > 1 (ENGINE.md).
 * - Stop-gradient and straight-through are tf.customGrad (tfjs has no
 *   stop-gradient op), and `detached` runs a computation whose result is not
 *   connected to the gradient tape at all (for argmin, whose integer output
 *   makes tf.grads throw when it reaches a gather on the tape).
 *
 * Weight layout: conv kernels [kh, kw, cin, cout] (tf.conv2d's), biases
 * [cout], norm scales/offsets [C]. Initialization is PyTorch's default for
 * conv layers (uniform in +-1/sqrt(fan_in) for kernel and bias), drawn from a
 * seeded Rng in a fixed order, so a seed gives the same weights on every backend.
 */

import * as tf from '@tensorflow/tfjs';
import { VtokError } from '../core/errors';
import { Rng } from '../core/random';
import { type TensorMap, type TensorRecord, checkTensorRecord, tensorRecord } from '../core/tensor-map';

/** Named weights of a network. */
export type Params = Readonly<Record<string, tf.Variable>>;

/** How a weight starts. */
export type ParamInit = { kind: 'uniform'; bound: number } | { kind: 'zeros' } | { kind: 'ones' } | { kind: 'unitRows' };

export interface ParamSpec {
  shape: number[];
  init: ParamInit;
}

/** Ordered weight specs: insertion order is the initialization order. */
export type ParamSpecs = Record<string, ParamSpec>;

export function addConv(specs: ParamSpecs, name: string, kernel: number, cin: number, cout: number): void {
  const bound = 1 / Math.sqrt(cin * kernel * kernel);
  specs[`${name}.w`] = { shape: [kernel, kernel, cin, cout], init: { kind: 'uniform', bound } };
  specs[`${name}.b`] = { shape: [cout], init: { kind: 'uniform', bound } };
}

export function addGroupNorm(specs: ParamSpecs, name: string, channels: number): void {
  specs[`${name}.g`] = { shape: [channels], init: { kind: 'ones' } };
  specs[`${name}.b`] = { shape: [channels], init: { kind: 'zeros' } };
}

/** A residual block cin -> cout: GN, SiLU, conv3x3, GN, SiLU, conv3x3, plus a 1x1 conv skip when cin != cout. */
export function addResBlock(specs: ParamSpecs, name: string, cin: number, cout: number): void {
  addGroupNorm(specs, `${name}.norm1`, cin);
  addConv(specs, `${name}.conv1`, 3, cin, cout);
  addGroupNorm(specs, `${name}.norm2`, cout);
  addConv(specs, `${name}.conv2`, 3, cout, cout);
  if (cin !== cout) addConv(specs, `${name}.skip`, 1, cin, cout);
}

/** Initial values of one weight (consumes rng draws for uniform and unitRows weights only). */
export function initialValues(spec: ParamSpec, rng: Rng): Float32Array {
  const size = spec.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  const init = spec.init;
  switch (init.kind) {
    case 'zeros':
      break;
    case 'ones':
      data.fill(1);
      break;
    case 'uniform':
      for (let i = 0; i < size; i++) data[i] = (2 * rng.next() - 1) * init.bound;
      break;
    case 'unitRows': {
      // Rows of a [K, d] matrix drawn from a standard normal and scaled to unit length (uniform on the sphere).
      const d = spec.shape[spec.shape.length - 1];
      for (let i = 0; i < size; i++) data[i] = rng.normal();
      normalizeRows(data, d);
      break;
    }
  }
  return data;
}

/** Scales every d-long row of `data` to unit l2 norm, in place (a zero row stays zero). Returns data. */
export function normalizeRows(data: Float32Array, d: number, from = 0, to = data.length / d): Float32Array {
  for (let r = from; r < to; r++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += data[r * d + j] * data[r * d + j];
    if (s > 0) {
      const inv = 1 / Math.sqrt(s);
      for (let j = 0; j < d; j++) data[r * d + j] *= inv;
    }
  }
  return data;
}

/** Creates the variables of `specs` in order, drawing from rng. */
export function createParams(specs: ParamSpecs, rng: Rng, trainable: (name: string) => boolean = () => true): Record<string, tf.Variable> {
  const out: Record<string, tf.Variable> = {};
  for (const [name, spec] of Object.entries(specs)) {
    // No variable name: tfjs names are global, and two models (or a test that makes many) must not clash.
    const init = tf.tensor(initialValues(spec, rng), spec.shape, 'float32');
    out[name] = tf.variable(init, trainable(name));
    init.dispose();
  }
  return out;
}

// ---- ops (call inside tf.tidy) ----

/** x * sigmoid(x). */
export function silu<T extends tf.Tensor>(x: T): T {
  return tf.mul(x, tf.sigmoid(x));
}

/** 'same'-padded convolution with bias: [B, H, W, Cin] -> [B, H/stride, W/stride, Cout]. Stride 2 pads only after (like LlamaGen's pad (0,1,0,1)). */
export function conv(x: tf.Tensor4D, p: Params, name: string, stride: 1 | 2 = 1): tf.Tensor4D {
  const y = tf.conv2d(x, p[`${name}.w`] as tf.Tensor4D, stride, 'same'); // [B, H', W', Cout]
  return tf.add(y, p[`${name}.b`]);
}

/**
 * Group normalization (Wu & He 2018) over [B, H, W, C] with G groups: each
 * sample's channels are split into G groups, and each group is normalized
 * over its spatial positions and channels, then scaled and shifted per channel.
 */
export function groupNorm(x: tf.Tensor4D, p: Params, name: string, groups: number, eps: number): tf.Tensor4D {
  const [B, H, W, C] = x.shape;
  const g = tf.reshape(x, [B, H * W, groups, C / groups]); // [B, HW, G, C/G]
  const mean = tf.mean(g, [1, 3], true); // [B, 1, G, 1]
  const centred = tf.sub(g, mean);
  const variance = tf.mean(tf.square(centred), [1, 3], true); // [B, 1, G, 1]
  const normed = tf.reshape(tf.mul(centred, tf.rsqrt(tf.add(variance, eps))), [B, H, W, C]);
  return tf.add(tf.mul(normed, p[`${name}.g`]), p[`${name}.b`]);
}

export interface NormOptions {
  groups: number;
  eps: number;
}

/** Residual block (see addResBlock): [B, H, W, Cin] -> [B, H, W, Cout]. */
export function resBlock(x: tf.Tensor4D, p: Params, name: string, norm: NormOptions): tf.Tensor4D {
  let h = silu(groupNorm(x, p, `${name}.norm1`, norm.groups, norm.eps));
  h = conv(h, p, `${name}.conv1`);
  h = silu(groupNorm(h, p, `${name}.norm2`, norm.groups, norm.eps));
  h = conv(h, p, `${name}.conv2`);
  const skip = p[`${name}.skip.w`] === undefined ? x : conv(x, p, `${name}.skip`);
  return tf.add(skip, h);
}

/**
 * Nearest-neighbour 2x upsampling: [B, h, w, C] -> [B, 2h, 2w, C], with
 * out[b, 2i + a, 2j + c] = x[b, i, j]. Columns first, then rows, each a rank-4
 * Tile between reshapes (see the file comment for why not resizeNearestNeighbor).
 */
export function upsample2x(x: tf.Tensor4D): tf.Tensor4D {
  const [B, h, w, C] = x.shape;
  const cols = tf.tile(tf.reshape(x, [B * h, w, 1, C]), [1, 1, 2, 1]); // [B*h, w, 2, C]
  const rows = tf.tile(tf.reshape(cols, [B, h, 1, 2 * w * C]), [1, 1, 2, 1]); // [B, h, 2, 2w*C]
  return tf.reshape(rows, [B, 2 * h, 2 * w, C]);
}

/** Scales the last axis to unit l2 norm: x / max(|x|, eps). */
export function l2Normalize<T extends tf.Tensor>(x: T, eps = 1e-12): T {
  const sq = tf.sum(tf.square(x), -1, true);
  return tf.mul(x, tf.rsqrt(tf.maximum(sq, eps * eps)));
}

/** tf.customGrad's argument list mixes the inputs with a save function; these helpers take tensors only. */
type GradFn = (...inputs: Array<tf.Tensor | tf.GradSaveFunc>) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] };

/** The value of x with a zero gradient (tfjs has no stop-gradient op). */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  const f: GradFn = (a) => ({ value: tf.clone(a as tf.Tensor), gradFunc: (dy) => tf.zerosLike(dy) });
  return tf.customGrad(f)(x) as T;
}

/**
 * The straight-through estimator (Bengio et al. 2013; VQ-VAE): the value of
 * `quantized`, the gradient of `latent`. Equivalent to latent + sg(quantized - latent),
 * but exact (no rounding from the add and subtract) and one op on the tape.
 */
export function straightThrough<T extends tf.Tensor>(latent: T, quantized: T): T {
  const f: GradFn = (_z, q) => ({ value: tf.clone(q as tf.Tensor), gradFunc: (dy) => [tf.clone(dy), tf.zerosLike(q as tf.Tensor)] });
  return tf.customGrad(f)(latent, quantized) as T;
}

/**
 * Runs `fn` with no connection to the gradient tape: the result is a custom
 * op with no inputs, so tf.grads never walks into it. For argmin, whose
 * integer output would otherwise reach gather on the tape and make tf.grads
 * throw (ENGINE.md, "Limits on every backend").
 */
export function detached<T extends tf.Tensor>(fn: () => T): T {
  const f: GradFn = () => ({ value: fn(), gradFunc: () => [] });
  return tf.customGrad(f)() as T;
}

/** Copies of every variable as float32 tensor records, by name. */
export function readParams(variables: Readonly<Record<string, tf.Variable>>): TensorMap {
  const out: TensorMap = {};
  for (const [name, v] of Object.entries(variables)) out[name] = tensorRecord('float32', v.shape, Float32Array.from(v.dataSync() as Float32Array));
  return out;
}

/**
 * Replaces every variable from tensor records. Names, dtypes and shapes must
 * match exactly; nothing changes when they do not. `owner` names the model in
 * the error ("the tokenizer").
 */
export function assignParams(variables: Readonly<Record<string, tf.Variable>>, weights: TensorMap, owner: string): void {
  const names = Object.keys(variables);
  const missing = names.filter((n) => !(n in weights));
  const unknown = Object.keys(weights).filter((n) => !(n in variables));
  if (missing.length > 0 || unknown.length > 0) {
    const parts = [missing.length > 0 ? `missing ${missing.join(', ')}` : '', unknown.length > 0 ? `unknown ${unknown.join(', ')}` : ''];
    throw new VtokError('INVALID_INPUT', `Weights do not match ${owner} config: ${parts.filter((p) => p !== '').join('; ')}`);
  }
  for (const name of names) {
    const rec: TensorRecord = checkTensorRecord(name, weights[name]);
    const shape = variables[name].shape;
    if (rec.dtype !== 'float32' || rec.shape.length !== shape.length || rec.shape.some((d, i) => d !== shape[i])) {
      throw new VtokError('INVALID_INPUT', `Expected weight ${name} to be float32 [${shape.join(', ')}] but received ${rec.dtype} [${rec.shape.join(', ')}]`, {
        subject: name,
      });
    }
  }
  tf.tidy(() => {
    for (const name of names) variables[name].assign(tf.tensor(weights[name].data as Float32Array, variables[name].shape, 'float32'));
  });
}
