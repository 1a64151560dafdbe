/**
 * A PatchGAN discriminator (Isola et al. 2017, "Image-to-Image Translation
 * with Conditional Adversarial Networks", pix2pix; the adversarial term of
 * VQGAN, Esser et al. 2021) with the hinge loss (Lim & Ye 2017; Miyato et
 * al. 2018), for the tokenizer trainer's optional adversarial term.
 *
 *   images [B, H, W, C] in [-1, 1]
 *     --layers x (conv 4x4 stride 2, leaky ReLU 0.2)--> [B, H/2^L, W/2^L, ch * min(2^(L-1), 8)]
 *     --conv 4x4 stride 1--> logits [B, H/2^L, W/2^L, 1]       (one real/fake logit per patch)
 *
 * Sizes round up ('same' padding: ceil(H / 2) per strided conv). Unlike
 * pix2pix there is no normalization layer: BatchNorm's running statistics
 * would be one more piece of training state to checkpoint, and a small
 * discriminator trains without it. Weights are named tf.Variables drawn from
 * their own seeded Rng (layers.ts conventions), so creating a discriminator
 * never moves the tokenizer's random stream.
 *
 * Example:
 *   const d = createDiscriminator({ channels: 32, layers: 3 }, 7);
 *   const logits = d.forward(images);                  // [B, H/8, W/8, 1]
 *   const lossD = hingeDiscriminatorLoss(d.forward(real), d.forward(fake));
 *   const lossG = hingeGeneratorLoss(d.forward(fake));
 */

import * as tf from '@tensorflow/tfjs';
import { VtokError, checkInt, checkNumber, resolveOptions } from '../core/errors';
import { Rng } from '../core/random';
import type { TensorMap } from '../core/tensor-map';
import { type ParamSpecs, addConv, assignParams, createParams, readParams } from './layers';

export interface DiscriminatorConfig {
  /** Channels of the first conv; each further strided conv doubles them, up to 8x. Default 32. */
  channels: number;
  /** Number of stride-2 convs (each halves the size); the patch grid is H / 2^layers. Default 3. */
  layers: number;
  /** Image channels. Default 3. */
  imageChannels: number;
  /** Slope of the leaky ReLU for negative inputs. Default 0.2 (pix2pix). */
  leak: number;
}

export const DISCRIMINATOR_DEFAULTS: DiscriminatorConfig = { channels: 32, layers: 3, imageChannels: 3, leak: 0.2 };

/** Reads and checks a discriminator config (unknown keys are rejected). */
export function resolveDiscriminatorConfig(config: Partial<DiscriminatorConfig> = {}): DiscriminatorConfig {
  const c = resolveOptions('the discriminator config', DISCRIMINATOR_DEFAULTS, config);
  checkInt('channels', c.channels, 1, 4096);
  checkInt('layers', c.layers, 1, 8);
  checkInt('imageChannels', c.imageChannels, 1, 4);
  checkNumber('leak', c.leak, 0, 1);
  return c;
}

/** Output channels of strided conv i (0-based). */
function width(c: DiscriminatorConfig, i: number): number {
  return c.channels * Math.min(2 ** i, 8);
}

/** Names and shapes of the discriminator's weights, in initialization order. */
export function discriminatorSpecs(c: DiscriminatorConfig): ParamSpecs {
  const s: ParamSpecs = {};
  let cin = c.imageChannels;
  for (let i = 0; i < c.layers; i++) {
    addConv(s, `disc.conv${i}`, 4, cin, width(c, i));
    cin = width(c, i);
  }
  addConv(s, 'disc.out', 4, cin, 1);
  return s;
}

/** [H, W] of the logit map of H x W images. */
export function discriminatorGrid(c: DiscriminatorConfig, height: number, width: number): [number, number] {
  let h = height;
  let w = width;
  for (let i = 0; i < c.layers; i++) {
    h = Math.ceil(h / 2);
    w = Math.ceil(w / 2);
  }
  return [h, w];
}

/** Hinge loss of the discriminator: mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat))). Logits of any (matching or not) shapes; a scalar. */
export function hingeDiscriminatorLoss(realLogits: tf.Tensor, fakeLogits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.add(tf.mean(tf.relu(tf.sub(1, realLogits))), tf.mean(tf.relu(tf.add(1, fakeLogits)))) as tf.Scalar);
}

/** Hinge loss of the generator: -mean(D(x_hat)). A scalar. */
export function hingeGeneratorLoss(fakeLogits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.neg(tf.mean(fakeLogits)) as tf.Scalar);
}

export class Discriminator {
  readonly config: DiscriminatorConfig;
  /** Every weight by name (in initialization order). */
  readonly variables: Readonly<Record<string, tf.Variable>>;
  private alive = true;

  /** Use createDiscriminator. */
  constructor(config: Partial<DiscriminatorConfig>, seed: number) {
    this.config = resolveDiscriminatorConfig(config);
    this.variables = createParams(discriminatorSpecs(this.config), new Rng(checkNumber('seed', seed)));
  }

  /** The variables its optimizer updates (all of them). */
  trainableVariables(): tf.Variable[] {
    return Object.values(this.variables);
  }

  /** Patch logits of images [B, H, W, C]: [B, ceil(H / 2^layers), ceil(W / 2^layers), 1]. Differentiable with respect to the images and the weights. */
  forward(images: tf.Tensor4D): tf.Tensor4D {
    this.checkAlive();
    const c = this.config;
    if (!(images instanceof tf.Tensor) || images.rank !== 4 || images.dtype !== 'float32' || images.shape[3] !== c.imageChannels) {
      const got = images instanceof tf.Tensor ? `${images.dtype} [${images.shape.join(', ')}]` : typeof images;
      throw new VtokError('INVALID_INPUT', `Expected images as a float32 tensor [B, H, W, ${c.imageChannels}] but received ${got}`, { subject: 'images' });
    }
    const p = this.variables;
    return tf.tidy(() => {
      let h: tf.Tensor4D = images;
      for (let i = 0; i < c.layers; i++) {
        h = tf.add(tf.conv2d(h, p[`disc.conv${i}.w`] as tf.Tensor4D, 2, 'same'), p[`disc.conv${i}.b`]); // [B, H / 2^(i+1), W / 2^(i+1), width(i)]
        h = tf.leakyRelu(h, c.leak);
      }
      return tf.add(tf.conv2d(h, p['disc.out.w'] as tf.Tensor4D, 1, 'same'), p['disc.out.b']) as tf.Tensor4D; // [B, h, w, 1]
    });
  }

  /** Copies of every weight as float32 tensor records, by name. */
  getWeights(): TensorMap {
    this.checkAlive();
    return readParams(this.variables);
  }

  /** Replaces every weight. Names, dtypes and shapes must match the config exactly; nothing changes when they do not. */
  setWeights(weights: TensorMap): void {
    this.checkAlive();
    assignParams(this.variables, weights, 'the discriminator');
  }

  /** Frees every weight. Safe to call twice. */
  dispose(): void {
    if (!this.alive) return;
    this.alive = false;
    for (const v of Object.values(this.variables)) v.dispose();
  }

  private checkAlive(): void {
    if (!this.alive) throw new VtokError('INVALID_INPUT', 'This discriminator was disposed');
  }
}

/** A discriminator with freshly initialized weights; the same config and seed give the same weights. */
export function createDiscriminator(config: Partial<DiscriminatorConfig> = {}, seed = 0): Discriminator {
  return new Discriminator(config, seed);
}
