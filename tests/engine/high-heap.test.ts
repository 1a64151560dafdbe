// vtok's wasm kernels once indexed the heap with signed 32-bit shifts: once the
// heap grew past 2 GiB (a batch-8 training step at 128x128 gets there), tensors
// placed above that line were read and written at negative indices, and the
// weight gradients came out with NaN. Here a 2.1 GiB tensor pushes the next
// allocations past 2 GiB, and the kernels must still agree with cpu.
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { Rng } from '../../src/core/random';
import { randn, relError } from './helpers';

beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 2 });
});
afterAll(() => shutdownBackend());

function offsetOf(t: tf.Tensor): number {
  const be = tf.backend() as unknown as { dataIdMap: { get(id: object): { memoryOffset: number } } };
  return be.dataIdMap.get(t.dataId).memoryOffset >>> 0;
}

it('conv weight gradient, slice and tile agree with cpu for tensors above 2 GiB of wasm heap', async () => {
  const rng = new Rng(5);
  const xv = randn(rng, [2, 9, 9, 3]);
  const dyv = randn(rng, [2, 9, 9, 4]);
  const ops = (): tf.Tensor[] => {
    const x = tf.tensor4d(xv, [2, 9, 9, 3]);
    const dy = tf.tensor4d(dyv, [2, 9, 9, 4]);
    // x and dy may sit below the line; what the kernels allocate goes above it.
    const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, {
      strides: [1, 1],
      pad: 'same',
      dataFormat: 'NHWC',
      dimRoundingMode: undefined,
      filterShape: [3, 3, 3, 4],
    } as unknown as tf.NamedAttrMap) as tf.Tensor;
    const sl = tf.slice(dy, [1, 2, 3, 1], [1, 5, 4, 2]);
    const tl = tf.tile(x, [1, 2, 1, 2]);
    const out = [dw, sl, tl];
    tf.dispose([x, dy]);
    return out;
  };
  await tf.setBackend('cpu');
  const want = ops().map((t) => {
    const v = Float32Array.from(t.dataSync());
    t.dispose();
    return v;
  });
  await tf.setBackend('wasm');
  const ballast = tf.zeros([Math.ceil((2.1 * 2 ** 30) / 4)]); // 2.1 GiB of float32
  try {
    const got = ops();
    expect(got.some((t) => offsetOf(t) >= 2 ** 31)).toBe(true); // the case under test did happen
    got.forEach((t, i) => {
      const v = t.dataSync() as Float32Array;
      expect(v.every(Number.isFinite)).toBe(true);
      expect(relError(v, want[i])).toBeLessThanOrEqual(2e-5);
    });
    tf.dispose(got);
  } finally {
    ballast.dispose();
  }
});
