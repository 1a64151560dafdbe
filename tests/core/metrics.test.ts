import * as fs from 'fs';
import * as path from 'path';
import {
  CodeHistogram,
  codebookStats,
  meanPsnr,
  mse,
  psnr,
  quantizeToUint8,
  ssim,
  ssimPerChannel,
  ssimWindow,
  type PixelArray,
} from '../../src/core/metrics';
import { Rng } from '../../src/core/random';

// Made by tests/fixtures/metrics/make_metrics_fixtures.py (scikit-image 0.19 peak_signal_noise_ratio / structural_similarity).
interface ImageCase {
  name: string;
  width: number;
  height: number;
  channels: number;
  dtype: 'uint8' | 'float64';
  dataRange: number;
  a: string;
  b: string;
  psnr: number;
  ssimSkimage: number;
  ssimWang?: number;
}
const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/metrics/images.json'), 'utf8')) as { cases: ImageCase[] };

function pixels(b64: string, dtype: 'uint8' | 'float64'): PixelArray {
  const buf = Buffer.from(b64, 'base64');
  const bytes = new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return dtype === 'uint8' ? bytes : new Float64Array(bytes.buffer);
}

describe('PSNR and SSIM agree with scikit-image', () => {
  for (const c of fixture.cases) {
    it(c.name, () => {
      const a = pixels(c.a, c.dtype);
      const b = pixels(c.b, c.dtype);
      const dataRange = c.dtype === 'uint8' ? undefined : c.dataRange; // 8-bit: the default 255 must be what skimage used
      const shape = { width: c.width, height: c.height, channels: c.channels, dataRange };
      expect(Math.abs(psnr(a, b, { dataRange }) - c.psnr)).toBeLessThan(1e-5);
      expect(Math.abs(ssim(a, b, shape) - c.ssimSkimage)).toBeLessThan(1e-5);
      if (c.ssimWang !== undefined) expect(Math.abs(ssim(a, b, { ...shape, variant: 'wang' }) - c.ssimWang)).toBeLessThan(1e-5);
    });
  }
});

describe('psnr', () => {
  it('matches a hand-worked value and is +Infinity for identical images', () => {
    // MSE = (0 + 255^2) / 2 = 32512.5; PSNR = 10 log10(65025 / 32512.5) = 10 log10 2.
    expect(psnr(new Uint8Array([0, 0]), new Uint8Array([0, 255]))).toBeCloseTo(10 * Math.log10(2), 12);
    expect(mse(new Uint8Array([1, 2, 3]), new Uint8Array([2, 2, 1]))).toBeCloseTo(5 / 3, 14);
    expect(psnr(new Uint8Array([7, 8]), new Uint8Array([7, 8]))).toBe(Infinity);
    // 16-bit images default to R = 65535; an error of 1 in 2 values gives 10 log10(2 * 65535^2).
    expect(psnr(new Uint16Array([0, 1]), new Uint16Array([0, 0]))).toBeCloseTo(10 * Math.log10(2 * 65535 ** 2), 10);
    // Float images: R must be given; [-1, 1] is R = 2.
    expect(psnr(new Float32Array([-1, 1]), new Float32Array([-1, 0]), { dataRange: 2 })).toBeCloseTo(10 * Math.log10(4 / 0.5), 6);
  });

  it('rejects float images without a data range, mismatched sizes and unknown options', () => {
    expect(() => psnr(new Float32Array(4), new Float32Array(4))).toThrow(
      'Expected dataRange (for example 2 for [-1, 1] or 1 for [0, 1]) for Float32Array pixels but received undefined',
    );
    expect(() => psnr(new Uint8Array(4), new Uint8Array(5))).toThrow('Expected images of the same size but received 4 and 5 values');
    expect(() => psnr(new Uint8Array(4), new Uint8Array(4), { dataRange: 0 })).toThrow('Expected number between 5e-324 and Infinity for dataRange but received 0 of type number');
    expect(() => psnr(new Uint8Array(4), new Uint8Array(4), { range: 255 } as never)).toThrow('Unknown option "range" for psnr; known options are dataRange');
    expect(() => psnr([1, 2] as never, new Uint8Array(2))).toThrow(
      'Expected a Uint8Array, Uint8ClampedArray, Uint16Array, Float32Array or Float64Array for a but received an array of length 2',
    );
  });

  it('meanPsnr says how identical images were counted', () => {
    expect(meanPsnr([30, 40])).toEqual({ mean: 35, n: 2, infinite: 0, cap: null });
    expect(meanPsnr([30, 40, Infinity])).toEqual({ mean: Infinity, n: 3, infinite: 1, cap: null });
    expect(meanPsnr([30, 40, Infinity], { cap: 100 })).toEqual({ mean: 170 / 3, n: 3, infinite: 1, cap: 100 });
    // A cap that was not needed is not reported as used.
    expect(meanPsnr([30], { cap: 100 }).cap).toBeNull();
    expect(() => meanPsnr([])).toThrow('Expected at least one PSNR value but received none');
    expect(() => meanPsnr([30, NaN])).toThrow('Expected PSNR values in dB or +Infinity but value 1 is NaN');
  });

  it('quantizeToUint8 clips and rounds halves up', () => {
    expect(Array.from(quantizeToUint8([-2, -1, 0, 1, 2], [-1, 1]))).toEqual([0, 0, 128, 255, 255]);
    // 0.5 / 255 is exactly half a level: rounds up to 1; just below rounds to 0.
    expect(Array.from(quantizeToUint8([0.5 / 255, 0.49 / 255, 254.5 / 255]))).toEqual([1, 0, 255]);
    expect(() => quantizeToUint8([NaN])).toThrow('Expected finite pixel values but value 0 is NaN');
    expect(() => quantizeToUint8([0], [1, 1])).toThrow('Expected a range [lo, hi] with lo < hi for range but received [1, 1]');
  });
});

describe('ssim', () => {
  it('is 1 for identical images and symmetric in its arguments', () => {
    const rng = new Rng(5);
    const a = new Uint8Array(12 * 10 * 3).map(() => rng.int(256));
    const b = new Uint8Array(a.length).map((v) => Math.min(255, v + rng.int(30)));
    const shape = { width: 12, height: 10, channels: 3 };
    expect(ssim(a, a, shape)).toBeCloseTo(1, 14);
    expect(ssim(a, b, shape)).toBeCloseTo(ssim(b, a, shape), 14);
    expect(ssim(a, b, shape)).toBeLessThan(1);
  });

  it('matches a hand-worked value on a 7x7 image (one window)', () => {
    // One 7x7 window: a is 0 except a 255 pixel, b is all 0. ux = 255/49, uy = 0, vy = vxy = 0,
    // vx = (49/48)(255^2/49 - ux^2) = 255^2/49 (sample covariance);
    // SSIM = C1 C2 / ((ux^2 + C1)(vx + C2)) with C1 = 2.55^2, C2 = 7.65^2.
    const a = new Uint8Array(49);
    a[24] = 255;
    const ux = 255 / 49;
    const vx = (49 / 48) * (255 ** 2 / 49 - ux * ux);
    const [c1, c2] = [2.55 ** 2, 7.65 ** 2];
    expect(ssim(a, new Uint8Array(49), { width: 7, height: 7 })).toBeCloseTo((c1 * c2) / ((ux * ux + c1) * (vx + c2)), 12);
  });

  it('averages per-channel SSIM', () => {
    const rng = new Rng(9);
    const a = new Uint8Array(9 * 8 * 2).map(() => rng.int(256));
    const b = a.slice();
    for (let i = 1; i < b.length; i += 2) b[i] = 255 - b[i]; // channel 1 inverted, channel 0 untouched
    const per = ssimPerChannel(a, b, { width: 9, height: 8, channels: 2 });
    expect(per[0]).toBeCloseTo(1, 14);
    expect(per[1]).toBeLessThan(0);
    expect(ssim(a, b, { width: 9, height: 8, channels: 2 })).toBeCloseTo((per[0] + per[1]) / 2, 14);
  });

  it('uses scipy\'s Gaussian window for the Wang variant', () => {
    const { weights, sampleCovariance } = ssimWindow('wang');
    expect(weights.length).toBe(11); // radius int(3.5 * 1.5 + 0.5) = 5
    expect(sampleCovariance).toBe(false);
    expect(weights.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 15);
    expect(weights[5] / weights[6]).toBeCloseTo(Math.exp(0.5 / 2.25), 14);
    expect(ssimWindow('skimage').weights).toEqual(new Float64Array(7).fill(1 / 7));
  });

  it('rejects bad shapes and options with exact messages', () => {
    const a = new Uint8Array(8 * 8);
    expect(() => ssim(a, a, { width: 8, height: 7 })).toThrow('Expected 7 x 8 x 1 = 56 pixel values for ssim but received 64');
    expect(() => ssim(a, a, { width: 8, height: 8, variant: 'wang' })).toThrow(
      'Expected images of at least 11 x 11 pixels for ssim variant "wang" (its window) but received 8 x 8',
    );
    expect(() => ssim(a, a, { width: 8, height: 8, variant: 'gauss' as never })).toThrow('Expected one of "skimage", "wang" for variant but received "gauss" of type string');
    expect(() => ssim(a, a, { width: 8, height: 8, win: 7 } as never)).toThrow('Unknown option "win" for ssim');
    expect(() => ssim(a, a, { width: 0, height: 8 })).toThrow('Expected integer between 1 and 9007199254740991 for width but received 0 of type number');
    expect(() => ssim(a, a, { width: 8 } as never)).toThrow('Expected integer between 1 and 9007199254740991 for height but received undefined');
    expect(() => ssim(new Float32Array(64), new Float32Array(64), { width: 8, height: 8 })).toThrow('Expected dataRange');
  });
});

describe('codebook usage and perplexity', () => {
  it('hand-worked histograms', () => {
    // Uniform over all 4 codes: usage 1, perplexity 4.
    const h = new CodeHistogram(4).add([0, 0, 1, 1]).add([2, 2, 3, 3]);
    expect(h.total).toBe(8);
    const s = h.stats();
    expect(s).toMatchObject({ K: 4, total: 8, used: 4, usage: 1 });
    expect(s.entropy).toBeCloseTo(Math.log(4), 14);
    expect(s.perplexity).toBeCloseTo(4, 12);
    // Counts [3, 1, 0, 0]: p = (3/4, 1/4); H = -(3/4 ln 3/4 + 1/4 ln 1/4) = ln 4 - (3/4) ln 3.
    const t = codebookStats([3, 1, 0, 0]);
    expect(t.used).toBe(2);
    expect(t.usage).toBe(0.5);
    expect(t.entropy).toBeCloseTo(Math.log(4) - 0.75 * Math.log(3), 14);
    expect(t.perplexity).toBeCloseTo(4 / 3 ** 0.75, 12);
    // One code only: perplexity exactly 1.
    expect(codebookStats([0, 5, 0]).perplexity).toBe(1);
  });

  it('counts over the whole set, not per batch', () => {
    // Each batch uses one code (per-batch perplexity 1); the whole set uses 4 equally.
    const h = new CodeHistogram(8);
    for (const code of [1, 3, 5, 7]) h.add(new Uint16Array(16).fill(code));
    expect(h.stats().perplexity).toBeCloseTo(4, 12);
    expect(h.stats().usage).toBe(0.5);
  });

  it('merge equals counting everything in one histogram', () => {
    const rng = new Rng(3);
    const codes = Array.from({ length: 1000 }, () => Math.min(63, Math.floor(-Math.log(1 - rng.next()) * 10)));
    const whole = new CodeHistogram(64).add(codes);
    const left = new CodeHistogram(64).add(codes.slice(0, 400));
    const right = new CodeHistogram(64).add(codes.slice(400));
    left.merge(right);
    expect(left.counts).toEqual(whole.counts);
    expect(left.stats()).toEqual(whole.stats());
    expect(right.total).toBe(600); // unchanged by the merge
  });

  it('rejects bad codes before counting any', () => {
    const h = new CodeHistogram(4).add([1]);
    expect(() => h.add([0, 2, 4])).toThrow('Expected codes that are integers between 0 and 3 but code 2 is 4 of type number');
    expect(() => h.add([0.5])).toThrow('Expected codes that are integers between 0 and 3 but code 0 is 0.5 of type number');
    expect(h.total).toBe(1);
    expect(Array.from(h.counts)).toEqual([0, 1, 0, 0]);
    expect(() => h.merge(new CodeHistogram(5))).toThrow('Expected a CodeHistogram with K = 4 to merge but received K = 5');
    expect(() => codebookStats([0, 0])).toThrow('Expected at least one counted code but the 2 counts are all 0');
    expect(() => new CodeHistogram(0)).toThrow('Expected integer between 1 and 1073741824 for K but received 0 of type number');
  });
});
