/**
 * trainTokenizer: the training loop of the semantic-VQ tokenizer
 * (src/tf/tokenizer.ts; DESIGN.md "Semantic-VQ encoder with dual codebooks").
 *
 * One step: a batch of seeded random crops (training/data.ts) -> forward ->
 * loss = l1 * |x - x'| + l2 * (x - x')^2 + commit (+ codebook in 'loss'
 * mode) + semantic * (1 - cos(predictSemantic(q_s), teacher features resized
 * to the code grid)) [+ perceptual * LPIPS-style distance of the teacher's
 * features of x and x'] [+ gan * -mean(D(x')) from step ganStart on]
 * -> gradients -> NaN/Inf guard (a non-finite loss or
 * gradient norm skips the step and says so) -> clip by global norm -> Adam
 * with linear warm-up and cosine/linear decay -> EMA codebook update,
 * k-means init and dead-code restart (the model's updateCodebooks)
 * [-> with the adversarial term on: one Adam step of the PatchGAN
 * discriminator (src/tf/discriminator.ts) on the hinge loss of D(x) and
 * D(x'), x' the reconstruction of this step taken as a constant].
 *
 * The perceptual and adversarial terms are opt-in (weights 0 by default);
 * with both off the loop draws the same random numbers, creates the same
 * variables and computes the same losses as before they existed.
 *
 * A checkpoint (written atomically every checkpointEvery steps and at the
 * end) holds the weights, the quantizer's training state, Adam's moments,
 * the step, the data stream's position and the config (and, with the
 * adversarial term on, the discriminator's weights and Adam moments), so
 * that resuming continues the same run exactly. The discriminator is not
 * part of the saved tokenizer bundle.
 *
 * `initFrom` starts a new run from a stored tokenizer bundle instead of
 * random weights (warm-start.ts: weights and codebooks loaded, k-means
 * skipped, EMA statistics seeded from the codebooks, Adam fresh at step 0
 * with the config's schedule); the parent's id goes into the checkpoint and
 * the saved bundle (parents, card.initFrom, card.totalSteps).
 *
 * Example:
 *   const result = await trainTokenizer({ config: 'tiny', data: ['data/photos/train'], runDir: 'runs/tiny', steps: 50 });
 *   result.model;  // TokenizerModel, trained
 */

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { pack, unpack } from 'msgpackr';
import { VtokError, checkInt, checkNumber, checkOneOf, resolveOptions } from '../src/core/errors';
import { type TensorMap, type TensorRecord, type TypedKind, tensorRecord, typedArrayFromLittleEndian, typedArrayToLittleEndian } from '../src/core/tensor-map';
import { type TokenizerConfig, resolveTokenizerConfig } from '../src/core/tokenizer-config';
import * as os from 'node:os';
import { backendInfo } from '../src/engine/backend';
import { writeFileAtomic } from '../src/io/atomic';
import { writeImageGrid } from '../src/io/image';
import { shippedConfigFile, type StoreSetOptions } from '../src/io/store';
import { saveTokenizer } from '../src/io/tokenizer-bundle';
import { type Discriminator, createDiscriminator, hingeDiscriminatorLoss, hingeGeneratorLoss } from '../src/tf/discriminator';
import { l2Normalize } from '../src/tf/layers';
import { type QuantizerBatch } from '../src/tf/quantizer';
import { type TokenizerModel, createTokenizerModel } from '../src/tf/tokenizer';
import { ImageStream, type StreamImage, type StreamState, loadImageDirs } from './data';
import { type ParentInfo, checkInitBundle, readInitBundle, warmStart } from './warm-start';

/** Everything that defines a training run (a named JSON file under training/configs, or an object). */
export interface TrainConfig {
  /** Tokenizer model config (src/core/tokenizer-config.ts); unknown keys are rejected there. */
  model: Partial<TokenizerConfig>;
  /** Side of the square training crops. */
  imageSize: number;
  batchSize: number;
  steps: number;
  /** Peak learning rate. */
  lr: number;
  warmupSteps: number;
  decay: 'cosine' | 'linear' | 'none';
  /** Final learning rate as a fraction of the peak. */
  minLrRatio: number;
  beta1: number;
  beta2: number;
  /** Clip gradients to this global norm (0: no clipping). */
  clipNorm: number;
  /** Loss weights. */
  l1: number;
  l2: number;
  semantic: number;
  /**
   * Weight of the perceptual term (default 0: off): the LPIPS distance
   * (Zhang et al. 2018) without learned weights between the teacher's
   * features of the input and of the reconstruction (perceptualDistance:
   * unit-normalized per position, squared difference summed over channels,
   * mean over positions; in [0, 4]). The gradient flows through the frozen
   * teacher into the reconstruction. Needs a teacher (options.teacher, the
   * CLI's --teacher); the model's teacherDim may then be 0 (no semantic decoder).
   */
  perceptual: number;
  /**
   * Weight of the adversarial term (default 0: off): the generator's hinge
   * loss -mean(D(x')) of a PatchGAN discriminator D (src/tf/discriminator.ts),
   * which trains on the hinge loss mean(relu(1 - D(x))) + mean(relu(1 + D(x')))
   * with its own Adam (betas 0.5, 0.9) once per step. A fixed weight (no
   * adaptive weight as in VQGAN).
   */
  gan: number;
  /** Steps before the adversarial term (and the discriminator's training) switches on: it acts on steps ganStart + 1, ganStart + 2, ... (1-based; 0: from the first). */
  ganStart: number;
  /** Discriminator width: channels of its first 4x4 conv, doubled per further conv up to 8x (default 32). */
  discChannels: number;
  /** Discriminator depth: stride-2 4x4 convs, so one logit per patch of the H / 2^discLayers grid (default 3). */
  discLayers: number;
  /** The discriminator's learning rate (constant; default 2e-4). */
  discLr: number;
  /** Resize every image to this square when loading (0: keep the file's size), by loadFit ('pad' letterboxes on black, e.g. 28 -> 32). */
  loadSize: number;
  loadFit: 'crop' | 'pad';
  /** Random left-right flips of the crops. */
  flip: boolean;
  /**
   * Redraw a crop (up to 8 positions in the image, then the next image) whose
   * per-channel pixel standard deviation (root mean of the R, G, B variances, in [-1, 1] units) is below this (0: keep every crop).
   * Flat crops (a solid sky, a plain wallpaper) teach nothing and, through the
   * per-channel normalizations, make the encoder's gradients explode.
   */
  minCropStd: number;
  seed: number;
  checkpointEvery: number;
  logEvery: number;
}

export const TRAIN_DEFAULTS: TrainConfig = {
  model: {},
  imageSize: 128,
  batchSize: 8,
  steps: 1000,
  lr: 2e-4,
  warmupSteps: 100,
  decay: 'cosine',
  minLrRatio: 0.1,
  beta1: 0.9,
  beta2: 0.99,
  clipNorm: 1,
  l1: 1,
  l2: 0,
  semantic: 0.5,
  perceptual: 0,
  gan: 0,
  ganStart: 0,
  discChannels: 32,
  discLayers: 3,
  discLr: 2e-4,
  loadSize: 0,
  loadFit: 'crop',
  flip: true,
  minCropStd: 0,
  seed: 0,
  checkpointEvery: 200,
  logEvery: 10,
};

/** A frozen feature extractor: images [B, H, W, 3] in [-1, 1] -> features [B, h', w', dim]. */
export interface Teacher {
  name: string;
  dim: number;
  features(images: tf.Tensor4D): tf.Tensor4D;
}

export interface StepReport {
  step: number;
  loss: number;
  recon: number;
  commit: number;
  semantic: number;
  /** The perceptual distance (only when config.perceptual > 0). */
  perceptual?: number;
  /** The generator's hinge loss -mean(D(x')) (only on steps with the adversarial term on). */
  gen?: number;
  /** The discriminator's hinge loss before its update (only on steps with the adversarial term on; NaN when the step was skipped). */
  disc?: number;
  gradNorm: number;
  lr: number;
  usage: number;
  perplexity: number;
  stepsPerSecond: number;
  skipped: boolean;
}

export interface TrainOptions {
  /** A config name (training/configs/NAME.json), a path to a JSON file, or the config itself. */
  config: string | Partial<TrainConfig>;
  /** Image folders, or images already in memory. */
  data: readonly string[] | readonly StreamImage[];
  /** Folder for the checkpoint, the JSONL log and the reconstruction grids. */
  runDir: string;
  /** Overrides config.steps. */
  steps?: number;
  /** Stop (with a checkpoint) after this step, without changing the learning-rate schedule (which follows steps). */
  stopAfter?: number;
  /** Continue from runDir's checkpoint. */
  resume?: boolean;
  /**
   * Start from this tokenizer bundle's weights and codebooks instead of random
   * ones (a name, id or id prefix in `initFromStore`, or a .vtok file); see
   * warm-start.ts. The model config must match the bundle's. Not with resume.
   */
  initFrom?: string;
  /** Stores to look initFrom up in (default: the user's store, then the shipped codebooks/). */
  initFromStore?: StoreSetOptions;
  teacher?: Teacher;
  onStep?: (report: StepReport) => void;
  /** Save the final model with saveTokenizer into this store under this name (with a training card in meta). */
  save?: { name: string; store?: StoreSetOptions; label?: string };
  /** Write a reconstruction grid PNG (originals over reconstructions) at every checkpoint. Default true. */
  grids?: boolean;
  /** Test hook: replaces a batch before the step (e.g. to inject NaN). */
  transformBatch?: (batch: Float32Array, step: number) => Float32Array;
}

export interface TrainResult {
  model: TokenizerModel;
  /** Content id of the saved bundle (when options.save was given). */
  id: string | undefined;
  config: TrainConfig;
  steps: number;
  skippedSteps: number;
  reports: StepReport[];
  wallSeconds: number;
}

export const CHECKPOINT_FILE = 'checkpoint.msgpack';
/** The discriminator's weights are drawn from Rng(seed + this): a stream apart from the tokenizer's. */
const DISC_SEED_OFFSET = 0x44697363; // 'Disc'
const CHECKPOINT_FORMAT = 'vtok-train-checkpoint';

/** Reads and checks a training config: a name under training/configs, a JSON path, or an object. */
export async function resolveTrainConfig(config: string | Partial<TrainConfig>): Promise<TrainConfig> {
  let given: Partial<TrainConfig>;
  if (typeof config === 'string') {
    const file = config.endsWith('.json') || config.includes('/') ? config : shippedConfigFile(config);
    let text: string;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch {
      throw new VtokError('INVALID_INPUT', `No training config ${JSON.stringify(config)} (looked for ${file})`, { subject: config });
    }
    given = JSON.parse(text) as Partial<TrainConfig>;
  } else {
    given = config;
  }
  const c = resolveOptions('the training config', TRAIN_DEFAULTS, given);
  checkInt('imageSize', c.imageSize, 1);
  checkInt('batchSize', c.batchSize, 1);
  checkInt('steps', c.steps, 0);
  checkNumber('lr', c.lr, 0);
  checkInt('warmupSteps', c.warmupSteps, 0);
  checkOneOf('decay', c.decay, ['cosine', 'linear', 'none']);
  checkNumber('minLrRatio', c.minLrRatio, 0, 1);
  checkNumber('clipNorm', c.clipNorm, 0);
  checkNumber('l1', c.l1, 0);
  checkNumber('l2', c.l2, 0);
  checkNumber('semantic', c.semantic, 0);
  checkNumber('perceptual', c.perceptual, 0);
  checkNumber('gan', c.gan, 0);
  checkInt('ganStart', c.ganStart, 0);
  checkInt('discChannels', c.discChannels, 1, 4096);
  checkInt('discLayers', c.discLayers, 1, 8);
  checkNumber('discLr', c.discLr, 0);
  checkInt('checkpointEvery', c.checkpointEvery, 1);
  checkInt('loadSize', c.loadSize, 0);
  checkOneOf('loadFit', c.loadFit, ['crop', 'pad']);
  checkNumber('minCropStd', c.minCropStd, 0, 2);
  checkInt('logEvery', c.logEvery, 1);
  return c;
}

/** The learning rate at step (0-based): linear warm-up to lr, then cosine or linear decay to lr * minLrRatio. */
export function learningRateAt(c: TrainConfig, step: number): number {
  if (step < c.warmupSteps) return (c.lr * (step + 1)) / c.warmupSteps;
  if (c.decay === 'none' || c.steps <= c.warmupSteps) return c.lr;
  const t = Math.min(1, (step - c.warmupSteps) / Math.max(1, c.steps - c.warmupSteps));
  const f = c.decay === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * t)) : 1 - t;
  return c.lr * (c.minLrRatio + (1 - c.minLrRatio) * f);
}

// ---- checkpoint ----

interface PackedTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

function packMap(map: TensorMap): Record<string, PackedTensor> {
  const out: Record<string, PackedTensor> = {};
  for (const [k, r] of Object.entries(map)) out[k] = { dtype: r.dtype, shape: [...r.shape], bytes: typedArrayToLittleEndian(r.data) };
  return out;
}

function unpackMap(packed: Record<string, PackedTensor>): TensorMap {
  const out: TensorMap = {};
  for (const [k, p] of Object.entries(packed)) {
    const data = typedArrayFromLittleEndian(p.dtype as TypedKind, new Uint8Array(p.bytes));
    out[k] = tensorRecord(p.dtype as TensorRecord['dtype'], p.shape, data as never);
  }
  return out;
}

interface Checkpoint {
  format: string;
  step: number;
  skippedSteps: number;
  config: TrainConfig;
  seed: number;
  weights: Record<string, PackedTensor>;
  trainingState: Record<string, PackedTensor>;
  optimizer: { name: string; shape: number[]; bytes: Uint8Array }[];
  data: StreamState;
  /** The bundle a warm-started run began from. */
  initFrom?: ParentInfo;
  /** The PatchGAN discriminator and its Adam (runs with the adversarial term on). */
  discriminator?: { weights: Record<string, PackedTensor>; optimizer: Checkpoint['optimizer'] };
}

async function writeCheckpoint(file: string, ck: Checkpoint): Promise<void> {
  await writeFileAtomic(file, pack(ck));
}

async function readCheckpoint(file: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(file);
  } catch {
    throw new VtokError('INVALID_INPUT', `Cannot resume: no checkpoint at ${file}`, { subject: file });
  }
  const ck = unpack(bytes) as Checkpoint;
  if (ck?.format !== CHECKPOINT_FORMAT) throw new VtokError('INVALID_INPUT', `${file} is not a vtok training checkpoint`, { subject: file });
  return ck;
}

/**
 * tf.train.adam keeps the running powers beta^t in two variables that its
 * setWeights recomputes with pow(), which differs from the repeated products
 * in the last float32 bit; an exact resume saves and restores them too.
 */
interface AdamInternals {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
}

async function optimizerState(opt: tf.AdamOptimizer): Promise<Checkpoint['optimizer']> {
  const named = await opt.getWeights();
  const out = named.map(({ name, tensor }) => ({ name, shape: [...tensor.shape], bytes: typedArrayToLittleEndian(Float32Array.from(tensor.dataSync())) }));
  named[0].tensor.dispose(); // the iteration count, a fresh scalar (the rest are the optimizer's own variables)
  const acc = opt as unknown as AdamInternals;
  for (const key of ['accBeta1', 'accBeta2'] as const) {
    out.push({ name: `@${key}`, shape: [], bytes: typedArrayToLittleEndian(Float32Array.from(acc[key].dataSync())) });
  }
  return out;
}

async function restoreOptimizer(opt: tf.AdamOptimizer, saved: Checkpoint['optimizer']): Promise<void> {
  const tensor = (o: Checkpoint['optimizer'][number]): tf.Tensor => tf.tensor(typedArrayFromLittleEndian('float32', new Uint8Array(o.bytes)), o.shape);
  const named = saved.filter((o) => !o.name.startsWith('@')).map((o) => ({ name: o.name, tensor: tensor(o) }));
  await opt.setWeights(named);
  for (const n of named) n.tensor.dispose();
  const acc = opt as unknown as AdamInternals;
  for (const o of saved.filter((s) => s.name.startsWith('@'))) {
    const key = o.name.slice(1) as keyof AdamInternals;
    const t = tensor(o);
    acc[key].assign(t);
    t.dispose();
  }
}

// ---- the loop ----

/**
 * The perceptual distance of LPIPS (Zhang et al. 2018) without its learned
 * channel weights: at every position of features a, b [B, h, w, D] both
 * vectors are scaled to unit length over the channels, and the squared
 * difference is summed over the channels and averaged over positions and
 * batch. Per position that is 2 - 2 cos(a, b): 0 for identical features
 * (and for features that differ only in scale), at most 4. Zero vectors
 * stay zero, with a zero (not NaN) gradient.
 *
 * Example: a = [1, 0], b = [0, 2] at one position -> |[1, 0] - [0, 1]|^2 = 2.
 */
export function perceptualDistance(a: tf.Tensor4D, b: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const d = tf.sub(l2Normalize(a, 1e-10), l2Normalize(b, 1e-10)); // [B, h, w, D]
    return tf.mean(tf.sum(tf.square(d), -1)) as tf.Scalar; // sum over D, mean over B, h, w
  });
}

/**
 * Fails early, with a clear error, when the backend cannot take gradients
 * through the teacher (the perceptual term needs them): e.g. tfjs-backend-wasm
 * 4.22 has no DepthwiseConv2dNativeBackpropInput, which MobileNetV2's
 * depthwise convolutions need. One image of zeros, forward and backward.
 */
function checkTeacherGradient(teacher: Teacher, size: number): void {
  try {
    tf.tidy(() => {
      const x = tf.zeros([1, size, size, 3]) as tf.Tensor4D;
      tf.grad((t: tf.Tensor) => tf.sum(teacher.features(t as tf.Tensor4D)))(x).dataSync();
    });
  } catch (err) {
    throw new VtokError(
      'BACKEND',
      `The perceptual term needs gradients through the teacher ${teacher.name}, which the ${tf.getBackend()} backend cannot compute: ${(err as Error).message}` +
        ' (set perceptual to 0, or train on a backend that has the kernel, e.g. --backend cpu or tensorflow)',
      { subject: 'perceptual', cause: err },
    );
  }
}

/** What the optional loss terms need in a step (absent: the term is off this step). */
interface ExtraTerms {
  /** Teacher and its (constant) features of x [B, h', w', D], for the perceptual term. */
  teacher?: Teacher;
  features?: tf.Tensor4D;
  /** The discriminator, on steps with the adversarial term on. */
  disc?: Discriminator;
}

/** The loss terms of one forward pass (all scalars and the reconstruction [B, H, W, C]; the caller owns them). */
function lossTerms(
  model: TokenizerModel,
  c: TrainConfig,
  x: tf.Tensor4D,
  target: tf.Tensor4D | undefined,
  seen: { batch?: QuantizerBatch },
  extra: ExtraTerms,
): { total: tf.Scalar; recon: tf.Scalar; commit: tf.Scalar; semantic: tf.Scalar; perceptual?: tf.Scalar; gen?: tf.Scalar; image: tf.Tensor4D } {
  const out = model.forward(x);
  seen.batch = model.readBatch(out);
  const diff = tf.sub(out.recon, x); // [B, H, W, C]
  const recon = tf.add(tf.mul(c.l1, tf.mean(tf.abs(diff))), tf.mul(c.l2, tf.mean(tf.square(diff)))) as tf.Scalar;
  let commit = out.losses.commit;
  if (model.config.codebookUpdate === 'loss') commit = tf.add(commit, out.losses.codebook) as tf.Scalar;
  let semantic = tf.scalar(0);
  if (target !== undefined && out.semantic !== null) {
    const unit = (t: tf.Tensor4D): tf.Tensor4D => tf.div(t, tf.add(tf.norm(t, 2, -1, true), 1e-8));
    const cos = tf.sum(tf.mul(unit(out.semantic), unit(target)), -1); // [B, h, w]
    semantic = tf.sub(1, tf.mean(cos)) as tf.Scalar;
  }
  let total = tf.addN([recon, commit, tf.mul(c.semantic, semantic)]) as tf.Scalar;
  // The optional terms are added after the sum above, so that with them off the total is the same float as before they existed.
  let perceptual: tf.Scalar | undefined;
  if (extra.teacher !== undefined && extra.features !== undefined) {
    perceptual = perceptualDistance(extra.features, extra.teacher.features(out.recon)); // the teacher's weights are not in the variable list: frozen
    total = tf.add(total, tf.mul(c.perceptual, perceptual));
  }
  let gen: tf.Scalar | undefined;
  if (extra.disc !== undefined) {
    gen = hingeGeneratorLoss(extra.disc.forward(out.recon)); // D's weights are not in the variable list: only the tokenizer learns from it here
    total = tf.add(total, tf.mul(c.gan, gen));
  }
  return { total, recon, commit, semantic, perceptual, gen, image: out.recon };
}

/**
 * The global l2 norm of the gradients, without overflow: each tensor is scaled
 * by its largest magnitude before squaring (a plain sum of squares overflows
 * float32 at 1.8e19 and would turn a clippable spike into a skipped step).
 * NaN when a gradient holds NaN or Inf.
 */
export function globalNorm(tensors: readonly tf.Tensor[]): number {
  if (tensors.length === 0) return 0;
  const parts = tf.tidy(() =>
    tf.stack(
      tensors.map((g) => {
        const m = tf.max(tf.abs(g)); // []
        const safe = tf.maximum(m, 1e-30);
        return tf.stack([m, tf.sum(tf.square(tf.div(g, safe)))]); // [2]
      }),
    ),
  ); // [n, 2]
  const v = parts.dataSync() as Float32Array;
  parts.dispose();
  let total = 0;
  for (let i = 0; i < tensors.length; i++) {
    const m = v[2 * i];
    const ss = v[2 * i + 1];
    if (!Number.isFinite(m) || !Number.isFinite(ss)) return NaN;
    total += m * m * ss; // float64
  }
  return Math.sqrt(total);
}

/** Up to 4 crops of the last batch (top row) over their reconstructions (bottom row). */
async function writeReconGrid(file: string, model: TokenizerModel, data: Float32Array, c: TrainConfig): Promise<void> {
  const S = c.imageSize;
  const n = Math.min(4, c.batchSize);
  const crops = data.subarray(0, n * S * S * 3);
  if (!crops.every(Number.isFinite)) return;
  const recon = tf.tidy(() => model.decode(model.encode(tf.tensor4d(crops, [n, S, S, 3]))).dataSync() as Float32Array);
  const cell = (src: Float32Array, i: number): Float32Array => src.slice(i * S * S * 3, (i + 1) * S * S * 3);
  const toGrid = (f: Float32Array): Uint8Array => Uint8Array.from(f, (v) => Math.round((Math.max(-1, Math.min(1, v)) + 1) * 127.5));
  const cells = [...Array.from({ length: n }, (_, i) => cell(crops, i)), ...Array.from({ length: n }, (_, i) => cell(recon, i))];
  await writeImageGrid(file, cells.map((d) => ({ data: toGrid(d), width: S, height: S })), { columns: n });
}

/** Trains (or resumes training) a tokenizer; see the file comment. */
export async function trainTokenizer(options: TrainOptions): Promise<TrainResult> {
  if (options.initFrom !== undefined && options.resume === true) {
    throw new VtokError('INVALID_INPUT', `initFrom (${options.initFrom}) cannot be combined with resume: the checkpoint in ${options.runDir} already holds the weights, the optimizer and the quantizer state`, {
      subject: 'initFrom',
    });
  }
  const c = await resolveTrainConfig(options.config);
  if (options.steps !== undefined) c.steps = checkInt('steps', options.steps, 0);
  if (c.perceptual > 0 && options.teacher === undefined) {
    throw new VtokError(
      'INVALID_OPTION',
      `The config's perceptual weight is ${c.perceptual} but no teacher was given: the perceptual term compares the teacher's features of each image and of its reconstruction (give a teacher, e.g. --teacher nsfwjs-mobilenet-v2, or set perceptual to 0)`,
      { subject: 'perceptual' },
    );
  }
  // The bundle to start from is read and checked before the images load (a typo should not wait for a dataset).
  const initBundle = options.initFrom === undefined ? undefined : await readInitBundle(options.initFrom, options.initFromStore);
  if (initBundle !== undefined) checkInitBundle(initBundle, resolveTokenizerConfig(c.model), options.initFrom);
  if (c.perceptual > 0 && options.teacher !== undefined) checkTeacherGradient(options.teacher, c.imageSize);
  const images = typeof options.data[0] === 'string' ? await loadImageDirs(options.data as string[], { size: c.loadSize || undefined, fit: c.loadFit }) : (options.data as StreamImage[]);
  const stream = new ImageStream(images, { size: c.imageSize, seed: c.seed, flip: c.flip, minStd: c.minCropStd });
  const model = createTokenizerModel(c.model, c.seed);
  // A teacher used only for the perceptual term needs no semantic decoder (teacherDim 0).
  const perceptualOnly = model.config.teacherDim === 0 && c.perceptual > 0;
  if (options.teacher !== undefined && model.config.teacherDim !== options.teacher.dim && !perceptualOnly) {
    model.dispose();
    throw new VtokError('INVALID_INPUT', `The teacher ${options.teacher.name} gives ${options.teacher.dim} features but the model's teacherDim is ${model.config.teacherDim}`);
  }
  const opt = tf.train.adam(c.lr, c.beta1, c.beta2);
  const vars = model.trainableVariables();
  const paramNames = new Map(Object.entries(model.variables).map(([name, v]) => [v.name, name]));
  // The discriminator exists only with the adversarial term on, created after the model from a random stream of its own.
  const disc = c.gan > 0 ? createDiscriminator({ channels: c.discChannels, layers: c.discLayers, imageChannels: model.config.imageChannels }, c.seed + DISC_SEED_OFFSET) : undefined;
  const discOpt = disc === undefined ? undefined : tf.train.adam(c.discLr, 0.5, 0.9); // GAN betas (pix2pix, VQGAN)
  const discVars = disc?.trainableVariables() ?? [];
  await fs.mkdir(options.runDir, { recursive: true });
  const ckFile = path.join(options.runDir, CHECKPOINT_FILE);
  const logFile = path.join(options.runDir, 'log.jsonl');
  let step = 0;
  let skippedSteps = 0;
  let parent: ParentInfo | undefined;
  if (initBundle !== undefined) {
    try {
      const [h, w] = model.gridShape(c.imageSize, c.imageSize);
      parent = warmStart(model, initBundle, { batchRows: c.batchSize * h * w, ref: options.initFrom });
      if (!model.codebookStats().initialized) throw new VtokError('INVALID_INPUT', 'Internal error: the warm start did not mark the codebooks initialized');
    } catch (err) {
      model.dispose();
      opt.dispose();
      throw err;
    }
  }
  if (options.resume === true) {
    const ck = await readCheckpoint(ckFile);
    model.setWeights(unpackMap(ck.weights));
    model.setTrainingState(unpackMap(ck.trainingState));
    await restoreOptimizer(opt, ck.optimizer);
    stream.setState(ck.data);
    // A checkpoint without a discriminator (the run had the adversarial term off) starts a fresh one; one with a discriminator that is now off drops it.
    const saved = ck.discriminator ?? undefined;
    if (disc !== undefined && discOpt !== undefined && saved !== undefined) {
      disc.setWeights(unpackMap(saved.weights));
      await restoreOptimizer(discOpt, saved.optimizer);
    }
    step = ck.step;
    skippedSteps = ck.skippedSteps;
    parent = ck.initFrom ?? undefined; // msgpack may give null for an absent field
  } else {
    await fs.rm(logFile, { force: true });
  }
  const S = c.imageSize;
  const reports: StepReport[] = [];
  const started = Date.now();
  const saveCheckpoint = async (): Promise<void> => {
    await writeCheckpoint(ckFile, {
      format: CHECKPOINT_FORMAT,
      step,
      skippedSteps,
      config: c,
      seed: c.seed,
      weights: packMap(model.getWeights()),
      trainingState: packMap(model.getTrainingState()),
      optimizer: await optimizerState(opt),
      data: stream.getState(),
      ...(parent === undefined ? {} : { initFrom: parent }),
      ...(disc === undefined || discOpt === undefined ? {} : { discriminator: { weights: packMap(disc.getWeights()), optimizer: await optimizerState(discOpt) } }),
    });
  };
  let logLines: string[] = [];
  const last = options.stopAfter === undefined ? c.steps : Math.min(c.steps, checkInt('stopAfter', options.stopAfter, 0));
  while (step < last) {
    const t0 = Date.now();
    let data = stream.next(c.batchSize);
    if (options.transformBatch) data = options.transformBatch(data, step);
    const lr = learningRateAt(c, step);
    (opt as unknown as { learningRate: number }).learningRate = lr;
    const seen: { batch?: QuantizerBatch } = {};
    const x = tf.tensor4d(data, [c.batchSize, S, S, 3]);
    const parts: { recon?: tf.Scalar; commit?: tf.Scalar; semantic?: tf.Scalar; perceptual?: tf.Scalar; gen?: tf.Scalar; image?: tf.Tensor4D } = {};
    // The frozen teacher runs outside the gradient tape on the input: its features are a constant target.
    const teacher = options.teacher;
    const features = teacher !== undefined && c.perceptual > 0 ? teacher.features(x) : undefined; // [B, h', w', D]
    const target =
      teacher !== undefined && model.config.teacherDim > 0 && c.semantic > 0
        ? tf.tidy(() => tf.image.resizeBilinear(features ?? teacher.features(x), model.gridShape(S, S))) // [B, h, w, teacherDim]
        : undefined;
    const ganOn = disc !== undefined && step >= c.ganStart;
    const { value, grads } = tf.variableGrads(() => {
      const t = lossTerms(model, c, x, target, seen, { teacher, features, disc: ganOn ? disc : undefined });
      parts.recon = tf.keep(t.recon);
      parts.commit = tf.keep(t.commit);
      parts.semantic = tf.keep(t.semantic);
      if (t.perceptual !== undefined) parts.perceptual = tf.keep(t.perceptual);
      if (t.gen !== undefined) {
        parts.gen = tf.keep(t.gen);
        parts.image = tf.keep(t.image);
      }
      return t.total;
    }, vars);
    const loss = value.dataSync()[0];
    const gradNorm = globalNorm(Object.values(grads));
    const skipped = !Number.isFinite(loss) || !Number.isFinite(gradNorm);
    if (!skipped) {
      const scale = c.clipNorm > 0 && gradNorm > c.clipNorm ? c.clipNorm / gradNorm : 1;
      tf.tidy(() => {
        opt.applyGradients(Object.entries(grads).map(([name, g]) => ({ name, tensor: scale === 1 ? g : tf.mul(g, scale) })));
      });
      model.updateCodebooks(seen.batch as QuantizerBatch);
    } else {
      skippedSteps++;
      // The parameters to blame: non-finite gradients, else the largest ones (their squares overflowed float32).
      const norms = Object.entries(grads).map(([id, g]) => {
        let ss = 0;
        for (const v of g.dataSync() as Float32Array) ss += v * v;
        return { name: paramNames.get(id) ?? id, norm: Math.sqrt(ss) };
      });
      const nonFinite = norms.filter((n) => !Number.isFinite(n.norm));
      const bad = (nonFinite.length > 0 ? nonFinite : norms.sort((a, b) => b.norm - a.norm).slice(0, 3)).map((n) =>
        Number.isFinite(n.norm) ? `${n.name} (norm ${n.norm.toExponential(2)})` : n.name,
      );
      console.warn(
        `step ${step + 1}: skipped (loss ${loss}, gradient norm ${gradNorm} is not finite` +
          (bad.length > 0 ? `; gradients: ${bad.slice(0, 6).join(', ')}${bad.length > 6 ? ` and ${bad.length - 6} more` : ''})` : ')'),
      );
    }
    // The discriminator's step, on this step's reconstructions as constants (after the tokenizer's update, with D's weights as the tokenizer saw them).
    let discLoss = NaN;
    if (ganOn && !skipped && disc !== undefined && discOpt !== undefined && parts.image !== undefined) {
      const fake = parts.image;
      const d = tf.variableGrads(() => hingeDiscriminatorLoss(disc.forward(x), disc.forward(fake)), discVars);
      discLoss = d.value.dataSync()[0];
      const discNorm = globalNorm(Object.values(d.grads));
      if (Number.isFinite(discLoss) && Number.isFinite(discNorm)) {
        discOpt.applyGradients(Object.entries(d.grads).map(([name, tensor]) => ({ name, tensor })));
      } else {
        console.warn(`step ${step + 1}: discriminator update skipped (loss ${discLoss}, gradient norm ${discNorm} is not finite)`);
      }
      tf.dispose([d.value, ...Object.values(d.grads)]);
    }
    const num = (t: tf.Scalar | undefined): number => (t === undefined ? NaN : t.dataSync()[0]);
    const stats = model.codebookStats();
    const report: StepReport = {
      step: step + 1,
      loss,
      recon: num(parts.recon),
      commit: num(parts.commit),
      semantic: num(parts.semantic),
      // Present only with their terms on, so that logs of runs without them read as before.
      ...(c.perceptual > 0 ? { perceptual: num(parts.perceptual) } : {}),
      ...(ganOn ? { gen: num(parts.gen), disc: discLoss } : {}),
      gradNorm,
      lr,
      usage: stats.usage,
      perplexity: stats.perplexity,
      stepsPerSecond: 1000 / Math.max(1, Date.now() - t0),
      skipped,
    };
    tf.dispose([x, target, features, value, parts.recon, parts.commit, parts.semantic, parts.perceptual, parts.gen, parts.image]);
    tf.dispose(Object.values(grads));
    step++;
    reports.push(report);
    options.onStep?.(report);
    logLines.push(JSON.stringify(report));
    if (step % c.logEvery === 0 || step === last) {
      await fs.appendFile(logFile, logLines.join('\n') + '\n');
      logLines = [];
    }
    if (step % c.checkpointEvery === 0 || step === last) {
      await saveCheckpoint();
      if (options.grids !== false) await writeReconGrid(path.join(options.runDir, `recon-${String(step).padStart(6, '0')}.png`), model, data, c);
    }
  }
  opt.dispose();
  discOpt?.dispose();
  disc?.dispose(); // not part of the saved tokenizer: encode/decode do not need it
  const wallSeconds = (Date.now() - started) / 1000;
  let id: string | undefined;
  if (options.save !== undefined) {
    const final = reports.slice(-Math.min(reports.length, 20)).filter((r) => !r.skipped);
    const mean = (k: 'recon' | 'semantic' | 'loss'): number => final.reduce((a, r) => a + r[k], 0) / Math.max(1, final.length);
    const stats = model.codebookStats();
    const info = backendInfo();
    id = await saveTokenizer(model, {
      imageSize: c.imageSize,
      name: options.save.name,
      label: options.save.label,
      store: options.save.store,
      parents: parent === undefined ? undefined : [parent.id],
      meta: {
        card: {
          data: typeof options.data[0] === 'string' ? [...(options.data as string[])] : `${images.length} in-memory images`,
          images: images.length,
          steps: step,
          ...(parent === undefined ? {} : { initFrom: parent, totalSteps: parent.totalSteps === null ? null : parent.totalSteps + step }),
          skippedSteps,
          wallSeconds,
          teacher: options.teacher?.name ?? null,
          machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', platform: `${os.platform()} ${os.arch()}`, node: process.version },
          backend: info === undefined ? tf.getBackend() : { ...info },
          config: c,
          final: { loss: mean('loss'), recon: mean('recon'), semantic: mean('semantic'), usage: stats.usage, perplexity: stats.perplexity },
        },
      },
    });
  }
  return { model, id, config: c, steps: step, skippedSteps, reports, wallSeconds };
}
