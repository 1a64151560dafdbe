/**
 * Which PNGs readImage sends through the fast path (src/io/png-fast.ts) and
 * with which limits: the fast path's own size limit (MAX_FAST_PIXELS), not the
 * caller's maxPixels safety limit, and downscales only of small images (it runs
 * on the main thread; for larger ones sharp is as cheap and runs beside the model).
 */
import sharp from 'sharp';
import * as pngFast from '../../src/io/png-fast';
import { readImage } from '../../src/io/image';

jest.mock('../../src/io/png-fast', () => {
  const actual = jest.requireActual('../../src/io/png-fast');
  return { ...actual, decodePngFast: jest.fn(actual.decodePngFast) };
});

const decodePngFast = pngFast.decodePngFast as jest.MockedFunction<typeof pngFast.decodePngFast>;

/** A plain RGB PNG with some structure (a gradient plus a pattern). */
async function png(width: number, height: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7 + Math.floor(i / (width * 3)) * 13) & 255;
  return sharp(raw, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** Runs readImage once and says whether the fast path produced the pixels. */
async function fastUsed(bytes: Buffer, options: Parameters<typeof readImage>[1]): Promise<boolean> {
  decodePngFast.mockClear();
  await readImage(bytes, options);
  expect(decodePngFast).toHaveBeenCalledTimes(1);
  return decodePngFast.mock.results[0].value !== undefined;
}

beforeAll(() => {
  expect(sharp.versions.vips).toBe('8.18.7'); // the fast path is on only with the libvips it was checked against
});

it('upsizes and keeps small PNGs in the fast path', async () => {
  expect(await fastUsed(await png(28, 28), { size: 32, fit: 'pad' })).toBe(true);
  expect(await fastUsed(await png(20, 30), { size: 64, fit: 'crop' })).toBe(true);
  expect(await fastUsed(await png(256, 256), {})).toBe(true); // no resize, 64K pixels
});

it('downscales only images of at most 128 x 128 in the fast path', async () => {
  expect(await fastUsed(await png(64, 64), { size: 32, fit: 'crop' })).toBe(true);
  expect(await fastUsed(await png(128, 128), { size: 64, fit: 'crop' })).toBe(true);
  expect(await fastUsed(await png(129, 128), { size: 64, fit: 'crop' })).toBe(false);
  expect(await fastUsed(await png(256, 256), { size: 128, fit: 'crop' })).toBe(false);
});

it("applies the fast path's own size limit, not the caller's maxPixels", async () => {
  const big = await png(300, 300); // 90,000 pixels > MAX_FAST_PIXELS
  expect(300 * 300).toBeGreaterThan(pngFast.MAX_FAST_PIXELS);
  expect(await fastUsed(big, {})).toBe(false);
  expect(await fastUsed(big, { maxPixels: 1 << 28 })).toBe(false);
  expect(await fastUsed(big, { size: 320, fit: 'pad' })).toBe(false);
});
