/** toUint8, writePng and labelled image grids (with the built-in bitmap font). */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { VtokError } from '../../src/core/errors';
import { Rng } from '../../src/core/random';
import { readImage, renderImageGrid, toUint8, writeImageGrid, writePng } from '../../src/io/image';
import { GLYPH_HEIGHT, GLYPH_WIDTH, fitText, fontCharacters, glyphBitmap, measureText } from '../../src/io/image-font';

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-image-write-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/**
 * The samples stored in a PNG file, with the file's own channel count (sharp's
 * raw output turns grey into RGB, so grey samples are taken from channel 0).
 */
async function rawOf(file: string): Promise<{ data: Uint8Array; channels: number; width: number; height: number }> {
  const meta = await sharp(file).metadata();
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  if (meta.space !== 'b-w') return { data: new Uint8Array(data), channels: info.channels, width: info.width, height: info.height };
  const n = info.width * info.height;
  const out = new Uint8Array(n * meta.channels);
  for (let p = 0; p < n; p++) {
    out[p * meta.channels] = data[p * info.channels];
    if (meta.channels === 2) out[p * 2 + 1] = data[p * info.channels + 3];
  }
  return { data: out, channels: meta.channels, width: info.width, height: info.height };
}

describe('toUint8', () => {
  it("'[-1,1]': round((x + 1) * 127.5), clipped; NaN -> 0", () => {
    const x = new Float32Array([-1.5, -1, -0.999, 0, 0.5, 0.999, 1, 2, NaN]);
    // -0.999 -> 0.1275 -> 0; 0 -> 127.5 -> 128; 0.5 -> 191.25 -> 191; 0.999 -> 254.87 -> 255
    expect(Array.from(toUint8(x, '[-1,1]'))).toEqual([0, 0, 0, 128, 191, 255, 255, 255, 0]);
  });

  it("'[0,255]': round(x), clipped", () => {
    expect(Array.from(toUint8(new Float32Array([-3, 0.4, 0.5, 1.49, 254.6, 300, NaN]), '[0,255]'))).toEqual([0, 0, 1, 1, 255, 255, 0]);
  });

  it('inverts the read mapping v / 127.5 - 1 for every 8-bit value', () => {
    const all = Float32Array.from({ length: 256 }, (_, v) => v / 127.5 - 1);
    expect(Array.from(toUint8(all, '[-1,1]'))).toEqual(Array.from({ length: 256 }, (_, v) => v));
  });

  it('copies Uint8Array data, which must be [0,255]', () => {
    const bytes = new Uint8Array([1, 2, 3]);
    const out = toUint8(bytes, '[0,255]');
    expect(out).toEqual(bytes);
    expect(out).not.toBe(bytes);
    expect(() => toUint8(bytes, '[-1,1]')).toThrow('Expected "[0,255]" for Uint8Array data for range but received "[-1,1]" of type string');
    expect(() => toUint8(bytes, '0-1' as never)).toThrow('Expected one of "[-1,1]", "[0,255]" for range but received "0-1" of type string');
  });
});

describe('writePng', () => {
  it('round-trips [0,255] bytes exactly, for 1, 2, 3 and 4 channels', async () => {
    const rng = new Rng(7);
    for (const channels of [1, 2, 3, 4] as const) {
      const width = 13;
      const height = 7;
      const bytes = Uint8Array.from({ length: width * height * channels }, () => rng.int(256));
      const file = path.join(dir, `rt-${channels}.png`);
      await writePng(file, bytes, { width, height, channels });
      const back = await rawOf(file);
      expect([back.width, back.height, back.channels]).toEqual([width, height, channels]);
      expect(back.data).toEqual(bytes);
    }
  });

  it('float [-1,1] pixels written and read again are the same floats', async () => {
    const rng = new Rng(11);
    const width = 9;
    const height = 5;
    const x = Float32Array.from({ length: width * height * 3 }, () => rng.int(256) / 127.5 - 1);
    const file = path.join(dir, 'float.png');
    await writePng(file, x, { width, height }); // Float32Array: range defaults to [-1,1], channels to 3
    const img = await readImage(file);
    expect(img.data).toEqual(x);
  });

  it('float [0,255] pixels are rounded', async () => {
    const file = path.join(dir, 'f255.png');
    await writePng(file, new Float32Array([0.4, 10.5, 254.7]), { width: 1, height: 1, range: '[0,255]' });
    expect(Array.from((await rawOf(file)).data)).toEqual([0, 11, 255]);
  });

  it('replaces an existing file whole', async () => {
    const file = path.join(dir, 'replace.png');
    await writePng(file, new Uint8Array(3 * 4 * 4).fill(9), { width: 4, height: 4 });
    await writePng(file, new Uint8Array(3).fill(200), { width: 1, height: 1 });
    expect(Array.from((await rawOf(file)).data)).toEqual([200, 200, 200]);
  });

  it('a failed write leaves nothing behind', async () => {
    const box = await fsp.mkdtemp(path.join(dir, 'fail-'));
    const pixels = new Uint8Array(3 * 2 * 2).fill(1);
    // The target is a directory: the rename fails, the directory stays, no temporary file is left.
    const asDir = path.join(box, 'taken.png');
    await fsp.mkdir(asDir);
    const err = await writePng(asDir, pixels, { width: 2, height: 2 }).catch((e: unknown) => e);
    expect((err as VtokError).code).toBe('IO');
    expect((err as VtokError).message).toContain(`Could not write ${asDir}`);
    expect((await fsp.stat(asDir)).isDirectory()).toBe(true);
    // The folder does not exist.
    const orphan = path.join(box, 'no-such-folder', 'x.png');
    await expect(writePng(orphan, pixels, { width: 2, height: 2 })).rejects.toThrow(`Could not write ${orphan}`);
    // Data of the wrong length: refused before anything is written.
    const short = path.join(box, 'short.png');
    const bad = await writePng(short, pixels, { width: 3, height: 2 }).catch((e: unknown) => e);
    expect((bad as VtokError).code).toBe('INVALID_INPUT');
    expect((bad as VtokError).message).toBe('Expected 18 values (2 x 3 x 3) for data but received 12');
    expect(await fsp.readdir(box)).toEqual(['taken.png']);
    expect(await fsp.readdir(asDir)).toEqual([]);
  });

  it('checks its options', async () => {
    const file = path.join(dir, 'never.png');
    await expect(writePng(file, new Uint8Array(3), { width: 0, height: 1 })).rejects.toThrow(
      'Expected integer between 1 and 65535 for width but received 0 of type number',
    );
    await expect(writePng(file, new Uint8Array(3), { width: 1, height: 1, channels: 5 as never })).rejects.toThrow(
      'Expected integer between 1 and 4 for channels but received 5 of type number',
    );
    await expect(writePng(file, [1, 2, 3] as never, { width: 1, height: 1 })).rejects.toThrow(
      'Expected a Float32Array or Uint8Array for data but received an array of length 3',
    );
    await expect(writePng(file, new Uint8Array(3), { width: 1, height: 1, depth: 16 } as never)).rejects.toThrow(
      'Unknown option "depth" for encodePng; known options are width, height, channels, range',
    );
    await expect(fsp.stat(file)).rejects.toThrow();
  });
});

describe('bitmap font', () => {
  it('has a distinct 5 x 8 glyph for every printable ASCII character', () => {
    const chars = fontCharacters();
    expect(chars.length).toBe(95);
    expect([...chars].sort()).toEqual(Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).sort());
    const seen = new Set<string>();
    for (const ch of chars) {
      const bits = glyphBitmap(ch);
      expect(bits.length).toBe(GLYPH_WIDTH * GLYPH_HEIGHT);
      const key = bits.join('');
      expect(seen.has(key)).toBe(false);
      seen.add(key);
      if (ch !== ' ') expect(bits.some((b) => b === 1)).toBe(true);
    }
    expect(glyphBitmap('é')).toEqual(glyphBitmap('?'));
  });

  it('measures and cuts text', () => {
    expect(measureText('', 1)).toBe(0);
    expect(measureText('A', 1)).toBe(5);
    expect(measureText('AB', 2)).toBe(22); // (6 + 5) * 2
    expect(fitText('hello', 29, 1)).toBe('hello');
    expect(fitText('hello world', 29, 1)).toBe('hel..'); // 5 glyphs = 29 pixels
    expect(fitText('hello', 4, 1)).toBe('');
  });
});

describe('image grids', () => {
  const solid = (w: number, h: number, rgb: number[]): Uint8Array => {
    const a = new Uint8Array(w * h * 3);
    for (let p = 0; p < w * h; p++) a.set(rgb, p * 3);
    return a;
  };
  const at = (g: { data: Uint8Array; width: number }, x: number, y: number): number[] => Array.from(g.data.subarray((y * g.width + x) * 3, (y * g.width + x) * 3 + 3));

  it('lays out cells with padding, labels drawn under them in the bitmap font', () => {
    const grid = renderImageGrid(
      [
        { data: solid(20, 10, [255, 0, 0]), width: 20, height: 10, label: 'A' },
        { data: solid(20, 10, [0, 255, 0]), width: 20, height: 10, label: 'B' },
        { data: solid(20, 10, [0, 0, 255]), width: 20, height: 10 },
      ],
      { columns: 2, padding: 3, labelHeight: 12, range: '[0,255]' },
    );
    // width = 2 * 20 + 3 * 3, height = 2 * (10 + 12) + 3 * 3
    expect([grid.width, grid.height, grid.columns, grid.rows, grid.cellWidth, grid.cellHeight]).toEqual([49, 53, 2, 2, 20, 10]);
    expect(at(grid, 0, 0)).toEqual([255, 255, 255]);
    expect(at(grid, 3, 3)).toEqual([255, 0, 0]); // first cell's top-left
    expect(at(grid, 22, 12)).toEqual([255, 0, 0]); // its bottom-right
    expect(at(grid, 26, 3)).toEqual([0, 255, 0]); // second cell starts at 3 + 20 + 3
    expect(at(grid, 3, 28)).toEqual([0, 0, 255]); // second row starts at 3 + 10 + 12 + 3
    expect(at(grid, 48, 52)).toEqual([255, 255, 255]); // the empty fourth cell

    // Label 'A' under cell 0: x = 3 + floor((20 - 5) / 2) = 10, y = 3 + 10 + floor((12 - 8) / 2) = 15.
    const bits = glyphBitmap('A');
    for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
      for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
        expect(at(grid, 10 + gx, 15 + gy)).toEqual(bits[gy * GLYPH_WIDTH + gx] ? [0, 0, 0] : [255, 255, 255]);
      }
    }
    // Nothing is drawn under the unlabelled cell.
    for (let y = 38; y < 50; y++) for (let x = 3; x < 23; x++) expect(at(grid, x, y)).toEqual([255, 255, 255]);
  });

  it('centres smaller images, handles grey, RGBA and [-1,1] floats, and uses white text on dark backgrounds', () => {
    const grey = new Uint8Array(2 * 2).fill(100);
    const rgba = new Uint8Array([255, 0, 0, 0, 0, 255, 0, 255]); // clear red, opaque green: 2 x 1
    const floats = new Float32Array(4 * 4 * 3).fill(1); // white 4 x 4
    const grid = renderImageGrid(
      [
        { data: floats, width: 4, height: 4, label: 'x' },
        { data: grey, width: 2, height: 2, channels: 1 },
        { data: rgba, width: 2, height: 1, channels: 4 },
      ],
      { columns: 3, padding: 0, background: '#000000', labelHeight: 8 },
    );
    expect([grid.width, grid.height]).toEqual([12, 12]);
    expect(at(grid, 0, 0)).toEqual([255, 255, 255]);
    expect(at(grid, 5, 1)).toEqual([100, 100, 100]); // 2 x 2 centred in 4 x 4: offset (1, 1)
    expect(at(grid, 4, 0)).toEqual([0, 0, 0]);
    expect(at(grid, 9, 1)).toEqual([0, 0, 0]); // clear red over the black background
    expect(at(grid, 10, 1)).toEqual([0, 255, 0]);
    // 'x' (5 wide) does not fit in a 4-pixel cell: no label, no error.
    expect(grid.data.subarray(4 * 12 * 3, 5 * 12 * 3).every((v) => v === 0)).toBe(true);
  });

  it('labels are cut with ".." to fit, and white on a dark background', () => {
    const grid = renderImageGrid([{ data: solid(17, 4, [0, 0, 0]), width: 17, height: 4, label: 'ABCDEFG' }], {
      padding: 0,
      background: [0, 0, 0],
    });
    // 17 pixels hold 3 glyphs ("A.." is 17 wide); white ink.
    const band = grid.data.subarray(4 * 17 * 3);
    expect(band.some((v) => v === 255)).toBe(true);
    const cut = renderImageGrid([{ data: solid(17, 4, [0, 0, 0]), width: 17, height: 4, label: 'A..' }], { padding: 0, background: [0, 0, 0] });
    expect(grid.data).toEqual(cut.data);
  });

  it('writeImageGrid writes the rendered pixels as a PNG', async () => {
    const file = path.join(dir, 'grid.png');
    const images = [0, 1, 2, 3, 4].map((k) => ({ data: solid(16, 16, [k * 60, 100, 255 - k * 60]), width: 16, height: 16, label: `#${k}` }));
    const grid = await writeImageGrid(file, images, { range: '[0,255]' });
    expect([grid.columns, grid.rows]).toEqual([3, 2]);
    const back = await rawOf(file);
    expect([back.width, back.height, back.channels]).toEqual([grid.width, grid.height, 3]);
    expect(back.data).toEqual(grid.data);
  });

  it('checks its input', () => {
    expect(() => renderImageGrid([])).toThrow('Expected a non-empty array of images for images but received an array of length 0');
    expect(() => renderImageGrid([{ data: new Uint8Array(5), width: 2, height: 1 }])).toThrow(
      'Expected 6 values (1 x 2 x 3) for images[0].data but received 5',
    );
    expect(() => renderImageGrid([{ data: new Uint8Array(6), width: 2, height: 1, label: 'a' }], { labelHeight: 5 })).toThrow(
      'Expected integer of at least 8 when images have labels (the font is 8 pixels tall) for labelHeight but received 5 of type number',
    );
    expect(() => renderImageGrid([{ data: new Uint8Array(6), width: 2, height: 1 }], { columns: 0 })).toThrow(
      'Expected integer between 1 and 10000 for columns but received 0 of type number',
    );
  });
});
