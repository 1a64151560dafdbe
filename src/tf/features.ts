/**
 * Feature extractors for Fréchet distances, behind one interface so that
 * every report can name the network its features came from. Only pytorch-fid's
 * Inception-v3 with its trained weights gives "FID" in the published sense
 * (docs/EVAL.md); any other extractor gives a Fréchet distance in ITS feature
 * space, comparable only with numbers from the same extractor.
 *
 * Two kinds live here (the file and node_modules loading is in
 * src/io/feature-models.ts):
 *   - `fidInceptionExtractor`: src/tf/inception.ts with weights given;
 *   - `layersModelExtractor`: any Keras-style tf.LayersModel cut at its
 *     global-pool layer (the nsfwjs InceptionV3 and MobileNetV2 networks).
 *
 * Example:
 *   const ex = await loadFeatureExtractor({ kind: 'nsfwjs-inception-v3' });   // src/io
 *   const f = await ex.extract(images);         // [B, H, W, 3] in [-1, 1] -> Float32Array [B * ex.dim]
 *   scoreLabel(ex)                              // 'FD[nsfwjs-inception-v3]', never 'FID'
 */

import * as tf from '@tensorflow/tfjs';
import { VtokError, checkInt } from '../core/errors';
import { FID_INCEPTION_INPUT_SIZE, FidInceptionV3 } from './inception';

export interface FeatureExtractor {
  /** Stable identifier of the network and weights, e.g. 'pytorch-fid-inception-v3', 'nsfwjs-inception-v3'. */
  readonly name: string;
  /** One line for reports: what network, which weights, which preprocessing. */
  readonly description: string;
  /** Feature dimension D. */
  readonly dim: number;
  /** Square side the network resizes its input to. */
  readonly inputSize: number;
  /** True only for pytorch-fid's Inception-v3 with pytorch-fid's own weights: the only extractor whose Fréchet distance is "FID". */
  readonly standard: boolean;
  /** Images per forward pass inside extract(). */
  readonly batchSize: number;
  /** Pool features of images [B, H, W, 3] in [-1, 1]: Float32Array [B * dim], row-major. The input is not disposed. */
  extract(images: tf.Tensor4D): Promise<Float32Array>;
  /** Frees the network's weights. */
  dispose(): void;
}

/** What to call a Fréchet distance in this extractor's feature space: 'FID' only for the standard one. */
export function scoreLabel(extractor: Pick<FeatureExtractor, 'name' | 'standard'>): string {
  return extractor.standard ? 'FID' : `FD[${extractor.name}]`;
}

/** Runs `features` over the batch in chunks of batchSize, collecting [B * dim] floats; shared by the extractors. */
async function extractInChunks(
  images: tf.Tensor4D,
  dim: number,
  batchSize: number,
  features: (chunk: tf.Tensor4D) => tf.Tensor2D,
): Promise<Float32Array> {
  if (!(images instanceof tf.Tensor) || images.rank !== 4 || images.shape[3] !== 3) {
    throw new VtokError('INVALID_INPUT', `Expected images of shape [B, H, W, 3] but received ${images instanceof tf.Tensor ? `[${images.shape.join(', ')}]` : typeof images}`);
  }
  const B = images.shape[0];
  const out = new Float32Array(B * dim);
  for (let start = 0; start < B; start += batchSize) {
    const n = Math.min(batchSize, B - start);
    const f = tf.tidy(() => features(images.slice([start, 0, 0, 0], [n, -1, -1, -1]))); // [n, dim]
    try {
      out.set(await f.data(), start * dim);
    } finally {
      f.dispose();
    }
  }
  return out;
}

export interface FidInceptionExtractorOptions {
  /** Whether the weights are pytorch-fid's own (decided by whoever read the weights file); default false. */
  standard?: boolean;
  /** Where the weights came from, for the description. */
  source?: string;
  /** Images per forward pass; default 8. */
  batchSize?: number;
}

/** An extractor over a built FidInceptionV3 (which it owns and disposes). */
export function fidInceptionExtractor(net: FidInceptionV3, options: FidInceptionExtractorOptions = {}): FeatureExtractor {
  const batchSize = checkInt('batchSize', options.batchSize ?? 8, 1, 4096);
  const standard = (options.standard ?? false) && net.config.width === 1;
  const weights = standard
    ? 'pytorch-fid weights pt_inception-2015-12-05'
    : `weights ${options.source ? `from ${options.source} ` : ''}NOT recognised as pytorch-fid's: not FID`;
  return {
    name: net.config.width === 1 ? 'pytorch-fid-inception-v3' : `pytorch-fid-inception-v3-width-${net.config.width}`,
    description: `pytorch-fid FID Inception-v3 (${weights}); 2048-d pool3 features of images resized to 299x299 bilinear (align_corners=False), in [-1, 1]`,
    dim: net.dim,
    inputSize: FID_INCEPTION_INPUT_SIZE,
    standard,
    batchSize,
    extract: (images) => extractInChunks(images, net.dim, batchSize, (x) => net.features(x)),
    dispose: () => net.dispose(),
  };
}

export interface LayersModelExtractorOptions {
  name: string;
  description: string;
  /** Name of the layer whose output [B, D] (or [B, 1, 1, D]) is the feature vector. */
  featureLayer: string;
  /** Square input side of the model. */
  inputSize: number;
  /** Pixel range the model was trained on: [0, 1] or [-1, 1]. */
  inputRange: '0..1' | '-1..1';
  /** Resize with align_corners=true (as nsfwjs does) instead of half-pixel centres. */
  alignCorners: boolean;
  /** Images per forward pass; default 8. */
  batchSize?: number;
}

/** An extractor over a Keras-style LayersModel cut at `featureLayer` (it owns and disposes the model). */
export function layersModelExtractor(model: tf.LayersModel, options: LayersModelExtractorOptions): FeatureExtractor {
  const batchSize = checkInt('batchSize', options.batchSize ?? 8, 1, 4096);
  let layer: tf.layers.Layer;
  try {
    layer = model.getLayer(options.featureLayer);
  } catch (err) {
    throw new VtokError('INVALID_INPUT', `The model ${options.name} has no layer named ${JSON.stringify(options.featureLayer)}`, { cause: err });
  }
  const output = layer.output as tf.SymbolicTensor;
  const dim = output.shape[output.shape.length - 1] as number;
  const cut = tf.model({ inputs: model.inputs, outputs: output });
  const S = options.inputSize;
  const features = (x: tf.Tensor4D): tf.Tensor2D => {
    const [, H, W] = x.shape;
    let y: tf.Tensor4D = options.inputRange === '0..1' ? x.add(1).div(2) : x; // [b, H, W, 3]
    if (H !== S || W !== S) y = tf.image.resizeBilinear(y, [S, S], options.alignCorners, !options.alignCorners); // [b, S, S, 3]
    const f = cut.predict(y) as tf.Tensor;
    return f.reshape([x.shape[0], dim]) as tf.Tensor2D; // [b, dim]
  };
  return {
    name: options.name,
    description: options.description,
    dim,
    inputSize: S,
    standard: false,
    batchSize,
    extract: (images) => extractInChunks(images, dim, batchSize, features),
    dispose: () => model.dispose(),
  };
}
