/**
 * Using a trained autoregressive head (training/ar.ts, src/io/ar-bundle.ts):
 * draw images for a text, describe images, score a closed set of texts.
 *
 *   generateImages(ar, { prompt: 'Sneaker', n: 8, guidance: 2, seed: 1 })  // code grids [h*w] (BPE decoded)
 *   describeImages(ar, [codes])        // greedy text and class scores per image
 *   classifyCodes(ar, [codes])         // log-probabilities of every class text
 *   evalArTokens(ar, 'tokens/test')    // understanding accuracy over a labelled token folder
 *   generateImageFiles / describeImageFiles: the same through the image tokenizer named in the bundle, to and from PNG
 */

import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { generationPrompt, streamController, understandingPrompt, type RowController } from '../core/ar-streams';
import { type ClassScores, bpeShapeOf, rankCandidates, recordText, streamGrid } from '../core/ar-tasks';
import { VtokError, checkInt, checkNumber, describeValue, invalidOption, resolveOptions } from '../core/errors';
import type { ArParts } from '../io/ar-bundle';
import { iterateShards, readTokenDir } from '../io/dataset';
import { readImage, writeImageGrid, writePng } from '../io/image';
import type { StoreSetOptions } from '../io/store';
import { loadTokenizer } from '../io/tokenizer-bundle';
import { generate } from '../tf/ar-generate';
import { scoreCandidatesCached } from '../tf/ar-score';

export interface GenerateImagesOptions {
  /** The text to draw (a caption or class name); null for unconditional samples. */
  prompt: string | null;
  /** Number of images. Default 8. */
  n: number;
  /** Softmax temperature (0: greedy). Default 1. */
  temperature: number;
  /** Keep the k most likely ids (0: off). Default 0. */
  topK: number;
  /** Nucleus sampling mass (1: off). Default 1. */
  topP: number;
  /** Classifier-free guidance scale (1: off). Default 1. */
  guidance: number;
  /** The same seed gives the same images. Default 0. */
  seed: number;
  /** KV cache (false: recompute every step, the slow reference). Default true. */
  useCache: boolean;
}

export const GENERATE_IMAGES_DEFAULTS: GenerateImagesOptions = { prompt: null, n: 8, temperature: 1, topK: 0, topP: 1, guidance: 1, seed: 0, useCache: true };

function controllerFor(ar: ArParts): () => RowController {
  const layout = { grid: streamGrid(ar.grid, ar.bpe), shapeOf: bpeShapeOf(ar.bpe) };
  return () => streamController(ar.vocab, layout);
}

/** Visual ids (0..K+M-1) of a base code grid: the codes, or their BPE encoding. */
function visualOf(ar: ArParts, codes: ArrayLike<number>, where: string): ArrayLike<number> {
  const { height: h, width: w } = ar.grid;
  if (codes === null || typeof codes !== 'object' || codes.length !== h * w) {
    throw new VtokError('INVALID_INPUT', `Expected ${where} to be a ${h}x${w} code grid (${h * w} codes) but received ${describeValue(codes)}${codes !== null && typeof codes === 'object' ? ` of length ${codes.length}` : ''}`, {
      subject: where,
    });
  }
  const K = ar.vocab.visual.baseCodes;
  for (let i = 0; i < codes.length; i++) {
    const v = codes[i];
    if (!Number.isInteger(v) || v < 0 || v >= K) {
      throw new VtokError('VOCAB', `Expected codes between 0 and ${K - 1} in ${where} but received ${describeValue(v)} at index ${i}`, { subject: where });
    }
  }
  return ar.bpe === undefined ? codes : ar.bpe.encode(codes, h, w);
}

/** The prompt's ids, checked against the model's context. */
function promptIds(ar: ArParts, prompt: string | null): number[] {
  if (prompt !== null && typeof prompt !== 'string') throw invalidOption('prompt', 'a string (or null for unconditional samples)', prompt);
  const ids = generationPrompt(ar.vocab, prompt);
  const need = ids.length + ar.grid.height * ar.grid.width + 1;
  if (need > ar.model.config.contextLength) {
    throw new VtokError('INVALID_INPUT', `The prompt is ${ids.length - 3} text tokens; with the image it needs ${need} positions but the model has ${ar.model.config.contextLength}. Use a shorter prompt`, {
      subject: 'prompt',
    });
  }
  return ids;
}

/** Samples n images for a prompt; returns base code grids [h * w] (through BPE decoding when the model writes BPE ids). */
export function generateImages(ar: ArParts, options?: Partial<GenerateImagesOptions>): Int32Array[] {
  const o = resolveOptions('generateImages', GENERATE_IMAGES_DEFAULTS, options);
  checkInt('n', o.n, 1, 4096);
  checkNumber('guidance', o.guidance);
  const prompt = promptIds(ar, o.prompt);
  const { height: h, width: w } = ar.grid;
  const guided = o.guidance !== 1;
  const uncond = generationPrompt(ar.vocab, null);
  const res = generate(ar.model, new Array(o.n).fill(prompt), {
    temperature: o.temperature,
    topK: o.topK,
    topP: o.topP,
    seed: o.seed,
    guidanceScale: o.guidance,
    uncondPrompts: guided ? new Array(o.n).fill(uncond) : null,
    maxNewTokens: h * w + 1,
    stopIds: [ar.vocab.eoi],
    useCache: o.useCache,
    controller: controllerFor(ar),
  });
  const v0 = ar.vocab.ranges.visual.start;
  return res.tokens.map((ids) => {
    const visual = ids.filter((id) => id !== ar.vocab.eoi).map((id) => id - v0);
    return ar.bpe === undefined ? Int32Array.from(visual) : ar.bpe.decode(visual, h, w);
  });
}

/**
 * Log-probabilities [images x candidates] (row-major) of candidate texts (each followed by `<eos>`) after each image.
 * Each image's prompt runs once (KV cache, repeated per candidate); batchRows bounds images x candidates per pass.
 */
export function classifyCodes(ar: ArParts, images: readonly ArrayLike<number>[], candidates: readonly string[] = ar.classes, batchRows = 64): Float64Array {
  if (candidates.length === 0) throw invalidOption('candidates', 'at least one candidate text', candidates);
  const make = controllerFor(ar);
  const prompts: number[][] = [];
  const pos: number[][] = [];
  images.forEach((codes, i) => {
    const ids = understandingPrompt(ar.vocab, visualOf(ar, codes, `image ${i}`));
    const c = make();
    prompts.push(ids);
    pos.push(ids.flatMap((id) => c.push(id) ?? [-1, -1]));
  });
  const cands = candidates.map((t) => [...ar.vocab.encodeText(t), ar.vocab.eos]);
  const out = new Float64Array(images.length * cands.length);
  const per = Math.max(1, Math.floor(batchRows / cands.length));
  const grid = ar.model.config.gridRows > 0;
  for (let s = 0; s < prompts.length; s += per) {
    const scores = scoreCandidatesCached(ar.model, prompts.slice(s, s + per), cands, grid ? pos.slice(s, s + per) : undefined);
    out.set(scores, s * cands.length);
  }
  return out;
}

export interface Description {
  /** Greedy text after the image (up to `<eos>`). */
  text: string;
  /** Class scores over the closed set (omitted when the set is empty). */
  scores: ClassScores | null;
}

/** Greedy descriptions and class scores of code grids. */
export function describeImages(ar: ArParts, images: readonly ArrayLike<number>[], options: { maxTokens?: number; candidates?: readonly string[] } = {}): Description[] {
  if (images.length === 0) return [];
  const maxTokens = checkInt('maxTokens', options.maxTokens ?? 32, 1);
  const prompts = images.map((codes, i) => understandingPrompt(ar.vocab, visualOf(ar, codes, `image ${i}`)));
  const room = ar.model.config.contextLength - prompts[0].length;
  const res = generate(ar.model, prompts, { temperature: 0, maxNewTokens: Math.max(1, Math.min(maxTokens, room)), stopIds: [ar.vocab.eos], controller: controllerFor(ar) });
  const t0 = ar.vocab.ranges.text.start;
  const t1 = ar.vocab.ranges.text.end;
  const candidates = options.candidates ?? ar.classes;
  const scores = candidates.length > 0 ? classifyCodes(ar, images, candidates) : null;
  return res.tokens.map((ids, i) => ({
    text: ar.vocab.text.decode(ids.filter((id) => id >= t0 && id < t1).map((id) => id - t0)),
    scores: scores === null ? null : rankCandidates(candidates, scores.subarray(i * candidates.length, (i + 1) * candidates.length)),
  }));
}

export interface ArEvalResult {
  /** Fraction of records whose highest-scoring class is their text. */
  accuracy: number;
  n: number;
  correct: number;
  /** Records whose text is not one of the model's classes (counted as wrong). */
  unknownTexts: number;
  /** Accuracy per class text. */
  perClass: Record<string, { n: number; correct: number }>;
}

/** Understanding accuracy over a labelled token folder of the model's image tokenizer. */
export async function evalArTokens(
  ar: ArParts,
  tokens: string,
  options: { limit?: number; batch?: number; onProgress?: (done: number) => void } = {},
): Promise<ArEvalResult> {
  const { dir, manifest } = await readTokenDir(tokens);
  if (manifest.options.tokenizer.id !== ar.imageTokenizer) {
    throw new VtokError(
      'STORE_MISMATCH',
      `${tokens} was tokenized with ${manifest.options.tokenizer.id.slice(0, 12)} but the AR model reads codes of ${ar.imageTokenizer.slice(0, 12)}`,
      { subject: tokens },
    );
  }
  const limit = options.limit ?? Infinity;
  const per = options.batch ?? 64;
  const classes = ar.classes;
  const index = new Map(classes.map((c, i) => [c, i]));
  const result: ArEvalResult = { accuracy: 0, n: 0, correct: 0, unknownTexts: 0, perClass: {} };
  let pending: { codes: Int32Array; text: string }[] = [];
  const flush = (): void => {
    if (pending.length === 0) return;
    const s = classifyCodes(ar, pending.map((p) => p.codes), classes, Math.max(classes.length, 640));
    pending.forEach((p, i) => {
      let best = 0;
      for (let c = 1; c < classes.length; c++) if (s[i * classes.length + c] > s[i * classes.length + best]) best = c;
      const truth = index.get(p.text);
      const ok = truth === best;
      if (truth === undefined) result.unknownTexts++;
      const pc = (result.perClass[p.text] ??= { n: 0, correct: 0 });
      pc.n++;
      if (ok) pc.correct++;
      result.n++;
      if (ok) result.correct++;
    });
    pending = [];
    options.onProgress?.(result.n);
  };
  outer: for await (const shard of iterateShards(dir, manifest)) {
    for (const r of shard.records) {
      if (result.n + pending.length >= limit) break outer;
      const text = recordText(r);
      if (text === null) throw new VtokError('INVALID_INPUT', `Record ${r.key} in ${shard.file} has no caption or label to score against`, { subject: r.key });
      const codes = r.codes ?? (r.bpe !== null && ar.bpe !== undefined ? ar.bpe.decode(r.bpe, ar.grid.height, ar.grid.width) : null);
      if (codes === null) throw new VtokError('INVALID_INPUT', `Record ${r.key} in ${shard.file} has no code grid`, { subject: r.key });
      pending.push({ codes, text });
      if (pending.length >= per) flush();
    }
  }
  flush();
  result.accuracy = result.n === 0 ? 0 : result.correct / result.n;
  return result;
}

/** Decodes code grids to PNG files (NAME-000.png...) and a grid PNG through the image tokenizer named in the bundle. */
export async function generateImageFiles(
  ar: ArParts,
  options: Partial<GenerateImagesOptions> & { out: string; store?: StoreSetOptions },
): Promise<{ files: string[]; grid: string; codes: Int32Array[] }> {
  const { out, store, ...gen } = options;
  const codes = generateImages(ar, gen);
  await fs.mkdir(out, { recursive: true });
  const t = await loadTokenizer(ar.imageTokenizer, store ?? {});
  try {
    const { height: h, width: w } = ar.grid;
    const pixels = tf.tidy(() => t.model.decode(tf.tensor3d(Int32Array.from(codes.flatMap((c) => Array.from(c))), [codes.length, h, w], 'int32'))); // [n, H, W, 3]
    const [, H, W] = pixels.shape;
    const data = pixels.dataSync() as Float32Array;
    pixels.dispose();
    const files: string[] = [];
    const cells = [];
    for (let i = 0; i < codes.length; i++) {
      const img = data.slice(i * H * W * 3, (i + 1) * H * W * 3);
      const file = path.join(out, `sample-${String(i).padStart(3, '0')}.png`);
      await writePng(file, img, { width: W, height: H, channels: 3, range: '[-1,1]' });
      files.push(file);
      cells.push({ data: Uint8Array.from(img, (v) => Math.round((Math.max(-1, Math.min(1, v)) + 1) * 127.5)), width: W, height: H });
    }
    const grid = path.join(out, 'grid.png');
    await writeImageGrid(grid, cells, { columns: Math.min(8, codes.length) });
    return { files, grid, codes };
  } finally {
    t.model.dispose();
  }
}

/** Reads image files, encodes them with the image tokenizer named in the bundle, and describes them. */
export async function describeImageFiles(ar: ArParts, files: readonly string[], options: { store?: StoreSetOptions; maxTokens?: number } = {}): Promise<(Description & { file: string })[]> {
  const t = await loadTokenizer(ar.imageTokenizer, options.store ?? {});
  try {
    const S = t.imageSize;
    const grids: Int32Array[] = [];
    for (const f of files) {
      const img = await readImage(f, { size: S });
      const codes = tf.tidy(() => t.model.encode(tf.tensor4d(img.data, [1, S, S, 3]))); // [1, h, w]
      grids.push(Int32Array.from(codes.dataSync()));
      codes.dispose();
    }
    return describeImages(ar, grids, { maxTokens: options.maxTokens }).map((d, i) => ({ ...d, file: files[i] }));
  } finally {
    t.model.dispose();
  }
}
