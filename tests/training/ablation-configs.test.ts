/**
 * The semantic ablation's two configs (issue #4): ablation-dual is the default
 * recipe on a short budget; ablation-pixel is the same budget with pixel-only
 * codes (no distillation, codes chosen by the pixel branch alone). Both load,
 * and both train a couple of steps at tiny sizes (not their full sizes).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { resolveTokenizerConfig } from '../../src/core/tokenizer-config';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { type StreamImage } from '../../training/data';
import { rampImages } from '../helpers/ramp-images';
import { type Teacher, type TrainConfig, resolveTrainConfig, trainTokenizer } from '../../training/tokenizer';

beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
});
afterAll(async () => {
  await shutdownBackend();
});

const images = (S = 20): StreamImage[] => rampImages(S);

/** A stand-in teacher: the pixels and their channel mean, 4 features per pixel. */
const fakeTeacher: Teacher = {
  name: 'fake-teacher',
  dim: 4,
  features: (x) => tf.tidy(() => tf.concat([x, tf.mean(x, -1, true)], -1) as tf.Tensor4D), // [B, H, W, 4]
};

/** The config with the model shrunk to tiny.json's sizes (everything the ablation sets about the codes kept). */
async function shrunk(name: string, teacherDim: number): Promise<Partial<TrainConfig>> {
  const c = await resolveTrainConfig(name);
  const tiny = await resolveTrainConfig('tiny');
  const sizes = { ...tiny.model, teacherDim, semanticDecoderChannels: 8 };
  return { ...c, model: { ...c.model, ...sizes, semanticWeight: c.model.semanticWeight ?? 1 }, imageSize: 16, batchSize: 2, steps: 2, warmupSteps: 1 };
}

it('ablation-dual is the previous default recipe (default-k3: 3x3 semantic decoder) with 150 steps and 20 warm-up steps', async () => {
  const k3 = await resolveTrainConfig('default-k3');
  const dual = await resolveTrainConfig('ablation-dual');
  expect(dual).toEqual({ ...k3, steps: 150, warmupSteps: 20 });
  expect(resolveTokenizerConfig(dual.model).semanticWeight).toBe(1);
});

it('the default recipe is default-k3 with each code decoded alone by the semantic decoder (kernel 1, no res block)', async () => {
  const def = await resolveTrainConfig('default');
  const k3 = await resolveTrainConfig('default-k3');
  expect(def).toEqual({ ...k3, model: { ...k3.model, semanticDecoderKernel: 1, semanticDecoderBlocks: 0 } });
  expect(resolveTokenizerConfig(k3.model).semanticDecoderKernel).toBe(3);
});

it("ablation-pixel-650 is the default's budget with pixel-only codes and no semantic supervision", async () => {
  const def = await resolveTrainConfig('default');
  const pixel = await resolveTrainConfig('ablation-pixel-650');
  const { semanticDecoderKernel: _k, semanticDecoderBlocks: _b, ...trunk } = def.model;
  expect(pixel).toEqual({ ...def, semantic: 0, model: { ...trunk, teacherDim: 0, semanticWeight: 0 } });
});

it('ablation-pixel is the same budget with pixel-only codes and no semantic supervision', async () => {
  const dual = await resolveTrainConfig('ablation-dual');
  const pixel = await resolveTrainConfig('ablation-pixel');
  expect(pixel).toEqual({ ...dual, semantic: 0, model: { ...dual.model, teacherDim: 0, semanticWeight: 0 } });
  const m = resolveTokenizerConfig(pixel.model);
  expect(m.semanticWeight).toBe(0);
  expect(m.pixelWeight).toBeGreaterThan(0);
  // Same budget: steps, batch, crops, schedule and the whole encoder/decoder/codebook geometry.
  for (const key of ['steps', 'batchSize', 'imageSize', 'lr', 'warmupSteps', 'decay', 'seed'] as const) expect(pixel[key]).toEqual(dual[key]);
  const d = resolveTokenizerConfig({ ...dual.model, teacherDim: 0 });
  expect({ ...m, semanticWeight: 1 }).toEqual(d);
});

it.each([
  ['ablation-dual', fakeTeacher],
  ['ablation-pixel', undefined],
] as const)('%s trains 2 steps at tiny sizes', async (name, teacher) => {
  const before = tf.memory().numTensors;
  const config = await shrunk(name, teacher?.dim ?? 0);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vtok-ablation-'));
  try {
    const r = await trainTokenizer({ config, data: images(), runDir: dir, teacher, grids: false });
    expect(r.steps).toBe(2);
    expect(r.skippedSteps).toBe(0);
    for (const s of r.reports) expect(Number.isFinite(s.loss)).toBe(true);
    if (teacher === undefined) {
      expect(r.model.config.semanticWeight).toBe(0);
      expect(r.reports.every((s) => s.semantic === 0)).toBe(true);
    } else {
      expect(r.model.config.semanticWeight).toBe(1);
      expect(r.reports.every((s) => s.semantic > 0)).toBe(true);
    }
    r.model.dispose();
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  expect(tf.memory().numTensors).toBe(before);
});
