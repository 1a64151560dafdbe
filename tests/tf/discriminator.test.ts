import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/random';
import { createDiscriminator, discriminatorGrid, hingeDiscriminatorLoss, hingeGeneratorLoss, resolveDiscriminatorConfig } from '../../src/tf/discriminator';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Seeded images in [-1, 1]. */
function images(B: number, H: number, W: number, C = 3, seed = 1): tf.Tensor4D {
  const rng = new Rng(seed);
  return tf.tensor4d(Float32Array.from({ length: B * H * W * C }, () => 2 * rng.next() - 1), [B, H, W, C]);
}

/**
 * A plain-loop convolution with TensorFlow's 'same' padding (total padding
 * max((out - 1) * stride + k - n, 0), the smaller half before), independent
 * of tf.conv2d. x [H][W][Cin], w [k][k][Cin][Cout] -> [out][out'][Cout].
 */
function naiveConv(x: number[][][], w: number[][][][], b: number[], stride: number): number[][][] {
  const [H, W, Cin] = [x.length, x[0].length, x[0][0].length];
  const k = w.length;
  const Cout = b.length;
  const [oh, ow] = [Math.ceil(H / stride), Math.ceil(W / stride)];
  const top = Math.floor(Math.max((oh - 1) * stride + k - H, 0) / 2);
  const left = Math.floor(Math.max((ow - 1) * stride + k - W, 0) / 2);
  return Array.from({ length: oh }, (_, i) =>
    Array.from({ length: ow }, (_, j) =>
      Array.from({ length: Cout }, (_, o) => {
        let s = b[o];
        for (let di = 0; di < k; di++) {
          for (let dj = 0; dj < k; dj++) {
            const [y, xx] = [i * stride + di - top, j * stride + dj - left];
            if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
            for (let c = 0; c < Cin; c++) s += x[y][xx][c] * w[di][dj][c][o];
          }
        }
        return s;
      }),
    ),
  );
}

describe('hinge losses', () => {
  it('match hand-computed values', () => {
    // real [2, -0.5, 0.3, 1]: relu(1 - r) = [0, 1.5, 0.7, 0], mean 0.55
    // fake [-2, 0.5, -0.3, 1]: relu(1 + f) = [0, 1.5, 0.7, 2], mean 1.05  -> D loss 1.6
    // generator: -mean(fake) = -(-2 + 0.5 - 0.3 + 1) / 4 = 0.2
    const real = tf.tensor4d([2, -0.5, 0.3, 1], [1, 2, 2, 1]);
    const fake = tf.tensor4d([-2, 0.5, -0.3, 1], [1, 2, 2, 1]);
    const before = tf.memory().numTensors;
    const d = hingeDiscriminatorLoss(real, fake);
    const g = hingeGeneratorLoss(fake);
    expect(d.shape).toEqual([]);
    expect(d.dataSync()[0]).toBeCloseTo(1.6, 6);
    expect(g.dataSync()[0]).toBeCloseTo(0.2, 6);
    tf.dispose([d, g]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([real, fake]);
  });

  it('are 0 for a confident discriminator (|logits| >= 1 on the right side) and the generator loss falls as D(fake) rises', () => {
    const d = tf.tidy(() => hingeDiscriminatorLoss(tf.tensor1d([1, 3]), tf.tensor1d([-1, -5])).dataSync()[0]);
    expect(d).toBe(0);
    // Gradients: dD/dreal = -1/n where r < 1, dD/dfake = 1/n where f > -1; dG/dfake = -1/n.
    const values = (t: tf.Tensor): number[] => Array.from(t.dataSync(), (v) => v + 0); // -0 -> 0
    tf.tidy(() => {
      const [gr, gf] = tf.grads((r: tf.Tensor, f: tf.Tensor) => hingeDiscriminatorLoss(r, f))([tf.tensor1d([0.5, 2]), tf.tensor1d([0, -3])]);
      expect(values(gr)).toEqual([-0.5, 0]);
      expect(values(gf)).toEqual([0.5, 0]);
      const gg = tf.grad((f: tf.Tensor) => hingeGeneratorLoss(f))(tf.tensor1d([0, 7]));
      expect(values(gg)).toEqual([-0.5, -0.5]);
    });
  });
});

describe('Discriminator', () => {
  it.each([
    [{ channels: 4, layers: 2 }, 2, 16, 16, [2, 4, 4, 1]],
    [{ channels: 4, layers: 3 }, 1, 32, 24, [1, 4, 3, 1]],
    [{ channels: 2, layers: 1 }, 3, 15, 15, [3, 8, 8, 1]],
    [{ channels: 2, layers: 4 }, 1, 8, 8, [1, 1, 1, 1]],
  ] as const)('%j on [%i, %i, %i, 3] gives logits %j', (config, B, H, W, want) => {
    const d = createDiscriminator(config, 3);
    const x = images(B, H, W);
    const before = tf.memory().numTensors;
    const y = d.forward(x);
    expect(y.shape).toEqual(want);
    expect(discriminatorGrid(d.config, H, W)).toEqual([want[1], want[2]]);
    expect(y.dataSync().every(Number.isFinite)).toBe(true);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    d.dispose();
  });

  it('agrees with a plain-loop convolution (two strided 4x4 convs, leaky ReLU 0.2, 4x4 logit conv)', () => {
    const d = createDiscriminator({ channels: 2, layers: 2, imageChannels: 1 }, 5);
    const x = images(1, 6, 6, 1, 9);
    const w = d.getWeights();
    const arr = (name: string, shape: number[]): number[][][][] => tf.tidy(() => tf.tensor(w[name].data as Float32Array, shape).arraySync() as number[][][][]);
    const leaky = (t: number[][][]): number[][][] => t.map((r) => r.map((p) => p.map((v) => (v > 0 ? v : 0.2 * v))));
    let h = (x.arraySync() as number[][][][])[0]; // [6, 6, 1]
    h = leaky(naiveConv(h, arr('disc.conv0.w', [4, 4, 1, 2]), Array.from(w['disc.conv0.b'].data), 2)); // [3, 3, 2]
    h = leaky(naiveConv(h, arr('disc.conv1.w', [4, 4, 2, 4]), Array.from(w['disc.conv1.b'].data), 2)); // [2, 2, 4]
    const want = naiveConv(h, arr('disc.out.w', [4, 4, 4, 1]), Array.from(w['disc.out.b'].data), 1); // [2, 2, 1]
    const got = tf.tidy(() => d.forward(x).arraySync() as number[][][][])[0];
    expect(got.length).toBe(2);
    got.flat(2).forEach((v, i) => expect(v).toBeCloseTo(want.flat(2)[i], 5));
    x.dispose();
    d.dispose();
  });

  it('is seeded, round-trips its weights, and passes gradients to its input', () => {
    const a = createDiscriminator({ channels: 3, layers: 2 }, 11);
    const b = createDiscriminator({ channels: 3, layers: 2 }, 11);
    const c = createDiscriminator({ channels: 3, layers: 2 }, 12);
    const wa = a.getWeights();
    expect(Object.keys(wa)).toEqual(['disc.conv0.w', 'disc.conv0.b', 'disc.conv1.w', 'disc.conv1.b', 'disc.out.w', 'disc.out.b']);
    expect(wa['disc.conv1.w'].shape).toEqual([4, 4, 3, 6]);
    expect(Array.from(b.getWeights()['disc.conv0.w'].data)).toEqual(Array.from(wa['disc.conv0.w'].data));
    expect(Array.from(c.getWeights()['disc.conv0.w'].data)).not.toEqual(Array.from(wa['disc.conv0.w'].data));
    c.setWeights(wa);
    const x = images(2, 8, 8);
    expect(tf.tidy(() => Array.from(c.forward(x).dataSync()))).toEqual(tf.tidy(() => Array.from(a.forward(x).dataSync())));
    const g = tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(a.forward(t as tf.Tensor4D)))(x));
    expect(tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0])).toBeGreaterThan(0);
    tf.dispose([x, g]);
    for (const m of [a, b, c]) m.dispose();
  });

  it('rejects bad configs, inputs and weights with errors that name them', () => {
    expect(() => resolveDiscriminatorConfig({ layers: 0 })).toThrow('Expected integer between 1 and 8 for layers but received 0 of type number');
    expect(() => resolveDiscriminatorConfig({ chanels: 4 } as never)).toThrow(/Unknown option "chanels" for the discriminator config/);
    const d = createDiscriminator({ channels: 2, layers: 1 }, 0);
    const grey = tf.zeros([1, 8, 8, 1]) as tf.Tensor4D;
    expect(() => d.forward(grey)).toThrow('Expected images as a float32 tensor [B, H, W, 3] but received float32 [1, 8, 8, 1]');
    const w = d.getWeights();
    delete w['disc.out.b'];
    expect(() => d.setWeights(w)).toThrow('Weights do not match the discriminator config: missing disc.out.b');
    grey.dispose();
    d.dispose();
    expect(() => d.forward(grey)).toThrow('This discriminator was disposed');
  });
});
