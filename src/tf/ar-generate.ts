/**
 * Autoregressive sampling from the transformer: prompts in, new ids out.
 *
 * Prompts of different lengths are left-padded with `<pad>` (invisible to the
 * model). With classifier-free guidance (guidanceScale != 1) every prompt has
 * an unconditional twin (e.g. `<bos> <gen> <boi>` for `<bos> <gen> text <boi>`);
 * both run in one batch [cond rows; uncond rows], their logits are combined
 * (uncond + s * (cond - uncond), as in LlamaGen), one id is drawn and fed to
 * both rows. A finished row (it drew a stop id) is fed `<pad>` from then on.
 *
 * `useCache: false` recomputes the whole sequence at every step (the
 * reference for tests and benchmarks); with the same seed it gives the same
 * ids as the cached path.
 */

import * as tf from '@tensorflow/tfjs';
import { checkInt, checkNumber, invalidOption, resolveOptions } from '../core/errors';
import { Rng } from '../core/random';
import { SampleOptions, cfgCombine, resolveSampleOptions, sampleLogits } from '../core/sampling';
import type { RowController } from '../core/ar-streams';
import { IdRows, KvCache, Transformer } from './transformer';

export interface GenerateOptions extends SampleOptions {
  /** Most ids to generate per row. Default 64. */
  maxNewTokens: number;
  /** Seed of the sampler's Rng; the same seed gives the same ids. Default 0. */
  seed: number;
  /** Classifier-free guidance scale; 1 = off. Default 1. */
  guidanceScale: number;
  /** One unconditional prompt per prompt; required when guidanceScale != 1. Default null. */
  uncondPrompts: IdRows | null;
  /** A row stops after drawing one of these ids (kept in its output). Default [] (run to maxNewTokens). */
  stopIds: readonly number[];
  /** Use the KV cache (true) or recompute every step (false). Default true. */
  useCache: boolean;
  /**
   * Makes a fresh RowController for prompt row b (called once per model row:
   * for the conditional row and, with guidance, its unconditional twin). It
   * checks the prompt, constrains the next id and gives 2D positions (needed
   * when the model has gridRows > 0). Default null: no constraint.
   */
  controller: ((row: number) => RowController) | null;
}

export const GENERATE_DEFAULTS: GenerateOptions = {
  temperature: 1,
  topK: 0,
  topP: 1,
  maxNewTokens: 64,
  seed: 0,
  guidanceScale: 1,
  uncondPrompts: null,
  stopIds: [],
  useCache: true,
  controller: null,
};

export interface GenerateResult {
  /** New ids per prompt row (prompt excluded), ending with the stop id if one was drawn. */
  tokens: number[][];
  /** Whether each row stopped on a stop id (otherwise it reached maxNewTokens). */
  stopped: boolean[];
  /** Model calls made (prefill or full pass, then steps). */
  calls: number;
}

/** Samples continuations of `prompts`. Synchronous (reads logits with dataSync each step). */
export function generate(model: Transformer, prompts: IdRows, options?: Partial<GenerateOptions>): GenerateResult {
  const o = resolveOptions('generate', GENERATE_DEFAULTS, options);
  const sampling = resolveSampleOptions({ temperature: o.temperature, topK: o.topK, topP: o.topP });
  checkInt('maxNewTokens', o.maxNewTokens, 1);
  checkNumber('seed', o.seed);
  checkNumber('guidanceScale', o.guidanceScale);
  const B = prompts.length;
  if (B === 0) throw invalidOption('prompts', 'at least one prompt', prompts);
  const guided = o.guidanceScale !== 1;
  if (guided && (o.uncondPrompts === null || o.uncondPrompts.length !== B)) {
    throw invalidOption('uncondPrompts', `${B} unconditional prompts (one per prompt) when guidanceScale is not 1`, o.uncondPrompts);
  }
  const V = model.config.vocabSize;
  const pad = model.config.padId;
  const hasGrid = model.config.gridRows > 0;
  if (hasGrid && o.controller === null) throw invalidOption('controller', 'a row controller giving 2D positions (the model has gridRows > 0)', null);
  const stop = new Set(o.stopIds);

  // Model rows: conditional prompts, then their unconditional twins.
  const source: IdRows = guided ? [...prompts, ...o.uncondPrompts!] : prompts;
  const R = source.length;
  const controllers = source.map((_, r) => (o.controller === null ? null : o.controller(r % B)));
  const rows: number[][] = [];
  const pos2d: number[][] = [];
  source.forEach((prompt, r) => {
    if (prompt.length === 0) throw invalidOption(`prompts[${r % B}]`, 'at least one id', prompt);
    const ids = Array.from(prompt);
    const pos: number[] = [];
    for (const id of ids) {
      const p = controllers[r]?.push(id) ?? null;
      pos.push(p === null ? -1 : p[0], p === null ? -1 : p[1]);
    }
    rows.push(ids);
    pos2d.push(pos);
  });
  const L = Math.max(...rows.map((r) => r.length));
  rows.forEach((ids, r) => {
    const n = L - ids.length;
    rows[r] = [...new Array<number>(n).fill(pad), ...ids];
    pos2d[r] = [...new Array<number>(2 * n).fill(-1), ...pos2d[r]];
  });

  const rng = new Rng(o.seed);
  const tokens: number[][] = Array.from({ length: B }, () => []);
  const stopped = new Array<boolean>(B).fill(false);
  let cache: KvCache | null = null;
  let logits: tf.Tensor2D | null = null;
  let calls = 0;
  const fullPass = (): tf.Tensor2D => {
    calls++;
    const T = rows[0].length;
    return tf.tidy(() => {
      const ids = tf.tensor2d(rows.flat(), [R, T], 'int32');
      const p = hasGrid ? tf.tensor3d(pos2d.flat(), [R, T, 2], 'int32') : undefined;
      return model.forward(ids, { pos2d: p }).slice([0, T - 1, 0], [R, 1, V]).reshape([R, V]) as tf.Tensor2D; // [R, V]
    });
  };
  try {
    if (o.useCache) {
      ({ logits, cache } = model.prefill(rows, hasGrid ? pos2d : undefined));
      calls++;
    } else {
      logits = fullPass();
    }
    const combined = new Float32Array(V);
    for (let n = 0; n < o.maxNewTokens; n++) {
      const data = logits.dataSync() as Float32Array; // [R * V]
      logits.dispose();
      logits = null;
      const next = new Int32Array(R).fill(pad);
      const nextPos = new Int32Array(2 * R).fill(-1);
      for (let b = 0; b < B; b++) {
        if (stopped[b]) continue;
        let row = data.subarray(b * V, (b + 1) * V);
        if (guided) row = cfgCombine(row, data.subarray((B + b) * V, (B + b + 1) * V), o.guidanceScale, combined);
        const id = sampleLogits(row, sampling, rng, controllers[b]?.allowed() ?? null);
        tokens[b].push(id);
        for (const r of guided ? [b, B + b] : [b]) {
          next[r] = id;
          const p = controllers[r]?.push(id) ?? null;
          if (p !== null) [nextPos[2 * r], nextPos[2 * r + 1]] = p;
        }
        if (stop.has(id)) stopped[b] = true;
      }
      if (n === o.maxNewTokens - 1 || stopped.every(Boolean)) break;
      if (o.useCache) {
        ({ logits, cache } = model.step(cache!, next, hasGrid ? nextPos : undefined));
        calls++;
      } else {
        for (let r = 0; r < R; r++) {
          rows[r].push(next[r]);
          pos2d[r].push(nextPos[2 * r], nextPos[2 * r + 1]);
        }
        logits = fullPass();
      }
    }
  } finally {
    logits?.dispose();
    cache?.dispose();
  }
  return { tokens, stopped, calls };
}
