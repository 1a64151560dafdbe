import * as tf from '@tensorflow/tfjs';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { trainBpe } from '../../src/core/bpe';
import { createTokenizerModel } from '../../src/tf/tokenizer';
import { loadTokenizer, saveTokenizer, tokenizerBundle } from '../../src/io/tokenizer-bundle';
import { openStore } from '../../src/io/store';

const tiny = { codebookSize: 16, baseChannels: 8, channelMult: [1, 1, 1, 1], normGroups: 4, semanticDecoderChannels: 8, kmeansInit: false };

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('tokenizer bundles', () => {
  it('save then load gives the same codes and reconstructions, with the BPE model', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-tokbundle-'));
    const model = createTokenizerModel(tiny, 3);
    const images = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 5) as tf.Tensor4D;
    const codes = model.encode(images);
    const grids = Array.from({ length: 4 }, (_, i) => ({ h: 4, w: 4, codes: Int32Array.from({ length: 16 }, (_, j) => (i + j) % 3) }));
    const bpe = trainBpe(grids, { baseVocab: 16, vocabSize: 20 });
    const id = await saveTokenizer(model, { imageSize: 32, name: 'tiny', bpe, store: { store: dir, shipped: false } });

    const before = tf.memory().numTensors;
    const loaded = await loadTokenizer('tiny', { store: dir, shipped: false });
    expect(loaded.id).toBe(id);
    expect(loaded.imageSize).toBe(32);
    expect(loaded.bpe?.vocabSize).toBe(bpe.vocabSize);
    const codes2 = loaded.model.encode(images);
    expect(Array.from(await codes2.data())).toEqual(Array.from(await codes.data()));
    const [a, b] = [model.decode(codes), loaded.model.decode(codes2)];
    expect(Array.from(await b.data())).toEqual(Array.from(await a.data()));
    tf.dispose([codes2, a, b]);
    loaded.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([images, codes]);
    model.dispose();
  });

  it('refuses a BPE model over another codebook size, and a bundle that is not a tokenizer', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-tokbundle-'));
    const model = createTokenizerModel(tiny, 1);
    const bpe = trainBpe([{ h: 2, w: 2, codes: Int32Array.from([0, 1, 0, 1]) }], { baseVocab: 8, vocabSize: 9 });
    expect(() => tokenizerBundle(model, { imageSize: 16, bpe })).toThrow(
      'The BPE model was trained over 8 base codes but the tokenizer has 16',
    );
    const store = openStore(dir);
    await store.put({ kind: 'ar-model', name: 'x', config: {}, tensors: {} }, { name: 'ar' });
    await expect(loadTokenizer('ar', { store: dir, shipped: false })).rejects.toThrow(/is a ar-model, not a tokenizer/);
    model.dispose();
  });
});
