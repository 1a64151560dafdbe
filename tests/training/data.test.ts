// The training image stream: flat-crop rejection (minStd), and the overflow-safe
// gradient norm the trainer clips with.
import * as tf from '@tensorflow/tfjs';
import { ImageStream, type StreamImage } from '../../training/data';
import { globalNorm } from '../../training/tokenizer';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A w x h image: flat grey, or noise in [-1, 1] from a tiny LCG. */
function image(name: string, w: number, h: number, kind: 'flat' | 'noise' | 'half'): StreamImage {
  const data = new Float32Array(w * h * 3);
  let s = name.length * 7919;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    const x = Math.floor(i / 3) % w;
    data[i] = kind === 'flat' || (kind === 'half' && x < w / 2) ? 0.25 : (s / 2147483648) * 2 - 1;
  }
  return { data, width: w, height: h, source: name };
}

function stds(batch: Float32Array, n: number): number[] {
  const per = batch.length / n;
  return Array.from({ length: n }, (_, b) => {
    const v = batch.subarray(b * per, (b + 1) * per);
    const mean = v.reduce((a, x) => a + x, 0) / per;
    return Math.sqrt(v.reduce((a, x) => a + (x - mean) ** 2, 0) / per);
  });
}

it('minStd redraws flat crops and skips flat images; 0 keeps them', () => {
  const images = [image('a', 16, 16, 'flat'), image('b', 16, 16, 'noise'), image('c', 32, 16, 'half'), image('d', 16, 16, 'flat')];
  const keepAll = new ImageStream(images, { size: 8, seed: 3 });
  expect(stds(keepAll.next(16), 16).filter((s) => s < 1e-6).length).toBeGreaterThan(0);
  const picky = new ImageStream(images, { size: 8, seed: 3, minStd: 0.1 });
  const batch = picky.next(16);
  expect(stds(batch, 16).every((s) => s >= 0.1)).toBe(true);
  // Deterministic: the same seed gives the same batch.
  expect(new ImageStream(images, { size: 8, seed: 3, minStd: 0.1 }).next(16)).toEqual(batch);
});

it('minStd: when every image is flat, a clear error instead of an endless loop', () => {
  const stream = new ImageStream([image('a', 8, 8, 'flat'), image('b', 8, 8, 'flat')], { size: 8, seed: 1, minStd: 0.01 });
  expect(() => stream.next(1)).toThrow(/Every training image is flatter than minCropStd 0.01/);
  expect(() => new ImageStream([image('a', 8, 8, 'flat')], { size: 8, seed: 1, minStd: -1 })).toThrow(/minStd must be >= 0/);
});

it('globalNorm: exact for ordinary values, finite where a float32 sum of squares overflows, NaN for NaN', () => {
  const a = tf.tensor1d([3, 4]);
  const b = tf.tensor2d([[12]]);
  expect(globalNorm([a, b])).toBeCloseTo(13, 5);
  const big = tf.tensor1d([3e20, 4e20]); // squares overflow float32
  expect(globalNorm([big])).toBeCloseTo(5e20, -15);
  expect(tf.tidy(() => tf.sqrt(tf.sum(tf.square(big))).dataSync()[0])).toBe(Infinity); // what the naive form gives
  const bad = tf.tensor1d([1, NaN]);
  expect(globalNorm([a, bad])).toBeNaN();
  expect(globalNorm([])).toBe(0);
  const before = tf.memory().numTensors;
  globalNorm([a, b, big]);
  expect(tf.memory().numTensors).toBe(before);
  tf.dispose([a, b, big, bad]);
});
