/**
 * A trained autoregressive head as a bundle, and back: the one place that
 * knows how a `kind: 'ar-model'` bundle is laid out.
 *
 *   config  { model: TransformerConfig, grid: {height, width}, imageTokenizer: id,
 *             classes: string[], visual: 'codes' | 'bpe' }     (part of the id)
 *   tensors every transformer weight                          (part of the id)
 *   vocab   the unified vocabulary with its text tokenizer    (part of the id)
 *   bpe     the visual BPE model when the visual ids are BPE  (part of the id)
 *   meta    the training card                                 (not part of the id)
 *
 * Example:
 *   const ar = await loadAr('runs/ar-fmnist');   // a run folder, a .vtok file, or a store name/id
 *   ar.model.dispose();
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { BpeModel } from '../core/bpe';
import { VtokError } from '../core/errors';
import { type TensorMap, tensorRecord } from '../core/tensor-map';
import { Vocab } from '../core/vocab';
import { Transformer, type TransformerConfig, weightShapes } from '../tf/transformer';
import { type Bundle, type BundleInput, isBundleId, readBundleFile, writeBundleFile } from './bundle';
import { openStoreSet, type StoreSetOptions } from './store';

export const AR_KIND = 'ar-model';
/** The bundle file a training run writes into its run folder. */
export const AR_BUNDLE_FILE = 'ar.vtok';

export interface ArParts {
  model: Transformer;
  vocab: Vocab;
  /** The code grid of the images (2D positions, BPE decoding). */
  grid: { height: number; width: number };
  /** Content id of the image tokenizer whose codes the model reads and writes. */
  imageTokenizer: string;
  /** Distinct training texts (the closed set for class scores). */
  classes: string[];
  /** The visual BPE model when the model's visual ids are BPE ids. */
  bpe: BpeModel | undefined;
}

export interface LoadedAr extends ArParts {
  id: string;
  bundle: Bundle;
}

/** The bundle for a trained head (does not write it). */
export function arBundle(parts: ArParts, options: { name?: string; meta?: unknown } = {}): BundleInput {
  const shapes = weightShapes(parts.model.config);
  const weights = parts.model.getWeights();
  const tensors: TensorMap = {};
  for (const [name, shape] of Object.entries(shapes)) tensors[name] = tensorRecord('float32', shape, weights[name]);
  return {
    kind: AR_KIND,
    name: options.name ?? 'ar-model',
    config: {
      model: { ...parts.model.config },
      grid: { ...parts.grid },
      imageTokenizer: parts.imageTokenizer,
      classes: [...parts.classes],
      visual: parts.bpe === undefined ? 'codes' : 'bpe',
    },
    tensors,
    vocab: parts.vocab.serialize(),
    bpe: parts.bpe?.toJSON(),
    meta: options.meta,
    parents: isBundleId(parts.imageTokenizer) ? [parts.imageTokenizer] : undefined,
  };
}

/** Writes the bundle atomically to a file; returns its content id. */
export async function saveArFile(file: string, parts: ArParts, options: { name?: string; meta?: unknown } = {}): Promise<string> {
  return writeBundleFile(file, arBundle(parts, options));
}

/** Rebuilds the head of an ar-model bundle. */
export function arFromBundle(bundle: Bundle): LoadedAr {
  if (bundle.kind !== AR_KIND) {
    throw new VtokError('STORE_MISMATCH', `Bundle ${bundle.id.slice(0, 12)} is a ${bundle.kind}, not an autoregressive model (ar-model)`, { subject: bundle.id });
  }
  const c = bundle.config as { model?: TransformerConfig; grid?: { height: number; width: number }; imageTokenizer?: string; classes?: string[] };
  if (c.model === undefined || c.grid === undefined || typeof c.imageTokenizer !== 'string' || !Array.isArray(c.classes) || bundle.vocab === undefined) {
    throw new VtokError('STORE_CORRUPT', `AR bundle ${bundle.id.slice(0, 12)} lacks its model config, grid, image tokenizer id, classes or vocabulary`, {
      subject: bundle.id,
    });
  }
  const vocab = Vocab.deserialize(bundle.vocab);
  if (vocab.size !== c.model.vocabSize) {
    throw new VtokError('STORE_CORRUPT', `AR bundle ${bundle.id.slice(0, 12)}: vocabulary of ${vocab.size} ids but a model of ${c.model.vocabSize}`, { subject: bundle.id });
  }
  const bpe = bundle.bpe === undefined || bundle.bpe === null ? undefined : BpeModel.fromJSON(bundle.bpe);
  const model = new Transformer(c.model);
  try {
    const w: Record<string, ArrayLike<number>> = {};
    for (const [name, r] of Object.entries(bundle.tensors)) w[name] = r.data as ArrayLike<number>;
    model.setWeights(w);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { id: bundle.id, bundle, model, vocab, grid: { ...c.grid }, imageTokenizer: c.imageTokenizer, classes: [...c.classes], bpe };
}

/**
 * Loads a head from a training run folder (its ar.vtok), a .vtok file, or a
 * store reference (name, id or id prefix).
 */
export async function loadAr(ref: string, store: StoreSetOptions = {}): Promise<LoadedAr> {
  const st = await fs.stat(ref).catch(() => null);
  if (st !== null) {
    const file = st.isDirectory() ? path.join(ref, AR_BUNDLE_FILE) : ref;
    const exists = await fs.stat(file).catch(() => null);
    if (exists === null) {
      throw new VtokError('FILE_NOT_FOUND', `${ref} is a folder without ${AR_BUNDLE_FILE}: not a finished AR training run (train it to the end, or resume it)`, {
        subject: ref,
      });
    }
    return arFromBundle(await readBundleFile(file));
  }
  return arFromBundle(await openStoreSet(store).get(ref));
}
