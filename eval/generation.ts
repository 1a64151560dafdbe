/**
 * Generation accuracy of the autoregressive head (issue #8): for every class
 * text of the AR model, sample nPerClass images (src/pipeline/ar.ts
 * generateImages), decode them with the image tokenizer named in the AR
 * bundle, and ask a separately trained pixel classifier (training/classifier.ts)
 * which class each one shows. Accuracy = samples whose predicted class is the
 * prompted one / samples.
 *
 * The decoded pixels are clamped and rounded to 8 bits before classifying, so
 * the classifier sees exactly what a written PNG would hold. The classifier
 * must read the geometry the tokenizer decodes to (Fashion-MNIST: 32 x 32, as
 * both were trained); a mismatch is an error, not a silent resize.
 *
 * Seeds: class c (index in the AR class list), chunk k (images
 * [k * batch, (k + 1) * batch) of that class) samples with seed
 * `seed + 1009 * c + k`, so a class's samples do not depend on the other
 * classes and a run is reproducible.
 *
 * Example:
 *   const r = await evalGeneration(await loadAr('runs/ar'), await loadClassifier('runs/cls'), { nPerClass: 100, guidance: 3 });
 *   r.accuracy; r.perClass['Sneaker'].accuracy;
 */

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { VtokError, checkInt, resolveOptions } from '../src/core/errors';
import type { ArParts } from '../src/io/ar-bundle';
import type { ClassifierParts } from '../src/io/classifier-bundle';
import { writeImageGrid } from '../src/io/image';
import type { StoreSetOptions } from '../src/io/store';
import { type LoadedTokenizer, loadTokenizer } from '../src/io/tokenizer-bundle';
import { generateImages } from '../src/pipeline/ar';
import { classifyPixels } from '../training/classifier';

export interface EvalGenerationOptions {
  /** Samples per class prompt. Default 100. */
  nPerClass: number;
  /** Softmax temperature. Default 1. */
  temperature: number;
  /** Top-k (0: off). Default 0. */
  topK: number;
  /** Nucleus mass (1: off). Default 1. */
  topP: number;
  /** Classifier-free guidance scale (1: off). Default 1. */
  guidance: number;
  /** Base seed (see the file comment). Default 0. */
  seed: number;
  /** Images sampled at once. Default 50. */
  batch: number;
  /** Only these class texts (default: every class of the AR model). */
  classes: string[] | undefined;
  /** Folder for one grid PNG per class (each cell labelled with the predicted class); undefined: none. */
  out: string | undefined;
  /** Store holding the image tokenizer. */
  store: StoreSetOptions;
  /** The image tokenizer already loaded (else loaded from the store by the AR bundle's id). */
  tokenizer: LoadedTokenizer | undefined;
  /** After each chunk: samples done, samples in all. */
  onProgress: ((done: number, total: number) => void) | undefined;
}

export const EVAL_GENERATION_DEFAULTS: EvalGenerationOptions = {
  nPerClass: 100,
  temperature: 1,
  topK: 0,
  topP: 1,
  guidance: 1,
  seed: 0,
  batch: 50,
  classes: undefined,
  out: undefined,
  store: {},
  tokenizer: undefined,
  onProgress: undefined,
};

export interface GenerationSample {
  /** The prompt (an AR class text). */
  prompt: string;
  /** The classifier's class for the decoded image. */
  predicted: string;
}

export interface EvalGenerationResult {
  /** correct / n. */
  accuracy: number;
  n: number;
  correct: number;
  perClass: Record<string, { n: number; correct: number; accuracy: number; predicted: Record<string, number> }>;
  /** Every sample in generation order (class by class). */
  samples: GenerationSample[];
  /** Grid PNG per class when `out` was given. */
  grids: Record<string, string>;
  /** Seconds spent sampling, decoding and classifying. */
  wallSeconds: number;
  /** Sampling settings and the ids of the three models, for the report. */
  settings: { nPerClass: number; temperature: number; topK: number; topP: number; guidance: number; seed: number; imageTokenizer: string; classifierClasses: number };
}

/** A file name for a class text ("T-shirt/top" -> "T-shirt_top"). */
export function classFileName(text: string): string {
  const s = text.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '');
  return s === '' ? 'class' : s;
}

/** The seed of chunk k of class c (see the file comment). */
export function generationSeed(seed: number, classIndex: number, chunk: number): number {
  return seed + 1009 * classIndex + chunk;
}

/** Samples, decodes and classifies; see the file comment. */
export async function evalGeneration(ar: ArParts, classifier: ClassifierParts, options?: Partial<EvalGenerationOptions>): Promise<EvalGenerationResult> {
  const o = resolveOptions('evalGeneration', EVAL_GENERATION_DEFAULTS, options);
  checkInt('nPerClass', o.nPerClass, 1, 100000);
  checkInt('batch', o.batch, 1, 4096);
  const prompts = o.classes ?? ar.classes;
  if (prompts.length === 0) throw new VtokError('INVALID_INPUT', 'The AR model has no class texts to prompt with (it was trained without a closed set); pass classes', { subject: 'classes' });
  for (const p of prompts) {
    if (!ar.classes.includes(p)) throw new VtokError('INVALID_INPUT', `${JSON.stringify(p)} is not one of the AR model's class texts (${ar.classes.map((c) => JSON.stringify(c)).join(', ')})`, { subject: p });
    if (!classifier.classes.includes(p)) {
      throw new VtokError(
        'INVALID_INPUT',
        `The classifier does not know the AR class ${JSON.stringify(p)}; its classes are ${classifier.classes.map((c) => JSON.stringify(c)).join(', ')}. Train it on data labelled with the same texts`,
        { subject: p },
      );
    }
  }
  const tok = o.tokenizer ?? (await loadTokenizer(ar.imageTokenizer, o.store));
  if (tok.id !== ar.imageTokenizer) {
    if (o.tokenizer === undefined) tok.model.dispose();
    throw new VtokError('STORE_MISMATCH', `The AR model reads codes of tokenizer ${ar.imageTokenizer.slice(0, 12)} but tokenizer ${tok.id.slice(0, 12)} was given`, { subject: 'tokenizer' });
  }
  const started = Date.now();
  try {
    const { height: h, width: w } = ar.grid;
    const H = h * tok.model.config.downsample; // decoded image size
    const W = w * tok.model.config.downsample;
    const { height: cH, width: cW } = classifier.model.config;
    if (H !== cH || W !== cW) {
      throw new VtokError(
        'INVALID_INPUT',
        `The image tokenizer decodes ${h}x${w} code grids to ${W}x${H} images but the classifier reads ${cW}x${cH}; train the classifier with input size ${W} (vtok classify train --size ${W})`,
        { subject: 'classifier' },
      );
    }
    if (o.out !== undefined) await fs.mkdir(o.out, { recursive: true });
    const result: EvalGenerationResult = {
      accuracy: 0,
      n: 0,
      correct: 0,
      perClass: {},
      samples: [],
      grids: {},
      wallSeconds: 0,
      settings: {
        nPerClass: o.nPerClass,
        temperature: o.temperature,
        topK: o.topK,
        topP: o.topP,
        guidance: o.guidance,
        seed: o.seed,
        imageTokenizer: ar.imageTokenizer,
        classifierClasses: classifier.classes.length,
      },
    };
    const total = prompts.length * o.nPerClass;
    for (const prompt of prompts) {
      const c = ar.classes.indexOf(prompt);
      const pc = { n: 0, correct: 0, accuracy: 0, predicted: {} as Record<string, number> };
      result.perClass[prompt] = pc;
      const cells: { data: Uint8Array; width: number; height: number; label: string }[] = [];
      for (let k = 0; k * o.batch < o.nPerClass; k++) {
        const m = Math.min(o.batch, o.nPerClass - k * o.batch);
        const codes = generateImages(ar, { prompt, n: m, temperature: o.temperature, topK: o.topK, topP: o.topP, guidance: o.guidance, seed: generationSeed(o.seed, c, k) });
        const flat = new Int32Array(m * h * w);
        codes.forEach((g, i) => flat.set(g, i * h * w));
        const decoded = tf.tidy(() => tok.model.decode(tf.tensor3d(flat, [m, h, w], 'int32'))); // [m, H, W, 3]
        const data = decoded.dataSync() as Float32Array;
        decoded.dispose();
        // What an 8-bit PNG of the sample holds, back in [-1, 1].
        const bytes = Uint8Array.from(data, (v) => Math.round((Math.max(-1, Math.min(1, v)) + 1) * 127.5));
        const pixels = Float32Array.from(bytes, (v) => v / 127.5 - 1);
        const pred = classifyPixels(classifier, pixels, m);
        for (let i = 0; i < m; i++) {
          const predicted = classifier.classes[pred[i]];
          result.samples.push({ prompt, predicted });
          pc.n++;
          pc.predicted[predicted] = (pc.predicted[predicted] ?? 0) + 1;
          if (predicted === prompt) pc.correct++;
          if (o.out !== undefined) cells.push({ data: bytes.slice(i * H * W * 3, (i + 1) * H * W * 3), width: W, height: H, label: predicted });
        }
        o.onProgress?.(result.samples.length, total);
      }
      pc.accuracy = pc.correct / pc.n;
      result.n += pc.n;
      result.correct += pc.correct;
      if (o.out !== undefined) {
        const file = path.join(o.out, `${classFileName(prompt)}.png`);
        await writeImageGrid(file, cells, { columns: Math.min(10, cells.length) });
        result.grids[prompt] = file;
      }
    }
    result.accuracy = result.correct / result.n;
    result.wallSeconds = (Date.now() - started) / 1000;
    return result;
  } finally {
    if (o.tokenizer === undefined) tok.model.dispose();
  }
}
