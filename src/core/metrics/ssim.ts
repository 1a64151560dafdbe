/**
 * Structural similarity (Wang, Bovik, Sheikh and Simoncelli, "Image quality
 * assessment: from error visibility to structural similarity", IEEE TIP 2004),
 * computed exactly as scikit-image's `structural_similarity` computes it
 * (version 0.19, read from its source), so that values can be checked against it:
 *
 * - each channel separately, then the mean over channels (`channel_axis`);
 * - local means, variances and covariance from a sliding window, in float64:
 *     'skimage' (default): 7x7 uniform window, sample covariance (x 49/48);
 *     'wang': 11x11 Gaussian window, sigma 1.5 (skimage's
 *       `gaussian_weights=True, sigma=1.5, use_sample_covariance=False`:
 *       scipy's gaussian_filter with truncate 3.5, radius 5), population covariance;
 * - C1 = (K1 R)^2, C2 = (K2 R)^2 with K1 = 0.01, K2 = 0.03 and R the data range;
 * - the SSIM map is averaged after cropping (window - 1) / 2 pixels from every
 *   edge. skimage filters with 'reflect' padding first, but every window that
 *   reaches the padding is centred in that cropped border, so the mean never
 *   sees the padding: here only the fully inside windows are computed.
 *
 * Images are interleaved [H, W, C] row-major. R is 255 for Uint8Array input;
 * float input must give `dataRange`. Do not score [0, 1] images with
 * dataRange 2 (as LlamaGen and TokenFlow do): it inflates SSIM.
 *
 * Example:
 *   ssim(a, b, { width: 37, height: 23, channels: 3 })                   // skimage defaults
 *   ssim(a, b, { width: 37, height: 23, channels: 3, variant: 'wang' })  // Gaussian window
 */

import { VtokError, checkInt, checkNumber, checkOneOf, resolveOptions } from '../errors';
import { checkImagePair, resolveDataRange, type PixelArray } from './psnr';

export const SSIM_VARIANTS = ['skimage', 'wang'] as const;
export type SsimVariant = (typeof SSIM_VARIANTS)[number];

export interface SsimOptions {
  /** Image width in pixels (required). */
  width: number;
  /** Image height in pixels (required). */
  height: number;
  /** Interleaved channels per pixel; default 1. */
  channels?: number;
  /** R; default 255 for 8-bit and 65535 for 16-bit arrays, required for float arrays. */
  dataRange?: number;
  /** Window and covariance convention; default 'skimage' (7x7 uniform, sample covariance). */
  variant?: SsimVariant;
  /** K1; default 0.01. */
  k1?: number;
  /** K2; default 0.03. */
  k2?: number;
}

/** Defaults; width and height have none (undefined, so a missing one is reported as such). */
const DEFAULTS: Record<keyof SsimOptions, unknown> = {
  width: undefined,
  height: undefined,
  channels: 1,
  dataRange: undefined,
  variant: 'skimage',
  k1: 0.01,
  k2: 0.03,
};

/** Sigma and truncation of the 'wang' window, as skimage sets them. */
const WANG_SIGMA = 1.5;
const WANG_TRUNCATE = 3.5;

/** The normalized 1-D window and whether covariances are sample (N - 1) ones. */
export function ssimWindow(variant: SsimVariant): { weights: Float64Array; sampleCovariance: boolean } {
  if (variant === 'skimage') return { weights: new Float64Array(7).fill(1 / 7), sampleCovariance: true };
  // scipy.ndimage.gaussian_filter1d: radius int(truncate * sigma + 0.5), exp(-x^2 / 2 sigma^2) normalized.
  const radius = Math.floor(WANG_TRUNCATE * WANG_SIGMA + 0.5);
  const weights = new Float64Array(2 * radius + 1);
  let sum = 0;
  for (let x = -radius; x <= radius; x++) {
    const v = Math.exp((-0.5 * x * x) / (WANG_SIGMA * WANG_SIGMA));
    weights[x + radius] = v;
    sum += v;
  }
  for (let i = 0; i < weights.length; i++) weights[i] /= sum;
  return { weights, sampleCovariance: false };
}

interface Resolved {
  width: number;
  height: number;
  channels: number;
  R: number;
  variant: SsimVariant;
  k1: number;
  k2: number;
}

function resolve(a: PixelArray, b: PixelArray, options: SsimOptions): Resolved {
  const o = resolveOptions('ssim', DEFAULTS, options);
  const width = checkInt('width', o.width, 1);
  const height = checkInt('height', o.height, 1);
  const channels = checkInt('channels', o.channels, 1, 4096);
  const variant = checkOneOf('variant', o.variant, SSIM_VARIANTS);
  const k1 = checkNumber('k1', o.k1, 0);
  const k2 = checkNumber('k2', o.k2, 0);
  checkImagePair(a, b);
  if (a.length !== width * height * channels) {
    throw new VtokError(
      'INVALID_INPUT',
      `Expected ${height} x ${width} x ${channels} = ${width * height * channels} pixel values for ssim but received ${a.length}`,
    );
  }
  const win = ssimWindow(variant).weights.length;
  if (width < win || height < win) {
    throw new VtokError(
      'INVALID_INPUT',
      `Expected images of at least ${win} x ${win} pixels for ssim variant "${variant}" (its window) but received ${width} x ${height}`,
    );
  }
  return { width, height, channels, R: resolveDataRange(a, o.dataRange as number | undefined), variant, k1, k2 };
}

/** Mean SSIM of each channel, [C]. */
export function ssimPerChannel(a: PixelArray, b: PixelArray, options: SsimOptions): Float64Array {
  const { width: W, height: H, channels: C, R, variant, k1, k2 } = resolve(a, b, options);
  const { weights, sampleCovariance } = ssimWindow(variant);
  const win = weights.length;
  const r = (win - 1) / 2;
  const np = win * win;
  const covNorm = sampleCovariance ? np / (np - 1) : 1;
  const c1 = (k1 * R) ** 2;
  const c2 = (k2 * R) ** 2;
  const Wv = W - 2 * r; // columns whose window lies inside the image
  const Hv = H - 2 * r;

  // Horizontal pass, [H, Wv] each: windowed x, y, x^2, y^2, xy along rows.
  const hx = new Float64Array(H * Wv);
  const hy = new Float64Array(H * Wv);
  const hxx = new Float64Array(H * Wv);
  const hyy = new Float64Array(H * Wv);
  const hxy = new Float64Array(H * Wv);
  const out = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    for (let y = 0; y < H; y++) {
      const row = y * W;
      for (let x = 0; x < Wv; x++) {
        let sx = 0;
        let sy = 0;
        let sxx = 0;
        let syy = 0;
        let sxy = 0;
        for (let t = 0; t < win; t++) {
          const i = (row + x + t) * C + c;
          const u = a[i];
          const v = b[i];
          const wt = weights[t];
          sx += wt * u;
          sy += wt * v;
          sxx += wt * u * u;
          syy += wt * v * v;
          sxy += wt * u * v;
        }
        const o = y * Wv + x;
        hx[o] = sx;
        hy[o] = sy;
        hxx[o] = sxx;
        hyy[o] = syy;
        hxy[o] = sxy;
      }
    }
    // Vertical pass over the rows whose window lies inside, and the SSIM map's sum.
    let sum = 0;
    for (let y = 0; y < Hv; y++) {
      for (let x = 0; x < Wv; x++) {
        let ux = 0;
        let uy = 0;
        let uxx = 0;
        let uyy = 0;
        let uxy = 0;
        for (let t = 0; t < win; t++) {
          const o = (y + t) * Wv + x;
          const wt = weights[t];
          ux += wt * hx[o];
          uy += wt * hy[o];
          uxx += wt * hxx[o];
          uyy += wt * hyy[o];
          uxy += wt * hxy[o];
        }
        const vx = covNorm * (uxx - ux * ux);
        const vy = covNorm * (uyy - uy * uy);
        const vxy = covNorm * (uxy - ux * uy);
        sum += ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
      }
    }
    out[c] = sum / (Hv * Wv);
  }
  return out;
}

/** Mean SSIM over the image: per-channel SSIM averaged over channels. */
export function ssim(a: PixelArray, b: PixelArray, options: SsimOptions): number {
  const per = ssimPerChannel(a, b, options);
  let s = 0;
  for (const v of per) s += v;
  return s / per.length;
}
