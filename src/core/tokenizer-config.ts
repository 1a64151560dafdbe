/**
 * Configuration of the semantic-VQ image tokenizer with dual codebooks
 * (DESIGN.md, "Semantic-VQ encoder with dual codebooks"): one typed object
 * whose defaults carry their reasons, checked in one place, unknown keys
 * rejected. Plain TypeScript (no tfjs), so the codebook store, the CLI and
 * training recipes can read and validate a config without loading a model.
 *
 * Example:
 *   const c = resolveTokenizerConfig({ codebookSize: 4096, downsample: 16, channelMult: [1, 1, 2, 2, 4] });
 *   gridShapeFor(c, 256, 256);   // [16, 16]
 */

import { VtokError, checkInt, checkNumber, checkOneOf, invalidOption, resolveOptions } from './errors';

export interface TokenizerConfig {
  /** Channels of the input images (RGB). Default 3. */
  imageChannels: number;
  /** Side of one code cell in pixels: 4 (small images such as 28x28 Fashion-MNIST), 8 or 16. The encoder halves the resolution log2(downsample) times. Default 8. */
  downsample: 4 | 8 | 16;
  /** Width of the first encoder level (and of the last decoder level). Default 32 (about 2.4 M weights, 9.6 MB as float32, with the default channelMult). */
  baseChannels: number;
  /**
   * Width of each resolution level as a multiple of baseChannels, from full
   * resolution down to the code grid: log2(downsample) + 1 entries (LlamaGen's
   * ch_mult; [1, 1, 2, 2, 4] for downsample 16). Default [1, 2, 2, 4].
   */
  channelMult: number[];
  /** Residual blocks per level in the encoder and in the decoder. Default 1. */
  resBlocks: number;
  /** Groups of every GroupNorm; must divide every width (baseChannels * mult, semanticDecoderChannels). Default 16. */
  normGroups: number;
  /** Epsilon inside GroupNorm. Default 1e-6 (as in taming/LlamaGen). */
  normEps: number;
  /**
   * Residual blocks of its own for each head (semantic, pixel) after the
   * shared trunk, so the two latents can specialize. Default 1.
   */
  headResBlocks: number;
  /** d_s: dimension of the semantic latent and codebook. Low and l2-normalized (TokenFlow uses 32). Default 16. */
  semanticDim: number;
  /** d_p: dimension of the pixel latent and codebook. Low and l2-normalized (LlamaGen uses 8): a known fix for codebook collapse. Default 8. */
  pixelDim: number;
  /** K: codes shared by both codebooks (one index selects a row of each). Default 1024. */
  codebookSize: number;
  /** w in d[k] = v |z_s - E_s[k]|^2 + w |z_p - E_p[k]|^2. 0 chooses codes by semantics alone. Default 1 (TokenFlow). */
  pixelWeight: number;
  /**
   * v in d[k] = v |z_s - E_s[k]|^2 + w |z_p - E_p[k]|^2 (also weighs the semantic
   * commitment and codebook losses, as w does the pixel ones). 0 chooses codes by
   * the pixel branch alone: the pixel-only baseline of the semantic ablation
   * (training/configs/ablation-pixel.json). v + w must be positive. Default 1.
   */
  semanticWeight: number;
  /** beta: weight of the commitment loss (VQ-VAE, van den Oord et al. 2017). Default 0.25. */
  beta: number;
  /**
   * How the codebooks learn. 'ema': moving averages of the latents assigned to
   * each code (VQ-VAE-2; vector-quantize-pytorch), codebooks are not
   * optimizer variables. 'loss': the codebook loss |sg(z) - E[k]|^2 through
   * the optimizer. Default 'ema'.
   */
  codebookUpdate: 'ema' | 'loss';
  /** EMA decay of cluster sizes and sums. Lower follows the encoder faster. Default 0.99. */
  emaDecay: number;
  /** Laplace smoothing of EMA cluster sizes (keeps a rarely used code from dividing by ~0). Default 1e-5. */
  emaEps: number;
  /** Initialize the codebooks by k-means on the latents of the first batches (SoundStream; vector-quantize-pytorch kmeans_init). Default true. */
  kmeansInit: boolean;
  /** Latent vectors to collect before running k-means; 0 = 8 * codebookSize. Must be at least codebookSize. Default 0. */
  kmeansSamples: number;
  /** Lloyd iterations of the k-means initialization. Default 10. */
  kmeansIters: number;
  /**
   * Initial centres: 'random' distinct samples (cheap, what vector-quantize-pytorch
   * does) or 'kmeans++' (Arthur & Vassilvitskii 2007; better spread, O(K N d) on the host, for small K). Default 'random'.
   */
  kmeansSeeding: 'random' | 'kmeans++';
  /** A code no position chose in this many consecutive updates is restarted from a recent latent; 0 = never. Default 100. */
  deadCodeSteps: number;
  /**
   * EMA mode only: a code whose EMA cluster size (expected positions per batch)
   * falls below this is restarted too (vector-quantize-pytorch's
   * threshold_ema_dead_code); 0 = off. Default 0.
   */
  deadCodeThreshold: number;
  /** Recent latent vectors kept to restart dead codes from (each update adds a random quarter of this many at most). Default 4096. */
  reservoirSize: number;
  /** Updates over which the windowed usage and perplexity are measured (cumulative ones are kept too). Default 100. */
  usageWindow: number;
  /** What the pixel decoder reads: the pixel codes alone, or pixel and semantic codes concatenated. Default 'pixel'. */
  decoderInput: 'pixel' | 'both';
  /** Channels of the teacher features the semantic decoder predicts (1 - cosine distillation); 0 = no semantic decoder. Default 0. */
  teacherDim: number;
  /** Width of the semantic decoder. Default 128. */
  semanticDecoderChannels: number;
  /** Residual blocks in the semantic decoder. Default 1. */
  semanticDecoderBlocks: number;
  /**
   * Kernel of the semantic decoder's input convolution, 1 or 3. Default 3. With 1 and
   * semanticDecoderBlocks 0 the decoder reads each code on its own (no neighbours), so the
   * semantic code vectors themselves must carry the teacher's features at their position.
   */
  semanticDecoderKernel: number;
}

export const TOKENIZER_DEFAULTS: TokenizerConfig = {
  imageChannels: 3,
  downsample: 8,
  baseChannels: 32,
  channelMult: [1, 2, 2, 4],
  resBlocks: 1,
  normGroups: 16,
  normEps: 1e-6,
  headResBlocks: 1,
  semanticDim: 16,
  pixelDim: 8,
  codebookSize: 1024,
  pixelWeight: 1,
  semanticWeight: 1,
  beta: 0.25,
  codebookUpdate: 'ema',
  emaDecay: 0.99,
  emaEps: 1e-5,
  kmeansInit: true,
  kmeansSamples: 0,
  kmeansIters: 10,
  kmeansSeeding: 'random',
  deadCodeSteps: 100,
  deadCodeThreshold: 0,
  reservoirSize: 4096,
  usageWindow: 100,
  decoderInput: 'pixel',
  teacherDim: 0,
  semanticDecoderChannels: 128,
  semanticDecoderBlocks: 1,
  semanticDecoderKernel: 3,
};

function checkBool(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidOption(name, 'a boolean', value);
  return value;
}

/** Fills defaults and checks every field; unknown keys are rejected. Returns a fresh object (channelMult copied). */
export function resolveTokenizerConfig(config: Partial<TokenizerConfig> = {}): TokenizerConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw invalidOption('TokenizerConfig', 'an object', config);
  }
  const c = resolveOptions('TokenizerConfig', TOKENIZER_DEFAULTS, config);
  checkInt('imageChannels', c.imageChannels, 1, 4);
  if (c.downsample !== 4 && c.downsample !== 8 && c.downsample !== 16) throw invalidOption('downsample', '4, 8 or 16', c.downsample);
  checkInt('baseChannels', c.baseChannels, 1, 4096);
  const levels = Math.log2(c.downsample) + 1;
  if (!Array.isArray(c.channelMult) || c.channelMult.length !== levels) {
    throw invalidOption('channelMult', `an array of ${levels} positive integers (log2(downsample ${c.downsample}) + 1 levels)`, c.channelMult);
  }
  c.channelMult = c.channelMult.map((m, i) => checkInt(`channelMult[${i}]`, m, 1, 64));
  checkInt('resBlocks', c.resBlocks, 1, 16);
  checkInt('normGroups', c.normGroups, 1, 4096);
  checkNumber('normEps', c.normEps, 0, 1);
  checkInt('headResBlocks', c.headResBlocks, 0, 16);
  checkInt('semanticDim', c.semanticDim, 1, 1024);
  checkInt('pixelDim', c.pixelDim, 1, 1024);
  checkInt('codebookSize', c.codebookSize, 2, 1 << 20);
  checkNumber('pixelWeight', c.pixelWeight, 0, 1000);
  checkNumber('semanticWeight', c.semanticWeight, 0, 1000);
  if (c.semanticWeight + c.pixelWeight === 0) {
    throw new VtokError('INVALID_OPTION', 'Expected semanticWeight and pixelWeight not both 0 (the code distance would be 0 for every code)', { subject: 'semanticWeight' });
  }
  checkNumber('beta', c.beta, 0, 1000);
  checkOneOf('codebookUpdate', c.codebookUpdate, ['ema', 'loss']);
  checkNumber('emaDecay', c.emaDecay, 0.000001, 0.999999);
  checkNumber('emaEps', c.emaEps, 0, 1);
  checkBool('kmeansInit', c.kmeansInit);
  checkInt('kmeansSamples', c.kmeansSamples, 0, 1 << 26);
  if (c.kmeansSamples !== 0 && c.kmeansSamples < c.codebookSize) {
    throw invalidOption('kmeansSamples', `0 (auto) or an integer of at least codebookSize ${c.codebookSize}`, c.kmeansSamples);
  }
  checkInt('kmeansIters', c.kmeansIters, 0, 1000);
  checkOneOf('kmeansSeeding', c.kmeansSeeding, ['random', 'kmeans++']);
  checkInt('deadCodeSteps', c.deadCodeSteps, 0);
  checkNumber('deadCodeThreshold', c.deadCodeThreshold, 0);
  if (c.deadCodeThreshold > 0 && c.codebookUpdate !== 'ema') {
    throw invalidOption('deadCodeThreshold', `0 when codebookUpdate is "loss" (it reads EMA cluster sizes)`, c.deadCodeThreshold);
  }
  checkInt('reservoirSize', c.reservoirSize, 4, 1 << 24);
  checkInt('usageWindow', c.usageWindow, 1, 100000);
  checkOneOf('decoderInput', c.decoderInput, ['pixel', 'both']);
  checkInt('teacherDim', c.teacherDim, 0, 65536);
  checkInt('semanticDecoderChannels', c.semanticDecoderChannels, 1, 4096);
  checkInt('semanticDecoderBlocks', c.semanticDecoderBlocks, 0, 16);
  if (c.semanticDecoderKernel !== 1 && c.semanticDecoderKernel !== 3) throw invalidOption('semanticDecoderKernel', '1 or 3', c.semanticDecoderKernel);
  for (const [name, width] of normalizedWidths(c)) {
    if (width % c.normGroups !== 0) {
      throw new VtokError('INVALID_OPTION', `Expected normGroups to divide every normalized width, but ${name} is ${width} and normGroups is ${c.normGroups}`, {
        subject: 'normGroups',
      });
    }
  }
  return c;
}

/** Every width a GroupNorm sees, with the option it comes from. */
function normalizedWidths(c: TokenizerConfig): [string, number][] {
  const out: [string, number][] = c.channelMult.map((m, i) => [`baseChannels * channelMult[${i}]`, c.baseChannels * m]);
  if (c.teacherDim > 0) out.push(['semanticDecoderChannels', c.semanticDecoderChannels]);
  return out;
}

/** Number of times the encoder halves the resolution. */
export function downsampleLevels(c: Pick<TokenizerConfig, 'downsample'>): number {
  return Math.log2(c.downsample);
}

/** Latent vectors k-means collects before initializing (resolves kmeansSamples 0). */
export function kmeansSampleCount(c: Pick<TokenizerConfig, 'kmeansSamples' | 'codebookSize'>): number {
  return c.kmeansSamples > 0 ? c.kmeansSamples : 8 * c.codebookSize;
}

/**
 * [h, w] of the code grid of an H x W image; both sides must be positive
 * multiples of the downsample factor (the model is fully convolutional).
 */
export function gridShapeFor(c: Pick<TokenizerConfig, 'downsample'>, height: number, width: number): [number, number] {
  for (const [name, v] of [
    ['image height', height],
    ['image width', width],
  ] as const) {
    if (!Number.isInteger(v) || v <= 0 || v % c.downsample !== 0) {
      throw new VtokError('INVALID_INPUT', `Expected ${name} to be a positive multiple of the downsample factor ${c.downsample} but received ${v}`, {
        subject: name,
      });
    }
  }
  return [height / c.downsample, width / c.downsample];
}
