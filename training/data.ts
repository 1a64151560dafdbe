/**
 * The training image stream: images held in memory as [-1, 1] float pixels,
 * visited in a seeded shuffled order (a new shuffle every epoch), each one
 * cut to a random square crop of the training size and flipped left-right
 * with probability 1/2. The whole position of the stream (order, cursor,
 * epoch, random state) is a small JSON-able record, so a resumed run sees
 * exactly the batches the uninterrupted run would have seen.
 *
 * Example:
 *   const stream = new ImageStream(await loadImageDirs(['data/photos/train']), { size: 128, seed: 1 });
 *   const batch = stream.next(8);   // Float32Array [8, 128, 128, 3]
 *   const state = stream.getState(); ... stream.setState(state);
 */

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { VtokError, checkInt } from '../src/core/errors';
import { Rng } from '../src/core/random';
import { readImage } from '../src/io/image';

/**
 * One decoded image, [height, width, 3]: float pixels in [-1, 1], or 8-bit
 * values (v / 127.5 - 1; loadImageDirs keeps 8-bit sources so: 4x less memory).
 */
export interface StreamImage {
  data: Float32Array | Uint8Array;
  width: number;
  height: number;
  source: string;
}

/** Where the stream is: enough to continue it exactly. */
export interface StreamState {
  rng: number;
  order: number[];
  cursor: number;
  epoch: number;
}

/** 8-bit value -> [-1, 1], the same table as src/io/image.ts (so a stored byte gives the float readImage gave). */
const FROM_UINT8 = Float32Array.from({ length: 256 }, (_, v) => v / 127.5 - 1);

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp']);

/** Every image file of the folders (sorted by path, so the list does not depend on the file system), decoded. */
export async function loadImageDirs(dirs: readonly string[], options: { minSize?: number; size?: number; fit?: 'crop' | 'pad' } = {}): Promise<StreamImage[]> {
  if (dirs.length === 0) throw new VtokError('INVALID_INPUT', 'Expected at least one data folder');
  const files: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (err) {
      throw new VtokError('INVALID_INPUT', `Cannot read data folder ${dir}: ${(err as Error).message}`, { subject: dir });
    }
    for (const name of names) if (IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase())) files.push(path.join(dir, name));
  }
  files.sort();
  if (files.length === 0) throw new VtokError('INVALID_INPUT', `No images (${[...IMAGE_EXTENSIONS].join(', ')}) in ${dirs.join(', ')}`);
  const out: StreamImage[] = [];
  for (const file of files) {
    const img = await readImage(file, options.size === undefined ? {} : { size: options.size, fit: options.fit ?? 'crop', background: '#000000' });
    if (options.minSize !== undefined && (img.width < options.minSize || img.height < options.minSize)) {
      throw new VtokError('INVALID_INPUT', `Image ${file} is ${img.width}x${img.height}, smaller than the ${options.minSize}x${options.minSize} training crop`, {
        subject: file,
      });
    }
    const data = img.bitDepth === 8 ? Uint8Array.from(img.data, (v) => Math.round((v + 1) * 127.5)) : img.data;
    out.push({ data, width: img.width, height: img.height, source: file });
  }
  return out;
}

export class ImageStream {
  readonly size: number;
  private readonly images: readonly StreamImage[];
  private readonly rng: Rng;
  private readonly flip: boolean;
  private readonly minStd: number;
  private order: number[] = [];
  private cursor = 0;
  private epoch = 0;

  /** minStd: redraw crops flatter than this (see TrainConfig.minCropStd); 0 keeps every crop. */
  constructor(images: readonly StreamImage[], options: { size: number; seed: number; flip?: boolean; minStd?: number }) {
    if (images.length === 0) throw new VtokError('INVALID_INPUT', 'Expected at least one training image');
    this.size = checkInt('size', options.size, 1);
    for (const img of images) {
      if (img.width < this.size || img.height < this.size) {
        throw new VtokError('INVALID_INPUT', `Image ${img.source} is ${img.width}x${img.height}, smaller than the ${this.size}x${this.size} training crop`, {
          subject: img.source,
        });
      }
    }
    this.images = images;
    this.rng = new Rng(options.seed);
    this.flip = options.flip ?? true;
    this.minStd = options.minStd ?? 0;
    if (!(this.minStd >= 0)) throw new VtokError('INVALID_OPTION', `minStd must be >= 0, got ${this.minStd}`, { subject: 'minStd' });
    this.reshuffle();
  }

  get length(): number {
    return this.images.length;
  }

  /** The next batch of crops: [n, size, size, 3] in [-1, 1]. */
  next(n: number): Float32Array {
    const S = this.size;
    const out = new Float32Array(n * S * S * 3);
    const MAX_TRIES = 8;
    let flatInARow = 0;
    for (let b = 0; b < n; b++) {
      if (this.cursor >= this.order.length) {
        this.epoch++;
        this.reshuffle();
      }
      const img = this.images[this.order[this.cursor++]];
      const crop = out.subarray(b * S * S * 3, (b + 1) * S * S * 3);
      let ok = false;
      for (let t = 0; t < MAX_TRIES && !ok; t++) {
        this.cutCrop(img, crop);
        ok = this.minStd === 0 || stdOf(crop) >= this.minStd;
      }
      if (!ok) {
        // A flat image: give its slot to the next one, unless every image is flat.
        if (++flatInARow > this.images.length) {
          throw new VtokError('INVALID_INPUT', `Every training image is flatter than minCropStd ${this.minStd} at ${S}x${S}; lower it or check the data`);
        }
        b--;
        continue;
      }
      flatInARow = 0;
    }
    return out;
  }

  /** One random crop (and flip) of img into out [size, size, 3]. */
  private cutCrop(img: StreamImage, out: Float32Array): void {
    const S = this.size;
    const x0 = this.rng.int(img.width - S + 1);
    const y0 = this.rng.int(img.height - S + 1);
    const flip = this.flip && this.rng.next() < 0.5;
    const d = img.data;
    const f = d instanceof Uint8Array ? (v: number): number => FROM_UINT8[v] : (v: number): number => v;
    for (let y = 0; y < S; y++) {
      const src = ((y0 + y) * img.width + x0) * 3;
      const dst = y * S * 3;
      for (let x = 0; x < S; x++) {
        const s = src + (flip ? S - 1 - x : x) * 3;
        out[dst + x * 3] = f(d[s]);
        out[dst + x * 3 + 1] = f(d[s + 1]);
        out[dst + x * 3 + 2] = f(d[s + 2]);
      }
    }
  }

  getState(): StreamState {
    return { rng: this.rng.getState(), order: [...this.order], cursor: this.cursor, epoch: this.epoch };
  }

  setState(state: StreamState): void {
    const n = this.images.length;
    const ok =
      Array.isArray(state.order) &&
      state.order.length === n &&
      state.order.every((i) => Number.isInteger(i) && i >= 0 && i < n) &&
      Number.isInteger(state.cursor) &&
      state.cursor >= 0 &&
      state.cursor <= n;
    if (!ok) throw new VtokError('INVALID_INPUT', `The saved data order does not fit this data set of ${n} images (was the data folder changed?)`);
    this.rng.setState(state.rng);
    this.order = [...state.order];
    this.cursor = state.cursor;
    this.epoch = state.epoch;
  }

  private reshuffle(): void {
    this.order = this.rng.shuffle(Array.from({ length: this.images.length }, (_, i) => i));
    this.cursor = 0;
  }
}

/** Root mean of the per-channel pixel variances of an [S, S, 3] crop (a flat colour gives 0 whatever its RGB). */
function stdOf(v: Float32Array): number {
  const sum = [0, 0, 0];
  const sq = [0, 0, 0];
  for (let i = 0; i < v.length; i += 3) {
    for (let c = 0; c < 3; c++) {
      sum[c] += v[i + c];
      sq[c] += v[i + c] * v[i + c];
    }
  }
  const n = v.length / 3;
  let variance = 0;
  for (let c = 0; c < 3; c++) variance += Math.max(0, sq[c] / n - (sum[c] / n) ** 2) / 3;
  return Math.sqrt(variance);
}
