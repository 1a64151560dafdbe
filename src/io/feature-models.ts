/**
 * Loading feature extractors for Fréchet distances: pytorch-fid's Inception-v3
 * from a weights file the user provides, and the tfjs networks that the
 * `nsfwjs` npm package ships inside its tarball (docs/DATA.md).
 *
 * The weights file is safetensors (https://github.com/huggingface/safetensors):
 *   8 bytes   little-endian uint64 N, the length of the JSON header
 *   N bytes   JSON: { "__metadata__": { string: string },
 *                     "<tensor name>": { "dtype": "F32", "shape": [...], "data_offsets": [begin, end] }, ... }
 *   the rest  raw little-endian tensor bytes; offsets are relative to its start.
 * A FID Inception file holds pytorch-fid's state-dict tensors under their
 * PyTorch names (fc.* and num_batches_tracked dropped) and this metadata:
 *   format "vtok-fid-inception", version "1", width "1",
 *   source (file name), source_sha256, standard "true" | "false", standard_evidence.
 * scripts/convert-pytorch-fid.py writes it from pt_inception-2015-12-05-6726825d.pth;
 * `standard` is true only when the source's sha256 starts with 6726825d (the
 * torch.hub convention for the suffix of that name) or the user vouched for it.
 *
 * Example:
 *   const fid = await loadFeatureExtractor({ kind: 'pytorch-fid-inception', weights: 'pt_inception.safetensors' });
 *   const any = await loadFeatureExtractor({ kind: 'nsfwjs-mobilenet-v2' });
 */

import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { VtokError, checkOneOf, describeValue } from '../core/errors';
import { fidInceptionExtractor, layersModelExtractor, type FeatureExtractor } from '../tf/features';
import { FidInceptionV3, fidInceptionWeightShapes, type NamedWeights } from '../tf/inception';
import { writeFileAtomic } from './atomic';

export const FID_INCEPTION_FORMAT = 'vtok-fid-inception';
export const FID_INCEPTION_VERSION = '1';
/** The suffix of pytorch-fid's weights file name, pt_inception-2015-12-05-6726825d.pth. */
export const PYTORCH_FID_HASH_PREFIX = '6726825d';

export const FEATURE_EXTRACTOR_KINDS = ['pytorch-fid-inception', 'nsfwjs-inception-v3', 'nsfwjs-mobilenet-v2'] as const;
export type FeatureExtractorKind = (typeof FEATURE_EXTRACTOR_KINDS)[number];

export type FeatureExtractorSpec =
  | { kind: 'pytorch-fid-inception'; /** Path of the converted weights (.safetensors). */ weights: string; batchSize?: number }
  | { kind: 'nsfwjs-inception-v3' | 'nsfwjs-mobilenet-v2'; batchSize?: number };

// ---------------------------------------------------------------- safetensors

export interface SafetensorsFile {
  tensors: NamedWeights;
  metadata: Record<string, string>;
}

/** Largest JSON header accepted (the format's own limit is 100 MB). */
const MAX_HEADER = 100 * 1024 * 1024;

/** Parses safetensors bytes holding F32 tensors. `file` names the source in errors. */
export function parseSafetensors(bytes: Uint8Array, file = 'safetensors data'): SafetensorsFile {
  const fail = (why: string): VtokError => new VtokError('IO', `${file} is not a valid safetensors file: ${why}`, { subject: file });
  if (bytes.length < 8) throw fail(`${bytes.length} bytes is shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n > MAX_HEADER || 8 + n > bytes.length) throw fail(`header length ${n} does not fit in ${bytes.length} bytes`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, n).toString('utf8'));
  } catch (err) {
    throw new VtokError('IO', `${file} is not a valid safetensors file: its header is not JSON`, { subject: file, cause: err });
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw fail('its header is not a JSON object');
  const dataStart = 8 + n;
  const dataLength = bytes.length - dataStart;
  const tensors: NamedWeights = {};
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e.dtype !== 'F32') throw fail(`tensor ${name} has dtype ${describeValue(e.dtype)}; only F32 is supported`);
    const shape = e.shape;
    const offsets = e.data_offsets;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) throw fail(`tensor ${name} has a bad shape`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isInteger(d) && d >= 0)) throw fail(`tensor ${name} has bad data_offsets`);
    const [begin, end] = offsets as [number, number];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end < begin || end > dataLength || end - begin !== count * 4) {
      throw fail(`tensor ${name} [${shape.join(', ')}] needs ${count * 4} bytes but data_offsets are [${begin}, ${end}] within ${dataLength} data bytes`);
    }
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
      // Big-endian host: the file is little-endian.
      const dv = new DataView(bytes.buffer, bytes.byteOffset + dataStart + begin, count * 4);
      for (let i = 0; i < count; i++) data[i] = dv.getFloat32(i * 4, true);
    }
    tensors[name] = { shape: shape as number[], data };
  }
  return { tensors, metadata };
}

/** Serializes F32 tensors and string metadata to safetensors bytes (tensors in the given order, 8-byte aligned header). */
export function serializeSafetensors(tensors: NamedWeights, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.length * 4] };
    offset += t.data.length * 4;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // pad with spaces, as the reference writer does
  const head = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const t of Object.values(tensors)) {
    const dv = new DataView(out.buffer, at, t.data.length * 4);
    for (let i = 0; i < t.data.length; i++) dv.setFloat32(i * 4, t.data[i], true);
    at += t.data.length * 4;
  }
  return out;
}

// ------------------------------------------------------- FID Inception weights

export interface FidInceptionWeightsFile {
  weights: NamedWeights;
  metadata: Record<string, string>;
  /** Channel width the file was made for (1 for pytorch-fid's network). */
  width: number;
  /** True only for pytorch-fid's own weights (see the file comment). */
  standard: boolean;
}

/** Reads and checks a FID Inception weights file (format "vtok-fid-inception"). */
export async function readFidInceptionWeights(file: string): Promise<FidInceptionWeightsFile> {
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new VtokError(
        'FILE_NOT_FOUND',
        `FID Inception weights not found at ${file}; convert pytorch-fid's pt_inception-2015-12-05-6726825d.pth with scripts/convert-pytorch-fid.py`,
        { subject: file, cause: err },
      );
    }
    throw new VtokError('IO', `Could not read FID Inception weights ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  const { tensors, metadata } = parseSafetensors(bytes, file);
  if (metadata.format !== FID_INCEPTION_FORMAT) {
    throw new VtokError('IO', `Expected metadata format "${FID_INCEPTION_FORMAT}" in ${file} but received ${describeValue(metadata.format)}`, { subject: file });
  }
  if (metadata.version !== FID_INCEPTION_VERSION) {
    throw new VtokError('STORE_VERSION', `Expected ${FID_INCEPTION_FORMAT} version ${FID_INCEPTION_VERSION} in ${file} but received ${describeValue(metadata.version)}`, { subject: file });
  }
  const width = metadata.width === undefined ? 1 : Number(metadata.width);
  const shapes = fidInceptionWeightShapes({ width });
  const missing = Object.keys(shapes).filter((k) => !(k in tensors));
  if (missing.length > 0) {
    throw new VtokError('IO', `${file} lacks ${missing.length} FID Inception tensors, e.g. ${missing.slice(0, 3).join(', ')}`, { subject: file });
  }
  return { weights: tensors, metadata, width, standard: width === 1 && metadata.standard === 'true' };
}

/** Writes weights (PyTorch names) as a FID Inception weights file; metadata is merged over format/version/width. */
export async function writeFidInceptionWeights(file: string, weights: NamedWeights, metadata: Record<string, string> = {}): Promise<void> {
  const meta = { format: FID_INCEPTION_FORMAT, version: FID_INCEPTION_VERSION, width: '1', standard: 'false', ...metadata };
  await writeFileAtomic(file, serializeSafetensors(weights, meta));
}

// ------------------------------------------------------------- nsfwjs models

interface NsfwjsModel {
  dir: string;
  name: 'nsfwjs-inception-v3' | 'nsfwjs-mobilenet-v2';
  net: string;
  inputSize: number;
  featureLayer: string;
}

const NSFWJS_MODELS: Record<'nsfwjs-inception-v3' | 'nsfwjs-mobilenet-v2', NsfwjsModel> = {
  'nsfwjs-inception-v3': { dir: 'inception_v3', name: 'nsfwjs-inception-v3', net: 'InceptionV3 (Keras)', inputSize: 299, featureLayer: 'flatten_1' },
  'nsfwjs-mobilenet-v2': { dir: 'mobilenet_v2', name: 'nsfwjs-mobilenet-v2', net: 'MobileNetV2 (Keras)', inputSize: 224, featureLayer: 'flatten_1' },
};

/** Where nsfwjs keeps its bundled models (dist/models/<name>/model.min.js and group1-shard*.min.js). */
function nsfwjsModelsDir(): string {
  // nsfwjs's "exports" map hides package.json and dist/models, so look along node's search path.
  for (const dir of require.resolve.paths('nsfwjs') ?? []) {
    const models = path.join(dir, 'nsfwjs', 'dist', 'models');
    if (existsSync(path.join(models, 'mobilenet_v2', 'model.min.js'))) return models;
  }
  throw new VtokError('FILE_NOT_FOUND', 'The nsfwjs package (with dist/models) is not installed; `npm install --save-dev nsfwjs` to use its networks as feature extractors');
}

/**
 * Reads a Keras model that nsfwjs bundles as browserify JS modules: model.min.js
 * exports { modelTopology, weightsManifest }, each group1-shard<i>of<n>.min.js
 * exports its bytes as a base64 string. Returns tfjs ModelArtifacts for
 * tf.io.fromMemory.
 */
export async function readNsfwjsArtifacts(dir: string): Promise<tf.io.ModelArtifacts> {
  const load = (file: string): unknown => {
    const full = path.join(dir, file);
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const m = require(full) as { default?: unknown };
      return m.default ?? m;
    } catch (err) {
      throw new VtokError('IO', `Could not load the nsfwjs model file ${full}: ${(err as Error).message}`, { subject: full, cause: err });
    }
  };
  const json = load('model.min.js') as { modelTopology?: unknown; weightsManifest?: tf.io.WeightsManifestConfig };
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new VtokError('IO', `${path.join(dir, 'model.min.js')} does not hold a tfjs model (modelTopology and weightsManifest)`, { subject: dir });
  }
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const parts: Buffer[] = [];
  for (const group of json.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const p of group.paths) {
      const b64 = load(`${p}.min.js`);
      if (typeof b64 !== 'string') throw new VtokError('IO', `${path.join(dir, p)}.min.js does not export base64 weights`, { subject: dir });
      parts.push(Buffer.from(b64, 'base64'));
    }
  }
  const all = Buffer.concat(parts);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer;
  return { modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'], weightSpecs, weightData };
}

// -------------------------------------------------------------------- factory

/**
 * Loads a feature extractor. Only { kind: 'pytorch-fid-inception' } with
 * pytorch-fid's weights is labelled standard (its distance is "FID"); see
 * scoreLabel() in src/tf/features.ts.
 */
export async function loadFeatureExtractor(spec: FeatureExtractorSpec): Promise<FeatureExtractor> {
  if (spec === null || typeof spec !== 'object') throw new VtokError('INVALID_OPTION', `Expected a feature extractor spec object but received ${describeValue(spec)}`);
  const kind = checkOneOf('kind', spec.kind, FEATURE_EXTRACTOR_KINDS);
  const known = kind === 'pytorch-fid-inception' ? ['kind', 'weights', 'batchSize'] : ['kind', 'batchSize'];
  for (const key of Object.keys(spec)) {
    if (!known.includes(key)) throw new VtokError('INVALID_OPTION', `Unknown option ${JSON.stringify(key)} for loadFeatureExtractor kind "${kind}"; known options are ${known.join(', ')}`, { subject: key });
  }
  if (spec.kind === 'pytorch-fid-inception') {
    if (typeof spec.weights !== 'string' || spec.weights === '') {
      throw new VtokError('INVALID_OPTION', `Expected the path of a converted weights file for weights but received ${describeValue(spec.weights)}`, { subject: 'weights' });
    }
    const file = await readFidInceptionWeights(spec.weights);
    const net = new FidInceptionV3(file.weights, { width: file.width });
    return fidInceptionExtractor(net, { standard: file.standard, source: file.metadata.source ?? path.basename(spec.weights), batchSize: spec.batchSize });
  }
  const m = NSFWJS_MODELS[spec.kind];
  const artifacts = await readNsfwjsArtifacts(path.join(nsfwjsModelsDir(), m.dir));
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  return layersModelExtractor(model, {
    name: m.name,
    description:
      `nsfwjs ${m.net}: ImageNet-pretrained backbone, fine-tuned for NSFW classification (not FID); ` +
      `${model.getLayer(m.featureLayer).outputShape[1]}-d global-pool features of images resized to ${m.inputSize}x${m.inputSize} bilinear (align_corners=true, as nsfwjs does), in [0, 1]`,
    featureLayer: m.featureLayer,
    inputSize: m.inputSize,
    inputRange: '0..1',
    alignCorners: true,
    batchSize: spec.batchSize,
  });
}
