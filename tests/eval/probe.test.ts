import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { defaultProbeSize, evalProbe, poolCodeVectors } from '../../eval/probe';
import { Rng } from '../../src/core/random';
import { readImage, writePng } from '../../src/io/image';
import { createTokenizerModel, type TokenizerModel } from '../../src/tf/tokenizer';

const S = 16; // a 2 x 2 code grid at downsample 8
const tiny = { baseChannels: 8, channelMult: [1, 1, 2, 2], normGroups: 4, semanticDim: 4, pixelDim: 4, codebookSize: 8, headResBlocks: 0, kmeansInit: false };

beforeAll(async () => {
  await tf.setBackend('cpu');
});

let root: string;
beforeAll(async () => {
  root = await fsp.mkdtemp(path.join(tmpdir(), 'vtok-probe-'));
});
afterAll(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

/** Sets both codebooks of a model (rows used as given: pass unit rows). */
function setCodebooks(model: TokenizerModel, semantic: number[][], pixel: number[][]): void {
  tf.tidy(() => {
    model.quantizer.semantic.assign(tf.tensor2d(semantic));
    model.quantizer.pixel.assign(tf.tensor2d(pixel));
  });
}

/** Two random prototype images (8-bit, S x S x 3). */
function prototypes(seed: number): Uint8Array[] {
  const rng = new Rng(seed);
  return [0, 1].map(() => Uint8Array.from({ length: S * S * 3 }, () => rng.int(256)));
}

/**
 * A labelled folder: `perClass` noisy copies (+-3 levels) of each prototype,
 * named 00000.png..., classes "proto-a" / "proto-b" in labels.jsonl (or none).
 */
async function writeFolder(dir: string, protos: Uint8Array[], perClass: number, seed: number, labels = true): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const rng = new Rng(seed);
  const lines: string[] = [];
  let i = 0;
  for (let k = 0; k < perClass; k++) {
    for (let c = 0; c < protos.length; c++) {
      const px = Uint8Array.from(protos[c], (v) => Math.max(0, Math.min(255, v + rng.int(7) - 3)));
      const file = `${String(i++).padStart(5, '0')}.png`;
      await writePng(path.join(dir, file), px, { width: S, height: S });
      lines.push(JSON.stringify({ file, label: c === 0 ? 'proto-a' : 'proto-b' }));
    }
  }
  if (labels) await fsp.writeFile(path.join(dir, 'labels.jsonl'), lines.join('\n') + '\n');
}

/**
 * A tiny tokenizer whose `separating` codebook holds the 8 latents (2 x 2 grid
 * x 2 prototypes) of that branch, so each prototype's cells get codes of their
 * own, while every row of the other codebook is the same vector: its pooled
 * features are one constant, whatever the image.
 */
async function rigged(protos: Uint8Array[], separating: 'semantic' | 'pixel'): Promise<TokenizerModel> {
  const model = createTokenizerModel(tiny, 1);
  const files = await Promise.all(protos.map(async (p, c) => {
    const f = path.join(root, `proto-${separating}-${c}.png`);
    await writePng(f, p, { width: S, height: S });
    return f;
  }));
  const x = new Float32Array(2 * S * S * 3);
  for (let c = 0; c < 2; c++) x.set((await readImage(files[c], { size: S })).data, c * S * S * 3);
  const rows = tf.tidy(() => {
    const { zs, zp } = model.latents(tf.tensor4d(x, [2, S, S, 3])); // [2, 2, 2, 4] each, unit rows
    const z = separating === 'semantic' ? zs : zp;
    return tf.reshape(z, [8, 4]).arraySync() as number[][];
  });
  const constant = Array.from({ length: 8 }, () => [1, 0, 0, 0]);
  if (separating === 'semantic') setCodebooks(model, rows, constant);
  else setCodebooks(model, constant, rows);
  return model;
}

describe('poolCodeVectors', () => {
  it('mean of the code vectors over the grid, hand-computed; both = [semantic, pixel]; no leak', () => {
    const model = createTokenizerModel({ ...tiny, codebookSize: 4, semanticDim: 2, pixelDim: 2 }, 0);
    setCodebooks(
      model,
      [
        [1, 0],
        [0, 1],
        [-1, 0],
        [0, -1],
      ],
      [
        [0.6, 0.8],
        [0.8, 0.6],
        [1, 0],
        [0, 1],
      ],
    );
    // Image 0: codes [[1, 2], [2, 3]]. semantic: ([0, 1] + 2 [-1, 0] + [0, -1]) / 4 = [-0.5, 0];
    //          pixel: ([0.8, 0.6] + 2 [1, 0] + [0, 1]) / 4 = [0.7, 0.4].
    // Image 1: all code 0: semantic [1, 0], pixel [0.6, 0.8].
    const codes = tf.tensor3d([1, 2, 2, 3, 0, 0, 0, 0], [2, 2, 2], 'int32');
    const before = tf.memory().numTensors;
    const got = (b: 'semantic' | 'pixel' | 'both'): { shape: number[]; values: number[] } => {
      const t = poolCodeVectors(model, codes, b);
      const r = { shape: t.shape, values: Array.from(t.dataSync()) };
      t.dispose();
      return r;
    };
    const close = (a: number[], b: number[]): void => a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 6));
    const s = got('semantic');
    expect(s.shape).toEqual([2, 2]);
    close(s.values, [-0.5, 0, 1, 0]);
    const p = got('pixel');
    expect(p.shape).toEqual([2, 2]);
    close(p.values, [0.7, 0.4, 0.6, 0.8]);
    const both = got('both');
    expect(both.shape).toEqual([2, 4]);
    close(both.values, [-0.5, 0, 0.7, 0.4, 1, 0, 0.6, 0.8]);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => poolCodeVectors(model, codes, 'colour' as never)).toThrow('Expected one of "semantic", "pixel", "both" for branch but received "colour"');
    codes.dispose();
    model.dispose();
  });
});

describe('evalProbe', () => {
  let train: string;
  let test: string;
  const protos = prototypes(7);
  beforeAll(async () => {
    train = path.join(root, 'train');
    test = path.join(root, 'test');
    await writeFolder(train, protos, 8, 1);
    await writeFolder(test, protos, 6, 2);
  });

  it.each(['semantic', 'pixel'] as const)('the branch whose pooled vectors separate the classes (%s) scores high, the other chance', async (separating) => {
    const model = await rigged(protos, separating);
    const other = separating === 'semantic' ? 'pixel' : 'semantic';
    const before = tf.memory().numTensors;
    const r = await evalProbe({ tokenizer: { model, imageSize: S, id: 'rigged', name: 'rigged' }, train, test, size: S, batchSize: 5 });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.results.map((x) => x.branch)).toEqual(['semantic', 'pixel', 'both']);
    expect(r.results.map((x) => x.dim)).toEqual([4, 4, 8]);
    expect(r.data.classes).toEqual(['proto-a', 'proto-b']);
    expect(r.data.train.n).toBe(16);
    expect(r.data.test.n).toBe(12);
    expect(r.input).toEqual({ size: S, sizeIsDefault: false, fit: 'crop', grid: [2, 2] });
    const byBranch = Object.fromEntries(r.results.map((x) => [x.branch, x]));
    expect(byBranch[separating].test.accuracy).toBe(1);
    expect(byBranch[separating].train.accuracy).toBe(1);
    expect(byBranch.both.test.accuracy).toBe(1);
    // Constant features: the probe can only predict one class; a balanced test set gives exactly chance.
    expect(byBranch[other].test.accuracy).toBe(0.5);
    expect(byBranch[other].chance).toEqual({ uniform: 0.5, majority: 0.5 });
    for (const x of r.results) expect(x.fit.converged).toBe(true);
    expect(r.tokenizer).toMatchObject({ id: 'rigged', downsample: 8, semanticDim: 4, pixelDim: 4, codebookSize: 8 });
    model.dispose();
  });

  it('one branch at a time, limits, and the default size 8 x downsample (an 8 x 8 grid)', async () => {
    expect([4, 8, 16].map(defaultProbeSize)).toEqual([32, 64, 128]);
    const model = createTokenizerModel(tiny, 2);
    const r = await evalProbe({ tokenizer: { model, imageSize: S }, train, test, branches: 'pixel', limit: 6, testLimit: 4 });
    expect(r.results).toHaveLength(1);
    expect(r.results[0]).toMatchObject({ branch: 'pixel', dim: 4, train: { n: 6 }, test: { n: 4 } });
    expect(r.input).toEqual({ size: 64, sizeIsDefault: true, fit: 'crop', grid: [8, 8] });
    expect(r.method).toContain('64x64');
    model.dispose();
  });

  it('clear errors: missing labels, unknown branch, a test class train lacks, a size the model cannot take', async () => {
    const model = createTokenizerModel(tiny, 3);
    const tok = { model, imageSize: S };
    const unlabelled = path.join(root, 'unlabelled');
    await writeFolder(unlabelled, protos, 1, 3, false);
    await expect(evalProbe({ tokenizer: tok, train: unlabelled, test, size: S })).rejects.toThrow(
      `Image ${path.join(unlabelled, '00000.png')} has no class: expected a line for 00000.png in ${path.join(unlabelled, 'labels.jsonl')}, or a sidecar 00000.txt/.cls/.json`,
    );
    await expect(evalProbe({ tokenizer: tok, train, test, branches: ['semantic', 'colour' as never] })).rejects.toThrow(
      'Expected one of "semantic", "pixel", "both" for branch but received "colour"',
    );
    const odd = path.join(root, 'odd');
    await writeFolder(odd, protos, 1, 4);
    await fsp.writeFile(path.join(odd, 'labels.jsonl'), '{"file":"00000.png","label":"proto-a"}\n{"file":"00001.png","label":"proto-c"}\n');
    await expect(evalProbe({ tokenizer: tok, train, test: odd, size: S })).rejects.toThrow(
      `Test image ${path.join(odd, '00001.png')} has class "proto-c", which no train image in ${train} has`,
    );
    await expect(evalProbe({ tokenizer: tok, train, test, size: 20 })).rejects.toThrow('Expected image height to be a positive multiple of the downsample factor 8 but received 20');
    await expect(evalProbe({ tokenizer: tok, train, test: undefined })).rejects.toThrow(/for test/);
    model.dispose();
  });
});
