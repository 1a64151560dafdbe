/**
 * Choosing the next id from a row of logits: constraint mask, classifier-free
 * guidance, temperature, top-k, top-p (nucleus; Holtzman et al. 2020,
 * "The Curious Case of Neural Text Degeneration"), greedy. Plain typed-array
 * code, seeded with Rng, so the same seed always gives the same ids.
 *
 * Order of application (as in LlamaGen and Hugging Face generate):
 *   guidance -> constraint -> temperature -> top-k -> top-p -> draw
 * Filters write -Infinity into the logits they remove.
 */

import { VtokError, checkInt, checkNumber, resolveOptions } from './errors';
import type { IdRange } from './vocab';
import type { Rng } from './random';

export interface SampleOptions {
  /** Softmax temperature; 0 (or below 1e-5, where division would overflow) means greedy: argmax, lowest id on ties. Default 1. */
  temperature: number;
  /** Keep only the k largest logits (ties with the k-th are kept); 0 = off. Default 0. */
  topK: number;
  /** Keep the smallest set of most likely ids whose probability reaches p; 1 = off. Default 1. */
  topP: number;
}

/** Temperatures below this are greedy. */
const GREEDY_BELOW = 1e-5;

export const SAMPLE_DEFAULTS: SampleOptions = { temperature: 1, topK: 0, topP: 1 };

/** The ids that may come next: a 0/1 mask over the vocabulary, or a list of id ranges. */
export type Allowed = Uint8Array | readonly IdRange[];

/** Checks and fills sampling options. */
export function resolveSampleOptions(options?: Partial<SampleOptions>): SampleOptions {
  const o = resolveOptions('sampling', SAMPLE_DEFAULTS, options);
  checkNumber('temperature', o.temperature, 0);
  checkInt('topK', o.topK, 0);
  checkNumber('topP', o.topP, Number.MIN_VALUE, 1);
  return o;
}

/**
 * Classifier-free guidance (Ho & Salimans 2022): uncond + scale * (cond - uncond).
 * scale 1 gives cond; larger scales push away from the unconditional model.
 * Example: cfgCombine([2, 0], [1, 1], 3) -> [4, -2]
 */
export function cfgCombine(cond: ArrayLike<number>, uncond: ArrayLike<number>, scale: number, out?: Float32Array): Float32Array {
  if (cond.length !== uncond.length) {
    throw new VtokError('INVALID_INPUT', `Expected conditional and unconditional logits of the same length but received ${cond.length} and ${uncond.length}`);
  }
  const o = out ?? new Float32Array(cond.length);
  for (let i = 0; i < cond.length; i++) o[i] = uncond[i] + scale * (cond[i] - uncond[i]);
  return o;
}

/** Sets every logit that is not allowed to -Infinity, in place. */
export function applyAllowed(logits: Float32Array, allowed: Allowed): Float32Array {
  if (allowed instanceof Uint8Array) {
    if (allowed.length !== logits.length) {
      throw new VtokError('INVALID_INPUT', `Expected an allowed-ids mask of length ${logits.length} but received length ${allowed.length}`);
    }
    for (let i = 0; i < logits.length; i++) if (allowed[i] === 0) logits[i] = -Infinity;
    return logits;
  }
  const keep = new Uint8Array(logits.length);
  for (const r of allowed) keep.fill(1, Math.max(0, r.start), Math.min(logits.length, r.end));
  return applyAllowed(logits, keep);
}

/**
 * Keeps the k largest logits (and any equal to the k-th), in place.
 * Example: topKFilter([1, 3, 2, 3], 2) -> [-Inf, 3, -Inf, 3]
 */
export function topKFilter(logits: Float32Array, k: number): Float32Array {
  if (k <= 0 || k >= logits.length) return logits;
  const sorted = Float32Array.from(logits).sort(); // ascending; -Infinity first
  const kth = sorted[logits.length - k];
  for (let i = 0; i < logits.length; i++) if (logits[i] < kth) logits[i] = -Infinity;
  return logits;
}

/**
 * Keeps the smallest set of most likely ids whose probability sum reaches p
 * (at least one id), in place. Equal logits are ranked by id.
 * Example: probabilities [0.5, 0.2, 0.15, 0.1, 0.05], p = 0.8 keeps ids 0, 1, 2 (0.85 >= 0.8).
 */
export function topPFilter(logits: Float32Array, p: number): Float32Array {
  if (p >= 1) return logits;
  const probs = softmax(logits);
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  let mass = 0;
  let i = 0;
  for (; i < order.length; i++) {
    mass += probs[order[i]];
    if (mass >= p) break;
  }
  for (let j = i + 1; j < order.length; j++) logits[order[j]] = -Infinity;
  return logits;
}

/** Softmax of a row of logits, computed stably (max subtracted). -Infinity gives 0. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const out = new Float64Array(logits.length);
  if (max === -Infinity) return out;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp(logits[i] - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < logits.length; i++) out[i] /= sum;
  return out;
}

/** The id of the largest logit (lowest id on ties); -1 if every logit is -Infinity or NaN. */
export function argmax(logits: ArrayLike<number>): number {
  let best = -1;
  let bestValue = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > bestValue) {
      bestValue = logits[i];
      best = i;
    }
  }
  return best;
}

/**
 * Picks the next id from one row of logits. Does not modify `logits`.
 * Draws exactly one number from `rng` unless greedy (temperature 0).
 * Example: sampleLogits([0, 2, 1], { temperature: 0, topK: 0, topP: 1 }, rng) -> 1
 */
export function sampleLogits(logits: ArrayLike<number>, options: SampleOptions, rng: Rng, allowed?: Allowed | null): number {
  const x = Float32Array.from(logits);
  for (let i = 0; i < x.length; i++) {
    if (Number.isNaN(x[i])) throw new VtokError('INVALID_INPUT', `Logit ${i} is NaN; the model's output is not usable`, { subject: String(i) });
  }
  if (allowed !== undefined && allowed !== null) applyAllowed(x, allowed);
  if (options.temperature < GREEDY_BELOW) {
    const id = argmax(x);
    if (id < 0) throw noneAllowed();
    return id;
  }
  for (let i = 0; i < x.length; i++) x[i] /= options.temperature;
  topKFilter(x, options.topK);
  topPFilter(x, options.topP);
  const probs = softmax(x);
  const u = rng.next();
  let cum = 0;
  let last = -1;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    cum += probs[i];
    last = i;
    if (u < cum) return i;
  }
  if (last < 0) throw noneAllowed();
  return last; // u fell above the rounded total
}

function noneAllowed(): VtokError {
  return new VtokError('INVALID_INPUT', 'Every id is excluded for the next token (constraint, top-k and top-p left nothing to sample)');
}
