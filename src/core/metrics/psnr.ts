/**
 * Peak signal-to-noise ratio, with scikit-image's conventions
 * (`skimage.metrics.peak_signal_noise_ratio`):
 *
 *   PSNR = 10 log10(R^2 / MSE)   per image, in float64,
 *
 * then the mean over images. R is the data range: 255 for 8-bit images
 * (Uint8Array), 65535 for 16-bit (Uint16Array); float images must say it
 * (2 for [-1, 1], 1 for [0, 1]) because guessing it is how published numbers
 * end up incomparable. Score what a file would hold: clip and round
 * reconstructions to 8 bits first (`quantizeToUint8`).
 *
 * Identical images have MSE 0 and PSNR +Infinity. `psnr` returns +Infinity
 * for them; `meanPsnr` reports how many there were and averages them as
 * +Infinity unless given a `cap`, which it then says it used.
 *
 * Example:
 *   psnr(new Uint8Array([0, 0]), new Uint8Array([0, 255]))   // 10 log10(255^2 / 32512.5) = 3.0103
 *   meanPsnr([30, 40, Infinity], { cap: 100 })               // { mean: 56.67, n: 3, infinite: 1, cap: 100 }
 */

import { VtokError, checkNumber, describeValue, resolveOptions } from '../errors';

/** Pixel values of one image (any layout; both images must use the same). */
export type PixelArray = Uint8Array | Uint8ClampedArray | Uint16Array | Float32Array | Float64Array;

export interface PsnrOptions {
  /** R, the distance between the smallest and largest possible pixel value; default 255 for 8-bit and 65535 for 16-bit arrays, required for float arrays. */
  dataRange?: number;
}

/** The data range an integer pixel array implies, or the one given (checked). Shared with SSIM. */
export function resolveDataRange(a: PixelArray, dataRange: number | undefined): number {
  if (dataRange !== undefined) return checkNumber('dataRange', dataRange, Number.MIN_VALUE);
  if (a instanceof Uint8Array || a instanceof Uint8ClampedArray) return 255;
  if (a instanceof Uint16Array) return 65535;
  throw new VtokError(
    'INVALID_OPTION',
    `Expected dataRange (for example 2 for [-1, 1] or 1 for [0, 1]) for ${a.constructor.name} pixels but received undefined`,
    { subject: 'dataRange' },
  );
}

/** Checks that two images are pixel arrays of the same length; shared with SSIM. */
export function checkImagePair(a: PixelArray, b: PixelArray): void {
  for (const [name, x] of [
    ['a', a],
    ['b', b],
  ] as const) {
    if (!(x instanceof Uint8Array || x instanceof Uint8ClampedArray || x instanceof Uint16Array || x instanceof Float32Array || x instanceof Float64Array)) {
      throw new VtokError('INVALID_INPUT', `Expected a Uint8Array, Uint8ClampedArray, Uint16Array, Float32Array or Float64Array for ${name} but received ${describeValue(x)}`);
    }
  }
  if (a.length !== b.length) throw new VtokError('INVALID_INPUT', `Expected images of the same size but received ${a.length} and ${b.length} values`);
  if (a.length === 0) throw new VtokError('INVALID_INPUT', 'Expected non-empty images but received 0 values');
}

/** Mean squared error in float64. */
export function mse(a: PixelArray, b: PixelArray): number {
  checkImagePair(a, b);
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    sum += d * d;
  }
  const m = sum / a.length;
  if (!Number.isFinite(m)) throw new VtokError('INVALID_INPUT', `Expected finite pixel values but the squared error is ${m}`);
  return m;
}

/** PSNR of one image pair in dB; +Infinity when they are identical. */
export function psnr(a: PixelArray, b: PixelArray, options?: PsnrOptions): number {
  const opts = resolveOptions<PsnrOptions>('psnr', { dataRange: undefined }, options);
  const m = mse(a, b);
  const R = resolveDataRange(a, opts.dataRange);
  return m === 0 ? Infinity : 10 * Math.log10((R * R) / m);
}

export interface PsnrSummary {
  /** Mean PSNR in dB over the images; +Infinity if any image was identical and no cap was given. */
  mean: number;
  /** Number of images. */
  n: number;
  /** How many images were identical to their reference (PSNR +Infinity). */
  infinite: number;
  /** The value +Infinity was replaced by in the mean, or null when it was not replaced. */
  cap: number | null;
}

/** Mean of per-image PSNRs, saying how identical images (+Infinity) were counted. */
export function meanPsnr(values: ArrayLike<number>, options?: { cap?: number }): PsnrSummary {
  const opts = resolveOptions<{ cap?: number }>('meanPsnr', { cap: undefined }, options);
  const cap = opts.cap === undefined ? null : checkNumber('cap', opts.cap, 0);
  if (values.length === 0) throw new VtokError('INVALID_INPUT', 'Expected at least one PSNR value but received none');
  let sum = 0;
  let infinite = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === Infinity) {
      infinite++;
      sum += cap ?? Infinity;
    } else if (Number.isFinite(v)) {
      sum += v;
    } else {
      throw new VtokError('INVALID_INPUT', `Expected PSNR values in dB or +Infinity but value ${i} is ${v}`);
    }
  }
  return { mean: sum / values.length, n: values.length, infinite, cap: infinite > 0 ? cap : null };
}

/**
 * Clips and rounds float pixels in [lo, hi] to 8 bits: lo -> 0, hi -> 255,
 * halves rounded up (floor(x * 255 + 0.5), as torchvision's save_image does).
 * What an image file would hold; score reconstructions after this.
 */
export function quantizeToUint8(values: ArrayLike<number>, range: readonly [number, number] = [0, 1]): Uint8Array {
  const [lo, hi] = range;
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo)) throw new VtokError('INVALID_OPTION', `Expected a range [lo, hi] with lo < hi for range but received [${lo}, ${hi}]`, { subject: 'range' });
  const out = new Uint8Array(values.length);
  const scale = 255 / (hi - lo);
  for (let i = 0; i < values.length; i++) {
    const v = (values[i] - lo) * scale + 0.5;
    if (v !== v) throw new VtokError('INVALID_INPUT', `Expected finite pixel values but value ${i} is NaN`);
    out[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.floor(v);
  }
  return out;
}
