/** readImageBatch: NHWC batches in input order, bad inputs skipped or thrown, bounded concurrency. */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { VtokError } from '../../src/core/errors';
import { readImage, readImageBatch } from '../../src/io/image';

let dir: string;
/** 12 small PNGs of different solid colours and sizes, plus some bad files. */
const files: string[] = [];
const colours: number[][] = [];
let textFile: string;
let missing: string;

beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-image-batch-'));
  for (let i = 0; i < 12; i++) {
    const colour = [i * 20, 255 - i * 20, (i * 53) % 256];
    const file = path.join(dir, `img-${i}.png`);
    await sharp({ create: { width: 8 + i, height: 6 + (i % 3), channels: 3, background: { r: colour[0], g: colour[1], b: colour[2] } } })
      .png()
      .toFile(file);
    files.push(file);
    colours.push(colour);
  }
  textFile = path.join(dir, 'readme.png');
  await fsp.writeFile(textFile, 'not an image');
  missing = path.join(dir, 'missing.png');
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** Image k of an NHWC batch. */
function item(data: Float32Array, shape: number[], k: number): Float32Array {
  const size = shape[1] * shape[2] * shape[3];
  return data.subarray(k * size, (k + 1) * size);
}

describe('readImageBatch', () => {
  it('stacks images as [B, H, W, 3] in input order, each equal to readImage', async () => {
    const inputs = files.slice(0, 5);
    const batch = await readImageBatch(inputs, { size: 4 });
    expect(batch.shape).toEqual([5, 4, 4, 3]);
    expect(batch.data.length).toBe(5 * 4 * 4 * 3);
    expect(batch.errors).toEqual([]);
    expect(batch.items.map((it) => it.index)).toEqual([0, 1, 2, 3, 4]);
    for (let k = 0; k < 5; k++) {
      const one = await readImage(inputs[k], { size: 4 });
      expect(item(batch.data, batch.shape, k)).toEqual(one.data);
      expect(batch.items[k]).toEqual({ width: 4, height: 4, originalWidth: one.originalWidth, originalHeight: one.originalHeight, channels: 3, source: inputs[k], format: 'png', bitDepth: 8, index: k });
      // solid colours stay exact through the resize
      expect(Array.from(item(batch.data, batch.shape, k).subarray(0, 3))).toEqual(colours[k].map((v) => Math.fround(v / 127.5 - 1)));
    }
  });

  it("with onError 'skip', a bad file is reported and the others come back in order", async () => {
    const inputs = [files[0], files[1], textFile, files[2], missing, files[3]];
    const batch = await readImageBatch(inputs, { size: 4, onError: 'skip', concurrency: 3 });
    expect(batch.shape).toEqual([4, 4, 4, 3]);
    expect(batch.data.length).toBe(4 * 4 * 4 * 3);
    expect(batch.items.map((it) => [it.index, it.source])).toEqual([
      [0, files[0]],
      [1, files[1]],
      [3, files[2]],
      [5, files[3]],
    ]);
    for (const [k, file] of [files[0], files[1], files[2], files[3]].entries()) {
      expect(item(batch.data, batch.shape, k)).toEqual((await readImage(file, { size: 4 })).data);
    }
    expect(batch.errors).toEqual([
      {
        index: 2,
        input: textFile,
        code: 'IMAGE_DECODE',
        message: `Could not decode ${textFile}: not an image in a supported format (the file starts with bytes 6e 6f 74 20 61 6e 20 69)`,
      },
      { index: 4, input: missing, code: 'FILE_NOT_FOUND', message: `Could not read ${missing}: no such file` },
    ]);
  });

  it("with onError 'throw' (the default), the batch fails with the earliest bad input's error", async () => {
    for (const concurrency of [1, 2, 4]) {
      const err = await readImageBatch([files[0], missing, textFile, files[1]], { size: 4, concurrency }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VtokError);
      expect((err as VtokError).code).toBe('FILE_NOT_FOUND');
      expect((err as VtokError).message).toBe(`Could not read ${missing}: no such file`);
    }
  });

  it('gives the same batch at every concurrency', async () => {
    const base = await readImageBatch(files, { size: { width: 5, height: 3 }, fit: 'pad', concurrency: 1 });
    expect(base.shape).toEqual([12, 3, 5, 3]);
    for (const concurrency of [2, 3, 8]) {
      const other = await readImageBatch(files, { size: { width: 5, height: 3 }, fit: 'pad', concurrency });
      expect(other.data).toEqual(base.data);
      expect(other.items).toEqual(base.items);
    }
  });

  it('without size, images of one size stack and an image of another size is INVALID_INPUT for that input', async () => {
    // files[0] is 8 x 6; files[3] is 11 x 6; make a second 8 x 6 image.
    const twin = path.join(dir, 'twin.png');
    await sharp({ create: { width: 8, height: 6, channels: 3, background: '#102030' } }).png().toFile(twin);
    const same = await readImageBatch([files[0], twin]);
    expect(same.shape).toEqual([2, 6, 8, 3]);
    expect(item(same.data, same.shape, 1)).toEqual((await readImage(twin)).data);

    const mixed = await readImageBatch([textFile, files[0], files[3], twin], { onError: 'skip' });
    expect(mixed.shape).toEqual([2, 6, 8, 3]);
    expect(mixed.items.map((it) => it.index)).toEqual([1, 3]);
    expect(mixed.errors.map((e) => [e.index, e.code])).toEqual([
      [0, 'IMAGE_DECODE'],
      [2, 'INVALID_INPUT'],
    ]);
    expect(mixed.errors[1].message).toBe(`Could not add ${files[3]} to the batch: it is 11 x 6 but the batch is 8 x 6 (set size to resize every image)`);
    await expect(readImageBatch([files[0], files[3]])).rejects.toThrow(`Could not add ${files[3]} to the batch`);
  });

  it('reads Buffers, named by their position', async () => {
    const bytes = await fsp.readFile(files[0]);
    const batch = await readImageBatch([bytes, Buffer.alloc(0)], { size: 2, onError: 'skip' });
    expect(batch.items[0].source).toBe(`<buffer #0 of ${bytes.length} bytes>`);
    expect(batch.errors[0]).toEqual({
      index: 1,
      input: '<buffer #1 of 0 bytes>',
      code: 'IMAGE_DECODE',
      message: 'Could not decode <buffer #1 of 0 bytes>: the file is empty (0 bytes)',
    });
  });

  it('reports progress once per input', async () => {
    const seen: [number, number][] = [];
    await readImageBatch([files[0], textFile, files[1]], { size: 2, onError: 'skip', onProgress: (done, total) => seen.push([done, total]) });
    expect(seen).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
  });

  it('an empty list, or a list of only bad inputs, gives an empty batch', async () => {
    const none = await readImageBatch([], { size: 4 });
    expect(none.shape).toEqual([0, 4, 4, 3]);
    expect(none.data.length).toBe(0);
    const bad = await readImageBatch([textFile, missing], { size: 4, onError: 'skip' });
    expect(bad.shape).toEqual([0, 4, 4, 3]);
    expect(bad.errors).toHaveLength(2);
    expect((await readImageBatch([])).shape).toEqual([0, 0, 0, 3]);
  });

  it.each([
    [{ concurrency: 0 }, 'Expected integer between 1 and 64 for concurrency but received 0 of type number'],
    [{ onError: 'ignore' }, 'Expected one of "throw", "skip" for onError but received "ignore" of type string'],
    [{ onProgress: 1 }, 'Expected a function for onProgress but received 1 of type number'],
    [
      { name: 'x' },
      'Unknown option "name" for readImageBatch; known options are size, fit, background, kernel, maxPixels, failOn, onError, concurrency, onProgress',
    ],
  ])('%j is INVALID_OPTION', async (options, message) => {
    const err = await readImageBatch([files[0]], options as never).catch((e: unknown) => e);
    expect((err as VtokError).code).toBe('INVALID_OPTION');
    expect((err as VtokError).message).toBe(message);
  });

  it('a non-path, non-Buffer input is INVALID_OPTION whatever onError says', async () => {
    await expect(readImageBatch([files[0], 7 as never], { onError: 'skip' })).rejects.toThrow(
      'Expected a file path or a Buffer of encoded image bytes for inputs[1] but received 7 of type number',
    );
  });
});
