/**
 * The fast PNG path (src/io/png-fast.ts) against sharp 0.35 / libvips 8.18,
 * which is the reference: for every file it accepts, decodePngFast must
 * return exactly the bytes, channel count and size of readImage's sharp
 * pipeline; everything else must return undefined (then readImage uses
 * sharp). Files come from sharp (every colour type) or are built byte by byte
 * here (every row filter, tRNS, odd chunks, damage).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { readImage } from '../../src/io/image';
import { decodePngFast, MAX_FAST_PIXELS, type PngFastOptions } from '../../src/io/png-fast';
import { pngChunk } from '../helpers/png-chunk';

type Target = { width: number; height: number } | undefined;

/** Seeded pseudo-random bytes (mulberry32). */
function randomBytes(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    out[i] = (t ^ (t >>> 14)) & 255;
  }
  return out;
}

/** Samples that mix smooth ramps with noise and some hard alpha values, so both rounding and clipping show. */
function testSamples(width: number, height: number, bands: number, seed: number): Buffer {
  const noise = randomBytes(width * height * bands, seed);
  const out = Buffer.alloc(width * height * bands);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let z = 0; z < bands; z++) {
        const i = (y * width + x) * bands + z;
        out[i] = (x + y) % 3 === 0 ? noise[i] : (x * 37 + y * 11 + z * 80 + (noise[i] & 15)) & 255;
        if (z === 3 || (bands === 2 && z === 1)) out[i] = [0, 255, noise[i], 1, 254][(x * 7 + y) % 5];
      }
    }
  }
  return out;
}

type Kind = 'grey' | 'grey+alpha' | 'rgb' | 'rgba' | 'palette' | 'palette+alpha';
const KINDS: Kind[] = ['grey', 'grey+alpha', 'rgb', 'rgba', 'palette', 'palette+alpha'];
/** PNG colour type each kind must be written as (checked, so the cases cover what they claim). */
const COLOUR_TYPE: Record<Kind, number> = { grey: 0, 'grey+alpha': 4, rgb: 2, rgba: 6, palette: 3, 'palette+alpha': 3 };

async function sharpPng(kind: Kind, width: number, height: number, seed: number): Promise<Buffer> {
  const bands = kind === 'grey' ? 1 : kind === 'grey+alpha' ? 2 : kind === 'rgb' || kind === 'palette' ? 3 : 4;
  let p = sharp(testSamples(width, height, bands, seed), { raw: { width, height, channels: bands as 1 | 2 | 3 | 4 } });
  if (bands <= 2) p = p.toColourspace('b-w');
  const png = await p.png({ palette: kind.startsWith('palette'), colours: 64 }).toBuffer();
  expect(png[25]).toBe(COLOUR_TYPE[kind]);
  return png;
}

/** readImage's sharp pipeline, as in decodePixels. */
async function reference(bytes: Buffer, target: Target, fit: 'crop' | 'pad', kernel = 'lanczos3') {
  let p = sharp(bytes, { autoOrient: true });
  if (target) {
    p = p.resize({ ...target, fit: fit === 'crop' ? 'cover' : 'inside', position: 'centre', kernel: kernel as 'lanczos3' });
  }
  return p.toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
}

/** The fast path's result must equal sharp's exactly. */
async function expectIdentical(bytes: Buffer, target: Target, fit: 'crop' | 'pad', kernel = 'lanczos3', rowTies = false): Promise<void> {
  const fast = decodePngFast(bytes, { target, fit, kernel, alphaResize: true, rowTies });
  expect(fast).toBeDefined();
  const ref = await reference(bytes, target, fit, kernel);
  expect([fast?.width, fast?.height, fast?.channels]).toEqual([ref.info.width, ref.info.height, ref.info.channels]);
  expect(Buffer.from((fast as { samples: Uint8Array }).samples).equals(ref.data)).toBe(true);
}

/** A PNG file from unfiltered rows, each row written with filter `filterOf(y)` (0-4). */
function buildPng(o: {
  width: number;
  height: number;
  colourType: number;
  rows: Buffer; // [height, width * bpp], unfiltered
  bpp: number;
  filterOf?: (y: number) => number;
  before?: Buffer[]; // chunks between IHDR and IDAT
  after?: Buffer[]; // chunks between IDAT and IEND
  depth?: number;
  interlace?: number;
}): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(o.width, 0);
  ihdr.writeUInt32BE(o.height, 4);
  ihdr[8] = o.depth ?? 8;
  ihdr[9] = o.colourType;
  ihdr[12] = o.interlace ?? 0;
  const stride = o.rows.length / o.height;
  const filtered = Buffer.alloc(o.height * (stride + 1));
  for (let y = 0; y < o.height; y++) {
    const f = o.filterOf ? o.filterOf(y) : 0;
    filtered[y * (stride + 1)] = f;
    for (let i = 0; i < stride; i++) {
      const raw = o.rows[y * stride + i];
      const a = i >= o.bpp ? o.rows[y * stride + i - o.bpp] : 0;
      const b = y > 0 ? o.rows[(y - 1) * stride + i] : 0;
      const c = i >= o.bpp && y > 0 ? o.rows[(y - 1) * stride + i - o.bpp] : 0;
      let pred = 0;
      if (f === 1) pred = a;
      else if (f === 2) pred = b;
      else if (f === 3) pred = (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c;
        const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
        pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      filtered[y * (stride + 1) + 1 + i] = (raw - pred) & 255;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    ...(o.before ?? []),
    pngChunk('IDAT', zlib.deflateSync(filtered)),
    ...(o.after ?? []),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

const RGB_ROWS = testSamples(13, 9, 3, 5);
const rgbPng = (extra: Partial<Parameters<typeof buildPng>[0]> = {}): Buffer =>
  buildPng({ width: 13, height: 9, colourType: 2, rows: RGB_ROWS, bpp: 3, filterOf: (y) => y % 5, ...extra });

describe('decodePngFast: same bytes as sharp', () => {
  const sizes: [number, number][] = [
    [7, 5],
    [28, 28],
    [13, 40],
    [5, 5],
    [20, 20],
  ];
  const targets: [string, Target, 'crop' | 'pad'][] = [
    ['own size', undefined, 'pad'],
    ['32 pad', { width: 32, height: 32 }, 'pad'],
    ['32 crop', { width: 32, height: 32 }, 'crop'],
    ['64 pad', { width: 64, height: 64 }, 'pad'],
    ['45 x 32 pad', { width: 45, height: 32 }, 'pad'],
    ['45 x 32 crop', { width: 45, height: 32 }, 'crop'],
  ];

  it.each(KINDS)('%s PNGs from sharp, several sizes and targets (28->32, 5->32, 20->64, non-square)', async (kind) => {
    let down = 0;
    for (const [w, h] of sizes) {
      const png = await sharpPng(kind, w, h, w * 100 + h);
      for (const [, target, fit] of targets) {
        await expectIdentical(png, target, fit);
        if (target && (fit === 'pad' ? Math.max(w / target.width, h / target.height) : Math.min(w / target.width, h / target.height)) > 1) down++;
      }
    }
    expect(down).toBe(2); // 13 x 40 at 32 pad and at 45 x 32 pad are downscales
  });

  it('a crop without resize (scale 1 on one axis) cuts the centre like sharp', async () => {
    const png = await sharpPng('rgb', 32, 41, 3);
    await expectIdentical(png, { width: 32, height: 32 }, 'crop');
    await expectIdentical(png, { width: 32, height: 16 }, 'pad'); // a downscale by 41 / 16
  });

  it('an upsize cropped on the left (150 x 105 -> 128 cover) steps x from the crop edge like libvips', async () => {
    // 105 -> 128 scales by 1.219...: x, stepped by repeated addition from 0,
    // drifts across table boundaries by column 28; libvips starts at 28.
    for (const kind of ['rgb', 'rgba'] as Kind[]) {
      const png = await sharpPng(kind, 150, 105, 11);
      await expectIdentical(png, { width: 128, height: 128 }, 'crop', 'lanczos3', true);
      await expectIdentical(png, { width: 256, height: 256 }, 'crop', 'lanczos3', true);
    }
  });

  it('an upsize whose rows fall on 1/64 boundaries (150 x 151 -> 256 x 258) rounds y like libvips', async () => {
    // scale 256 / 150: row y samples at y * 75 / 128, exactly on a table
    // boundary in real numbers, so the floating-point rounding decides.
    for (const kind of ['rgb', 'grey'] as Kind[]) {
      const png = await sharpPng(kind, 150, 151, 12);
      await expectIdentical(png, { width: 256, height: 258 }, 'pad', 'lanczos3', true);
      await expectIdentical(png, { width: 256, height: 256 }, 'crop', 'lanczos3', true);
    }
  });

  // Downscales: vips_reducev then vips_reduceh (see resizeDown).
  const downs: [number, number, number, number][] = [
    [256, 256, 128, 128], // the photo crops' read: exactly 2x
    [64, 64, 32, 32],
    [100, 100, 37, 37],
    [300, 200, 128, 128], // by 1.5625 with crop, 2.34 with pad
    [45, 70, 40, 40],
  ];
  it.each(KINDS)('%s PNGs downscaled like sharp (256->128, 64->32, 100->37, 300 x 200->128, 45 x 70->40), both fits', async (kind) => {
    for (const [w, h, W, H] of downs) {
      const png = await sharpPng(kind, w, h, w + h);
      for (const fit of ['crop', 'pad'] as const) await expectIdentical(png, { width: W, height: H }, fit);
    }
  });

  it.each(['lanczos2', 'cubic', 'mitchell'])('kernel %s downscales like sharp', async (kernel) => {
    for (const kind of ['grey', 'rgb', 'rgba'] as Kind[]) {
      const png = await sharpPng(kind, 100, 64, 4);
      await expectIdentical(png, { width: 37, height: 37 }, 'crop', kernel);
      await expectIdentical(png, { width: 50, height: 50 }, 'pad', kernel);
    }
  });

  it('downscales up to the box-shrink threshold (about 4x) like sharp; from there on sharp', async () => {
    const png = await sharpPng('rgb', 100, 100, 6);
    await expectIdentical(png, { width: 26, height: 26 }, 'pad'); // 100 / 26 = 3.85: one reduce pass
    // 100 / 25 = 4: libvips box-shrinks by 2 first (vips_resize's gap 2)
    expect(decodePngFast(png, { target: { width: 25, height: 25 }, fit: 'pad', kernel: 'lanczos3' })).toBeUndefined();
  });

  const photoDir = path.resolve(__dirname, '../../data/photos/test');
  (existsSync(photoDir) ? it : it.skip)('20 photo crops of data/photos/test at 128 crop and at their own 256 like sharp', async () => {
    const names = readdirSync(photoDir)
      .filter((f) => f.endsWith('.png'))
      .sort()
      .slice(0, 20);
    expect(names.length).toBe(20);
    for (const name of names) {
      const png = readFileSync(path.join(photoDir, name));
      await expectIdentical(png, { width: 128, height: 128 }, 'crop', 'lanczos3', true);
      await expectIdentical(png, { width: 256, height: 256 }, 'crop', 'lanczos3', true);
    }
  });

  it.each(['lanczos2', 'cubic', 'mitchell'])('kernel %s upsizes like sharp (bicubic)', async (kernel) => {
    for (const kind of ['grey', 'rgb', 'rgba'] as Kind[]) {
      await expectIdentical(await sharpPng(kind, 11, 7, 9), { width: 40, height: 40 }, 'pad', kernel);
    }
  });

  it('every row filter (0-4), hand-built', async () => {
    const ga = testSamples(9, 11, 2, 7);
    // Few distinct values make many Paeth ties (pa = pb, pb = pc), where the order of the tests matters.
    const ties = Buffer.from(randomBytes(16 * 16 * 3, 3).map((v) => v & 7));
    for (const png of [
      buildPng({ width: 16, height: 16, colourType: 2, rows: ties, bpp: 3, filterOf: () => 4 }),
      buildPng({ width: 16, height: 16, colourType: 2, rows: ties, bpp: 3, filterOf: (y) => (y % 2 ? 3 : 1) }),
      rgbPng(),
      buildPng({ width: 9, height: 11, colourType: 4, rows: ga, bpp: 2, filterOf: (y) => (y * 3) % 5 }),
      buildPng({ width: 9, height: 11, colourType: 0, rows: testSamples(9, 11, 1, 8), bpp: 1, filterOf: (y) => 4 - (y % 5) }),
    ]) {
      await expectIdentical(png, undefined, 'pad');
      await expectIdentical(png, { width: 32, height: 32 }, 'pad');
      await expectIdentical(png, { width: 32, height: 32 }, 'crop');
    }
  });

  it('tRNS on grey, RGB and palette images becomes alpha like in libvips', async () => {
    const grey = Buffer.from(Array.from({ length: 6 * 4 }, (_, i) => [10, 200, 77][i % 3]));
    const rgb = Buffer.from(Array.from({ length: 6 * 4 * 3 }, (_, i) => [1, 2, 3, 9, 9, 9][i % 6]));
    const pngs = [
      buildPng({ width: 6, height: 4, colourType: 0, rows: grey, bpp: 1, before: [pngChunk('tRNS', Buffer.from([0, 200]))] }),
      buildPng({ width: 6, height: 4, colourType: 2, rows: rgb, bpp: 3, before: [pngChunk('tRNS', Buffer.from([0, 1, 0, 2, 0, 3]))] }),
      buildPng({
        width: 6,
        height: 4,
        colourType: 3,
        rows: Buffer.from(Array.from({ length: 24 }, (_, i) => i % 4)),
        bpp: 1,
        before: [pngChunk('PLTE', Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 90, 90, 90])), pngChunk('tRNS', Buffer.from([0, 128]))],
      }),
    ];
    for (const png of pngs) {
      const own = decodePngFast(png, { target: undefined, fit: 'pad', kernel: 'lanczos3' });
      expect(own?.channels).toBe(4);
      await expectIdentical(png, undefined, 'pad');
      await expectIdentical(png, { width: 32, height: 32 }, 'pad');
    }
    // Hand-worked: the grey key 200 is transparent, the rest opaque; grey repeated as R, G, B.
    const own = decodePngFast(pngs[0], { target: undefined, fit: 'pad', kernel: 'lanczos3' });
    expect([...(own as { samples: Uint8Array }).samples.subarray(0, 12)]).toEqual([10, 10, 10, 255, 200, 200, 200, 0, 77, 77, 77, 255]);
  });

  it('seeded random sizes, kinds, targets and fits', async () => {
    const r = randomBytes(400, 42);
    let checked = 0;
    for (let k = 0; k < 40; k++) {
      const w = 1 + (r[k * 8] % 40);
      const h = 1 + (r[k * 8 + 1] % 40);
      const kind = KINDS[r[k * 8 + 2] % KINDS.length];
      const target = { width: w + (r[k * 8 + 3] % 60), height: h + (r[k * 8 + 4] % 60) };
      const fit = r[k * 8 + 5] % 2 ? 'crop' : 'pad';
      const png = await sharpPng(kind, w, h, k);
      await expectIdentical(png, target, fit);
      checked++;
    }
    expect(checked).toBe(40);
  });
});

describe('decodePngFast: what it leaves to sharp', () => {
  const opts: PngFastOptions = { target: { width: 32, height: 32 }, fit: 'pad', kernel: 'lanczos3' };

  it('accepts the plain file the cases below are variations of', () => {
    expect(decodePngFast(rgbPng(), opts)).toBeDefined();
    expect(decodePngFast(rgbPng({ before: [pngChunk('pHYs', Buffer.alloc(9))] }), opts)).toBeDefined();
  });

  it.each([
    ['gAMA', pngChunk('gAMA', Buffer.from([0, 0, 0xb1, 0x8f]))],
    ['sRGB', pngChunk('sRGB', Buffer.from([0]))],
    ['cHRM', pngChunk('cHRM', Buffer.alloc(32))],
    ['iCCP', pngChunk('iCCP', Buffer.concat([Buffer.from('x\0\0'), zlib.deflateSync(Buffer.alloc(10))]))],
    ['cICP', pngChunk('cICP', Buffer.from([1, 13, 0, 1]))],
    ['sBIT', pngChunk('sBIT', Buffer.from([5, 6, 5]))],
    ['eXIf', pngChunk('eXIf', Buffer.from('MM\0*\0\0\0\x08\0\0', 'latin1'))],
    ['tEXt', pngChunk('tEXt', Buffer.from('Comment\0hi', 'latin1'))],
    ['an unknown chunk', pngChunk('vpAg', Buffer.alloc(9))],
  ])('a file with %s', (_name, chunk) => {
    expect(decodePngFast(rgbPng({ before: [chunk] }), opts)).toBeUndefined();
  });

  it('interlaced, 16-bit and 1-bit files', async () => {
    const rgb = sharp(testSamples(20, 20, 3, 1), { raw: { width: 20, height: 20, channels: 3 } });
    const interlaced = await rgb.clone().png({ progressive: true }).toBuffer();
    expect(interlaced[28]).toBe(1);
    const deep = await rgb.clone().toColourspace('rgb16').png().toBuffer();
    expect(deep[24]).toBe(16);
    const oneBit = buildPng({ width: 16, height: 2, colourType: 0, depth: 1, rows: Buffer.alloc(4, 0xa5), bpp: 1 });
    for (const png of [interlaced, deep, oneBit]) expect(decodePngFast(png, opts)).toBeUndefined();
    expect(decodePngFast(await rgb.clone().png().toBuffer(), opts)).toBeDefined();
  });

  it('more than MAX_FAST_PIXELS pixels', async () => {
    expect(MAX_FAST_PIXELS).toBe(65536);
    const big = await sharp({ create: { width: 257, height: 256, channels: 3, background: '#808080' } }).png().toBuffer();
    const edge = await sharp({ create: { width: 256, height: 256, channels: 3, background: '#808080' } }).png().toBuffer();
    expect(decodePngFast(big, { ...opts, target: undefined })).toBeUndefined();
    expect(decodePngFast(edge, { ...opts, target: undefined })).toBeDefined();
  });

  it('downscales by 4 or more, and the kernels nearest and linear', () => {
    const png = rgbPng(); // 13 x 9
    expect(decodePngFast(png, { ...opts, target: { width: 12, height: 12 } })).toBeDefined(); // by 13 / 12
    expect(decodePngFast(png, { ...opts, target: { width: 3, height: 3 } })).toBeUndefined(); // by 13 / 3
    expect(decodePngFast(png, { ...opts, kernel: 'nearest' })).toBeUndefined();
    expect(decodePngFast(png, { ...opts, kernel: 'linear' })).toBeUndefined();
    expect(decodePngFast(png, { ...opts, target: { width: 12, height: 12 }, kernel: 'linear' })).toBeUndefined();
  });

  it('damaged files: bad CRC, truncation, trailing bytes, bad filter, too much or too little data', () => {
    const good = rgbPng();
    const badCrc = Buffer.from(good);
    badCrc[40] ^= 1; // inside IDAT: the CRC no longer matches
    const badFilter = rgbPng({ filterOf: (y) => (y === 3 ? 5 : 0) });
    const ihdr = Buffer.from(good.subarray(16, 29));
    const tooMuch = Buffer.concat([
      good.subarray(0, 33),
      pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(9 * (13 * 3 + 1) + 1))),
      pngChunk('IEND', Buffer.alloc(0)),
    ]);
    const tooLittle = Buffer.concat([
      good.subarray(0, 33),
      pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(9 * (13 * 3 + 1) - 1))),
      pngChunk('IEND', Buffer.alloc(0)),
    ]);
    expect(ihdr.readUInt32BE(0)).toBe(13); // the IHDR body: the 33-byte prefix is signature + IHDR
    for (const png of [
      badCrc,
      good.subarray(0, good.length - 20), // cut inside IDAT
      good.subarray(0, good.length - 12), // no IEND
      Buffer.concat([good, Buffer.from([0])]), // a byte after IEND
      badFilter,
      tooMuch,
      tooLittle,
    ]) {
      expect(decodePngFast(png, opts)).toBeUndefined();
    }
  });

  it('a palette index past the end of PLTE', () => {
    const png = buildPng({
      width: 4,
      height: 1,
      colourType: 3,
      rows: Buffer.from([0, 1, 2, 1]),
      bpp: 1,
      before: [pngChunk('PLTE', Buffer.from([255, 0, 0, 0, 255, 0]))],
    });
    expect(decodePngFast(png, opts)).toBeUndefined();
  });
});

describe('readImage with the fast path', () => {
  const withDecoder = async <T>(decoder: string | undefined, fn: () => Promise<T>): Promise<T> => {
    const saved = process.env.VTOK_DECODER;
    if (decoder === undefined) delete process.env.VTOK_DECODER;
    else process.env.VTOK_DECODER = decoder;
    try {
      return await fn();
    } finally {
      if (saved === undefined) delete process.env.VTOK_DECODER;
      else process.env.VTOK_DECODER = saved;
    }
  };

  it('upsizes to 128 equal sharp for every input size, or fall back where a sample position is a table tie', async () => {
    const raw = Buffer.from(testSamples(127, 127, 3, 11));
    let fast = 0;
    for (let w = 5; w < 128; w++) {
      const png = await sharp(raw, { raw: { width: 127, height: 127, channels: 3 } }).extract({ left: 0, top: 0, width: w, height: w }).png().toBuffer();
      const out = decodePngFast(png, { target: { width: 128, height: 128 }, fit: 'pad', kernel: 'lanczos3' });
      if (out === undefined) continue;
      fast++;
      const ref = await reference(png, { width: 128, height: 128 }, 'pad');
      expect([w, Buffer.from(out.samples).equals(ref.data)]).toEqual([w, true]);
    }
    expect(fast).toBeGreaterThan(50); // sizes without row ties (e.g. every even one) still take the fast path
    // 59 -> 128 puts rows exactly between two table entries (59 * Y / 128 + 0.5 on an odd 1/128): sharp's job
    const tie = await sharp(raw, { raw: { width: 127, height: 127, channels: 3 } }).extract({ left: 0, top: 0, width: 59, height: 59 }).png().toBuffer();
    expect(decodePngFast(tie, { target: { width: 128, height: 128 }, fit: 'pad', kernel: 'lanczos3' })).toBeUndefined();
  });

  it('resizes images with alpha only when asked (alphaResize: real stamps did not match sharp)', async () => {
    const opts: PngFastOptions = { target: { width: 32, height: 32 }, fit: 'pad', kernel: 'lanczos3' };
    for (const kind of ['rgba', 'grey+alpha', 'palette+alpha'] as const) {
      const png = await sharpPng(kind, 28, 28, 7);
      expect(decodePngFast(png, opts)).toBeUndefined();
      expect(decodePngFast(png, { ...opts, alphaResize: true })).toBeDefined();
      expect(decodePngFast(png, { ...opts, target: undefined })).toBeDefined(); // no resize: no premultiplication
    }
    expect(decodePngFast(await sharpPng('rgb', 28, 28, 7), opts)).toBeDefined();
  });

  it('is checked against the libvips that sharp brings (else readImage would not use it)', () => {
    expect(sharp.versions.vips).toBe('8.18.7');
  });

  it('gives the same floats as VTOK_DECODER=sharp (padding and alpha compositing included)', async () => {
    const cases: [Buffer, Parameters<typeof readImage>[1]][] = [
      [await sharpPng('rgb', 28, 28, 1), { size: 32, fit: 'pad' }],
      [await sharpPng('rgba', 7, 5, 2), { size: 32, fit: 'pad', background: '#336699' }],
      [await sharpPng('grey+alpha', 13, 40, 3), { size: { width: 64, height: 128 }, fit: 'crop' }],
      [await sharpPng('palette', 20, 9, 4), { size: { width: 45, height: 32 }, fit: 'pad' }],
      [await sharpPng('grey', 9, 9, 5), {}],
    ];
    for (const [png, options] of cases) {
      expect(decodePngFast(png, { target: undefined, fit: 'pad', kernel: 'lanczos3' })).toBeDefined();
      const viaSharp = await withDecoder('sharp', () => readImage(png, options));
      const viaFast = await withDecoder(undefined, () => readImage(png, options));
      expect(viaFast).toEqual(viaSharp);
    }
  });

  it('a damaged file fails with the same error either way', async () => {
    const bad = Buffer.from(rgbPng());
    bad[40] ^= 1;
    const message = async (decoder: string | undefined): Promise<string> =>
      withDecoder(decoder, () => readImage(bad, { size: 32 }).then(() => 'decoded', (err: Error) => `${(err as { code?: string }).code}: ${err.message}`));
    const viaSharp = await message('sharp');
    expect(viaSharp).toMatch(/^IMAGE_DECODE: /);
    expect(await message(undefined)).toBe(viaSharp);
  });
});

describe('decodePngFast on real Fashion-MNIST files', () => {
  const fixture = path.resolve(__dirname, '../fixtures/images/fashion-mnist-train-00000.png');
  const dir = path.resolve(__dirname, '../../data/fashion-mnist/test');
  // data/ is not in git: the 200-file check runs where `npm run data` has been run.
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.png'))
        .sort()
        .slice(0, 200)
        .map((f) => path.join(dir, f))
    : [];

  it('the fixture at 32 x 32 pad and crop', async () => {
    const png = readFileSync(fixture);
    await expectIdentical(png, { width: 32, height: 32 }, 'pad');
    await expectIdentical(png, { width: 32, height: 32 }, 'crop');
  });

  (files.length > 0 ? it : it.skip)('200 files of data/fashion-mnist/test at 32 x 32 pad', async () => {
    for (const file of files) await expectIdentical(readFileSync(file), { width: 32, height: 32 }, 'pad');
  });
});
