import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { createTokenizerModel } from '../../src/tf/tokenizer';
import { type QuantizerBatch } from '../../src/tf/quantizer';

// This test trains on the wasm backend (one thread, with src/engine's training kernels), the backend
// training uses on a CPU: on the cpu backend the same 25 steps take over a minute under jest (its
// Conv2DBackpropFilter indexes a TensorBuffer element by element), on wasm about 3 s. The cpu backend
// gives the same losses for this model (checked while writing this test: 0.397 -> 0.0126 on both).
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});

afterAll(async () => {
  await shutdownBackend();
});

/** Two 16x16 images with different structure: a horizontal red ramp, and a vertical green ramp with a dark blue cast. */
function twoImages(): tf.Tensor4D {
  const S = 16;
  const d = new Float32Array(2 * S * S * 3);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const u = x / (S - 1);
      const v = y / (S - 1);
      d.set([2 * u - 1, -0.5, 0.5], (y * S + x) * 3);
      d.set([0.3, 2 * v - 1, -0.8], ((S + y) * S + x) * 3);
    }
  }
  return tf.tensor4d(d, [2, S, S, 3]);
}

it('a tiny tokenizer overfits two images: reconstruction error falls by at least 10x within 25 Adam steps', () => {
  // Every codebook-health feature is on: k-means init on the first batch (8 latents, K = 8), EMA updates, dead-code restarts.
  const model = createTokenizerModel(
    { baseChannels: 8, channelMult: [1, 1, 2, 2], normGroups: 4, codebookSize: 8, semanticDim: 4, pixelDim: 4, headResBlocks: 0, kmeansSamples: 8, deadCodeSteps: 10 },
    3,
  );
  const x = twoImages();
  const before = tf.memory().numTensors;
  const reconError = (): number => tf.tidy(() => tf.mean(tf.square(tf.sub(model.decode(model.encode(x)), x))).dataSync()[0]);
  const initial = reconError();
  const opt = tf.train.adam(4e-3);
  const losses: number[] = [];
  for (let step = 0; step < 25; step++) {
    let seen: QuantizerBatch | undefined;
    const loss = opt.minimize(
      () => {
        const out = model.forward(x);
        seen = model.readBatch(out);
        return tf.add(tf.mean(tf.square(tf.sub(out.recon, x))), out.losses.commit) as tf.Scalar;
      },
      true,
      model.trainableVariables(),
    ) as tf.Scalar;
    losses.push(loss.dataSync()[0]);
    loss.dispose();
    const report = model.updateCodebooks(seen as QuantizerBatch);
    if (step === 0) expect(report.initialized).toBe(true);
  }
  // Measured: decode(encode(x)) error 0.397 -> 0.0126 (31x).
  const final = reconError();
  expect(final).toBeLessThan(initial / 10);
  expect(losses[losses.length - 1]).toBeLessThan(losses[0] / 10);
  // The two images got different code grids, and the codebook is in use.
  const codes = tf.tidy(() => model.encode(x).arraySync());
  expect(codes[0]).not.toEqual(codes[1]);
  expect(model.codebookStats().usage).toBeGreaterThanOrEqual(0.5);
  opt.dispose();
  expect(tf.memory().numTensors).toBe(before);
  x.dispose();
  model.dispose();
});
