import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { loadTokenizer } from '../../src/io/tokenizer-bundle';
import { type StreamImage } from '../../training/data';
import { rampImages } from '../helpers/ramp-images';
import { tinyTrainConfig } from '../helpers/tiny-train-config';
import { CHECKPOINT_FILE, type TrainConfig, learningRateAt, resolveTrainConfig, trainTokenizer } from '../../training/tokenizer';

// wasm, one thread: the backend training uses on a CPU (cpu's conv backprop is far too slow under jest; see tokenizer-overfit.test.ts).
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});
afterAll(async () => {
  await shutdownBackend();
});

/** Three S x S images of ramps (crops of 16 from 20 with flips give varied batches). */
const images = (S = 20): StreamImage[] => rampImages(S);

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'vtok-train-'));
}

it('rejects unknown config keys and names a missing config', async () => {
  await expect(resolveTrainConfig({ stepz: 3 } as Partial<TrainConfig>)).rejects.toThrow(/Unknown option "stepz" for the training config/);
  await expect(resolveTrainConfig('no-such-config')).rejects.toThrow(/No training config "no-such-config"/);
});

it('learning rate: linear warm-up, then cosine decay to lr * minLrRatio', async () => {
  const c = await resolveTrainConfig({ lr: 1, warmupSteps: 4, steps: 14, decay: 'cosine', minLrRatio: 0.1 });
  expect(learningRateAt(c, 0)).toBeCloseTo(0.25);
  expect(learningRateAt(c, 3)).toBeCloseTo(1);
  expect(learningRateAt(c, 9)).toBeCloseTo(0.55); // halfway: 0.1 + 0.9 * 0.5
  expect(learningRateAt(c, 14)).toBeCloseTo(0.1);
});

it('the loss falls on a few tiny images, and no tensor leaks', async () => {
  const before = tf.memory().numTensors;
  const dir = await tmp();
  // Whole images (crop = image size), no flips: the same three images every epoch.
  const r = await trainTokenizer({ config: await tinyTrainConfig({ steps: 30, imageSize: 16, flip: false, batchSize: 3, logEvery: 10 }), data: images(16), runDir: dir });
  // Measured (wasm, 1 thread): L1 0.491 -> 0.109 over the 30 steps.
  const first = r.reports.slice(0, 3).reduce((a, b) => a + b.recon, 0) / 3;
  const last = r.reports.slice(-3).reduce((a, b) => a + b.recon, 0) / 3;
  expect(last).toBeLessThan(first / 2);
  expect(r.skippedSteps).toBe(0);
  const log = (await fs.readFile(path.join(dir, 'log.jsonl'), 'utf8')).trim().split('\n');
  expect(log).toHaveLength(30);
  expect(JSON.parse(log[29]).step).toBe(30);
  r.model.dispose();
  expect(tf.memory().numTensors).toBe(before);
});

it('resume continues the run exactly: 2N steps == N steps + resume + N steps', async () => {
  const config = await tinyTrainConfig({ steps: 8, checkpointEvery: 4 });
  const a = await trainTokenizer({ config, data: images(), runDir: await tmp() });
  const dir = await tmp();
  const b1 = await trainTokenizer({ config, data: images(), runDir: dir, stopAfter: 4 });
  b1.model.dispose();
  const b2 = await trainTokenizer({ config, data: images(), runDir: dir, resume: true });
  expect(b2.reports.map((r) => r.step)).toEqual([5, 6, 7, 8]);
  expect(b2.reports.map((r) => r.loss)).toEqual(a.reports.slice(4).map((r) => r.loss));
  const wa = a.model.getWeights();
  const wb = b2.model.getWeights();
  for (const k of Object.keys(wa)) expect(Array.from(wb[k].data)).toEqual(Array.from(wa[k].data));
  a.model.dispose();
  b2.model.dispose();
});

it('a NaN batch skips its step and says so; training goes on', async () => {
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  const r = await trainTokenizer({
    config: await tinyTrainConfig({ steps: 4 }),
    data: images(),
    runDir: await tmp(),
    transformBatch: (b, step) => (step === 2 ? b.map(() => NaN) : b),
  });
  expect(r.skippedSteps).toBe(1);
  expect(r.reports[2].skipped).toBe(true);
  expect(r.reports[3].skipped).toBe(false);
  expect(Number.isFinite(r.reports[3].loss)).toBe(true);
  expect(warn).toHaveBeenCalledWith(expect.stringMatching(/^step 3: skipped/));
  warn.mockRestore();
  r.model.dispose();
});

it('a failed checkpoint write leaves the previous checkpoint whole', async () => {
  const dir = await tmp();
  const config = await tinyTrainConfig({ steps: 4, checkpointEvery: 4 });
  (await trainTokenizer({ config, data: images(), runDir: dir })).model.dispose();
  const good = await fs.readFile(path.join(dir, CHECKPOINT_FILE));
  // The next checkpoint's final rename fails (as on a full disk): the run fails, the old checkpoint stays whole, no temporary file is left.
  const rename = jest.spyOn(fs, 'rename').mockRejectedValueOnce(new Error('no space left on device'));
  try {
    await expect(trainTokenizer({ config: { ...config, steps: 8 }, data: images(), runDir: dir, resume: true })).rejects.toThrow(
      /Could not write .*checkpoint\.msgpack: no space left on device/,
    );
    expect(rename).toHaveBeenCalledTimes(1);
  } finally {
    rename.mockRestore();
  }
  expect(Buffer.compare(await fs.readFile(path.join(dir, CHECKPOINT_FILE)), good)).toBe(0);
  expect((await fs.readdir(dir)).filter((f) => !f.endsWith('.png')).sort()).toEqual([CHECKPOINT_FILE, 'log.jsonl']);
});

it('saves the final model with a training card and a reconstruction grid per checkpoint', async () => {
  const dir = await tmp();
  const store = { store: path.join(dir, 'store'), shipped: false as const };
  const r = await trainTokenizer({ config: await tinyTrainConfig({ steps: 4, checkpointEvery: 2 }), data: images(), runDir: dir, save: { name: 'tiny', store } });
  expect((await fs.readdir(dir)).filter((f) => f.endsWith('.png')).sort()).toEqual(['recon-000002.png', 'recon-000004.png']);
  const loaded = await loadTokenizer('tiny', store);
  expect(loaded.id).toBe(r.id);
  const card = (loaded.bundle.meta as { card: { steps: number; images: number; final: { usage: number } } }).card;
  expect(card.steps).toBe(4);
  expect(card.images).toBe(3);
  expect(card.final.usage).toBeGreaterThan(0);
  const x = tf.tensor4d(images(16)[0].data, [1, 16, 16, 3]);
  expect(tf.tidy(() => loaded.model.encode(x).arraySync())).toEqual(tf.tidy(() => r.model.encode(x).arraySync()));
  tf.dispose(x);
  loaded.model.dispose();
  r.model.dispose();
});
