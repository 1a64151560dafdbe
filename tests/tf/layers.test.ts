import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/random';
import { detached, groupNorm, l2Normalize, stopGradient, straightThrough, upsample2x } from '../../src/tf/layers';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('upsample2x', () => {
  it('equals nearest-neighbour resize and its gradient sums each 2x2 block (batch 2)', () => {
    const [B, h, w, C] = [2, 3, 2, 3];
    const x = tf.tensor4d(Float32Array.from({ length: B * h * w * C }, (_, i) => i), [B, h, w, C]);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const up = upsample2x(x);
      expect(up.shape).toEqual([B, 2 * h, 2 * w, C]);
      expect(Array.from(up.dataSync())).toEqual(Array.from(tf.image.resizeNearestNeighbor(x, [2 * h, 2 * w]).dataSync()));

      // d/dx sum(upsample2x(x) * u) = sum of u over each 2x2 block, per batch and channel.
      const u = tf.tensor4d(Float32Array.from({ length: B * 4 * h * w * C }, (_, i) => ((i * 7) % 11) - 5), [B, 2 * h, 2 * w, C]);
      const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(upsample2x(a as tf.Tensor4D), u)))(x);
      const ud = u.arraySync();
      const want = Array.from({ length: B }, (_, b) =>
        Array.from({ length: h }, (_, i) =>
          Array.from({ length: w }, (_, j) => Array.from({ length: C }, (_, c) => ud[b][2 * i][2 * j][c] + ud[b][2 * i + 1][2 * j][c] + ud[b][2 * i][2 * j + 1][c] + ud[b][2 * i + 1][2 * j + 1][c])),
        ),
      );
      expect(g.arraySync()).toEqual(want);
    });
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });
});

describe('groupNorm', () => {
  it('normalizes each sample and group over positions and channels, then scales per channel (typed-array reference)', () => {
    const [B, H, W, C, G, eps] = [2, 3, 4, 6, 3, 1e-5];
    const rng = new Rng(3);
    const xd = Float32Array.from({ length: B * H * W * C }, () => 3 * rng.normal() + 1);
    const gamma = Float32Array.from({ length: C }, () => rng.normal());
    const beta = Float32Array.from({ length: C }, () => rng.normal());
    const p = { 'n.g': tf.variable(tf.tensor1d(gamma)), 'n.b': tf.variable(tf.tensor1d(beta)) };
    const got = tf.tidy(() => groupNorm(tf.tensor4d(xd, [B, H, W, C]), p, 'n', G, eps).dataSync());
    const per = C / G;
    for (let b = 0; b < B; b++) {
      for (let g = 0; g < G; g++) {
        let mean = 0;
        let sq = 0;
        const idx: number[] = [];
        for (let s = 0; s < H * W; s++) for (let c = g * per; c < (g + 1) * per; c++) idx.push((b * H * W + s) * C + c);
        for (const i of idx) mean += xd[i] / idx.length;
        for (const i of idx) sq += (xd[i] - mean) ** 2 / idx.length;
        for (const i of idx) {
          const c = i % C;
          expect(got[i]).toBeCloseTo(((xd[i] - mean) / Math.sqrt(sq + eps)) * gamma[c] + beta[c], 4);
        }
      }
    }
    tf.dispose(Object.values(p));
  });
});

describe('gradient helpers', () => {
  it('l2Normalize gives unit rows and leaves a zero row at zero', () => {
    const y = tf.tidy(() => l2Normalize(tf.tensor2d([3, 4, 0, 0], [2, 2])).dataSync());
    expect(Array.from(y)).toEqual([0.6000000238418579, 0.800000011920929, 0, 0]);
  });

  it('stopGradient passes the value and a zero gradient', () => {
    const x = tf.tensor1d([1, 2, 3]);
    tf.tidy(() => {
      const g = tf.grad((a: tf.Tensor) => tf.sum(tf.add(tf.mul(stopGradient(a), a), a)))(x); // d/da (sg(a) a + a) = sg(a) + 1
      expect(Array.from(g.dataSync())).toEqual([2, 3, 4]);
    });
    x.dispose();
  });

  it('straightThrough has the value of q and passes dy to z unchanged, nothing to q', () => {
    const z = tf.tensor1d([1, 2, 3]);
    const q = tf.tensor1d([10, 20, 30]);
    tf.tidy(() => {
      expect(Array.from(straightThrough(z, q).dataSync())).toEqual([10, 20, 30]);
      const [gz, gq] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(straightThrough(a, b))))([z, q]); // dy = 2 q
      expect(Array.from(gz.dataSync())).toEqual([20, 40, 60]);
      expect(Array.from(gq.dataSync())).toEqual([0, 0, 0]);
    });
    tf.dispose([z, q]);
  });

  it('detached: an argmin feeding gather does not break tf.grads (it does without)', () => {
    const table = tf.variable(tf.tensor2d([1, 0, 0, 1, -1, 0], [3, 2]));
    const x = tf.tensor2d([0.9, 0.1, -0.8, 0.3], [2, 2]);
    const f = (useDetached: boolean) => () =>
      tf.tidy(() => {
        const pick = (): tf.Tensor1D => tf.argMax(tf.matMul(x, table, false, true), 1);
        const idx = useDetached ? detached(pick) : pick();
        return tf.sum(tf.mul(tf.gather(table, idx), x)) as tf.Scalar;
      });
    tf.tidy(() => {
      const { grads } = tf.variableGrads(f(true), [table]);
      // rows 0 and 2 were picked; each gets its x row.
      expect(Array.from(grads[table.name].dataSync())).toEqual([0.8999999761581421, 0.10000000149011612, 0, 0, -0.800000011920929, 0.30000001192092896]);
    });
    expect(() => tf.variableGrads(f(false), [table])).toThrow();
    tf.dispose([table, x]);
  });
});
