// A tiny VQ tokenizer (conv encoder, attention over the latent grid, vector
// quantizer with straight-through gradients, decoder with nearest upsampling
// and a transposed conv), trained with Adam for a few steps on 2-thread wasm
// and on cpu from the same weights: the losses must agree at every step.
// Tolerance: 1e-4 relative per step (measured: ~1e-6; the codes picked by the
// quantizer must not flip, which would show as a large jump).
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { Rng } from '../../src/core/random';
import { randn } from './helpers';

const B = 2;
const S = 16; // image side
const D = 4; // latent channels
const K = 16; // codebook size
const STEPS = 6;

type Weights = Record<string, { shape: number[]; values: Float32Array }>;

function initialWeights(): Weights {
  const rng = new Rng(2024);
  const w = (shape: number[], scale: number) => ({ shape, values: randn(rng, shape, scale) });
  return {
    enc1: w([3, 3, 3, 8], 0.3), // stride 2: 16 -> 8
    enc2: w([3, 3, 8, D], 0.3),
    qkv: w([D, 3 * D], 0.4),
    proj: w([D, D], 0.4),
    codebook: w([K, D], 1),
    dec1: w([3, 3, D, 8], 0.3), // after nearest upsampling 8 -> 16
    dec2: w([4, 4, 3, 8], 0.2), // conv2dTranspose stride 1 on 16x16
  };
}

type CustomGradFunc = Parameters<typeof tf.customGrad>[0];

/** y = x with zero gradient (TensorFlow.js has no stop-gradient op). */
const stopGradient = tf.customGrad(((x: tf.Tensor) => ({ value: x.clone(), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) })) as CustomGradFunc) as (
  x: tf.Tensor,
) => tf.Tensor;

/** Nearest code for each latent vector; straight-through to z, segment sum to the codebook. */
const quantize = tf.customGrad(((z: tf.Tensor, codebook: tf.Tensor, save: tf.GradSaveFunc) => {
  const flat = z.reshape([-1, D]); // [N, D]
  const d = tf.sub(tf.sum(tf.square(flat), 1, true), tf.mul(2, tf.matMul(flat, codebook, false, true))).add(tf.sum(tf.square(codebook), 1)); // [N, K]
  const idx = tf.argMin(d, 1); // [N]
  save([idx]);
  return {
    value: tf.gather(codebook, idx).reshape(z.shape), // [B, h, w, D]
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [dy, tf.unsortedSegmentSum(dy.reshape([-1, D]), saved[0] as tf.Tensor1D, K)],
  };
}) as CustomGradFunc) as (z: tf.Tensor, codebook: tf.Tensor) => tf.Tensor;

function layerNorm(x: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return x.sub(mean).mul(tf.rsqrt(variance.add(1e-5)));
}

function loss(v: Record<string, tf.Variable>, images: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    // encoder
    let h = tf.relu(tf.conv2d(images, v.enc1 as tf.Tensor4D, 2, 'same')); // [B, 8, 8, 8]
    const z0 = tf.conv2d(h as tf.Tensor4D, v.enc2 as tf.Tensor4D, 1, 'same'); // [B, 8, 8, D]
    // one attention layer over the 64 latent positions
    // (dense layers on 2D: tfjs 4.22 cannot take the gradient of a [B, T, C] x [C, C'] matMul)
    const t = layerNorm(z0.reshape([B * 64, D])); // [B*64, D]
    const [q, k, val] = tf.split(tf.matMul(t, v.qkv).reshape([B, 64, 3 * D]), 3, 2); // 3 x [B, 64, D]
    const att = tf.softmax(tf.matMul(q, k, false, true).div(Math.sqrt(D))); // [B, 64, 64]
    const mixed = tf.matMul(att, val).reshape([B * 64, D]); // [B*64, D]
    const z = z0.add(tf.matMul(mixed, v.proj).reshape([B, 8, 8, D])); // [B, 8, 8, D]
    // quantizer
    const zq = quantize(z, v.codebook); // [B, 8, 8, D]
    const commit = tf.mean(tf.square(z.sub(stopGradient(zq))));
    // decoder
    h = tf.image.resizeNearestNeighbor(zq as tf.Tensor4D, [S, S]); // [B, 16, 16, D]
    h = tf.relu(tf.conv2d(h as tf.Tensor4D, v.dec1 as tf.Tensor4D, 1, 'same')); // [B, 16, 16, 8]
    const out = tf.conv2dTranspose(h as tf.Tensor4D, v.dec2 as tf.Tensor4D, [B, S, S, 3], 1, 'same'); // [B, 16, 16, 3]
    return tf.mean(tf.square(out.sub(images))).add(commit.mul(0.25)) as tf.Scalar;
  });
}

async function train(backend: 'cpu' | 'wasm', w: Weights, imageValues: Float32Array): Promise<{ losses: number[]; codebook: Float32Array }> {
  const info = await initBackend({ backend, threads: 2 });
  expect(info.backend).toBe(backend);
  if (backend === 'wasm') expect(info.threads).toBe(2);
  const vars: Record<string, tf.Variable> = {};
  for (const [name, { shape, values }] of Object.entries(w)) vars[name] = tf.variable(tf.tensor(values, shape), true, `${backend}_${name}`);
  const images = tf.tensor4d(imageValues, [B, S, S, 3]);
  const opt = tf.train.adam(0.01);
  const before = tf.memory().numTensors;
  const losses: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    const l = opt.minimize(() => loss(vars, images), true, Object.values(vars)) as tf.Scalar;
    losses.push(l.dataSync()[0]);
    l.dispose();
    if (step === 0) expect(tf.memory().numTensors).toBeGreaterThanOrEqual(before); // Adam's slots appear at step 0
  }
  const afterSteps = tf.memory().numTensors;
  const l = opt.minimize(() => loss(vars, images), true, Object.values(vars)) as tf.Scalar;
  l.dispose();
  expect(tf.memory().numTensors).toBe(afterSteps); // a training step leaks nothing
  const codebook = Float32Array.from(vars.codebook.dataSync());
  opt.dispose();
  tf.dispose([images, ...Object.values(vars)]);
  return { losses, codebook };
}

afterAll(() => shutdownBackend());

it('trains to the same losses on 2-thread wasm and on cpu', async () => {
  const w = initialWeights();
  const images = randn(new Rng(7), [B, S, S, 3], 0.5);
  const cpu = await train('cpu', w, images);
  const wasm = await train('wasm', w, images);
  expect(cpu.losses[STEPS - 1]).toBeLessThan(cpu.losses[0]); // it does learn
  for (let i = 0; i < STEPS; i++) {
    expect(Math.abs(wasm.losses[i] - cpu.losses[i]) / Math.abs(cpu.losses[i])).toBeLessThan(1e-4);
  }
  let diff = 0;
  for (let i = 0; i < cpu.codebook.length; i++) diff = Math.max(diff, Math.abs(cpu.codebook[i] - wasm.codebook[i]));
  expect(diff).toBeLessThan(1e-4);
});
