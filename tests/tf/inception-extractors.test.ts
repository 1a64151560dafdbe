import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { layersModelExtractor, scoreLabel } from '../../src/tf/features';
import { loadFeatureExtractor, readNsfwjsArtifacts } from '../../src/io/feature-models';
import { maxAbsDiff, seededImage } from '../fixtures/inception/helpers';

// The networks the nsfwjs npm package ships (Keras InceptionV3 and MobileNetV2, ImageNet
// backbones fine-tuned for another task): available everywhere vtok builds, never "FID".
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});
afterAll(async () => {
  await shutdownBackend();
});

function images(): tf.Tensor4D {
  return tf.tidy(() => tf.concat([seededImage(21, 50, 60), seededImage(22, 50, 60), seededImage(23, 50, 60)]));
}

describe('nsfwjs feature extractors', () => {
  it('MobileNetV2: 1280-d pool features, labelled non-standard, chunked batches equal single images, no leaks', async () => {
    const before = tf.memory().numTensors;
    const ex = await loadFeatureExtractor({ kind: 'nsfwjs-mobilenet-v2', batchSize: 2 });
    expect([ex.name, ex.dim, ex.inputSize, ex.standard, ex.batchSize]).toEqual(['nsfwjs-mobilenet-v2', 1280, 224, false, 2]);
    expect(scoreLabel(ex)).toBe('FD[nsfwjs-mobilenet-v2]');
    expect(ex.description).toContain('(not FID)');
    const x = images();
    const loaded = tf.memory().numTensors;
    const f = await ex.extract(x); // chunks of 2 and 1
    expect(tf.memory().numTensors).toBe(loaded);
    expect(f.length).toBe(3 * 1280);
    expect(f.every((v) => v >= 0 && Number.isFinite(v))).toBe(true); // averages of ReLU6 outputs
    const third = x.slice([2, 0, 0, 0], [1, -1, -1, -1]);
    expect(maxAbsDiff(await ex.extract(third), f.subarray(2 * 1280))).toBeLessThan(1e-5);
    expect(maxAbsDiff(f.subarray(0, 1280), f.subarray(1280, 2560))).toBeGreaterThan(1e-3); // different images differ
    tf.dispose([x, third]);
    ex.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('MobileNetV2: the features are exactly what the classifier head reads (cut at the global pool)', async () => {
    const model = await tf.loadLayersModel(tf.io.fromMemory(await readNsfwjsArtifacts(path.join(__dirname, '../../node_modules/nsfwjs/dist/models/mobilenet_v2'))));
    const ex = layersModelExtractor(model, {
      name: 'm',
      description: 'm',
      featureLayer: 'flatten_1',
      inputSize: 224,
      inputRange: '0..1',
      alignCorners: true,
    });
    const x = images();
    const f = await ex.extract(x);
    const [head, full] = tf.tidy(() => {
      // nsfwjs's own preprocessing: [0, 1], resized with align_corners=true.
      const x01 = tf.image.resizeBilinear(x.add(1).div(2) as tf.Tensor4D, [224, 224], true);
      const probs = model.predict(x01) as tf.Tensor;
      let h: tf.Tensor = tf.tensor2d(f, [3, 1280]);
      for (const name of ['dense_1', 'dense_2', 'dense_3']) h = model.getLayer(name).apply(h) as tf.Tensor;
      return [h.dataSync(), probs.dataSync()];
    });
    expect(maxAbsDiff(head, full)).toBeLessThan(1e-5);
    x.dispose();
    ex.dispose();
  });

  it('InceptionV3: 2048-d pool features', async () => {
    const ex = await loadFeatureExtractor({ kind: 'nsfwjs-inception-v3' });
    expect([ex.name, ex.dim, ex.inputSize, ex.standard, ex.batchSize]).toEqual(['nsfwjs-inception-v3', 2048, 299, false, 8]);
    expect(scoreLabel(ex)).toBe('FD[nsfwjs-inception-v3]');
    const x = seededImage(24, 40, 30);
    const f = await ex.extract(x);
    expect(f.length).toBe(2048);
    expect(f.every((v) => v >= 0 && Number.isFinite(v))).toBe(true);
    expect(f.filter((v) => v > 0).length).toBeGreaterThan(200); // ~500 for this noise image
    x.dispose();
    ex.dispose();
  });
});
