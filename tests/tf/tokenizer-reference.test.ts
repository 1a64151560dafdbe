import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { type TensorMap, tensorRecord, typedArrayFromLittleEndian } from '../../src/core/tensor-map';
import { type TokenizerConfig } from '../../src/core/tokenizer-config';
import { createTokenizerModel } from '../../src/tf/tokenizer';

// Made by tests/tf/tokenizer.reference.py: the same architecture written independently in PyTorch (NCHW, float64).
interface Fixture {
  config: Partial<TokenizerConfig>;
  images: { shape: number[]; data: string };
  weights: Record<string, { shape: number[]; data: string }>;
  zs: string;
  zp: string;
  codes: string;
  recon: string;
  semantic: string;
  codebookLoss: number;
  commitLoss: number;
}

const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, 'tokenizer.reference.json'), 'utf8')) as Fixture;
const f32 = (b64: string): Float32Array => typedArrayFromLittleEndian('float32', Buffer.from(b64, 'base64'));

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function expectClose(got: ArrayLike<number>, want: Float32Array, tol: number): void {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  expect(worst).toBeLessThan(tol);
}

it('agrees with an independent PyTorch model: latents, codes, reconstruction, semantic features and losses', () => {
  const model = createTokenizerModel({ ...fixture.config, kmeansInit: false }, 0);
  const weights: TensorMap = {};
  for (const [name, w] of Object.entries(fixture.weights)) weights[name] = tensorRecord('float32', w.shape, f32(w.data));
  model.setWeights(weights);
  const x = tf.tensor4d(f32(fixture.images.data), fixture.images.shape as [number, number, number, number]);
  const out = model.forward(x);
  expectClose(out.zs.dataSync(), f32(fixture.zs), 1e-5);
  expectClose(out.zp.dataSync(), f32(fixture.zp), 1e-5);
  expect(Array.from(out.codes.dataSync())).toEqual(Array.from(typedArrayFromLittleEndian('int32', Buffer.from(fixture.codes, 'base64'))));
  expectClose(out.recon.dataSync(), f32(fixture.recon), 2e-5);
  expectClose((out.semantic as tf.Tensor).dataSync(), f32(fixture.semantic), 2e-5);
  expect(out.losses.codebook.dataSync()[0]).toBeCloseTo(fixture.codebookLoss, 5);
  expect(out.losses.commit.dataSync()[0]).toBeCloseTo(fixture.commitLoss, 5);
  tf.dispose([x, out as never]);
  model.dispose();
});
