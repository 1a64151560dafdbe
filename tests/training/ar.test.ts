/**
 * The AR trainer and its use: a tiny model overfits a few caption <-> grid
 * pairs in both directions, resume continues exactly, sampling is seeded,
 * bad prompts and codes fail clearly, and nothing leaks tensors.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { EpochOrder, closedSet, rankCandidates, recordText } from '../../src/core/ar-tasks';
import { trainBpe } from '../../src/core/bpe';
import { understandingPrompt } from '../../src/core/ar-streams';
import { scoreContinuations } from '../../src/tf/ar-loss';
import { scoreCandidatesCached } from '../../src/tf/ar-score';
import { AR_BUNDLE_FILE, loadAr } from '../../src/io/ar-bundle';
import { writePng } from '../../src/io/image';
import { classifyCodes, describeImages, evalArTokens, generateImages } from '../../src/pipeline/ar';
import { colourGridTokenizer } from '../../src/pipeline/colour-grid';
import { tokenizeDataset } from '../../src/pipeline/tokenize';
import { AR_CHECKPOINT_FILE, type ArData, readArData, resolveArConfig, trainAr } from '../../training/ar';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const TEXTS = ['boot', 'shirt', 'bag'];
const GRIDS = [
  [1, 2, 3, 4],
  [5, 6, 7, 0],
  [2, 2, 6, 6],
];
const data = (): ArData => ({
  records: TEXTS.map((text, i) => ({ text, codes: Int32Array.from(GRIDS[i]), bpe: null })),
  tokenizer: 'test-tokenizer',
  codebookSize: 8,
  grid: { height: 2, width: 2 },
  bpeId: null,
});

async function tmp(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'vtok-ar-'));
}

describe('core helpers', () => {
  it('records text, closed set, ranking and the seeded epoch order', () => {
    expect(recordText({ caption: 'a cat', label: 3 })).toBe('a cat');
    expect(recordText({ caption: null, label: 3 })).toBe('3');
    expect(recordText({ caption: ' ', label: null })).toBeNull();
    expect(closedSet(['b', 'a', 'b'])).toEqual(['a', 'b']);
    const r = rankCandidates(['x', 'y'], [-3, -1]);
    expect(r.best).toBe('y');
    expect(r.ranked[0].prob).toBeCloseTo(1 / (1 + Math.exp(-2)), 6);
    const o = new EpochOrder(5, 1);
    const epoch0 = [0, 1, 2, 3, 4].map((p) => o.at(p));
    expect([...epoch0].sort()).toEqual([0, 1, 2, 3, 4]);
    expect(new EpochOrder(5, 1).at(7)).toBe(o.at(7));
    expect(() => new EpochOrder(0, 1)).toThrow(/at least one training record/);
  });

  it('rejects bad configs with the key named', async () => {
    await expect(resolveArConfig({ stepz: 1 } as never)).rejects.toThrow(/Unknown option "stepz"/);
    await expect(resolveArConfig({ batchSize: 5 })).rejects.toThrow(/even batchSize/);
    await expect(resolveArConfig({ model: { vocabSize: 9 } })).rejects.toThrow(/model.vocabSize comes from the data/);
    await expect(resolveArConfig('no-such-config')).rejects.toThrow(/No AR training config "no-such-config"/);
    expect((await resolveArConfig('ar-fashion-mnist')).batchSize).toBe(32);
  });
});

describe('trainAr', () => {
  let runDir: string;
  let trained: Awaited<ReturnType<typeof trainAr>>;
  beforeAll(async () => {
    runDir = await tmp();
    trained = await trainAr({ tokens: data(), config: 'ar-tiny', runDir });
  });
  afterAll(async () => {
    trained.ar.model.dispose();
    await fs.rm(runDir, { recursive: true, force: true });
  });

  it('overfits both directions: describes each grid with its text and draws each text greedily', () => {
    const first = trained.reports[0].loss;
    const last = trained.reports[trained.reports.length - 1].loss;
    expect(last).toBeLessThan(first / 10);
    expect(trained.skippedSteps).toBe(0);
    const before = tf.memory().numTensors;
    const described = describeImages(trained.ar, GRIDS);
    described.forEach((d, i) => {
      expect(d.text).toBe(TEXTS[i]);
      expect(d.scores!.best).toBe(TEXTS[i]);
    });
    TEXTS.forEach((text, i) => {
      const [drawn] = generateImages(trained.ar, { prompt: text, n: 1, temperature: 0 });
      expect(Array.from(drawn)).toEqual(GRIDS[i]);
    });
    expect(tf.memory().numTensors).toBe(before);
  });

  it('writes log.jsonl, a checkpoint and an ar.vtok that loads to the same model', async () => {
    const log = (await fs.readFile(path.join(runDir, 'log.jsonl'), 'utf8')).trim().split('\n');
    expect(log).toHaveLength(trained.config.steps);
    expect(JSON.parse(log[0])).toMatchObject({ step: 1, skipped: false });
    await fs.access(path.join(runDir, AR_CHECKPOINT_FILE));
    const ar = await loadAr(runDir);
    try {
      expect(ar.id).toBe(trained.id);
      expect(ar.classes).toEqual(['bag', 'boot', 'shirt']);
      expect(ar.imageTokenizer).toBe('test-tokenizer');
      expect(Array.from(classifyCodes(ar, GRIDS))).toEqual(Array.from(classifyCodes(trained.ar, GRIDS)));
    } finally {
      ar.model.dispose();
    }
    await expect(loadAr(path.join(os.tmpdir()))).rejects.toThrow(new RegExp(`without ${AR_BUNDLE_FILE}`));
  });

  it('samples reproducibly: same seed same grids, with and without guidance and the KV cache', () => {
    const a = generateImages(trained.ar, { prompt: 'bag', n: 4, seed: 7, temperature: 1.5 });
    const b = generateImages(trained.ar, { prompt: 'bag', n: 4, seed: 7, temperature: 1.5, useCache: false });
    expect(b.map((g) => Array.from(g))).toEqual(a.map((g) => Array.from(g)));
    const g1 = generateImages(trained.ar, { prompt: 'bag', n: 3, seed: 2, guidance: 3, topK: 4, topP: 0.9 });
    const g2 = generateImages(trained.ar, { prompt: 'bag', n: 3, seed: 2, guidance: 3, topK: 4, topP: 0.9 });
    expect(g2.map((g) => Array.from(g))).toEqual(g1.map((g) => Array.from(g)));
    for (const g of g1) expect(g.every((v) => v >= 0 && v < 8)).toBe(true);
  });

  it('closed-set scores with the KV cache equal one full pass per (image, text) pair', () => {
    const ar = trained.ar;
    const prompts = GRIDS.map((g) => understandingPrompt(ar.vocab, g));
    const promptPos2d = prompts.map(() => [-1, -1, -1, -1, -1, -1, 0, 0, 0, 1, 1, 0, 1, 1, -1, -1]);
    const texts = ['boot', 'shirt', 'bag', 'shirts', 'x'];
    const cands = texts.map((t) => [...ar.vocab.encodeText(t), ar.vocab.eos]);
    const before = tf.memory().numTensors;
    const cached = scoreCandidatesCached(ar.model, prompts, cands, promptPos2d);
    const full = scoreContinuations(ar.model, prompts, cands, { promptPos2d });
    expect(tf.memory().numTensors).toBe(before);
    cached.forEach((v, i) => expect(v).toBeCloseTo(full[i], 4));
    expect(Array.from(classifyCodes(ar, GRIDS, texts, 5))).toEqual(Array.from(classifyCodes(ar, GRIDS, texts)));
    // Prompts of different lengths (left-padded in the cache, as visual BPE gives).
    const ragged = [prompts[0], prompts[1].slice(2), prompts[2].slice(1)];
    const raggedPos = [promptPos2d[0], promptPos2d[1].slice(4), promptPos2d[2].slice(2)];
    const r1 = scoreCandidatesCached(ar.model, ragged, cands, raggedPos);
    const r2 = scoreContinuations(ar.model, ragged, cands, { promptPos2d: raggedPos });
    r1.forEach((v, i) => expect(v).toBeCloseTo(r2[i], 4));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('malformed prompts and codes outside the vocabulary fail with clear errors', () => {
    const ar = trained.ar;
    expect(() => generateImages(ar, { prompt: 5 as never })).toThrow(/prompt/);
    expect(() => generateImages(ar, { prompt: 'bad \ud800 text' })).toThrow(/surrogate/i);
    expect(() => generateImages(ar, { prompt: 'x'.repeat(200) })).toThrow(/Use a shorter prompt/);
    expect(() => generateImages(ar, { prompt: 'bag', n: 0 })).toThrow(/n/);
    expect(() => describeImages(ar, [[1, 2, 3, 8]])).toThrow(/Expected codes between 0 and 7 in image 0 but received 8 of type number at index 3/);
    expect(() => describeImages(ar, [[1, 2, 3]])).toThrow(/2x2 code grid/);
    expect(() => classifyCodes(ar, [[1, 2, 3, -1]])).toThrow(/received -1/);
  });
});

it('resume continues exactly like an uninterrupted run', async () => {
  const a = await tmp();
  const b = await tmp();
  const config = { ...(await resolveArConfig('ar-tiny')), steps: 8, checkpointEvery: 3, conditionDrop: 0.3 };
  const full = await trainAr({ tokens: data(), config, runDir: a });
  const part = await trainAr({ tokens: data(), config, runDir: b, stopAfter: 5 });
  expect(part.steps).toBe(5);
  expect(part.id).toBeUndefined();
  part.ar.model.dispose();
  const rest = await trainAr({ tokens: data(), config: 'ignored-on-resume', runDir: b, resume: true });
  expect(rest.steps).toBe(8);
  expect([...part.reports, ...rest.reports].map((r) => r.loss)).toEqual(full.reports.map((r) => r.loss));
  const wa = full.ar.model.getWeights();
  const wb = rest.ar.model.getWeights();
  for (const k of Object.keys(wa)) expect(Array.from(wb[k])).toEqual(Array.from(wa[k]));
  expect(rest.id).toBe(full.id);
  full.ar.model.dispose();
  rest.ar.model.dispose();
  await expect(trainAr({ tokens: { ...data(), tokenizer: 'other' }, config, runDir: b, resume: true })).rejects.toThrow(/tokens of tokenizer/);
  await expect(trainAr({ tokens: data(), config, runDir: await tmp(), resume: true })).rejects.toThrow(/Cannot resume: no checkpoint/);
  await fs.rm(a, { recursive: true, force: true });
  await fs.rm(b, { recursive: true, force: true });
});

it('skips a step whose loss is not finite, names the parameters, and leaks nothing', async () => {
  const dir = await tmp();
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
  const config = { ...(await resolveArConfig('ar-tiny')), steps: 3 };
  const before = tf.memory().numTensors;
  const r = await trainAr({
    tokens: data(),
    config,
    runDir: dir,
    beforeStep: (model, step) => {
      if (step === 1) tf.tidy(() => model.variables['h0.mlp.w2'].assign(tf.fill(model.variables['h0.mlp.w2'].shape, NaN)));
    },
  });
  expect(r.reports.map((x) => x.skipped)).toEqual([false, true, true]);
  expect(r.skippedSteps).toBe(2);
  expect(String(warn.mock.calls[0][0])).toMatch(/step 2: skipped .*non-finite gradients: .*h0\./);
  r.ar.model.dispose();
  expect(tf.memory().numTensors).toBe(before);
  warn.mockRestore();
  await fs.rm(dir, { recursive: true, force: true });
});

it('reads vtok tokenize folders (captions from sidecars) and evaluates understanding accuracy', async () => {
  const dir = await tmp();
  const imgs = path.join(dir, 'imgs');
  await fs.mkdir(imgs);
  const colours = [
    [255, 0, 0],
    [0, 0, 255],
  ];
  for (let i = 0; i < 4; i++) {
    const c = colours[i % 2];
    const px = new Uint8Array(8 * 8 * 3);
    for (let p = 0; p < 64; p++) px.set(p < 32 ? c : [0, 255, 0], p * 3);
    await writePng(path.join(imgs, `im${i}.png`), px, { width: 8, height: 8, channels: 3, range: '[0,255]' });
    await fs.writeFile(path.join(imgs, `im${i}.cls`), i % 2 === 0 ? 'red' : 'blue');
  }
  const tokens = path.join(dir, 'tokens');
  const tokenizer = colourGridTokenizer({ imageSize: 8, grid: 2, levels: 2 });
  await tokenizeDataset({ inputs: [imgs], out: tokens, tokenizer });
  const read = await readArData([tokens]);
  expect(read.records.map((r) => r.text)).toEqual(['red', 'blue', 'red', 'blue']);
  expect(read.grid).toEqual({ height: 2, width: 2 });
  expect(read.codebookSize).toBe(8);
  const run = path.join(dir, 'run');
  const r = await trainAr({ tokens: [tokens], config: { ...(await resolveArConfig('ar-tiny')), batchSize: 8, steps: 30 }, runDir: run });
  const ev = await evalArTokens(r.ar, tokens);
  expect(ev).toMatchObject({ n: 4, correct: 4, accuracy: 1, unknownTexts: 0 });
  expect(ev.perClass.red).toEqual({ n: 2, correct: 2 });
  await expect(evalArTokens({ ...r.ar, imageTokenizer: 'other' }, tokens)).rejects.toThrow(/was tokenized with/);
  r.ar.model.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

it('trains on visual BPE ids (2D shapes) and draws base grids through BPE decoding', async () => {
  const grids = [
    [1, 1, 3, 3, 1, 1, 3, 3, 5, 5, 6, 6],
    [2, 2, 2, 4, 2, 2, 2, 4, 0, 0, 7, 7],
  ];
  const texts = ['left', 'right'];
  const bpe = trainBpe(
    grids.map((codes) => ({ codes, h: 3, w: 4 })),
    { baseVocab: 8, merges: 4, minFrequency: 2 },
  );
  expect(bpe.vocabSize).toBeGreaterThan(8);
  const bpeData: ArData = {
    records: texts.map((text, i) => ({ text, codes: Int32Array.from(grids[i]), bpe: bpe.encode(grids[i], 3, 4) })),
    tokenizer: 'test-tokenizer',
    codebookSize: 8,
    grid: { height: 3, width: 4 },
    bpeId: 'some-bpe',
  };
  expect(bpeData.records[0].bpe!.length).toBeLessThan(12);
  const dir = await tmp();
  const config = { ...(await resolveArConfig('ar-tiny')), useBpe: true, batchSize: 4 };
  await expect(trainAr({ tokens: bpeData, config, runDir: dir })).rejects.toThrow(/useBpe needs the visual BPE model/);
  const r = await trainAr({ tokens: bpeData, config, runDir: dir, bpe });
  expect(r.ar.vocab.visual).toEqual({ baseCodes: 8, merges: bpe.vocabSize - 8 });
  texts.forEach((text, i) => {
    const [drawn] = generateImages(r.ar, { prompt: text, n: 1, temperature: 0 });
    expect(Array.from(drawn)).toEqual(grids[i]);
  });
  expect(describeImages(r.ar, grids).map((d) => d.scores!.best)).toEqual(texts);
  const loaded = await loadAr(dir);
  expect(loaded.bpe!.vocabSize).toBe(bpe.vocabSize);
  expect(Array.from(generateImages(loaded, { prompt: 'left', n: 1, temperature: 0 })[0])).toEqual(grids[0]);
  loaded.model.dispose();
  r.ar.model.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});
