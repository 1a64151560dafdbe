/**
 * Frozen semantic teachers for tokenizer training: any TF.js layers or graph
 * model on disk (model.json + weight files) and the name of the layer (layers
 * model) or node (graph model) whose spatial features [B, h', w', D] the
 * tokenizer's semantic decoder learns to predict. nsfwjs's bundled Keras
 * MobileNetV2 (ImageNet-pretrained backbone) is built in as
 * 'nsfwjs-mobilenet-v2'.
 *
 * tfjs without tfjs-node has no file:// handler in Node, so fileModelHandler
 * here reads model.json and its weight shards itself.
 *
 * Example:
 *   const teacher = await loadTeacher({ source: 'nsfwjs-mobilenet-v2' });  // block_13_expand_relu, 576-d, 14x14 at 224
 *   const f = teacher.features(images);  // [B, 14, 14, 576]
 */

import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { VtokError, checkInt, checkOneOf, resolveOptions } from '../core/errors';
import { readNsfwjsArtifacts } from './feature-models';

export interface Teacher {
  name: string;
  /** Feature dimension D of the chosen layer. */
  dim: number;
  /** Features of images [B, H, W, 3] in [-1, 1]: [B, h', w', D]. Tidy; the input is not disposed. */
  features(images: tf.Tensor4D): tf.Tensor4D;
  dispose(): void;
}

export interface TeacherOptions {
  /** 'nsfwjs-mobilenet-v2', or the path of a model.json (layers or graph model). */
  source: string;
  /** Layer (layers model) or node (graph model) name. Default for nsfwjs-mobilenet-v2: 'block_13_expand_relu'. */
  layer: string | undefined;
  /** Side the images are resized to (bilinear) before the network. Default: the model's input size, else 224. */
  inputSize: number | undefined;
  /** Pixel range the network expects. Default '0..1' (nsfwjs). */
  inputRange: '0..1' | '-1..1' | '0..255';
}

const DEFAULTS: TeacherOptions = { source: 'nsfwjs-mobilenet-v2', layer: undefined, inputSize: undefined, inputRange: '0..1' };

export const NSFWJS_MOBILENET_TEACHER = 'nsfwjs-mobilenet-v2';
const NSFWJS_MOBILENET_LAYER = 'block_13_expand_relu';

/** A tf.io handler that loads model.json and its weight files from the local file system. */
export function fileModelHandler(modelJson: string): tf.io.IOHandler {
  return { load: () => readModelArtifacts(modelJson) };
}

/** model.json and its weight files from the local file system, as tfjs ModelArtifacts. */
export async function readModelArtifacts(modelJson: string): Promise<tf.io.ModelArtifacts> {
  let json: { modelTopology?: unknown; weightsManifest?: tf.io.WeightsManifestConfig; format?: string; generatedBy?: string; convertedBy?: string };
  try {
    json = JSON.parse(await fsp.readFile(modelJson, 'utf8')) as typeof json;
  } catch (err) {
    throw new VtokError('IO', `Could not read the teacher model ${modelJson}: ${(err as Error).message}`, { subject: modelJson, cause: err });
  }
  if (json.modelTopology === undefined || !Array.isArray(json.weightsManifest)) {
    throw new VtokError('IO', `${modelJson} is not a TF.js model.json (modelTopology and weightsManifest)`, { subject: modelJson });
  }
  const specs: tf.io.WeightsManifestEntry[] = [];
  const parts: Buffer[] = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) parts.push(await fsp.readFile(path.join(path.dirname(modelJson), p)));
  }
  const all = Buffer.concat(parts);
  return {
    modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'],
    weightSpecs: specs,
    weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength) as ArrayBuffer,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
  };
}

/** A tf.io handler that writes model.json + weights.bin into a folder (for tests and for exporting teachers). */
export function fileModelSaveHandler(dir: string): tf.io.IOHandler {
  return tf.io.withSaveHandler(async (artifacts) => {
    await fsp.mkdir(dir, { recursive: true });
    const data = artifacts.weightData === undefined ? new Uint8Array(0) : new Uint8Array(artifacts.weightData as ArrayBuffer);
    await fsp.writeFile(path.join(dir, 'weights.bin'), data);
    const json = {
      modelTopology: artifacts.modelTopology,
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
      weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
    };
    await fsp.writeFile(path.join(dir, 'model.json'), JSON.stringify(json));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: data.byteLength } };
  });
}

function toInputRange(images: tf.Tensor4D, range: TeacherOptions['inputRange']): tf.Tensor4D {
  if (range === '-1..1') return images;
  if (range === '0..1') return tf.mul(tf.add(images, 1), 0.5);
  return tf.mul(tf.add(images, 1), 127.5);
}

/** Loads a frozen teacher (see the file comment). */
export async function loadTeacher(options: Partial<TeacherOptions>): Promise<Teacher> {
  const o = resolveOptions('loadTeacher', DEFAULTS, options);
  const range = checkOneOf('inputRange', o.inputRange, ['0..1', '-1..1', '0..255'] as const);
  let artifacts: tf.io.ModelArtifacts;
  let layerName = o.layer;
  if (o.source === NSFWJS_MOBILENET_TEACHER) {
    // nsfwjs's "exports" map hides dist/models, so look along node's search path.
    const dir = (require.resolve.paths('nsfwjs') ?? []).map((d) => path.join(d, 'nsfwjs', 'dist', 'models', 'mobilenet_v2')).find((d) => existsSync(d));
    if (dir === undefined) throw new VtokError('FILE_NOT_FOUND', 'The nsfwjs package (with dist/models) is not installed; `npm install --save-dev nsfwjs` to use its MobileNetV2 as the teacher');
    artifacts = await readNsfwjsArtifacts(dir);
    layerName ??= NSFWJS_MOBILENET_LAYER;
  } else {
    artifacts = await readModelArtifacts(o.source);
  }
  if (layerName === undefined) throw new VtokError('INVALID_OPTION', `Name the teacher layer to match (teacherLayer) for ${o.source}`, { subject: 'layer' });
  const isGraph = artifacts.format === 'graph-model';
  if (isGraph) {
    const graph = await tf.loadGraphModel(tf.io.fromMemory(artifacts));
    const size = o.inputSize ?? graph.inputs[0].shape?.[1] ?? 224;
    checkInt('inputSize', size, 1);
    const node = layerName;
    const run = (x: tf.Tensor4D): tf.Tensor4D => graph.execute(x, node) as tf.Tensor4D;
    let out: tf.Tensor4D;
    try {
      out = tf.tidy(() => run(tf.zeros([1, size, size, 3])));
    } catch (err) {
      graph.dispose();
      throw new VtokError('INVALID_OPTION', `The teacher graph ${o.source} has no node ${JSON.stringify(node)}: ${(err as Error).message}`, { subject: node });
    }
    const dim = out.shape[3];
    out.dispose();
    return {
      name: `${path.basename(path.dirname(o.source))}:${node}`,
      dim,
      features: (images) => tf.tidy(() => run(tf.image.resizeBilinear(toInputRange(images, range), [size, size], true))),
      dispose: () => graph.dispose(),
    };
  }
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const names = model.layers.map((l) => l.name);
  if (!names.includes(layerName)) {
    model.dispose();
    const near = names.filter((n) => n.includes(layerName.replace(/_?\d+$/, ''))).slice(0, 8);
    throw new VtokError(
      'INVALID_OPTION',
      `The teacher model ${o.source} has no layer ${JSON.stringify(layerName)}` +
        (near.length > 0 ? `; similar layers: ${near.join(', ')}` : `; its layers are ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', ...' : ''}`),
      { subject: layerName },
    );
  }
  const outShape = model.getLayer(layerName).outputShape as (number | null)[];
  if (!Array.isArray(outShape) || outShape.length !== 4) {
    model.dispose();
    throw new VtokError('INVALID_OPTION', `Teacher layer ${layerName} gives [${String(outShape)}], not spatial features [B, h, w, D]`, { subject: layerName });
  }
  const sub = tf.model({ inputs: model.inputs, outputs: model.getLayer(layerName).output as tf.SymbolicTensor });
  const size = checkInt('inputSize', o.inputSize ?? model.inputs[0].shape[1] ?? 224, 1);
  const label = o.source === NSFWJS_MOBILENET_TEACHER ? NSFWJS_MOBILENET_TEACHER : path.basename(path.dirname(o.source));
  return {
    name: `${label}:${layerName}`,
    dim: outShape[3] as number,
    features: (images) => tf.tidy(() => sub.predict(tf.image.resizeBilinear(toInputRange(images, range), [size, size], true)) as tf.Tensor4D),
    dispose: () => model.dispose(),
  };
}
