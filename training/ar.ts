/**
 * trainAr: the training loop of the autoregressive head (src/tf/transformer.ts;
 * DESIGN.md "Unified vocabulary and autoregressive head").
 *
 * Data: token folders written by `vtok tokenize` whose records carry a code
 * grid (or BPE ids) and a caption or label. The unified vocabulary is built
 * from them: a small byte-level TextBpe trained on the texts, the image
 * tokenizer's codes (plus the visual BPE's merged tokens with `useBpe`).
 *
 * One step: batchSize / 2 records in a seeded per-epoch order, each giving
 * both streams (generation `<bos> <gen> text <boi> image <eoi> <eos>`, its text
 * dropped with probability conditionDrop for classifier-free guidance, and
 * understanding `<bos> <und> <boi> image <eoi> text <eos>`) -> next-token
 * cross-entropy on the target parts -> NaN/Inf guard (the step is skipped and
 * named) -> clip by global norm -> Adam with linear warm-up and cosine decay.
 *
 * The data order and the condition dropout are pure functions of (seed, step),
 * and a checkpoint (atomic, every checkpointEvery steps and at the end) holds
 * weights, Adam's moments and the step: a resumed run continues exactly like
 * an uninterrupted one. At the last step the run folder gets ar.vtok, the
 * bundle `vtok ar generate|describe|eval` read (src/io/ar-bundle.ts).
 *
 * Example:
 *   const r = await trainAr({ tokens: ['tokens/fmnist-train'], config: 'ar-fashion-mnist', runDir: 'runs/ar' });
 *   r.ar.model.dispose();
 */

import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { pack, unpack } from 'msgpackr';
import { buildExamples, packBatch } from '../src/core/ar-streams';
import { EpochOrder, bpeShapeOf, closedSet, recordText, streamGrid } from '../src/core/ar-tasks';
import type { BpeModel } from '../src/core/bpe';
import { VtokError, checkInt, checkNumber, checkOneOf, resolveOptions } from '../src/core/errors';
import { Rng } from '../src/core/random';
import { typedArrayFromLittleEndian, typedArrayToLittleEndian } from '../src/core/tensor-map';
import { TextBpe } from '../src/core/text-bpe';
import { Vocab, type SerializedVocab } from '../src/core/vocab';
import { backendInfo } from '../src/engine/backend';
import { AR_BUNDLE_FILE, type ArParts, arBundle, saveArFile } from '../src/io/ar-bundle';
import { writeFileAtomic } from '../src/io/atomic';
import { iterateShards, readTokenDir } from '../src/io/dataset';
import { openStoreSet, shippedConfigFile, type StoreSetOptions } from '../src/io/store';
import { arLossFn } from '../src/tf/ar-loss';
import { TRANSFORMER_PRESETS, Transformer, type TransformerConfig, type TransformerPreset } from '../src/tf/transformer';
import { globalNorm } from './tokenizer';

/** Everything that defines an AR training run (training/configs/ar-*.json, or an object). */
export interface ArTrainConfig {
  /** Transformer size: a preset of TRANSFORMER_PRESETS (tiny, small, base, large). */
  preset: TransformerPreset;
  /**
   * Overrides of the preset (dModel, nLayers, mlp, dropout...); vocabSize, contextLength and the grid come from the data.
   * With dropout > 0 a resumed run is not bit-exact (the dropout Rng's position is not checkpointed).
   */
  model: Partial<TransformerConfig>;
  /** Give visual tokens the 2D position (row, column) of their anchor cell. */
  pos2d: boolean;
  /** Visual ids are the records' BPE ids (needs the BPE model) instead of their base codes. */
  useBpe: boolean;
  /** Size of the text tokenizer trained on the texts: 256 bytes + merges. */
  textVocabSize: number;
  /** Extra positions beyond the longest training stream (longer prompts at generation time). */
  contextSlack: number;
  /** Streams per step (even: each record gives a generation and an understanding stream). */
  batchSize: number;
  steps: number;
  lr: number;
  warmupSteps: number;
  decay: 'cosine' | 'linear' | 'none';
  minLrRatio: number;
  beta1: number;
  beta2: number;
  /** Clip gradients to this global norm (0: no clipping). */
  clipNorm: number;
  /** Probability that a generation stream loses its text (classifier-free guidance). */
  conditionDrop: number;
  /** Loss weight of the text targets of understanding streams relative to the image targets of generation streams. */
  understandingWeight: number;
  /** Use only the first N records of the token folders (0: all). */
  maxRecords: number;
  seed: number;
  checkpointEvery: number;
  logEvery: number;
}

export const AR_TRAIN_DEFAULTS: ArTrainConfig = {
  preset: 'tiny',
  model: {},
  pos2d: true,
  useBpe: false,
  textVocabSize: 320,
  contextSlack: 16,
  batchSize: 16,
  steps: 1000,
  lr: 1e-3,
  warmupSteps: 50,
  decay: 'cosine',
  minLrRatio: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  clipNorm: 1,
  conditionDrop: 0.1,
  understandingWeight: 1,
  maxRecords: 0,
  seed: 0,
  checkpointEvery: 200,
  logEvery: 10,
};

/** An image with its text, as the trainer reads it from a token folder. */
export interface ArRecord {
  text: string;
  /** Base codes [h * w] (null when the folder stored BPE ids only). */
  codes: Int32Array | null;
  /** Visual BPE ids, or null. */
  bpe: Int32Array | null;
}

/** Records in memory with what they were tokenized with. */
export interface ArData {
  records: ArRecord[];
  /** Content id of the image tokenizer. */
  tokenizer: string;
  codebookSize: number;
  grid: { height: number; width: number };
  /** The BPE model's content id when the records carry BPE ids. */
  bpeId: string | null;
}

export interface ArStepReport {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  stepsPerSecond: number;
  skipped: boolean;
}

export interface TrainArOptions {
  /** Token folder(s) from `vtok tokenize` (records with codes and a caption or label), or records already in memory. */
  tokens: readonly string[] | ArData;
  /** A config name (training/configs/NAME.json), a JSON path, or the config itself. */
  config: string | Partial<ArTrainConfig>;
  /** Folder for checkpoint.msgpack, log.jsonl and the final ar.vtok. */
  runDir: string;
  /** Overrides config.steps. */
  steps?: number;
  /** Stop (with a checkpoint) after this step without changing the schedule; continue with resume. */
  stopAfter?: number;
  /** Continue from runDir's checkpoint (its config and vocabulary win over `config`; `steps` still applies). */
  resume?: boolean;
  /** The visual BPE model the records' BPE ids come from (needed with useBpe). */
  bpe?: BpeModel;
  onStep?: (report: ArStepReport) => void;
  /** Also put the final bundle into the store under this name. */
  save?: { name: string; store?: StoreSetOptions };
  /** Test hook: runs before each step (0-based) with the model (e.g. to break a weight and see the NaN guard). */
  beforeStep?: (model: Transformer, step: number) => void;
}

export interface TrainArResult {
  ar: ArParts;
  config: ArTrainConfig;
  steps: number;
  skippedSteps: number;
  reports: ArStepReport[];
  wallSeconds: number;
  /** Content id of ar.vtok (written when the run reached its last step), else undefined. */
  id: string | undefined;
}

export const AR_CHECKPOINT_FILE = 'checkpoint.msgpack';
const AR_CHECKPOINT_FORMAT = 'vtok-ar-checkpoint';

/** Reads and checks an AR training config: a name under training/configs, a JSON path, or an object. */
export async function resolveArConfig(config: string | Partial<ArTrainConfig>): Promise<ArTrainConfig> {
  let given: Partial<ArTrainConfig>;
  if (typeof config === 'string') {
    const file = config.endsWith('.json') || config.includes('/') ? config : shippedConfigFile(config);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch {
      throw new VtokError('INVALID_INPUT', `No AR training config ${JSON.stringify(config)} (looked for ${file}; the shipped ones are ar-tiny, ar-fashion-mnist and ar-fashion-mnist-bpe)`, {
        subject: config,
      });
    }
    try {
      given = JSON.parse(text) as Partial<ArTrainConfig>;
    } catch (err) {
      throw new VtokError('INVALID_INPUT', `${file} is not valid JSON (${(err as Error).message})`, { subject: file });
    }
  } else {
    given = config;
  }
  const c = resolveOptions('the AR training config', AR_TRAIN_DEFAULTS, given);
  checkOneOf('preset', c.preset, Object.keys(TRANSFORMER_PRESETS) as TransformerPreset[]);
  if (c.model === null || typeof c.model !== 'object') throw new VtokError('INVALID_OPTION', 'Expected model to be an object of transformer overrides', { subject: 'model' });
  for (const k of ['vocabSize', 'contextLength', 'gridRows', 'gridCols', 'padId'] as const) {
    if (k in c.model) throw new VtokError('INVALID_OPTION', `model.${k} comes from the data and the vocabulary; remove it from the config`, { subject: k });
  }
  checkInt('textVocabSize', c.textVocabSize, 256, 65536);
  checkInt('contextSlack', c.contextSlack, 0);
  checkInt('batchSize', c.batchSize, 2);
  if (c.batchSize % 2 !== 0) throw new VtokError('INVALID_OPTION', `Expected an even batchSize (each record gives two streams) but received ${c.batchSize}`, { subject: 'batchSize' });
  checkInt('steps', c.steps, 0);
  checkNumber('lr', c.lr, 0);
  checkInt('warmupSteps', c.warmupSteps, 0);
  checkOneOf('decay', c.decay, ['cosine', 'linear', 'none']);
  checkNumber('minLrRatio', c.minLrRatio, 0, 1);
  checkNumber('beta1', c.beta1, 0, 1);
  checkNumber('beta2', c.beta2, 0, 1);
  checkNumber('clipNorm', c.clipNorm, 0);
  checkNumber('conditionDrop', c.conditionDrop, 0, 1);
  checkNumber('understandingWeight', c.understandingWeight, 0);
  checkInt('maxRecords', c.maxRecords, 0);
  checkNumber('seed', c.seed);
  checkInt('checkpointEvery', c.checkpointEvery, 1);
  checkInt('logEvery', c.logEvery, 1);
  if (typeof c.pos2d !== 'boolean') throw new VtokError('INVALID_OPTION', 'Expected pos2d to be a boolean', { subject: 'pos2d' });
  if (typeof c.useBpe !== 'boolean') throw new VtokError('INVALID_OPTION', 'Expected useBpe to be a boolean', { subject: 'useBpe' });
  return c;
}

/** Linear warm-up to lr, then cosine or linear decay to lr * minLrRatio at the last step. */
export function arLearningRateAt(c: ArTrainConfig, step: number): number {
  if (step < c.warmupSteps) return (c.lr * (step + 1)) / c.warmupSteps;
  if (c.decay === 'none' || c.steps <= c.warmupSteps) return c.lr;
  const t = Math.min(1, (step - c.warmupSteps) / Math.max(1, c.steps - c.warmupSteps));
  const f = c.decay === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * t)) : 1 - t;
  return c.lr * (c.minLrRatio + (1 - c.minLrRatio) * f);
}

/**
 * Reads the records of token folders into memory. Every folder must come from
 * the same image tokenizer (and BPE model); records without a caption or
 * label fail with the record's key.
 */
export async function readArData(dirs: readonly string[], maxRecords = 0): Promise<ArData> {
  if (dirs.length === 0) throw new VtokError('INVALID_INPUT', 'Expected at least one token folder (vtok tokenize output)');
  const records: ArRecord[] = [];
  let first: { dir: string; tokenizer: string; grid: [number, number]; K: number; bpe: string | null } | null = null;
  for (const d of dirs) {
    const { dir, manifest } = await readTokenDir(d);
    const o = manifest.options;
    const here = { dir: d, tokenizer: o.tokenizer.id, grid: o.tokenizer.gridShape, K: o.tokenizer.codebookSize, bpe: o.bpe?.id ?? null };
    if (first === null) first = here;
    else if (here.tokenizer !== first.tokenizer || here.bpe !== first.bpe || here.grid.join('x') !== first.grid.join('x')) {
      throw new VtokError('STORE_MISMATCH', `Token folder ${d} was made with another tokenizer or BPE model than ${first.dir}; train on folders of one tokenizer`, { subject: d });
    }
    for await (const shard of iterateShards(dir, manifest)) {
      for (const r of shard.records) {
        const text = recordText(r);
        if (text === null) {
          throw new VtokError('INVALID_INPUT', `Record ${r.key} in ${shard.file} has neither a caption nor a label; AR training needs a text for every image`, { subject: r.key });
        }
        records.push({ text, codes: r.codes, bpe: r.bpe });
        if (maxRecords > 0 && records.length >= maxRecords) break;
      }
      if (maxRecords > 0 && records.length >= maxRecords) break;
    }
    if (maxRecords > 0 && records.length >= maxRecords) break;
  }
  if (records.length === 0) throw new VtokError('INVALID_INPUT', `The token folders ${dirs.join(', ')} hold no records`);
  return { records, tokenizer: first!.tokenizer, codebookSize: first!.K, grid: { height: first!.grid[0], width: first!.grid[1] }, bpeId: first!.bpe };
}

// ---- checkpoint ----

/** A JSON-safe copy (typed arrays as plain arrays): msgpack would not give an Int32Array back. */
function plainData(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (ArrayBuffer.isView(x) ? Array.from(x as unknown as ArrayLike<number>) : x)));
}

interface ArCheckpoint {
  format: string;
  step: number;
  skippedSteps: number;
  config: ArTrainConfig;
  tokenizer: string;
  modelConfig: TransformerConfig;
  vocab: SerializedVocab;
  classes: string[];
  weights: Record<string, Uint8Array>;
  optimizer: { name: string; shape: number[]; bytes: Uint8Array }[];
}

interface AdamInternals {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
}

/** Adam's slots plus its running beta powers (setWeights would recompute those with pow(), off in the last bit). */
async function optimizerState(opt: tf.AdamOptimizer): Promise<ArCheckpoint['optimizer']> {
  const named = await opt.getWeights();
  const out = named.map(({ name, tensor }) => ({ name, shape: [...tensor.shape], bytes: typedArrayToLittleEndian(Float32Array.from(tensor.dataSync())) }));
  named[0].tensor.dispose(); // the iteration count, a fresh scalar
  const acc = opt as unknown as AdamInternals;
  for (const key of ['accBeta1', 'accBeta2'] as const) out.push({ name: `@${key}`, shape: [], bytes: typedArrayToLittleEndian(Float32Array.from(acc[key].dataSync())) });
  return out;
}

async function restoreOptimizer(opt: tf.AdamOptimizer, saved: ArCheckpoint['optimizer']): Promise<void> {
  const tensor = (o: ArCheckpoint['optimizer'][number]): tf.Tensor => tf.tensor(typedArrayFromLittleEndian('float32', new Uint8Array(o.bytes)), o.shape);
  const named = saved.filter((o) => !o.name.startsWith('@')).map((o) => ({ name: o.name, tensor: tensor(o) }));
  await opt.setWeights(named);
  for (const n of named) n.tensor.dispose();
  const acc = opt as unknown as AdamInternals;
  for (const o of saved.filter((s) => s.name.startsWith('@'))) {
    const t = tensor(o);
    acc[o.name.slice(1) as keyof AdamInternals].assign(t);
    t.dispose();
  }
}

async function readCheckpoint(file: string): Promise<ArCheckpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(file);
  } catch {
    throw new VtokError('INVALID_INPUT', `Cannot resume: no checkpoint at ${file}`, { subject: file });
  }
  const ck = unpack(bytes) as ArCheckpoint;
  if (ck?.format !== AR_CHECKPOINT_FORMAT) throw new VtokError('INVALID_INPUT', `${file} is not a vtok AR training checkpoint`, { subject: file });
  return ck;
}

// ---- the loop ----

/** Trains (or resumes training) the autoregressive head; see the file comment. */
export async function trainAr(options: TrainArOptions): Promise<TrainArResult> {
  const ckFile = path.join(options.runDir, AR_CHECKPOINT_FILE);
  const logFile = path.join(options.runDir, 'log.jsonl');
  const ck = options.resume === true ? await readCheckpoint(ckFile) : null;
  const c = ck !== null ? { ...AR_TRAIN_DEFAULTS, ...ck.config } : await resolveArConfig(options.config); // fields added since the checkpoint take their defaults
  if (options.steps !== undefined) c.steps = checkInt('steps', options.steps, 0);
  const data = Array.isArray(options.tokens) ? await readArData(options.tokens as string[], c.maxRecords) : (options.tokens as ArData);
  if (ck !== null && ck.tokenizer !== data.tokenizer) {
    throw new VtokError('STORE_MISMATCH', `Cannot resume: the checkpoint was trained on tokens of tokenizer ${ck.tokenizer.slice(0, 12)}, these are of ${data.tokenizer.slice(0, 12)}`, {
      subject: options.runDir,
    });
  }
  const records = c.maxRecords > 0 ? data.records.slice(0, c.maxRecords) : data.records;

  // Visual ids: base codes, or BPE ids (merged tokens after the codes).
  let bpe: BpeModel | undefined;
  if (c.useBpe) {
    bpe = options.bpe;
    if (bpe === undefined) throw new VtokError('INVALID_INPUT', 'useBpe needs the visual BPE model the records were encoded with (option bpe)', { subject: 'bpe' });
    if (bpe.baseVocab !== data.codebookSize) {
      throw new VtokError('INVALID_INPUT', `The BPE model is over ${bpe.baseVocab} base codes but the tokenizer has ${data.codebookSize}`, { subject: 'bpe' });
    }
  }
  const images: Int32Array[] = records.map((r, i) => {
    const v = c.useBpe ? r.bpe : (r.codes ?? (r.bpe !== null && options.bpe !== undefined ? options.bpe.decode(r.bpe, data.grid.height, data.grid.width) : null));
    if (v === null) {
      throw new VtokError('INVALID_INPUT', `Record ${i} has no ${c.useBpe ? 'BPE ids (tokenize with --bpe, or set useBpe false)' : 'code grid (the folder stored BPE ids only: give the BPE model or set useBpe)'}`, {
        subject: String(i),
      });
    }
    return v;
  });
  const texts = records.map((r) => r.text);
  const classes = ck?.classes ?? closedSet(texts);
  const vocab =
    ck !== null
      ? Vocab.deserialize(ck.vocab)
      : Vocab.create({
          text: TextBpe.train(texts, { vocabSize: c.textVocabSize }),
          visual: { baseCodes: data.codebookSize, merges: bpe === undefined ? 0 : bpe.vocabSize - bpe.baseVocab },
        });
  const grid = streamGrid(data.grid, bpe);
  const shapeOf = bpeShapeOf(bpe);
  const layout = c.pos2d ? { grid, shapeOf } : {};

  let modelConfig: Partial<TransformerConfig>;
  if (ck !== null) modelConfig = ck.modelConfig;
  else {
    let longestText = 0;
    for (const t of classes) longestText = Math.max(longestText, vocab.encodeText(t).length);
    let longestImage = 0;
    for (const im of images) longestImage = Math.max(longestImage, im.length);
    modelConfig = {
      ...TRANSFORMER_PRESETS[c.preset],
      ...c.model,
      vocabSize: vocab.size,
      contextLength: longestText + longestImage + 6 + c.contextSlack,
      gridRows: c.pos2d ? grid.height : 0,
      gridCols: c.pos2d ? grid.width : 0,
      padId: vocab.pad,
    };
  }
  const model = new Transformer(modelConfig, { seed: c.seed });
  const opt = tf.train.adam(c.lr, c.beta1, c.beta2);
  const vars = model.trainableVariables();
  const paramNames = new Map(Object.entries(model.variables).map(([name, v]) => [v.name, name]));
  await fs.mkdir(options.runDir, { recursive: true });
  let step = 0;
  let skippedSteps = 0;
  if (ck !== null) {
    const w: Record<string, Float32Array> = {};
    for (const [name, bytes] of Object.entries(ck.weights)) w[name] = typedArrayFromLittleEndian('float32', new Uint8Array(bytes)) as Float32Array;
    model.setWeights(w);
    await restoreOptimizer(opt, ck.optimizer);
    step = ck.step;
    skippedSteps = ck.skippedSteps;
  } else {
    await fs.rm(logFile, { force: true });
    await fs.rm(path.join(options.runDir, AR_BUNDLE_FILE), { force: true });
  }

  const order = new EpochOrder(records.length, c.seed);
  const perStep = c.batchSize / 2;
  const saveCheckpoint = async (): Promise<void> => {
    const weights: Record<string, Uint8Array> = {};
    for (const [name, v] of Object.entries(model.getWeights())) weights[name] = typedArrayToLittleEndian(v);
    const body: ArCheckpoint = {
      format: AR_CHECKPOINT_FORMAT,
      step,
      skippedSteps,
      config: c,
      tokenizer: data.tokenizer,
      modelConfig: model.config,
      vocab: plainData(vocab.serialize()) as SerializedVocab,
      classes,
      weights,
      optimizer: await optimizerState(opt),
    };
    await writeFileAtomic(ckFile, pack(body));
  };

  const reports: ArStepReport[] = [];
  const started = Date.now();
  let logLines: string[] = [];
  const last = options.stopAfter === undefined ? c.steps : Math.min(c.steps, checkInt('stopAfter', options.stopAfter, 0));
  try {
    while (step < last) {
      const t0 = Date.now();
      const pairs = [];
      for (let i = 0; i < perStep; i++) {
        const k = order.at(step * perStep + i);
        pairs.push({ text: texts[k], image: images[k] });
      }
      const examples = buildExamples(vocab, pairs, new Rng(c.seed * 1000003 + step), { conditionDrop: c.conditionDrop, understandingWeight: c.understandingWeight, ...layout });
      const batch = packBatch(examples, vocab.pad);
      options.beforeStep?.(model, step);
      const lr = arLearningRateAt(c, step);
      (opt as unknown as { learningRate: number }).learningRate = lr;
      const { value, grads } = tf.variableGrads(arLossFn(model, batch), vars);
      const loss = value.dataSync()[0];
      const gradNorm = globalNorm(Object.values(grads));
      const skipped = !Number.isFinite(loss) || !Number.isFinite(gradNorm);
      if (!skipped) {
        const scale = c.clipNorm > 0 && gradNorm > c.clipNorm ? c.clipNorm / gradNorm : 1;
        tf.tidy(() => {
          opt.applyGradients(Object.entries(grads).map(([name, g]) => ({ name, tensor: scale === 1 ? g : tf.mul(g, scale) })));
        });
      } else {
        skippedSteps++;
        const bad = Object.entries(grads)
          .filter(([, g]) => !(g.dataSync() as Float32Array).every(Number.isFinite))
          .map(([id]) => paramNames.get(id) ?? id);
        console.warn(
          `step ${step + 1}: skipped (loss ${loss}, gradient norm ${gradNorm} is not finite` +
            (bad.length > 0 ? `; non-finite gradients: ${bad.slice(0, 6).join(', ')}${bad.length > 6 ? ` and ${bad.length - 6} more` : ''})` : ')'),
        );
      }
      value.dispose();
      tf.dispose(Object.values(grads));
      step++;
      const report: ArStepReport = { step, loss, gradNorm, lr, stepsPerSecond: 1000 / Math.max(1, Date.now() - t0), skipped };
      reports.push(report);
      options.onStep?.(report);
      logLines.push(JSON.stringify(report));
      if (step % c.logEvery === 0 || step === last) {
        await fs.appendFile(logFile, logLines.join('\n') + '\n');
        logLines = [];
      }
      if (step % c.checkpointEvery === 0 || step === last) await saveCheckpoint();
    }
  } catch (err) {
    opt.dispose();
    model.dispose();
    throw err;
  }
  opt.dispose();
  const wallSeconds = (Date.now() - started) / 1000;
  const ar: ArParts = { model, vocab, grid: data.grid, imageTokenizer: data.tokenizer, classes, bpe };
  let id: string | undefined;
  if (step === c.steps) {
    const info = backendInfo();
    const meta = {
      card: {
        records: records.length,
        classes: classes.length,
        steps: step,
        skippedSteps,
        params: model.numParams,
        config: c,
        machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', platform: `${os.platform()} ${os.arch()}`, node: process.version },
        backend: info === undefined ? tf.getBackend() : { ...info },
        final: { loss: reports.length > 0 ? reports[reports.length - 1].loss : null },
      },
    };
    id = await saveArFile(path.join(options.runDir, AR_BUNDLE_FILE), ar, { name: options.save?.name ?? 'ar-model', meta });
    if (options.save !== undefined) await openStoreSet(options.save.store ?? {}).put(arBundle(ar, { name: options.save.name, meta }), { name: options.save.name });
  }
  return { ar, config: c, steps: step, skippedSteps, reports, wallSeconds, id };
}
