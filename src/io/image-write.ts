/**
 * Image output: pixels back to 8-bit PNG files, one image or a labelled grid.
 *
 * Float pixels are mapped to 8 bits with the inverse of readImage's mapping
 * and rounded to the nearest integer, then clipped:
 *   '[-1,1]':  v = round((x + 1) * 127.5)   (-1 -> 0, 0 -> 128, 1 -> 255)
 *   '[0,255]': v = round(x)
 * so readImage -> toUint8 returns the file's 8-bit samples exactly. Files are
 * written atomically (writeFileAtomic): on failure nothing is left behind.
 */

import sharp from 'sharp';
import { VtokError, checkInt, checkOneOf, invalidOption, resolveOptions } from '../core/errors';
import { writeFileAtomic } from './atomic';
import { parseColour, type Colour } from './image-colour';
import { GLYPH_HEIGHT, drawText, fitText, measureText } from './image-font';

/** The value range of pixel data: vtok's model range, or 8-bit values. */
export type PixelRange = '[-1,1]' | '[0,255]';
const RANGES: readonly PixelRange[] = ['[-1,1]', '[0,255]'];

/** Pixel data accepted by the writers: interleaved samples, row-major. */
type PixelData = Float32Array | Uint8Array;

/**
 * Rounds pixel values to 8 bits: see the mapping at the top of this file.
 * Values beyond the range are clipped; NaN becomes 0. Always returns a new array.
 *
 * Example: toUint8(new Float32Array([-1.5, -1, 0, 0.999, 1, 2]), '[-1,1]') -> [0, 0, 128, 255, 255, 255]
 */
export function toUint8(data: PixelData | ArrayLike<number>, range: PixelRange): Uint8Array {
  checkOneOf('range', range, RANGES);
  const out = new Uint8Array(data.length);
  if (data instanceof Uint8Array) {
    if (range !== '[0,255]') throw invalidOption('range', '"[0,255]" for Uint8Array data', range);
    out.set(data);
    return out;
  }
  const scale = range === '[-1,1]' ? 127.5 : 1;
  const shift = range === '[-1,1]' ? 1 : 0;
  for (let i = 0; i < data.length; i++) {
    const v = Math.round((data[i] + shift) * scale);
    out[i] = v > 255 ? 255 : v >= 0 ? v : 0; // NaN fails both tests -> 0
  }
  return out;
}

export interface PngWriteOptions {
  width: number;
  height: number;
  /** Samples per pixel: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA. Default 3. */
  channels: 1 | 2 | 3 | 4;
  /** Range of the values. Default '[-1,1]' for Float32Array data, '[0,255]' for Uint8Array. */
  range: PixelRange | undefined;
}

const PNG_DEFAULTS: PngWriteOptions = { width: 0, height: 0, channels: 3, range: undefined };

/** Encodes interleaved pixels ([H, W, C], row-major) as an 8-bit PNG in memory. */
export async function encodePng(data: PixelData, options: Partial<PngWriteOptions>): Promise<Buffer> {
  const opts = resolveOptions('encodePng', PNG_DEFAULTS, options);
  const width = checkInt('width', opts.width, 1, 65535);
  const height = checkInt('height', opts.height, 1, 65535);
  const channels = checkInt('channels', opts.channels, 1, 4) as 1 | 2 | 3 | 4;
  checkPixelData('data', data, width, height, channels);
  const range = opts.range ?? (data instanceof Uint8Array ? '[0,255]' : '[-1,1]');
  const bytes = toUint8(data, range);
  const image = sharp(bytes, { raw: { width, height, channels }, limitInputPixels: false });
  // Without 'b-w', sharp would write one- and two-channel data as RGB(A).
  return (channels <= 2 ? image.toColourspace('b-w') : image).png().toBuffer();
}

/**
 * Writes interleaved pixels ([H, W, C], row-major) to an 8-bit PNG file,
 * atomically: the file appears whole or not at all.
 */
export async function writePng(path: string, data: PixelData, options: Partial<PngWriteOptions>): Promise<void> {
  if (typeof path !== 'string' || path.length === 0) throw invalidOption('path', 'a non-empty file path', path);
  const png = await encodePng(data, options);
  await writeFileAtomic(path, png);
}

/** One cell of an image grid. */
export interface GridImage {
  data: PixelData; // [H, W, C]
  width: number;
  height: number;
  /** Samples per pixel: 1, 3 or 4 (alpha is composited on the grid's background). Default 3. */
  channels?: 1 | 3 | 4;
  /** Text drawn under the image (printable ASCII; other characters show as `?`; cut with `..` to fit). */
  label?: string;
}

export interface ImageGridOptions {
  /** Images per row. Default ceil(sqrt(number of images)). */
  columns: number | undefined;
  /** Pixels between cells and around the grid. Default 2. */
  padding: number;
  /** Colour of the padding, the empty cell area and the label band. Default white, '#ffffff'. */
  background: Colour;
  /**
   * Height of the band under each cell for its label. Default 12 when any
   * image has a label, else 0. The built-in font is 8 pixels tall and is
   * drawn at scale floor(labelHeight / 12) (at least 1), so 24 doubles it.
   */
  labelHeight: number | undefined;
  /** Colour of label text. Default black on light backgrounds, white on dark ones. */
  labelColour: Colour | undefined;
  /** Range of Float32Array image data. Default '[-1,1]'; Uint8Array data is always '[0,255]'. */
  range: PixelRange;
}

const GRID_DEFAULTS: ImageGridOptions = {
  columns: undefined,
  padding: 2,
  background: '#ffffff',
  labelHeight: undefined,
  labelColour: undefined,
  range: '[-1,1]',
};

/** A rendered grid: 8-bit RGB pixels and the layout that produced them. */
export interface RenderedGrid {
  data: Uint8Array; // [H, W, 3]
  width: number;
  height: number;
  columns: number;
  rows: number;
  /** Size of the image area of every cell (the largest image); labels go below it. */
  cellWidth: number;
  cellHeight: number;
  labelHeight: number;
}

/**
 * Lays images out in a grid on one 8-bit RGB canvas, each image centred in
 * its cell, its label centred under it.
 *
 * Layout: width = columns * cellWidth + (columns + 1) * padding,
 * height = rows * (cellHeight + labelHeight) + (rows + 1) * padding;
 * cell (row r, column c) has its image area's top-left corner at
 * (padding + c * (cellWidth + padding), padding + r * (cellHeight + labelHeight + padding)).
 */
export function renderImageGrid(images: readonly GridImage[], options?: Partial<ImageGridOptions>): RenderedGrid {
  const opts = resolveOptions('renderImageGrid', GRID_DEFAULTS, options);
  if (!Array.isArray(images) || images.length === 0) throw invalidOption('images', 'a non-empty array of images', images);
  const n = images.length;
  const columns = opts.columns === undefined ? Math.ceil(Math.sqrt(n)) : checkInt('columns', opts.columns, 1, 10000);
  const padding = checkInt('padding', opts.padding, 0, 10000);
  const background = parseColour('background', opts.background);
  const range = checkOneOf('range', opts.range, RANGES);
  const anyLabel = images.some((im) => im && im.label !== undefined && im.label !== '');
  const labelHeight = opts.labelHeight === undefined ? (anyLabel ? 12 : 0) : checkInt('labelHeight', opts.labelHeight, 0, 10000);
  if (anyLabel && labelHeight < GLYPH_HEIGHT) {
    throw invalidOption('labelHeight', `integer of at least ${GLYPH_HEIGHT} when images have labels (the font is ${GLYPH_HEIGHT} pixels tall)`, labelHeight);
  }
  const bgLuma = 0.299 * background.r + 0.587 * background.g + 0.114 * background.b;
  const ink = opts.labelColour === undefined ? (bgLuma >= 128 ? { r: 0, g: 0, b: 0 } : { r: 255, g: 255, b: 255 }) : parseColour('labelColour', opts.labelColour);

  images.forEach((im, i) => {
    if (typeof im !== 'object' || im === null) throw invalidOption(`images[${i}]`, 'an object {data, width, height}', im);
    checkInt(`images[${i}].width`, im.width, 1, 65535);
    checkInt(`images[${i}].height`, im.height, 1, 65535);
    if (im.channels !== undefined) checkOneOf(`images[${i}].channels`, String(im.channels), ['1', '3', '4']);
    checkPixelData(`images[${i}].data`, im.data, im.width, im.height, im.channels ?? 3);
    if (im.label !== undefined && typeof im.label !== 'string') throw invalidOption(`images[${i}].label`, 'a string', im.label);
  });

  const cellWidth = Math.max(...images.map((im) => im.width));
  const cellHeight = Math.max(...images.map((im) => im.height));
  const rows = Math.ceil(n / columns);
  const width = columns * cellWidth + (columns + 1) * padding;
  const height = rows * (cellHeight + labelHeight) + (rows + 1) * padding;
  const canvas = new Uint8Array(width * height * 3); // [H, W, 3]
  const bg = [background.r, background.g, background.b];
  for (let p = 0; p < width * height; p++) {
    canvas[p * 3] = bg[0];
    canvas[p * 3 + 1] = bg[1];
    canvas[p * 3 + 2] = bg[2];
  }
  const scale = Math.max(1, Math.floor(labelHeight / 12));

  images.forEach((im, i) => {
    const c = i % columns;
    const r = Math.floor(i / columns);
    const cellX = padding + c * (cellWidth + padding);
    const cellY = padding + r * (cellHeight + labelHeight + padding);
    const x0 = cellX + Math.floor((cellWidth - im.width) / 2);
    const y0 = cellY + Math.floor((cellHeight - im.height) / 2);
    const ch = im.channels ?? 3;
    const px = toUint8(im.data, im.data instanceof Uint8Array ? '[0,255]' : range); // [h, w, ch]
    for (let y = 0; y < im.height; y++) {
      for (let x = 0; x < im.width; x++) {
        const s = (y * im.width + x) * ch;
        const d = ((y0 + y) * width + x0 + x) * 3;
        if (ch === 1) {
          canvas[d] = canvas[d + 1] = canvas[d + 2] = px[s];
        } else if (ch === 3) {
          canvas[d] = px[s];
          canvas[d + 1] = px[s + 1];
          canvas[d + 2] = px[s + 2];
        } else {
          const a = px[s + 3] / 255;
          for (let k = 0; k < 3; k++) canvas[d + k] = Math.round(px[s + k] * a + bg[k] * (1 - a));
        }
      }
    }
    if (im.label) {
      const text = fitText(im.label, cellWidth, scale);
      const tx = cellX + Math.floor((cellWidth - measureText(text, scale)) / 2);
      const ty = cellY + cellHeight + Math.floor((labelHeight - GLYPH_HEIGHT * scale) / 2);
      drawText(canvas, width, height, 3, text, tx, ty, scale, [ink.r, ink.g, ink.b]);
    }
  });
  return { data: canvas, width, height, columns, rows, cellWidth, cellHeight, labelHeight };
}

/** Renders a labelled grid (see renderImageGrid) and writes it as a PNG file, atomically. */
export async function writeImageGrid(path: string, images: readonly GridImage[], options?: Partial<ImageGridOptions>): Promise<RenderedGrid> {
  if (typeof path !== 'string' || path.length === 0) throw invalidOption('path', 'a non-empty file path', path);
  const grid = renderImageGrid(images, options);
  const png = await encodePng(grid.data, { width: grid.width, height: grid.height, channels: 3, range: '[0,255]' });
  await writeFileAtomic(path, png);
  return grid;
}

function checkPixelData(name: string, data: unknown, width: number, height: number, channels: number): void {
  if (!(data instanceof Float32Array) && !(data instanceof Uint8Array)) {
    throw invalidOption(name, 'a Float32Array or Uint8Array', data);
  }
  const expected = width * height * channels;
  if (data.length !== expected) {
    throw new VtokError(
      'INVALID_INPUT',
      `Expected ${expected} values (${height} x ${width} x ${channels}) for ${name} but received ${data.length}`,
      { subject: name },
    );
  }
}
