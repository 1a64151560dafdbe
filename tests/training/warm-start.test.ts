import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { type StoreSetOptions, openStoreSet } from '../../src/io/store';
import { loadTokenizer } from '../../src/io/tokenizer-bundle';
import { tensorRecord } from '../../src/core/tensor-map';
import { PIXEL_CODEBOOK, SEMANTIC_CODEBOOK } from '../../src/tf/quantizer';
import { createTokenizerModel } from '../../src/tf/tokenizer';
import { type StreamImage } from '../../training/data';
import { rampImages } from '../helpers/ramp-images';
import { type TrainConfig, type TrainResult, resolveTrainConfig, trainTokenizer } from '../../training/tokenizer';
import { type ParentInfo, warmStart, warmStartClusterSize } from '../../training/warm-start';


/** Three 16 x 16 ramps (as in tokenizer.test.ts); with batch 3, no flips and crop = image, every batch is these three. */
const images = (S = 16): StreamImage[] => rampImages(S);

const config = async (over: Partial<TrainConfig> = {}): Promise<TrainConfig> => ({
  ...(await resolveTrainConfig('tiny')),
  steps: 30,
  imageSize: 16,
  flip: false,
  batchSize: 3,
  logEvery: 10,
  checkpointEvery: 100,
  ...over,
});

let root: string;
let store: StoreSetOptions;
let parent: TrainResult;
const PARENT_STEPS = 30;

const tmp = async (): Promise<string> => fs.mkdtemp(path.join(root, 'run-'));
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

// wasm, one thread, as tokenizer.test.ts (cpu's conv backprop is far too slow under jest).
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'vtok-warm-'));
  store = { store: path.join(root, 'store'), shipped: false };
  parent = await trainTokenizer({ config: await config(), data: images(), runDir: await tmp(), grids: false, save: { name: 'parent', store } });
  expect(parent.steps).toBe(PARENT_STEPS);
});
afterAll(async () => {
  parent?.model.dispose();
  await shutdownBackend();
  await fs.rm(root, { recursive: true, force: true });
});

it('before any step, the model is the bundle: same codes, codebooks marked initialized, EMA seeded from the codebooks; no leaks', async () => {
  const before = tf.memory().numTensors;
  const r = await trainTokenizer({ config: await config({ steps: 0 }), data: images(), runDir: await tmp(), initFrom: 'parent', initFromStore: store });
  const loaded = await loadTokenizer('parent', store);
  const x = tf.tensor4d(Float32Array.from(images().flatMap((im) => Array.from(im.data))), [3, 16, 16, 3]);
  const codes = tf.tidy(() => r.model.encode(x).arraySync());
  expect(codes).toEqual(tf.tidy(() => loaded.model.encode(x).arraySync()));
  expect(new Set(codes.flat(2)).size).toBeGreaterThan(1);
  const w = r.model.getWeights();
  const lw = loaded.model.getWeights();
  for (const k of Object.keys(lw)) expect(Array.from(w[k].data)).toEqual(Array.from(lw[k].data));

  expect(r.model.codebookStats().initialized).toBe(true); // no k-means pass will run
  const c = r.model.config;
  const size = warmStartClusterSize(c, 3 * 2 * 2); // batch 3, 2 x 2 codes at 16 / 8
  expect(size).toBe(1.5); // 12 positions / K = 8 (tiny has no dead-code threshold)
  const state = r.model.getTrainingState();
  expect(Array.from(state['quantizer.ema_cluster_size'].data)).toEqual(new Array(c.codebookSize).fill(size));
  const es = lw[SEMANTIC_CODEBOOK].data as Float32Array;
  const ep = lw[PIXEL_CODEBOOK].data as Float32Array;
  expect(Array.from(state['quantizer.ema_sum_s'].data)).toEqual(Array.from(es, (v) => Math.fround(v * size)));
  expect(Array.from(state['quantizer.ema_sum_p'].data)).toEqual(Array.from(ep, (v) => Math.fround(v * size)));

  tf.dispose(x);
  loaded.model.dispose();
  r.model.dispose();
  expect(tf.memory().numTensors).toBe(before);
});

it("one step later the loss is the parent's final loss, not a random-init loss, and no code jumped or restarted", async () => {
  const before = tf.memory().numTensors;
  const loaded = await loadTokenizer('parent', store);
  const lw = loaded.model.getWeights();
  loaded.model.dispose();
  // A warm-up as long, relative to lr, as the default config's (50 steps): fresh Adam moves every weight by ~lr on its first
  // step, and tiny's own 2-step warm-up (first lr 0.002) takes this loss from 0.108 to 0.241 in one step.
  const r = await trainTokenizer({ config: await config({ warmupSteps: 20 }), data: images(), runDir: await tmp(), stopAfter: 2, initFrom: 'parent', initFromStore: store });
  const parentFinal = mean(parent.reports.slice(-3).map((s) => s.loss));
  const randomInit = parent.reports[0].loss; // the parent's first step: random weights, same batch
  // Measured (wasm, 1 thread): random init 0.910, the parent's last three 0.111; warm start 0.108 then 0.109.
  expect(randomInit - parentFinal).toBeGreaterThan(0.5);
  for (const s of r.reports) expect(Math.abs(s.loss - parentFinal)).toBeLessThan(0.05 * (randomInit - parentFinal));
  expect(r.reports.map((s) => s.lr)).toEqual([0.004 / 20, (2 * 0.004) / 20]); // fresh Adam from step 0 on the config's warm-up

  // The EMA updates kept every code near its loaded direction (unseeded sums would pull codes to the random initial ones).
  const w = r.model.getWeights();
  const c = r.model.config;
  for (const [name, d] of [
    [SEMANTIC_CODEBOOK, c.semanticDim],
    [PIXEL_CODEBOOK, c.pixelDim],
  ] as const) {
    const a = lw[name].data as Float32Array;
    const b = w[name].data as Float32Array;
    for (let k = 0; k < c.codebookSize; k++) {
      let dot = 0;
      for (let j = 0; j < d; j++) dot += a[k * d + j] * b[k * d + j];
      expect(dot).toBeGreaterThan(0.95); // unit rows: cosine
    }
  }
  expect(r.model.codebookStats().restarts).toBe(0);
  r.model.dispose();
  expect(tf.memory().numTensors).toBe(before);
});

it('with lr 0, the seeded EMA updates alone keep the loss where the parent left it', async () => {
  const r = await trainTokenizer({ config: await config({ lr: 0 }), data: images(), runDir: await tmp(), stopAfter: 4, initFrom: 'parent', initFromStore: store });
  // Measured: 0.108 at all four steps.
  for (const s of r.reports) expect(s.loss).toBeCloseTo(r.reports[0].loss, 3);
  r.model.dispose();
});

it('the seeded cluster size: the uniform share of a batch, kept above the dead-code threshold', () => {
  const c = (deadCodeThreshold: number) => ({ ...parent.model.config, codebookSize: 1024, deadCodeThreshold });
  expect(warmStartClusterSize(c(0.5), 8 * 16 * 16)).toBe(2); // the default config: batch 8 at 128, 16 x 16 codes, K = 1024
  expect(warmStartClusterSize(c(3), 8 * 16 * 16)).toBe(6);
});

it('names the first mismatching config field, refuses resume, and changes nothing in the run folder', async () => {
  const before = tf.memory().numTensors;
  const dir = await tmp();
  await expect(trainTokenizer({ config: await config({ model: { ...(await config()).model, semanticDim: 6 } }), data: images(), runDir: dir, initFrom: 'parent', initFromStore: store })).rejects.toThrow(
    /Cannot initialize from bundle [0-9a-f]{12} \(parent\): its model config differs in semanticDim: the bundle has 4, the run's config has 6/,
  );
  await expect(trainTokenizer({ config: await config({ model: { ...(await config()).model, teacherDim: 4 } }), data: images(), runDir: dir, initFrom: 'parent', initFromStore: store })).rejects.toThrow(
    /differs in teacherDim: the bundle has 0, the run's config has 4 \(the teacher decides/,
  );
  await expect(trainTokenizer({ config: await config(), data: images(), runDir: dir, initFrom: 'parent', initFromStore: store, resume: true })).rejects.toThrow(
    /initFrom \(parent\) cannot be combined with resume/,
  );
  await expect(trainTokenizer({ config: await config(), data: images(), runDir: dir, initFrom: 'no-such', initFromStore: store })).rejects.toThrow(/No bundle "no-such"/);
  await expect(trainTokenizer({ config: await config(), data: images(), runDir: dir, initFrom: path.join(root, 'nope.vtok') })).rejects.toThrow(/nope\.vtok/);
  expect(await fs.readdir(dir)).toEqual([]);
  expect(tf.memory().numTensors).toBe(before);
});

it('a weight of the wrong shape is named, and the model is left as it was', async () => {
  const before = tf.memory().numTensors;
  const bundle = await openStoreSet(store).get('parent');
  const bad = { ...bundle, tensors: { ...bundle.tensors, [PIXEL_CODEBOOK]: tensorRecord('float32', [8, 3], new Float32Array(24)) } };
  const model = createTokenizerModel(parent.model.config, 5);
  const w0 = model.getWeights();
  expect(() => warmStart(model, bad, { batchRows: 12, ref: 'parent' })).toThrow(
    /Cannot initialize from bundle [0-9a-f]{12} \(parent\): Expected weight quantizer.pixel to be float32 \[8, 4\] but received float32 \[8, 3\]/,
  );
  const w1 = model.getWeights();
  for (const k of Object.keys(w0)) expect(Array.from(w1[k].data)).toEqual(Array.from(w0[k].data));
  expect(model.codebookStats().initialized).toBe(false);
  model.dispose();
  expect(tf.memory().numTensors).toBe(before);
});

it('a quantizer training knob (emaDecay) may differ; a .vtok path works; the saved bundle names its parent, also after a resume', async () => {
  const parentId = parent.id as string;
  const file = path.join(store.store as string, `${parentId}.vtok`);
  const dir = await tmp();
  const cfg = await config({ steps: 4, model: { ...(await config()).model, emaDecay: 0.9 } });
  const a = await trainTokenizer({ config: cfg, data: images(), runDir: dir, stopAfter: 2, initFrom: file, grids: false });
  a.model.dispose();
  const b = await trainTokenizer({ config: cfg, data: images(), runDir: dir, resume: true, grids: false, save: { name: 'child', store } });
  expect(b.reports.map((s) => s.step)).toEqual([3, 4]);
  b.model.dispose();
  const bundle = await openStoreSet(store).get('child');
  expect(bundle.parents).toEqual([parentId]);
  const card = (bundle.meta as { card: { steps: number; totalSteps: number; initFrom: ParentInfo } }).card;
  expect(card.initFrom).toEqual({ id: parentId, ref: file, name: 'parent', steps: PARENT_STEPS, totalSteps: PARENT_STEPS });
  expect(card.steps).toBe(4);
  expect(card.totalSteps).toBe(PARENT_STEPS + 4);
});
