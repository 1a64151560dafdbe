/**
 * Image input for vtok, on sharp (libvips): one image or a batch of images
 * becomes RGB float32 pixels in [-1, 1], laid out HWC (one image) or NHWC
 * (a batch), the layout TensorFlow.js uses.
 *
 * Formats: JPEG, PNG (8 and 16 bit, palette, alpha), WebP, TIFF, GIF and
 * AVIF/HEIF (first frame or page), in grey, RGB or CMYK.
 *
 * Pipeline: the header is read first (format, size, bit depth; the pixel
 * limit is checked here), in JS for ordinary PNG, JPEG, WebP and GIF files
 * (src/core/image-header.ts), else by sharp's metadata(). sharp then
 * applies the EXIF orientation, resizes
 * (JPEG and WebP are decoded at 1/2, 1/4 or 1/8 scale when the target is
 * small enough: sharp's shrink-on-load, on by default) and converts to sRGB
 * (embedded ICC profiles are honoured; CMYK without a profile goes through
 * libvips's built-in CMYK profile). Alpha is composited on `background`, and
 * a padded image is placed on it, here in float while converting to [-1, 1].
 *
 * The mapping to [-1, 1] is exact and documented, so that pixels can be
 * written back bit for bit (see toUint8 in image-write.ts):
 *   8-bit images:  x = v / 127.5 - 1     (0 -> -1, 128 -> 0.0039..., 255 -> 1)
 *   16-bit images: x = v / 32767.5 - 1   (0 -> -1, 65535 -> 1)
 * 16-bit images keep their 16 bits all the way (decode, resize, composite).
 *
 * Bad input throws a VtokError whose message names the file and the reason,
 * with code FILE_NOT_FOUND, IO (a directory, no permission), IMAGE_DECODE
 * (empty, not an image, truncated or corrupt, unsupported format) or
 * IMAGE_TOO_LARGE (more pixels than `maxPixels`, checked from the header
 * before any pixel is decoded, so a decompression bomb costs nothing).
 * With the default `failOn: 'warning'`, damaged pixel data is always an
 * error, never an image with a grey band.
 *
 * Fast path: small plain 8-bit PNGs (no colour chunks, no orientation, at
 * most 64K pixels) are decoded and resized (up; or down by less than about 4
 * from at most 128 x 128) in TypeScript by decodePngFast (src/io/png-fast.ts), whose samples are
 * bit-identical to this sharp pipeline's; anything it does not reproduce
 * exactly (larger downscales, resizes of images with alpha, upsizes whose
 * rows sample exactly between two interpolation-table entries, the kernels
 * 'nearest' and 'linear', 16-bit, low bit depths, interlacing, colour or EXIF
 * chunks, odd or damaged files) goes to sharp. It saves sharp's fixed cost of about 1 ms of CPU per call
 * (issue #6). It is on only with the
 * libvips version it was checked against (FAST_PNG_VIPS). Set the environment
 * variable VTOK_DECODER=sharp to always use sharp.
 */

import { promises as fsp } from 'node:fs';
import sharp from 'sharp';
import type { Metadata, OutputInfo } from 'sharp';
import { VtokError, checkInt, checkOneOf, invalidOption, resolveOptions } from '../core/errors';
import { orientedSize, parseImageHeader } from '../core/image-header';

import { parseColour, type Colour } from './image-colour';
import { decodePngFast } from './png-fast';

export { parseColour } from './image-colour';
export type { Colour } from './image-colour';
export { toUint8, encodePng, writePng, renderImageGrid, writeImageGrid } from './image-write';
export type { PixelRange, PngWriteOptions, GridImage, ImageGridOptions, RenderedGrid } from './image-write';

/** A file path, or the bytes of an encoded image file. */
export type ImageInput = string | Uint8Array;

/** A square side, or a width and height, in pixels. */
export type ImageSize = number | { width: number; height: number };

/** How an image is brought to the target size. */
export type ImageFit = 'crop' | 'pad';

/** Resampling kernels offered by sharp for resizing. */
export type ResizeKernel = 'nearest' | 'linear' | 'cubic' | 'mitchell' | 'lanczos2' | 'lanczos3';

/** How strict decoding is about damaged pixel data (sharp's `failOn`), least strict first. */
export type FailOn = 'none' | 'truncated' | 'error' | 'warning';

export interface ImageReadOptions {
  /**
   * Target size: a number for a square, or `{ width, height }`. Default
   * undefined: keep the image's own size (after EXIF orientation).
   */
  size: ImageSize | undefined;
  /**
   * How to reach `size` when the aspect ratio differs. Default 'crop'.
   * - 'crop': scale so the image covers the target, cut the overflow evenly
   *   from both sides (centre crop; sharp's `fit: 'cover'`).
   * - 'pad': scale so the whole image fits, fill the rest evenly on both
   *   sides with `background` (letterbox; sharp's `fit: 'contain'`).
   */
  fit: ImageFit;
  /** Colour under transparent pixels and around a padded image. Default white, '#ffffff'. */
  background: Colour;
  /** Resampling kernel. Default 'lanczos3' (sharp's default; the choice barely changes speed). */
  kernel: ResizeKernel;
  /**
   * Largest number of pixels (width x height, as the file's header declares)
   * that will be decoded. Default 268402689 (0x3FFF x 0x3FFF, sharp's own
   * default): a 16383 x 16383 image already needs 800 MB as RGB bytes.
   */
  maxPixels: number;
  /**
   * When damaged pixel data is an error (sharp's `failOn`). Default 'warning',
   * sharp's recommendation for untrusted input: truncated files always fail.
   */
  failOn: FailOn;
  /** Name used for a Buffer input in metadata and error messages. Default `<buffer of N bytes>`. */
  name: string | undefined;
}

/** The default pixel limit: sharp's, 0x3FFF x 0x3FFF. */
export const DEFAULT_MAX_PIXELS = 0x3fff * 0x3fff;

/** Formats readImage accepts (names as sharp reports them; `heif` covers AVIF). */
export const IMAGE_FORMATS = ['jpeg', 'png', 'webp', 'tiff', 'gif', 'heif'] as const;

const READ_DEFAULTS: ImageReadOptions = {
  size: undefined,
  fit: 'crop',
  background: '#ffffff',
  kernel: 'lanczos3',
  maxPixels: DEFAULT_MAX_PIXELS,
  failOn: 'warning',
  name: undefined,
};

const FITS: readonly ImageFit[] = ['crop', 'pad'];
const KERNELS: readonly ResizeKernel[] = ['nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3'];
const FAIL_ON: readonly FailOn[] = ['none', 'truncated', 'error', 'warning'];
/** Largest side accepted for `size` (libvips's own limit on image dimensions is 10,000,000). */
const MAX_SIDE = 65535;

/** What is known about a decoded image besides its pixels. */
export interface ImageInfo {
  /** Width and height of the returned pixels. */
  width: number;
  height: number;
  /** Width and height of the image as displayed (EXIF orientation applied), before any resize. */
  originalWidth: number;
  originalHeight: number;
  channels: 3;
  /** The path, or the name of a Buffer input. */
  source: string;
  /** The decoder sharp used: 'jpeg', 'png', 'webp', 'tiff', 'gif' or 'heif' (AVIF). */
  format: string;
  /** 16 for 16-bit sources (mapped with v / 32767.5 - 1), else 8 (v / 127.5 - 1). */
  bitDepth: 8 | 16;
}

export interface DecodedImage extends ImageInfo {
  /** RGB pixels in [-1, 1]. */
  data: Float32Array; // [H, W, 3]
}

/** Options resolved and checked, with the size and colour in the form sharp takes. */
interface ResolvedRead {
  target: { width: number; height: number } | undefined;
  fit: ImageFit;
  background: { r: number; g: number; b: number };
  kernel: ResizeKernel;
  maxPixels: number;
  failOn: FailOn;
}

/**
 * libvips versions the fast PNG path was checked against (tests/io/png-fast.test.ts,
 * eval/png-fast-identity.ts); with another libvips, readImage uses sharp
 * until those are re-run and the version is added here.
 */
const FAST_PNG_VIPS = ['8.18.7'];
const fastPngVerified = FAST_PNG_VIPS.includes((sharp.versions as { vips?: string }).vips ?? '');

/**
 * Largest PNG (width x height) the fast path downscales. A 256 x 256 photo
 * halved costs about as much CPU either way (2.3 vs 2.4 ms,
 * bench/png-fast.ts); on the main thread (tokenizeDataset without decode
 * workers) bench:tokenize's default row (those photos at 128) ran slower end
 * to end through the fast path (2026-12-02: 14.8-16.7 s vs 13.2-15.9 s for
 * 512 images in two runs), and in the decode workers too (overhead 15 and
 * 30 % in two runs against 5, 14, 10 and -2 % with sharp doing those
 * downscales; the model itself slowed). Small images (e.g. 64 x 64 halved:
 * 0.16 vs 1.5 ms) still gain.
 */
const FAST_DOWNSCALE_MAX_PIXELS = 128 * 128;

/** 8-bit value -> [-1, 1]; a table so that every conversion is the same float. */
const FROM_UINT8 = new Float32Array(256);
for (let v = 0; v < 256; v++) FROM_UINT8[v] = v / 127.5 - 1;

/**
 * Reads one image file (or encoded bytes) into RGB float32 pixels in [-1, 1].
 *
 * Example:
 *   const img = await readImage('cat.jpg', { size: 256 });  // centre crop to 256 x 256
 *   img.data.length === 256 * 256 * 3; img.originalWidth === 4032
 */
export async function readImage(input: ImageInput, options?: Partial<ImageReadOptions>): Promise<DecodedImage> {
  const opts = resolveOptions('readImage', READ_DEFAULTS, options);
  const resolved = checkReadOptions(opts);
  return readResolved(input, resolved, opts.name, undefined);
}

/** Reads one image (input, name?, into?); see imageReader. */
export type ImageReader = (input: ImageInput, name?: string, into?: Float32Array) => Promise<DecodedImage>;

/**
 * readImage with its options checked once, for reading many images alike
 * (the dataset pipeline reads every input through one). `into`, when given,
 * receives the pixels and is the result's `data`: it must hold exactly
 * width x height x 3 values of the result (size x size x 3 with a square
 * `size`), so that a caller with buffers of its own saves an allocation and
 * a copy per image.
 *
 * Example:
 *   const read = imageReader({ size: 256 });
 *   const img = await read(bytes, 'a.png', buffer);  // img.data === buffer
 */
export function imageReader(options?: Partial<Omit<ImageReadOptions, 'name'>>): ImageReader {
  const resolved = checkReadOptions(resolveOptions('imageReader', READER_DEFAULTS, options));
  return (input, name, into) => readResolved(input, resolved, name, into);
}

const { name: _name, ...READER_DEFAULTS } = READ_DEFAULTS;

async function readResolved(input: ImageInput, resolved: ResolvedRead, name: string | undefined, into: Float32Array | undefined): Promise<DecodedImage> {
  if (name !== undefined && typeof name !== 'string') throw invalidOption('name', 'a string', name);
  checkInput('input', input);
  if (into !== undefined && !(into instanceof Float32Array)) throw invalidOption('into', 'a Float32Array', into);
  const source = typeof input === 'string' ? input : (name ?? `<buffer of ${input.length} bytes>`);
  const pixels = await decodePixels(input, source, resolved);
  const n = pixels.info.width * pixels.info.height * 3;
  if (into !== undefined && into.length !== n) {
    throw new VtokError('INVALID_OPTION', `Expected a Float32Array of ${n} values (${pixels.info.width} x ${pixels.info.height} x 3) for into but received one of ${into.length}`, {
      subject: 'into',
    });
  }
  const data = into ?? new Float32Array(n); // [H, W, 3]
  writeFloats(pixels, data, 0);
  return { ...pixels.info, data };
}

export interface ImageBatchOptions extends Omit<ImageReadOptions, 'name'> {
  /**
   * What a bad input does. Default 'throw': the batch fails with the bad
   * input's error (the one earliest in input order, when several fail).
   * 'skip': the bad input is listed in `errors` and left out of `data`.
   */
  onError: 'throw' | 'skip';
  /**
   * Images decoded at the same time. Default 2: with sharp's thread pool at
   * one thread per image on a 2-core machine, two images in flight keep both
   * cores busy; more only adds memory (see the measurements in ENGINE.md).
   */
  concurrency: number;
  /** Called after each input is done (decoded or failed). Default none. */
  onProgress: ((done: number, total: number) => void) | undefined;
}

/** One input that could not be read, in a batch read with `onError: 'skip'`. */
export interface ImageBatchError {
  /** Position of the input in the list given. */
  index: number;
  /** The path, or `<buffer #i of N bytes>`. */
  input: string;
  code: VtokError['code'];
  message: string;
}

export interface ImageBatchItem extends ImageInfo {
  /** Position of the input in the list given. */
  index: number;
}

export interface ImageBatch {
  /** The good images, in input order. */
  data: Float32Array; // [B, H, W, 3]
  shape: [number, number, number, 3];
  /** Metadata of each image in `data`, in the same order. */
  items: ImageBatchItem[];
  /** The inputs that failed (only with `onError: 'skip'`), in input order. */
  errors: ImageBatchError[];
}

const BATCH_DEFAULTS: ImageBatchOptions = {
  size: undefined,
  fit: 'crop',
  background: '#ffffff',
  kernel: 'lanczos3',
  maxPixels: DEFAULT_MAX_PIXELS,
  failOn: 'warning',
  onError: 'throw',
  concurrency: 2,
  onProgress: undefined,
};

/**
 * Reads many images into one NHWC float32 batch, a few at a time.
 *
 * With `size`, every image is brought to that size. Without it, all images
 * must already share one size (the first good one in input order sets it);
 * an image of another size is an INVALID_INPUT error for that input.
 *
 * Example:
 *   const { data, shape, errors } = await readImageBatch(paths, { size: 256, onError: 'skip' });
 *   // shape = [paths.length - errors.length, 256, 256, 3]
 */
export async function readImageBatch(inputs: readonly ImageInput[], options?: Partial<ImageBatchOptions>): Promise<ImageBatch> {
  const opts = resolveOptions('readImageBatch', BATCH_DEFAULTS, options);
  const resolved = checkReadOptions(opts);
  const onError = checkOneOf('onError', opts.onError, ['throw', 'skip'] as const);
  const concurrency = checkInt('concurrency', opts.concurrency, 1, 64);
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') {
    throw invalidOption('onProgress', 'a function', opts.onProgress);
  }
  if (!Array.isArray(inputs)) throw invalidOption('inputs', 'an array of paths or Buffers', inputs);
  inputs.forEach((input, i) => checkInput(`inputs[${i}]`, input));

  const n = inputs.length;
  const sourceOf = (i: number): string => {
    const input = inputs[i];
    return typeof input === 'string' ? input : `<buffer #${i} of ${input.length} bytes>`;
  };
  const target = resolved.target;
  const perImage = target ? target.width * target.height * 3 : 0;
  // With a target size every image goes straight into its slot; without one,
  // each image is kept on its own until the batch size is known.
  const slots = target ? new Float32Array(n * perImage) : undefined; // [n, H, W, 3]
  const loose: (Float32Array | undefined)[] = new Array(n).fill(undefined);
  const infos: (ImageInfo | undefined)[] = new Array(n).fill(undefined);
  const failures = new Map<number, VtokError>();

  let next = 0;
  let done = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      const i = next++;
      if (i >= n) return;
      try {
        const pixels = await decodePixels(inputs[i], sourceOf(i), resolved);
        if (slots) {
          writeFloats(pixels, slots, i * perImage);
        } else {
          const own = new Float32Array(pixels.info.width * pixels.info.height * 3); // [H, W, 3]
          writeFloats(pixels, own, 0);
          loose[i] = own;
        }
        infos[i] = pixels.info;
      } catch (err) {
        failures.set(i, asVtokError(err, sourceOf(i)));
        if (onError === 'throw') stop = true;
      }
      done++;
      if (opts.onProgress) opts.onProgress(done, n);
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: Math.min(concurrency, n) }, worker));
  for (const s of settled) if (s.status === 'rejected') throw s.reason; // only a throwing onProgress gets here

  // Without a target size, the first good image sets the size of the batch.
  let height = target?.height ?? 0;
  let width = target?.width ?? 0;
  if (!target) {
    const first = infos.findIndex((info) => info !== undefined);
    if (first >= 0) {
      height = (infos[first] as ImageInfo).height;
      width = (infos[first] as ImageInfo).width;
    }
    for (let i = 0; i < n; i++) {
      const info = infos[i];
      if (info && (info.width !== width || info.height !== height)) {
        failures.set(
          i,
          new VtokError(
            'INVALID_INPUT',
            `Could not add ${info.source} to the batch: it is ${info.width} x ${info.height} but the batch is ${width} x ${height} (set size to resize every image)`,
            { subject: info.source },
          ),
        );
        infos[i] = undefined;
        loose[i] = undefined;
      }
    }
  }

  const failed = [...failures.keys()].sort((a, b) => a - b);
  if (onError === 'throw' && failed.length > 0) throw failures.get(failed[0]);

  const good: number[] = [];
  for (let i = 0; i < n; i++) if (infos[i]) good.push(i);
  const size = height * width * 3;
  let data: Float32Array; // [B, H, W, 3]
  if (slots) {
    if (good.length === n) {
      data = slots;
    } else {
      good.forEach((i, k) => {
        if (i !== k) slots.copyWithin(k * size, i * size, (i + 1) * size);
      });
      data = slots.slice(0, good.length * size);
    }
  } else {
    data = new Float32Array(good.length * size);
    good.forEach((i, k) => data.set(loose[i] as Float32Array, k * size));
  }
  return {
    data,
    shape: [good.length, height, width, 3],
    items: good.map((i) => ({ ...(infos[i] as ImageInfo), index: i })),
    errors: failed.map((i) => {
      const err = failures.get(i) as VtokError;
      return { index: i, input: sourceOf(i), code: err.code, message: err.message };
    }),
  };
}

function checkReadOptions(opts: Omit<ImageReadOptions, 'name'>): ResolvedRead {
  let target: ResolvedRead['target'];
  if (typeof opts.size === 'number') {
    const side = checkInt('size', opts.size, 1, MAX_SIDE);
    target = { width: side, height: side };
  } else if (typeof opts.size === 'object' && opts.size !== null && !Array.isArray(opts.size)) {
    target = {
      width: checkInt('size.width', opts.size.width, 1, MAX_SIDE),
      height: checkInt('size.height', opts.size.height, 1, MAX_SIDE),
    };
  } else if (opts.size !== undefined) {
    throw invalidOption('size', 'a positive integer or {width, height}', opts.size);
  }
  return {
    target,
    fit: checkOneOf('fit', opts.fit, FITS),
    background: parseColour('background', opts.background),
    kernel: checkOneOf('kernel', opts.kernel, KERNELS),
    maxPixels: checkInt('maxPixels', opts.maxPixels, 1),
    failOn: checkOneOf('failOn', opts.failOn, FAIL_ON),
  };
}

function checkInput(name: string, input: unknown): void {
  if (typeof input !== 'string' && !(input instanceof Uint8Array)) {
    throw invalidOption(name, 'a file path or a Buffer of encoded image bytes', input);
  }
}

/** Decoded 8- or 16-bit RGB samples with their metadata. */
interface RawPixels {
  /** Metadata; width and height are those of the output (the target size, if any). */
  info: ImageInfo;
  samples: Uint8Array | Uint16Array; // [h, w, channels]
  /** 3 (RGB) or 4 (RGBA: alpha still to composite). */
  channels: number;
  /** Size of the decoded image: smaller than the output when padding. */
  innerWidth: number;
  innerHeight: number;
  /** Background colour, 8-bit sRGB. */
  background: number[];
}

/** Reads, checks and decodes one input to 8- or 16-bit sRGB samples. */
async function decodePixels(input: ImageInput, source: string, opts: ResolvedRead): Promise<RawPixels> {
  const bytes = typeof input === 'string' ? await readFileBytes(input) : input;
  if (bytes.length === 0) {
    throw new VtokError('IMAGE_DECODE', `Could not decode ${source}: the file is empty (0 bytes)`, { subject: source });
  }

  // The header first: format, size and bit depth, before any pixel is decoded.
  // The pixel limit is checked here (not by sharp) so that the message can say
  // how many pixels the image declares.
  const head = await readHeader(bytes, source, opts);
  if (!(IMAGE_FORMATS as readonly string[]).includes(head.format)) {
    throw new VtokError(
      'IMAGE_DECODE',
      `Could not decode ${source}: ${head.format} images are not supported (supported: jpeg, png, webp, tiff, gif, avif/heif)`,
      { subject: source },
    );
  }
  const declared = head.width * head.height;
  if (declared > opts.maxPixels) throw tooLarge(source, head.width, head.height, opts.maxPixels);

  // sharp orients, resizes and converts to sRGB; compositing alpha and padding
  // are done here, in float, while converting to [-1, 1]: sharp scales a
  // background colour by 256 (not 257) for 16-bit images, and this way both
  // depths composite exactly, with no intermediate rounding to 8 bits.
  const { is16, upright } = head;
  const info: ImageInfo = {
    width: opts.target?.width ?? 0,
    height: opts.target?.height ?? 0,
    originalWidth: upright.width,
    originalHeight: upright.height,
    channels: 3,
    source,
    format: head.format,
    bitDepth: is16 ? 16 : 8,
  };
  const background = [opts.background.r, opts.background.g, opts.background.b];
  if (head.format === 'png' && !is16 && fastPngVerified && process.env.VTOK_DECODER !== 'sharp') {
    // Only the resize settings: opts.maxPixels is the caller's safety limit, not the fast path's size limit.
    const fast = decodePngFast(bytes, { target: opts.target, fit: opts.fit, kernel: opts.kernel, maxDownscalePixels: FAST_DOWNSCALE_MAX_PIXELS });
    if (fast) {
      info.width = opts.target?.width ?? fast.width;
      info.height = opts.target?.height ?? fast.height;
      const { samples, channels, width: innerWidth, height: innerHeight } = fast;
      return { info, samples, channels, innerWidth, innerHeight, background };
    }
  }
  let pipeline = sharp(bytes, { limitInputPixels: opts.maxPixels, failOn: opts.failOn, autoOrient: true });
  if (opts.target) {
    pipeline = pipeline.resize({
      width: opts.target.width,
      height: opts.target.height,
      fit: opts.fit === 'crop' ? 'cover' : 'inside',
      position: 'centre',
      kernel: opts.kernel,
    });
  }
  pipeline = is16 ? pipeline.toColourspace('rgb16').raw({ depth: 'ushort' }) : pipeline.toColourspace('srgb').raw();

  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await pipeline.toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw decodeError(source, bytes, err);
  }
  const { width, height, channels } = out.info;
  if ((channels !== 3 && channels !== 4) || out.data.length !== width * height * channels * (is16 ? 2 : 1)) {
    throw new VtokError(
      'IMAGE_DECODE',
      `Could not decode ${source}: expected RGB or RGBA samples after conversion to sRGB but sharp returned ${width} x ${height} x ${channels} (${out.data.length} bytes)`,
      { subject: source },
    );
  }
  const samples = is16
    ? new Uint16Array(out.data.buffer, out.data.byteOffset, out.data.length / 2)
    : new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length);
  info.width = opts.target?.width ?? width;
  info.height = opts.target?.height ?? height;
  return { info, samples, channels, innerWidth: width, innerHeight: height, background };
}

/** What decodePixels needs from the header. */
interface Header {
  format: string;
  /** Stored size, as the pixel limit counts it. */
  width: number;
  height: number;
  is16: boolean;
  /** Size as displayed (EXIF orientation applied). */
  upright: { width: number; height: number };
}

/**
 * The header of an encoded image: from the bytes in JS when parseImageHeader
 * is sure of it (PNG, JPEG, WebP, GIF: libvips then parses the file once, not
 * twice), else from sharp's metadata(), whose failures become the usual decode
 * errors. sharp still applies the orientation itself (autoOrient), so the
 * parser's orientation only sets originalWidth/originalHeight; skipping
 * autoOrient for unrotated files saved no measurable CPU (bench/read-cost.ts).
 */
async function readHeader(bytes: Uint8Array, source: string, opts: ResolvedRead): Promise<Header> {
  const h = parseImageHeader(bytes);
  if (h) {
    return { format: h.format, width: h.width, height: h.height, is16: h.depth === 'ushort', upright: orientedSize(h) };
  }
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false, failOn: opts.failOn }).metadata();
  } catch (err) {
    throw decodeError(source, bytes, err);
  }
  return {
    format: meta.format,
    width: meta.width,
    height: meta.height,
    is16: meta.depth === 'ushort',
    upright: meta.autoOrient ?? { width: meta.width, height: meta.height },
  };
}

/**
 * Converts decoded samples to [-1, 1] floats at `offset` in `out` ([H, W, 3]
 * with H, W from `pixels.info`): composites alpha over the background
 * (x = (c * a + bg * (1 - a)) / max, in float) and centres the decoded image,
 * filling the rest with the background (left = floor((W - w) / 2), likewise top).
 */
function writeFloats(pixels: RawPixels, out: Float32Array, offset: number): void {
  const { samples: s, channels: ch, innerWidth: w, innerHeight: h } = pixels;
  const { width: W, height: H } = pixels.info;
  const max = s instanceof Uint16Array ? 65535 : 255;
  const half = max / 2; // 32767.5 or 127.5
  // The background in sample units of this depth (16-bit white is 65535 = 255 * 257).
  const bg = pixels.background.map((v) => (v * max) / 255);
  const bgFloat = bg.map((v) => v / half - 1);
  if (w !== W || h !== H) {
    for (let p = 0; p < W * H; p++) {
      out[offset + p * 3] = bgFloat[0];
      out[offset + p * 3 + 1] = bgFloat[1];
      out[offset + p * 3 + 2] = bgFloat[2];
    }
  }
  const left = Math.floor((W - w) / 2);
  const top = Math.floor((H - h) / 2);
  for (let y = 0; y < h; y++) {
    let o = offset + ((top + y) * W + left) * 3;
    let i = y * w * ch;
    if (ch === 3 && max === 255) {
      for (let k = 0; k < w * 3; k++) out[o++] = FROM_UINT8[s[i++]];
    } else if (ch === 3) {
      for (let k = 0; k < w * 3; k++) out[o++] = s[i++] / half - 1;
    } else {
      for (let x = 0; x < w; x++, i += 4) {
        const a = s[i + 3] / max;
        for (let c = 0; c < 3; c++) out[o++] = (s[i + c] * a + bg[c] * (1 - a)) / half - 1;
      }
    }
  }
}

async function readFileBytes(path: string): Promise<Buffer> {
  try {
    return await fsp.readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new VtokError('FILE_NOT_FOUND', `Could not read ${path}: no such file`, { subject: path, cause: err });
    }
    if (code === 'EISDIR') {
      throw new VtokError('IO', `Could not read ${path}: it is a directory, not an image file`, { subject: path, cause: err });
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw new VtokError('IO', `Could not read ${path}: permission denied`, { subject: path, cause: err });
    }
    throw new VtokError('IO', `Could not read ${path}: ${(err as Error).message}`, { subject: path, cause: err });
  }
}

function tooLarge(source: string, width: number, height: number, limit: number): VtokError {
  return new VtokError(
    'IMAGE_TOO_LARGE',
    `Could not decode ${source}: it declares ${width} x ${height} = ${width * height} pixels, more than the limit of ${limit} pixels (option maxPixels)`,
    { subject: source },
  );
}

/** Turns a sharp failure into a VtokError that says what is wrong with the file. */
function decodeError(source: string, bytes: Uint8Array, err: unknown): VtokError {
  const detail = (err instanceof Error ? err.message : String(err)).trim().replace(/\s+/g, ' ');
  let reason: string;
  if (/unsupported image format/i.test(detail)) {
    const head = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    reason = `not an image in a supported format (the file starts with bytes ${head})`;
  } else if (/exceeds pixel limit/i.test(detail)) {
    reason = `more pixels than the limit (${detail})`;
    return new VtokError('IMAGE_TOO_LARGE', `Could not decode ${source}: ${reason}`, { subject: source, cause: err });
  } else if (/premature end|end of (stream|file|data)|truncat|read error|unexpected end|corrupt|not enough data|out of data|EOF/i.test(detail)) {
    reason = `the image data is truncated or corrupt (${detail})`;
  } else {
    reason = detail;
  }
  return new VtokError('IMAGE_DECODE', `Could not decode ${source}: ${reason}`, { subject: source, cause: err });
}

function asVtokError(err: unknown, source: string): VtokError {
  if (err instanceof VtokError) return err;
  return new VtokError('IMAGE_DECODE', `Could not decode ${source}: ${(err as Error)?.message ?? String(err)}`, {
    subject: source,
    cause: err,
  });
}
