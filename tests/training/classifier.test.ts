/**
 * The pixel classifier that judges generated images: it learns a separable
 * synthetic set (bright left half vs bright right half), reads labels from
 * sidecars and labels.jsonl, survives a save/load round trip with identical
 * predictions, and `evalGeneration` runs end to end on a tiny real stack
 * (random tiny image tokenizer in a temporary store, a tiny AR head trained a
 * few steps) with counts that a direct recount reproduces. No tensor leaks;
 * bad inputs fail clearly.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { classFileName, evalGeneration, generationSeed } from '../../eval/generation';
import { Rng } from '../../src/core/random';
import { type ArParts } from '../../src/io/ar-bundle';
import { CLASSIFIER_BUNDLE_FILE, type ClassifierParts, loadClassifier } from '../../src/io/classifier-bundle';
import { writePng } from '../../src/io/image';
import { loadTokenizer, saveTokenizer } from '../../src/io/tokenizer-bundle';
import { generateImages } from '../../src/pipeline/ar';
import { PixelClassifier } from '../../src/tf/classifier';
import { createTokenizerModel } from '../../src/tf/tokenizer';
import { type LabelledImages, classifyPixels, evaluateClassifier, readLabelledImages, trainClassifier } from '../../training/classifier';
import { trainAr } from '../../training/ar';

const S = 16;

/** n images per class: "left" has a bright left half, "right" a bright right half, both noisy. */
function synthetic(nPerClass: number, seed: number): LabelledImages {
  const rng = new Rng(seed);
  const per = S * S * 3;
  const pixels = new Uint8Array(2 * nPerClass * per);
  const texts: string[] = [];
  for (let i = 0; i < 2 * nPerClass; i++) {
    const right = i % 2 === 1;
    texts.push(right ? 'right' : 'left');
    const level = 150 + rng.int(100);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const bright = right ? x >= S / 2 : x < S / 2;
        const v = Math.max(0, Math.min(255, (bright ? level : 30) + rng.int(41) - 20));
        for (let ch = 0; ch < 3; ch++) pixels[i * per + (y * S + x) * 3 + ch] = v;
      }
    }
  }
  return { pixels, texts, files: texts.map((_, i) => `synthetic-${i}`), height: S, width: S };
}

const MODEL = { widths: [4], hidden: 8 };
const INPUT = { size: S, fit: 'pad' as const, background: '#000000' };

let work: string;
let trained: Awaited<ReturnType<typeof trainClassifier>>;
beforeAll(async () => {
  await tf.setBackend('cpu');
  work = await fs.mkdtemp(path.join(os.tmpdir(), 'vtok-classifier-'));
  trained = await trainClassifier({ data: synthetic(32, 1), runDir: path.join(work, 'run'), steps: 30, batchSize: 8, lr: 0.02, seed: 3, model: MODEL, input: INPUT, logEvery: 10 });
});
afterAll(async () => {
  trained?.classifier.model.dispose();
  await fs.rm(work, { recursive: true, force: true });
});

describe('trainClassifier', () => {
  it('learns a separable set to >= 95% on fresh images, with a log and a bundle', async () => {
    const before = tf.memory().numTensors;
    const r = await evaluateClassifier(trained.classifier, synthetic(20, 99));
    expect(tf.memory().numTensors).toBe(before);
    expect(r.n).toBe(40);
    expect(r.accuracy).toBeGreaterThanOrEqual(0.95);
    expect(r.perClass.left.n + r.perClass.right.n).toBe(40);
    expect(r.perClass.left.correct + r.perClass.right.correct).toBe(r.correct);
    expect(trained.classifier.classes).toEqual(['left', 'right']);
    const log = (await fs.readFile(path.join(work, 'run', 'log.jsonl'), 'utf8')).trim().split('\n');
    expect(log).toHaveLength(30);
    expect(JSON.parse(log[29]).step).toBe(30);
    expect(trained.reports[29].loss).toBeLessThan(trained.reports[0].loss);
  });

  it('trains without leaking tensors and is seeded', async () => {
    const before = tf.memory().numTensors;
    const a = await trainClassifier({ data: synthetic(4, 5), runDir: path.join(work, 'a'), steps: 3, batchSize: 4, seed: 1, model: MODEL, input: INPUT });
    const b = await trainClassifier({ data: synthetic(4, 5), runDir: path.join(work, 'b'), steps: 3, batchSize: 4, seed: 1, model: MODEL, input: INPUT });
    expect(b.id).toBe(a.id);
    a.classifier.model.dispose();
    b.classifier.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('save/load round trip gives the same predictions', async () => {
    const set = synthetic(6, 7);
    const pixels = Float32Array.from(set.pixels, (v) => v / 127.5 - 1);
    const want = classifyPixels(trained.classifier, pixels, 12);
    for (const ref of [path.join(work, 'run'), path.join(work, 'run', CLASSIFIER_BUNDLE_FILE)]) {
      const loaded = await loadClassifier(ref);
      expect(loaded.id).toBe(trained.id);
      expect(loaded.classes).toEqual(['left', 'right']);
      expect(loaded.input).toEqual(INPUT);
      expect(Array.from(classifyPixels(loaded, pixels, 12, 5))).toEqual(Array.from(want));
      const x = tf.tensor4d(pixels, [12, S, S, 3]);
      const l1 = trained.classifier.model.logits(x);
      const l2 = loaded.model.logits(x);
      expect(Array.from(l2.dataSync())).toEqual(Array.from(l1.dataSync()));
      tf.dispose([x, l1, l2]);
      loaded.model.dispose();
    }
  });

  it('reads class texts from sidecars and from labels.jsonl at the configured geometry', async () => {
    const side = path.join(work, 'side');
    const jsonl = path.join(work, 'jsonl');
    await fs.mkdir(side);
    await fs.mkdir(jsonl);
    const set = synthetic(2, 11);
    const per = S * S * 3;
    const lines: string[] = [];
    for (let i = 0; i < 4; i++) {
      const img = set.pixels.slice(i * per, (i + 1) * per);
      await writePng(path.join(side, `${i}.png`), img, { width: S, height: S, channels: 3 });
      await fs.writeFile(path.join(side, `${i}.txt`), `${set.texts[i]}\n`);
      await writePng(path.join(jsonl, `${i}.png`), img, { width: S, height: S, channels: 3 });
      lines.push(JSON.stringify({ file: `${i}.png`, label: set.texts[i], class: i % 2 }));
    }
    await fs.writeFile(path.join(jsonl, 'labels.jsonl'), lines.join('\n') + '\n');
    for (const dir of [side, jsonl]) {
      const got = await readLabelledImages([dir], { input: INPUT });
      expect(got.texts).toEqual(set.texts);
      expect(Array.from(got.pixels)).toEqual(Array.from(set.pixels));
    }
    const half = await readLabelledImages([side], { input: { ...INPUT, size: 8 } });
    expect(half.pixels.length).toBe(4 * 8 * 8 * 3);
    const r = await evaluateClassifier(trained.classifier, [side, jsonl], { limit: 3 });
    expect(r.n).toBe(6);

    await fs.rm(path.join(side, '3.txt'));
    await expect(readLabelledImages([side], { input: INPUT })).rejects.toThrow(/3\.png has no class/);
  });

  it('fails clearly on bad inputs', async () => {
    await expect(readLabelledImages([path.join(work, 'nope')])).rejects.toThrow(/Cannot read data folder .*nope/);
    await expect(readLabelledImages([])).rejects.toThrow(/at least one data folder/);
    await expect(trainClassifier({ data: synthetic(2, 1), runDir: path.join(work, 'x'), steps: 0, input: INPUT })).rejects.toThrow(/for steps/);
    await expect(trainClassifier({ data: synthetic(2, 1), runDir: path.join(work, 'x'), stepz: 1 } as never)).rejects.toThrow(/Unknown option "stepz"/);
    await expect(trainClassifier({ data: synthetic(2, 1), runDir: path.join(work, 'x') })).rejects.toThrow(/16x16 but input.size is 32/);
    const one = synthetic(2, 1);
    one.texts = one.texts.map(() => 'same');
    await expect(trainClassifier({ data: one, runDir: path.join(work, 'x'), input: INPUT })).rejects.toThrow(/at least 2 classes/);
    await expect(loadClassifier(work)).rejects.toThrow(/without classifier\.vtok/);
    expect(() => new PixelClassifier({ height: 8, width: 8, numClasses: 1 }, 0)).toThrow(/numClasses/);
    const before = tf.memory().numTensors;
    const wrong = tf.zeros([1, 8, 8, 3]) as tf.Tensor4D;
    expect(() => trained.classifier.model.logits(wrong)).toThrow(/Expected images of shape \[B, 16, 16, 3\].*\[1, 8, 8, 3\]/);
    wrong.dispose();
    expect(() => trained.classifier.model.setWeights({ ...trained.classifier.model.getWeights(), 'fc.b': new Float32Array(3) })).toThrow(/fc\.b has 3 values/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('evalGeneration', () => {
  let store: string;
  let ar: ArParts;
  beforeAll(async () => {
    store = path.join(work, 'store');
    const tok = createTokenizerModel({ codebookSize: 8, baseChannels: 8, channelMult: [1, 1, 1, 1], normGroups: 4, semanticDecoderChannels: 8, kmeansInit: false }, 1);
    const id = await saveTokenizer(tok, { imageSize: S, name: 'tiny', store: { store, shipped: false } });
    tok.dispose();
    const grids = [
      [1, 2, 3, 4],
      [5, 6, 7, 0],
    ];
    const records = [0, 1, 0, 1].map((c) => ({ text: c === 0 ? 'left' : 'right', codes: Int32Array.from(grids[c]), bpe: null }));
    const r = await trainAr({ tokens: { records, tokenizer: id, codebookSize: 8, grid: { height: 2, width: 2 }, bpeId: null }, config: 'ar-tiny', runDir: path.join(work, 'ar'), steps: 4 });
    ar = r.ar;
  });
  afterAll(() => {
    ar?.model.dispose();
  });

  it('samples, decodes and classifies every class; counts match a direct recount; writes grids; no leaks', async () => {
    const before = tf.memory().numTensors;
    const out = path.join(work, 'grids');
    const r = await evalGeneration(ar, trained.classifier, { nPerClass: 3, batch: 2, seed: 5, store: { store, shipped: false }, out });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.n).toBe(6);
    expect(r.accuracy).toBeGreaterThanOrEqual(0);
    expect(r.accuracy).toBeLessThanOrEqual(1);
    expect(r.samples.map((s) => s.prompt)).toEqual(['left', 'left', 'left', 'right', 'right', 'right']);
    const correct = r.samples.filter((s) => s.prompt === s.predicted).length;
    expect(r.correct).toBe(correct);
    expect(r.accuracy).toBeCloseTo(correct / 6, 12);
    for (const c of ['left', 'right']) {
      const mine = r.samples.filter((s) => s.prompt === c);
      expect(r.perClass[c]).toMatchObject({ n: 3, correct: mine.filter((s) => s.predicted === c).length });
      expect(Object.values(r.perClass[c].predicted).reduce((a, b) => a + b, 0)).toBe(3);
    }

    // Direct recount of "right" (class 1), chunk 1 (its third sample): generate, decode, 8-bit, classify by hand.
    const tok = await loadTokenizer(ar.imageTokenizer, { store, shipped: false });
    const [codes] = generateImages(ar, { prompt: 'right', n: 1, seed: generationSeed(5, 1, 1) });
    const img = tf.tidy(() => tok.model.decode(tf.tensor3d(codes, [1, 2, 2], 'int32')));
    const bytes = Uint8Array.from(img.dataSync(), (v) => Math.round((v + 1) * 127.5));
    img.dispose();
    tok.model.dispose();
    const [p] = classifyPixels(trained.classifier, Float32Array.from(bytes, (v) => v / 127.5 - 1), 1);
    expect(trained.classifier.classes[p]).toBe(r.samples[5].predicted);

    expect(r.grids.right).toBe(path.join(out, `${classFileName('right')}.png`));
    await fs.access(r.grids.left);
    expect(classFileName('T-shirt/top')).toBe('T-shirt_top');

    // A class's samples do not depend on the other classes.
    const again = await evalGeneration(ar, trained.classifier, { nPerClass: 3, batch: 2, seed: 5, classes: ['right'], store: { store, shipped: false } });
    expect(again.samples).toEqual(r.samples.slice(3));
  });

  it('fails clearly on mismatched geometry, unknown classes and bad options', async () => {
    const st = { store, shipped: false as const };
    const small: ClassifierParts = { model: new PixelClassifier({ height: 8, width: 8, numClasses: 2, ...MODEL }, 0), classes: ['left', 'right'], input: { ...INPUT, size: 8 } };
    const other: ClassifierParts = { model: trained.classifier.model, classes: ['left', 'up'], input: INPUT };
    const before = tf.memory().numTensors;
    try {
      await expect(evalGeneration(ar, small, { nPerClass: 1, store: st })).rejects.toThrow(/decodes 2x2 code grids to 16x16 images but the classifier reads 8x8/);
      await expect(evalGeneration(ar, other, { nPerClass: 1, store: st })).rejects.toThrow(/does not know the AR class "right"/);
      await expect(evalGeneration(ar, trained.classifier, { nPerClass: 1, store: st, classes: ['down'] })).rejects.toThrow(/"down" is not one of the AR model's class texts/);
      await expect(evalGeneration(ar, trained.classifier, { nPerClass: 0, store: st })).rejects.toThrow(/for nPerClass/);
      await expect(evalGeneration(ar, trained.classifier, { nPerClass: 1, store: { store: path.join(work, 'empty'), shipped: false } })).rejects.toThrow();
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      small.model.dispose();
    }
  });

  it('runs from the CLI: vtok ar eval-generation --json', async () => {
    const root = path.resolve(__dirname, '../..');
    const args = ['ar', 'eval-generation', '--ar', path.join(work, 'ar'), '--classifier', path.join(work, 'run'), '--n-per-class', '2', '--seed', '5', '--out', path.join(work, 'cli-grids'), '--json'];
    const res = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(path.join(root, 'node_modules/.bin/tsx'), [path.join(root, 'src/cli/main.ts'), ...args], { cwd: root, env: { ...process.env, VTOK_STORE: store, VTOK_BACKEND: 'cpu' } }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(res.stderr).not.toMatch(/Error|vtok: /);
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout);
    expect(out.n).toBe(4);
    expect(out.correct).toBe(out.samples.filter((x: { prompt: string; predicted: string }) => x.prompt === x.predicted).length);
    expect(Object.keys(out.grids)).toEqual(['left', 'right']);
  });
});
