import { existsSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { evalRecon, type ReconReport } from '../../eval/recon';
import { Rng } from '../../src/core/random';
import { readImage, writePng } from '../../src/io/image';
import type { FeatureExtractor } from '../../src/tf/features';
import { createTokenizerModel, type TokenizerModel } from '../../src/tf/tokenizer';
import { checkReport, DEFAULT_CHROMIUM } from '../../scripts/check-report';

const S = 16;
const tiny = { baseChannels: 8, channelMult: [1, 1, 1, 1], normGroups: 4, semanticDim: 4, pixelDim: 4, codebookSize: 32, kmeansInit: false };

/** Test-only extractor: per-channel means and mean squares (D = 6). */
function tinyExtractor(): FeatureExtractor {
  return {
    name: 'tiny-test',
    description: 'per-channel mean and mean square (test only)',
    dim: 6,
    inputSize: S,
    standard: false,
    batchSize: 8,
    extract: async (images: tf.Tensor4D) => {
      const f = tf.tidy(() => tf.concat([images.mean([1, 2]), images.square().mean([1, 2])], 1)); // [B, 6]
      const out = (await f.data()) as Float32Array;
      f.dispose();
      return out;
    },
    dispose: () => undefined,
  };
}

/** PSNR written out here, independently of src/core/metrics: 8-bit, R = 255. */
function psnrByHand(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return 10 * Math.log10((255 * 255) / (s / a.length));
}

/** Round-half-up of [-1, 1] floats to 8 bits, written out here. */
function to8(x: Float32Array): Uint8Array {
  return Uint8Array.from(x, (v) => Math.min(255, Math.max(0, Math.floor((v + 1) * 127.5 + 0.5))));
}

describe('evalRecon', () => {
  let root: string;
  let data: string;
  let model: TokenizerModel;
  let report: ReconReport;
  let out: string;

  beforeAll(async () => {
    await tf.setBackend('cpu');
    root = await fsp.mkdtemp(path.join(tmpdir(), 'vtok-recon-'));
    data = path.join(root, 'images');
    await fsp.mkdir(data);
    const rng = new Rng(5);
    for (let i = 0; i < 7; i++) {
      const w = 16 + rng.int(20);
      const h = 16 + rng.int(20);
      // Smooth gradients plus noise, so reconstructions differ per image.
      const px = new Uint8Array(w * h * 3);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = (x * 7 * (c + 1) + y * 5 + i * 30 + rng.int(40)) % 256;
      await writePng(path.join(data, `img${i}.png`), px, { width: w, height: h });
    }
    await fsp.writeFile(path.join(data, 'zz-broken.png'), 'not a png');
    await fsp.writeFile(path.join(data, 'notes.txt'), 'not an image, not listed');
    model = createTokenizerModel(tiny, 3);
    out = path.join(root, 'report');
    const before = tf.memory().numTensors;
    const seen: number[] = [];
    report = await evalRecon({
      tokenizer: { model, imageSize: S, id: 'test-id', name: 'tiny' },
      data,
      out,
      batchSize: 3,
      extractor: tinyExtractor(),
      worst: 3,
      samples: 5,
      onProgress: (p) => seen.push(p.done),
    });
    expect(seen).toEqual([3, 6, 8]);
    expect(tf.memory().numTensors).toBe(before);
  });

  afterAll(async () => {
    model.dispose();
    await fsp.rm(root, { recursive: true, force: true });
  });

  it('scores every readable image; PSNR and SSIM of one image match a computation made here', async () => {
    expect(report.data.evaluated).toBe(7);
    expect(report.data.listed).toBe(8);
    expect(report.data.skipped.map((s) => s.file)).toEqual(['zz-broken.png']);
    expect(report.images.map((s) => s.file)).toEqual(['img0.png', 'img1.png', 'img2.png', 'img3.png', 'img4.png', 'img5.png', 'img6.png']);

    // img2: read at the tokenizer's size, encode, decode, round to 8 bits, PSNR by hand.
    const img = await readImage(path.join(data, 'img2.png'), { size: S });
    const recon = tf.tidy(() => model.decode(model.encode(tf.tensor4d(img.data, [1, S, S, 3]))));
    const r8 = to8((await recon.data()) as Float32Array);
    recon.dispose();
    const o8 = to8(img.data);
    expect(report.images[2].psnr).toBeCloseTo(psnrByHand(o8, r8), 9);
    const mean = report.images.reduce((a, s) => a + s.psnr, 0) / 7;
    expect(report.metrics.psnr.mean).toBeCloseTo(mean, 9);
    expect(report.metrics.psnr.infinite).toBe(0);
    expect(report.metrics.ssim.mean).toBeCloseTo(report.images.reduce((a, s) => a + s.ssim, 0) / 7, 12);
    expect(report.images.every((s) => s.ssim > -1 && s.ssim <= 1)).toBe(true);
  });

  it('usage and perplexity are over all codes of all images', async () => {
    const counts = new Map<number, number>();
    for (const f of report.images) {
      const img = await readImage(path.join(data, f.file), { size: S });
      const codes = tf.tidy(() => model.encode(tf.tensor4d(img.data, [1, S, S, 3])));
      for (const c of await codes.data()) counts.set(c, (counts.get(c) ?? 0) + 1);
      codes.dispose();
    }
    const total = 7 * 2 * 2;
    const entropy = -[...counts.values()].reduce((a, n) => a + (n / total) * Math.log(n / total), 0);
    const cb = report.metrics.codebook;
    expect(cb.total).toBe(total);
    expect(cb.used).toBe(counts.size);
    expect(cb.usage).toBeCloseTo(counts.size / 32, 12);
    expect(cb.perplexity).toBeCloseTo(Math.exp(entropy), 9);
  });

  it('size scores at another multiple of the downsample factor (fully convolutional); a size that does not divide is named', async () => {
    const big = await evalRecon({
      tokenizer: { model, imageSize: S, id: 'test-id', name: 'tiny' },
      data,
      out: path.join(root, 'report-2x'),
      size: 2 * S,
      extractor: null,
      limit: 2,
      worst: 1,
      samples: 1,
    });
    expect(big.tokenizer.imageSize).toBe(2 * S);
    expect(big.tokenizer.grid).toEqual(model.gridShape(2 * S, 2 * S));
    expect(big.metrics.codebook.total).toBe(2 * model.gridShape(2 * S, 2 * S)[0] * model.gridShape(2 * S, 2 * S)[1]);
    expect(big.method.preprocessing).toContain(`not the tokenizer's training size ${S}`);
    // PSNR of img0 at 2S, by hand.
    const img = await readImage(path.join(data, 'img0.png'), { size: 2 * S });
    const recon = tf.tidy(() => model.decode(model.encode(tf.tensor4d(img.data, [1, 2 * S, 2 * S, 3]))));
    const r8 = to8((await recon.data()) as Float32Array);
    recon.dispose();
    expect(big.images[0].psnr).toBeCloseTo(psnrByHand(to8(img.data), r8), 9);
    await expect(
      evalRecon({ tokenizer: { model, imageSize: S, id: 'test-id', name: 'tiny' }, data, out: path.join(root, 'report-odd'), size: S + 1, extractor: null }),
    ).rejects.toThrow(new RegExp(`multiple of the downsample factor .* ${S + 1}`));
  });

  it('names the Fréchet distance after its extractor, never FID, and reports N and the ill-conditioning', () => {
    const fd = report.metrics.frechet;
    expect(fd).not.toBeNull();
    expect(fd!.label).toBe('FD[tiny-test]');
    expect(fd!.n).toBe(7);
    expect(fd!.distance).toBeGreaterThanOrEqual(0);
    expect(fd!.note).toBeUndefined(); // N = 7 > D = 6
    expect(report.method.frechet).toContain('not FID');
  });

  it('calls it rFID only for the standard (pytorch-fid) extractor', async () => {
    const standard = { ...tinyExtractor(), name: 'pytorch-fid-inception-v3', standard: true };
    const r = await evalRecon({ tokenizer: { model, imageSize: S }, data, out: path.join(root, 'std'), extractor: standard, limit: 3, worst: 0, samples: 0 });
    expect(r.metrics.frechet!.label).toBe('rFID');
    expect(r.metrics.frechet!.note).toContain('N = 3 <= D = 6');
    expect(r.worst).toEqual([]);
    expect(await fsp.readFile(path.join(root, 'std', 'report.html'), 'utf8')).toContain('<th scope="row">rFID</th>');
  });

  it('writes report.json, report.html and the PNGs it links; the worst images are the lowest PSNRs', async () => {
    const json = JSON.parse(await fsp.readFile(path.join(out, 'report.json'), 'utf8'));
    expect(json.format).toBe('vtok-recon-report');
    expect(json.metrics.psnr.mean).toBeCloseTo(report.metrics.psnr.mean, 12);
    expect(json.tokenizer).toEqual({ id: 'test-id', name: 'tiny', imageSize: S, codebookSize: 32, grid: [2, 2] });
    expect(json.backend).toBe('cpu');
    expect(json.timings.imagesPerSecond).toBeGreaterThan(0);

    const sorted = [...report.images].sort((a, b) => a.psnr - b.psnr).slice(0, 3);
    expect(report.worst.map((w) => w.file)).toEqual(sorted.map((s) => s.file));

    const html = await fsp.readFile(path.join(out, 'report.html'), 'utf8');
    expect(html).toContain('<table id="metrics">');
    expect(html).toContain('FD[tiny-test]');
    expect(html).not.toMatch(/>r?FID</); // the metric row is FD[tiny-test], never (r)FID
    expect(html).toContain('<svg id="usage-histogram"');
    const srcs = [...html.matchAll(/<img src="([^"]+)"/g)].map((m) => m[1]);
    expect(srcs).toEqual(['samples-01.png', 'worst-01.png', 'worst-02.png', 'worst-03.png']);
    for (const s of srcs) expect((await sharp(path.join(out, s)).metadata()).format).toBe('png');
    expect((await fsp.readdir(out)).sort()).toEqual(['report.html', 'report.json', ...srcs].sort());

    // The worst image's PNG shows the original and the reconstruction that were scored.
    const worst = report.worst[0];
    const img = await readImage(path.join(data, worst.file), { size: S });
    const { data: grid, info } = await sharp(path.join(out, worst.png)).raw().toBuffer({ resolveWithObject: true });
    const cell = (x0: number): Uint8Array => {
      const px = new Uint8Array(S * S * 3);
      for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) for (let c = 0; c < 3; c++) px[(y * S + x) * 3 + c] = grid[((2 + y) * info.width + x0 + x) * info.channels + c];
      return px;
    };
    expect(Array.from(cell(2))).toEqual(Array.from(to8(img.data)));
    expect(psnrByHand(cell(2), cell(2 + S + 2))).toBeCloseTo(worst.psnr, 9);
  });

  it('refuses a non-empty foreign folder untouched, replaces an earlier report, and names a missing data folder', async () => {
    const foreign = path.join(root, 'foreign');
    await fsp.mkdir(foreign);
    await fsp.writeFile(path.join(foreign, 'thesis.tex'), 'x');
    const tok = { model, imageSize: S };
    await expect(evalRecon({ tokenizer: tok, data, out: foreign, extractor: null })).rejects.toThrow(
      `Refusing to write a report into ${foreign}: it is not empty and is not a vtok recon report (it holds thesis.tex)`,
    );
    expect(await fsp.readdir(foreign)).toEqual(['thesis.tex']);

    const again = await evalRecon({ tokenizer: tok, data, out, extractor: null, worst: 1, samples: 2, limit: 4 });
    expect(again.data.evaluated).toBe(4);
    expect(again.metrics.frechet).toBeNull();
    expect((await fsp.readdir(out)).sort()).toEqual(['report.html', 'report.json', 'samples-01.png', 'worst-01.png']);

    // What an interrupted run leaves (report PNGs and temporary files, no report.json) is reused and cleaned.
    const cut = path.join(root, 'cut');
    await fsp.mkdir(cut);
    await fsp.writeFile(path.join(cut, 'worst-07.png'), 'old');
    await fsp.writeFile(path.join(cut, '.report.html.123.abcdef.tmp'), 'partial');
    await evalRecon({ tokenizer: tok, data, out: cut, extractor: null, worst: 1, samples: 1, limit: 2 });
    expect((await fsp.readdir(cut)).sort()).toEqual(['report.html', 'report.json', 'samples-01.png', 'worst-01.png']);

    await expect(evalRecon({ tokenizer: tok, data: path.join(root, 'nope'), out: path.join(root, 'r2'), extractor: null })).rejects.toThrow(
      `Expected an image folder but cannot read ${path.join(root, 'nope')}`,
    );
    expect(existsSync(path.join(root, 'r2'))).toBe(false);
    await expect(evalRecon({ tokenizer: tok, data, out: path.join(root, 'r3'), extractor: null, batchSize: 0 })).rejects.toThrow(
      'Expected integer between 1 and 4096 for batchSize but received 0',
    );
  });

  const chromium = process.env.VTOK_CHROMIUM ?? DEFAULT_CHROMIUM;
  const hasChromium = existsSync(chromium);
  if (!hasChromium) console.warn(`skipping the headless Chromium check of report.html: ${chromium} not found (apt-get install chromium)`);
  (hasChromium ? it : it.skip)(`report.html passes the headless Chromium check${hasChromium ? '' : ` (skipped: ${chromium} not found)`}`, async () => {
    const report2 = path.join(root, 'report-chromium');
    await evalRecon({ tokenizer: { model, imageSize: S }, data, out: report2, extractor: null, worst: 2, samples: 3 });
    const good = await checkReport(report2, { chromium });
    expect(good.problems).toEqual([]);
    expect(good.metricsRows).toBeGreaterThanOrEqual(5);
    expect(good.images.map((i) => [i.src, i.ok])).toEqual([
      ['samples-01.png', true],
      ['worst-01.png', true],
      ['worst-02.png', true],
    ]);
    // A missing PNG and a file that is not one are both reported.
    await fsp.rm(path.join(report2, 'worst-01.png'));
    await fsp.writeFile(path.join(report2, 'worst-02.png'), 'not a png');
    const bad = await checkReport(report2, { chromium });
    expect(bad.problems).toEqual([
      expect.stringContaining('worst-01.png does not exist'),
      'worst-02.png is not a PNG file (no PNG signature)',
    ]);
  });
});
