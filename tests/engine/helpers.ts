// Shared by the engine tests: run the same computation on the cpu backend and
// on vtok's wasm backend, and compare.
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/random';

/** Seeded normal data. */
export function randn(rng: Rng, shape: number[], scale = 1): Float32Array {
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < out.length; i++) out[i] = rng.normal() * scale;
  return out;
}

/** Runs `f` on `backend` (already started) and returns its outputs' values; checks for leaks. */
export async function runOn(backend: 'cpu' | 'wasm', f: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const tensorsBefore = tf.memory().numTensors;
  const buffersBefore = (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
  const out = f();
  const list = Array.isArray(out) ? out : [out];
  const values = list.map((t) => Float32Array.from(t.dataSync()));
  tf.dispose(list);
  expect(tf.memory().numTensors).toBe(tensorsBefore);
  expect((tf.backend() as unknown as { numDataIds(): number }).numDataIds()).toBe(buffersBefore);
  return values;
}

/**
 * Largest |got - want| relative to the output's scale: max |diff| / max(1, max |want|).
 * Float32 sums in a different order differ by ~1e-6 of the scale.
 */
export function relError(got: Float32Array, want: Float32Array): number {
  expect(got.length).toBe(want.length);
  let scale = 1;
  let diff = 0;
  for (let i = 0; i < want.length; i++) {
    scale = Math.max(scale, Math.abs(want[i]));
    const d = Math.abs(got[i] - want[i]);
    diff = Number.isNaN(d) ? Infinity : Math.max(diff, d);
  }
  return diff / scale;
}

/** Runs `f` on cpu and on wasm and expects every output to agree to `tol` (relative to scale). */
export async function expectSameOnBoth(f: () => tf.Tensor | tf.Tensor[], tol: number): Promise<void> {
  const want = await runOn('cpu', f);
  const got = await runOn('wasm', f);
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(relError(got[i], want[i])).toBeLessThanOrEqual(tol);
}
