import * as tf from '@tensorflow/tfjs';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../../src/core/random';
import { createTokenizerModel, type TokenizerModel } from '../../src/tf/tokenizer';
import { modelContentId, modelDetokenizer, modelTokenizer } from '../../src/pipeline/model-tokenizer';
import { tokenizeDataset } from '../../src/pipeline/tokenize';
import { decodeDataset } from '../../src/pipeline/decode';
import { makeImages, readAllRecords, tmpDir } from './helpers';

const tiny = { baseChannels: 8, channelMult: [1, 1, 1, 1], normGroups: 4, semanticDim: 4, pixelDim: 4, codebookSize: 32, kmeansInit: false };

describe('the tf tokenizer model as the pipeline tokenizer', () => {
  let model: TokenizerModel;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    model = createTokenizerModel(tiny, 3);
  });
  afterAll(() => model.dispose());

  test('codes equal model.encode; decode gives images in [-1, 1]; no tensor is leaked', async () => {
    const t = modelTokenizer(model, { imageSize: 16 });
    expect(t.gridShape).toEqual([2, 2]);
    expect(t.codebookSize).toBe(32);
    const rng = new Rng(2);
    const images = Float32Array.from({ length: 3 * 16 * 16 * 3 }, () => rng.next() * 2 - 1); // [3, 16, 16, 3]
    const before = tf.memory().numTensors;
    const codes = await t.encodeBatch(images, 3);
    expect(tf.memory().numTensors).toBe(before);
    const direct = tf.tidy(() => model.encode(tf.tensor4d(images, [3, 16, 16, 3])));
    expect(Array.from(codes)).toEqual(Array.from(await direct.data()));
    direct.dispose();
    const d = modelDetokenizer(model, { imageSize: 16 });
    const back = await d.decodeBatch(codes, 3);
    expect(tf.memory().numTensors).toBe(before);
    expect(back.length).toBe(3 * 16 * 16 * 3);
    expect(back.every((v) => v >= -1 && v <= 1)).toBe(true);
    await expect(t.encodeBatch(images, 2)).rejects.toThrow('Expected 2 x 16 x 16 x 3 floats for images');
  });

  test('the content id is the weights: stable, and different for other weights', () => {
    const id = modelContentId(model);
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(modelContentId(model)).toBe(id);
    const other = createTokenizerModel(tiny, 4);
    expect(modelContentId(other)).not.toBe(id);
    other.dispose();
    expect(modelTokenizer(model, { imageSize: 16, id: 'bundle-id' }).id).toBe('bundle-id');
  });

  test('tokenize and decode a small folder end to end', async () => {
    const root = await tmpDir('vtok-model-');
    await makeImages(path.join(root, 'in'), 5, 8);
    const t = modelTokenizer(model, { imageSize: 16 });
    const before = tf.memory().numTensors;
    await tokenizeDataset({ inputs: [path.join(root, 'in')], out: path.join(root, 'tok'), tokenizer: t, batchSize: 2 });
    expect(tf.memory().numTensors).toBe(before);
    const records = await readAllRecords(path.join(root, 'tok'));
    expect(records.map((r) => r.codes?.length)).toEqual([4, 4, 4, 4, 4]);
    const res = await decodeDataset({ dir: path.join(root, 'tok'), out: path.join(root, 'png'), detokenizer: modelDetokenizer(model, { imageSize: 16 }) });
    expect(res.images).toBe(5);
    await fsp.rm(root, { recursive: true, force: true });
  });
});
