/**
 * A small convolutional pixel classifier: the independent judge of generated
 * images (issue #8: "a separate classifier that vtok trains on pixels
 * recognises the prompted class"). A LeNet/VGG-style stack (LeCun et al.
 * 1998; Simonyan & Zisserman 2015), nothing more:
 *
 *   images [B, H, W, 3] in [-1, 1]
 *     --(grey: mean over channels)--> [B, H, W, 1]
 *     --L x (conv3x3 'same' + ReLU + maxPool 2x2 'same')--> [B, ceil(H/2^L), ceil(W/2^L), widths[L-1]]
 *     --flatten, dense + ReLU--> [B, hidden]
 *     --dense--> logits [B, numClasses]
 *
 * Weights are named tf.Variables on the layers.ts pattern (conv kernels
 * [3, 3, cin, cout], dense [in, out]; PyTorch's default uniform init from a
 * seeded Rng), so getWeights/setWeights are plain records of Float32Arrays.
 *
 * Example:
 *   const m = new PixelClassifier({ height: 32, width: 32, numClasses: 10 }, 1);
 *   const logits = m.logits(images);    // [B, 10]
 *   const labels = m.predict(images);   // Int32Array [B]
 *   m.dispose();
 */

import * as tf from '@tensorflow/tfjs';
import { VtokError, checkInt, invalidOption, resolveOptions } from '../core/errors';
import { Rng } from '../core/random';
import { type ParamSpecs, addConv, createParams } from './layers';

export interface ClassifierConfig {
  /** Input height in pixels (required). */
  height: number;
  /** Input width in pixels (required). */
  width: number;
  /** Number of classes (required, >= 2). */
  numClasses: number;
  /** Average the 3 input channels to one grey channel first (Fashion-MNIST is grey). Default true. */
  grey: boolean;
  /** Output channels of each conv + pool stage. Default [16, 32, 64]. */
  widths: number[];
  /** Width of the hidden dense layer. Default 128. */
  hidden: number;
}

export const CLASSIFIER_DEFAULTS: ClassifierConfig = { height: 0, width: 0, numClasses: 0, grey: true, widths: [16, 32, 64], hidden: 128 };

/** Fills defaults and checks every field; unknown keys are rejected. */
export function resolveClassifierConfig(config: Partial<ClassifierConfig>): ClassifierConfig {
  const c = resolveOptions('ClassifierConfig', CLASSIFIER_DEFAULTS, config);
  checkInt('height', c.height, 1, 4096);
  checkInt('width', c.width, 1, 4096);
  checkInt('numClasses', c.numClasses, 2);
  if (typeof c.grey !== 'boolean') throw invalidOption('grey', 'a boolean', c.grey);
  if (!Array.isArray(c.widths) || c.widths.length === 0) throw invalidOption('widths', 'a non-empty array of channel counts', c.widths);
  c.widths.forEach((w, i) => checkInt(`widths[${i}]`, w, 1, 4096));
  checkInt('hidden', c.hidden, 1);
  return { ...c, widths: [...c.widths] };
}

/** [h, w] after the conv + pool stages ('same' pooling: ceil(n / 2) per stage). */
export function featureShape(c: ClassifierConfig): [number, number] {
  let h = c.height;
  let w = c.width;
  for (let i = 0; i < c.widths.length; i++) {
    h = Math.ceil(h / 2);
    w = Math.ceil(w / 2);
  }
  return [h, w];
}

/** Weight names and shapes in initialization order. */
export function classifierSpecs(c: ClassifierConfig): ParamSpecs {
  const specs: ParamSpecs = {};
  let cin = c.grey ? 1 : 3;
  c.widths.forEach((cout, i) => {
    addConv(specs, `conv${i}`, 3, cin, cout);
    cin = cout;
  });
  const [h, w] = featureShape(c);
  const flat = h * w * cin;
  const dense = (name: string, nin: number, nout: number): void => {
    const bound = 1 / Math.sqrt(nin);
    specs[`${name}.w`] = { shape: [nin, nout], init: { kind: 'uniform', bound } };
    specs[`${name}.b`] = { shape: [nout], init: { kind: 'uniform', bound } };
  };
  dense('fc', flat, c.hidden);
  dense('out', c.hidden, c.numClasses);
  return specs;
}

export class PixelClassifier {
  readonly config: ClassifierConfig;
  readonly variables: Readonly<Record<string, tf.Variable>>;
  private alive = true;

  constructor(config: Partial<ClassifierConfig>, seed: number) {
    this.config = resolveClassifierConfig(config);
    this.variables = createParams(classifierSpecs(this.config), new Rng(seed));
  }

  get numParams(): number {
    return Object.values(this.variables).reduce((n, v) => n + v.size, 0);
  }

  trainableVariables(): tf.Variable[] {
    this.checkAlive();
    return Object.values(this.variables);
  }

  /** Logits [B, numClasses] of images [B, H, W, 3] in [-1, 1]. */
  logits(images: tf.Tensor4D): tf.Tensor2D {
    this.checkImages(images);
    const c = this.config;
    const p = this.variables;
    return tf.tidy(() => {
      const B = images.shape[0];
      let x: tf.Tensor4D = c.grey ? tf.mean(images, 3, true) : images; // [B, H, W, 1 or 3]
      for (let i = 0; i < c.widths.length; i++) {
        x = tf.relu(tf.add(tf.conv2d(x, p[`conv${i}.w`] as tf.Tensor4D, 1, 'same'), p[`conv${i}.b`])) as tf.Tensor4D; // [B, h, w, widths[i]]
        x = tf.maxPool(x, 2, 2, 'same'); // [B, ceil(h/2), ceil(w/2), widths[i]]
      }
      const flat = tf.reshape(x, [B, -1]); // [B, h' * w' * C]
      const h = tf.relu(tf.add(tf.matMul(flat, p['fc.w'] as tf.Tensor2D), p['fc.b'])); // [B, hidden]
      return tf.add(tf.matMul(h, p['out.w'] as tf.Tensor2D), p['out.b']) as tf.Tensor2D; // [B, numClasses]
    });
  }

  /** Mean softmax cross-entropy of images [B, H, W, 3] against class indices [B] (int32). */
  loss(images: tf.Tensor4D, labels: tf.Tensor1D): tf.Scalar {
    if (labels.rank !== 1 || labels.shape[0] !== images.shape[0]) {
      throw new VtokError('INVALID_INPUT', `Expected labels of shape [${images.shape[0]}] but received [${labels.shape.join(', ')}]`, { subject: 'labels' });
    }
    return tf.tidy(() => {
      const onehot = tf.oneHot(tf.cast(labels, 'int32'), this.config.numClasses); // [B, K]
      return tf.losses.softmaxCrossEntropy(onehot, this.logits(images)) as tf.Scalar;
    });
  }

  /** The most likely class index of each image: Int32Array [B]. */
  predict(images: tf.Tensor4D): Int32Array {
    const am = tf.tidy(() => tf.argMax(this.logits(images), 1)); // [B]
    const out = Int32Array.from(am.dataSync());
    am.dispose();
    return out;
  }

  /** Every weight as a Float32Array (copies). */
  getWeights(): Record<string, Float32Array> {
    this.checkAlive();
    const out: Record<string, Float32Array> = {};
    for (const [name, v] of Object.entries(this.variables)) out[name] = Float32Array.from(v.dataSync() as Float32Array);
    return out;
  }

  /** Replaces every weight; names and sizes must match exactly. */
  setWeights(weights: Readonly<Record<string, ArrayLike<number>>>): void {
    this.checkAlive();
    const names = Object.keys(this.variables);
    const extra = Object.keys(weights).filter((n) => !(n in this.variables));
    if (extra.length > 0) throw new VtokError('STORE_MISMATCH', `Unknown classifier weights: ${extra.slice(0, 5).join(', ')}`, { subject: extra[0] });
    for (const name of names) {
      const w = weights[name];
      const v = this.variables[name];
      if (w === undefined) throw new VtokError('STORE_MISMATCH', `Classifier weight ${name} is missing`, { subject: name });
      if (w.length !== v.size) {
        throw new VtokError('STORE_MISMATCH', `Classifier weight ${name} has ${w.length} values but shape [${v.shape.join(', ')}] needs ${v.size}`, { subject: name });
      }
    }
    for (const name of names) {
      const t = tf.tensor(Float32Array.from(weights[name]), this.variables[name].shape, 'float32');
      this.variables[name].assign(t);
      t.dispose();
    }
  }

  dispose(): void {
    if (!this.alive) return;
    this.alive = false;
    for (const v of Object.values(this.variables)) v.dispose();
  }

  private checkAlive(): void {
    if (!this.alive) throw new VtokError('INVALID_INPUT', 'This classifier was disposed');
  }

  private checkImages(images: tf.Tensor): void {
    this.checkAlive();
    const { height: H, width: W } = this.config;
    if (images.rank !== 4 || images.shape[1] !== H || images.shape[2] !== W || images.shape[3] !== 3) {
      throw new VtokError('INVALID_INPUT', `Expected images of shape [B, ${H}, ${W}, 3] for this classifier but received [${images.shape.join(', ')}]`, {
        subject: 'images',
      });
    }
  }
}
