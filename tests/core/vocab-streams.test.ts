import {
  GridCursor,
  anchorsOf,
  buildExamples,
  generationExample,
  generationPrompt,
  packBatch,
  streamController,
  understandingExample,
  understandingPrompt,
} from '../../src/core/ar-streams';
import { Rng } from '../../src/core/random';
import { Vocab } from '../../src/core/vocab';
import { Letters } from '../helpers/letters';


// Specials 0..6, text 7..32, visual 33..38: base codes 0..3, merge 4 = horizontal pair, merge 5 = vertical pair.
const vocab = Vocab.create({ text: new Letters(), visual: { baseCodes: 4, merges: 2 } });
const SHAPES: Record<number, number[]> = { 4: [0, 0, 0, 1], 5: [0, 0, 1, 0] };
const shapeOf = (v: number): number[] => SHAPES[v] ?? [0, 0];
const V = (v: number): number => 33 + v;
const T = (ch: string): number => 7 + ch.charCodeAt(0) - 97;

describe('GridCursor and anchorsOf', () => {
  it('place BPE shapes at the first uncovered cell (hand-worked 2x3 grid)', () => {
    // [4 at (0,0) covers (0,0),(0,1)] [5 at (0,2) covers (0,2),(1,2)] [0 at (1,0)] [1 at (1,1)]
    expect(Array.from(anchorsOf([4, 5, 0, 1], { height: 2, width: 3 }, shapeOf))).toEqual([0, 0, 0, 2, 1, 0, 1, 1]);
    // [5 at (0,0) covers (0,0),(1,0)] [1 at (0,1)] [2 at (1,1)]: three tokens for four cells.
    expect(Array.from(anchorsOf([5, 1, 2], { height: 2, width: 2 }, shapeOf))).toEqual([0, 0, 0, 1, 1, 1]);
    // Base codes only: raster order.
    expect(Array.from(anchorsOf([3, 3, 3, 3], { height: 2, width: 2 }))).toEqual([0, 0, 0, 1, 1, 0, 1, 1]);
  });

  it('refuses shapes that leave the grid or overlap, and images that do not cover it', () => {
    const c = new GridCursor({ height: 2, width: 3 }, shapeOf);
    c.place(0);
    c.place(0);
    expect(c.fits(4)).toBe(false);
    expect(() => c.place(4)).toThrow('Visual id 4 does not fit the 2x3 grid: cell (0, 3) of its shape at anchor (0, 2) is outside the grid');
    expect(c.fits(5)).toBe(true);
    c.place(5);
    expect(c.anchor()).toEqual([1, 0]);
    c.place(4); // (1,0),(1,1)
    expect(c.done).toBe(true);
    expect(() => c.place(0)).toThrow('Visual id 0 does not fit the 2x3 grid: the grid is already full');
    const d = new GridCursor({ height: 2, width: 2 }, shapeOf);
    d.place(5); // (0,0),(1,0)
    d.place(0); // (0,1)
    expect(d.anchor()).toEqual([1, 1]);
    expect(() => d.place(5)).toThrow('Visual id 5 does not fit the 2x2 grid: cell (2, 1) of its shape at anchor (1, 1) is outside the grid');
    expect(() => anchorsOf([0, 1, 2], { height: 2, width: 2 })).toThrow('Image of 3 visual ids leaves cell (1, 1) of the 2x2 grid uncovered');
    expect(() => anchorsOf([0, 1, 2, 3, 0], { height: 2, width: 2 })).toThrow('Image has 5 visual ids but the 2x2 grid is full after 4');
    const overlap = new GridCursor({ height: 2, width: 2 }, (v) => (v === 1 ? [0, 0, 1, -1] : [0, 0]));
    overlap.place(0); // (0,0)
    overlap.place(0); // (0,1)
    overlap.place(0); // (1,0)
    expect(() => overlap.place(1)).toThrow('cell (2, 0) of its shape at anchor (1, 1) is outside the grid');
  });
});

describe('training streams', () => {
  const pair = { text: 'ab', image: [4, 5, 0, 1] };
  const layout = { grid: { height: 2, width: 3 }, shapeOf };

  it('generation: <bos> <gen> text <boi> image <eoi> <eos>, targets image..<eos>', () => {
    const e = generationExample(vocab, pair, layout);
    expect(Array.from(e.ids)).toEqual([1, 5, T('a'), T('b'), 3, V(4), V(5), V(0), V(1), 4, 2]);
    expect(Array.from(e.target)).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    expect(Array.from(e.pos2d!)).toEqual([-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 2, 1, 0, 1, 1, -1, -1, -1, -1]);
    const dropped = generationExample(vocab, pair, { dropCondition: true });
    expect(Array.from(dropped.ids)).toEqual([1, 5, 3, V(4), V(5), V(0), V(1), 4, 2]);
    expect(dropped.pos2d).toBeNull();
    expect(generationPrompt(vocab, 'ab')).toEqual([1, 5, T('a'), T('b'), 3]);
    expect(generationPrompt(vocab, null)).toEqual([1, 5, 3]);
  });

  it('understanding: <bos> <und> <boi> image <eoi> text <eos>, targets text..<eos>', () => {
    const e = understandingExample(vocab, pair, layout);
    expect(Array.from(e.ids)).toEqual([1, 6, 3, V(4), V(5), V(0), V(1), 4, T('a'), T('b'), 2]);
    expect(Array.from(e.target)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
    expect(Array.from(e.pos2d!.slice(6, 14))).toEqual([0, 0, 0, 2, 1, 0, 1, 1]);
    expect(understandingPrompt(vocab, pair.image)).toEqual([1, 6, 3, V(4), V(5), V(0), V(1), 4]);
    expect(() => understandingExample(vocab, pair, { grid: { height: 2, width: 3 } })).toThrow(
      'Expected the shapes of visual BPE tokens (the vocabulary has merges) for shapeOf but received undefined',
    );
  });

  it('drops the condition with the given probability, reproducibly', () => {
    const pairs = Array.from({ length: 2000 }, () => pair);
    const a = buildExamples(vocab, pairs, new Rng(1), { conditionDrop: 0.1 });
    const b = buildExamples(vocab, pairs, new Rng(1), { conditionDrop: 0.1 });
    expect(a.length).toBe(4000);
    expect(a.map((e) => e.ids.length)).toEqual(b.map((e) => e.ids.length));
    const gen = a.filter((_, i) => i % 2 === 0);
    const dropped = gen.filter((e) => e.ids.length === 9).length / gen.length;
    expect(Math.abs(dropped - 0.1)).toBeLessThan(0.02);
    expect(a.filter((_, i) => i % 2 === 1).every((e) => e.ids[1] === vocab.und && e.ids.length === 11)).toBe(true);
    expect(buildExamples(vocab, [pair], new Rng(1), { directions: 'generation', conditionDrop: 0 }).map((e) => e.ids[1])).toEqual([vocab.gen]);
    expect(() => buildExamples(vocab, [pair], new Rng(1), { conditionDrop: 2 })).toThrow('Expected number between 0 and 1 for conditionDrop but received 2 of type number');
  });

  it('packs a batch shifted by one, padded on the right', () => {
    const a = understandingExample(vocab, { text: 'c', image: [0, 1, 2, 3] }); // 10 ids
    const g = generationExample(vocab, { text: 'c', image: [0, 1, 2, 3] }, { dropCondition: true }); // 9 ids
    const batch = packBatch([a, g], vocab.pad);
    expect(batch.batch).toBe(2);
    expect(batch.length).toBe(9);
    expect(Array.from(batch.inputs.slice(0, 9))).toEqual(Array.from(a.ids.slice(0, 9)));
    expect(Array.from(batch.targets.slice(0, 9))).toEqual(Array.from(a.ids.slice(1)));
    expect(Array.from(batch.weights.slice(0, 9))).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 1]);
    expect(Array.from(batch.inputs.slice(9))).toEqual([...Array.from(g.ids.slice(0, 8)), 0]);
    expect(Array.from(batch.targets.slice(9))).toEqual([...Array.from(g.ids.slice(1)), 0]);
    expect(Array.from(batch.weights.slice(9))).toEqual([0, 0, 1, 1, 1, 1, 1, 1, 0]);
    expect(batch.pos2d).toBeNull();
    expect(packBatch([a], vocab.pad, 12).inputs.length).toBe(12);
    expect(() => packBatch([a], vocab.pad, 5)).toThrow('Expected at least 10 - 1 (the longest example) for length but received 5 of type number');
  });

  it('weights the targets of understanding streams by understandingWeight', () => {
    const pair = { text: 'c', image: [0, 1, 2, 3] };
    const [g, u] = buildExamples(vocab, [pair], new Rng(1), { conditionDrop: 0, understandingWeight: 4 });
    expect(g.weight).toBeUndefined();
    expect(u.weight).toBe(4);
    const batch = packBatch([g, u], vocab.pad);
    const T = batch.length;
    expect(Array.from(batch.weights.slice(0, T)).filter((w) => w > 0).every((w) => w === 1)).toBe(true);
    expect(Array.from(batch.weights.slice(T))).toEqual([0, 0, 0, 0, 0, 0, 0, 4, 4, 0].slice(0, T));
    expect(() => buildExamples(vocab, [pair], new Rng(1), { understandingWeight: -1 })).toThrow('understandingWeight');
  });
});

describe('streamController (grammar for constrained sampling)', () => {
  it('tracks images, positions and allowed ids', () => {
    const c = streamController(vocab, { grid: { height: 2, width: 2 }, shapeOf });
    const allowedIds = (): number[] => Array.from(c.allowed() as Uint8Array).flatMap((x, i) => (x === 1 ? [i] : []));
    // Before the image: text and specials except <pad>, <eoi>.
    expect(allowedIds()).toEqual([1, 2, 3, 5, 6, ...Array.from({ length: 26 }, (_, i) => 7 + i)]);
    for (const id of generationPrompt(vocab, 'ab')) expect(c.push(id)).toBeNull();
    // At (0,0) of a 2x2 grid every shape fits.
    expect(allowedIds()).toEqual([V(0), V(1), V(2), V(3), V(4), V(5)]);
    expect(c.push(V(4))).toEqual([0, 0]); // covers (0,0),(0,1)
    expect(c.push(V(0))).toEqual([1, 0]);
    // At (1,1): neither pair fits.
    expect(allowedIds()).toEqual([V(0), V(1), V(2), V(3)]);
    expect(() => c.push(V(5))).toThrow(`Malformed stream: visual:5 (id ${V(5)}) at position 7 is not allowed inside an image`);
    expect(c.push(V(2))).toEqual([1, 1]);
    expect(allowedIds()).toEqual([vocab.eoi]);
    expect(c.push(vocab.eoi)).toBeNull();
    expect(allowedIds()).toEqual([vocab.eos, ...Array.from({ length: 26 }, (_, i) => 7 + i)]);
    expect(() => c.push(vocab.boi)).toThrow(`Malformed stream: <boi> (id 3) at position 9 is not allowed after the image`);
  });

  it('without a grid allows any visual id or <eoi> inside an image and gives no positions', () => {
    const c = streamController(vocab);
    c.push(vocab.bos);
    expect(() => c.push(V(0))).toThrow(`Malformed stream: visual:0 (id ${V(0)}) at position 1 is not allowed before the image`);
    c.push(vocab.boi);
    expect(c.push(V(5))).toBeNull();
    const mask = c.allowed() as Uint8Array;
    expect(mask[vocab.eoi]).toBe(1);
    expect(mask[V(3)]).toBe(1);
    expect(mask[T('a')]).toBe(0);
    expect(() => c.push(999)).toThrow('Expected an id between 0 and 38 at position 3 but received 999 of type number');
  });
});
