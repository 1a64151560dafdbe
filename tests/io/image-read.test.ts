/**
 * readImage on real files in every supported format, made here with sharp (or
 * byte by byte where sharp cannot make the case: palette PNG with tRNS).
 * Lossless formats must decode exactly; lossy ones within a stated tolerance,
 * in [-1, 1] units (1/127.5 = one 8-bit step).
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import type { Sharp } from 'sharp';
import { imageReader, readImage } from '../../src/io/image';
import { pngChunk } from '../helpers/png-chunk';

const STEP = 1 / 127.5; // one 8-bit step in [-1, 1] units

/** 16 x 12 gradient: r = 16x, g = 20y, b = 128. */
const W = 16;
const H = 12;
const GRADIENT = (() => {
  const raw = Buffer.alloc(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const o = (y * W + x) * 3;
      raw[o] = x * 16;
      raw[o + 1] = y * 20;
      raw[o + 2] = 128;
    }
  }
  return raw;
})();
const gradient = (): Sharp => sharp(GRADIENT, { raw: { width: W, height: H, channels: 3 } });

/** The documented mapping of 8-bit samples to [-1, 1]. */
function expected8(bytes: ArrayLike<number>): Float32Array {
  return Float32Array.from(bytes, (v) => v / 127.5 - 1);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

/** RGB of pixel (x, y) of an HWC image, as floats. */
function pixel(img: { data: Float32Array; width: number }, x: number, y: number): number[] {
  const o = (y * img.width + x) * 3;
  return [img.data[o], img.data[o + 1], img.data[o + 2]];
}

/** Float pixel for an 8-bit colour. */
const f = (r: number, g: number, b: number): number[] => [r, g, b].map((v) => Math.fround(v / 127.5 - 1));

function expectPixelClose(actual: number[], want: number[], tolerance: number): void {
  for (let k = 0; k < 3; k++) expect(Math.abs(actual[k] - want[k])).toBeLessThanOrEqual(tolerance);
}

/** A PNG chunk: length, type, data, CRC-32 of type and data. */

/** An 8-bit palette PNG (colour type 3), optionally with per-entry alpha (tRNS). */
function palettePng(width: number, height: number, indices: number[], palette: number[][], alpha?: number[]): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 3; // colour type: palette
  const rows: number[] = [];
  for (let y = 0; y < height; y++) rows.push(0, ...indices.slice(y * width, (y + 1) * width)); // filter 0 per row
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('PLTE', Buffer.from(palette.flat())),
    ...(alpha ? [pngChunk('tRNS', Buffer.from(alpha))] : []),
    pngChunk('IDAT', zlib.deflateSync(Buffer.from(rows))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-image-read-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function save(name: string, bytes: Buffer): Promise<string> {
  const file = path.join(dir, name);
  await fsp.writeFile(file, bytes);
  return file;
}

describe('readImage: formats', () => {
  const want = expected8(GRADIENT);

  it.each([
    ['png', () => gradient().png()],
    ['webp (lossless)', () => gradient().webp({ lossless: true })],
    ['tiff (lzw)', () => gradient().tiff({ compression: 'lzw' })],
    ['avif (lossless)', () => gradient().avif({ lossless: true })],
  ])('%s decodes exactly', async (name, make) => {
    const file = await save(`${name.split(' ')[0]}.img`, await make().toBuffer());
    const img = await readImage(file);
    expect([img.width, img.height, img.originalWidth, img.originalHeight, img.channels, img.bitDepth]).toEqual([W, H, W, H, 3, 8]);
    expect(img.source).toBe(file);
    expect(img.data).toEqual(want); // bit for bit: the mapping is v / 127.5 - 1
  });

  it('reports the decoder used', async () => {
    const cases: [string, Sharp][] = [
      ['jpeg', gradient().jpeg()],
      ['png', gradient().png()],
      ['webp', gradient().webp()],
      ['tiff', gradient().tiff()],
      ['gif', gradient().gif()],
      ['heif', gradient().avif()],
    ];
    for (const [format, pipeline] of cases) {
      expect((await readImage(await pipeline.toBuffer())).format).toBe(format);
    }
  });

  it.each([
    // [name, encoder, max |error|, mean |error|] in 8-bit steps
    ['jpeg q95 4:4:4', () => gradient().jpeg({ quality: 95, chromaSubsampling: '4:4:4' }), 6, 2],
    ['jpeg q80 4:2:0', () => gradient().jpeg({ quality: 80 }), 30, 6],
    ['webp q90', () => gradient().webp({ quality: 90 }), 24, 6],
    ['avif q90', () => gradient().avif({ quality: 90, chromaSubsampling: '4:4:4' }), 8, 3],
  ])('%s decodes within its lossy tolerance', async (_name, make, maxSteps, meanSteps) => {
    const img = await readImage(await make().toBuffer());
    expect(img.data.length).toBe(want.length);
    expect(maxAbsDiff(img.data, want)).toBeLessThanOrEqual(maxSteps * STEP);
    expect(meanAbsDiff(img.data, want)).toBeLessThanOrEqual(meanSteps * STEP);
  });

  it('GIF: reads the first frame of an animation (palette of at most 256 colours, so exact)', async () => {
    // Two 4 x 4 frames stacked: the first red, the second blue.
    const frames = Buffer.alloc(4 * 8 * 3);
    for (let p = 0; p < 32; p++) frames.set(p < 16 ? [255, 0, 0] : [0, 0, 255], p * 3);
    const gif = await sharp(frames, { raw: { width: 4, height: 8, channels: 3, pageHeight: 4 } }).gif().toBuffer();
    expect((await sharp(gif).metadata()).pages).toBe(2);
    const img = await readImage(gif);
    expect([img.width, img.height, img.originalWidth, img.originalHeight]).toEqual([4, 4, 4, 4]);
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) expect(pixel(img, x, y)).toEqual([1, -1, -1]);
  });

  it('TIFF: reads the first page of a multi-page file', async () => {
    const pages = Buffer.alloc(2 * 2 * 2 * 3);
    for (let p = 0; p < 8; p++) pages.set(p < 4 ? [10, 20, 30] : [200, 210, 220], p * 3);
    const tiff = await sharp(pages, { raw: { width: 2, height: 4, channels: 3, pageHeight: 2 } }).tiff({ compression: 'lzw' }).toBuffer();
    const img = await readImage(tiff);
    expect([img.width, img.height]).toEqual([2, 2]);
    expect(pixel(img, 1, 1)).toEqual(f(10, 20, 30));
  });

  it('16-bit PNG keeps 16 bits: v -> v / 32767.5 - 1, 65535 -> 1.0', async () => {
    const samples = new Uint16Array([0, 65535, 32768, 1000, 40000, 257]); // two RGB pixels
    const png = await sharp(samples, { raw: { width: 2, height: 1, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
    expect((await sharp(png).metadata()).depth).toBe('ushort');
    const img = await readImage(png);
    expect(img.bitDepth).toBe(16);
    expect(img.data[1]).toBe(1);
    expect(img.data[0]).toBe(-1);
    expect(Array.from(img.data)).toEqual(Array.from(samples, (v) => Math.fround(v / 32767.5 - 1)));
    // 32768 is 1.5e-5 above mid-grey: 8-bit decoding could not say that.
    expect(img.data[2]).toBeCloseTo(1.5259e-5, 8);
  });

  it('16-bit grey + alpha PNG: composited on the background in 16 bits', async () => {
    const samples = new Uint16Array([0, 0, 0, 65535]); // [grey, alpha] x 2: transparent black, opaque black
    const png = await sharp(samples, { raw: { width: 2, height: 1, channels: 2 } }).toColourspace('grey16').png().toBuffer();
    const meta = await sharp(png).metadata();
    expect([meta.depth, meta.channels, meta.hasAlpha]).toEqual(['ushort', 2, true]);
    // White is 65535 at 16 bits (255 * 257), so the transparent pixel is exactly 1.0.
    const img = await readImage(png, { background: '#ffffff' });
    expect(img.bitDepth).toBe(16);
    expect(Array.from(img.data)).toEqual([1, 1, 1, -1, -1, -1]);
  });

  it('palette PNG (colour type 3) decodes to its palette colours exactly', async () => {
    const palette = [
      [255, 0, 0],
      [0, 128, 0],
      [10, 20, 250],
    ];
    const indices = [0, 1, 2, 1, 2, 0];
    const img = await readImage(await save('palette.png', palettePng(3, 2, indices, palette)));
    expect([img.width, img.height]).toEqual([3, 2]);
    expect(Array.from(img.data)).toEqual(Array.from(expected8(indices.flatMap((i) => palette[i]))));
  });

  it('palette PNG with transparency (tRNS) is composited on the background', async () => {
    // entry 0 opaque red, entry 1 fully transparent, entry 2 half transparent black
    const png = palettePng(3, 1, [0, 1, 2], [[255, 0, 0], [0, 255, 0], [0, 0, 0]], [255, 0, 128]);
    const img = await readImage(png, { background: [0, 0, 255] });
    expect(pixel(img, 0, 0)).toEqual(f(255, 0, 0));
    expect(pixel(img, 1, 0)).toEqual(f(0, 0, 255));
    // 128/255 black over blue: 255 * (1 - 128/255) = 127
    expectPixelClose(pixel(img, 2, 0), f(0, 0, 127), STEP);
  });

  it('RGBA PNG: alpha composited on the stated background (default white)', async () => {
    // opaque (10, 20, 30); transparent green; red at alpha 51 (= 0.2)
    const rgba = Buffer.from([10, 20, 30, 255, 0, 255, 0, 0, 255, 0, 0, 51]);
    const png = await sharp(rgba, { raw: { width: 3, height: 1, channels: 4 } }).png().toBuffer();
    const onWhite = await readImage(png);
    expect(pixel(onWhite, 0, 0)).toEqual(f(10, 20, 30));
    expect(pixel(onWhite, 1, 0)).toEqual([1, 1, 1]);
    // 0.2 * 255 + 0.8 * 255 = 255 for red; 0.8 * 255 = 204 for green and blue
    expectPixelClose(pixel(onWhite, 2, 0), f(255, 204, 204), STEP);
    const onGrey = await readImage(png, { background: '#646464' });
    expect(pixel(onGrey, 1, 0)).toEqual(f(100, 100, 100));
    // 0.2 * 255 + 0.8 * 100 = 131; 0.8 * 100 = 80
    expectPixelClose(pixel(onGrey, 2, 0), f(131, 80, 80), STEP);
  });

  it('grey PNG and grey JPEG become three equal channels', async () => {
    const grey = Buffer.from([0, 50, 100, 150, 200, 255]);
    const png = await sharp(grey, { raw: { width: 3, height: 2, channels: 1 } }).toColourspace('b-w').png().toBuffer();
    expect((await sharp(png).metadata()).channels).toBe(1);
    const img = await readImage(png);
    expect(Array.from(img.data)).toEqual(Array.from(expected8([...grey].flatMap((v) => [v, v, v]))));

    const flat = Buffer.alloc(64, 90);
    const jpg = await sharp(flat, { raw: { width: 8, height: 8, channels: 1 } }).toColourspace('b-w').jpeg().toBuffer();
    expect((await sharp(jpg).metadata()).channels).toBe(1);
    const fromJpeg = await readImage(jpg);
    for (let p = 0; p < 64; p++) {
      expect(fromJpeg.data[p * 3]).toBe(fromJpeg.data[p * 3 + 1]);
      expect(fromJpeg.data[p * 3]).toBe(fromJpeg.data[p * 3 + 2]);
      expect(Math.abs(fromJpeg.data[p * 3] - (90 / 127.5 - 1))).toBeLessThanOrEqual(STEP);
    }
  });

  it('CMYK JPEG becomes RGB close to the source colour', async () => {
    // sRGB -> CMYK -> sRGB goes through libvips's built-in CMYK profile both
    // ways; colours inside the print gamut come back within a few percent.
    const colours = [
      [180, 120, 90],
      [90, 140, 200],
      [220, 200, 60],
    ];
    for (const [r, g, b] of colours) {
      const cmyk = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r, g, b } } })
        .toColourspace('cmyk')
        .jpeg({ quality: 95 })
        .toBuffer();
      const meta = await sharp(cmyk).metadata();
      expect([meta.space, meta.channels]).toEqual(['cmyk', 4]);
      const img = await readImage(cmyk);
      expect(img.data.length).toBe(8 * 8 * 3);
      expectPixelClose(pixel(img, 4, 4), f(r, g, b), 24 * STEP);
    }
  });
});

describe('readImage: EXIF orientation', () => {
  // Stored 16 wide x 8 tall: left half red, right half blue, top-left 4 x 4 green.
  const stored = (() => {
    const raw = Buffer.alloc(16 * 8 * 3);
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 16; x++) raw.set(x < 4 && y < 4 ? [0, 255, 0] : x < 8 ? [255, 0, 0] : [0, 0, 255], (y * 16 + x) * 3);
    }
    return raw;
  })();
  const storedImage = (): Sharp => sharp(stored, { raw: { width: 16, height: 8, channels: 3 } });

  it('orientation 6 (rotate 90 degrees clockwise) turns 16 x 8 into 8 x 16 (PNG eXIf, exact)', async () => {
    const png = await storedImage().png().withMetadata({ orientation: 6 }).toBuffer();
    expect((await sharp(png).metadata()).orientation).toBe(6);
    const img = await readImage(png);
    expect([img.width, img.height, img.originalWidth, img.originalHeight]).toEqual([8, 16, 8, 16]);
    // Clockwise: the stored left column becomes the top row, the stored top-left corner the top-right corner.
    expect(pixel(img, 7, 0)).toEqual(f(0, 255, 0));
    expect(pixel(img, 4, 3)).toEqual(f(0, 255, 0));
    expect(pixel(img, 0, 0)).toEqual(f(255, 0, 0));
    expect(pixel(img, 3, 7)).toEqual(f(255, 0, 0));
    expect(pixel(img, 0, 15)).toEqual(f(0, 0, 255));
  });

  it('orientation 6 in a JPEG, then a resize: the size applies to the upright image', async () => {
    const jpg = await storedImage().jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).withMetadata({ orientation: 6 }).toBuffer();
    const img = await readImage(jpg, { size: { width: 4, height: 8 }, kernel: 'nearest' });
    expect([img.width, img.height, img.originalWidth, img.originalHeight]).toEqual([4, 8, 8, 16]);
    expectPixelClose(pixel(img, 3, 0), f(0, 255, 0), 12 * STEP);
    expectPixelClose(pixel(img, 0, 0), f(255, 0, 0), 12 * STEP);
    expectPixelClose(pixel(img, 0, 7), f(0, 0, 255), 12 * STEP);
  });
});

describe('readImage: resize geometry', () => {
  // 40 x 20 in four vertical bands of 10 columns: green, red, blue, yellow.
  const BANDS = [
    [0, 255, 0],
    [255, 0, 0],
    [0, 0, 255],
    [255, 255, 0],
  ];
  const bands = (() => {
    const raw = Buffer.alloc(40 * 20 * 3);
    for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) raw.set(BANDS[Math.floor(x / 10)], (y * 40 + x) * 3);
    return raw;
  })();
  let png: Buffer;
  beforeAll(async () => {
    png = await sharp(bands, { raw: { width: 40, height: 20, channels: 3 } }).png().toBuffer();
  });

  it("fit 'crop' scales to cover and cuts the overflow evenly from both sides", async () => {
    // 40 x 20 -> 20 x 10 covers 10 x 10; the middle 10 columns are the red and blue bands.
    const img = await readImage(png, { size: 10, fit: 'crop', kernel: 'nearest' });
    expect([img.width, img.height, img.originalWidth, img.originalHeight]).toEqual([10, 10, 40, 20]);
    for (let y = 0; y < 10; y++) {
      for (let x = 0; x < 10; x++) expect(pixel(img, x, y)).toEqual(f(...(BANDS[x < 5 ? 1 : 2] as [number, number, number])));
    }
  });

  it("fit 'pad' scales to fit and letterboxes with the background", async () => {
    // 40 x 20 -> 10 x 5, centred in 10 x 10: 2 rows above, 3 below (the odd row goes to the bottom).
    const img = await readImage(png, { size: 10, fit: 'pad', kernel: 'nearest', background: [1, 2, 3] });
    expect([img.width, img.height]).toEqual([10, 10]);
    const rowsOfImage: number[] = [];
    for (let y = 0; y < 10; y++) {
      const isBackground = [0, 9].every((x) => pixel(img, x, y).every((v, k) => v === f(1, 2, 3)[k]));
      if (!isBackground) rowsOfImage.push(y);
    }
    expect(rowsOfImage).toEqual([2, 3, 4, 5, 6]);
    // Each band is 2.5 columns wide now; check the columns that lie inside one band.
    const inside: [number, number][] = [
      [0, 0],
      [1, 0],
      [3, 1],
      [6, 2],
      [8, 3],
      [9, 3],
    ];
    for (const y of rowsOfImage) {
      for (const [x, band] of inside) expect(pixel(img, x, y)).toEqual(f(...(BANDS[band] as [number, number, number])));
    }
  });

  it('a {width, height} size, and no size keeps the image as it is', async () => {
    const wide = await readImage(png, { size: { width: 8, height: 2 } });
    expect([wide.width, wide.height]).toEqual([8, 2]);
    const same = await readImage(png);
    expect([same.width, same.height]).toEqual([40, 20]);
    expect(Array.from(same.data)).toEqual(Array.from(expected8(bands)));
  });

  it('padding a 16-bit image uses the background at 16 bits (255 -> 65535)', async () => {
    const samples = new Uint16Array(4 * 2 * 3).fill(0); // 4 x 2 black
    const png16 = await sharp(samples, { raw: { width: 4, height: 2, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
    const img = await readImage(png16, { size: 4, fit: 'pad', kernel: 'nearest', background: '#ffffff' });
    expect(img.bitDepth).toBe(16);
    expect(pixel(img, 0, 0)).toEqual([1, 1, 1]); // padding
    expect(pixel(img, 0, 1)).toEqual([-1, -1, -1]); // image
    expect(pixel(img, 0, 3)).toEqual([1, 1, 1]);
  });

  it('downscaling a large JPEG (shrink-on-load) keeps the content in place', async () => {
    // 1024 x 512, left half dark, right half light: a 64 x 64 centre crop keeps the edge in the middle.
    const big = await sharp({ create: { width: 1024, height: 512, channels: 3, background: '#202020' } })
      .composite([{ input: { create: { width: 512, height: 512, channels: 3, background: '#e0e0e0' } }, left: 512, top: 0 }])
      .jpeg()
      .toBuffer();
    const img = await readImage(big, { size: 64 });
    expectPixelClose(pixel(img, 5, 32), f(32, 32, 32), 4 * STEP);
    expectPixelClose(pixel(img, 58, 32), f(224, 224, 224), 4 * STEP);
  });
});

describe('imageReader: options checked once, pixels into a given buffer', () => {
  test('reads as readImage does, into the buffer given, for the fast PNG path, sharp, and padding', async () => {
    const png = await gradient().png().toBuffer();
    const jpeg = await gradient().jpeg({ quality: 90 }).toBuffer();
    for (const [bytes, options] of [
      [png, { size: 32, fit: 'pad' as const }],
      [png, { size: 8 }],
      [jpeg, { size: 10, fit: 'crop' as const, kernel: 'linear' as const }],
    ] as const) {
      const expected = await readImage(bytes, { ...options, name: 'g' });
      const read = imageReader(options);
      const side = options.size;
      const buffer = new Float32Array(side * side * 3).fill(7); // stale values must all be overwritten
      const got = await read(bytes, 'g', buffer);
      expect(got.data).toBe(buffer);
      expect(Array.from(got.data)).toEqual(Array.from(expected.data));
      expect({ ...got, data: null }).toEqual({ ...expected, data: null });
      const fresh = await read(bytes); // without a buffer: a new array, the default name
      expect(Array.from(fresh.data)).toEqual(Array.from(expected.data));
      expect(fresh.source).toBe(`<buffer of ${bytes.length} bytes>`);
    }
  });

  test('a buffer of the wrong length or type, and bad options, are refused naming them', async () => {
    const png = await gradient().png().toBuffer();
    const read = imageReader({ size: 4 });
    await expect(read(png, 'g', new Float32Array(47))).rejects.toThrow('Expected a Float32Array of 48 values (4 x 4 x 3) for into but received one of 47');
    await expect(read(png, 'g', new Float64Array(48) as unknown as Float32Array)).rejects.toThrow(/for into/);
    expect(() => imageReader({ size: 0 })).toThrow(/size/);
    expect(() => imageReader({ name: 'x' } as never)).toThrow(/Unknown option "name" for imageReader/);
  });
});
