import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { fileModelSaveHandler, loadTeacher } from '../../src/io/teacher';

/** A tiny layers model: conv 3->4 (stride 2, named 'feat') then global pool and dense. */
function tinyModel(): tf.LayersModel {
  const input = tf.input({ shape: [8, 8, 3] });
  const feat = tf.layers.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', name: 'feat', kernelInitializer: 'glorotUniform', seed: 1 } as never).apply(input) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({}).apply(feat) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 2, name: 'logits' }).apply(pooled) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

it('loads a layers model saved to disk and gives the named layer features of [-1, 1] images', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vtok-teacher-'));
  const model = tinyModel();
  await model.save(fileModelSaveHandler(dir));
  const teacher = await loadTeacher({ source: path.join(dir, 'model.json'), layer: 'feat' });
  expect(teacher.dim).toBe(4);
  expect(teacher.name).toBe(`${path.basename(dir)}:feat`);
  const x = tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 3) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  const f = teacher.features(x);
  expect(f.shape).toEqual([2, 4, 4, 4]);
  // Same as the original model's layer on the images mapped to [0, 1] (inputSize 8: the resize is the identity).
  const sub = tf.model({ inputs: model.inputs, outputs: model.getLayer('feat').output as tf.SymbolicTensor });
  const expected = tf.tidy(() => sub.predict(tf.mul(tf.add(x, 1), 0.5)) as tf.Tensor);
  expect(Array.from(f.dataSync())).toEqual(Array.from(expected.dataSync()));
  tf.dispose([f, expected]);
  expect(tf.memory().numTensors).toBe(before);
  teacher.dispose();
  model.dispose();
  x.dispose();
});

it('names the missing layer and suggests similar ones', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vtok-teacher-'));
  const model = tinyModel();
  await model.save(fileModelSaveHandler(dir));
  await expect(loadTeacher({ source: path.join(dir, 'model.json'), layer: 'feat_2' })).rejects.toThrow(
    `The teacher model ${path.join(dir, 'model.json')} has no layer "feat_2"; similar layers: feat`,
  );
  await expect(loadTeacher({ source: path.join(dir, 'model.json'), layer: 'logits' })).rejects.toThrow(/Teacher layer logits gives \[,2\], not spatial features/);
  await expect(loadTeacher({ source: path.join(dir, 'nope.json'), layer: 'feat' })).rejects.toThrow(/Could not read the teacher model .*nope\.json/);
  model.dispose();
});
