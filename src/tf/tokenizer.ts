/**
 * The semantic-VQ image tokenizer with dual codebooks (DESIGN.md; TokenFlow,
 * Qu et al. 2024): a convolutional encoder with a semantic and a pixel head,
 * a dual-codebook quantizer with one shared index (quantizer.ts), a pixel
 * decoder and a small semantic decoder (decoder.ts).
 *
 *   images [B, H, W, C] in [-1, 1]
 *     --encoder--> z_s [B, h, w, d_s], z_p [B, h, w, d_p]    (l2-normalized)
 *     --quantizer--> codes [B, h, w] int32, q_s, q_p        (rows of E_s, E_p)
 *     --decoder(q_p, or [q_p, q_s])--> images [B, H, W, C]
 *     --semantic decoder(q_s)--> teacher features [B, h, w, teacherDim]
 *
 * Weights are named tf.Variables (see layers.ts for why not tf.layers). A
 * training loop uses the model like this (EMA codebook updates happen outside
 * the gradient, after the optimizer step):
 *
 *   const model = createTokenizerModel({ codebookSize: 1024 }, 42);
 *   const opt = tf.train.adam(2e-4);
 *   let seen: QuantizerBatch | undefined;
 *   const loss = opt.minimize(() => {
 *     const out = model.forward(images);
 *     seen = model.readBatch(out);                       // codes and latents to the host
 *     const rec = tf.mean(tf.abs(tf.sub(out.recon, images)));
 *     return tf.addN([rec, out.losses.commit, out.losses.codebook]) as tf.Scalar;
 *   }, true, model.trainableVariables());
 *   model.updateCodebooks(seen!);                         // k-means init, EMA, dead-code restarts, usage
 *   model.codebookStats();                                // { usage, perplexity, ... }
 *
 * Everything that defines the model's outputs is in getWeights() (weights
 * and both codebooks); everything else a resumed run needs (EMA buffers,
 * usage counters, the reservoir, the quantizer's random state) is in
 * getTrainingState(). Both are plain records of typed arrays.
 */

import * as tf from '@tensorflow/tfjs';
import { VtokError, checkNumber } from '../core/errors';
import { Rng } from '../core/random';
import type { TensorMap } from '../core/tensor-map';
import { type TokenizerConfig, gridShapeFor, resolveTokenizerConfig } from '../core/tokenizer-config';
import { decoderForward, decoderSpecs, semanticDecoderForward, semanticDecoderSpecs } from './decoder';
import { encoderForward, encoderSpecs } from './encoder';
import { type ParamSpecs, assignParams, createParams, l2Normalize, readParams } from './layers';
import { type CodebookStats, DualQuantizer, PIXEL_CODEBOOK, type QuantizerBatch, SEMANTIC_CODEBOOK, type UpdateReport } from './quantizer';

/** Everything one training forward pass computes. Every tensor belongs to the caller. */
export interface TokenizerForward {
  /** Reconstruction [B, H, W, C], unclamped (clamp for display; decode() clamps). */
  recon: tf.Tensor4D;
  /** [B, h, w] int32. */
  codes: tf.Tensor3D;
  /** l2-normalized latents [B, h, w, d_s] and [B, h, w, d_p]. */
  zs: tf.Tensor4D;
  zp: tf.Tensor4D;
  /** Quantized vectors (value E[codes], gradient straight through to zs / zp). */
  qs: tf.Tensor4D;
  qp: tf.Tensor4D;
  /** Predicted teacher features from qs [B, h, w, teacherDim], or null when teacherDim is 0. */
  semantic: tf.Tensor4D | null;
  losses: {
    /** beta * mean |z - sg(q)|^2 (weighted as the distance). Trains the encoder. */
    commit: tf.Scalar;
    /** mean |sg(z) - q|^2. Trains the codebooks in 'loss' mode; in 'ema' mode no trainable variable depends on it. */
    codebook: tf.Scalar;
  };
}

export class TokenizerModel {
  readonly config: TokenizerConfig;
  readonly seed: number;
  /** Every weight by name, codebooks included (in initialization order). */
  readonly variables: Readonly<Record<string, tf.Variable>>;
  readonly quantizer: DualQuantizer;
  private alive = true;

  /** Use createTokenizerModel. */
  constructor(config: Partial<TokenizerConfig>, seed: number) {
    this.config = resolveTokenizerConfig(config);
    this.seed = checkNumber('seed', seed);
    const c = this.config;
    const specs: ParamSpecs = { ...encoderSpecs(c), ...decoderSpecs(c), ...semanticDecoderSpecs(c) };
    specs[SEMANTIC_CODEBOOK] = { shape: [c.codebookSize, c.semanticDim], init: { kind: 'unitRows' } };
    specs[PIXEL_CODEBOOK] = { shape: [c.codebookSize, c.pixelDim], init: { kind: 'unitRows' } };
    const codebookTrainable = c.codebookUpdate === 'loss';
    const isCodebook = (name: string): boolean => name === SEMANTIC_CODEBOOK || name === PIXEL_CODEBOOK;
    const rng = new Rng(seed);
    this.variables = createParams(specs, rng, (name) => !isCodebook(name) || codebookTrainable);
    this.quantizer = new DualQuantizer(c, this.variables[SEMANTIC_CODEBOOK], this.variables[PIXEL_CODEBOOK], rng.nextUint32());
  }

  /** Number of weights (scalars), codebooks included. */
  get numParams(): number {
    return Object.values(this.variables).reduce((n, v) => n + v.size, 0);
  }

  /** The variables an optimizer should update: every weight, plus the codebooks in 'loss' mode. */
  trainableVariables(): tf.Variable[] {
    return Object.values(this.variables).filter((v) => v.trainable);
  }

  /** [h, w] of the code grid of H x W images. */
  gridShape(height: number, width: number): [number, number] {
    return gridShapeFor(this.config, height, width);
  }

  /** Normalized latents of images [B, H, W, C]: zs [B, h, w, d_s], zp [B, h, w, d_p]. */
  latents(images: tf.Tensor4D): { zs: tf.Tensor4D; zp: tf.Tensor4D } {
    this.checkImages(images);
    return tf.tidy(() => {
      const { semantic, pixel } = encoderForward(images, this.variables, this.config);
      return { zs: l2Normalize(semantic), zp: l2Normalize(pixel) };
    });
  }

  /** Codes of images [B, H, W, C] in [-1, 1]: [B, h, w] int32. */
  encode(images: tf.Tensor4D): tf.Tensor3D {
    this.checkImages(images);
    return tf.tidy(() => {
      const { zs, zp } = this.latents(images);
      const [B, h, w] = zs.shape;
      const { es, ep } = this.quantizer.codebooks();
      const flat = (z: tf.Tensor4D): tf.Tensor2D => tf.reshape(z, [B * h * w, z.shape[3]]);
      return tf.reshape(this.quantizer.nearest(flat(zs), flat(zp), es, ep), [B, h, w]) as tf.Tensor3D;
    });
  }

  /** Code vectors of codes [B, h, w] int32: semantic [B, h, w, d_s] and pixel [B, h, w, d_p] (normalized rows of E_s, E_p). */
  lookup(codes: tf.Tensor3D): { semantic: tf.Tensor4D; pixel: tf.Tensor4D } {
    this.checkCodes(codes);
    return tf.tidy(() => {
      const [B, h, w] = codes.shape;
      const { qs, qp } = this.quantizer.lookup(tf.reshape(codes, [B * h * w]));
      return {
        semantic: tf.reshape(qs, [B, h, w, this.config.semanticDim]) as tf.Tensor4D,
        pixel: tf.reshape(qp, [B, h, w, this.config.pixelDim]) as tf.Tensor4D,
      };
    });
  }

  /**
   * The pixel decoder on code vectors: pixel [B, h, w, d_p] (and semantic
   * [B, h, w, d_s] when decoderInput is 'both') -> images [B, H, W, C], unclamped.
   */
  decodeVectors(pixel: tf.Tensor4D, semantic?: tf.Tensor4D): tf.Tensor4D {
    this.checkAlive();
    return tf.tidy(() => decoderForward(this.decoderInput(pixel, semantic), this.variables, this.config));
  }

  /** Images of codes [B, h, w] int32: [B, H, W, C] clamped to [-1, 1]. */
  decode(codes: tf.Tensor3D): tf.Tensor4D {
    this.checkCodes(codes);
    return tf.tidy(() => {
      const { semantic, pixel } = this.lookup(codes);
      return tf.clipByValue(this.decodeVectors(pixel, semantic), -1, 1);
    });
  }

  /** Teacher features predicted from semantic code vectors [B, h, w, d_s] -> [B, h, w, teacherDim]. */
  predictSemantic(semantic: tf.Tensor4D): tf.Tensor4D {
    this.checkAlive();
    if (this.config.teacherDim === 0) throw new VtokError('INVALID_INPUT', 'This tokenizer has no semantic decoder (teacherDim is 0)');
    return tf.tidy(() => semanticDecoderForward(semantic, this.variables, this.config));
  }

  /** The training forward pass (see TokenizerForward). Differentiable with respect to every trainable variable. */
  forward(images: tf.Tensor4D): TokenizerForward {
    this.checkImages(images);
    const c = this.config;
    // tf.tidy keeps every tensor nested in the returned object; its type has no room for the null field, hence the casts.
    const out = tf.tidy(() => {
      const { zs, zp } = this.latents(images); // [B, h, w, d_s], [B, h, w, d_p]
      const [B, h, w] = zs.shape;
      const N = B * h * w;
      const q = this.quantizer.quantize(tf.reshape(zs, [N, c.semanticDim]), tf.reshape(zp, [N, c.pixelDim]));
      const qs = tf.reshape(q.qs, [B, h, w, c.semanticDim]) as tf.Tensor4D;
      const qp = tf.reshape(q.qp, [B, h, w, c.pixelDim]) as tf.Tensor4D;
      const recon = decoderForward(this.decoderInput(qp, qs), this.variables, c); // [B, H, W, C]
      const semantic = c.teacherDim > 0 ? semanticDecoderForward(qs, this.variables, c) : null;
      const codes = tf.reshape(q.codes, [B, h, w]) as tf.Tensor3D;
      const result: TokenizerForward = { recon, codes, zs, zp, qs, qp, semantic, losses: { commit: q.commit, codebook: q.codebook } };
      return result as unknown as tf.TensorContainer;
    });
    return out as unknown as TokenizerForward;
  }

  /** What a forward pass saw (codes and normalized latents), read to the host for updateCodebooks. */
  readBatch(out: Pick<TokenizerForward, 'codes' | 'zs' | 'zp'>): QuantizerBatch {
    return DualQuantizer.readBatch(out.codes, out.zs, out.zp);
  }

  /** One codebook-health update (k-means init, EMA, dead-code restart, usage): once per training step, after the optimizer step. */
  updateCodebooks(batch: QuantizerBatch): UpdateReport {
    this.checkAlive();
    return this.quantizer.update(batch);
  }

  /** Codebook usage and perplexity, over the recent window and since the start. */
  codebookStats(): CodebookStats {
    return this.quantizer.stats();
  }

  // ---- save / restore ----

  /** Copies of every weight (codebooks included) as float32 tensor records, by name. */
  getWeights(): TensorMap {
    this.checkAlive();
    return readParams(this.variables);
  }

  /** Replaces every weight. Names, dtypes and shapes must match the config exactly; nothing changes when they do not. */
  setWeights(weights: TensorMap): void {
    this.checkAlive();
    assignParams(this.variables, weights, 'the tokenizer');
  }

  /** The quantizer's host state (EMA buffers, usage counters, reservoir, random state), for exact resumption. */
  getTrainingState(): TensorMap {
    this.checkAlive();
    return this.quantizer.getState();
  }

  setTrainingState(state: TensorMap): void {
    this.checkAlive();
    this.quantizer.setState(state);
  }

  /** Frees every weight. Safe to call twice. */
  dispose(): void {
    if (!this.alive) return;
    this.alive = false;
    for (const v of Object.values(this.variables)) v.dispose();
  }

  // ---- pieces ----

  private decoderInput(pixel: tf.Tensor4D, semantic?: tf.Tensor4D): tf.Tensor4D {
    const c = this.config;
    if (c.decoderInput === 'pixel') return pixel;
    if (semantic === undefined) throw new VtokError('INVALID_INPUT', "This tokenizer's decoder reads semantic code vectors too (decoderInput 'both'); pass them");
    return tf.concat([pixel, semantic], 3) as tf.Tensor4D; // [B, h, w, d_p + d_s]
  }

  private checkAlive(): void {
    if (!this.alive) throw new VtokError('INVALID_INPUT', 'This tokenizer model was disposed');
  }

  private checkImages(images: tf.Tensor4D): void {
    this.checkAlive();
    const C = this.config.imageChannels;
    if (!(images instanceof tf.Tensor) || images.rank !== 4 || images.dtype !== 'float32' || images.shape[3] !== C || images.shape[0] < 1) {
      const got = images instanceof tf.Tensor ? `${images.dtype} [${images.shape.join(', ')}]` : typeof images;
      throw new VtokError('INVALID_INPUT', `Expected images as a float32 tensor [B, H, W, ${C}] but received ${got}`, { subject: 'images' });
    }
    gridShapeFor(this.config, images.shape[1], images.shape[2]);
  }

  /** Checks dtype, rank and (reading two scalars) that every code is in [0, K). */
  private checkCodes(codes: tf.Tensor3D): void {
    this.checkAlive();
    const K = this.config.codebookSize;
    if (!(codes instanceof tf.Tensor) || codes.rank !== 3 || codes.dtype !== 'int32') {
      const got = codes instanceof tf.Tensor ? `${codes.dtype} [${codes.shape.join(', ')}]` : typeof codes;
      throw new VtokError('INVALID_INPUT', `Expected codes as an int32 tensor [B, h, w] but received ${got}`, { subject: 'codes' });
    }
    if (codes.size === 0) throw new VtokError('INVALID_INPUT', `Expected a non-empty code grid but received [${codes.shape.join(', ')}]`, { subject: 'codes' });
    const [lo, hi] = tf.tidy(() => [tf.min(codes).dataSync()[0], tf.max(codes).dataSync()[0]]);
    if (lo < 0 || hi >= K) {
      throw new VtokError('INVALID_INPUT', `Expected codes between 0 and ${K - 1} but received ${lo < 0 ? lo : hi}`, { subject: 'codes' });
    }
  }
}

/** A tokenizer with freshly initialized weights; the same config and seed give the same weights on every backend. */
export function createTokenizerModel(config: Partial<TokenizerConfig> = {}, seed = 0): TokenizerModel {
  return new TokenizerModel(config, seed);
}
