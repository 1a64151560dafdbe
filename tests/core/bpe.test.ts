/**
 * Visual BPE: hand-worked examples, incremental counts against a brute-force
 * recount, round trips, determinism and the limits.
 */
import { BpeModel, BpeTrainer, CodeGrid, trainBpe } from '../../src/core/bpe';
import { BpeTrainOptions } from '../../src/core/bpe/train';
import { Rng } from '../../src/core/random';
import { readGridFile } from '../../bench/lib/bpe-corpus';
import * as path from 'node:path';

/** Random grids with a bias towards repeats (so merges have something to find). */
function randomCorpus(rng: Rng, n: number, K: number, maxSide: number): CodeGrid[] {
  const out: CodeGrid[] = [];
  for (let g = 0; g < n; g++) {
    const h = 1 + rng.int(maxSide);
    const w = 1 + rng.int(maxSide);
    const codes = new Int32Array(h * w);
    for (let i = 0; i < h * w; i++) {
      const r = rng.next();
      if (r < 0.35 && i > 0) codes[i] = codes[i - 1];
      else if (r < 0.55 && i >= w) codes[i] = codes[i - w];
      else codes[i] = rng.int(K);
    }
    out.push({ codes, h, w });
  }
  return out;
}

/**
 * Independent recount from the trainer's current tokens: lay the tokens out
 * again (first uncovered cell = next anchor), find every adjacent pair of
 * instances, and count each key by simulating the greedy raster-order merge.
 */
function bruteForcePairs(trainer: BpeTrainer, model: BpeModel, nGrids: number): Map<string, { count: number; positions: number[] }> {
  const o = trainer.options;
  const horizontal = o.directions !== 'vertical';
  const vertical = o.directions !== 'horizontal';
  const { start, h: hs, w: ws } = trainer.layout();
  const occ = new Map<string, number[]>();
  const tokAt = new Map<number, number>();
  for (let g = 0; g < nGrids; g++) {
    const H = hs[g];
    const W = ws[g];
    const owner = new Int32Array(H * W).fill(-1);
    const tokOf = new Map<number, number>();
    let cursor = 0;
    for (const t of trainer.tokens(g)) {
      while (owner[cursor] >= 0) cursor++;
      for (const c of model.shape(t)) owner[cursor + c.dy * W + c.dx] = cursor;
      tokOf.set(cursor, t);
      tokAt.set(start[g] + cursor, t);
    }
    const seen = new Set<string>();
    for (let p = 0; p < H * W; p++) {
      const y = Math.floor(p / W);
      const x = p % W;
      const nbs: number[] = [];
      if (horizontal && x + 1 < W) nbs.push(p + 1);
      if (vertical && y + 1 < H) nbs.push(p + W);
      for (const q of nbs) {
        const A = owner[p];
        const B = owner[q];
        if (A === B) continue;
        const e = Math.min(A, B);
        const l = Math.max(A, B);
        if (seen.has(`${e},${l}`)) continue;
        seen.add(`${e},${l}`);
        const a = tokOf.get(e)!;
        const b = tokOf.get(l)!;
        const dy = Math.floor(l / W) - Math.floor(e / W);
        const dx = (l % W) - (e % W);
        const size = model.shapes.mergedSize(a, b, dy, dx);
        if (size.cells > o.maxShapeCells || size.height > o.maxExtent || size.width > o.maxExtent) continue;
        const key = `${a},${b},${dy},${dx}`;
        if (!occ.has(key)) occ.set(key, []);
        occ.get(key)!.push(start[g] + e);
      }
    }
  }
  const out = new Map<string, { count: number; positions: number[] }>();
  for (const [key, ps] of occ) {
    ps.sort((x, y) => x - y);
    const [a, b, dy, dx] = key.split(',').map(Number);
    let count = 0;
    if (a !== b) {
      count = ps.length;
    } else {
      // Greedy raster-order pairing: an instance merged once is taken.
      const taken = new Set<number>();
      for (const p of ps) {
        let g = 0;
        while (start[g + 1] <= p) g++;
        const q = p + dy * ws[g] + dx;
        if (taken.has(p) || taken.has(q)) continue;
        taken.add(p);
        taken.add(q);
        count++;
      }
    }
    out.set(key, { count, positions: ps });
  }
  return out;
}

/** The key training must pick next: highest priority, then smallest (left, right, dy, dx). */
function bestKey(pairs: Map<string, { count: number; positions: number[] }>, spatial: boolean): string | null {
  const totals = new Map<string, number>();
  for (const [key, v] of pairs) {
    const ab = key.split(',').slice(0, 2).join(',');
    totals.set(ab, (totals.get(ab) ?? 0) + v.count);
  }
  let best: string | null = null;
  let bestP = 0;
  let bestK: number[] = [];
  for (const [key, v] of pairs) {
    if (v.count < 1) continue;
    const k = key.split(',').map(Number);
    const p = spatial ? (v.count * v.count) / totals.get(`${k[0]},${k[1]}`)! : v.count;
    const better = p > bestP || (p === bestP && (k[0] - bestK[0] || k[1] - bestK[1] || k[2] - bestK[2] || k[3] - bestK[3]) < 0);
    if (best === null || better) {
      best = key;
      bestP = p;
      bestK = k;
    }
  }
  return best;
}

function sortedEntries(m: Map<string, { count: number; positions: number[] }>): [string, { count: number; positions: number[] }][] {
  return [...m.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
}

describe('1D BPE, hand-worked (Wikipedia "aaabdaaabac")', () => {
  // a=0 b=1 c=2 d=3, K = 4. Counts are what a greedy left-to-right merge makes:
  //   a a a b d a a a b a c
  //   aa: each "aaa" gives 1 merge -> 2; ab: 2; bd, da, ba, ac: 1.
  //   Tie at 2 between (a,a) and (a,b): smaller right id wins -> aa = Z (4):
  //   Z a b d Z a b a c       Za: 2, ab: 2 -> tie, smaller left id: ab = Y (5)
  //   Z Y d Z Y a c           ZY: 2 -> X (6)
  //   X d X a c               every pair now 1 < minFrequency 2: stop.
  const text = 'aaabdaaabac';
  const codes = Array.from(text, (ch) => 'abcd'.indexOf(ch));

  test('merges, counts and tokens', () => {
    const model = trainBpe([{ codes, h: 1, w: 11 }], { baseVocab: 4, vocabSize: 100, mode: '1d' });
    expect(Array.from({ length: model.numMerges }, (_, r) => model.rule(r))).toEqual([
      { left: 0, right: 0, dy: 0, dx: 1, id: 4, count: 2 },
      { left: 0, right: 1, dy: 0, dx: 1, id: 5, count: 2 },
      { left: 4, right: 5, dy: 0, dx: 2, id: 6, count: 2 }, // Y's anchor is 2 cells right of Z's
    ]);
    expect(Array.from(model.encode(codes, 1, 11))).toEqual([6, 3, 6, 0, 2]);
    expect(Array.from(model.decode([6, 3, 6, 0, 2], 1, 11))).toEqual(codes);
    expect(model.shape(6)).toEqual([
      { dy: 0, dx: 0, code: 0 },
      { dy: 0, dx: 1, code: 0 },
      { dy: 0, dx: 2, code: 0 },
      { dy: 0, dx: 3, code: 1 },
    ]);
  });

  test('1D mode reads a 2D grid in raster order (rows wrap)', () => {
    const model = trainBpe([{ codes, h: 1, w: 11 }], { baseVocab: 4, vocabSize: 100, mode: '1d' });
    // "aaab" split over two rows of a 2x2 grid is still one token in 1D.
    expect(Array.from(model.encode([0, 0, 0, 1], 2, 2))).toEqual([6]);
    expect(Array.from(model.decode([6], 2, 2))).toEqual([0, 0, 0, 1]);
  });
});

describe('2D BPE, hand-worked', () => {
  // K = 3, one 3x4 grid, directions 'both':
  //   0 1 0 1
  //   2 2 2 2
  //   0 1 0 1
  // Counts: (0,1 | 0,1) = 4 (rows 0 and 2); (1,0 | 0,1) = 2; (2,2 | 0,1): a run of 4 -> 2;
  // vertical (0,2), (2,0), (1,2), (2,1) = 2 each. Top: (0,1,0,1) -> 3 = [0 1].
  //   [3 ] [3 ]          A=(0,0) B=(0,2)
  //   2  2  2  2
  //   [3 ] [3 ]          C=(2,0) D=(2,2)
  // Now every key has count 2: (3,3,0,2) (A-B, C-D), (2,2,0,1), (3,2,1,0), (3,2,1,1),
  // (2,3,1,0), (2,3,1,-1). Tie-break: smallest left id 2, then right id 2 -> (2,2,0,1) -> 4 = [2 2];
  // greedily from the left, row 1 becomes [4 ][4 ].
  // Then (3,3,0,2) = 2, (3,4,1,0) = 2, (4,3,1,0) = 2, (4,4,0,2) = 1 -> (3,3,0,2) -> 5 = [0 1 0 1].
  // Left: 5 / 4 4 / 5, all pairs once: stop (minFrequency 2).
  const codes = [0, 1, 0, 1, 2, 2, 2, 2, 0, 1, 0, 1];

  test('merges, counts, shapes and tokens', () => {
    const model = trainBpe([{ codes, h: 3, w: 4 }], { baseVocab: 3, vocabSize: 100 });
    expect(Array.from({ length: model.numMerges }, (_, r) => model.rule(r))).toEqual([
      { left: 0, right: 1, dy: 0, dx: 1, id: 3, count: 4 },
      { left: 2, right: 2, dy: 0, dx: 1, id: 4, count: 2 },
      { left: 3, right: 3, dy: 0, dx: 2, id: 5, count: 2 },
    ]);
    expect(Array.from(model.encode(codes, 3, 4))).toEqual([5, 4, 4, 5]);
    expect(Array.from(model.decode([5, 4, 4, 5], 3, 4))).toEqual(codes);
  });

  test('vertical merges make shapes that hang below and to the left of the anchor', () => {
    //   0 1      (1 over 2) and (0 over 2) columns; with directions 'vertical' only,
    //   2 2      the pairs are (0,2,1,0) and (1,2,1,0), each once per grid.
    const g: CodeGrid = { codes: [0, 1, 2, 2], h: 2, w: 2 };
    const model = trainBpe([g, g, g], { baseVocab: 3, vocabSize: 5, directions: 'vertical' });
    expect(Array.from({ length: model.numMerges }, (_, r) => model.rule(r))).toEqual([
      { left: 0, right: 2, dy: 1, dx: 0, id: 3, count: 3 },
      { left: 1, right: 2, dy: 1, dx: 0, id: 4, count: 3 },
    ]);
    expect(Array.from(model.encode([0, 1, 2, 2], 2, 2))).toEqual([3, 4]);
  });
});

describe('incremental pair statistics', () => {
  const settings: [string, Partial<BpeTrainOptions>][] = [
    ['2d both', {}],
    ['2d horizontal', { directions: 'horizontal' }],
    ['2d vertical', { directions: 'vertical' }],
    ['1d', { mode: '1d' }],
    ['2d limited shapes', { maxShapeCells: 5, maxExtent: 3 }],
    ['2d spatial', { priority: 'spatial' }],
  ];
  test.each(settings)('equal a brute-force recount after every merge (%s)', (_name, extra) => {
    for (let seed = 1; seed <= 3; seed++) {
      const rng = new Rng(seed * 7919);
      const corpus = randomCorpus(rng, 12, 3 + (seed % 3), 7);
      const trainer = new BpeTrainer(corpus, { baseVocab: 6, merges: 40, minFrequency: 1, ...extra });
      let steps = 0;
      for (;;) {
        const model = trainer.model();
        const expected = bruteForcePairs(trainer, model, corpus.length);
        expect(sortedEntries(trainer.debugPairs())).toEqual(sortedEntries(expected));
        // The trainer's corpus is exactly what the model's encoder makes.
        for (let g = 0; g < corpus.length; g++) {
          expect(Array.from(model.encode(corpus[g].codes, corpus[g].h, corpus[g].w))).toEqual(Array.from(trainer.tokens(g)));
        }
        // The next merge is the best key by the documented priority and tie-break.
        const best = bestKey(expected, extra.priority === 'spatial');
        const before = trainer.numMerges;
        const stepped = trainer.step();
        expect(stepped).toBe(best !== null && before < 40);
        if (!stepped) break;
        const r = trainer.model().rule(before);
        expect(`${r.left},${r.right},${r.dy},${r.dx}`).toBe(best);
        steps++;
      }
      expect(steps).toBeGreaterThan(5);
    }
  });

  test('position pool compaction (forced by a full pool) keeps positions and counts exact', () => {
    const corpus = randomCorpus(new Rng(424242), 15, 4, 8);
    const trainer = new BpeTrainer(corpus, { baseVocab: 4, merges: 60, minFrequency: 1 });
    // White box: shrink the pool to what the initial pairs use, so that the first new pair compacts it.
    const internals = trainer as unknown as { nodePos: Int32Array; nodeNext: Int32Array; poolUsed: number };
    internals.nodePos = internals.nodePos.slice(0, internals.poolUsed);
    internals.nodeNext = internals.nodeNext.slice(0, internals.poolUsed);
    let compactions = 0;
    let cap = internals.nodePos.length;
    while (trainer.step()) {
      if (internals.nodePos.length !== cap || internals.poolUsed < cap / 4) compactions++;
      cap = internals.nodePos.length;
      expect(sortedEntries(trainer.debugPairs())).toEqual(sortedEntries(bruteForcePairs(trainer, trainer.model(), corpus.length)));
    }
    expect(compactions).toBeGreaterThan(0);
    for (let g = 0; g < corpus.length; g++) {
      expect(Array.from(trainer.model().encode(corpus[g].codes, corpus[g].h, corpus[g].w))).toEqual(Array.from(trainer.tokens(g)));
    }
  });

  test('a merged key has no occurrences left, and each merge removes exactly its count of tokens', () => {
    const corpus = randomCorpus(new Rng(5), 30, 4, 9);
    const trainer = new BpeTrainer(corpus, { baseVocab: 4, merges: 60, minFrequency: 1 });
    let tokens = trainer.totalTokens();
    while (trainer.step()) {
      const r = trainer.model().rule(trainer.numMerges - 1);
      const after = trainer.totalTokens();
      expect(tokens - after).toBe(r.count);
      tokens = after;
      const state = trainer.debugPairs().get(`${r.left},${r.right},${r.dy},${r.dx}`);
      expect(state?.count ?? 0).toBe(0);
      expect(state?.positions ?? []).toEqual([]);
    }
  });
});

describe('round trips', () => {
  test('decode(encode(g)) == g for 10,000 seeded random grids (2D and 1D models)', () => {
    const rng = new Rng(2026);
    const train = randomCorpus(rng, 200, 8, 12);
    const m2 = trainBpe(train, { baseVocab: 8, vocabSize: 300 });
    const m1 = trainBpe(train, { baseVocab: 8, vocabSize: 300, mode: '1d' });
    const mh = trainBpe(train, { baseVocab: 8, vocabSize: 200, directions: 'horizontal', maxShapeCells: 6 });
    expect(m2.vocabSize).toBe(300);
    let tokens2 = 0;
    let cells = 0;
    for (let i = 0; i < 10000; i++) {
      const h = 1 + rng.int(20);
      const w = 1 + rng.int(20);
      const codes = new Int32Array(h * w);
      for (let j = 0; j < h * w; j++) {
        const r = rng.next();
        codes[j] = r < 0.4 && j > 0 ? codes[j - 1] : r < 0.6 && j >= w ? codes[j - w] : rng.int(8);
      }
      const model = i % 3 === 0 ? m2 : i % 3 === 1 ? m1 : mh;
      const ids = model.encode(codes, h, w);
      const back = model.decode(ids, h, w);
      if (!back.every((v, j) => v === codes[j])) throw new Error(`round trip failed for grid ${i} (${h}x${w})`);
      if (model === m2) {
        tokens2 += ids.length;
        cells += h * w;
      }
    }
    expect(tokens2).toBeLessThan(cells * 0.8); // the 2D model does compress
  });

  test('grids from real images (fixture): round trip, and the encoder equals the trainer corpus', async () => {
    const { header, codes } = await readGridFile(path.join(__dirname, '../fixtures/bpe/real-grids-64.bin'));
    expect(header).toMatchObject({ count: 64, h: 16, w: 16, baseVocab: 1024 });
    const grids: CodeGrid[] = Array.from({ length: 64 }, (_, g) => ({ codes: codes.subarray(g * 256, (g + 1) * 256), h: 16, w: 16 }));
    const train = grids.slice(0, 48);
    for (const extra of [{}, { mode: '1d' as const }, { priority: 'spatial' as const, maxShapeCells: 8 }]) {
      const trainer = new BpeTrainer(train, { baseVocab: 1024, vocabSize: 1024 + 300, minFrequency: 1, ...extra });
      const model = trainer.train();
      let tokens = 0;
      grids.forEach((g, i) => {
        const ids = model.encode(g.codes, 16, 16);
        tokens += ids.length;
        if (i < 48) expect(Array.from(ids)).toEqual(Array.from(trainer.tokens(i)));
        expect(Array.from(model.decode(ids, 16, 16))).toEqual(Array.from(g.codes));
      });
      expect(tokens).toBeLessThan(64 * 256);
    }
  });

  test('a large base vocabulary (K > 2048: no direct base-pair tables) trains and encodes the same way', () => {
    const rng = new Rng(31);
    const small = randomCorpus(rng, 40, 6, 10);
    // Same corpus with every code shifted into a K = 5000 vocabulary: identical merges up to the shift.
    const big = small.map((g) => ({ ...g, codes: Int32Array.from(g.codes, (c) => c + 4990) }));
    const trainer = new BpeTrainer(big, { baseVocab: 5000, merges: 50 });
    const model = trainer.train();
    const ref = trainBpe(small, { baseVocab: 6, merges: 50 });
    expect(model.numMerges).toBe(ref.numMerges);
    for (let r = 0; r < ref.numMerges; r++) {
      const x = ref.rule(r);
      const shift = (id: number): number => (id < 6 ? id + 4990 : id - 6 + 5000);
      expect(model.rule(r)).toEqual({ ...x, left: shift(x.left), right: shift(x.right), id: shift(x.id) });
    }
    big.forEach((g, i) => {
      const ids = model.encode(g.codes, g.h, g.w);
      expect(Array.from(ids)).toEqual(Array.from(trainer.tokens(i)));
      expect(Array.from(model.decode(ids, g.h, g.w))).toEqual(Array.from(g.codes));
    });
  });

  test('structured grids: constant, stripes, checkerboard, gradient; encoder output equals the trainer corpus', () => {
    const grids: CodeGrid[] = [];
    const make = (h: number, w: number, f: (y: number, x: number) => number): CodeGrid => {
      const codes = new Int32Array(h * w);
      for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) codes[y * w + x] = f(y, x);
      return { codes, h, w };
    };
    for (const [h, w] of [[16, 16], [5, 9], [1, 13], [13, 1], [2, 2]]) {
      grids.push(make(h, w, () => 3));
      grids.push(make(h, w, (y) => y % 4));
      grids.push(make(h, w, (_y, x) => x % 3));
      grids.push(make(h, w, (y, x) => (y + x) % 2));
      grids.push(make(h, w, (y, x) => Math.min(9, (y + 2 * x) >> 2)));
    }
    for (const extra of [{}, { mode: '1d' as const }, { directions: 'vertical' as const }, { priority: 'spatial' as const }]) {
      const trainer = new BpeTrainer(grids, { baseVocab: 10, vocabSize: 120, ...extra });
      const model = trainer.train();
      grids.forEach((g, i) => {
        const ids = model.encode(g.codes, g.h, g.w);
        expect(Array.from(ids)).toEqual(Array.from(trainer.tokens(i)));
        expect(Array.from(model.decode(ids, g.h, g.w))).toEqual(Array.from(g.codes));
      });
    }
    // A constant 16x16 grid compresses to a handful of tokens.
    const model = trainBpe(grids, { baseVocab: 10, vocabSize: 120 });
    expect(model.encode(grids[0].codes, 16, 16).length).toBeLessThanOrEqual(4);
  });

  test('save/load: toJSON -> fromJSON (typed arrays, and plain arrays after JSON) gives the same model', () => {
    const corpus = randomCorpus(new Rng(9), 60, 6, 10);
    const model = trainBpe(corpus, { baseVocab: 6, vocabSize: 150, priority: 'spatial', maxShapeCells: 12 });
    const data = model.toJSON();
    expect(data.format).toBe('vtok-bpe');
    expect(data.version).toBe(1);
    expect(data.merges.left).toBeInstanceOf(Int32Array);
    const viaJson = JSON.parse(JSON.stringify({ ...data, merges: Object.fromEntries(Object.entries(data.merges).map(([k, v]) => [k, Array.from(v)])) }));
    for (const copy of [BpeModel.fromJSON(data), BpeModel.fromJSON(viaJson)]) {
      expect(copy.vocabSize).toBe(model.vocabSize);
      expect(copy.settings).toEqual(model.settings);
      expect(copy.toJSON()).toEqual(data);
      for (const g of corpus) expect(Array.from(copy.encode(g.codes, g.h, g.w))).toEqual(Array.from(model.encode(g.codes, g.h, g.w)));
    }
  });
});

describe('training options', () => {
  test('training is deterministic (same corpus, same options -> identical merges)', () => {
    const corpus = randomCorpus(new Rng(77), 80, 10, 12);
    const a = trainBpe(corpus, { baseVocab: 10, vocabSize: 200 }).toJSON();
    const b = trainBpe(corpus.map((g) => ({ ...g, codes: Array.from(g.codes) })), { baseVocab: 10, vocabSize: 200 }).toJSON();
    expect(b).toEqual(a);
  });

  test('maxShapeCells and maxExtent bound every shape; directions bound offsets', () => {
    const corpus = randomCorpus(new Rng(3), 80, 3, 12);
    const model = trainBpe(corpus, { baseVocab: 3, vocabSize: 400, minFrequency: 1, maxShapeCells: 4, maxExtent: 3 });
    expect(model.numMerges).toBeGreaterThan(50);
    for (let t = 3; t < model.vocabSize; t++) {
      const cells = model.shape(t);
      expect(cells.length).toBeLessThanOrEqual(4);
      expect(Math.max(...cells.map((c) => c.dy)) + 1).toBeLessThanOrEqual(3);
      expect(Math.max(...cells.map((c) => c.dx)) - Math.min(...cells.map((c) => c.dx)) + 1).toBeLessThanOrEqual(3);
    }
    const horiz = trainBpe(corpus, { baseVocab: 3, vocabSize: 100, directions: 'horizontal' });
    for (let t = 3; t < horiz.vocabSize; t++) expect(horiz.shape(t).every((c) => c.dy === 0)).toBe(true);
    const vert = trainBpe(corpus, { baseVocab: 3, vocabSize: 100, directions: 'vertical' });
    for (let t = 3; t < vert.vocabSize; t++) expect(vert.shape(t).every((c) => c.dx === 0)).toBe(true);
  });

  test('vocabSize counts distinct shapes; a shape made twice keeps one id (merges may outnumber new ids)', () => {
    const corpus = randomCorpus(new Rng(11), 100, 3, 10);
    const model = trainBpe(corpus, { baseVocab: 3, vocabSize: 250, minFrequency: 1 });
    expect(model.vocabSize).toBe(250);
    expect(model.numMerges).toBeGreaterThanOrEqual(247);
    const seen = new Set<string>();
    for (let t = 0; t < model.vocabSize; t++) {
      const key = JSON.stringify(model.shape(t));
      expect(seen.has(key)).toBe(false);
      seen.add(key);
    }
  });

  test('spatial priority prefers a pair that keeps one arrangement over a more frequent scattered one', () => {
    // (0 then 1) side by side 5 times and stacked 5 times: F = 5 at each offset, consistency 5/10 -> 2.5.
    // (2 then 3) side by side 4 times, never otherwise: F = 4, consistency 1 -> 4.
    // Frequency picks (0,1,0,1) (5 > 4; (0,1,0,1) before (0,1,1,0) by the tie-break); spatial picks (2,3,0,1).
    const side: CodeGrid = { codes: [0, 1], h: 1, w: 2 };
    const stacked: CodeGrid = { codes: [0, 1], h: 2, w: 1 };
    const other: CodeGrid = { codes: [2, 3], h: 1, w: 2 };
    const corpus = [...Array(5).fill(side), ...Array(5).fill(stacked), ...Array(4).fill(other)];
    const freq = trainBpe(corpus, { baseVocab: 4, merges: 1 });
    const spatial = trainBpe(corpus, { baseVocab: 4, merges: 1, priority: 'spatial' });
    expect(freq.rule(0)).toEqual({ left: 0, right: 1, dy: 0, dx: 1, id: 4, count: 5 });
    expect(spatial.rule(0)).toEqual({ left: 2, right: 3, dy: 0, dx: 1, id: 4, count: 4 });
  });

  test('minFrequency stops training when no pair is frequent enough', () => {
    const model = trainBpe([{ codes: [0, 1, 2, 3], h: 2, w: 2 }], { baseVocab: 4, vocabSize: 50 });
    expect(model.numMerges).toBe(0);
    expect(Array.from(model.encode([0, 1, 2, 3], 2, 2))).toEqual([0, 1, 2, 3]);
  });
});

describe('bad input gives exact errors', () => {
  const model = trainBpe([{ codes: [0, 1, 0, 1, 2, 2, 2, 2, 0, 1, 0, 1], h: 3, w: 4 }], { baseVocab: 3, vocabSize: 100 });
  // ids: 3 = [0 1], 4 = [2 2], 5 = [0 1 0 1]
  const err = (f: () => unknown): { code: string; message: string } => {
    try {
      f();
    } catch (e) {
      const v = e as { code: string; message: string };
      return { code: v.code, message: v.message };
    }
    throw new Error('expected an error');
  };

  test('decode', () => {
    expect(err(() => model.decode([5, 4, 6, 5], 3, 4))).toEqual({ code: 'BPE', message: 'Token 6 of type number at position 2 is outside the vocabulary 0..5' });
    expect(err(() => model.decode([5, -1], 3, 4))).toEqual({ code: 'BPE', message: 'Token -1 of type number at position 1 is outside the vocabulary 0..5' });
    expect(err(() => model.decode([5, 1.5], 3, 4))).toEqual({ code: 'BPE', message: 'Token 1.5 of type number at position 1 is outside the vocabulary 0..5' });
    expect(err(() => model.decode([5, 4, 4], 3, 4))).toEqual({
      code: 'BPE',
      message: 'Token sequence of length 3 ends before the 3x4 grid is covered: 4 cells uncovered, the first at row 2, column 0',
    });
    expect(err(() => model.decode([5, 4, 4, 5, 0], 3, 4))).toEqual({
      code: 'BPE',
      message: 'Token 0 at position 4 is past the end: the 3x4 grid is already full after 4 tokens',
    });
    expect(err(() => model.decode([0, 5, 4, 4, 5], 3, 4))).toEqual({
      code: 'BPE',
      message: 'Token 5 at position 1 (anchor row 0, column 1) reaches outside the 3x4 grid at offset (0, 3)',
    });
    expect(err(() => model.decode([5, 4, 4, 0, 5], 3, 4))).toEqual({
      code: 'BPE',
      message: 'Token 5 at position 4 (anchor row 2, column 1) reaches outside the 3x4 grid at offset (0, 3)',
    });
    expect(err(() => model.decode([], 0, 4))).toEqual({
      code: 'BPE',
      message: 'Expected grid size h, w as integers between 1 and 32767 for decode but received 0 of type number x 4 of type number',
    });
  });

  test('decode: a shape that reaches into a covered cell', () => {
    // id 6 = a vertical pair of 0 over 2 hanging left: (0,0)=1, (1,-1)=2.
    const m = new BpeModel(model.settings, {
      left: Int32Array.from([1]),
      right: Int32Array.from([2]),
      dy: Int32Array.from([1]),
      dx: Int32Array.from([-1]),
      id: Int32Array.from([3]),
      count: Int32Array.from([0]),
    });
    expect(Array.from(m.decode([0, 3, 0], 2, 2))).toEqual([0, 1, 2, 0]);
    expect(err(() => m.decode([0, 0, 3, 0], 2, 2))).toEqual({
      code: 'BPE',
      message: 'Token 3 at position 2 (anchor row 1, column 0) reaches outside the 2x2 grid at offset (1, -1)',
    });
    expect(err(() => m.decode([3], 2, 2))).toEqual({
      code: 'BPE',
      message: 'Token 3 at position 0 (anchor row 0, column 0) reaches outside the 2x2 grid at offset (1, -1)',
    });
    // With id 4 = a vertical [0 / 0], the next anchor's shape can reach a covered cell.
    const m2 = new BpeModel(model.settings, {
      left: Int32Array.from([1, 0]),
      right: Int32Array.from([2, 0]),
      dy: Int32Array.from([1, 1]),
      dx: Int32Array.from([-1, 0]),
      id: Int32Array.from([3, 4]),
      count: Int32Array.from([0, 0]),
    });
    expect(err(() => m2.decode([4, 3], 2, 2))).toEqual({
      code: 'BPE',
      message: 'Token 3 at position 1 (anchor row 0, column 1) covers row 1, column 0, which is already covered',
    });
  });

  test('encode', () => {
    expect(err(() => model.encode([0, 1, 2], 2, 2))).toEqual({
      code: 'BPE',
      message: 'Expected a grid of 2x2 = 4 codes for encode but received an array of length 3',
    });
    expect(err(() => model.encode([0, 1, 3, 0], 2, 2))).toEqual({
      code: 'BPE',
      message: 'Code 3 of type number at cell 2 (row 1, column 0) is not a base code 0..2',
    });
  });

  test('options and model data', () => {
    expect(err(() => trainBpe([], { baseVocab: 4 }))).toEqual({
      code: 'INVALID_OPTION',
      message: 'Expected a vocabulary size or a number of merges (integer >= 1) for vocabSize but received 0 of type number',
    });
    expect(err(() => trainBpe([], { baseVocab: 4, vocabSize: 3 }))).toEqual({
      code: 'INVALID_OPTION',
      message: 'Expected integer >= baseVocab (4) for vocabSize but received 3 of type number',
    });
    expect(err(() => trainBpe([], { baseVocab: 4, merges: 3, mode: '1d', directions: 'both' }))).toEqual({
      code: 'INVALID_OPTION',
      message: 'Expected "horizontal" in mode "1d" for directions but received "both" of type string',
    });
    expect(err(() => trainBpe([], { baseVocab: 4, merges: 3, priority: 'fast' as never }))).toEqual({
      code: 'INVALID_OPTION',
      message: 'Expected one of "frequency", "spatial" for priority but received "fast" of type string',
    });
    expect(err(() => trainBpe([], { baseVocab: 4, merges: 3, vocab: 5 } as never))).toEqual({
      code: 'INVALID_OPTION',
      message:
        'Unknown option "vocab" for trainBpe; known options are baseVocab, vocabSize, merges, mode, directions, minFrequency, maxShapeCells, maxExtent, priority',
    });
    expect(err(() => trainBpe([{ codes: [0, 9], h: 1, w: 2 }], { baseVocab: 4, merges: 3 }))).toEqual({
      code: 'BPE',
      message: 'Code 9 of type number at cell 1 of corpus grid 0 is not a base code 0..3',
    });
    const data = model.toJSON();
    expect(err(() => BpeModel.fromJSON({ ...data, format: 'x' }))).toEqual({
      code: 'BPE',
      message: 'Invalid BPE model: expected format "vtok-bpe" but received "x" of type string',
    });
    expect(err(() => BpeModel.fromJSON({ ...data, version: 2 }))).toEqual({
      code: 'STORE_VERSION',
      message: 'BPE model version 2 of type number is not supported; this vtok reads version 1',
    });
    expect(err(() => BpeModel.fromJSON({ ...data, merges: { ...data.merges, left: Int32Array.from([0, 7, 3]) } }))).toEqual({
      code: 'BPE',
      message: 'Invalid BPE model: merge 1 joins ids 7 and 2 but only ids 0..3 exist at that point',
    });
    expect(err(() => BpeModel.fromJSON({ ...data, merges: { ...data.merges, id: Int32Array.from([3, 9, 5]) } }))).toEqual({
      code: 'BPE',
      message: 'Invalid BPE model: merge 1 makes id 4 but records id 9',
    });
    expect(err(() => BpeModel.fromJSON({ ...data, merges: { ...data.merges, dx: Int32Array.from([1, 0, 2]) } }))).toEqual({
      code: 'BPE',
      message: 'Invalid BPE model: merge 1: Merge offset (0, 0) must come after the anchor in raster order',
    });
    expect(err(() => BpeModel.fromJSON({ ...data, merges: { ...data.merges, dx: Int32Array.from([1, 1, 1]) } }))).toEqual({
      code: 'BPE',
      message: 'Invalid BPE model: merge 2: Merge of ids 3 and 3 at offset (0, 1) overlaps at cell (0, 1)',
    });
    expect(err(() => BpeModel.fromJSON({ ...data, vocabSize: 7 }))).toEqual({
      code: 'BPE',
      message: 'Invalid BPE model: vocabSize is 7 of type number but the merges make 6 ids',
    });
    expect(err(() => BpeModel.fromJSON({ ...data, merges: { ...data.merges, count: Int32Array.from([1]) } }))).toEqual({
      code: 'BPE',
      message: 'Invalid BPE model: merges.count has length 1, expected 3',
    });
  });
});
