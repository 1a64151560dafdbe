// DepthwiseConv2dNativeBackpropInput for wasm (vtok's; tfjs-backend-wasm 4.22 has none) against the cpu backend's.
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/random';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { depthwiseConv2dBackpropInputWasm } from '../../src/engine/kernels/depthwise-conv2d-backprop-input';
import { expectSameOnBoth, randn } from './helpers';

const NAME = 'DepthwiseConv2dNativeBackpropInput';
let registeredHere = false;

beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
  // Until index.ts registers it with vtok's other kernels.
  if (tf.getKernel(NAME, 'wasm') === undefined) {
    tf.registerKernel({ kernelName: NAME, backendName: 'wasm', kernelFunc: depthwiseConv2dBackpropInputWasm as unknown as tf.KernelFunc });
    registeredHere = true;
  }
});
afterAll(async () => {
  if (registeredHere) tf.unregisterKernel(NAME, 'wasm');
  await shutdownBackend();
});

describe('DepthwiseConv2dNativeBackpropInput (tolerance 1e-5 of scale)', () => {
  // [x shape, filter shape [FH, FW, C, M], stride, pad, dilation] (tfjs 4.22 has no depthwise gradient for dilations > 1)
  const cases: [[number, number, number, number], [number, number, number, number], 1 | 2, 'same' | 'valid', 1 | 2][] = [
    [[2, 7, 6, 3], [3, 3, 3, 1], 1, 'same', 1], // MobileNet's stride-1 blocks
    [[2, 8, 8, 4], [3, 3, 4, 1], 2, 'same', 1], // its stride-2 blocks (even size: padding after only)
    [[1, 9, 7, 2], [3, 3, 2, 1], 2, 'same', 1], // odd sizes
    [[1, 6, 6, 2], [4, 4, 2, 3], 2, 'valid', 1], // channel multiplier 3, no padding
  ];
  it.each(cases)('x %j, filter %j, stride %i, %s, dilation %i: the gradient of x (and of a chain of two)', async (xs, fs, stride, pad, dil) => {
    const rng = new Rng(xs.reduce((a, b) => 31 * a + b, fs[3]));
    const x = randn(rng, xs);
    const w = randn(rng, fs, 0.5);
    const w2 = randn(rng, [3, 3, fs[2] * fs[3], 1], 0.5);
    const u = randn(rng, [1000]);
    await expectSameOnBoth(() => {
      const xt = tf.tensor4d(x, xs);
      const wt = tf.tensor4d(w, fs);
      const f = (a: tf.Tensor): tf.Tensor => {
        const y = tf.depthwiseConv2d(a as tf.Tensor4D, wt, stride, pad, 'NHWC', dil);
        const z = tf.depthwiseConv2d(tf.relu(y) as tf.Tensor4D, tf.tensor4d(w2, [3, 3, fs[2] * fs[3], 1]), 1, 'same');
        return tf.sum(tf.mul(z, tf.tensor(u.subarray(0, z.size), z.shape))); // a weighted sum: every output's gradient differs
      };
      const g = tf.grad(f)(xt);
      tf.dispose([xt, wt]);
      return g;
    }, 1e-5);
  });

  it('hand-worked: one 2x2 filter, stride 1, valid: dx spreads each dy over the window', async () => {
    // x [1, 3, 3, 1], W = [[1, 2], [3, 4]], dy = ones [1, 2, 2, 1]: dx[h, w] = sum of W over the windows covering (h, w).
    await tf.setBackend('wasm');
    const g = tf.tidy(() =>
      Array.from(tf.grad((a: tf.Tensor) => tf.sum(tf.depthwiseConv2d(a as tf.Tensor4D, tf.tensor4d([1, 2, 3, 4], [2, 2, 1, 1]), 1, 'valid')))(tf.zeros([1, 3, 3, 1])).dataSync()),
    );
    expect(g).toEqual([1, 3, 2, 4, 10, 6, 3, 7, 4]);
  });
});
