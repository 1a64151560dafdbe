/**
 * A fast decode path for small, plain PNGs (issue #6): parse, inflate and
 * unfilter in TypeScript, and resize up or down with a bit-exact copy of what
 * sharp 0.35.5 / libvips 8.18.7 does, so that readImage (src/io/image.ts) gets the
 * same 8-bit samples as from its sharp pipeline, without sharp's fixed cost of
 * about 0.8-1.5 ms of CPU per call (a 28 x 28 Fashion-MNIST PNG inflates in
 * 0.06 ms).
 *
 * The contract is identity or nothing: decodePngFast returns exactly the
 * samples, channel count and size that
 *   sharp(bytes, { autoOrient: true })
 *     .resize({ width, height, fit: pad ? 'inside' : 'cover', position: 'centre', kernel })
 *     .toColourspace('srgb').raw()
 * returns, or `undefined`, and then the caller runs sharp. It returns
 * undefined for anything it does not reproduce exactly:
 * - not a clean PNG: bad signature, a chunk CRC that does not match, a chunk
 *   list that does not walk to IEND at the end of the file, an IDAT stream that
 *   does not inflate to exactly the expected bytes (errors and warnings stay
 *   sharp's);
 * - interlaced, 16-bit or 1/2/4-bit images;
 * - any chunk outside IHDR, PLTE, tRNS, IDAT, IEND, pHYs, tIME: colour chunks
 *   (iCCP, sRGB, gAMA, cHRM, cICP, ...), eXIf (orientation), text chunks (libvips
 *   reads XMP and more from them) and unknown ones;
 * - more than MAX_FAST_PIXELS pixels (above that sharp's fixed cost no
 *   longer dominates; bench/png-fast.ts: a 362 x 362 or 512 x 512 RGB PNG
 *   halved costs more CPU here than in sharp);
 * - a downscale by about 4 or more on either axis (libvips box-shrinks first,
 *   see reducible) or any resize with a kernel other than lanczos3,
 *   lanczos2, cubic, mitchell ('nearest' and 'linear' go to sharp).
 *
 * What libvips does, as reproduced here (checked against sharp byte for byte
 * in tests/io/png-fast.test.ts, on all 70,000 Fashion-MNIST files and on all
 * 1,912 photo crops at 128 and 256 by eval/png-fast-identity.ts):
 * - Decode: palette expands to RGB, tRNS becomes an alpha band (palette: the
 *   tRNS entries, missing ones opaque; grey/RGB: 0 where the pixel equals the
 *   tRNS colour, else 255).
 * - Size: sharp's shrink is w / W and h / H, the smaller ('cover') or larger
 *   ('inside') of the two for both axes; libvips upsizes by scale = 1 / shrink
 *   to round(w * scale) x round(h * scale); 'cover' then crops centred
 *   (left = floor((w' - W + 1) / 2)).
 * - Upsizing (vips_resize with lanczos2/3, cubic or mitchell is vips_affine with
 *   the bicubic interpolator): output pixel X samples the input at
 *   x = X / scale - 0.5 (x stepped by repeated addition from the left edge
 *   of what libvips computes, which with 'cover' is the crop's left edge), edge
 *   pixels repeated. Catmull-Rom weights come from a 65-entry table (offsets
 *   rounded to 1/64) of int(c * 4096); each of the 4 rows is summed and rounded
 *   ((s + 2048) >> 12), then the column, then clipped to 0..255.
 * - Downsizing (vips_resize with shrink > 1 is vips_reducev, then
 *   vips_reduceh, each one pass while shrink < ~4): see reduceTaps and
 *   resizeDown. Found by comparing variants against the installed sharp: the
 *   table version of libvips's reduce (65 sub-pixel offsets, weights
 *   normalised then truncated to 1/4096, edges copied), vertical first,
 *   matches; horizontal first does not, nor did a per-pixel-weights variant
 *   modelled on newer libvips sources.
 * - With alpha, sharp resizes premultiplied uchar samples (see resizeUp).
 * - Grey becomes sRGB by repeating the grey band three times (alpha kept).
 *
 * Set VTOK_DECODER=sharp in the environment to skip this path (src/io/image.ts).
 */

import { crc32, inflateSync } from 'node:zlib';

/** Largest image (width x height, as stored) decoded here; larger ones go to sharp. */
export const MAX_FAST_PIXELS = 65536;

/** Chunks that do not change pixels in libvips's PNG loader or in sharp. */
const HARMLESS_CHUNKS = new Set(['pHYs', 'tIME']);

/** What decodePngFast is asked for; mirrors readImage's resolved options. */
export interface PngFastOptions {
  /** Target size, or undefined to keep the image's size. */
  target: { width: number; height: number } | undefined;
  /** 'crop' is sharp's fit 'cover', 'pad' is fit 'inside' (the padding is the caller's). */
  fit: 'crop' | 'pad';
  /** Resize kernel name, as sharp takes it. */
  kernel: string;
  /** Largest image decoded here (width x height). Default MAX_FAST_PIXELS; larger for benchmarks. */
  maxPixels?: number;
  /** Largest image downscaled here (width x height); larger ones return undefined. Default: no limit but maxPixels. */
  maxDownscalePixels?: number;
  /**
   * Resize images with alpha (grey + alpha, RGBA, tRNS) here too. Default
   * false: the premultiplied round trip below matches sharp on synthetic
   * images but not on 9 of 703 real RGBA / grey-alpha / palette-tRNS
   * tuxpaint stamps upsized to 128 (data/stamps-probe, up to 255 levels off;
   * `npx tsx eval/png-fast-identity.ts --dir data/stamps-probe/train --size 128
   * --fit crop --alpha-resize`), so readImage sends those to sharp.
   */
  alphaResize?: boolean;
  /**
   * Upsize also when an output row samples the input exactly between two
   * entries of the interpolation table (an odd multiple of 1/128). Default
   * false: which entry libvips takes there depends on its floating-point
   * order, reproduced for some sizes (tests) but not all (59 -> 128 and 24 of
   * 925 square upsizes to 32-256 differed), so such images go to sharp.
   */
  rowTies?: boolean;
}

/** 8-bit sRGB samples as the sharp pipeline returns them. */
export interface PngFastPixels {
  samples: Uint8Array; // [height, width, channels]
  /** 3 (RGB) or 4 (RGBA). */
  channels: number;
  width: number;
  height: number;
}

/** A decoded PNG before any resize: 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) bands. */
export interface PngImage {
  data: Uint8Array; // [height, width, bands]
  width: number;
  height: number;
  bands: number;
}

/** Kernels for which vips_resize upsizes with the bicubic interpolator (vips_resize_interpolate). */
const BICUBIC_KERNELS = new Set(['lanczos3', 'lanczos2', 'cubic', 'mitchell']);

/**
 * Decodes a small PNG and brings it to `target` exactly as readImage's sharp
 * pipeline would, or returns undefined (then use sharp).
 *
 * Example:
 *   decodePngFast(fashionMnistPng, { target: { width: 32, height: 32 }, fit: 'pad', kernel: 'lanczos3' })
 *   // { samples: Uint8Array(3072), channels: 3, width: 32, height: 32 }
 */
export function decodePngFast(bytes: Uint8Array, opts: PngFastOptions): PngFastPixels | undefined {
  // The shrink first, from the size in IHDR (bytes 16-23; decodePng checks
  // the rest), so that a file going to sharp anyway is not inflated.
  let shrink = 1;
  if (opts.target) {
    if (bytes.length < 24) return undefined;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    // sharp's ResolveShrink: one shrink for both axes, the smaller for 'cover', the larger for 'inside'.
    const sw = view.getUint32(16) / opts.target.width;
    const sh = view.getUint32(20) / opts.target.height;
    shrink = opts.fit === 'crop' ? Math.min(sw, sh) : Math.max(sw, sh);
    if (shrink !== 1 && !BICUBIC_KERNELS.has(opts.kernel)) return undefined;
    if (shrink > 1 && !(reducible(view.getUint32(16), shrink) && reducible(view.getUint32(20), shrink))) return undefined;
    if (shrink > 1 && view.getUint32(16) * view.getUint32(20) > (opts.maxDownscalePixels ?? Infinity)) return undefined;
  }
  const png = decodePng(bytes, opts.maxPixels);
  if (!png) return undefined;
  if (shrink !== 1 && (png.bands === 2 || png.bands === 4) && opts.alphaResize !== true) return undefined;
  let img: PngImage = png;
  if (opts.target) {
    if (shrink !== 1) {
      // libvips computes the resized image only from the crop's left edge on,
      // and its x positions step from there (see axisTaps)
      const wide = shrink > 1 ? Math.round(img.width / reduceFactor(shrink)) : Math.floor(img.width / shrink + 0.5);
      const left = opts.fit === 'crop' ? Math.floor((wide - Math.min(opts.target.width, wide) + 1) / 2) : 0;
      const resized = shrink > 1 ? resizeDown(img, shrink, opts.kernel, left) : resizeUp(img, 1 / shrink, 1 / shrink, left, opts.rowTies === true);
      if (!resized) return undefined;
      img = resized;
    }
    if (opts.fit === 'crop') img = cropCentre(img, opts.target.width, opts.target.height);
  }
  return toSrgb(img);
}

/**
 * Parses and decodes a non-interlaced 8-bit PNG of at most MAX_FAST_PIXELS
 * pixels with only harmless chunks, or returns undefined.
 */
export function decodePng(b: Uint8Array, maxPixels = MAX_FAST_PIXELS): PngImage | undefined {
  if (b.length < 8 + 25 + 12 + 12) return undefined;
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  for (let i = 0; i < 8; i++) if (b[i] !== sig[i]) return undefined;
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);

  let width = 0;
  let height = 0;
  let colourType = -1;
  let palette: Uint8Array | undefined;
  let trns: Uint8Array | undefined;
  const idat: Uint8Array[] = [];
  let idatDone = false;
  let ended = false;
  let first = true;
  let o = 8;
  while (o < b.length) {
    if (ended || o + 12 > b.length) return undefined;
    const len = view.getUint32(o);
    if (len > 0x7fffffff || o + 12 + len > b.length) return undefined;
    const type = String.fromCharCode(b[o + 4], b[o + 5], b[o + 6], b[o + 7]);
    const body = b.subarray(o + 8, o + 8 + len);
    if (crc32(b.subarray(o + 4, o + 8 + len)) !== view.getUint32(o + 8 + len)) return undefined;
    if (first !== (type === 'IHDR')) return undefined;
    if (type !== 'IDAT' && idat.length > 0) idatDone = true;
    switch (type) {
      case 'IHDR': {
        if (len !== 13) return undefined;
        width = view.getUint32(o + 8);
        height = view.getUint32(o + 12);
        const depth = body[8];
        colourType = body[9];
        // compression 0, filter method 0, no interlace; 8-bit only
        if (depth !== 8 || body[10] !== 0 || body[11] !== 0 || body[12] !== 0) return undefined;
        if (![0, 2, 3, 4, 6].includes(colourType)) return undefined;
        if (width < 1 || height < 1 || width * height > maxPixels) return undefined;
        break;
      }
      case 'PLTE':
        if (colourType !== 3 || palette || idat.length > 0 || len === 0 || len % 3 !== 0 || len / 3 > 256) return undefined;
        palette = body;
        break;
      case 'tRNS':
        if (trns || idat.length > 0) return undefined;
        if (colourType === 3) {
          if (!palette || len > palette.length / 3) return undefined;
        } else if (colourType === 0) {
          if (len !== 2 || body[0] !== 0) return undefined; // an out-of-range grey makes libpng warn
        } else if (colourType === 2) {
          if (len !== 6 || body[0] !== 0 || body[2] !== 0 || body[4] !== 0) return undefined;
        } else {
          return undefined; // tRNS is not allowed with an alpha channel
        }
        trns = body;
        break;
      case 'IDAT':
        if (idatDone || (colourType === 3 && !palette)) return undefined;
        idat.push(body);
        break;
      case 'IEND':
        if (len !== 0) return undefined;
        ended = true;
        break;
      default:
        if (!HARMLESS_CHUNKS.has(type)) return undefined;
    }
    first = false;
    o += 12 + len;
  }
  if (!ended || idat.length === 0) return undefined;

  const channels = colourType === 0 || colourType === 3 ? 1 : colourType === 4 ? 2 : colourType === 2 ? 3 : 4;
  const stride = width * channels;
  const expected = height * (stride + 1);
  let raw: Buffer;
  try {
    // One byte more than needed, so that too much data shows (libpng warns about it).
    raw = inflateSync(idat.length === 1 ? idat[0] : Buffer.concat(idat), { maxOutputLength: expected + 1 });
  } catch {
    return undefined;
  }
  if (raw.length !== expected) return undefined;
  const pixels = unfilter(raw, width, height, channels);
  if (!pixels) return undefined;
  return expand(pixels, width, height, colourType, palette, trns);
}

/** Undoes the PNG row filters (0 none, 1 sub, 2 up, 3 average, 4 Paeth), 8-bit samples. */
function unfilter(raw: Uint8Array, width: number, height: number, bpp: number): Uint8Array | undefined {
  const stride = width * bpp;
  const out = new Uint8Array(height * stride); // [height, width, bpp]
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride; // only read when y > 0
    switch (f) {
      case 0:
        out.set(raw.subarray(src, src + stride), row);
        break;
      case 1:
        for (let i = 0; i < stride; i++) out[row + i] = (raw[src + i] + (i >= bpp ? out[row + i - bpp] : 0)) & 255;
        break;
      case 2:
        if (y === 0) out.set(raw.subarray(src, src + stride), row);
        else for (let i = 0; i < stride; i++) out[row + i] = (raw[src + i] + out[prev + i]) & 255;
        break;
      case 3:
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? out[row + i - bpp] : 0;
          const up = y > 0 ? out[prev + i] : 0;
          out[row + i] = (raw[src + i] + ((a + up) >> 1)) & 255;
        }
        break;
      case 4:
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? out[row + i - bpp] : 0;
          const up = y > 0 ? out[prev + i] : 0;
          const c = i >= bpp && y > 0 ? out[prev + i - bpp] : 0;
          const p = a + up - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - up);
          const pc = Math.abs(p - c);
          const pred = pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
          out[row + i] = (raw[src + i] + pred) & 255;
        }
        break;
      default:
        return undefined; // libpng: "bad adaptive filter value"
    }
  }
  return out;
}

/** Palette and tRNS expansion, as libpng does it for libvips (tRNS becomes alpha). */
function expand(
  px: Uint8Array,
  width: number,
  height: number,
  colourType: number,
  palette: Uint8Array | undefined,
  trns: Uint8Array | undefined,
): PngImage | undefined {
  const n = width * height;
  if (colourType === 3) {
    const pal = palette as Uint8Array;
    const entries = pal.length / 3;
    const bands = trns ? 4 : 3;
    const out = new Uint8Array(n * bands); // [height, width, bands]
    for (let p = 0; p < n; p++) {
      const k = px[p];
      if (k >= entries) return undefined; // libpng warns or errors on an index past the palette
      out[p * bands] = pal[k * 3];
      out[p * bands + 1] = pal[k * 3 + 1];
      out[p * bands + 2] = pal[k * 3 + 2];
      if (trns) out[p * bands + 3] = k < trns.length ? trns[k] : 255;
    }
    return { data: out, width, height, bands };
  }
  if (trns && colourType === 0) {
    const g = trns[1];
    const out = new Uint8Array(n * 2); // [height, width, 2]
    for (let p = 0; p < n; p++) {
      out[p * 2] = px[p];
      out[p * 2 + 1] = px[p] === g ? 0 : 255;
    }
    return { data: out, width, height, bands: 2 };
  }
  if (trns && colourType === 2) {
    const [r, g, bl] = [trns[1], trns[3], trns[5]];
    const out = new Uint8Array(n * 4); // [height, width, 4]
    for (let p = 0; p < n; p++) {
      const R = px[p * 3];
      const G = px[p * 3 + 1];
      const B = px[p * 3 + 2];
      out[p * 4] = R;
      out[p * 4 + 1] = G;
      out[p * 4 + 2] = B;
      out[p * 4 + 3] = R === r && G === g && B === bl ? 0 : 255;
    }
    return { data: out, width, height, bands: 4 };
  }
  const bands = colourType === 0 ? 1 : colourType === 4 ? 2 : colourType === 2 ? 3 : 4;
  return { data: px, width, height, bands };
}

/** Catmull-Rom weights at 65 offsets (0, 1/64, ..., 1), times 4096 and truncated, as libvips's bicubic table. */
const BICUBIC_TABLE: Int32Array[] = (() => {
  const t: Int32Array[] = [];
  for (let i = 0; i <= 64; i++) {
    const x = i / 64;
    const dx = 1 - x;
    const x2 = dx * x;
    const mx2 = -0.5 * x2;
    const c1 = x2 * (-1.5 * x + 1) + dx;
    const c = [mx2 * dx, c1, 1 - (mx2 + c1), mx2 * x];
    t.push(Int32Array.from(c, (v) => Math.trunc(v * 4096)));
  }
  return t;
})();

/**
 * Per output position along one axis, clamped to the input (n positions):
 * the 4 input taps (`taps[4X + i]`, 0..n-1) and their weights
 * (`weights[4X + i]`, libvips's table entries).
 */
interface AxisTaps {
  taps: Int32Array;
  weights: Int32Array;
}

/**
 * Where libvips's affine samples along one axis when upsizing n pixels by
 * `scale` to `m`: x = X / scale - 0.5, plus the interpolator's window offset
 * of 1; x is stepped by repeated addition (the x axis, like vips_affine_gen)
 * or computed per position (the y axis, one row at a time). Null when
 * `ties` is false and a position falls on a tie (see below).
 */
function axisTaps(n: number, m: number, inv: number, stepped: boolean, start: number, ties: boolean): AxisTaps | null {
  const taps = new Int32Array(4 * m);
  const weights = new Int32Array(4 * m);
  let acc = 0.5; // X = 0: 0 * inv - 0.5 + 1
  for (let X = 0; X < m; X++) {
    if (X === start && X > 0) acc = X * inv + 1 - 0.5; // the stepping restarts where libvips's region starts
    // Per position, libvips's sum is X * inv + 1.5 (1 less after): the
    // same number as X * inv + 0.5, but rounded differently where X * inv
    // falls on a 1/64 boundary (150 x 151 -> 256 x 258, row 5).
    const x = stepped ? acc : X * inv + 1.5 - 1;
    // A position within rounding error of an odd multiple of 1/128 falls on
    // the boundary between two table entries, and which one libvips takes
    // depends on its floating-point order, which is not reproduced here for
    // rows (e.g. 59 -> 128 and 13 -> 256 differed there): unless `ties`,
    // leave the image to sharp. Columns (stepped) never hit this in the checks.
    const f = x * 128;
    const near = Math.round(f);
    if (!ties && (near & 1) === 1 && Math.abs(f - near) < 1e-7) return null;
    const t = ((Math.trunc(f) & 127) + 1) >> 1;
    // x >= 0.5 always, so truncation is floor; the 4x4 window starts one before (in the unpadded input), edges repeat
    const first = Math.trunc(x) - 2;
    for (let i = 0; i < 4; i++) {
      const c = first + i;
      taps[4 * X + i] = c < 0 ? 0 : c >= n ? n - 1 : c;
      weights[4 * X + i] = BICUBIC_TABLE[t][i];
    }
    acc += inv;
  }
  return { taps, weights };
}

/**
 * axisTaps, remembering the last result for each axis (x: stepped, y: not): a
 * dataset's images mostly share one size, and recomputing took ~5 of the ~26 us
 * of a 28 x 28 RGB -> 32 x 32 upsize.
 */
const LAST_TAPS: { n: number; m: number; inv: number; start: number; ties: boolean; taps: AxisTaps | null }[] = [];
function cachedAxisTaps(n: number, m: number, inv: number, stepped: boolean, start: number, ties: boolean): AxisTaps | null {
  const axis = stepped ? 0 : 1;
  const last = LAST_TAPS[axis];
  if (last && last.n === n && last.m === m && last.inv === inv && last.start === start && last.ties === ties) return last.taps;
  const taps = axisTaps(n, m, inv, stepped, start, ties);
  LAST_TAPS[axis] = { n, m, inv, start, ties, taps };
  return taps;
}

/**
 * sharp's resize step for a uchar image upsized by hscale, vscale (both > 1).
 * An image with alpha (2 or 4 bands) goes through sharp's premultiplied round
 * trip: premultiply (float: v * float(a / 255)), cast to uchar (truncating),
 * resize all bands, unpremultiply (float: float(255 / a) * v, 0 where a = 0)
 * and cast to uchar again (truncating, clipped to 255).
 */
export function resizeUp(img: PngImage, hscale: number, vscale: number, startX = 0, rowTies = false): PngImage | undefined {
  return withPremultipliedAlpha(img, (im) => bicubicUpsize(im, hscale, vscale, startX, rowTies));
}

/**
 * Runs `resize` on img, through sharp's premultiplied uchar round trip when
 * img has alpha (2 or 4 bands); see resizeUp.
 */
function withPremultipliedAlpha(img: PngImage, resize: (img: PngImage) => PngImage | undefined): PngImage | undefined {
  const { bands } = img;
  if (bands !== 2 && bands !== 4) return resize(img);
  const pre = premultiplyTable();
  const src = img.data;
  const pm = new Uint8Array(src.length); // [h, w, bands]
  for (let i = 0; i < src.length; i += bands) {
    const a = src[i + bands - 1];
    for (let z = 0; z < bands - 1; z++) pm[i + z] = pre[(a << 8) | src[i + z]];
    pm[i + bands - 1] = a;
  }
  const up = resize({ ...img, data: pm });
  if (!up) return undefined;
  const d = up.data;
  for (let i = 0; i < d.length; i += bands) {
    const factor = UNPREMULTIPLY_FACTOR[d[i + bands - 1]];
    for (let z = 0; z < bands - 1; z++) {
      const v = Math.trunc(Math.fround(factor * d[i + z]));
      d[i + z] = v > 255 ? 255 : v;
    }
  }
  return up;
}

let PREMULTIPLY: Uint8Array | undefined;
/** trunc(float(v * float(a / 255))) at [a * 256 + v], libvips's premultiply then cast to uchar. */
function premultiplyTable(): Uint8Array {
  if (!PREMULTIPLY) {
    PREMULTIPLY = new Uint8Array(65536);
    for (let a = 0; a < 256; a++) {
      const n = Math.fround(a / 255);
      for (let v = 0; v < 256; v++) PREMULTIPLY[(a << 8) | v] = Math.trunc(Math.fround(v * n));
    }
  }
  return PREMULTIPLY;
}

/** libvips's unpremultiply factor for uchar alpha a: float(255 / a), 0 for a = 0. */
const UNPREMULTIPLY_FACTOR = Float32Array.from({ length: 256 }, (_, a) => (a === 0 ? 0 : 255 / a));

/**
 * bicubicUpsize's intermediate rows, reused for images up to this many
 * values (256 KB; a fresh array took ~5 of the ~26 us of a small upsize);
 * larger ones get their own, so that one big upsize is not held for good.
 */
const ACROSS_REUSE = 1 << 16;
let ACROSS = new Int32Array(0);

/**
 * vips_affine with the bicubic interpolator for uchar bands, as vips_resize
 * calls it to upsize by hscale, vscale (both > 1): every band on its own.
 */
export function bicubicUpsize(img: PngImage, hscale: number, vscale: number, startX = 0, rowTies = false): PngImage | undefined {
  const { data: src, width: w, height: h, bands } = img;
  // libvips's transform: det = a * d, ia = d / det, id = a / det (here b = c = 0).
  const det = hscale * vscale;
  const ia = vscale / det;
  const id = hscale / det;
  const W = Math.floor(w * hscale + 0.5);
  const H = Math.floor(h * vscale + 0.5);
  if (W < 1 || H < 1) return undefined;
  const xs = cachedAxisTaps(w, W, ia, true, startX, true);
  const ys = cachedAxisTaps(h, H, id, false, 0, rowTies);
  if (!xs || !ys) return undefined;
  // The horizontal pass depends only on the input row and X, so it is done
  // once per input row: [h, W, bands], each sum already rounded (>> 12).
  const n = W * bands;
  if (h * n <= ACROSS_REUSE && ACROSS.length < h * n) ACROSS = new Int32Array(ACROSS_REUSE);
  const across = h * n <= ACROSS_REUSE ? ACROSS : new Int32Array(h * n);
  const { taps: tx, weights: cx } = xs;
  for (let r = 0; r < h; r++) {
    const row = r * w * bands;
    let o = r * n;
    for (let X = 0; X < W; X++) {
      const k = 4 * X;
      const c0 = cx[k];
      const c1 = cx[k + 1];
      const c2 = cx[k + 2];
      const c3 = cx[k + 3];
      const p0 = row + tx[k] * bands;
      const p1 = row + tx[k + 1] * bands;
      const p2 = row + tx[k + 2] * bands;
      const p3 = row + tx[k + 3] * bands;
      for (let z = 0; z < bands; z++) {
        across[o++] = (c0 * src[p0 + z] + c1 * src[p1 + z] + c2 * src[p2 + z] + c3 * src[p3 + z] + 2048) >> 12;
      }
    }
  }
  const out = new Uint8Array(H * n); // [H, W, bands]
  const { taps: ty, weights: cy } = ys;
  for (let Y = 0; Y < H; Y++) {
    const k = 4 * Y;
    const c0 = cy[k];
    const c1 = cy[k + 1];
    const c2 = cy[k + 2];
    const c3 = cy[k + 3];
    const r0 = ty[k] * n;
    const r1 = ty[k + 1] * n;
    const r2 = ty[k + 2] * n;
    const r3 = ty[k + 3] * n;
    const o = Y * n;
    for (let i = 0; i < n; i++) {
      const v = (c0 * across[r0 + i] + c1 * across[r1 + i] + c2 * across[r2 + i] + c3 * across[r3 + i] + 2048) >> 12;
      out[o + i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { data: out, width: W, height: H, bands };
}

/**
 * The factor vips_reduce{h,v} get for a shrink: sharp asks vips_resize for
 * scale 1 / shrink and vips_resize reduces by 1 / scale, which need not be
 * shrink again in floating point.
 */
function reduceFactor(shrink: number): number {
  return 1 / (1 / shrink);
}

/**
 * Whether vips_reduce takes an axis of n pixels down by `shrink` in one
 * kernel pass. The output is round(n / factor) pixels; with vips_resize's
 * default gap of 2, vips_reduce first box-shrinks by floor(n / m / 2) when
 * that is more than 1 (vips_shrinkh/v, not reproduced here), i.e. from a
 * shrink of about 4 on.
 */
function reducible(n: number, shrink: number): boolean {
  const m = Math.round(n / reduceFactor(shrink));
  return m >= 1 && Math.floor(n / m / 2) <= 1;
}

/** sin(pi x) / (pi x), computed as libvips's sinc_filter does. */
function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}

/** Mitchell-Netravali cubic with parameters B, C (libvips's cubic_filter). */
function cubicFilter(x: number, B: number, C: number): number {
  const ax = Math.abs(x);
  const ax2 = ax * ax;
  const ax3 = ax2 * ax;
  if (ax <= 1) return ((12 - 9 * B - 6 * C) * ax3 + (-18 + 12 * B + 6 * C) * ax2 + (6 - 2 * B)) / 6;
  if (ax <= 2) return ((-B - 6 * C) * ax3 + (6 * B + 30 * C) * ax2 + (-12 * B - 48 * C) * ax + (8 * B + 24 * C)) / 6;
  return 0;
}

/** vips_reduce's kernels: half-width in input pixels at shrink 1, and the filter (libvips templates.h). */
const REDUCE_KERNELS: Record<string, { support: number; filter: (x: number) => number }> = {
  lanczos3: { support: 3, filter: (x) => (x >= -3 && x <= 3 ? sinc(x) * sinc(x / 3) : 0) },
  lanczos2: { support: 2, filter: (x) => (x >= -2 && x <= 2 ? sinc(x) * sinc(x / 2) : 0) },
  cubic: { support: 2, filter: (x) => cubicFilter(x, 0, 0.5) }, // Catmull-Rom
  mitchell: { support: 2, filter: (x) => cubicFilter(x, 1 / 3, 1 / 3) },
};

/** C's rint (round half to even), as vips_reduce_get_points uses it. */
function rint(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const MASK_TABLES = new Map<string, Int32Array[]>();
/**
 * vips_reduce's coefficient table for `kernel` at reduce factor `factor`
 * with n points: 65 rows, for sub-pixel offsets t / 64 (t = 0..64), each the
 * filter at (i - (t / 64 + n / 2 - 1)) / factor for i = 0..n-1, divided by
 * its sum, times 4096 and truncated (short).
 */
function maskTable(kernel: string, factor: number, n: number): Int32Array[] {
  const key = `${kernel}:${factor}:${n}`;
  let table = MASK_TABLES.get(key);
  if (!table) {
    const { filter } = REDUCE_KERNELS[kernel];
    table = [];
    for (let t = 0; t <= 64; t++) {
      const half = t / 64 + n / 2 - 1;
      const c = new Float64Array(n);
      let sum = 0;
      for (let i = 0; i < n; i++) {
        c[i] = filter((i - half) / factor);
        sum += c[i];
      }
      table.push(Int32Array.from(c, (v) => Math.trunc((v / sum) * 4096)));
    }
    if (MASK_TABLES.size >= 64) MASK_TABLES.clear(); // images of many sizes: keep the cache small
    MASK_TABLES.set(key, table);
  }
  return table;
}

/** Where vips_reduce{h,v} reads along one axis: per output position the first of n input taps (may be < 0) and its weights. */
interface ReduceTaps {
  /** Output size along the axis. */
  m: number;
  /** Taps per output position. */
  n: number;
  first: Int32Array;
  weights: Int32Array[];
}

/**
 * vips_reduce{h,v} along an axis of nIn pixels by `shrink`: m = round(nIn /
 * factor) outputs; the origin moves in by half the pixels gained or lost
 * (offset = (1 + m * factor - nIn) / 2 - 1); output X reads the input padded
 * by ceil(n / 2) - 1 copied edge pixels from position P = (X + 0.5) *
 * factor - 0.5 - offset (stepped by repeated addition), taps floor(P) ..
 * floor(P) + n - 1, with the table row for P's fraction rounded to 1/64.
 */
function reduceTaps(nIn: number, shrink: number, kernel: string, start = 0): ReduceTaps {
  const factor = reduceFactor(shrink);
  const m = Math.round(nIn / factor);
  const offset = (1 + (m * factor - nIn)) / 2 - 1;
  const n = 2 * rint(REDUCE_KERNELS[kernel].support * factor) + 1;
  const pad = Math.ceil(n / 2) - 1;
  const table = maskTable(kernel, factor, n);
  const first = new Int32Array(m);
  const weights: Int32Array[] = [];
  let P = 0.5 * factor - 0.5 - offset;
  for (let X = 0; X < m; X++) {
    if (X === start && X > 0) P = (X + 0.5) * factor - 0.5 - offset; // libvips's region starts here
    const sx = Math.trunc(P * 128);
    first[X] = Math.trunc(P) - pad;
    weights.push(table[((sx & 127) + 1) >> 1]);
    P += factor;
  }
  return { m, n, first, weights };
}

/**
 * sharp's resize step for a uchar image downsized by `shrink` (> 1, below
 * vips_reduce's box-shrink threshold, see reducible) with kernel lanczos3,
 * lanczos2, cubic or mitchell: vips_reducev, then vips_reduceh, each output
 * sample the fixed-point sum (s + 2048) >> 12 clipped to 0..255; alpha
 * through the premultiplied round trip of resizeUp.
 */
export function resizeDown(img: PngImage, shrink: number, kernel: string, startX = 0): PngImage | undefined {
  if (!REDUCE_KERNELS[kernel]) return undefined;
  return withPremultipliedAlpha(img, (im) => {
    const v = reduceTaps(im.height, shrink, kernel);
    const h = reduceTaps(im.width, shrink, kernel, startX);
    if (v.m < 1 || h.m < 1) return undefined;
    return reduceHorizontal(reduceVertical(im, v), h);
  });
}

/*
 * The reduce passes below are exact integer sums, but JavaScript spends most
 * of their time per multiply-add, so they carry two uchar samples in one
 * double: a + b * 2^24. Each lane's sum stays within +-2^21 (the weights'
 * absolute sum is under 1.5 * 4096), so the packed sum is exact (< 2^53) and
 * splits back into both lanes when the low lane is biased to be positive.
 */
const LANE = 2 ** 24;
/** Start value of a packed sum: the rounding term 2048 in both lanes, plus the low lane's bias 2^23. */
const PACKED_START = 2048 + 2 ** 23 + 2048 * LANE;

function reduceVertical(img: PngImage, taps: ReduceTaps): PngImage {
  const { data: src, width, height, bands } = img;
  const { m, n, first, weights } = taps;
  const rowN = width * bands;
  const P = (rowN + 1) >> 1; // packed pairs per row
  const packed = new Float64Array(height * P); // [height, P]: samples 2j + 2j+1 * 2^24
  for (let r = 0; r < height; r++) {
    const s0 = r * rowN;
    const p0 = r * P;
    for (let j = 0; j < P; j++) packed[p0 + j] = src[s0 + 2 * j] + (2 * j + 1 < rowN ? src[s0 + 2 * j + 1] : 0) * LANE;
  }
  const out = new Uint8Array(m * rowN); // [m, width, bands]
  const acc = new Float64Array(P);
  const ws = new Int32Array(n + 3); // the non-zero weights of a row, padded to a multiple of 4 with zeros
  const bases = new Int32Array(n + 3); // and their clamped input rows (times P)
  for (let Y = 0; Y < m; Y++) {
    acc.fill(PACKED_START);
    const w = weights[Y];
    let nz = 0;
    for (let k = 0; k < n; k++) {
      if (w[k] === 0) continue;
      const r = first[Y] + k;
      ws[nz] = w[k];
      bases[nz++] = (r < 0 ? 0 : r >= height ? height - 1 : r) * P;
    }
    for (; nz % 4 !== 0; nz++) {
      ws[nz] = 0;
      bases[nz] = 0;
    }
    // four taps per pass over the row, to touch acc a quarter as often
    for (let k = 0; k < nz; k += 4) {
      const [c0, c1, c2, c3] = [ws[k], ws[k + 1], ws[k + 2], ws[k + 3]];
      const [b0, b1, b2, b3] = [bases[k], bases[k + 1], bases[k + 2], bases[k + 3]];
      for (let j = 0; j < P; j++) {
        acc[j] += c0 * packed[b0 + j] + c1 * packed[b1 + j] + c2 * packed[b2 + j] + c3 * packed[b3 + j];
      }
    }
    const o = Y * rowN;
    for (let j = 0; j < P; j++) {
      const t = acc[j];
      const hi = Math.floor(t / LANE);
      out[o + 2 * j] = clipShift(t - hi * LANE - 2 ** 23);
      if (2 * j + 1 < rowN) out[o + 2 * j + 1] = clipShift(hi);
    }
  }
  return { data: out, width, height: m, bands };
}

function reduceHorizontal(img: PngImage, taps: ReduceTaps): PngImage {
  const { data: src, width, height, bands } = img;
  const { m, n, first, weights } = taps;
  // Each row goes into `line` packed as band pairs (band 2q + band 2q+1 *
  // 2^24, q < L), with `pad` edge pixels repeated on either side (as
  // vips_embed does for libvips), so that every tap window is contiguous.
  // The taps of each column are padded with zero weights to a multiple of 4
  // (n4), so that the loops below can take four at a time.
  const n4 = (n + 3) & ~3;
  let lo = 0;
  let hi = width - 1;
  for (let X = 0; X < m; X++) {
    lo = Math.min(lo, first[X]);
    hi = Math.max(hi, first[X] + n4 - 1);
  }
  const pad = -lo;
  const L = (bands + 1) >> 1;
  const line = new Float64Array((hi - lo + 1) * L); // [pad + width + right pad, L]
  const wt = new Int32Array(m * n4); // [m, n4]
  for (let X = 0; X < m; X++) wt.set(weights[X], X * n4);
  const out = new Uint8Array(height * m * bands); // [height, m, bands]
  const rowN = width * bands;
  for (let y = 0; y < height; y++) {
    const row = y * rowN;
    for (let x = lo; x <= hi; x++) {
      const s0 = row + (x < 0 ? 0 : x >= width ? width - 1 : x) * bands;
      const l0 = (x - lo) * L;
      for (let q = 0; q < L; q++) line[l0 + q] = src[s0 + 2 * q] + (2 * q + 1 < bands ? src[s0 + 2 * q + 1] : 0) * LANE;
    }
    let o = y * m * bands;
    if (L === 2) {
      for (let X = 0; X < m; X++) {
        let p = (first[X] + pad) * 2;
        let a = PACKED_START;
        let b = PACKED_START;
        for (let k = X * n4, end = k + n4; k < end; k += 4, p += 8) {
          const [c0, c1, c2, c3] = [wt[k], wt[k + 1], wt[k + 2], wt[k + 3]];
          a += c0 * line[p] + c1 * line[p + 2] + c2 * line[p + 4] + c3 * line[p + 6];
          b += c0 * line[p + 1] + c1 * line[p + 3] + c2 * line[p + 5] + c3 * line[p + 7];
        }
        const ah = Math.floor(a / LANE);
        const bh = Math.floor(b / LANE);
        out[o] = clipShift(a - ah * LANE - 2 ** 23);
        out[o + 1] = clipShift(ah);
        out[o + 2] = clipShift(b - bh * LANE - 2 ** 23);
        if (bands === 4) out[o + 3] = clipShift(bh);
        o += bands;
      }
    } else {
      for (let X = 0; X < m; X++) {
        let a = PACKED_START;
        for (let k = X * n4, end = k + n4, p = first[X] + pad; k < end; k += 4, p += 4) {
          a += wt[k] * line[p] + wt[k + 1] * line[p + 1] + wt[k + 2] * line[p + 2] + wt[k + 3] * line[p + 3];
        }
        const ah = Math.floor(a / LANE);
        out[o] = clipShift(a - ah * LANE - 2 ** 23);
        if (bands === 2) out[o + 1] = clipShift(ah);
        o += bands;
      }
    }
  }
  return { data: out, width: m, height, bands };
}

/** A fixed-point sum (rounding term included) back to uchar: >> 12, clipped to 0..255. */
function clipShift(sum: number): number {
  const v = sum >> 12;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** sharp's centred crop for fit 'cover' (CalculateCrop, gravity centre). */
function cropCentre(img: PngImage, width: number, height: number): PngImage {
  const W = Math.min(width, img.width);
  const H = Math.min(height, img.height);
  if (W === img.width && H === img.height) return img;
  const left = Math.floor((img.width - W + 1) / 2);
  const top = Math.floor((img.height - H + 1) / 2);
  const b = img.bands;
  const out = new Uint8Array(W * H * b); // [H, W, bands]
  for (let y = 0; y < H; y++) {
    const s = ((top + y) * img.width + left) * b;
    out.set(img.data.subarray(s, s + W * b), y * W * b);
  }
  return { data: out, width: W, height: H, bands: b };
}

/** libvips's B_W -> sRGB: the grey band three times (alpha kept); RGB(A) as is. */
function toSrgb(img: PngImage): PngFastPixels {
  const { data, width, height, bands } = img;
  if (bands >= 3) return { samples: data, channels: bands, width, height };
  const n = width * height;
  const ch = bands + 2;
  const out = new Uint8Array(n * ch); // [height, width, 3 or 4]
  for (let p = 0; p < n; p++) {
    const g = data[p * bands];
    out[p * ch] = g;
    out[p * ch + 1] = g;
    out[p * ch + 2] = g;
    if (bands === 2) out[p * ch + 3] = data[p * 2 + 1];
  }
  return { samples: out, channels: ch, width, height };
}
