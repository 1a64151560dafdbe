/**
 * Bad input to readImage: each case gives a VtokError with a stable code and
 * a message that names the file and the reason.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import type { Sharp } from 'sharp';
import { VtokError } from '../../src/core/errors';
import { DEFAULT_MAX_PIXELS, readImage } from '../../src/io/image';
import { pngChunk } from '../helpers/png-chunk';

/** Awaits `promise`, expects a VtokError with `code`, and returns its message. */
async function failure(promise: Promise<unknown>, code: VtokError['code']): Promise<string> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VtokError);
  expect((err as VtokError).code).toBe(code);
  return (err as VtokError).message;
}

/**
 * A decompression bomb made cheaply: a valid PNG header that declares
 * width x height RGB pixels, followed by a little compressed data. Nothing
 * of the declared size is ever allocated.
 */
function bombPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(4096))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

let dir: string;
let png: Buffer;
let jpeg: Buffer;
let webp: Buffer;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-image-errors-'));
  const noise = Buffer.alloc(64 * 64 * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919) % 251;
  const img = (): Sharp => sharp(noise, { raw: { width: 64, height: 64, channels: 3 } });
  png = await img().png().toBuffer();
  jpeg = await img().jpeg().toBuffer();
  webp = await img().webp().toBuffer();
});
afterAll(async () => {
  await fsp.chmod(dir, 0o700).catch(() => undefined);
  await fsp.rm(dir, { recursive: true, force: true });
});

async function save(name: string, bytes: Buffer | string): Promise<string> {
  const file = path.join(dir, name);
  await fsp.writeFile(file, bytes);
  return file;
}

describe('readImage: bad files', () => {
  it('a missing file is FILE_NOT_FOUND', async () => {
    const file = path.join(dir, 'nope.png');
    expect(await failure(readImage(file), 'FILE_NOT_FOUND')).toBe(`Could not read ${file}: no such file`);
    const under = path.join(dir, 'no-folder', 'x.png');
    expect(await failure(readImage(under), 'FILE_NOT_FOUND')).toBe(`Could not read ${under}: no such file`);
  });

  it('a directory is IO', async () => {
    const sub = path.join(dir, 'a-folder.png');
    await fsp.mkdir(sub);
    expect(await failure(readImage(sub), 'IO')).toBe(`Could not read ${sub}: it is a directory, not an image file`);
  });

  const asRoot = process.getuid?.() === 0;
  (asRoot ? it.skip : it)('an unreadable file is IO (skipped as root: root reads everything)', async () => {
    const file = await save('locked.png', png);
    await fsp.chmod(file, 0o000);
    expect(await failure(readImage(file), 'IO')).toBe(`Could not read ${file}: permission denied`);
  });

  it('a zero-byte file is IMAGE_DECODE', async () => {
    const file = await save('empty.jpg', Buffer.alloc(0));
    expect(await failure(readImage(file), 'IMAGE_DECODE')).toBe(`Could not decode ${file}: the file is empty (0 bytes)`);
  });

  it('a file that is not an image is IMAGE_DECODE, with its first bytes', async () => {
    const file = await save('notes.png', 'hello, this is text\n');
    expect(await failure(readImage(file), 'IMAGE_DECODE')).toBe(
      `Could not decode ${file}: not an image in a supported format (the file starts with bytes 68 65 6c 6c 6f 2c 20 74)`,
    );
  });

  it.each([
    ['PNG', () => png],
    ['JPEG', () => jpeg],
    ['WebP', () => webp],
  ])('a truncated %s is IMAGE_DECODE', async (name, bytes) => {
    const whole = bytes();
    const file = await save(`cut.${name.toLowerCase()}`, whole.subarray(0, whole.length >> 1));
    const message = await failure(readImage(file), 'IMAGE_DECODE');
    expect(message.startsWith(`Could not decode ${file}: the image data is truncated or corrupt (`)).toBe(true);
  });

  it('a truncated JPEG is still an error with failOn "truncated", and decodes with failOn "none"', async () => {
    const cut = jpeg.subarray(0, jpeg.length >> 1);
    await failure(readImage(cut, { failOn: 'truncated' }), 'IMAGE_DECODE');
    const partial = await readImage(cut, { failOn: 'none' });
    expect([partial.width, partial.height]).toEqual([64, 64]);
  });

  it('a 50,000 x 50,000 decompression bomb is IMAGE_TOO_LARGE before any pixel is decoded', async () => {
    const bomb = bombPng(50000, 50000);
    expect(bomb.length).toBeLessThan(200);
    const file = await save('bomb.png', bomb);
    expect(await failure(readImage(file), 'IMAGE_TOO_LARGE')).toBe(
      `Could not decode ${file}: it declares 50000 x 50000 = 2500000000 pixels, more than the limit of 268402689 pixels (option maxPixels)`,
    );
    expect(DEFAULT_MAX_PIXELS).toBe(16383 * 16383);
  });

  it('maxPixels sets the limit', async () => {
    const message = await failure(readImage(png, { maxPixels: 4095, name: 'noise.png' }), 'IMAGE_TOO_LARGE');
    expect(message).toBe('Could not decode noise.png: it declares 64 x 64 = 4096 pixels, more than the limit of 4095 pixels (option maxPixels)');
    expect((await readImage(png, { maxPixels: 4096 })).width).toBe(64);
  });

  it('a Buffer input is named by its size in messages (or by the name option)', async () => {
    const bomb = bombPng(20000, 20000);
    expect(await failure(readImage(bomb), 'IMAGE_TOO_LARGE')).toBe(
      `Could not decode <buffer of ${bomb.length} bytes>: it declares 20000 x 20000 = 400000000 pixels, more than the limit of 268402689 pixels (option maxPixels)`,
    );
    expect(await failure(readImage(Buffer.from('GIF8'), { name: 'upload #3' }), 'IMAGE_DECODE')).toMatch(/^Could not decode upload #3: /);
  });

  it('an SVG (which sharp could render) is refused: vtok reads raster photos only', async () => {
    const file = await save('icon.svg', '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>');
    expect(await failure(readImage(file), 'IMAGE_DECODE')).toBe(
      `Could not decode ${file}: svg images are not supported (supported: jpeg, png, webp, tiff, gif, avif/heif)`,
    );
  });

  it('errors carry the file as their subject', async () => {
    const file = path.join(dir, 'nope2.png');
    const err = await readImage(file).catch((e: VtokError) => e);
    expect((err as VtokError).subject).toBe(file);
  });
});

describe('readImage: bad options', () => {
  it.each([
    [{ size: 0 }, 'Expected integer between 1 and 65535 for size but received 0 of type number'],
    [{ size: 2.5 }, 'Expected integer between 1 and 65535 for size but received 2.5 of type number'],
    [{ size: { width: 8, height: -1 } }, 'Expected integer between 1 and 65535 for size.height but received -1 of type number'],
    [{ size: '256' }, 'Expected a positive integer or {width, height} for size but received "256" of type string'],
    [{ fit: 'stretch' }, 'Expected one of "crop", "pad" for fit but received "stretch" of type string'],
    [{ kernel: 'box' }, 'Expected one of "nearest", "linear", "cubic", "mitchell", "lanczos2", "lanczos3" for kernel but received "box" of type string'],
    [{ maxPixels: 0 }, 'Expected integer between 1 and 9007199254740991 for maxPixels but received 0 of type number'],
    [{ failOn: 'never' }, 'Expected one of "none", "truncated", "error", "warning" for failOn but received "never" of type string'],
    [
      { background: '#12' },
      'Expected a colour as "#rrggbb", "#rgb", [r, g, b] or {r, g, b} with integers 0-255 for background but received "#12" of type string',
    ],
    [
      { background: [0, 0, 256] },
      'Expected a colour as "#rrggbb", "#rgb", [r, g, b] or {r, g, b} with integers 0-255 for background but received an array of length 3',
    ],
    [
      { resize: 256 },
      'Unknown option "resize" for readImage; known options are size, fit, background, kernel, maxPixels, failOn, name',
    ],
  ])('%j is INVALID_OPTION', async (options, message) => {
    expect(await failure(readImage(png, options as never), 'INVALID_OPTION')).toBe(message);
  });

  it('an input that is neither a path nor a Buffer is INVALID_OPTION', async () => {
    expect(await failure(readImage(42 as never), 'INVALID_OPTION')).toBe(
      'Expected a file path or a Buffer of encoded image bytes for input but received 42 of type number',
    );
  });

  it('accepts every colour form', async () => {
    const rgba = Buffer.from([0, 0, 0, 0]);
    const clear = await sharp(rgba, { raw: { width: 1, height: 1, channels: 4 } }).png().toBuffer();
    const want = [10, 20, 30].map((v) => Math.fround(v / 127.5 - 1));
    for (const background of ['#0a141e', [10, 20, 30] as const, { r: 10, g: 20, b: 30 }]) {
      expect(Array.from((await readImage(clear, { background })).data)).toEqual(want);
    }
    expect(Array.from((await readImage(clear, { background: '#fff' })).data)).toEqual([1, 1, 1]);
  });
});
