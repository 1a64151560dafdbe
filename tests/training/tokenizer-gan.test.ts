/**
 * The tokenizer trainer's optional loss terms (issue #4): the perceptual term
 * (LPIPS-style distance of a frozen teacher's features of the input and of the
 * reconstruction) and the PatchGAN hinge term switched on after ganStart.
 * Both off by default: runs without them are unchanged.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { unpack } from 'msgpackr';
import { Rng } from '../../src/core/random';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { loadTokenizer } from '../../src/io/tokenizer-bundle';
import { createTokenizerModel } from '../../src/tf/tokenizer';
import { type StreamImage } from '../../training/data';
import { rampImages } from '../helpers/ramp-images';
import { tinyTrainConfig } from '../helpers/tiny-train-config';
import { CHECKPOINT_FILE, type StepReport, type Teacher, type TrainConfig, perceptualDistance, resolveTrainConfig, trainTokenizer } from '../../training/tokenizer';

// wasm, one thread, like the other tokenizer training tests.
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});
afterAll(async () => {
  await shutdownBackend();
});

const images = (S = 20): StreamImage[] => rampImages(S);

/** The small GAN settings the tests use. */
const GAN: Partial<TrainConfig> = { gan: 0.5, discChannels: 4, discLayers: 2, discLr: 1e-3 };

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'vtok-gan-'));
}

/**
 * A stand-in frozen teacher: one seeded stride-2 3x3 conv (3 -> 6 channels)
 * and a ReLU, [B, H, W, 3] -> [B, H/2, W/2, 6]. Its kernel is a trainable
 * tf.Variable on purpose: training must still leave it alone.
 */
function convTeacher(): Teacher & { kernel: tf.Variable; dispose(): void } {
  const rng = new Rng(77);
  const kernel = tf.variable(tf.tensor4d(Float32Array.from({ length: 3 * 3 * 3 * 6 }, () => rng.next() - 0.5), [3, 3, 3, 6]));
  return {
    name: 'conv-teacher',
    dim: 6,
    kernel,
    features: (x) => tf.tidy(() => tf.relu(tf.conv2d(x, kernel as tf.Tensor4D, 2, 'same'))), // [B, H/2, W/2, 6]
    dispose: () => kernel.dispose(),
  };
}

/** A report without its timing (the only field that may differ between two identical runs). */
const untimed = (r: StepReport): Omit<StepReport, 'stepsPerSecond'> => {
  const { stepsPerSecond: _, ...rest } = r;
  return rest;
};

const decoderWeights = (w: Record<string, { data: ArrayLike<number> }>): Record<string, number[]> =>
  Object.fromEntries(Object.entries(w).filter(([k]) => k.startsWith('decoder.')).map(([k, v]) => [k, Array.from(v.data)]));

describe('perceptualDistance', () => {
  it('is 0 for identical (or rescaled) features and the LPIPS distance otherwise', () => {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const a = tf.tensor4d([1, 0, 3, 4], [1, 1, 2, 2]); // two positions: [1, 0], [3, 4]
      expect(perceptualDistance(a, a).dataSync()[0]).toBe(0);
      expect(perceptualDistance(a, tf.mul(a, 5) as tf.Tensor4D).dataSync()[0]).toBeCloseTo(0, 6);
      // [1, 0] vs [0, 2] -> |[1, 0] - [0, 1]|^2 = 2; [3, 4] vs [3, 4] -> 0; mean over the 2 positions = 1.
      const b = tf.tensor4d([0, 2, 3, 4], [1, 1, 2, 2]);
      expect(perceptualDistance(a, b).dataSync()[0]).toBeCloseTo(1, 6);
      // Opposite directions: 4 (the maximum).
      expect(perceptualDistance(a, tf.neg(a) as tf.Tensor4D).dataSync()[0]).toBeCloseTo(4, 6);
      // A zero feature vector (a dead ReLU position) has a finite gradient.
      const z = tf.tensor4d([0, 0, 3, 4], [1, 1, 2, 2]);
      const g = tf.grad((t: tf.Tensor) => perceptualDistance(a, t as tf.Tensor4D))(z);
      expect(g.dataSync().every(Number.isFinite)).toBe(true);
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('perceptual term', () => {
  it('needs a teacher: the error names the perceptual key', async () => {
    await expect(trainTokenizer({ config: await tinyTrainConfig({ perceptual: 0.5 }), data: images(), runDir: await tmp() })).rejects.toThrow(
      /perceptual weight is 0\.5 but no teacher was given/,
    );
    await expect(resolveTrainConfig({ perceptual: -1 })).rejects.toThrow('Expected number between 0 and Infinity for perceptual but received -1 of type number');
  });

  it('fails before training when the backend cannot take gradients through the teacher', async () => {
    // A teacher whose gradient throws, as MobileNetV2's depthwise convs do on a wasm backend without DepthwiseConv2dNativeBackpropInput.
    const opaque = tf.customGrad((x) => ({
      value: tf.clone(x as tf.Tensor),
      gradFunc: () => {
        throw new Error("Kernel 'Missing' not registered for backend 'wasm'");
      },
    }));
    const teacher: Teacher = { name: 'no-grad', dim: 3, features: (x) => tf.tidy(() => opaque(x) as tf.Tensor4D) };
    // (No leak check: tfjs 4.22's tf.grad itself leaks a tensor when a gradient function throws.)
    const run = trainTokenizer({ config: await tinyTrainConfig({ perceptual: 1 }), data: images(), runDir: await tmp(), teacher });
    await expect(run).rejects.toMatchObject({ code: 'BACKEND', subject: 'perceptual' });
    await expect(run).rejects.toThrow(/The perceptual term needs gradients through the teacher no-grad, which the wasm backend cannot compute: Kernel 'Missing' not registered/);
  });

  it('its gradient reaches the decoder through the frozen teacher; logged; no leaks', async () => {
    const teacher = convTeacher();
    const kernel0 = Array.from(teacher.kernel.dataSync());
    const before = tf.memory().numTensors;
    // No pixel loss: the decoder learns from the perceptual term alone (teacherDim 0: no semantic decoder needed).
    const config = await tinyTrainConfig({ steps: 3, l1: 0, l2: 0, perceptual: 1 });
    const dir = await tmp();
    const r = await trainTokenizer({ config, data: images(), runDir: dir, teacher, grids: false });
    for (const s of r.reports) {
      expect(s.perceptual).toBeGreaterThan(0);
      expect(s.loss).toBeCloseTo(s.recon + s.commit + (s.perceptual as number), 5);
    }
    const log = (await fs.readFile(path.join(dir, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as StepReport);
    expect(log.map((l) => l.perceptual)).toEqual(r.reports.map((s) => s.perceptual));
    const c = await resolveTrainConfig(config);
    const fresh = createTokenizerModel(c.model, c.seed);
    const init = decoderWeights(fresh.getWeights());
    fresh.dispose();
    const trained = decoderWeights(r.model.getWeights());
    const moved = Object.keys(init).filter((k) => trained[k].some((v, i) => v !== init[k][i]));
    expect(moved.length).toBe(Object.keys(init).length); // every decoder weight got a gradient
    r.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(teacher.kernel.dataSync())).toEqual(kernel0); // frozen

    // Control: the same run without the perceptual term leaves the decoder where it started (no loss reaches it).
    const off = await trainTokenizer({ config: { ...config, perceptual: 0 }, data: images(), runDir: await tmp(), grids: false });
    expect(decoderWeights(off.model.getWeights())).toEqual(init);
    expect(off.reports[0].perceptual).toBeUndefined();
    off.model.dispose();
    teacher.dispose();
  });
});

describe('PatchGAN term', () => {
  it('the new keys at 0 change nothing: same losses and weights as a config without them', async () => {
    const base = await tinyTrainConfig({ steps: 4 });
    const a = await trainTokenizer({ config: base, data: images(), runDir: await tmp(), grids: false });
    const dir = await tmp();
    const b = await trainTokenizer({
      config: { ...base, perceptual: 0, gan: 0, ganStart: 1, discChannels: 4, discLayers: 2, discLr: 1e-3 },
      data: images(),
      runDir: dir,
      grids: false,
    });
    expect(b.reports.map(untimed)).toEqual(a.reports.map(untimed));
    const [wa, wb] = [a.model.getWeights(), b.model.getWeights()];
    for (const k of Object.keys(wa)) expect(Array.from(wb[k].data)).toEqual(Array.from(wa[k].data));
    const line = JSON.parse((await fs.readFile(path.join(dir, 'log.jsonl'), 'utf8')).split('\n')[0]) as Record<string, unknown>;
    expect(Object.keys(line)).toEqual(['step', 'loss', 'recon', 'commit', 'semantic', 'gradNorm', 'lr', 'usage', 'perplexity', 'stepsPerSecond', 'skipped']);
    const ck = unpack(await fs.readFile(path.join(dir, CHECKPOINT_FILE))) as { discriminator?: unknown };
    expect(ck.discriminator).toBeUndefined();
    a.model.dispose();
    b.model.dispose();
  });

  it('is off (not computed) before ganStart and on after; the discriminator trains and is checkpointed; no leaks', async () => {
    const before = tf.memory().numTensors;
    const off = await trainTokenizer({ config: await tinyTrainConfig({ steps: 4 }), data: images(), runDir: await tmp(), grids: false });
    const dir = await tmp();
    const on = await trainTokenizer({ config: await tinyTrainConfig({ steps: 4, ...GAN, ganStart: 2 }), data: images(), runDir: dir, grids: false });
    // Steps 1-2: exactly the run without the term, and no gen/disc in the report or the log.
    expect(on.reports.slice(0, 2).map(untimed)).toEqual(off.reports.slice(0, 2).map(untimed));
    const log = (await fs.readFile(path.join(dir, 'log.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(log.map((l) => 'disc' in l)).toEqual([false, false, true, true]);
    expect(log.map((l) => 'gen' in l)).toEqual([false, false, true, true]);
    // Steps 3-4: the generator term is in the loss with its weight; the discriminator's hinge loss is logged.
    for (const s of on.reports.slice(2)) {
      expect(Number.isFinite(s.gen)).toBe(true);
      expect(s.disc).toBeGreaterThan(0);
      expect(s.loss).toBeCloseTo(s.recon + s.commit + 0.5 * (s.gen as number), 5);
      expect(s.skipped).toBe(false);
    }
    expect(on.reports[2].loss).not.toBe(off.reports[2].loss);
    // Checkpoint: the discriminator's weights and Adam moments (two trained steps); the bundle has none of it.
    const ck = unpack(await fs.readFile(path.join(dir, CHECKPOINT_FILE))) as { discriminator: { weights: Record<string, unknown>; optimizer: { name: string }[] } };
    expect(Object.keys(ck.discriminator.weights)).toEqual(['disc.conv0.w', 'disc.conv0.b', 'disc.conv1.w', 'disc.conv1.b', 'disc.out.w', 'disc.out.b']);
    expect(ck.discriminator.optimizer).toHaveLength(1 + 2 * 6 + 2); // iterations, m and v per weight, beta powers
    off.model.dispose();
    on.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it.each([
    ['after', 3],
    ['before', 1],
  ])('resume with the GAN on (stopped %s ganStart) continues exactly like an uninterrupted run', async (_, stopAfter) => {
    const config = await tinyTrainConfig({ steps: 5, checkpointEvery: 10, ...GAN, ganStart: 2 });
    const aDir = await tmp();
    const a = await trainTokenizer({ config, data: images(), runDir: aDir, grids: false });
    const dir = await tmp();
    const b1 = await trainTokenizer({ config, data: images(), runDir: dir, stopAfter, grids: false });
    b1.model.dispose();
    const b2 = await trainTokenizer({ config, data: images(), runDir: dir, resume: true, grids: false });
    expect(b2.reports.map(untimed)).toEqual(a.reports.slice(stopAfter).map(untimed));
    expect(b2.reports[b2.reports.length - 1].disc).toBeGreaterThan(0);
    const [wa, wb] = [a.model.getWeights(), b2.model.getWeights()];
    for (const k of Object.keys(wa)) expect(Array.from(wb[k].data)).toEqual(Array.from(wa[k].data));
    type Ck = { discriminator: { weights: Record<string, { bytes: Uint8Array }>; optimizer: { bytes: Uint8Array }[] } };
    const cka = unpack(await fs.readFile(path.join(aDir, CHECKPOINT_FILE))) as Ck;
    const ckb = unpack(await fs.readFile(path.join(dir, CHECKPOINT_FILE))) as Ck;
    for (const k of Object.keys(cka.discriminator.weights)) expect(Buffer.from(ckb.discriminator.weights[k].bytes)).toEqual(Buffer.from(cka.discriminator.weights[k].bytes));
    expect(ckb.discriminator.optimizer.map((o) => Buffer.from(o.bytes))).toEqual(cka.discriminator.optimizer.map((o) => Buffer.from(o.bytes)));
    a.model.dispose();
    b2.model.dispose();
  });

  it('both terms together; the saved tokenizer bundle holds no discriminator', async () => {
    const teacher = convTeacher();
    const before = tf.memory().numTensors;
    const dir = await tmp();
    const store = { store: path.join(dir, 'store'), shipped: false as const };
    const r = await trainTokenizer({
      config: await tinyTrainConfig({ steps: 3, ...GAN, ganStart: 1, perceptual: 0.5 }),
      data: images(),
      runDir: dir,
      teacher,
      grids: false,
      save: { name: 'gan', store },
    });
    const last = r.reports[2];
    expect(last.loss).toBeCloseTo(last.recon + last.commit + 0.5 * (last.perceptual as number) + 0.5 * (last.gen as number), 5);
    const loaded = await loadTokenizer('gan', store);
    expect(Object.keys(loaded.bundle.tensors).filter((k) => k.startsWith('disc'))).toEqual([]);
    loaded.model.dispose();
    r.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    teacher.dispose();
  });

  it('rejects bad GAN keys by name', async () => {
    await expect(resolveTrainConfig({ ganStart: 1.5 })).rejects.toThrow('for ganStart but received 1.5 of type number');
    await expect(resolveTrainConfig({ discLayers: 9 })).rejects.toThrow('Expected integer between 1 and 8 for discLayers but received 9 of type number');
    await expect(resolveTrainConfig({ gan: -0.1 })).rejects.toThrow('for gan but received -0.1 of type number');
  });
});
