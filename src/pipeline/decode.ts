/**
 * decodeDataset: token shards back to PNG images, through an
 * ImageDetokenizer (and through BPE decode for records that hold BPE ids
 * only). The detokenizer must carry the id of the tokenizer that made the
 * tokens: tokens are never decoded with another codebook.
 *
 * Output files: OUT/<key with its extension replaced by .png>, e.g.
 * `cats/001.jpg` -> `OUT/cats/001.png` (`..` segments and leading '/' are
 * dropped so nothing is written outside OUT; when two keys would give one
 * file name, the later one keeps its whole key: `cats/001.jpg.png`).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { BpeModel } from '../core/bpe';
import { VtokError, checkInt, invalidOption, resolveOptions } from '../core/errors';
import type { ImageDetokenizer, TokenRecord } from '../core/pipeline-types';
import { iterateShards, readTokenDir } from '../io/dataset/shard';
import { writePng } from '../io/image';
import { bpeContentId } from './tokenize';

export interface DecodeProgress {
  done: number;
  total: number;
}

export interface DecodeOptions {
  /** Token folder (or its manifest file). Required. */
  dir: string;
  /** Folder for the PNG files (created). Required. */
  out: string;
  /** The detokenizer of the tokenizer that made the tokens. Required. */
  detokenizer: ImageDetokenizer | undefined;
  /** The run's BPE model: needed when the records hold BPE ids only. Default undefined. */
  bpe: BpeModel | undefined;
  /** Grids per call to detokenizer.decodeBatch. Default 16. */
  batchSize: number;
  /** Decode only the first N records (manifest order). Default undefined: all. */
  limit: number | undefined;
  /** Write into a non-empty folder (replacing files of the same names). Default false: refuse. */
  overwrite: boolean;
  /** Called after every batch. Default none. */
  onProgress: ((p: DecodeProgress) => void) | undefined;
}

export const DECODE_DEFAULTS: DecodeOptions = {
  dir: '',
  out: '',
  detokenizer: undefined,
  bpe: undefined,
  batchSize: 16,
  limit: undefined,
  overwrite: false,
  onProgress: undefined,
};

export interface DecodeResult {
  /** Images written. */
  images: number;
  /** Output file of each decoded record, relative to out, in manifest order. */
  files: string[];
}

/** The output file name of a key (see the top of this file). */
export function outputNameOf(key: string): string {
  const parts = key
    .replace(/\\/g, '/')
    .split('/')
    .filter((s) => s !== '' && s !== '.' && s !== '..');
  if (parts.length === 0) parts.push('image');
  const last = parts[parts.length - 1];
  const dot = last.lastIndexOf('.');
  parts[parts.length - 1] = (dot > 0 ? last.slice(0, dot) : last) + '.png';
  return parts.join('/');
}

/**
 * Renders a token folder to PNG files.
 *
 * Example: await decodeDataset({ dir: 'tokens/', out: 'recon/', detokenizer });
 */
export async function decodeDataset(options: Partial<DecodeOptions>): Promise<DecodeResult> {
  const opts = resolveOptions('decodeDataset', DECODE_DEFAULTS, options);
  if (typeof opts.dir !== 'string' || opts.dir === '') throw invalidOption('dir', 'a token folder', opts.dir);
  if (typeof opts.out !== 'string' || opts.out === '') throw invalidOption('out', 'an output folder', opts.out);
  const det = opts.detokenizer;
  if (det === null || typeof det !== 'object' || typeof det.decodeBatch !== 'function') {
    throw invalidOption('detokenizer', 'an ImageDetokenizer {id, imageSize, gridShape, decodeBatch}', det);
  }
  const B = checkInt('batchSize', opts.batchSize, 1, 4096);
  const limit = opts.limit === undefined ? Infinity : checkInt('limit', opts.limit, 0);
  const { dir, manifest } = await readTokenDir(opts.dir);
  const t = manifest.options.tokenizer;
  if (det.id !== t.id) {
    throw new VtokError('STORE_MISMATCH', `These tokens were made by tokenizer ${t.id}; the detokenizer is ${det.id}. Decode with the tokenizer that made them`, { subject: 'detokenizer' });
  }
  const [h, w] = t.gridShape;
  if (det.gridShape[0] !== h || det.gridShape[1] !== w) {
    throw new VtokError('STORE_MISMATCH', `The detokenizer takes ${det.gridShape[0]} x ${det.gridShape[1]} grids but the tokens are ${h} x ${w}`, { subject: 'detokenizer' });
  }
  if (!manifest.options.storeCodes) {
    if (!opts.bpe) throw invalidOption('bpe', 'the BPE model of the run (its records hold BPE ids only)', opts.bpe);
    const id = bpeContentId(opts.bpe);
    if (manifest.options.bpe && id !== manifest.options.bpe.id) {
      throw new VtokError('STORE_MISMATCH', `These tokens were made with BPE model ${manifest.options.bpe.id}; the given model is ${id}`, { subject: 'bpe' });
    }
  }
  await fsp.mkdir(opts.out, { recursive: true });
  if (!opts.overwrite && (await fsp.readdir(opts.out)).length > 0) {
    throw new VtokError('INVALID_OPTION', `Refusing to write into ${opts.out}: it is not empty; pass overwrite, or choose an empty folder`, { subject: 'out' });
  }

  const total = Math.min(limit, manifest.counts.records);
  const used = new Set<string>();
  const files: string[] = [];
  let pending: TokenRecord[] = [];
  const S = det.imageSize;
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const codes = new Int32Array(pending.length * h * w); // [b, h, w]
    pending.forEach((r, i) => {
      const grid = r.codes ?? (opts.bpe as BpeModel).decode(r.bpe as Int32Array, h, w);
      codes.set(grid, i * h * w);
    });
    const images = await det.decodeBatch(codes, pending.length); // [b, S, S, 3]
    if (!(images instanceof Float32Array) || images.length !== pending.length * S * S * 3) {
      throw new VtokError('INVALID_INPUT', `Detokenizer ${det.id} returned ${images?.length} values for ${pending.length} images of ${S} x ${S} x 3`);
    }
    for (let i = 0; i < pending.length; i++) {
      let name = outputNameOf(pending[i].key);
      if (used.has(name)) name = outputNameOf(`${pending[i].key}.png`);
      used.add(name);
      const file = path.join(opts.out, name);
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await writePng(file, images.subarray(i * S * S * 3, (i + 1) * S * S * 3), { width: S, height: S, channels: 3 });
      files.push(name);
    }
    pending = [];
    if (opts.onProgress) opts.onProgress({ done: files.length, total });
  };
  outer: for await (const shard of iterateShards(dir, manifest)) {
    for (const r of shard.records) {
      if (files.length + pending.length >= limit) break outer;
      pending.push(r);
      if (pending.length === B) await flush();
    }
  }
  await flush();
  return { images: files.length, files };
}
