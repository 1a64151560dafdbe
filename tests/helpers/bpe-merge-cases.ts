/**
 * Training cases whose merges are pinned by tests/fixtures/bpe/merges-reference.json
 * (made by the trainer before its speed-up, commit a89a9ae): seeded random
 * grids in every option combination, plus the real-image fixture grids.
 * tests/core/bpe-merges.test.ts checks that the trainer still learns exactly
 * these merges (same rules, ids, counts and order).
 */
import * as path from 'node:path';
import { BpeModel, CodeGrid } from '../../src/core/bpe';
import { BpeTrainOptions } from '../../src/core/bpe/train';
import { Rng } from '../../src/core/random';
import { readGridFile } from '../../bench/lib/bpe-corpus';

export interface MergeCase {
  name: string;
  corpus: CodeGrid[];
  options: Partial<BpeTrainOptions>;
}

/** Random grids biased towards repeats (left neighbour with probability pl, upper with pu - pl). */
function randomGrids(seed: number, n: number, K: number, maxSide: number, sameSize: boolean, pl = 0.35, pu = 0.55): CodeGrid[] {
  const rng = new Rng(seed);
  const out: CodeGrid[] = [];
  for (let g = 0; g < n; g++) {
    const h = sameSize ? maxSide : 1 + rng.int(maxSide);
    const w = sameSize ? maxSide : 1 + rng.int(maxSide);
    const codes = new Int32Array(h * w);
    for (let i = 0; i < h * w; i++) {
      const r = rng.next();
      if (r < pl && i > 0) codes[i] = codes[i - 1];
      else if (r < pu && i >= w) codes[i] = codes[i - w];
      else codes[i] = rng.int(K);
    }
    out.push({ codes, h, w });
  }
  return out;
}

export async function mergeCases(): Promise<MergeCase[]> {
  const cases: MergeCase[] = [];
  const add = (name: string, corpus: CodeGrid[], options: Partial<BpeTrainOptions>): void => void cases.push({ name, corpus, options });
  for (const seed of [1]) {
    add(`2d default, mixed sizes (seed ${seed})`, randomGrids(seed, 60, 24, 16, false), { baseVocab: 24, vocabSize: 400 });
    add(`2d minFrequency 1, 16x16 (seed ${seed})`, randomGrids(100 + seed, 60, 64, 16, true), { baseVocab: 64, vocabSize: 700, minFrequency: 1 });
    add(`2d K 3000 (no base-pair table) (seed ${seed})`, randomGrids(200 + seed, 40, 3000, 16, true), { baseVocab: 3000, vocabSize: 3400, minFrequency: 1 });
    add(`2d spatial (seed ${seed})`, randomGrids(300 + seed, 60, 16, 16, false), { baseVocab: 16, vocabSize: 350, priority: 'spatial' });
    add(`2d shape limits (seed ${seed})`, randomGrids(400 + seed, 60, 16, 16, false), { baseVocab: 16, vocabSize: 350, maxShapeCells: 5, maxExtent: 3 });
    add(`2d horizontal (seed ${seed})`, randomGrids(500 + seed, 60, 16, 16, false), { baseVocab: 16, vocabSize: 250, directions: 'horizontal' });
    add(`2d vertical (seed ${seed})`, randomGrids(600 + seed, 60, 16, 16, false), { baseVocab: 16, vocabSize: 250, directions: 'vertical' });
    add(`1d (seed ${seed})`, randomGrids(700 + seed, 60, 24, 16, false), { baseVocab: 24, vocabSize: 350, mode: '1d' });
    add(`2d K 2, long run to exhaustion (seed ${seed})`, randomGrids(800 + seed, 20, 2, 24, false), { baseVocab: 2, merges: 3000, minFrequency: 1 });
    add(`2d K 3, blocky, spatial (seed ${seed})`, randomGrids(900 + seed, 40, 3, 24, false, 0.45, 0.92), { baseVocab: 3, merges: 500, minFrequency: 1, priority: 'spatial' });
  }
  const { codes } = await readGridFile(path.join(__dirname, '../fixtures/bpe/real-grids-64.bin'));
  const real: CodeGrid[] = Array.from({ length: 64 }, (_, g) => ({ codes: codes.subarray(g * 256, (g + 1) * 256), h: 16, w: 16 }));
  add('real grids 2d', real, { baseVocab: 1024, vocabSize: 1024 + 500, minFrequency: 1 });
  add('real grids 1d', real, { baseVocab: 1024, vocabSize: 1024 + 500, minFrequency: 1, mode: '1d' });
  return cases;
}

/** A model's merges as rows [left, right, dy, dx, id, count], in order. */
export function mergeRows(model: BpeModel): number[][] {
  const m = model.merges;
  return Array.from(m.left, (l, r) => [l, m.right[r], m.dy[r], m.dx[r], m.id[r], m.count[r]]);
}
