import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { FidInceptionV3, seededFidInceptionWeights } from '../../src/tf/inception';
import { f32, maxAbsDiff, reference, seededImage } from '../fixtures/inception/helpers';

// The full-size FID Inception-v3 (width 1, 2048-d features, 21.8M weights) against PyTorch:
// tests/fixtures/inception/make_inception_fixture.py builds it from torchvision's
// InceptionA/C/E blocks with pytorch-fid's patches and loads the same deterministic weights
// (seededFidInceptionWeights), so real pytorch-fid weights will give real FID.
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});
afterAll(async () => {
  await shutdownBackend();
});

it('full-size FID Inception-v3: 2048-d features match PyTorch to 1e-4', () => {
  const full = reference.cases.find((c) => c.width === 1)!;
  const net = new FidInceptionV3(seededFidInceptionWeights(reference.seed));
  expect(net.dim).toBe(2048);
  const expected = f32(full.features);
  let nonzero = 0;
  reference.images.forEach((im, b) => {
    const x = seededImage(im.key, im.height, im.width);
    const f = net.features(x);
    const want = expected.subarray(b * 2048, (b + 1) * 2048);
    expect(maxAbsDiff(f.dataSync(), want)).toBeLessThan(1e-4);
    nonzero += want.filter((v) => v > 0).length;
    tf.dispose([x, f]);
  });
  // Random weights leave some channels dead; most features still carry signal.
  expect(nonzero).toBeGreaterThan(0.7 * 2 * 2048);
  net.dispose();
});
