/**
 * trainClassifier: trains the pixel classifier (src/tf/classifier.ts) that
 * judges generated images (issue #8), and evaluateClassifier: its accuracy
 * on a labelled folder.
 *
 * Data: folders of images whose class text comes from `labels.jsonl` in the
 * folder (`{"file": "00000.png", "label": "Ankle boot"}`, the format of
 * src/io/dataset/labels.ts), else from sidecars next to each image (`NAME.txt`
 * caption, `NAME.cls` label, `NAME.json`). The text of an image is its
 * caption, else its label: the rule the AR trainer uses (recordText), so the
 * classifier's classes are the AR model's prompts.
 *
 * Geometry: images are read with readImage({ size, fit, background }) (default
 * 32, 'pad', black: what training/configs/fashion-mnist.json gives the image
 * tokenizer), so the classifier sees the pixels the tokenizer decodes to. The
 * bundle records it; evaluation reads images the same way.
 *
 * One step: batchSize images in a seeded per-epoch order (EpochOrder) ->
 * softmax cross-entropy -> Adam. At the end runDir gets classifier.vtok
 * (atomic) and log.jsonl (one line a step).
 *
 * Example:
 *   const r = await trainClassifier({ data: ['data/fashion-mnist/train'], runDir: 'runs/cls', steps: 2000 });
 *   const e = await evaluateClassifier(r.classifier, ['data/fashion-mnist/test']);   // { accuracy, n, perClass }
 *   r.classifier.model.dispose();
 */

import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { EpochOrder, closedSet, recordText } from '../src/core/ar-tasks';
import { VtokError, checkInt, checkNumber, checkOneOf, describeValue, resolveOptions } from '../src/core/errors';
import { backendInfo } from '../src/engine/backend';
import { writeFileAtomic } from '../src/io/atomic';
import { CLASSIFIER_BUNDLE_FILE, type ClassifierInput, type ClassifierParts, saveClassifierFile } from '../src/io/classifier-bundle';
import { type TextFields, loadLabelMap, lookupLabels, parseSidecar } from '../src/io/dataset';
import { readImage } from '../src/io/image';
import { type ClassifierConfig, PixelClassifier } from '../src/tf/classifier';

/** Labelled images in memory: 8-bit RGB, [n, height, width, 3] back to back. */
export interface LabelledImages {
  pixels: Uint8Array;
  texts: string[];
  files: string[];
  height: number;
  width: number;
}

export const DEFAULT_CLASSIFIER_INPUT: ClassifierInput = { size: 32, fit: 'pad', background: '#000000' };

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp']);
/** 8-bit value -> [-1, 1] (readImage's mapping). */
const FROM_UINT8 = Float32Array.from({ length: 256 }, (_, v) => v / 127.5 - 1);

/** The class text of each image of a folder: labels.jsonl in the folder, else sidecars. */
async function folderTexts(dir: string, files: readonly string[]): Promise<string[]> {
  const mapping = path.join(dir, 'labels.jsonl');
  const hasMap = (await fs.stat(mapping).catch(() => null)) !== null;
  const map = hasMap ? (await loadLabelMap(mapping)).map : null;
  const out: string[] = [];
  for (const file of files) {
    const name = path.basename(file);
    let fields: Partial<TextFields> = {};
    if (map !== null) fields = lookupLabels(map, name) ?? {};
    else {
      const stem = file.slice(0, file.length - path.extname(file).length);
      for (const ext of ['txt', 'cls', 'json'] as const) {
        const bytes = await fs.readFile(`${stem}.${ext}`).catch(() => null);
        if (bytes !== null) fields = { ...fields, ...parseSidecar(ext, bytes, `${stem}.${ext}`) };
      }
    }
    const text = recordText({ caption: fields.caption ?? null, label: fields.label ?? null });
    if (text === null) {
      throw new VtokError('INVALID_INPUT', `Image ${file} has no class: expected a line for ${name} in ${mapping}, or a sidecar ${name.replace(/\.[^.]+$/, '')}.txt/.cls/.json`, {
        subject: file,
      });
    }
    out.push(text);
  }
  return out;
}

/**
 * Reads the labelled images of folders (sorted by path; not recursive) at the
 * classifier's geometry. limit > 0 keeps the first `limit` images of each folder.
 */
export async function readLabelledImages(dirs: readonly string[], options: { input?: ClassifierInput; limit?: number } = {}): Promise<LabelledImages> {
  const input = options.input ?? DEFAULT_CLASSIFIER_INPUT;
  const limit = checkInt('limit', options.limit ?? 0, 0);
  if (!Array.isArray(dirs) || dirs.length === 0) throw new VtokError('INVALID_INPUT', `Expected at least one data folder but received ${describeValue(dirs)}`, { subject: 'data' });
  const files: string[] = [];
  const texts: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch (err) {
      throw new VtokError('INVALID_INPUT', `Cannot read data folder ${dir}: ${(err as Error).message}`, { subject: dir });
    }
    let mine = names.filter((n) => IMAGE_EXTENSIONS.has(path.extname(n).toLowerCase())).sort();
    if (limit > 0) mine = mine.slice(0, limit);
    if (mine.length === 0) throw new VtokError('INVALID_INPUT', `No images (${[...IMAGE_EXTENSIONS].join(', ')}) in ${dir}`, { subject: dir });
    const paths = mine.map((n) => path.join(dir, n));
    files.push(...paths);
    texts.push(...(await folderTexts(dir, paths)));
  }
  const S = input.size;
  const per = S * S * 3;
  const pixels = new Uint8Array(files.length * per);
  const read = async (i: number): Promise<void> => {
    const img = await readImage(files[i], { size: S, fit: input.fit, background: input.background });
    const d = img.data;
    const o = i * per;
    for (let j = 0; j < per; j++) pixels[o + j] = Math.round((Math.max(-1, Math.min(1, d[j])) + 1) * 127.5);
  };
  // A few decodes in flight: sharp works off the main thread.
  const IN_FLIGHT = 8;
  for (let s = 0; s < files.length; s += IN_FLIGHT) {
    const jobs: Promise<void>[] = [];
    for (let i = s; i < Math.min(files.length, s + IN_FLIGHT); i++) jobs.push(read(i));
    await Promise.all(jobs);
  }
  return { pixels, texts, files, height: S, width: S };
}

/** Images idx of a set as a float batch [idx.length, H, W, 3] in [-1, 1]. */
function batchOf(data: LabelledImages, idx: readonly number[]): Float32Array {
  const per = data.height * data.width * 3;
  const out = new Float32Array(idx.length * per);
  idx.forEach((k, b) => {
    const src = data.pixels.subarray(k * per, (k + 1) * per);
    for (let j = 0; j < per; j++) out[b * per + j] = FROM_UINT8[src[j]];
  });
  return out;
}

export interface ClassifierTrainConfig {
  /** Optimizer steps. Default 2000. */
  steps: number;
  /** Images per step. Default 64. */
  batchSize: number;
  /** Adam learning rate (constant). Default 1e-3. */
  lr: number;
  /** Weight init and data order. Default 0. */
  seed: number;
  /** Lines are appended to log.jsonl every this many steps. Default 50. */
  logEvery: number;
  /** Model options (height, width and numClasses come from the data). Default {}. */
  model: Partial<Pick<ClassifierConfig, 'grey' | 'widths' | 'hidden'>>;
  /** How images are read. Default 32 x 32, 'pad' on black. */
  input: ClassifierInput;
  /** Only the first N images of each folder (0: all). Default 0. */
  limit: number;
}

export const CLASSIFIER_TRAIN_DEFAULTS: ClassifierTrainConfig = {
  steps: 2000,
  batchSize: 64,
  lr: 1e-3,
  seed: 0,
  logEvery: 50,
  model: {},
  input: DEFAULT_CLASSIFIER_INPUT,
  limit: 0,
};

export interface ClassifierStepReport {
  step: number;
  loss: number;
  /** Accuracy on this step's batch (before the update). */
  batchAccuracy: number;
  stepsPerSecond: number;
}

export interface TrainClassifierOptions extends Partial<ClassifierTrainConfig> {
  /** Data folders, or images already in memory. */
  data: readonly string[] | LabelledImages;
  /** Run folder: classifier.vtok and log.jsonl. */
  runDir: string;
  /** Bundle name. Default 'classifier'. */
  name?: string;
  onStep?: (r: ClassifierStepReport) => void;
}

export interface TrainClassifierResult {
  classifier: ClassifierParts;
  /** Content id of runDir/classifier.vtok. */
  id: string;
  config: ClassifierTrainConfig;
  reports: ClassifierStepReport[];
  wallSeconds: number;
}

function checkInput(input: ClassifierInput): ClassifierInput {
  if (input === null || typeof input !== 'object') throw new VtokError('INVALID_OPTION', `Expected input to be { size, fit, background } but received ${describeValue(input)}`, { subject: 'input' });
  checkInt('input.size', input.size, 1, 4096);
  checkOneOf('input.fit', input.fit, ['crop', 'pad']);
  if (typeof input.background !== 'string') throw new VtokError('INVALID_OPTION', `Expected input.background to be a colour string but received ${describeValue(input.background)}`, { subject: 'input.background' });
  return { size: input.size, fit: input.fit, background: input.background };
}

/** Trains a classifier; see the file comment. */
export async function trainClassifier(options: TrainClassifierOptions): Promise<TrainClassifierResult> {
  const { data: dataOpt, runDir, name, onStep, ...rest } = options;
  const c = resolveOptions('trainClassifier', CLASSIFIER_TRAIN_DEFAULTS, rest);
  checkInt('steps', c.steps, 1);
  checkInt('batchSize', c.batchSize, 1);
  checkNumber('lr', c.lr, 0);
  checkNumber('seed', c.seed);
  checkInt('logEvery', c.logEvery, 1);
  c.input = checkInput(c.input);
  if (typeof runDir !== 'string' || runDir === '') throw new VtokError('INVALID_OPTION', `Expected runDir to be a folder path but received ${describeValue(runDir)}`, { subject: 'runDir' });
  const data = Array.isArray(dataOpt) ? await readLabelledImages(dataOpt as string[], { input: c.input, limit: c.limit }) : (dataOpt as LabelledImages);
  if (data.height !== c.input.size || data.width !== c.input.size) {
    throw new VtokError('INVALID_INPUT', `The images are ${data.width}x${data.height} but input.size is ${c.input.size}`, { subject: 'data' });
  }
  const classes = closedSet(data.texts);
  if (classes.length < 2) throw new VtokError('INVALID_INPUT', `Expected at least 2 classes in the training data but found ${classes.length} (${JSON.stringify(classes)})`, { subject: 'data' });
  const index = new Map(classes.map((t, i) => [t, i]));
  const labels = Int32Array.from(data.texts, (t) => index.get(t) as number);

  const model = new PixelClassifier({ ...c.model, height: data.height, width: data.width, numClasses: classes.length }, c.seed);
  const opt = tf.train.adam(c.lr);
  const order = new EpochOrder(data.texts.length, c.seed);
  const logFile = path.join(runDir, 'log.jsonl');
  await fs.mkdir(runDir, { recursive: true });
  await fs.rm(logFile, { force: true });
  await fs.rm(path.join(runDir, CLASSIFIER_BUNDLE_FILE), { force: true });
  const reports: ClassifierStepReport[] = [];
  let lines: string[] = [];
  const started = Date.now();
  const S = data.height;
  try {
    for (let step = 0; step < c.steps; step++) {
      const t0 = Date.now();
      const idx = Array.from({ length: c.batchSize }, (_, i) => order.at(step * c.batchSize + i));
      const x = tf.tensor4d(batchOf(data, idx), [idx.length, S, data.width, 3]); // [B, H, W, 3]
      const y = tf.tensor1d(Int32Array.from(idx, (k) => labels[k]), 'int32'); // [B]
      let correct = 0;
      const lossT = opt.minimize(() => {
        const logits = model.logits(x); // [B, K]
        const pred = tf.argMax(logits, 1).dataSync();
        for (let b = 0; b < idx.length; b++) if (pred[b] === labels[idx[b]]) correct++;
        return tf.losses.softmaxCrossEntropy(tf.oneHot(y, classes.length), logits) as tf.Scalar;
      }, true, model.trainableVariables()) as tf.Scalar;
      const loss = lossT.dataSync()[0];
      tf.dispose([lossT, x, y]);
      if (!Number.isFinite(loss)) throw new VtokError('INVALID_INPUT', `Classifier training diverged at step ${step + 1} (loss ${loss}); lower lr (${c.lr})`, { subject: 'lr' });
      const r: ClassifierStepReport = { step: step + 1, loss, batchAccuracy: correct / idx.length, stepsPerSecond: 1000 / Math.max(1, Date.now() - t0) };
      reports.push(r);
      onStep?.(r);
      lines.push(JSON.stringify(r));
      if (r.step % c.logEvery === 0 || r.step === c.steps) {
        await fs.appendFile(logFile, lines.join('\n') + '\n');
        lines = [];
      }
    }
  } catch (err) {
    opt.dispose();
    model.dispose();
    throw err;
  }
  opt.dispose();
  const wallSeconds = (Date.now() - started) / 1000;
  const classifier: ClassifierParts = { model, classes, input: c.input };
  const info = backendInfo();
  const meta = {
    card: {
      images: data.texts.length,
      classes: classes.length,
      params: model.numParams,
      config: c,
      wallSeconds,
      final: { loss: reports[reports.length - 1].loss },
      machine: { cpus: os.cpus().length, platform: `${os.platform()} ${os.arch()}`, node: process.version },
      backend: info === undefined ? tf.getBackend() : { ...info },
    },
  };
  let id: string;
  try {
    id = await saveClassifierFile(path.join(runDir, CLASSIFIER_BUNDLE_FILE), classifier, { name: name ?? 'classifier', meta });
    await writeFileAtomic(path.join(runDir, 'card.json'), JSON.stringify({ id, ...meta.card }, null, 2) + '\n');
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { classifier, id, config: c, reports, wallSeconds };
}

export interface ClassifierEvalResult {
  /** correct / n. */
  accuracy: number;
  n: number;
  correct: number;
  /** Images whose text is not one of the classifier's classes (counted as wrong). */
  unknownTexts: number;
  perClass: Record<string, { n: number; correct: number; accuracy: number }>;
}

/** Class indices of images [n, H, W, 3] in [-1, 1] (Float32Array, back to back), batch at a time. */
export function classifyPixels(classifier: ClassifierParts, pixels: Float32Array, count: number, batch = 256): Int32Array {
  const { height: H, width: W } = classifier.model.config;
  const per = H * W * 3;
  if (pixels.length !== count * per) {
    throw new VtokError('INVALID_INPUT', `Expected ${count} images of ${W}x${H}x3 (${count * per} values) but received ${pixels.length} values`, { subject: 'pixels' });
  }
  const out = new Int32Array(count);
  for (let s = 0; s < count; s += batch) {
    const m = Math.min(batch, count - s);
    const x = tf.tensor4d(pixels.subarray(s * per, (s + m) * per), [m, H, W, 3]); // [m, H, W, 3]
    out.set(classifier.model.predict(x), s);
    x.dispose();
  }
  return out;
}

/** Accuracy of a classifier on labelled folders (read at the classifier's own geometry) or images in memory. */
export async function evaluateClassifier(
  classifier: ClassifierParts,
  data: readonly string[] | LabelledImages,
  options: { limit?: number; batch?: number } = {},
): Promise<ClassifierEvalResult> {
  const set = Array.isArray(data) ? await readLabelledImages(data as string[], { input: classifier.input, limit: options.limit }) : (data as LabelledImages);
  const { height: H, width: W } = classifier.model.config;
  if (set.height !== H || set.width !== W) {
    throw new VtokError('INVALID_INPUT', `The images are ${set.width}x${set.height} but the classifier reads ${W}x${H}`, { subject: 'data' });
  }
  const batch = checkInt('batch', options.batch ?? 256, 1);
  const result: ClassifierEvalResult = { accuracy: 0, n: 0, correct: 0, unknownTexts: 0, perClass: {} };
  const known = new Set(classifier.classes);
  for (let s = 0; s < set.texts.length; s += batch) {
    const idx = Array.from({ length: Math.min(batch, set.texts.length - s) }, (_, i) => s + i);
    const pred = classifyPixels(classifier, batchOf(set, idx), idx.length, batch);
    idx.forEach((k, b) => {
      const text = set.texts[k];
      const ok = classifier.classes[pred[b]] === text;
      if (!known.has(text)) result.unknownTexts++;
      const pc = (result.perClass[text] ??= { n: 0, correct: 0, accuracy: 0 });
      pc.n++;
      result.n++;
      if (ok) {
        pc.correct++;
        result.correct++;
      }
    });
  }
  for (const pc of Object.values(result.perClass)) pc.accuracy = pc.correct / pc.n;
  result.accuracy = result.n === 0 ? 0 : result.correct / result.n;
  return result;
}
