/**
 * A trained pixel classifier (src/tf/classifier.ts) as a bundle, and back:
 * the one place that knows how a `kind: 'classifier'` bundle is laid out.
 *
 *   config  { model: ClassifierConfig, classes: string[],
 *             input: { size, fit, background } }   how training read its images (part of the id)
 *   tensors every weight                            (part of the id)
 *   meta    the training card                       (not part of the id)
 *
 * `classes[i]` is the text of class index i (the label or caption of the
 * training images, e.g. "Ankle boot"); `input` is how images must be read so
 * that they have the geometry the classifier was trained on.
 *
 * Example:
 *   const c = await loadClassifier('runs/classifier');   // a run folder, a .vtok file, or a store name/id
 *   c.model.predict(images); c.model.dispose();
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { VtokError } from '../core/errors';
import { type TensorMap, tensorRecord } from '../core/tensor-map';
import { type ClassifierConfig, PixelClassifier } from '../tf/classifier';
import { type Bundle, type BundleInput, readBundleFile, writeBundleFile } from './bundle';
import { openStoreSet, type StoreSetOptions } from './store';

export const CLASSIFIER_KIND = 'classifier';
/** The bundle file a classifier training run writes into its run folder. */
export const CLASSIFIER_BUNDLE_FILE = 'classifier.vtok';

/** How images are read for the classifier (readImage options). */
export interface ClassifierInput {
  /** Square side the images are resized to. */
  size: number;
  /** 'pad' (letterbox on background) or 'crop' (centre crop). */
  fit: 'crop' | 'pad';
  /** Colour under transparency and around a padded image. */
  background: string;
}

export interface ClassifierParts {
  model: PixelClassifier;
  /** Text of each class index. */
  classes: string[];
  input: ClassifierInput;
}

export interface LoadedClassifier extends ClassifierParts {
  id: string;
  bundle: Bundle;
}

/** The bundle for a trained classifier (does not write it). */
export function classifierBundle(parts: ClassifierParts, options: { name?: string; meta?: unknown } = {}): BundleInput {
  const { model, classes } = parts;
  if (classes.length !== model.config.numClasses) {
    throw new VtokError('INVALID_INPUT', `Expected ${model.config.numClasses} class names for the classifier but received ${classes.length}`, { subject: 'classes' });
  }
  const weights = model.getWeights();
  const tensors: TensorMap = {};
  for (const [name, v] of Object.entries(model.variables)) tensors[name] = tensorRecord('float32', v.shape, weights[name]);
  return {
    kind: CLASSIFIER_KIND,
    name: options.name ?? 'classifier',
    config: { model: { ...model.config, widths: [...model.config.widths] }, classes: [...classes], input: { ...parts.input } },
    tensors,
    meta: options.meta,
  };
}

/** Writes the bundle atomically to a file; returns its content id. */
export async function saveClassifierFile(file: string, parts: ClassifierParts, options: { name?: string; meta?: unknown } = {}): Promise<string> {
  return writeBundleFile(file, classifierBundle(parts, options));
}

/** Rebuilds the classifier of a bundle. */
export function classifierFromBundle(bundle: Bundle): LoadedClassifier {
  if (bundle.kind !== CLASSIFIER_KIND) {
    throw new VtokError('STORE_MISMATCH', `Bundle ${bundle.id.slice(0, 12)} is a ${bundle.kind}, not a pixel classifier (classifier)`, { subject: bundle.id });
  }
  const c = bundle.config as { model?: ClassifierConfig; classes?: unknown; input?: ClassifierInput };
  if (c.model === undefined || !Array.isArray(c.classes) || !c.classes.every((t) => typeof t === 'string') || c.input === undefined) {
    throw new VtokError('STORE_CORRUPT', `Classifier bundle ${bundle.id.slice(0, 12)} lacks its model config, class list or input geometry`, { subject: bundle.id });
  }
  const model = new PixelClassifier(c.model, 0);
  try {
    const w: Record<string, ArrayLike<number>> = {};
    for (const [name, r] of Object.entries(bundle.tensors)) w[name] = r.data as ArrayLike<number>;
    model.setWeights(w);
    if (c.classes.length !== model.config.numClasses) {
      throw new VtokError('STORE_CORRUPT', `Classifier bundle ${bundle.id.slice(0, 12)}: ${c.classes.length} class names for ${model.config.numClasses} outputs`, { subject: bundle.id });
    }
  } catch (err) {
    model.dispose();
    throw err;
  }
  return { id: bundle.id, bundle, model, classes: [...(c.classes as string[])], input: { ...c.input } };
}

/** Loads a classifier from a training run folder (its classifier.vtok), a .vtok file, or a store reference (name, id or id prefix). */
export async function loadClassifier(ref: string, store: StoreSetOptions = {}): Promise<LoadedClassifier> {
  const st = await fs.stat(ref).catch(() => null);
  if (st !== null) {
    const file = st.isDirectory() ? path.join(ref, CLASSIFIER_BUNDLE_FILE) : ref;
    const exists = await fs.stat(file).catch(() => null);
    if (exists === null) {
      throw new VtokError('FILE_NOT_FOUND', `${ref} is a folder without ${CLASSIFIER_BUNDLE_FILE}: not a finished classifier training run (vtok classify train --out ${ref})`, {
        subject: ref,
      });
    }
    return classifierFromBundle(await readBundleFile(file));
  }
  return classifierFromBundle(await openStoreSet(store).get(ref));
}
