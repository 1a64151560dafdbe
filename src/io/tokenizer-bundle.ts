/**
 * A trained image tokenizer as a store bundle, and back: the one place that
 * knows how a `kind: 'tokenizer'` bundle is laid out.
 *
 *   config  { model: TokenizerConfig, imageSize }   (part of the id)
 *   tensors every weight and both codebooks          (part of the id)
 *   bpe     the visual BPE model, when one was added (part of the id)
 *   meta    the training card and metrics            (not part of the id)
 *
 * Example:
 *   const id = await saveTokenizer(model, { imageSize: 256, name: 'default' });
 *   const t = await loadTokenizer('default');         // { id, model, imageSize, bpe, bundle }
 *   const codes = t.model.encode(images);              // [B, h, w]
 *   t.model.dispose();
 */
import { BpeModel } from '../core/bpe';
import { checkInt, VtokError } from '../core/errors';
import type { TokenizerConfig } from '../core/tokenizer-config';
import { createTokenizerModel, type TokenizerModel } from '../tf/tokenizer';
import type { Bundle, BundleInput } from './bundle';
import { openStoreSet, type StoreSetOptions } from './store';

export const TOKENIZER_KIND = 'tokenizer';

export interface SaveTokenizerOptions {
  /** Side of the square images the tokenizer was trained on and encodes by default. */
  imageSize: number;
  /** Store name to point at the bundle ('default', 'fashion-mnist'...). */
  name?: string;
  /** A human label kept in the bundle. Default: the store name, else 'tokenizer'. */
  label?: string;
  /** Visual BPE merges over this tokenizer's codes. */
  bpe?: BpeModel;
  /** Training card and metrics (not part of the id). */
  meta?: Record<string, unknown>;
  /** Ids this bundle derives from (e.g. the tokenizer a BPE was trained on). */
  parents?: string[];
  /** Store options (folder, shipped store). */
  store?: StoreSetOptions;
}

export interface LoadedTokenizer {
  id: string;
  model: TokenizerModel;
  imageSize: number;
  bpe: BpeModel | undefined;
  bundle: Bundle;
}

/** The bundle for a model (does not write it). */
export function tokenizerBundle(model: TokenizerModel, options: Omit<SaveTokenizerOptions, 'store' | 'name'> & { name?: string }): BundleInput {
  const imageSize = checkInt('imageSize', options.imageSize, 1, 65535);
  if (options.bpe && options.bpe.baseVocab !== model.config.codebookSize) {
    throw new VtokError(
      'INVALID_INPUT',
      `The BPE model was trained over ${options.bpe.baseVocab} base codes but the tokenizer has ${model.config.codebookSize}`,
      { subject: 'bpe' },
    );
  }
  return {
    kind: TOKENIZER_KIND,
    name: options.label ?? options.name ?? 'tokenizer',
    config: { model: { ...model.config }, imageSize, seed: model.seed },
    tensors: model.getWeights(),
    bpe: options.bpe ? options.bpe.toJSON() : undefined,
    meta: options.meta,
    parents: options.parents,
  };
}

/** Writes a tokenizer into the user store (atomically) and returns its content id. */
export async function saveTokenizer(model: TokenizerModel, options: SaveTokenizerOptions): Promise<string> {
  const set = openStoreSet(options.store ?? {});
  return set.put(tokenizerBundle(model, options), { name: options.name });
}

/** Rebuilds the model of a tokenizer bundle. */
export function tokenizerFromBundle(bundle: Bundle): LoadedTokenizer {
  if (bundle.kind !== TOKENIZER_KIND) {
    throw new VtokError('STORE_MISMATCH', `Bundle ${bundle.id.slice(0, 12)} is a ${bundle.kind}, not a tokenizer`, { subject: bundle.id });
  }
  const config = bundle.config as { model?: Partial<TokenizerConfig>; imageSize?: number; seed?: number };
  if (!config.model || typeof config.imageSize !== 'number') {
    throw new VtokError('STORE_CORRUPT', `Tokenizer bundle ${bundle.id.slice(0, 12)} has no model config or imageSize`, { subject: bundle.id });
  }
  const model = createTokenizerModel(config.model, config.seed ?? 0);
  try {
    model.setWeights(bundle.tensors);
  } catch (err) {
    model.dispose();
    throw err;
  }
  const bpe = bundle.bpe === undefined ? undefined : BpeModel.fromJSON(bundle.bpe);
  return { id: bundle.id, model, imageSize: config.imageSize, bpe, bundle };
}

/** Loads a tokenizer by name, id or id prefix from the user store, then the shipped codebooks/. */
export async function loadTokenizer(ref = 'default', store: StoreSetOptions = {}): Promise<LoadedTokenizer> {
  const bundle = await openStoreSet(store).get(ref);
  return tokenizerFromBundle(bundle);
}
