/**
 * Model-free helpers of the autoregressive head's tasks: the text of a token
 * record, the closed set of training texts (class names), class scores from
 * candidate log-probabilities, and the seeded data order of AR training.
 */

import type { VisualShapeOf } from './ar-streams';
import type { BpeModel } from './bpe';
import { VtokError } from './errors';
import { Rng } from './random';
import { softmax } from './sampling';

/** The text a record teaches: its caption, else its label as a string; null when it has neither. */
export function recordText(record: { caption: string | null; label: string | number | null }): string | null {
  if (typeof record.caption === 'string' && record.caption.trim() !== '') return record.caption;
  if (record.label !== null && record.label !== undefined && String(record.label).trim() !== '') return String(record.label);
  return null;
}

/** The distinct texts, sorted (code-point order): the closed set a classifier picks from. */
export function closedSet(texts: Iterable<string>): string[] {
  return [...new Set(texts)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export interface ClassScores {
  /** The candidate with the highest log-probability. */
  best: string;
  /** Candidates with their summed log-probability and normalised probability over the set, most likely first. */
  ranked: { text: string; logProb: number; prob: number }[];
}

/** Ranks candidate texts by log-probability (ties: the earlier candidate first). */
export function rankCandidates(candidates: readonly string[], logProbs: ArrayLike<number>): ClassScores {
  if (candidates.length === 0 || candidates.length !== logProbs.length) {
    throw new VtokError('INVALID_INPUT', `Expected one score per candidate (${candidates.length}) but received ${logProbs.length}`);
  }
  const p = softmax(Float64Array.from(logProbs));
  const ranked = candidates.map((text, i) => ({ text, logProb: logProbs[i], prob: p[i], i }));
  ranked.sort((a, b) => b.logProb - a.logProb || a.i - b.i);
  return { best: ranked[0].text, ranked: ranked.map(({ text, logProb, prob }) => ({ text, logProb, prob })) };
}

/**
 * The record index at position `pos` of an endless stream of epochs over n
 * records, each epoch a fresh seeded permutation. A pure function of (seed,
 * pos), so a resumed run reads exactly the records an uninterrupted one would.
 */
export class EpochOrder {
  private epoch = -1;
  private order: number[] = [];
  constructor(
    readonly n: number,
    readonly seed: number,
  ) {
    if (!Number.isInteger(n) || n < 1) throw new VtokError('INVALID_INPUT', `Expected at least one training record but received ${n}`);
  }

  at(pos: number): number {
    const e = Math.floor(pos / this.n);
    if (e !== this.epoch) {
      this.epoch = e;
      this.order = new Rng(this.seed * 7919 + e * 104729 + 17).shuffle(Array.from({ length: this.n }, (_, i) => i));
    }
    return this.order[pos - e * this.n];
  }
}

/** The cells of each visual id (base codes: one cell; BPE tokens: their shape), for GridCursor. */
export function bpeShapeOf(bpe: BpeModel | undefined): VisualShapeOf | undefined {
  if (bpe === undefined) return undefined;
  const cache = new Map<number, number[]>();
  return (v: number) => {
    let s = cache.get(v);
    if (s === undefined) {
      s = bpe.shape(v).flatMap((cell) => [cell.dy, cell.dx]);
      cache.set(v, s);
    }
    return s;
  };
}

/** The code grid the streams use: the image grid, or one row for a '1d' BPE model. */
export function streamGrid(grid: { height: number; width: number }, bpe: BpeModel | undefined): { height: number; width: number } {
  return bpe !== undefined && bpe.settings.mode === '1d' ? { height: 1, width: grid.height * grid.width } : grid;
}
