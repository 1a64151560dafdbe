/**
 * Warm start: begin a tokenizer training run from a stored tokenizer bundle
 * instead of random weights (trainTokenizer's `initFrom`; `vtok train
 * tokenizer --init-from`), so a shipped tokenizer can be trained longer in a
 * later session when the run folder (checkpoint, Adam moments) is gone.
 *
 * A bundle holds the weights and both codebooks, not the optimizer's moments
 * nor the quantizer's EMA statistics. So a warm start:
 * - checks that the bundle's model config matches the run's (every field that
 *   shapes the weights or the forward pass; the quantizer's training knobs in
 *   TRAINING_ONLY_FIELDS may differ) and names the first field that does not;
 * - loads every weight and codebook (shapes checked by setWeights);
 * - marks the k-means initialization as done (k-means over trained codes
 *   would throw them away);
 * - seeds the EMA statistics from the loaded codebooks: cluster size
 *   n_k = max(N / K, 2 * deadCodeThreshold) for every code (N = positions per
 *   batch: the uniform share a k-means init gives on average; above the
 *   dead-code threshold so that no trained code is restarted because of the
 *   seed), sums m_k = E_k * n_k. The first EMA update then moves code k to
 *   normalize(decay * n_k E_k + (1 - decay) * sum of its batch latents), as in
 *   a run that never stopped, instead of jumping to the batch mean (or, with
 *   the fresh model's sums, to the random initial codes);
 * - leaves Adam to the caller: fresh moments, step 0, the config's schedule
 *   with its warm-up (large first Adam steps on trained weights would undo
 *   them).
 *
 * Example:
 *   const bundle = await readInitBundle('default');
 *   const parent = warmStart(model, bundle, { batchRows: 8 * 16 * 16 });
 *   parent.id;   // recorded as the new bundle's parent
 */

import * as path from 'node:path';
import { VtokError } from '../src/core/errors';
import { tensorRecord } from '../src/core/tensor-map';
import { type TokenizerConfig, TOKENIZER_DEFAULTS, resolveTokenizerConfig } from '../src/core/tokenizer-config';
import { type Bundle, BUNDLE_EXTENSION, readBundleFile } from '../src/io/bundle';
import { type StoreSetOptions, openStoreSet } from '../src/io/store';
import { TOKENIZER_KIND } from '../src/io/tokenizer-bundle';
import { PIXEL_CODEBOOK, SEMANTIC_CODEBOOK } from '../src/tf/quantizer';
import { type TokenizerModel } from '../src/tf/tokenizer';

/**
 * Model config fields that only steer codebook health during training (not
 * the weights, not the forward pass): a warm-started run may change them.
 */
export const TRAINING_ONLY_FIELDS: readonly (keyof TokenizerConfig)[] = [
  'beta',
  'emaDecay',
  'emaEps',
  'kmeansInit',
  'kmeansSamples',
  'kmeansIters',
  'kmeansSeeding',
  'deadCodeSteps',
  'deadCodeThreshold',
  'reservoirSize',
  'usageWindow',
];

/** Where a warm-started run came from (kept in its checkpoint and in its bundle's training card). */
export interface ParentInfo {
  /** Content id of the parent bundle. */
  id: string;
  /** What the user asked for (name, id, prefix or file). */
  ref: string;
  /** The parent bundle's label. */
  name: string;
  /** Steps of the parent's own run (its card's `steps`), when its card says. */
  steps: number | null;
  /** Steps since random initialization (the parent's `totalSteps`, else its `steps`), when known. */
  totalSteps: number | null;
}

/** Reads the bundle to start from: a `.vtok` file (a ref ending in .vtok or holding a path separator), else a name, id or id prefix in the store set. */
export async function readInitBundle(ref: string, store: StoreSetOptions = {}): Promise<Bundle> {
  if (typeof ref !== 'string' || ref.length === 0) {
    throw new VtokError('INVALID_INPUT', `Expected a bundle name, id, id prefix or .vtok file for initFrom but received ${JSON.stringify(ref)}`, {
      subject: 'initFrom',
    });
  }
  const isFile = ref.endsWith(BUNDLE_EXTENSION) || ref.includes('/') || ref.includes(path.sep);
  return isFile ? readBundleFile(path.resolve(ref)) : openStoreSet(store).get(ref);
}

/**
 * The first mismatch between a bundle's model config and a run's, as
 * "field: the bundle has X, the run's config has Y", or undefined when every
 * field outside TRAINING_ONLY_FIELDS matches.
 */
export function configMismatch(bundleConfig: TokenizerConfig, runConfig: TokenizerConfig): string | undefined {
  for (const key of Object.keys(TOKENIZER_DEFAULTS) as (keyof TokenizerConfig)[]) {
    if (TRAINING_ONLY_FIELDS.includes(key)) continue;
    const a = JSON.stringify(bundleConfig[key]);
    const b = JSON.stringify(runConfig[key]);
    if (a !== b) {
      const hint = key === 'teacherDim' ? ' (the teacher decides teacherDim: train with the same --teacher as the bundle, or none when it has 0)' : '';
      return `${key}: the bundle has ${a}, the run's config has ${b}${hint}`;
    }
  }
  return undefined;
}

function initError(bundle: Bundle, ref: string | undefined, what: string): VtokError {
  return new VtokError('INVALID_INPUT', `Cannot initialize from bundle ${bundle.id.slice(0, 12)}${ref === undefined ? '' : ` (${ref})`}: ${what}`, {
    subject: bundle.id,
  });
}

/** Throws unless the bundle is a tokenizer whose model config matches `config` (see configMismatch). Cheap: no tensors. */
export function checkInitBundle(bundle: Bundle, config: TokenizerConfig, ref?: string): void {
  if (bundle.kind !== TOKENIZER_KIND) throw initError(bundle, ref, `it is a ${bundle.kind}, not a tokenizer`);
  const saved = (bundle.config as { model?: Partial<TokenizerConfig> } | undefined)?.model;
  if (saved === undefined || saved === null || typeof saved !== 'object') throw initError(bundle, ref, 'it has no model config');
  const mismatch = configMismatch(resolveTokenizerConfig(saved), config);
  if (mismatch !== undefined) throw initError(bundle, ref, `its model config differs in ${mismatch}`);
}

/**
 * Loads a tokenizer bundle into a freshly built model and seeds its quantizer
 * state (see the file comment). Throws, changing nothing, when the bundle is
 * not a tokenizer or its config or weights do not match the model's.
 * `batchRows`: code positions per training batch (batchSize * h * w).
 */
export function warmStart(model: TokenizerModel, bundle: Bundle, options: { batchRows: number; ref?: string }): ParentInfo {
  const fail = (what: string): VtokError => initError(bundle, options.ref, what);
  checkInitBundle(bundle, model.config, options.ref);
  try {
    model.setWeights(bundle.tensors);
  } catch (err) {
    throw fail(err instanceof Error ? err.message : String(err));
  }
  model.setTrainingState(seededQuantizerState(model, options.batchRows));
  const card = ((bundle.meta as { card?: { steps?: unknown; totalSteps?: unknown } } | undefined)?.card ?? {}) as { steps?: unknown; totalSteps?: unknown };
  const steps = typeof card.steps === 'number' ? card.steps : null;
  const totalSteps = typeof card.totalSteps === 'number' ? card.totalSteps : steps;
  return { id: bundle.id, ref: options.ref ?? bundle.id, name: bundle.name, steps, totalSteps };
}

/** The EMA cluster size a warm start gives every code (see the file comment). */
export function warmStartClusterSize(config: TokenizerConfig, batchRows: number): number {
  return Math.max(batchRows / config.codebookSize, 2 * config.deadCodeThreshold);
}

/**
 * The model's fresh quantizer state with the initialization marked done and
 * (EMA mode) the EMA statistics seeded from its current codebooks. Goes
 * through getTrainingState/setTrainingState, which check every record.
 */
function seededQuantizerState(model: TokenizerModel, batchRows: number): ReturnType<TokenizerModel['getTrainingState']> {
  const c = model.config;
  const state = model.getTrainingState();
  // 'quantizer.counters' holds [step, initialized, ...] (quantizer.ts COUNTERS); trainTokenizer checks the flag took.
  const counters = Int32Array.from(state['quantizer.counters'].data as Int32Array);
  counters[1] = 1;
  state['quantizer.counters'] = tensorRecord('int32', [counters.length], counters);
  if (c.codebookUpdate === 'ema') {
    const K = c.codebookSize;
    const size = warmStartClusterSize(c, batchRows);
    const scaled = (name: string): Float32Array => Float32Array.from(model.variables[name].dataSync() as Float32Array, (v) => v * size); // [K, d] row-major
    state['quantizer.ema_cluster_size'] = tensorRecord('float32', [K], new Float32Array(K).fill(size));
    state['quantizer.ema_sum_s'] = tensorRecord('float32', [K, c.semanticDim], scaled(SEMANTIC_CODEBOOK));
    state['quantizer.ema_sum_p'] = tensorRecord('float32', [K, c.pixelDim], scaled(PIXEL_CODEBOOK));
  }
  return state;
}
