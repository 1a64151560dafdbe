// vtok's other wasm kernels (BatchMatMul, Slice family, UnsortedSegmentSum)
// against the cpu backend, and the two tfjs 4.22 bugs: each shown on the stock
// kernel, and fixed by vtok's.
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { stockKernel } from '../../src/engine/kernels';
import { nearestSource } from '../../src/engine/kernels/resize-nearest-grad';
import { planBroadcast } from '../../src/engine/kernels/binary';
import { simplifyPermutation } from '../../src/engine/kernels/transpose';
import { Rng } from '../../src/core/random';
import { expectSameOnBoth, randn, relError, runOn } from './helpers';

beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 2 });
});
afterAll(() => shutdownBackend());

describe('BatchMatMul (tolerance 1e-5 of scale)', () => {
  const cases: [number[], number[], boolean, boolean][] = [
    [[2, 3, 4], [2, 4, 5], false, false],
    [[2, 4, 3], [2, 4, 5], true, false],
    [[2, 3, 4], [2, 5, 4], false, true],
    [[2, 4, 3], [2, 5, 4], true, true],
    [[1, 3, 4], [3, 4, 5], false, false], // a broadcast over b's batch
    [[3, 3, 4], [1, 4, 5], false, false], // b shared: one product
    [[3, 4, 3], [1, 4, 5], true, false],
    [[2, 3, 33, 17], [2, 3, 29, 17], false, true], // attention Q K^T shape
    [[1, 5, 9], [1, 9, 4], false, false], // stock fast path untouched
    [[4, 1, 8], [4, 8, 1], false, false], // vectors
    [[2, 0, 3], [2, 3, 4], false, false], // empty
  ];
  it.each(cases)('a %j b %j transposeA %s transposeB %s', async (as, bs, ta, tb) => {
    const rng = new Rng(3);
    const av = randn(rng, as);
    const bv = randn(rng, bs);
    await expectSameOnBoth(() => tf.tidy(() => tf.matMul(tf.tensor(av, as), tf.tensor(bv, bs), ta, tb)), 1e-5);
  });

  it('broadcasts batch dims like numpy, also in the middle (cpu 4.22 does not)', async () => {
    // a [2, 2, 3, 2], b [2, 1, 2, 2]: out[i, j] = a[i, j] @ b[i, 0].
    const rng = new Rng(6);
    const av = randn(rng, [2, 2, 3, 2]);
    const bv = randn(rng, [2, 1, 2, 2]);
    const want = new Float32Array(2 * 2 * 3 * 2);
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 2; j++)
        for (let r = 0; r < 3; r++)
          for (let c = 0; c < 2; c++) {
            let acc = 0;
            for (let k = 0; k < 2; k++) acc += av[((i * 2 + j) * 3 + r) * 2 + k] * bv[(i * 2 + k) * 2 + c];
            want[((i * 2 + j) * 3 + r) * 2 + c] = acc;
          }
    const [got] = await runOn('wasm', () => tf.tidy(() => tf.matMul(tf.tensor(av, [2, 2, 3, 2]), tf.tensor(bv, [2, 1, 2, 2]))));
    expect(relError(got, want)).toBeLessThan(1e-6);
  });

  it('gradients of a batched matmul with transposes', async () => {
    const rng = new Rng(4);
    const av = randn(rng, [3, 6, 5]);
    const bv = randn(rng, [3, 7, 5]);
    await expectSameOnBoth(
      () =>
        tf.tidy(() => {
          const f = (a: tf.Tensor, b: tf.Tensor) => tf.matMul(a, b, false, true).square().sum();
          return tf.grads(f)([tf.tensor(av, [3, 6, 5]), tf.tensor(bv, [3, 7, 5])]);
        }),
      1e-5,
    );
  });

  it('hand-worked 2x2 products, batch 2, b transposed', async () => {
    await tf.setBackend('wasm');
    const a = tf.tensor3d([1, 2, 3, 4, 1, 0, 0, 1], [2, 2, 2]);
    const b = tf.tensor3d([1, 1, 0, 1, 2, 0, 0, 3], [2, 2, 2]);
    // batch 0: [[1,2],[3,4]] x [[1,1],[0,1]]^T = [[3,2],[7,4]]; batch 1: I x [[2,0],[0,3]]^T
    const y = tf.matMul(a, b, false, true);
    expect(Array.from(y.dataSync())).toEqual([3, 2, 7, 4, 2, 0, 0, 3]);
    tf.dispose([a, b, y]);
  });
});

describe('Slice, split, unstack, stridedSlice (exact)', () => {
  const x = Array.from({ length: 2 * 3 * 4 * 5 * 2 }, (_, i) => i - 40);
  const shape5 = [2, 3, 4, 5, 2];
  const slices: [number[], number[], number[]][] = [
    [[10], [3], [4]],
    [[2, 5], [1, 2], [1, 3]],
    [[3, 4, 5], [0, 1, 0], [3, 2, 5]],
    [[3, 4, 5], [1, 0, 2], [2, 4, 1]], // one-element runs
    [[2, 3, 4, 5], [1, 1, 1, 1], [1, 2, 3, 4]],
    [[2, 3, 4, 5], [0, 0, 0, 0], [2, 3, 4, 5]], // whole
    [shape5, [1, 0, 2, 1, 0], [1, 3, 2, 3, 2]],
    [[2, 3, 4, 5], [1, 1, 0, 0], [0, 2, 4, 5]], // empty
  ];
  it.each(slices)('shape %j begin %j size %j (float32, int32, bool)', async (shape, begin, size) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const vals = x.slice(0, n);
    for (const dtype of ['float32', 'int32', 'bool'] as const) {
      const data = dtype === 'bool' ? vals.map((v) => (v % 3 === 0 ? 1 : 0)) : vals;
      await expectSameOnBoth(() => tf.tidy(() => tf.slice(tf.tensor(data, shape, dtype), begin, size)), 0);
    }
  });

  it('split, unstack and simple stridedSlice', async () => {
    const vals = x.slice(0, 2 * 3 * 4 * 5);
    await expectSameOnBoth(
      () =>
        tf.tidy(() => {
          const t = tf.tensor(vals, [2, 3, 4, 5]);
          return [
            ...tf.split(t, [1, 3, 1], 3),
            ...tf.split(t, 3, 1),
            ...tf.unstack(t, 2),
            tf.stridedSlice(t, [1, 0, 1, 0], [2, 3, 3, 5], [1, 1, 1, 1]),
            tf.stridedSlice(t, [0, 0, 0, 0], [2, 3, 4, 5], [1, 2, 1, 2]), // strided: stock C++ path
          ];
        }),
      0,
    );
  });

  it('copies only the slice: wasm agrees with a hand-written expectation', async () => {
    await tf.setBackend('wasm');
    const t = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [2, 3, 2]);
    const s = tf.slice(t, [0, 1, 1], [2, 2, 1]);
    expect(Array.from(s.dataSync())).toEqual([4, 6, 10, 12]);
    tf.dispose([t, s]);
  });
});

describe('Tile (exact)', () => {
  it('hand-worked: [2, 1, 3] tiled [1, 2, 1]', async () => {
    await tf.setBackend('wasm');
    const t = tf.tensor3d([1, 2, 3, 4, 5, 6], [2, 1, 3]);
    const y = tf.tile(t, [1, 2, 1]);
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6]);
    tf.dispose([t, y]);
  });

  it.each([
    [[5], [3]],
    [[2, 3], [2, 1]],
    [[2, 3], [1, 3]],
    [[2, 3, 4], [2, 3, 2]],
    [[3, 4, 1, 5], [1, 1, 2, 1]], // the upsampling pattern
    [[2, 2, 1, 6], [1, 1, 2, 1]],
    [[2, 3], [1, 1]],
    [[2, 0, 3], [2, 2, 2]],
  ])('x %j reps %j (float32, int32, bool)', async (shape, reps) => {
    const n = shape.reduce((a, b) => a * b, 1);
    for (const dtype of ['float32', 'int32', 'bool'] as const) {
      const data = Array.from({ length: n }, (_, i) => (dtype === 'bool' ? i % 2 : i * 3 - 7));
      await expectSameOnBoth(() => tf.tidy(() => tf.tile(tf.tensor(data, shape, dtype), reps)), 0);
    }
  });

  it('gradient of nearest 2x upsampling by reshape + Tile', async () => {
    const xv = randn(new Rng(30), [2, 3, 4, 5]);
    const up = (x: tf.Tensor) => {
      const cols = tf.tile(x.reshape([6, 4, 1, 5]), [1, 1, 2, 1]);
      return tf.tile(cols.reshape([2, 3, 1, 40]), [1, 1, 2, 1]).reshape([2, 6, 8, 5]);
    };
    await expectSameOnBoth(() => tf.tidy(() => [up(tf.tensor(xv, [2, 3, 4, 5])), tf.grad((x: tf.Tensor) => up(x).square().sum())(tf.tensor(xv, [2, 3, 4, 5]))]), 1e-6);
  });
});

describe('Transpose (exact)', () => {
  it('simplifies permutations: drops size-1 axes, merges axes that stay adjacent', () => {
    expect(simplifyPermutation([2, 3, 4], [0, 1, 2])).toEqual({ shape: [24], perm: [0] });
    expect(simplifyPermutation([32, 74, 4, 40], [0, 2, 1, 3])).toEqual({ shape: [32, 74, 4, 40], perm: [0, 2, 1, 3] });
    expect(simplifyPermutation([2, 3, 4, 5], [2, 3, 0, 1])).toEqual({ shape: [6, 20], perm: [1, 0] });
    expect(simplifyPermutation([2, 1, 3, 4], [1, 0, 3, 2])).toEqual({ shape: [2, 3, 4], perm: [0, 2, 1] });
    expect(simplifyPermutation([5, 1, 1], [2, 0, 1])).toEqual({ shape: [5], perm: [0] });
  });

  it('hand-worked: [2, 2, 3] with perm [1, 0, 2] swaps the rows of 3', async () => {
    await tf.setBackend('wasm');
    const t = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], [2, 2, 3]);
    const y = tf.transpose(t, [1, 0, 2]);
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 7, 8, 9, 4, 5, 6, 10, 11, 12]);
    tf.dispose([t, y]);
  });

  it.each([
    [[3, 4, 2, 3, 5], [2, 0, 3, 1, 4]], // attention's qkv split [B, T, 3, H, hd] -> [3, B, H, T, hd]
    [[2, 3, 4, 3, 5], [1, 3, 0, 2, 4]], // and its gradient's inverse
    [[2, 5, 3, 4], [0, 2, 1, 3]], // heads [B, T, H, hd] <-> [B, H, T, hd]
    [[2, 1, 3, 4], [1, 0, 2, 3]], // only a size-1 axis moves: one copy
    [[4, 5], [1, 0]], // element-wise: the stock kernel
    [[2, 3, 4], [0, 2, 1]],
    [[3, 2, 4, 5, 2, 3], [5, 1, 0, 3, 2, 4]], // rank 6, last axis moves
    [[3, 2, 4, 5, 2, 3], [4, 1, 0, 3, 2, 5]], // rank 6, last axis stays
    [[2, 0, 3], [1, 0, 2]],
    [[7], [0]],
  ])('x %j perm %j (float32, int32, bool)', async (shape, perm) => {
    const n = shape.reduce((a, b) => a * b, 1);
    for (const dtype of ['float32', 'int32', 'bool'] as const) {
      const data = Array.from({ length: n }, (_, i) => (dtype === 'bool' ? (i * 7) % 3 === 0 ? 1 : 0 : i * 3 - 7));
      await expectSameOnBoth(() => tf.tidy(() => tf.transpose(tf.tensor(data, shape, dtype), perm)), 0);
    }
  });

  it('gradient of a rank-5 transpose', async () => {
    const xv = randn(new Rng(31), [2, 3, 3, 2, 4]);
    const f = (x: tf.Tensor) => tf.transpose(x, [2, 0, 3, 1, 4]);
    await expectSameOnBoth(() => tf.tidy(() => tf.grad((x: tf.Tensor) => f(x).mul(tf.range(0, 144).reshape([3, 2, 2, 3, 4])).sum())(tf.tensor(xv, [2, 3, 3, 2, 4]))), 1e-6);
  });
});

describe('Add, Sub, Multiply, RealDiv with broadcasting; Square', () => {
  it('plans GroupNorm\'s broadcast as [B, HW, G*C/G] vs [B, 1, G*C/G] after repeating the small operand', () => {
    expect(planBroadcast([4, 4096, 8, 4], [4, 1, 8, 1])).toEqual({ reps: [1, 1, 1, 4], bigShape: [4, 4096, 32], smallShape: [4, 1, 32] });
    expect(planBroadcast([2, 5, 5, 8], [8])).toEqual({ reps: [1, 1, 1, 1], bigShape: [50, 8], smallShape: [1, 8] });
    // per-row scale: repeating makes it full size, which binaryWasm leaves to the stock kernel (size guard)
    expect(planBroadcast([6, 7], [6, 1])).toEqual({ reps: [1, 7], bigShape: [42], smallShape: [42] });
    expect(planBroadcast([6, 7], [1, 7])).toBeUndefined(); // rank 2, nothing to repeat: stock
  });

  const shapes: [number[], number[]][] = [
    [[2, 12, 4, 3], [2, 1, 4, 1]], // GroupNorm
    [[2, 1, 4, 1], [2, 12, 4, 3]], // small first (order matters for Sub, RealDiv)
    [[2, 5, 5, 8], [8]], // bias
    [[3, 7, 5], [3, 7, 1]], // per-row scale
    [[3, 7, 5], [1, 7, 1]],
    [[4, 6], [4, 1]],
    [[5, 1], [1, 6]], // both broadcast: stock
    [[3, 4], [3, 4]],
    [[3, 4], [1]],
  ];
  it.each(shapes)('a %j b %j', async (as, bs) => {
    const rng = new Rng(40);
    const av = randn(rng, as);
    const bv = Array.from(randn(rng, bs), (v) => v + Math.sign(v) * 0.5); // away from 0 for RealDiv
    await expectSameOnBoth(
      () =>
        tf.tidy(() => {
          const a = tf.tensor(av, as);
          const b = tf.tensor(bv, bs);
          return [tf.add(a, b), tf.sub(a, b), tf.mul(a, b), tf.div(a, b), tf.square(a)];
        }),
      1e-6,
    );
  });

  it('gradients through GroupNorm-style broadcasts', async () => {
    const xv = randn(new Rng(41), [2, 6, 4, 3]);
    await expectSameOnBoth(
      () =>
        tf.tidy(() =>
          tf.grad((x: tf.Tensor) => {
            const mean = tf.mean(x, [1, 3], true);
            const c = tf.sub(x, mean);
            return tf.mul(c, tf.rsqrt(tf.add(tf.mean(tf.square(c), [1, 3], true), 1e-5))).mul(tf.range(0, 3)).sum();
          })(tf.tensor(xv, [2, 6, 4, 3])),
        ),
      1e-5,
    );
  });
});

describe('UnsortedSegmentSum', () => {
  it('hand-worked example, ids out of range dropped', async () => {
    await tf.setBackend('wasm');
    const x = tf.tensor2d([1, 2, 3, 4, 5, 6, 7, 8], [4, 2]);
    const ids = tf.tensor1d([2, 0, 2, 5], 'int32');
    const y = tf.unsortedSegmentSum(x, ids, 3);
    expect(y.shape).toEqual([3, 2]);
    expect(Array.from(y.dataSync())).toEqual([3, 4, 0, 0, 6, 8]);
    tf.dispose([x, ids, y]);
  });

  it.each([
    [[10, 3], [10], 4, 'float32'],
    [[7, 5, 3], [7], 6, 'float32'],
    [[6, 2, 2], [6], 3, 'int32'],
  ] as const)('x %j ids %j numSegments %d %s matches cpu', async (xs, is, k, dtype) => {
    const rng = new Rng(8);
    const n = xs.reduce((a, b) => a * b, 1);
    const xv = Array.from(randn(rng, [n]), (v) => (dtype === 'int32' ? Math.round(v * 10) : v));
    const iv = Array.from({ length: is.reduce((a, b) => a * b, 1) }, () => rng.int(k + 2) - 1); // includes -1 and k
    await expectSameOnBoth(() => tf.tidy(() => tf.unsortedSegmentSum(tf.tensor(xv, [...xs], dtype), tf.tensor(iv, [...is], 'int32'), k)), 1e-6);
  });

  it('is the gradient of gather (embedding table), axis 0 and 1', async () => {
    const rng = new Rng(9);
    const table = randn(rng, [6, 4]);
    const idx = [5, 0, 0, 3, 5, 5, 1];
    await expectSameOnBoth(
      () =>
        tf.tidy(() => {
          const t = tf.tensor2d(table, [6, 4]);
          const i = tf.tensor1d(idx, 'int32');
          const g0 = tf.grad((a: tf.Tensor) => tf.gather(a, i).square().sum())(t);
          const g1 = tf.grad((a: tf.Tensor) => tf.gather(a, tf.tensor1d([3, 3, 1], 'int32'), 1).sum())(t);
          return [g0, g1];
        }),
      1e-6,
    );
  });
});

describe('tfjs 4.22 bug: wasm MaxPoolGrad with all-negative windows', () => {
  // x is 2 rows x 4 columns: [-5 -1 -3 -2 / -7 -8 -6 -4]. Two 2x2 windows:
  // {-5 -1 -7 -8} has its max -1 at (0, 1); {-3 -2 -6 -4} has -2 at (0, 3).
  const x = [-5, -1, -3, -2, -7, -8, -6, -4];
  const want = [0, 1, 0, 1, 0, 0, 0, 0];
  const grad = () => tf.tidy(() => tf.grad((a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, 2, 2, 'valid'))(tf.tensor4d(x, [1, 2, 4, 1])));

  it('stock wasm kernel routes the gradient wrongly', async () => {
    await tf.setBackend('wasm');
    const stock = stockKernel('MaxPoolGrad', 'wasm');
    expect(stock).toBeDefined();
    const ours = tf.getKernel('MaxPoolGrad', 'wasm');
    tf.unregisterKernel('MaxPoolGrad', 'wasm');
    try {
      tf.registerKernel(stock as tf.KernelConfig);
      const [got] = await runOn('wasm', grad);
      expect(Array.from(got)).not.toEqual(want);
    } finally {
      tf.unregisterKernel('MaxPoolGrad', 'wasm');
      tf.registerKernel(ours as tf.KernelConfig);
    }
  });

  it("vtok's kernel gives the right answer, as cpu does", async () => {
    expect(Array.from((await runOn('cpu', grad))[0])).toEqual(want);
    expect(Array.from((await runOn('wasm', grad))[0])).toEqual(want);
  });

  it('matches cpu on random data with padding, strides and overlaps', async () => {
    const rng = new Rng(12);
    const xv = randn(rng, [2, 9, 8, 3]);
    for (const [k, s, pad] of [
      [3, 2, 'same'],
      [2, 2, 'valid'],
      [3, 1, 'same'],
    ] as const) {
      await expectSameOnBoth(() => tf.tidy(() => tf.grad((a: tf.Tensor) => tf.maxPool(a as tf.Tensor4D, k, s, pad).square().sum())(tf.tensor4d(xv, [2, 9, 8, 3]))), 1e-6);
    }
  });
});

describe('tfjs 4.22 bug: cpu ResizeNearestNeighborGrad with batch > 1', () => {
  // Reference: route each dy pixel to the source pixel the forward pass read.
  function reference(dy: Float32Array, B: number, H: number, W: number, C: number, NH: number, NW: number, ac: boolean, hp: boolean): Float32Array {
    const dx = new Float32Array(B * H * W * C);
    for (let b = 0; b < B; b++)
      for (let r = 0; r < NH; r++)
        for (let c = 0; c < NW; c++)
          for (let d = 0; d < C; d++) {
            const sr = nearestSource(r, H, NH, ac, hp);
            const sc = nearestSource(c, W, NW, ac, hp);
            dx[((b * H + sr) * W + sc) * C + d] += dy[((b * NH + r) * NW + c) * C + d];
          }
    return dx;
  }
  const [B, H, W, C, NH, NW] = [2, 3, 4, 2, 6, 8];
  const dyv = randn(new Rng(21), [B, NH, NW, C]);
  const grad = (ac: boolean, hp: boolean) => () =>
    tf.tidy(() => tf.grad((a: tf.Tensor) => tf.image.resizeNearestNeighbor(a as tf.Tensor4D, [NH, NW], ac, hp))(tf.zeros([B, H, W, C]), tf.tensor4d(dyv, [B, NH, NW, C])));

  it('the hand-checked source rule', () => {
    // 3 -> 6 doubles every row; align corners (ratio 2/5, rounded) gives the same here
    expect([0, 1, 2, 3, 4, 5].map((r) => nearestSource(r, 3, 6, false, false))).toEqual([0, 0, 1, 1, 2, 2]);
    expect([0, 1, 2, 3, 4, 5].map((r) => nearestSource(r, 3, 6, true, false))).toEqual([0, 0, 1, 1, 2, 2]);
    // 2 -> 5 with align corners: ratio 1/4, rounded: 0, 0, 1(0.5 rounds up), 1, 1
    expect([0, 1, 2, 3, 4].map((r) => nearestSource(r, 2, 5, true, false))).toEqual([0, 0, 1, 1, 1]);
    // 4 -> 2 with half-pixel centres picks the centres' pixels 2*(r+0.5) = 1, 3
    expect([0, 1].map((r) => nearestSource(r, 4, 2, false, true))).toEqual([1, 3]);
  });

  it('stock cpu kernel is wrong for batch 2', async () => {
    await tf.setBackend('cpu');
    const ours = tf.getKernel('ResizeNearestNeighborGrad', 'cpu');
    tf.unregisterKernel('ResizeNearestNeighborGrad', 'cpu');
    try {
      tf.registerKernel(stockKernel('ResizeNearestNeighborGrad', 'cpu') as tf.KernelConfig);
      const [got] = await runOn('cpu', grad(false, false));
      expect(relError(got, reference(dyv, B, H, W, C, NH, NW, false, false))).toBeGreaterThan(0.1);
    } finally {
      tf.unregisterKernel('ResizeNearestNeighborGrad', 'cpu');
      tf.registerKernel(ours as tf.KernelConfig);
    }
  });

  it.each([
    [false, false],
    [true, false],
    [false, true],
  ])("vtok's cpu kernel and wasm's agree with the reference (alignCorners %s, halfPixelCenters %s)", async (ac, hp) => {
    const want = reference(dyv, B, H, W, C, NH, NW, ac, hp);
    expect(relError((await runOn('cpu', grad(ac, hp)))[0], want)).toBeLessThan(1e-6);
    expect(relError((await runOn('wasm', grad(ac, hp)))[0], want)).toBeLessThan(1e-6);
  });
});
