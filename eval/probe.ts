/**
 * Linear probe of a tokenizer's code vectors (issue #4: show, not claim, that
 * the semantic codebook carries semantics): how well a linear classifier
 * reads image classes from the pooled code vectors of one branch.
 *
 *   image --readImage(size S, fit)--> x --encode--> codes [h, w]
 *         --lookup--> semantic [h, w, d_s], pixel [h, w, d_p]   (rows of the l2-normalized codebooks)
 *         --mean over the h x w grid--> semantic [d_s], pixel [d_p], both = [semantic, pixel] [d_s + d_p]
 *   features --standardize (train mean and std)--> softmax regression, L2, full-batch
 *   L-BFGS from zeros (src/core/linear-probe.ts; deterministic, no seed needed)
 *   --> train and test accuracy
 *
 * Labels: labels.jsonl in each folder, else NAME.txt / NAME.cls / NAME.json
 * sidecars (the reader `vtok classify train` uses: readLabelledImages); an
 * image's class is its caption, else its label. The classes are the train
 * folder's; a test image of another class is an error.
 *
 * Image size: S defaults to 8 x the tokenizer's downsample factor, the size
 * that gives an 8 x 8 code grid (32 for downsample 4, 64 for 8, 128 for 16):
 * at least 32, a multiple of the factor, and 64 cells to pool over. Fashion-MNIST's
 * 28 x 28 images are resized up to S (lanczos3; 'crop' and 'pad' are the same
 * for square images). The report says which S was used and whether it was the default.
 *
 * The images of one run are encoded once; every requested branch is probed
 * on those codes.
 *
 * Example:
 *   const r = await evalProbe({ tokenizer: 'default', train: 'data/fashion-mnist/train', test: 'data/fashion-mnist/test', branches: ['semantic', 'pixel'], limit: 10000 });
 *   r.results[0].test.accuracy
 */
import * as tf from '@tensorflow/tfjs';
import { VtokError, checkInt, checkNumber, checkOneOf, invalidOption, resolveOptions } from '../src/core/errors';
import { type SoftmaxFit, accuracy, applyStandardizer, fitSoftmaxRegression, fitStandardizer, predictClasses } from '../src/core/linear-probe';
import type { ImageFit } from '../src/io/image';
import type { StoreSetOptions } from '../src/io/store';
import { loadTokenizer } from '../src/io/tokenizer-bundle';
import type { TokenizerModel } from '../src/tf/tokenizer';
import { type LabelledImages, readLabelledImages } from '../training/classifier';
import type { ReconTokenizer } from './recon';

export const PROBE_REPORT_FORMAT = 'vtok-probe-report';
export const PROBE_REPORT_VERSION = 1;

export const PROBE_BRANCHES = ['semantic', 'pixel', 'both'] as const;
export type ProbeBranch = (typeof PROBE_BRANCHES)[number];

/** Code-grid side of the default probe size (S = PROBE_GRID * downsample). */
export const PROBE_GRID = 8;

/** The default probe image size of a tokenizer: 8 x its downsample factor (an 8 x 8 code grid). */
export function defaultProbeSize(downsample: number): number {
  return PROBE_GRID * downsample;
}

export interface EvalProbeOptions {
  /** A bundle name, id or id prefix in the store (loaded and freed here), or a tokenizer in memory (not freed). Required. */
  tokenizer: string | ReconTokenizer | undefined;
  /** Store options for a tokenizer given by name. Default: VTOK_STORE or ~/.vtok/store, then codebooks/. */
  store: StoreSetOptions;
  /** Folder of labelled images the probe is fitted on. Required. */
  train: string | undefined;
  /** Folder of labelled images it is scored on. Required. */
  test: string | undefined;
  /** Branch(es) whose pooled code vectors are probed. Default ['semantic', 'pixel', 'both']. */
  branches: ProbeBranch | readonly ProbeBranch[];
  /** Side S of the square images encoded; a multiple of the downsample factor. Default defaultProbeSize(downsample). */
  size: number | undefined;
  /** How images reach S x S (letterboxing on black for 'pad'). Default 'crop'. */
  fit: ImageFit;
  /** Only the first N train images (by name). Default all. */
  limit: number | undefined;
  /** Only the first N test images (by name). Default all. */
  testLimit: number | undefined;
  /** Images per encode call. Default 32. */
  batchSize: number;
  /** L2 penalty on the probe's weights (features are standardized). Default 1e-3. */
  l2: number;
  /** L-BFGS iterations at most. Default 500. */
  maxIters: number;
  /** Called after each encoded batch. Default none. */
  onProgress: ((p: ProbeProgress) => void) | undefined;
}

export interface ProbeProgress {
  split: 'train' | 'test';
  done: number;
  total: number;
}

const DEFAULTS: EvalProbeOptions = {
  tokenizer: undefined,
  store: {},
  train: undefined,
  test: undefined,
  branches: PROBE_BRANCHES,
  size: undefined,
  fit: 'crop',
  limit: undefined,
  testLimit: undefined,
  batchSize: 32,
  l2: 1e-3,
  maxIters: 500,
  onProgress: undefined,
};

export interface ProbeResult {
  branch: ProbeBranch;
  /** Feature dimension: d_s, d_p or d_s + d_p. */
  dim: number;
  train: { n: number; accuracy: number };
  test: { n: number; accuracy: number };
  /** Chance levels on the test set: 1 / classes, and always predicting the train set's most frequent class. */
  chance: { uniform: number; majority: number };
  /** Final probe objective (mean cross-entropy + L2 term), L-BFGS iterations, and whether the gradient tolerance was met. */
  fit: { loss: number; iterations: number; converged: boolean };
}

export interface ProbeReport {
  format: typeof PROBE_REPORT_FORMAT;
  version: number;
  createdAt: string;
  tokenizer: { id: string; name: string; imageSize: number; downsample: number; codebookSize: number; semanticDim: number; pixelDim: number };
  /** size: S used; sizeIsDefault: whether it is defaultProbeSize (8 x downsample); grid: the code grid pooled over. */
  input: { size: number; sizeIsDefault: boolean; fit: ImageFit; grid: [number, number] };
  data: {
    train: { dir: string; n: number; limit: number | null };
    test: { dir: string; n: number; limit: number | null };
    /** Class texts, index = class id (sorted). */
    classes: string[];
  };
  method: string;
  results: ProbeResult[];
  /** encodeSeconds: reading excluded, the model's encode and lookups; imagesPerSecond: (train + test) / encodeSeconds. */
  timings: { wallSeconds: number; readSeconds: number; encodeSeconds: number; probeSeconds: number; imagesPerSecond: number };
}

/**
 * Mean over the code grid of the code vectors of one branch: codes [B, h, w]
 * int32 -> [B, d_s] (semantic), [B, d_p] (pixel) or [B, d_s + d_p] (both:
 * semantic then pixel). The vectors are the rows lookup() gives (the
 * l2-normalized codebooks).
 */
export function poolCodeVectors(model: TokenizerModel, codes: tf.Tensor3D, branch: ProbeBranch): tf.Tensor2D {
  checkOneOf('branch', branch, PROBE_BRANCHES);
  return tf.tidy(() => {
    const { semantic, pixel } = model.lookup(codes); // [B, h, w, d_s], [B, h, w, d_p]
    const s = tf.mean(semantic, [1, 2]) as tf.Tensor2D; // [B, d_s]
    const p = tf.mean(pixel, [1, 2]) as tf.Tensor2D; // [B, d_p]
    if (branch === 'semantic') return s;
    if (branch === 'pixel') return p;
    return tf.concat([s, p], 1) as tf.Tensor2D; // [B, d_s + d_p]
  });
}

/** Pooled semantic [n, d_s] and pixel [n, d_p] features of labelled images (encoded in batches). */
async function pooledFeatures(
  model: TokenizerModel,
  images: LabelledImages,
  batchSize: number,
  onBatch: (done: number) => void,
): Promise<{ semantic: Float32Array; pixel: Float32Array }> {
  const { semanticDim: ds, pixelDim: dp } = model.config;
  const n = images.texts.length;
  const S = images.height;
  const per = S * S * 3;
  const semantic = new Float32Array(n * ds);
  const pixel = new Float32Array(n * dp);
  for (let start = 0; start < n; start += batchSize) {
    const B = Math.min(batchSize, n - start);
    const src = images.pixels.subarray(start * per, (start + B) * per);
    const x = new Float32Array(src.length);
    for (let i = 0; i < src.length; i++) x[i] = src[i] / 127.5 - 1; // readImage's mapping
    const [s, p] = tf.tidy(() => {
      const codes = model.encode(tf.tensor4d(x, [B, S, S, 3])); // [B, h, w]
      return [poolCodeVectors(model, codes, 'semantic'), poolCodeVectors(model, codes, 'pixel')];
    });
    try {
      semantic.set(await s.data(), start * ds);
      pixel.set(await p.data(), start * dp);
    } finally {
      tf.dispose([s, p]);
    }
    onBatch(start + B);
  }
  return { semantic, pixel };
}

/** Rows of `a` [n, da] and `b` [n, db] side by side: [n, da + db]. */
function concatColumns(a: Float32Array, da: number, b: Float32Array, db: number, n: number): Float32Array {
  const out = new Float32Array(n * (da + db));
  for (let i = 0; i < n; i++) {
    out.set(a.subarray(i * da, (i + 1) * da), i * (da + db));
    out.set(b.subarray(i * db, (i + 1) * db), i * (da + db) + da);
  }
  return out;
}

function resolveTokenizerArg(t: unknown): void {
  if (typeof t === 'string' && t !== '') return;
  if (t !== null && typeof t === 'object' && 'model' in t && 'imageSize' in t) return;
  throw invalidOption('tokenizer', 'a tokenizer name, id or id prefix, or a loaded tokenizer { model, imageSize }', t);
}

function resolveBranches(b: unknown): ProbeBranch[] {
  const list = Array.isArray(b) ? b : [b];
  if (list.length === 0) throw invalidOption('branch', `at least one of ${PROBE_BRANCHES.map((x) => JSON.stringify(x)).join(', ')}`, b);
  const out: ProbeBranch[] = [];
  for (const x of list) {
    const v = checkOneOf('branch', x, PROBE_BRANCHES);
    if (!out.includes(v)) out.push(v);
  }
  return out;
}

/**
 * The probe on given features: standardize with the train statistics, fit the softmax regression on
 * the train rows, score train and test. xTrain [nTrain, d], xTest [nTest, d] row-major.
 */
export function fitProbe(
  xTrain: ArrayLike<number>,
  yTrain: Int32Array,
  xTest: ArrayLike<number>,
  yTest: Int32Array,
  d: number,
  classes: number,
  options: { l2: number; maxIters: number },
): { trainAccuracy: number; testAccuracy: number; model: SoftmaxFit } {
  const std = fitStandardizer(xTrain, yTrain.length, d);
  const a = applyStandardizer(xTrain, yTrain.length, d, std);
  const b = applyStandardizer(xTest, yTest.length, d, std);
  const model = fitSoftmaxRegression(a, yTrain, yTrain.length, d, classes, options);
  return {
    trainAccuracy: accuracy(predictClasses(a, yTrain.length, d, model), yTrain),
    testAccuracy: accuracy(predictClasses(b, yTest.length, d, model), yTest),
    model,
  };
}

/** Fits and scores the probe of every requested branch on the images of `train` and `test` (see the file comment). */
export async function evalProbe(options: Partial<EvalProbeOptions>): Promise<ProbeReport> {
  const t0 = performance.now();
  const opts = resolveOptions('evalProbe', DEFAULTS, options);
  resolveTokenizerArg(opts.tokenizer);
  if (typeof opts.train !== 'string' || opts.train === '') throw invalidOption('train', 'the path of a labelled image folder', opts.train);
  if (typeof opts.test !== 'string' || opts.test === '') throw invalidOption('test', 'the path of a labelled image folder', opts.test);
  const branches = resolveBranches(opts.branches);
  const fit = checkOneOf('fit', opts.fit, ['crop', 'pad'] as const);
  const limit = opts.limit === undefined ? undefined : checkInt('limit', opts.limit, 1);
  const testLimit = opts.testLimit === undefined ? undefined : checkInt('testLimit', opts.testLimit, 1);
  const batchSize = checkInt('batchSize', opts.batchSize, 1, 4096);
  const l2 = checkNumber('l2', opts.l2, 0);
  const maxIters = checkInt('maxIters', opts.maxIters, 1);
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') throw invalidOption('onProgress', 'a function', opts.onProgress);

  let owned: TokenizerModel | undefined;
  try {
    let tok: ReconTokenizer;
    if (typeof opts.tokenizer === 'string') {
      const t = await loadTokenizer(opts.tokenizer, opts.store);
      owned = t.model;
      tok = { model: t.model, imageSize: t.imageSize, id: t.id, name: t.bundle.name };
    } else {
      tok = opts.tokenizer as ReconTokenizer;
    }
    const model = tok.model;
    const c = model.config;
    const S = opts.size === undefined ? defaultProbeSize(c.downsample) : checkInt('size', opts.size, 1, 65535);
    const grid = model.gridShape(S, S); // throws, naming S, unless S is a multiple of the downsample factor

    // Labels are checked before any image is encoded: a missing class fails fast.
    const tRead = performance.now();
    const input = { size: S, fit, background: '#000000' };
    const trainImages = await readLabelledImages([opts.train], { input, limit: limit ?? 0 });
    const testImages = await readLabelledImages([opts.test], { input, limit: testLimit ?? 0 });
    const readSeconds = (performance.now() - tRead) / 1000;
    const classes = [...new Set(trainImages.texts)].sort();
    if (classes.length < 2) {
      throw new VtokError('INVALID_INPUT', `Expected at least 2 classes in ${opts.train} but all ${trainImages.texts.length} images are ${JSON.stringify(classes[0])}`, {
        subject: opts.train,
      });
    }
    const classOf = new Map(classes.map((name, i) => [name, i]));
    const trainY = Int32Array.from(trainImages.texts, (t) => classOf.get(t) as number);
    const testY = new Int32Array(testImages.texts.length);
    testImages.texts.forEach((t, i) => {
      const k = classOf.get(t);
      if (k === undefined) {
        throw new VtokError('INVALID_INPUT', `Test image ${testImages.files[i]} has class ${JSON.stringify(t)}, which no train image in ${opts.train} has`, {
          subject: testImages.files[i],
        });
      }
      testY[i] = k;
    });

    const tEnc = performance.now();
    const progress = (split: 'train' | 'test', total: number) => (done: number) => opts.onProgress?.({ split, done, total });
    const trainF = await pooledFeatures(model, trainImages, batchSize, progress('train', trainY.length));
    const testF = await pooledFeatures(model, testImages, batchSize, progress('test', testY.length));
    const encodeSeconds = (performance.now() - tEnc) / 1000;

    const tProbe = performance.now();
    const { semanticDim: ds, pixelDim: dp } = c;
    const featuresOf = (f: { semantic: Float32Array; pixel: Float32Array }, n: number, b: ProbeBranch): { x: Float32Array; d: number } =>
      b === 'semantic' ? { x: f.semantic, d: ds } : b === 'pixel' ? { x: f.pixel, d: dp } : { x: concatColumns(f.semantic, ds, f.pixel, dp, n), d: ds + dp };
    const nTrain = trainY.length;
    const nTest = testY.length;
    const counts = new Int32Array(classes.length);
    for (const y of trainY) counts[y]++;
    let major = 0;
    for (let k = 1; k < counts.length; k++) if (counts[k] > counts[major]) major = k;
    const majority = testY.reduce((a, y) => a + (y === major ? 1 : 0), 0) / nTest;
    const results: ProbeResult[] = branches.map((branch) => {
      const tr = featuresOf(trainF, nTrain, branch);
      const te = featuresOf(testF, nTest, branch);
      const p = fitProbe(tr.x, trainY, te.x, testY, tr.d, classes.length, { l2, maxIters });
      return {
        branch,
        dim: tr.d,
        train: { n: nTrain, accuracy: p.trainAccuracy },
        test: { n: nTest, accuracy: p.testAccuracy },
        chance: { uniform: 1 / classes.length, majority },
        fit: { loss: p.model.loss, iterations: p.model.iterations, converged: p.model.converged },
      };
    });
    const probeSeconds = (performance.now() - tProbe) / 1000;

    return {
      format: PROBE_REPORT_FORMAT,
      version: PROBE_REPORT_VERSION,
      createdAt: new Date().toISOString(),
      tokenizer: {
        id: tok.id ?? 'unsaved model',
        name: tok.name ?? tok.id ?? 'unsaved model',
        imageSize: tok.imageSize,
        downsample: c.downsample,
        codebookSize: c.codebookSize,
        semanticDim: ds,
        pixelDim: dp,
      },
      input: { size: S, sizeIsDefault: opts.size === undefined || S === defaultProbeSize(c.downsample), fit, grid },
      data: {
        train: { dir: opts.train, n: nTrain, limit: limit ?? null },
        test: { dir: opts.test, n: nTest, limit: testLimit ?? null },
        classes,
      },
      method:
        `images read at ${S}x${S} (${fit}), encoded to a ${grid[0]}x${grid[1]} code grid; each branch's code vectors (l2-normalized codebook rows) ` +
        `mean-pooled over the grid ('both': semantic then pixel, concatenated); features standardized with the train mean and population std; ` +
        `multinomial logistic regression, L2 ${l2} on the weights (not the bias), full-batch L-BFGS from zeros (at most ${maxIters} iterations); accuracy = share of correct argmax classes`,
      results,
      timings: {
        wallSeconds: (performance.now() - t0) / 1000,
        readSeconds,
        encodeSeconds,
        probeSeconds,
        imagesPerSecond: (nTrain + nTest) / Math.max(1e-9, encodeSeconds),
      },
    };
  } finally {
    owned?.dispose();
  }
}
