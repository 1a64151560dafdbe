/**
 * parseImageHeader: exact headers of real and hand-built files, agreement with
 * sharp's metadata() on files sharp writes, and `undefined` (ask the decoder)
 * for every odd or cut file. The full agreement check over the datasets is
 * bench/header-agreement.ts.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import type { Sharp } from 'sharp';
import { crc32, exifOrientation, orientedSize, parseImageHeader, type ImageHeader } from '../../src/core/image-header';
import { pngChunk } from '../helpers/png-chunk';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'images');

const SIG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG from its parts: IHDR fields, then extra chunks before IDAT. */
function png(o: { width: number; height: number; depth?: number; colour?: number; interlace?: number; before?: Buffer[]; idat?: boolean; tail?: Buffer }): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(o.width, 0);
  ihdr.writeUInt32BE(o.height, 4);
  ihdr[8] = o.depth ?? 8;
  ihdr[9] = o.colour ?? 2;
  ihdr[12] = o.interlace ?? 0;
  return Buffer.concat([
    SIG,
    pngChunk('IHDR', ihdr),
    ...(o.before ?? []),
    ...(o.idat === false ? [] : [pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(64)))]),
    pngChunk('IEND', Buffer.alloc(0)),
    o.tail ?? Buffer.alloc(0),
  ]);
}

/** A TIFF-structured EXIF block with one IFD0 entry. */
function exif(le: boolean, entry: { tag: number; type: number; count: number; value: number }): Buffer {
  const b = Buffer.alloc(8 + 2 + 12 + 4);
  const w16 = (v: number, at: number): number => (le ? b.writeUInt16LE(v, at) : b.writeUInt16BE(v, at));
  const w32 = (v: number, at: number): number => (le ? b.writeUInt32LE(v, at) : b.writeUInt32BE(v, at));
  b.write(le ? 'II' : 'MM', 0, 'latin1');
  w16(42, 2);
  w32(8, 4);
  w16(1, 8);
  w16(entry.tag, 10);
  w16(entry.type, 12);
  w32(entry.count, 14);
  w16(entry.value, 18); // a SHORT sits in the first two bytes of the value field
  return b;
}

/** What sharp's metadata() says, in parseImageHeader's terms. */
async function sharpHeader(bytes: Buffer): Promise<ImageHeader & { upright: { width: number; height: number } }> {
  const m = await sharp(bytes).metadata();
  return {
    format: m.format as ImageHeader['format'],
    width: m.width,
    height: m.height,
    depth: m.depth as ImageHeader['depth'],
    orientation: m.orientation ?? 1,
    upright: m.autoOrient ?? { width: m.width, height: m.height },
  };
}

let noise: () => Sharp;
beforeAll(() => {
  const px = Buffer.alloc(40 * 24 * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 7919) % 251;
  noise = () => sharp(px, { raw: { width: 40, height: 24, channels: 3 } });
});

describe('crc32', () => {
  it('is PNG\'s CRC (the IEND chunk\'s CRC is AE 42 60 82 in every PNG)', () => {
    expect(crc32(Buffer.from('IEND', 'latin1'))).toBe(0xae426082);
    expect(crc32(Buffer.from('123456789', 'latin1'))).toBe(0xcbf43926); // the standard check value
  });
});

describe('parseImageHeader: PNG', () => {
  it('reads a real Fashion-MNIST file (28 x 28 RGB, with a pHYs chunk)', async () => {
    const bytes = await fsp.readFile(path.join(FIXTURES, 'fashion-mnist-train-00000.png'));
    expect(parseImageHeader(bytes)).toEqual({ format: 'png', width: 28, height: 28, depth: 'uchar', orientation: 1 });
  });

  it('reads hand-built headers: size, and 16 bits as ushort', () => {
    expect(parseImageHeader(png({ width: 300, height: 7 }))).toEqual({ format: 'png', width: 300, height: 7, depth: 'uchar', orientation: 1 });
    expect(parseImageHeader(png({ width: 5, height: 9, depth: 16, colour: 0 }))?.depth).toBe('ushort');
    expect(parseImageHeader(png({ width: 5, height: 9, depth: 16, colour: 6 }))?.depth).toBe('ushort');
    expect(parseImageHeader(png({ width: 5, height: 9, depth: 1, colour: 0 }))?.depth).toBe('uchar');
    const pal = png({ width: 5, height: 9, depth: 4, colour: 3, before: [pngChunk('PLTE', Buffer.alloc(6))] });
    expect(parseImageHeader(pal)?.depth).toBe('uchar');
    expect(parseImageHeader(png({ width: 5, height: 9, interlace: 1, before: [pngChunk('tEXt', Buffer.from('Comment\0hello', 'latin1'))] }))?.width).toBe(5);
  });

  it.each([
    ['an IHDR with a wrong CRC', () => { const b = png({ width: 8, height: 8 }); b[29] ^= 1; return b; }],
    ['bit depth 4 with RGB', () => png({ width: 8, height: 8, depth: 4, colour: 2 })],
    ['colour type 5', () => png({ width: 8, height: 8, colour: 5 })],
    ['interlace method 2', () => png({ width: 8, height: 8, interlace: 2 })],
    ['a zero width', () => png({ width: 0, height: 8 })],
    ['a side over 16383 (the decoder owns the limits)', () => png({ width: 50000, height: 50000 })],
    ['an eXIf chunk (an orientation)', () => png({ width: 8, height: 8, before: [pngChunk('eXIf', exif(false, { tag: 0x0112, type: 3, count: 1, value: 6 }))] })],
    ['a "Raw profile type exif" text chunk', () => png({ width: 8, height: 8, before: [pngChunk('zTXt', Buffer.from('Raw profile type exif\0\0x', 'latin1'))] })],
    ['no IDAT', () => png({ width: 8, height: 8, idat: false })],
    ['a palette image without PLTE', () => png({ width: 8, height: 8, colour: 3 })],
    ['bytes after IEND', () => png({ width: 8, height: 8, tail: Buffer.from([0]) })],
  ])('is undefined for %s', (_name, make) => {
    expect(parseImageHeader(make())).toBeUndefined();
  });

  it('is undefined for every cut-short PNG', async () => {
    const bytes = await fsp.readFile(path.join(FIXTURES, 'fashion-mnist-train-00000.png'));
    for (let n = 0; n < bytes.length; n++) expect(parseImageHeader(bytes.subarray(0, n))).toBeUndefined();
  });
});

describe('exifOrientation', () => {
  it('reads the orientation SHORT from IFD0, little and big endian', () => {
    for (let o = 1; o <= 8; o++) {
      expect(exifOrientation(exif(true, { tag: 0x0112, type: 3, count: 1, value: o }))).toBe(o);
      expect(exifOrientation(exif(false, { tag: 0x0112, type: 3, count: 1, value: o }))).toBe(o);
    }
  });

  it('is 1 without the tag, undefined when the tag or the block is malformed', () => {
    expect(exifOrientation(exif(true, { tag: 0x010f, type: 2, count: 4, value: 0 }))).toBe(1);
    expect(exifOrientation(exif(true, { tag: 0x0112, type: 3, count: 1, value: 9 }))).toBeUndefined();
    expect(exifOrientation(exif(true, { tag: 0x0112, type: 3, count: 1, value: 0 }))).toBeUndefined();
    expect(exifOrientation(exif(true, { tag: 0x0112, type: 4, count: 1, value: 6 }))).toBeUndefined();
    expect(exifOrientation(exif(true, { tag: 0x0112, type: 3, count: 2, value: 6 }))).toBeUndefined();
    const bad = exif(true, { tag: 0x0112, type: 3, count: 1, value: 6 });
    bad[2] = 43;
    expect(exifOrientation(bad)).toBeUndefined();
    expect(exifOrientation(exif(true, { tag: 0x0112, type: 3, count: 1, value: 6 }).subarray(0, 20))).toBeUndefined();
  });
});

describe('parseImageHeader agrees with sharp metadata() on files sharp writes', () => {
  it('JPEG with each EXIF orientation, progressive, grey and CMYK', async () => {
    const files: Buffer[] = [];
    for (let o = 1; o <= 8; o++) files.push(await noise().withMetadata({ orientation: o }).jpeg().toBuffer());
    files.push(await noise().jpeg({ progressive: true }).toBuffer(), await noise().greyscale().jpeg().toBuffer(), await noise().toColourspace('cmyk').jpeg().toBuffer());
    for (const [i, bytes] of files.entries()) {
      const h = parseImageHeader(bytes);
      const s = await sharpHeader(bytes);
      expect(h).toEqual({ format: s.format, width: s.width, height: s.height, depth: s.depth, orientation: s.orientation });
      expect(orientedSize(h as ImageHeader)).toEqual(s.upright);
      if (i < 8) expect(h?.orientation).toBe(i + 1);
    }
    expect(orientedSize(parseImageHeader(files[5]) as ImageHeader)).toEqual({ width: 24, height: 40 }); // orientation 6 turns it
  });

  it('WebP lossy, lossless and with alpha; GIF; PNG in 16 bits, grey, palette, interlaced', async () => {
    const files = [
      await noise().webp().toBuffer(),
      await noise().webp({ lossless: true }).toBuffer(),
      await noise().ensureAlpha(0.5).webp().toBuffer(),
      await noise().gif().toBuffer(),
      await noise().toColourspace('rgb16').png().toBuffer(),
      await noise().toColourspace('grey16').png().toBuffer(),
      await noise().greyscale().png().toBuffer(),
      await noise().png({ palette: true, colours: 4 }).toBuffer(),
      await noise().png({ progressive: true }).toBuffer(),
    ];
    const formats = [];
    for (const bytes of files) {
      const h = parseImageHeader(bytes);
      const s = await sharpHeader(bytes);
      expect(h).toEqual({ format: s.format, width: s.width, height: s.height, depth: s.depth, orientation: s.orientation });
      formats.push(`${h?.format} ${h?.depth}`);
    }
    expect(formats).toEqual(['webp uchar', 'webp uchar', 'webp uchar', 'gif uchar', 'png ushort', 'png ushort', 'png uchar', 'png uchar', 'png uchar']);
  });

  it('leaves to sharp: EXIF in PNG and WebP, TIFF, SVG, text, and cut JPEG, WebP and GIF files', async () => {
    const jpeg = await noise().jpeg().toBuffer();
    const webp = await noise().webp().toBuffer();
    const gif = await noise().gif().toBuffer();
    const cases = [
      await noise().withMetadata({ orientation: 6 }).png().toBuffer(),
      await noise().withMetadata({ orientation: 6 }).webp().toBuffer(),
      await noise().tiff().toBuffer(),
      Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'),
      Buffer.from('hello, this is text\n'),
      Buffer.from('GIF8'),
      jpeg.subarray(0, jpeg.length - 1),
      jpeg.subarray(0, jpeg.length >> 1),
      webp.subarray(0, webp.length - 1),
      gif.subarray(0, gif.length - 1),
    ];
    for (const bytes of cases) expect(parseImageHeader(bytes)).toBeUndefined();
    // Every strict prefix of the JPEG and the WebP too (they end with EOI / fill their RIFF size only when whole).
    for (let n = 0; n < jpeg.length; n += 7) expect(parseImageHeader(jpeg.subarray(0, n))).toBeUndefined();
    for (let n = 0; n < webp.length; n += 3) expect(parseImageHeader(webp.subarray(0, n))).toBeUndefined();
  });

  it('leaves odd JPEGs to sharp: 12-bit precision, two Exif segments', async () => {
    const jpeg = await noise().withMetadata({ orientation: 3 }).jpeg().toBuffer();
    // Find the SOF0 segment and claim 12-bit precision.
    const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
    const twelve = Buffer.from(jpeg);
    twelve[sof + 4] = 12;
    expect(parseImageHeader(twelve)).toBeUndefined();
    // A second copy of the Exif APP1 segment right after the first.
    const app1 = jpeg.indexOf(Buffer.from('Exif\0\0', 'latin1')) - 4;
    const len = jpeg.readUInt16BE(app1 + 2);
    const seg = jpeg.subarray(app1, app1 + 2 + len);
    const twice = Buffer.concat([jpeg.subarray(0, app1 + 2 + len), seg, jpeg.subarray(app1 + 2 + len)]);
    expect(parseImageHeader(jpeg)?.orientation).toBe(3);
    expect(parseImageHeader(twice)).toBeUndefined();
  });

  it('a GIF whose first frame lies outside the logical screen is left to sharp', async () => {
    const gif = Buffer.from(await noise().gif().toBuffer());
    expect(parseImageHeader(gif)).toMatchObject({ format: 'gif', width: 40, height: 24 });
    gif.writeUInt16LE(10, 6); // logical screen 10 wide, frame 40 wide
    expect(parseImageHeader(gif)).toBeUndefined();
  });
});
