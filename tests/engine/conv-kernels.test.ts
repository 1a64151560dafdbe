// vtok's wasm conv gradient kernels against the cpu backend, on many shapes.
// Tolerance: 2e-5 of the output's scale (float32 sums over up to ~2,000 terms
// in a different order).
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { Rng } from '../../src/core/random';
import { Scratch, type WasmBackend } from '../../src/engine/kernels/wasm-util';
import { conv2dBackpropFilterGemm } from '../../src/engine/kernels/conv2d-backprop-filter';
import { expectSameOnBoth, relError, runOn, randn } from './helpers';

const TOL = 2e-5;

beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 2 });
});
afterAll(() => shutdownBackend());

interface ConvCase {
  x: [number, number, number, number];
  f: [number, number, number, number];
  strides: number | [number, number];
  pad: 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
}

const CASES: ConvCase[] = [
  { x: [1, 5, 5, 1], f: [3, 3, 1, 1], strides: 1, pad: 'same' },
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], strides: 1, pad: 'valid' },
  { x: [2, 8, 8, 4], f: [3, 3, 4, 6], strides: 2, pad: 'same' },
  { x: [2, 9, 9, 3], f: [3, 3, 3, 5], strides: 2, pad: 'valid' }, // stride does not divide: last row/col unread
  { x: [3, 8, 8, 5], f: [4, 4, 5, 3], strides: 2, pad: 'same' }, // even kernel: asymmetric padding
  { x: [2, 7, 9, 2], f: [4, 4, 2, 3], strides: 2, pad: 'valid' },
  { x: [2, 6, 6, 8], f: [1, 1, 8, 4], strides: 1, pad: 'valid' },
  { x: [2, 7, 7, 4], f: [1, 1, 4, 4], strides: 2, pad: 'same' },
  { x: [1, 10, 11, 3], f: [5, 5, 3, 2], strides: 3, pad: 'same' },
  { x: [2, 9, 8, 3], f: [3, 1, 3, 4], strides: [1, 2], pad: 'same' },
  { x: [2, 9, 9, 2], f: [3, 3, 2, 3], strides: 2, pad: [[0, 0], [1, 2], [2, 0], [0, 0]] },
  { x: [2, 12, 12, 8], f: [3, 3, 8, 16], strides: 1, pad: 'same' },
  { x: [2, 5, 5, 3], f: [4, 4, 3, 2], strides: 1, pad: [[0, 0], [4, 0], [0, 5], [0, 0]] }, // pads wider than the filter
  // Conv2DBackpropFilter's grid of x phases: odd sizes, unread rows, phases no tap reads, no padding at all
  { x: [2, 11, 13, 3], f: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { x: [2, 10, 11, 3], f: [3, 3, 3, 2], strides: 3, pad: 'valid' }, // last row and last 2 columns unread
  { x: [2, 9, 7, 4], f: [4, 4, 4, 3], strides: 1, pad: 'same' },
  { x: [2, 9, 9, 3], f: [4, 4, 3, 2], strides: 2, pad: 'same' },
  { x: [2, 8, 8, 4], f: [1, 1, 4, 5], strides: 2, pad: 'valid' }, // one phase of four read
  { x: [2, 8, 6, 3], f: [2, 2, 3, 4], strides: 2, pad: 'valid' }, // patches: dy needs no grid
  { x: [2, 7, 7, 3], f: [3, 3, 3, 4], strides: 1, pad: [[0, 0], [0, 2], [2, 0], [0, 0]] }, // taps reading only rows below
];

function describeCase(c: ConvCase): string {
  return `x ${c.x.join('x')} filter ${c.f.join('x')} stride ${c.strides} pad ${JSON.stringify(c.pad)}`;
}

describe('Conv2DBackpropFilter and Conv2DBackpropInput (conv2d gradients)', () => {
  it.each(CASES.map((c) => [describeCase(c), c] as const))('%s', async (_, c) => {
    const rng = new Rng(17);
    const xv = randn(rng, c.x);
    const fv = randn(rng, c.f, 0.3);
    const y = tf.tidy(() => tf.conv2d(tf.tensor4d(xv, c.x), tf.tensor4d(fv, c.f), c.strides, c.pad));
    const dyv = randn(rng, y.shape);
    const dyShape = y.shape as [number, number, number, number];
    y.dispose();
    await expectSameOnBoth(
      () =>
        tf.tidy(() => {
          const x = tf.tensor4d(xv, c.x);
          const f = tf.tensor4d(fv, c.f);
          const dy = tf.tensor4d(dyv, dyShape);
          const [dx, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad))([x, f], dy);
          return [dx, df];
        }),
      TOL,
    );
  });
});

/** The cpu backend's Conv2DBackpropFilter of x and dy (the reference for the wasm kernel). */
async function cpuBackpropFilter(xv: Float32Array, xs: number[], dyv: Float32Array, dyShape: number[], attrs: object): Promise<Float32Array> {
  const [want] = await runOn('cpu', () =>
    tf.tidy(() => tf.engine().runKernel('Conv2DBackpropFilter', { x: tf.tensor(xv, xs), dy: tf.tensor(dyv, dyShape) }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor),
  );
  return want;
}

describe('Conv2DBackpropFilter with the sum over the batch split into chunks, each tap layout', () => {
  // chunkElements: elements of dy on the grid per chunk. x [5, 6, 7, 3] 3x3x3x4 'same' has an
  // 8 x 9 grid per image, 288 elements with 4 channels: 576 makes chunks of 2, 2, 1 images;
  // 100 makes bands of 1 row (1 + 2 grid rows of 9 x 4 = 108 > 100: never fewer than one row);
  // 200 bands of 3 and 3 rows (5 grid rows, 180 elements).
  const shapes = [
    { x: [5, 6, 7, 3], f: [3, 3, 3, 4], strides: 1, chunkElements: 576 },
    { x: [5, 6, 7, 3], f: [3, 3, 3, 4], strides: 1, chunkElements: 1 },
    { x: [5, 6, 7, 3], f: [3, 3, 3, 4], strides: 1, chunkElements: 200 },
    { x: [3, 9, 8, 2], f: [4, 4, 2, 3], strides: 2, chunkElements: 1 },
    { x: [2, 11, 13, 3], f: [3, 3, 3, 4], strides: 2, chunkElements: 50 }, // bands of phase rows, 4 phases
    { x: [2, 10, 11, 3], f: [3, 3, 3, 2], strides: 3, chunkElements: 30 },
    { x: [2, 8, 8, 4], f: [1, 1, 4, 5], strides: 2, chunkElements: 40 }, // no grid: a band is a run of dy
    { x: [2, 9, 10, 12], f: [3, 3, 12, 5], strides: 2, chunkElements: 100 }, // 8 channels at a time, then 4
    { x: [3, 9, 10, 17], f: [3, 4, 17, 6], strides: 1, chunkElements: 300, pad: 'valid' },
    { x: [2, 9, 9, 16], f: [3, 3, 16, 3], strides: 2, chunkElements: 60, pad: [[0, 0], [1, 2], [2, 0], [0, 0]] },
    { x: [0, 6, 7, 3], f: [3, 3, 3, 4], strides: 1, chunkElements: 576 }, // empty batch: dW = 0
  ] as {
    x: number[];
    f: number[];
    strides: number;
    chunkElements: number;
    pad?: 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
  }[];
  // runOn checks that no buffer is left (scratch, views, XNNPACK's cached operators).
  const cases = shapes.flatMap((c) => (['views', 'rows', 'all'] as const).map((layout) => ({ ...c, layout })));
  it.each(cases)('x $x filter $f stride $strides, chunks of $chunkElements dy elements, $layout', async (c) => {
    const rng = new Rng(23);
    const xs = [...c.x] as [number, number, number, number];
    const fs = [...c.f] as [number, number, number, number];
    const pad = c.pad ?? 'same';
    const info = tf.backend_util.computeConv2DInfo(xs, fs, c.strides, 1, pad);
    const dyShape = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
    const xv = randn(rng, xs);
    const dyv = randn(rng, dyShape);
    const attrs = { strides: c.strides, pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: fs };
    const want = await cpuBackpropFilter(xv, xs, dyv, dyShape, attrs);
    const [got] = await runOn('wasm', () =>
      tf.tidy(() => {
        const x = tf.tensor(xv, xs);
        const dy = tf.tensor(dyv, dyShape);
        const s = new Scratch(tf.backend() as unknown as WasmBackend);
        try {
          const out = s.keep(conv2dBackpropFilterGemm(s, x, dy, info, undefined, c.chunkElements, c.layout));
          return tf.engine().makeTensorFromTensorInfo(out);
        } finally {
          s.dispose();
        }
      }),
    );
    expect(got.length).toBe(fs.reduce((a, b) => a * b, 1));
    expect(relError(got, want)).toBeLessThanOrEqual(TOL);
  });
});

describe('Conv2DBackpropFilter on a heap left full of NaN', () => {
  // Its scratch buffers are not zeroed: reads that run past a region (into zero dy) must still
  // see finite values, or NaN * 0 spoils the sum. Freed NaN memory is what the next allocations get.
  it.each(['views', 'rows', 'all'] as const)('%s', async (layout) => {
    const xs: [number, number, number, number] = [3, 9, 10, 6];
    const fs: [number, number, number, number] = [3, 3, 6, 5];
    const rng = new Rng(31);
    const info = tf.backend_util.computeConv2DInfo(xs, fs, 1, 1, 'same'); // stride 1: every tap but one is a shifted copy
    const dyShape = [info.batchSize, info.outHeight, info.outWidth, info.outChannels];
    const xv = randn(rng, xs);
    const dyv = randn(rng, dyShape);
    const attrs = { strides: 1, pad: 'same', dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: fs };
    const want = await cpuBackpropFilter(xv, xs, dyv, dyShape, attrs);
    const [got] = await runOn('wasm', () =>
      tf.tidy(() => {
        const x = tf.tensor(xv, xs);
        const dy = tf.tensor(dyv, dyShape);
        // freed just before the kernel allocates: blocks of several sizes, so that its buffers get some
        tf.dispose([10, 12, 14, 16].map((bits) => tf.fill([1 << bits], NaN)));
        const s = new Scratch(tf.backend() as unknown as WasmBackend);
        try {
          return tf.engine().makeTensorFromTensorInfo(s.keep(conv2dBackpropFilterGemm(s, x, dy, info, undefined, 60, layout)));
        } finally {
          s.dispose();
        }
      }),
    );
    expect(got.every(Number.isFinite)).toBe(true);
    expect(relError(got, want)).toBeLessThanOrEqual(TOL);
  });
});

describe('conv2dTranspose (Conv2DBackpropInput forward) and its gradient', () => {
  it.each([
    { y: [2, 4, 4, 6], f: [4, 4, 3, 6], out: [2, 8, 8, 3], s: 2, pad: 'same' as const },
    { y: [2, 4, 4, 6], f: [3, 3, 3, 6], out: [2, 9, 9, 3], s: 2, pad: 'valid' as const },
    { y: [1, 5, 5, 2], f: [3, 3, 4, 2], out: [1, 5, 5, 4], s: 1, pad: 'same' as const },
  ])('input $y filter $f stride $s $pad', async ({ y, f, out, s, pad }) => {
    const rng = new Rng(5);
    const yv = randn(rng, y);
    const fv = randn(rng, f, 0.3);
    const gv = randn(rng, out);
    await expectSameOnBoth(
      () =>
        tf.tidy(() => {
          const yt = tf.tensor4d(yv, y as [number, number, number, number]);
          const ft = tf.tensor4d(fv, f as [number, number, number, number]);
          const fn = (a: tf.Tensor, b: tf.Tensor) => tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, out as [number, number, number, number], s, pad);
          const [da, db] = tf.grads(fn)([yt, ft], tf.tensor4d(gv, out as [number, number, number, number]));
          return [fn(yt, ft), da, db];
        }),
      TOL,
    );
  });
});

it('the replaced Conv2DBackpropInput is the one running on wasm (2x2 hand-worked example)', async () => {
  await tf.setBackend('wasm');
  // x 1x3x3x1, filter 2x2 of ones, stride 1, valid: dx = dy spread over each 2x2 window.
  const dy = tf.tensor4d([1, 2, 3, 4], [1, 2, 2, 1]);
  const dx = tf.conv2dTranspose(dy, tf.ones([2, 2, 1, 1]) as tf.Tensor4D, [1, 3, 3, 1], 1, 'valid');
  expect(Array.from(dx.dataSync())).toEqual([1, 3, 2, 4, 10, 6, 3, 7, 4]);
  tf.dispose([dy, dx]);
});
