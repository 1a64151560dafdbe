/**
 * The trainer's speed-ups change no result: merges (rules, ids, counts, order)
 * equal those of the trainer before them (commit a89a9ae), pinned in
 * tests/fixtures/bpe/merges-reference.json for the cases of
 * tests/helpers/bpe-merge-cases.ts. With VTOK_BPE_BENCH=1 and the benchmark
 * corpus present (npm run bpe:corpus), also the 30,000-id runs of
 * `npm run bench:bpe` (2D and 1D; slow: about 10 s).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { BpeModel, BpeTrainer, CodeGrid } from '../../src/core/bpe';
import { readGridFile } from '../../bench/lib/bpe-corpus';
import { mergeCases, mergeRows } from '../helpers/bpe-merge-cases';
import { Rng } from '../../src/core/random';

const reference = JSON.parse(readFileSync(path.join(__dirname, '../fixtures/bpe/merges-reference.json'), 'utf8')) as { cases: Record<string, number[][]> };

describe('merges equal the reference trainer', () => {
  test('every pinned case', async () => {
    const cases = await mergeCases();
    expect(cases.map((c) => c.name).sort()).toEqual(Object.keys(reference.cases).sort());
    for (const c of cases) {
      const rows = mergeRows(new BpeTrainer(c.corpus, c.options).train());
      const want = reference.cases[c.name];
      // First differing merge, named, before the whole list.
      const r = rows.findIndex((row, i) => JSON.stringify(row) !== JSON.stringify(want[i]));
      expect({ name: c.name, firstDifference: r, row: rows[r], want: want[r] }).toEqual({ name: c.name, firstDifference: -1, row: undefined, want: undefined });
      expect(rows.length).toBe(want.length);
    }
  });

  const corpusFile = path.join(__dirname, '../../bench/out/bpe-corpus.bin');
  const bench = process.env.VTOK_BPE_BENCH === '1' && existsSync(corpusFile) ? test : test.skip;
  bench('benchmark corpus, 30,000 ids (VTOK_BPE_BENCH=1)', async () => {
    const { header, codes } = await readGridFile(corpusFile);
    const n = header.h * header.w;
    const corpus: CodeGrid[] = Array.from({ length: header.count }, (_, g) => ({ codes: codes.subarray(g * n, (g + 1) * n), h: header.h, w: header.w }));
    // sha256 of JSON {left, right, dy, dx, id, count} (plain arrays) from the reference trainer.
    const want = {
      '2d': '0205e2cf093f8623d11056a42d984d54f8a285cae28c390697e353d52e0b5697',
      '1d': 'c1e99ac53478229d7d5a189f2e6378aa0b458724f3889fa3b5d42409dc2d5839',
    };
    const digest = (model: BpeModel): string => {
      const m = model.merges;
      const plain = { left: Array.from(m.left), right: Array.from(m.right), dy: Array.from(m.dy), dx: Array.from(m.dx), id: Array.from(m.id), count: Array.from(m.count) };
      return createHash('sha256').update(JSON.stringify(plain)).digest('hex');
    };
    for (const mode of ['2d', '1d'] as const) {
      const model = new BpeTrainer(corpus, { baseVocab: header.baseVocab, vocabSize: 30000, mode, minFrequency: 1 }).train();
      expect(model.numMerges).toBe(28976);
      expect(digest(model)).toBe(want[mode]);
    }
  });
});

describe('per-step key table', () => {
  // White box: a shape made again by a later merge (rare) starts its step with the keys it is
  // already part of loaded into the per-step table; every one must be found, none made twice.
  test('a token made again finds each of its existing keys, and makes no duplicate', () => {
    const rng = new Rng(99);
    const corpus: CodeGrid[] = [];
    for (let g = 0; g < 30; g++) {
      const codes = new Int32Array(64);
      for (let i = 0; i < 64; i++) codes[i] = rng.next() < 0.5 && i > 0 ? codes[i - 1] : rng.int(3);
      corpus.push({ codes, h: 8, w: 8 });
    }
    const trainer = new BpeTrainer(corpus, { baseVocab: 3, merges: 40, minFrequency: 1 });
    trainer.train();
    type Internals = {
      keys: { ka: Int32Array; kb: Int32Array; kc: Int32Array; size: number };
      beginStepKeys(t: number, reused: boolean): void;
      stepKey(ty: number, before: number, dy: number, dx: number): number;
    };
    const w = trainer as unknown as Internals;
    const offDy = (off: number): number => Math.floor(off / 65536);
    const offDx = (off: number): number => (off % 65536) - 32768;
    let checked = 0;
    for (let t = 3; t < trainer.vocabSize; t++) {
      w.beginStepKeys(t, true);
      const size = w.keys.size;
      for (let k = 0; k < size; k++) {
        const a = w.keys.ka[k];
        const b = w.keys.kb[k];
        if (a !== t && b !== t) continue;
        const dy = offDy(w.keys.kc[k]);
        const dx = offDx(w.keys.kc[k]);
        // (t, b): t is earlier (before = 0); (a, t): the neighbour a is earlier (before = 1).
        expect(a === t ? w.stepKey(b, 0, dy, dx) : w.stepKey(a, 1, dy, dx)).toBe(k);
        if (a === t && b === t) expect(w.stepKey(t, 1, dy, dx)).toBe(k); // one self key either way
        checked++;
      }
      expect(w.keys.size).toBe(size);
    }
    expect(checked).toBeGreaterThan(100);
  });
});
