/**
 * Training streams for the autoregressive head, and the grammar that
 * constrains sampling. Plain functions over the unified vocabulary.
 *
 * Two directions, so one model both draws and describes (as in Chameleon/Emu3
 * one-stream training; CFG condition dropout as in LlamaGen):
 *   generation:    <bos> <gen> text <boi> image <eoi> <eos>    targets: image, <eoi>, <eos>
 *   understanding: <bos> <und> <boi> image <eoi> text <eos>    targets: text, <eos>
 * With probability `conditionDrop` a generation stream loses its text
 * (`<bos> <gen> <boi> image <eoi> <eos>`): the unconditional model that
 * classifier-free guidance subtracts.
 *
 * Visual tokens carry the 2D position (row, column) of their anchor cell. A
 * visual BPE token covers a small shape of cells; its anchor is the first cell
 * of the shape in raster order, and the next token's anchor is always the
 * first uncovered cell (see DESIGN.md, "Visual BPE"). GridCursor tracks that.
 */

import { VtokError, checkInt, checkNumber, invalidOption, resolveOptions } from './errors';
import type { Rng } from './random';
import type { Allowed } from './sampling';
import type { Vocab } from './vocab';

/**
 * The cells a visual id (0..K+M-1) covers, relative to its anchor, flattened
 * [dr0, dc0, dr1, dc1, ...]; the first cell is (0, 0) and every other cell
 * comes after it in raster order. Base codes cover just [0, 0].
 */
export type VisualShapeOf = (visual: number) => ArrayLike<number>;

export interface GridSize {
  height: number;
  width: number;
}

const SINGLE_CELL = [0, 0] as const;

/** Tracks which cells of a code grid the visual tokens so far cover. */
export class GridCursor {
  readonly height: number;
  readonly width: number;
  private readonly shapeOf: VisualShapeOf;
  private readonly covered: Uint8Array;
  /** Raster index of the first uncovered cell (height*width when full). */
  private first = 0;

  constructor(grid: GridSize, shapeOf?: VisualShapeOf) {
    this.height = checkInt('grid.height', grid.height, 1, 65535);
    this.width = checkInt('grid.width', grid.width, 1, 65535);
    this.shapeOf = shapeOf ?? (() => SINGLE_CELL);
    this.covered = new Uint8Array(this.height * this.width);
  }

  /** True when every cell is covered. */
  get done(): boolean {
    return this.first >= this.covered.length;
  }

  /** The anchor (row, column) of the next token, or null when the grid is full. */
  anchor(): [number, number] | null {
    return this.done ? null : [Math.floor(this.first / this.width), this.first % this.width];
  }

  /** Whether visual id `v` fits at the next anchor (inside the grid, on uncovered cells). */
  fits(v: number): boolean {
    return this.check(v) === null;
  }

  /** Covers the cells of visual id `v` at the next anchor and returns that anchor; throws VOCAB if it does not fit. */
  place(v: number): [number, number] {
    const problem = this.check(v);
    if (problem !== null) throw new VtokError('VOCAB', `Visual id ${v} does not fit the ${this.height}x${this.width} grid: ${problem}`, { subject: String(v) });
    const r0 = Math.floor(this.first / this.width);
    const c0 = this.first % this.width;
    const cells = this.shapeOf(v);
    for (let i = 0; i < cells.length; i += 2) this.covered[(r0 + cells[i]) * this.width + c0 + cells[i + 1]] = 1;
    while (this.first < this.covered.length && this.covered[this.first] === 1) this.first++;
    return [r0, c0];
  }

  private check(v: number): string | null {
    if (this.done) return 'the grid is already full';
    const r0 = Math.floor(this.first / this.width);
    const c0 = this.first % this.width;
    const cells = this.shapeOf(v);
    if (cells.length < 2 || cells[0] !== 0 || cells[1] !== 0) return 'its shape does not start at its anchor (0, 0)';
    for (let i = 0; i < cells.length; i += 2) {
      const r = r0 + cells[i];
      const c = c0 + cells[i + 1];
      if (r < 0 || r >= this.height || c < 0 || c >= this.width) return `cell (${r}, ${c}) of its shape at anchor (${r0}, ${c0}) is outside the grid`;
      if (this.covered[r * this.width + c] === 1) return `cell (${r}, ${c}) of its shape at anchor (${r0}, ${c0}) is already covered`;
    }
    return null;
  }
}

/**
 * Anchors of a whole image's visual ids, flattened [r0, c0, r1, c1, ...].
 * Throws VOCAB if a token does not fit or the tokens do not cover the grid.
 * Example (2x2 grid, base codes only): anchorsOf([5, 1, 7, 2], {height: 2, width: 2}) -> [0,0, 0,1, 1,0, 1,1]
 */
export function anchorsOf(visual: ArrayLike<number>, grid: GridSize, shapeOf?: VisualShapeOf): Int16Array {
  const cursor = new GridCursor(grid, shapeOf);
  const out = new Int16Array(visual.length * 2);
  for (let i = 0; i < visual.length; i++) {
    if (cursor.done) {
      throw new VtokError('VOCAB', `Image has ${visual.length} visual ids but the ${grid.height}x${grid.width} grid is full after ${i}`, {
        subject: 'image',
      });
    }
    const [r, c] = cursor.place(visual[i]);
    out[2 * i] = r;
    out[2 * i + 1] = c;
  }
  if (!cursor.done) {
    const [r, c] = cursor.anchor()!;
    throw new VtokError('VOCAB', `Image of ${visual.length} visual ids leaves cell (${r}, ${c}) of the ${grid.height}x${grid.width} grid uncovered`, {
      subject: 'image',
    });
  }
  return out;
}

/** One training stream. */
export interface ArExample {
  /** Unified ids of the whole stream. */
  ids: Int32Array;
  /** 1 where the id is a prediction target (the loss counts it), else 0. */
  target: Uint8Array;
  /** Anchor (row, column) of each visual id, -1 for other ids: [n * 2]. Null without a grid. */
  pos2d: Int16Array | null;
  /** Loss weight of each of this stream's targets (default 1). */
  weight?: number;
}

/** An image (visual ids 0..K+M-1, the visual BPE's output) with its text. */
export interface ImageText {
  text: string;
  image: ArrayLike<number>;
}

export interface StreamLayout {
  /** The code grid, for 2D positions of visual tokens; omit for no 2D positions. */
  grid?: GridSize;
  /** Shapes of visual ids (needed with a grid when the visual BPE has merges). */
  shapeOf?: VisualShapeOf;
}

function assemble(vocab: Vocab, parts: readonly { ids: readonly number[]; target: boolean }[], imageAt: number, image: ArrayLike<number>, layout: StreamLayout): ArExample {
  let n = 0;
  for (const p of parts) n += p.ids.length;
  const ids = new Int32Array(n);
  const target = new Uint8Array(n);
  let o = 0;
  let imageStart = -1;
  parts.forEach((p, i) => {
    if (i === imageAt) imageStart = o;
    ids.set(p.ids, o);
    if (p.target) target.fill(1, o, o + p.ids.length);
    o += p.ids.length;
  });
  let pos2d: Int16Array | null = null;
  if (layout.grid !== undefined) {
    if (vocab.visual.merges > 0 && layout.shapeOf === undefined) throw invalidOption('shapeOf', 'the shapes of visual BPE tokens (the vocabulary has merges)', undefined);
    pos2d = new Int16Array(n * 2).fill(-1);
    pos2d.set(anchorsOf(image, layout.grid, layout.shapeOf), imageStart * 2);
  }
  return { ids, target, pos2d };
}

/** `<bos> <gen> text <boi> image <eoi> <eos>`, targets image..<eos>; `dropCondition` leaves the text out. */
export function generationExample(vocab: Vocab, pair: ImageText, options: StreamLayout & { dropCondition?: boolean } = {}): ArExample {
  const text = options.dropCondition === true ? [] : vocab.encodeText(pair.text);
  const image = vocab.encodeVisual(pair.image);
  return assemble(
    vocab,
    [
      { ids: [vocab.bos, vocab.gen, ...text, vocab.boi], target: false },
      { ids: [...image, vocab.eoi, vocab.eos], target: true },
    ],
    1,
    pair.image,
    options,
  );
}

/** `<bos> <und> <boi> image <eoi> text <eos>`, targets text..<eos>. */
export function understandingExample(vocab: Vocab, pair: ImageText, options: StreamLayout = {}): ArExample {
  const image = vocab.encodeVisual(pair.image);
  return assemble(
    vocab,
    [
      { ids: [vocab.bos, vocab.und, vocab.boi], target: false },
      { ids: [...image, vocab.eoi], target: false },
      { ids: [...vocab.encodeText(pair.text), vocab.eos], target: true },
    ],
    1,
    pair.image,
    options,
  );
}

/** The prompt that asks for an image: `<bos> <gen> text <boi>` (text omitted: the unconditional prompt). */
export function generationPrompt(vocab: Vocab, text: string | null): number[] {
  return [vocab.bos, vocab.gen, ...(text === null ? [] : vocab.encodeText(text)), vocab.boi];
}

/** The prompt that asks for a description: `<bos> <und> <boi> image <eoi>`. */
export function understandingPrompt(vocab: Vocab, image: ArrayLike<number>): number[] {
  return [vocab.bos, vocab.und, vocab.boi, ...vocab.encodeVisual(image), vocab.eoi];
}

export interface ExamplesOptions extends StreamLayout {
  /** Which streams each pair gives. Default 'both'. */
  directions: 'both' | 'generation' | 'understanding';
  /** Probability that a generation stream loses its text (for classifier-free guidance). Default 0.1. */
  conditionDrop: number;
  /**
   * Loss weight of an understanding stream's targets relative to a generation
   * stream's. A text is a few ids and an image tens, so with weight 1 the
   * answer is a few per cent of the loss. Default 1.
   */
  understandingWeight: number;
}

const EXAMPLES_DEFAULTS: ExamplesOptions = { directions: 'both', conditionDrop: 0.1, understandingWeight: 1, grid: undefined, shapeOf: undefined };

/**
 * Streams for a list of pairs, in pair order (generation first, then
 * understanding). `rng` decides condition dropout: one draw per generation
 * stream, so the same seed gives the same streams.
 */
export function buildExamples(vocab: Vocab, pairs: readonly ImageText[], rng: Rng, options?: Partial<ExamplesOptions>): ArExample[] {
  const o = resolveOptions('buildExamples', EXAMPLES_DEFAULTS, options);
  checkNumber('conditionDrop', o.conditionDrop, 0, 1);
  checkNumber('understandingWeight', o.understandingWeight, 0);
  const layout: StreamLayout = { grid: o.grid, shapeOf: o.shapeOf };
  const out: ArExample[] = [];
  for (const pair of pairs) {
    if (o.directions !== 'understanding') out.push(generationExample(vocab, pair, { ...layout, dropCondition: rng.next() < o.conditionDrop }));
    if (o.directions !== 'generation') {
      const e = understandingExample(vocab, pair, layout);
      if (o.understandingWeight !== 1) e.weight = o.understandingWeight;
      out.push(e);
    }
  }
  return out;
}

/**
 * A batch for next-token training, row-major [batch, length]: inputs are
 * ids[0..n-2], targets ids[1..n-1], weights the example's weight (default 1)
 * where the target is a target token; rows are padded on the right with `<pad>` (weight 0).
 */
export interface ArBatch {
  batch: number;
  length: number;
  /** [batch * length] */
  inputs: Int32Array;
  /** [batch * length] */
  targets: Int32Array;
  /** [batch * length] */
  weights: Float32Array;
  /** Anchor of each input token, -1 for non-visual and padding: [batch * length * 2]. Null when the examples have none. */
  pos2d: Int32Array | null;
}

/** Packs examples into one batch; `length` (default: the longest example - 1) must fit every example. */
export function packBatch(examples: readonly ArExample[], padId: number, length?: number): ArBatch {
  if (examples.length === 0) throw invalidOption('examples', 'at least one example', examples);
  const longest = Math.max(...examples.map((e) => e.ids.length)) - 1;
  const T = length === undefined ? longest : checkInt('length', length, 1);
  if (longest > T) throw invalidOption('length', `at least ${longest + 1} - 1 (the longest example)`, length);
  const B = examples.length;
  const hasPos = examples[0].pos2d !== null;
  const inputs = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(padId);
  const weights = new Float32Array(B * T);
  const pos2d = hasPos ? new Int32Array(B * T * 2).fill(-1) : null;
  examples.forEach((e, b) => {
    if ((e.pos2d !== null) !== hasPos) throw invalidOption(`examples[${b}].pos2d`, hasPos ? '2D positions like examples[0]' : 'null like examples[0]', e.pos2d);
    const n = e.ids.length - 1;
    const w = e.weight ?? 1;
    for (let t = 0; t < n; t++) {
      inputs[b * T + t] = e.ids[t];
      targets[b * T + t] = e.ids[t + 1];
      weights[b * T + t] = e.target[t + 1] * w;
      if (pos2d !== null) {
        pos2d[(b * T + t) * 2] = e.pos2d![2 * t];
        pos2d[(b * T + t) * 2 + 1] = e.pos2d![2 * t + 1];
      }
    }
  });
  return { batch: B, length: T, inputs, targets, weights, pos2d };
}

/**
 * Follows one row of a stream during generation: gives each pushed id its 2D
 * position and says which ids may come next.
 */
export interface RowController {
  /** Accepts the next id of the row (prompt or sampled) and returns its anchor (row, column), or null if it is not visual. */
  push(id: number): readonly [number, number] | null;
  /** The ids that may come next, or null for any. */
  allowed(): Allowed | null;
}

/**
 * The stream grammar as a RowController:
 * - before any image: text, specials other than `<pad>` and `<eoi>`;
 * - inside an image: visual ids that fit the grid (with a grid), `<eoi>` only once it is full;
 *   without a grid, any visual id or `<eoi>`;
 * - after an image: text and `<eos>` (a description follows an image; a
 *   generation stream stops at `<eoi>`).
 * Pushing an id the grammar forbids throws VOCAB (a malformed prompt).
 */
export function streamController(vocab: Vocab, layout: StreamLayout = {}): RowController {
  if (layout.grid !== undefined && vocab.visual.merges > 0 && layout.shapeOf === undefined) {
    throw invalidOption('shapeOf', 'the shapes of visual BPE tokens (the vocabulary has merges)', undefined);
  }
  const before = vocab.maskOf(['text', 'special']);
  before[vocab.pad] = 0;
  before[vocab.eoi] = 0;
  const after = vocab.maskOf(['text'], ['<eos>']);
  const onlyEoi = vocab.maskOf([], ['<eoi>']);
  const anyVisual = vocab.maskOf(['visual'], ['<eoi>']);
  const visualOnly = vocab.maskOf(['visual']);
  const v0 = vocab.ranges.visual.start;
  const nVisual = vocab.visual.baseCodes + vocab.visual.merges;
  let state: 'before' | 'image' | 'after' = 'before';
  let cursor: GridCursor | null = null;
  let position = 0;

  const allowed = (): Uint8Array => {
    if (state === 'before') return before;
    if (state === 'after') return after;
    if (cursor === null) return anyVisual;
    if (cursor.done) return onlyEoi;
    if (nVisual === vocab.visual.baseCodes) return visualOnly; // single cells always fit
    const mask = new Uint8Array(vocab.size);
    for (let v = 0; v < nVisual; v++) if (cursor.fits(v)) mask[v0 + v] = 1;
    return mask;
  };

  return {
    allowed,
    push(id: number): readonly [number, number] | null {
      const p = position; // a refused id does not advance the position
      const kind = vocab.kindOf(id, p);
      if (allowed()[id] !== 1) {
        const where = state === 'image' ? 'inside an image' : state === 'before' ? 'before the image' : 'after the image';
        throw new VtokError('VOCAB', `Malformed stream: ${vocab.describeId(id)} (id ${id}) at position ${p} is not allowed ${where}`, { subject: String(id) });
      }
      position++;
      if (id === vocab.boi) {
        state = 'image';
        cursor = layout.grid === undefined ? null : new GridCursor(layout.grid, layout.shapeOf);
      } else if (id === vocab.eoi) {
        state = 'after';
      } else if (kind === 'visual' && cursor !== null) {
        return cursor.place(id - v0);
      }
      return null;
    },
  };
}
