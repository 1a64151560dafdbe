/**
 * The semantic-VQ tokenizer model (src/tf/tokenizer.ts) as the pipeline's
 * ImageTokenizer / ImageDetokenizer: typed arrays in, typed arrays out, every
 * tensor disposed before the promise resolves.
 *
 * The id recorded in token files is the content id of the tokenizer's bundle
 * when it comes from the codebook store (pass it as `id`); for a model that
 * was never saved, it is the sha256 of its weights (modelContentId), so
 * tokens from two different weight sets never share an id.
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { checkInt, invalidOption, resolveOptions } from '../core/errors';
import type { ImageDetokenizer, ImageTokenizer } from '../core/pipeline-types';
import { typedArrayToLittleEndian } from '../core/tensor-map';
import type { TokenizerModel } from '../tf/tokenizer';

export interface ModelTokenizerOptions {
  /** Content id recorded in token files (the bundle id from the store). Default undefined: modelContentId(model). */
  id: string | undefined;
  /** Side of the square images the model takes. Default 256. */
  imageSize: number;
}

const DEFAULTS: ModelTokenizerOptions = { id: undefined, imageSize: 256 };

/** sha256 over the model's weights: names (sorted), shapes and little-endian float32 bytes. */
export function modelContentId(model: TokenizerModel): string {
  const h = createHash('sha256');
  const weights = model.getWeights();
  for (const name of Object.keys(weights).sort()) {
    const w = weights[name];
    h.update(`${name}\0${w.dtype}\0${w.shape.join(',')}\0`);
    h.update(typedArrayToLittleEndian(w.data));
  }
  return h.digest('hex');
}

function resolve(model: TokenizerModel, options: Partial<ModelTokenizerOptions> | undefined): { id: string; S: number; grid: [number, number] } {
  const o = resolveOptions('modelTokenizer', DEFAULTS, options);
  const S = checkInt('imageSize', o.imageSize, 1, 65535);
  if (o.id !== undefined && (typeof o.id !== 'string' || o.id === '')) throw invalidOption('id', 'a non-empty content id', o.id);
  return { id: o.id ?? modelContentId(model), S, grid: model.gridShape(S, S) };
}

/** The model as an ImageTokenizer. */
export function modelTokenizer(model: TokenizerModel, options?: Partial<ModelTokenizerOptions>): ImageTokenizer {
  const { id, S, grid } = resolve(model, options);
  return {
    id,
    imageSize: S,
    gridShape: grid,
    codebookSize: model.config.codebookSize,
    async encodeBatch(images: Float32Array, batch: number): Promise<Int32Array> {
      checkInt('batch', batch, 1);
      if (images.length !== batch * S * S * 3) throw invalidOption('images', `${batch} x ${S} x ${S} x 3 floats`, images);
      const codes = tf.tidy(() => model.encode(tf.tensor4d(images, [batch, S, S, 3]))); // [B, h, w]
      try {
        return Int32Array.from(await codes.data());
      } finally {
        codes.dispose();
      }
    },
  };
}

/** The model's decoder as an ImageDetokenizer (images clamped to [-1, 1]). */
export function modelDetokenizer(model: TokenizerModel, options?: Partial<ModelTokenizerOptions>): ImageDetokenizer {
  const { id, S, grid } = resolve(model, options);
  const [h, w] = grid;
  return {
    id,
    imageSize: S,
    gridShape: grid,
    async decodeBatch(codes: Int32Array, batch: number): Promise<Float32Array> {
      checkInt('batch', batch, 1);
      if (codes.length !== batch * h * w) throw invalidOption('codes', `${batch} x ${h} x ${w} codes`, codes);
      const images = tf.tidy(() => model.decode(tf.tensor3d(codes, [batch, h, w], 'int32'))); // [B, S, S, 3]
      try {
        return Float32Array.from(await images.data());
      } finally {
        images.dispose();
      }
    },
  };
}
