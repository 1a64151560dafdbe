import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { evalFid, listImages } from '../../eval/fid';
import { writePng } from '../../src/io/image';
import type { FeatureExtractor } from '../../src/tf/features';

/** Test-only extractor: per-channel means and mean squares of a 4x4 image (D = 6). */
function tinyExtractor(): FeatureExtractor {
  return {
    name: 'tiny-test',
    description: 'per-channel mean and mean square (test only)',
    dim: 6,
    inputSize: 4,
    standard: false,
    batchSize: 8,
    extract: async (images: tf.Tensor4D) => {
      const f = tf.tidy(() => tf.concat([images.mean([1, 2]), images.square().mean([1, 2])], 1)); // [B, 6]
      const out = (await f.data()) as Float32Array;
      f.dispose();
      return out;
    },
    dispose: () => undefined,
  };
}

describe('evalFid', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vtok-evalfid-'));
    let seed = 7;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let i = 0; i < 10; i++) {
      const px = new Uint8Array(4 * 4 * 3).map(() => Math.floor(rand() * 256));
      await writePng(join(dir, `img${i}.png`), px, { width: 4, height: 4 });
    }
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('a folder against itself is 0, labelled FD[name] with N reported', async () => {
    const before = tf.memory().numTensors;
    const r = await evalFid({ dirA: dir, dirB: dir, extractor: tinyExtractor(), batchSize: 3 });
    expect(r.distance).toBe(0);
    expect(r.label).toBe('FD[tiny-test]');
    expect(r.nA).toBe(10);
    expect(r.nB).toBe(10);
    expect(r.note).toBeUndefined();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('--limit takes the first N images and adds the ill-conditioning note when N <= D', async () => {
    const r = await evalFid({ dirA: dir, dirB: dir, extractor: tinyExtractor(), limit: 5 });
    expect(r.nA).toBe(5);
    expect(r.note).toContain('N = 5 <= D = 6');
  });

  it('an empty or missing folder is a clear error', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'vtok-evalfid-empty-'));
    await expect(listImages(empty)).rejects.toThrow(`but found none`);
    await expect(listImages(join(empty, 'nope'))).rejects.toThrow('Expected an image folder but cannot read');
    await rm(empty, { recursive: true, force: true });
  });
});
