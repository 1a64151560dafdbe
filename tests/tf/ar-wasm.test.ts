// The autoregressive head on vtok's wasm backend gives what it gives on cpu:
// training losses step by step, and the ids that generation samples.
// (This caught tfjs 4.22's wasm OneHot writing int32 bits into float32 tensors.)
import * as tf from '@tensorflow/tfjs';
import { ArBatch } from '../../src/core/ar-streams';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { generate } from '../../src/tf/ar-generate';
import { arLoss, arLossFn } from '../../src/tf/ar-loss';
import { Transformer, oneHotFloat } from '../../src/tf/transformer';

afterAll(() => shutdownBackend());

const batch: ArBatch = {
  batch: 2,
  length: 4,
  inputs: Int32Array.from([1, 25, 26, 27, 1, 28, 29, 0]),
  targets: Int32Array.from([25, 26, 27, 2, 28, 29, 2, 0]),
  weights: Float32Array.from([1, 1, 1, 1, 1, 1, 1, 0]),
  pos2d: Int32Array.from([-1, -1, 0, 0, 0, 1, 1, 0, -1, -1, 1, 1, -1, -1, -1, -1]),
};

/** Visual ids (>= 20) get a fixed 2D position; no constraint. */
const controller = () => ({ push: (id: number) => (id >= 20 ? ([0, 1] as const) : null), allowed: () => null });

function run(): { losses: number[]; tokens: number[][] } {
  const m = new Transformer({ vocabSize: 40, contextLength: 16, dModel: 32, nLayers: 2, nHeads: 2, gridRows: 2, gridCols: 2, initStd: 0.3 }, { seed: 1 });
  const opt = tf.train.adam(0.01);
  const losses: number[] = [];
  for (let i = 0; i < 5; i++) {
    opt.minimize(arLossFn(m, batch), false, m.trainableVariables());
    losses.push(tf.tidy(() => arLoss(m, batch).dataSync()[0]));
  }
  const prompts = [[1, 2, 3], [1, 4, 0]];
  const { tokens } = generate(m, prompts, { maxNewTokens: 8, seed: 3, controller });
  expect(generate(m, prompts, { maxNewTokens: 8, seed: 3, controller, useCache: false }).tokens).toEqual(tokens);
  opt.dispose();
  m.dispose();
  return { losses, tokens };
}

it('trains and samples on wasm as on cpu', async () => {
  await tf.setBackend('cpu');
  const cpu = run();
  await initBackend({ backend: 'wasm', threads: 1 });
  expect(Array.from(tf.tidy(() => oneHotFloat(tf.tensor1d([2, 0], 'int32'), 3).dataSync()))).toEqual([0, 0, 1, 1, 0, 0]);
  const before = tf.memory().numTensors;
  const wasm = run();
  expect(tf.memory().numTensors).toBe(before);
  cpu.losses.forEach((l, i) => expect(Math.abs(wasm.losses[i] - l) / l).toBeLessThan(1e-4)); // measured ~1e-6
  expect(cpu.losses[4]).toBeLessThan(cpu.losses[0] / 2);
  expect(wasm.tokens).toEqual(cpu.tokens);
});
