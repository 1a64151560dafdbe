/**
 * Trainer of two-dimensional visual BPE (and of the 1D variant, plain BPE on
 * the raster-order sequence) over a corpus of code grids.
 *
 * Papers: "From Pixels to Tokens: Byte-Pair Encoding on Quantized Visual
 * Modalities" and Being-VL ("Unified Multimodal Understanding via Byte-Pair
 * Visual Encoding"); MDBPE for offsets; minbpe for clarity. Unlike the
 * released Being-VL code, merged tokens keep their 2D shape, so encoding is
 * exactly reversible (see model.ts).
 *
 * Token instances and pairs. The corpus is a tiling of every grid by token
 * instances; an instance has a token id and an anchor cell. Two instances are
 * *adjacent* when a cell of one and a cell of the other are 4-neighbours in an
 * allowed direction (left/right for 'horizontal', up/down for 'vertical').
 * An adjacent pair is keyed by (token of the earlier anchor in raster order,
 * token of the later anchor, offset (dy, dx) from the earlier anchor to the
 * later one). Whether two shapes at a given offset touch depends only on the
 * shapes and the offset, so every instance of a at p with an instance of b at
 * p + (dy, dx) is an occurrence of the key (a, b, dy, dx).
 *
 * Counts equal what encoding does. The count of a key is the number of
 * merges that applying it now would make: encoding applies a rule greedily in
 * raster order of the left anchor, so for a != b the count is the number of
 * occurrences, and for a == b occurrences form chains p, p+o, p+2o, ... of
 * length L that yield floor(L/2) merges each. Counts are kept exact
 * incrementally: when an instance is removed or created, the keys of its
 * neighbours change by -1/+1, and for a == b keys the chain through it is
 * split or joined (delta of the floor(L/2) sums). The key being merged is
 * the exception: all its occurrences merge, so its count goes to 0 at once.
 *
 * Positions. Every key keeps a linked list (typed-array pool) of the left
 * anchors of its occurrences, appended when the occurrence is created (when
 * the later of its two instances appears). Entries are not removed when an
 * occurrence disappears; they are checked when the key is merged (stale ones
 * fail the check: an anchor's token only ever grows, so a destroyed instance
 * never reappears), and dropped when the full pool is compacted.
 *
 * Choice of the next merge: a lazy-deletion max-heap of (priority, key). In
 * 'frequency' mode a key is pushed after a merge that raised its count; an
 * entry above the current count (the count fell) is pushed back at the
 * current count when popped; an entry is used only if its priority is still
 * current. In 'spatial' mode every key of a pair group whose total changed is
 * pushed again (a falling total raises the others' priority). Tie-break
 * (deterministic, independent of hash layout): higher priority first, then
 * smaller left id, smaller right id, smaller dy, smaller dx. Every key with a
 * positive count has an entry at or above it, so the first current entry
 * popped is the exact argmax whatever else the heap holds: frequency-mode
 * entries of low priority wait outside it until its top comes down to them.
 *
 * Priorities. 'frequency': the count F(a, b, dy, dx). 'spatial' (after
 * Being-VL, which weighs co-occurrence frequency by how stable the relative
 * position of two tokens is across images): F * C with consistency
 * C = F(a, b, dy, dx) / sum over offsets o of F(a, b, o), the share of the
 * co-occurrences of a (earlier anchor) and b (later anchor) that sit at this
 * offset. A pair that always appears in one arrangement keeps its frequency;
 * one spread over many arrangements is demoted.
 */
import { VtokError, checkInt, checkOneOf, invalidOption, resolveOptions, describeValue } from '../errors';
import { BpeModel, BpeDirections, BpeMode, BpePriority, BpeSettings, checkGridSize } from './model';
import { PairIndex, TripleList, growInt32 } from './pairindex';
import { ShapeTable, packOffset, offsetDx, offsetDy } from './shapes';

/** One grid of base codes, row-major. */
export interface CodeGrid {
  codes: ArrayLike<number>;
  h: number;
  w: number;
}

export interface BpeTrainOptions {
  /** Number of base codes K (ids 0..K-1). Required. */
  baseVocab: number;
  /** Stop when the vocabulary (K + distinct merged shapes) reaches this size; 0 = no limit. Default 0. */
  vocabSize: number;
  /** Stop after this many merge rules; 0 = no limit. Default 0. At least one of vocabSize, merges must be set. */
  merges: number;
  /** '2d' (default) or '1d' (plain BPE on the raster-order sequence; directions must be 'horizontal'). */
  mode: BpeMode;
  /** Which neighbours may merge. Default 'both' ('horizontal' in mode '1d'). */
  directions: BpeDirections;
  /** A pair must make at least this many merges to be merged. Default 2. */
  minFrequency: number;
  /** Largest merged shape, in cells. Default 4096 (no practical limit). */
  maxShapeCells: number;
  /** Largest bounding box side of a merged shape, in cells. Default 4096 (no practical limit). */
  maxExtent: number;
  /** 'frequency' (default) or 'spatial' (frequency times spatial consistency, see above). */
  priority: BpePriority;
}

const DEFAULTS: BpeTrainOptions = {
  baseVocab: 0,
  vocabSize: 0,
  merges: 0,
  mode: '2d',
  directions: 'both',
  minFrequency: 2,
  maxShapeCells: 4096,
  maxExtent: 4096,
  priority: 'frequency',
};

/** What `debugPairs` returns for one key: exact count and sorted left anchors of valid occurrences. */
export interface BpePairState {
  count: number;
  positions: number[];
}

/** Ids stay below 2^22 so that the heap's tie-break (left * 2^31 + right) is exact in a double. */
const MAX_VOCAB = 1 << 22;
/** Directions from a contact cell to the neighbouring cell of a merged instance. */
const EDGE_RIGHT = 0;
const EDGE_LEFT = 1;
const EDGE_DOWN = 2;
const EDGE_UP = 3;
/**
 * The heap: 4-ary, entry i in heap[HEAP_FIELDS * (i + HEAP_SKIP) ...] as [priority, tie-break
 * (left * 2^31 + right), packed offset, key]. Skipping 3 entries puts the four children of every
 * entry (4i+1 .. 4i+4) in two whole cache lines; 4 children halve the depth of a binary heap.
 */
const HEAP_FIELDS = 4;
const HEAP_SKIP = 3;
/** Frequency mode: entries of priority up to this wait outside the heap (see BpeTrainer.waiting). */
const WAIT_MAX = 256;
/** Occurrences collected and then merged at a time (for a != b). */
const MERGE_BATCH = 256;

/**
 * packOffset bound once: tsx, which runs the CLI and the benchmarks, compiles each use of an
 * imported function to a getter call, too slow for the per-neighbour loops below.
 */
const pack = packOffset;

/** Hash of a per-step key (tag, packed offset). */
function stepHash(tag: number, off: number): number {
  let h = Math.imul(tag ^ Math.imul(off, 0x85ebca77), 0x9e3779b1);
  h ^= h >>> 15;
  return Math.imul(h, 0xc2b2ae3d) ^ (h >>> 13);
}

/** Per-merge tables of the merged shape's contact cells (see contactSides). */
interface ContactTables {
  side: Uint8Array;
  edgeA: Int8Array;
  edgeB: Int8Array;
  tJ: Int32Array;
  tDir: Uint8Array;
  nT: number;
}

/**
 * Incremental trainer. `train()` runs to the stopping rule; `step()` makes one
 * merge (for tests and progress reporting).
 */
export class BpeTrainer {
  readonly options: Readonly<BpeTrainOptions>;
  private readonly shapes: ShapeTable;
  private readonly horizontal: boolean;
  private readonly vertical: boolean;
  private readonly spatial: boolean;
  // Corpus state, one entry per cell of the concatenated grids.
  /**
   * 4 ints per cell c, together so that the cells around a merge share cache lines:
   * cell[4c] token id at an anchor (-1 elsewhere; -2 while an instance is being replaced),
   * cell[4c + 1] anchor of the instance covering the cell, and the keys of the pairs across the
   * cell's edges: cell[4c + 2] between c and c + 1, cell[4c + 3] between c and the cell below.
   * Every edge between two live instances holds the key of their pair (rewritten around each
   * new instance), so removing an instance needs no key lookup.
   */
  private readonly cell: Int32Array;
  private readonly nCells: number;
  /** row * 32768 + column of each cell in its grid (one read for both); empty when all grids have one size (see rowColOf). */
  private readonly rowCol: Int32Array;
  /** 1 / (sameH * sameW) and 1 / sameW, for rowColOf. */
  private readonly invHW: number;
  private readonly invW: number;
  /** When sameW and sameH * sameW are powers of 2: log2(sameW) (else -1), for rowColOf. */
  private readonly shiftW: number;
  /** Grid of each cell; empty when all grids have one size (sameW). */
  private readonly gridOf: Int32Array;
  private readonly gridH: Int32Array;
  private readonly gridW: Int32Array;
  private readonly gridStart: Int32Array;
  /** Height and width shared by every grid (the usual case: skips a per-cell lookup), or 0. */
  private readonly sameH: number;
  private readonly sameW: number;
  /** Neighbours of large merged shapes seen so far, by anchor's place in its grid (one grid's worth: stays in cache). */
  private readonly mark: Int32Array;
  private readonly markAt: Int32Array; // index in the neighbour list of a marked anchor
  private stamp = 0;
  // Pair keys (a, b, packed offset) -> dense index k, and per-key state.
  private readonly keys: TripleList;
  /** Keys of the initial pairs when K > 2048 (no baseKeys table); null after the initial count. */
  private initIndex: PairIndex | null;
  /** Per token, the keys it is part of: a linked list through keyNextA (token on the left) and keyNextB (on the right). */
  private keyHead = new Int32Array(1 << 12).fill(-1);
  private keyNextA = new Int32Array(1 << 16);
  private keyNextB = new Int32Array(1 << 16);
  /** Key index of base pairs (a, b) side by side at [a*K + b], stacked at [(K + a)*K + b]; -1 = not yet; null when K > 2048. */
  private readonly baseKeys: Int32Array | null;
  /**
   * Per key: exact count, or -1 for a key that shape limits forbid. Apart from the list heads: the
   * count is all that removing an instance reads, at random keys, so more of them share a page.
   */
  private count = new Int32Array(1 << 16);
  /** Per key: head of its position list (-1: none). */
  private head = new Int32Array(1 << 16);
  /** Per key: its count went up in this step (frequency mode; see flushTouched). */
  private touchedKey = new Uint8Array(1 << 16);
  private touched: number[] = [];
  // 'spatial': groups (a, b) -> total count over offsets, and the keys of each group.
  private readonly groups = new PairIndex(1 << 12);
  private groupOf = new Int32Array(1 << 16);
  private nextInGroup = new Int32Array(1 << 16);
  private groupHead = new Int32Array(1 << 12).fill(-1);
  private groupTotal = new Float64Array(1 << 12);
  private groupTouched = new Uint8Array(1 << 12);
  private touchedGroups: number[] = [];
  // Position pool: singly linked lists of left anchors.
  private nodePos: Int32Array;
  private nodeNext: Int32Array;
  private poolUsed = 0;
  // Max-heap of (priority, key), see HEAP_FIELDS.
  private heap = new Float64Array(HEAP_FIELDS * (1 << 16));
  private heapSize = 0;
  /**
   * Frequency mode: heap entries of priority p <= lowMax wait unordered in waiting[p] (most keys
   * never reach the counts that get merged, and a smaller heap is faster) until the heap's top
   * falls to p; then they join the heap (those still current) and lowMax becomes p - 1. The
   * heap's top is above every waiting entry, so each step picks the same key (see step).
   */
  private readonly waiting: number[][] = [];
  private lowMax: number;
  // Learned merges.
  private readonly mLeft: number[] = [];
  private readonly mRight: number[] = [];
  private readonly mDy: number[] = [];
  private readonly mDx: number[] = [];
  private readonly mId: number[] = [];
  private readonly mCount: number[] = [];
  private nb = new Int32Array(64);
  private nbA = new Int32Array(64);
  private nbB = new Int32Array(64);
  private nbSide = new Uint8Array(64);
  private nbKey = new Int32Array(64);
  private nbKeyA = new Int32Array(64);
  private nbKeyB = new Int32Array(64);
  private nbOf = new Int32Array(64);
  private cs: ContactTables = { side: new Uint8Array(64), edgeA: new Int8Array(64), edgeB: new Int8Array(64), tJ: new Int32Array(256), tDir: new Uint8Array(256), nT: 0 };
  /** Per-step key table (stepKey): open addressing, [tag, offset, key, stamp] per slot; stamp = step. */
  private stepTab = new Int32Array(4 << 12);
  private stepMask = (1 << 12) - 1;
  private stepCount = 0;
  private stepStamp = 0;
  private stepTok = 0;
  private selfSeen = new Int32Array(16);
  /** The key being merged (see step), or -1. */
  private merging = -1;
  private collect = new Int32Array(1024);
  private readonly raw = new Int32Array(MERGE_BATCH);
  private done = false;

  constructor(corpus: readonly CodeGrid[], options: Partial<BpeTrainOptions>) {
    const defaults: BpeTrainOptions = { ...DEFAULTS, directions: options?.mode === '1d' ? 'horizontal' : 'both' };
    const o = resolveOptions('trainBpe', defaults, options);
    checkInt('baseVocab', o.baseVocab, 1, 1 << 24);
    checkInt('vocabSize', o.vocabSize, 0, MAX_VOCAB);
    checkInt('merges', o.merges, 0, 1 << 30);
    if (o.vocabSize === 0 && o.merges === 0) throw invalidOption('vocabSize', 'a vocabulary size or a number of merges (integer >= 1)', 0);
    if (o.vocabSize !== 0 && o.vocabSize < o.baseVocab) throw invalidOption('vocabSize', `integer >= baseVocab (${o.baseVocab})`, o.vocabSize);
    checkOneOf('mode', o.mode, ['2d', '1d'] as const);
    checkOneOf('directions', o.directions, ['horizontal', 'vertical', 'both'] as const);
    if (o.mode === '1d' && o.directions !== 'horizontal') throw invalidOption('directions', '"horizontal" in mode "1d"', o.directions);
    checkInt('minFrequency', o.minFrequency, 1);
    checkInt('maxShapeCells', o.maxShapeCells, 2, 1 << 20);
    checkInt('maxExtent', o.maxExtent, 1, 32767);
    checkOneOf('priority', o.priority, ['frequency', 'spatial'] as const);
    if (!Array.isArray(corpus)) throw invalidOption('corpus', 'an array of {codes, h, w} grids', corpus);
    this.options = Object.freeze(o);
    this.shapes = new ShapeTable(o.baseVocab, o.directions);
    this.horizontal = o.directions !== 'vertical';
    this.vertical = o.directions !== 'horizontal';
    this.spatial = o.priority === 'spatial';
    this.lowMax = this.spatial ? 0 : WAIT_MAX;
    for (let p = 0; p <= this.lowMax; p++) this.waiting.push([]);
    this.baseKeys = o.baseVocab <= 2048 ? new Int32Array(2 * o.baseVocab * o.baseVocab).fill(-1) : null;

    // Lay the grids out one after another.
    const G = corpus.length;
    this.gridH = new Int32Array(G);
    this.gridW = new Int32Array(G);
    this.gridStart = new Int32Array(G + 1);
    let N = 0;
    for (let g = 0; g < G; g++) {
      const { codes, h, w } = corpus[g] ?? ({} as CodeGrid);
      checkGridSize(codes, h, w, `corpus grid ${g}`);
      this.gridH[g] = o.mode === '1d' ? 1 : h;
      this.gridW[g] = o.mode === '1d' ? h * w : w;
      if (this.gridW[g] > 32767) throw invalidOption(`corpus[${g}]`, 'a grid of at most 32767 cells in mode "1d"', h * w);
      this.gridStart[g] = N;
      N += h * w;
    }
    this.gridStart[G] = N;
    let same = G > 0;
    for (let g = 1; g < G && same; g++) same = this.gridH[g] === this.gridH[0] && this.gridW[g] === this.gridW[0];
    this.sameH = same ? this.gridH[0] : 0;
    this.sameW = same ? this.gridW[0] : 0;
    this.cell = new Int32Array(4 * N);
    this.nCells = N;
    this.rowCol = new Int32Array(this.sameW === 0 ? N : 0);
    this.invHW = this.sameW === 0 ? 0 : 1 / (this.sameH * this.sameW);
    this.invW = this.sameW === 0 ? 0 : 1 / this.sameW;
    const pow2 = (x: number): boolean => x > 0 && (x & (x - 1)) === 0;
    this.shiftW = pow2(this.sameW) && pow2(this.sameW * this.sameH) ? Math.round(Math.log2(this.sameW)) : -1;
    this.gridOf = new Int32Array(this.sameW === 0 ? N : 0);
    let gridCells = 0;
    for (let g = 0; g < G; g++) gridCells = Math.max(gridCells, this.gridStart[g + 1] - this.gridStart[g]);
    this.mark = new Int32Array(gridCells);
    this.markAt = new Int32Array(gridCells);
    const K = o.baseVocab;
    for (let g = 0; g < G; g++) {
      const codes = corpus[g].codes;
      const s = this.gridStart[g];
      const W = this.gridW[g];
      const n = this.gridStart[g + 1] - s;
      for (let i = 0; i < n; i++) {
        const c = codes[i];
        if (!(c >= 0 && c < K && Number.isInteger(c))) {
          throw new VtokError('BPE', `Code ${describeValue(c)} at cell ${i} of corpus grid ${g} is not a base code 0..${K - 1}`);
        }
        const p = s + i;
        this.cell[p * 4] = c;
        this.cell[p * 4 + 1] = p;
        if (this.sameW === 0) this.rowCol[p] = Math.floor(i / W) * 32768 + (i % W);
        if (this.sameW === 0) this.gridOf[p] = g;
      }
    }
    // Distinct pair keys grow to about half the number of cells on real code grids (2.8M for
    // 5.1M cells at 30,000 ids): size the per-key arrays for that up front instead of growing them.
    const keyCap = Math.max(1 << 16, Math.min(N >> 1, 1 << 23));
    this.keys = new TripleList(keyCap);
    this.initIndex = this.baseKeys === null ? new PairIndex(1 << 16) : null;
    this.growKeys(keyCap);
    // Position entries: about 2 per cell for the first pairs plus about 4 per cell made during a
    // long run (5.8 per cell for 16x16 grids at 30,000 ids); beyond that the pool compacts or
    // doubles. Compacting walks every entry at random, so leave room: pages of a fresh typed
    // array that are never written cost no memory.
    const poolCap = Math.max(1024, 8 * N + 1024);
    this.nodePos = new Int32Array(poolCap);
    this.nodeNext = new Int32Array(poolCap);
    this.initialCounts();
    this.initIndex = null;
  }

  /** Runs merges until a stopping rule holds; returns the model. */
  train(): BpeModel {
    while (this.step());
    return this.model();
  }

  /** Makes one merge; false when training is over (limit reached, or no pair frequent enough). */
  step(): boolean {
    if (this.done) return false;
    const o = this.options;
    const full = o.vocabSize > 0 ? this.shapes.size >= o.vocabSize : this.shapes.size >= MAX_VOCAB;
    if (full || (o.merges > 0 && this.mLeft.length >= o.merges)) {
      this.done = true;
      return false;
    }
    let k = -1;
    for (;;) {
      const top = HEAP_FIELDS * HEAP_SKIP;
      while (this.lowMax > 0 && (this.heapSize === 0 || this.heap[top] <= this.lowMax)) this.flushWaiting();
      if (this.heapSize === 0) break;
      const prio = this.heap[top];
      const key = this.heap[top + 3];
      this.heapPop();
      const cur = this.priority(key);
      if (prio !== cur) {
        // Stale. In frequency mode only increases are pushed when they happen, so an entry above the
        // current count stands for a decrease: put the key back at its current count.
        if (!this.spatial && prio > cur && cur > 0) this.queue(cur, key);
        continue;
      }
      if (this.count[key] < o.minFrequency) {
        if (!this.spatial) break; // frequency heap: nothing better below
        continue;
      }
      k = key;
      break;
    }
    if (k < 0) {
      this.done = true;
      return false;
    }
    const a = this.keys.ka[k];
    const b = this.keys.kb[k];
    const off = this.keys.kc[k];
    const dy = offsetDy(off);
    const dx = offsetDx(off);
    const sizeBefore = this.shapes.size;
    const t = this.shapes.add(a, b, dy, dx);
    this.beginStepKeys(t, this.shapes.size === sizeBefore);
    this.mLeft.push(a);
    this.mRight.push(b);
    this.mDy.push(dy);
    this.mDx.push(dx);
    this.mId.push(t);
    this.mCount.push(this.count[k]);
    // Every occurrence of k gets merged (greedy, as encoding does), leaving its count at 0: its
    // count is left alone during the merge (removeInstance) and set here. This spares walking
    // the rest of a self pair's chain at each of its merges.
    this.merging = k;
    this.applyMerge(k, a, b, dy, dx, t);
    this.merging = -1;
    this.addCount(k, -this.count[k]);
    this.flushTouched();
    return true;
  }

  /** The model learned so far. */
  model(): BpeModel {
    const o = this.options;
    const settings: BpeSettings = {
      mode: o.mode,
      baseVocab: o.baseVocab,
      directions: o.directions,
      maxShapeCells: o.maxShapeCells,
      maxExtent: o.maxExtent,
      priority: o.priority,
      minFrequency: o.minFrequency,
    };
    return new BpeModel(settings, {
      left: Int32Array.from(this.mLeft),
      right: Int32Array.from(this.mRight),
      dy: Int32Array.from(this.mDy),
      dx: Int32Array.from(this.mDx),
      id: Int32Array.from(this.mId),
      count: Int32Array.from(this.mCount),
    });
  }

  get numMerges(): number {
    return this.mLeft.length;
  }

  get vocabSize(): number {
    return this.shapes.size;
  }

  /** The current tokens of grid g, in raster order of anchors (equals model().encode of that grid). */
  tokens(g: number): Int32Array {
    const out: number[] = [];
    for (let p = this.gridStart[g], e = this.gridStart[g + 1]; p < e; p++) if (this.cell[p * 4] >= 0) out.push(this.cell[p * 4]);
    return Int32Array.from(out);
  }

  /** Total number of tokens in the corpus now. */
  totalTokens(): number {
    let n = 0;
    for (let p = 0; p < this.nCells; p++) if (this.cell[p * 4] >= 0) n++;
    return n;
  }

  /**
   * For tests: every key that has a valid occurrence or a nonzero count, as
   * "a,b,dy,dx" -> exact count and the sorted left anchors (global cell index)
   * of its valid occurrences in its position list.
   */
  debugPairs(): Map<string, BpePairState> {
    const out = new Map<string, BpePairState>();
    for (let k = 0; k < this.keys.size; k++) {
      if (this.count[k] < 0) continue;
      const a = this.keys.ka[k];
      const b = this.keys.kb[k];
      const off = this.keys.kc[k];
      const dy = offsetDy(off);
      const dx = offsetDx(off);
      const positions: number[] = [];
      for (let nd = this.head[k]; nd >= 0; nd = this.nodeNext[nd]) {
        const p = this.nodePos[nd];
        if (this.valid(p, a, b, dy, dx)) positions.push(p);
      }
      positions.sort((x, y) => x - y);
      if (positions.length === 0 && this.count[k] === 0) continue;
      out.set(`${a},${b},${dy},${dx}`, { count: this.count[k], positions });
    }
    return out;
  }

  /** Grid layout, for tests: start cell of each grid and its (possibly 1D) height and width. */
  layout(): { start: Int32Array; h: Int32Array; w: Int32Array } {
    return { start: this.gridStart, h: this.gridH, w: this.gridW };
  }

  // ---------------------------------------------------------------- internals

  private priority(k: number): number {
    const f = this.count[k];
    if (!this.spatial || f <= 0) return f;
    return (f * f) / this.groupTotal[this.groupOf[k]];
  }

  /**
   * row * 32768 + column of cell p in its grid. Grids of one size: computed (exact: the quotients
   * are at least 0.5 / size away from an integer, far above the rounding error), which saves a
   * memory read at a random place per call.
   */
  private rowColOf(p: number): number {
    const W = this.sameW;
    if (this.shiftW >= 0) {
      const l = p & (this.sameH * W - 1);
      return ((l >> this.shiftW) << 15) | (l & (W - 1));
    }
    if (W === 0) return this.rowCol[p];
    const l = p - Math.floor((p + 0.5) * this.invHW) * (this.sameH * W);
    const y = Math.floor((l + 0.5) * this.invW);
    return y * 32768 + (l - y * W);
  }

  /** Whether a at left anchor p and b at p + (dy, dx) are both still there. */
  private valid(p: number, a: number, b: number, dy: number, dx: number): boolean {
    if (this.cell[p * 4] !== a) return false;
    const W = this.sameW || this.gridW[this.gridOf[p]];
    return this.cell[(p + dy * W + dx) * 4] === b;
  }

  /**
   * Index of the key of an initial pair (a, b base codes, dy, dx), creating it when new. After the
   * initial count every new key involves the token of the current merge: see stepKey.
   */
  private keyOf(a: number, b: number, dy: number, dx: number): number {
    // Two base codes touch only side by side or stacked: look those keys up in a direct table.
    const K = this.options.baseVocab;
    const table = this.baseKeys;
    if (table !== null && a < K && b < K) {
      const slot = (dy === 0 ? a : K + a) * K + b;
      const k = table[slot];
      if (k >= 0) return k;
      return (table[slot] = this.newKey(a, b, dy, dx));
    }
    const ix = this.initIndex;
    if (ix === null) throw new VtokError('BPE', 'internal: keyOf after the initial count');
    const before = ix.size;
    const i = ix.intern(a, b, pack(dy, dx));
    return i < before ? i : this.newKey(a, b, dy, dx);
  }

  /** Creates key (a, b, dy, dx) (deciding whether shape limits forbid it) and returns its index. */
  private newKey(a: number, b: number, dy: number, dx: number): number {
    const k = this.keys.add(a, b, pack(dy, dx));
    if (k >= this.count.length) this.growKeys(k + 1);
    this.count[k] = 0;
    this.head[k] = -1;
    // Shape limits (ShapeTable.mergedSize, inline: this runs for every new key).
    const sh = this.shapes;
    const o = this.options;
    const cells = sh.len[a] + sh.len[b];
    const height = Math.max(sh.height[a], dy + sh.height[b]);
    const width = Math.max(sh.maxDx[a], dx + sh.maxDx[b]) - Math.min(sh.minDx[a], dx + sh.minDx[b]) + 1;
    if (cells > o.maxShapeCells || height > o.maxExtent || width > o.maxExtent) this.count[k] = -1;
    const top = a > b ? a : b;
    if (top >= this.keyHead.length) this.keyHead = growInt32(this.keyHead, top + 1, -1);
    this.keyNextA[k] = this.keyHead[a];
    this.keyHead[a] = k;
    if (b !== a) {
      this.keyNextB[k] = this.keyHead[b];
      this.keyHead[b] = k;
    }
    if (this.spatial) {
      const gb = this.groups.size;
      const g = this.groups.intern(a, b, 0);
      if (this.groups.size > gb) {
        if (g >= this.groupHead.length) this.growGroups(g + 1);
        this.groupHead[g] = -1;
        this.groupTotal[g] = 0;
      }
      this.groupOf[k] = g;
      this.nextInGroup[k] = this.groupHead[g];
      this.groupHead[g] = k;
    }
    return k;
  }

  private growKeys(n: number): void {
    let m = this.count.length;
    while (m < n) m *= 2;
    this.count = growInt32(this.count, m);
    this.head = growInt32(this.head, m);
    if (this.touchedKey.length < m) {
      const u = new Uint8Array(m);
      u.set(this.touchedKey);
      this.touchedKey = u;
    }
    this.groupOf = growInt32(this.groupOf, m);
    this.nextInGroup = growInt32(this.nextInGroup, m);
    this.keyNextA = growInt32(this.keyNextA, m);
    this.keyNextB = growInt32(this.keyNextB, m);
  }

  private growGroups(n: number): void {
    let m = this.groupHead.length;
    while (m < n) m *= 2;
    this.groupHead = growInt32(this.groupHead, m, -1);
    const t = new Float64Array(m);
    t.set(this.groupTotal);
    this.groupTotal = t;
    const u = new Uint8Array(m);
    u.set(this.groupTouched);
    this.groupTouched = u;
  }

  private addCount(k: number, delta: number): void {
    if (delta === 0) return;
    this.count[k] += delta;
    if (!this.spatial && delta < 0) return; // decreases are found lazily when the entry is popped
    if (this.spatial) {
      const g = this.groupOf[k];
      this.groupTotal[g] += delta;
      if (!this.groupTouched[g]) {
        this.groupTouched[g] = 1;
        this.touchedGroups.push(g);
      }
    } else if (!this.touchedKey[k]) {
      this.touchedKey[k] = 1;
      this.touched.push(k);
    }
  }

  private pushPosition(k: number, p: number): void {
    if (this.poolUsed >= this.nodePos.length) this.compact();
    const nd = this.poolUsed++;
    this.nodePos[nd] = p;
    this.nodeNext[nd] = this.head[k];
    this.head[k] = nd;
  }

  /**
   * The pool is full: copy the still-valid entries of every list into a fresh
   * pool, each list contiguous (so merging walks memory in order), doubling
   * the pool when more than half of it is still valid. Nodes are only ever
   * appended, never recycled one by one.
   */
  private compact(): void {
    // One pass: copy the valid entries into a pool of the same size, then double it when more
    // than half is still in use.
    const cap = this.nodePos.length;
    let pos = new Int32Array(cap);
    let next = new Int32Array(cap);
    let used = 0;
    for (let k = 0; k < this.keys.size; k++) {
      const a = this.keys.ka[k];
      const b = this.keys.kb[k];
      const dy = offsetDy(this.keys.kc[k]);
      const dx = offsetDx(this.keys.kc[k]);
      const first = used;
      for (let nd = this.head[k]; nd >= 0; nd = this.nodeNext[nd]) {
        const p = this.nodePos[nd];
        if (!this.valid(p, a, b, dy, dx)) continue;
        pos[used] = p;
        next[used] = used + 1;
        used++;
      }
      if (used === first) {
        this.head[k] = -1;
      } else {
        this.head[k] = first;
        next[used - 1] = -1;
      }
    }
    if (used * 2 > cap) {
      pos = growInt32(pos, cap * 2);
      next = growInt32(next, cap * 2);
    }
    this.nodePos = pos;
    this.nodeNext = next;
    this.poolUsed = used;
  }

  private initialCounts(): void {
    const G = this.gridH.length;
    const cell = this.cell;
    // Pass 1: the key of every adjacent pair of cells (pairs of a key end up contiguous in the pool,
    // in raster order, so that merging walks memory in order).
    let nPairs = 0;
    for (let g = 0; g < G; g++) {
      const H = this.gridH[g];
      const W = this.gridW[g];
      if (this.horizontal) nPairs += H * (W - 1);
      if (this.vertical) nPairs += (H - 1) * W;
    }
    // The pairs' anchors and keys wait in the pool's links, nodeNext[0, nPairs) and
    // [nPairs, 2 nPairs): pages that the lists and later occurrences fill anyway (a fresh page
    // costs a fault).
    if (this.nodeNext.length < 2 * nPairs + 1024) {
      this.nodePos = new Int32Array(2 * nPairs + 1024);
      this.nodeNext = new Int32Array(2 * nPairs + 1024);
    }
    const pairPos = this.nodeNext.subarray(0, nPairs);
    const pairKey = this.nodeNext.subarray(nPairs, 2 * nPairs);
    let m = 0;
    const pair = (p: number, q: number, dy: number, dx: number): void => {
      const a = cell[p * 4];
      const b = cell[q * 4];
      const k = this.keyOf(a, b, dy, dx);
      if (dy === 0) this.cell[p * 4 + 2] = k;
      else this.cell[p * 4 + 3] = k;
      if (this.count[k] < 0) return;
      pairKey[m] = k;
      pairPos[m++] = p;
      if (a !== b) this.count[k]++;
    };
    // Self pairs: a run of L equal codes along a row (column) gives floor(L/2) merges.
    const run = (c: number, L: number, dy: number, dx: number): void => {
      if (L < 2) return;
      const k = this.keyOf(c, c, dy, dx);
      if (this.count[k] >= 0) this.count[k] += L >> 1;
    };
    for (let g = 0; g < G; g++) {
      const s = this.gridStart[g];
      const H = this.gridH[g];
      const W = this.gridW[g];
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          const p = s + y * W + x;
          if (this.horizontal && x + 1 < W) pair(p, p + 1, 0, 1);
          if (this.vertical && y + 1 < H) pair(p, p + W, 1, 0);
        }
      }
      if (this.horizontal) {
        for (let y = 0; y < H; y++) {
          let L = 1;
          for (let x = 1; x <= W; x++) {
            const p = s + y * W + x;
            if (x < W && cell[p * 4] === cell[(p - 1) * 4]) L++;
            else {
              run(cell[(p - 1) * 4], L, 0, 1);
              L = 1;
            }
          }
        }
      }
      if (this.vertical) {
        for (let x = 0; x < W; x++) {
          let L = 1;
          for (let y = 1; y <= H; y++) {
            const p = s + y * W + x;
            if (y < H && cell[p * 4] === cell[(p - W) * 4]) L++;
            else {
              run(cell[(p - W) * 4], L, 1, 0);
              L = 1;
            }
          }
        }
      }
    }
    // Pass 2: counting sort of the pairs by key into the position pool.
    const nKeys = this.keys.size;
    const base = new Int32Array(nKeys + 1);
    for (let i = 0; i < m; i++) base[pairKey[i] + 1]++;
    for (let k = 0; k < nKeys; k++) base[k + 1] += base[k];
    const fill = base.slice(0, nKeys);
    for (let i = 0; i < m; i++) this.nodePos[fill[pairKey[i]]++] = pairPos[i];
    for (let k = 0; k < nKeys; k++) {
      const b0 = base[k];
      const b1 = base[k + 1];
      if (b1 === b0) continue;
      this.head[k] = b0;
      for (let nd = b0; nd < b1 - 1; nd++) this.nodeNext[nd] = nd + 1;
      this.nodeNext[b1 - 1] = -1;
    }
    this.poolUsed = m;
    for (let k = 0; k < nKeys; k++) {
      if (this.spatial && this.count[k] > 0) this.groupTotal[this.groupOf[k]] += this.count[k];
    }
    for (let k = 0; k < nKeys; k++) {
      if (this.count[k] > 0) this.queue(this.priority(k), k);
    }
  }

  /** Length of the run of instances of token c at x + m*(dy, dx), m = 1, 2, ... (sign -1: backwards). */
  private chain(x: number, c: number, dy: number, dx: number, sign: number): number {
    let H = this.sameH;
    let W = this.sameW;
    if (W === 0) {
      const g = this.gridOf[x];
      H = this.gridH[g];
      W = this.gridW[g];
    }
    const sy = sign * dy;
    const sx = sign * dx;
    const step = sy * W + sx;
    const rc = this.rowColOf(x);
    let y = (rc >> 15) + sy;
    let xx = (rc & 32767) + sx;
    let p = x + step;
    let n = 0;
    while (y >= 0 && y < H && xx >= 0 && xx < W && this.cell[p * 4] === c) {
      n++;
      y += sy;
      xx += sx;
      p += step;
    }
    return n;
  }

  /**
   * The merges that the instance of c at x adds to self key (c, c, o) by joining the tiling (or
   * takes away by leaving it), o = (dy, dx) from x to a neighbouring instance of c. With runs of
   * `after` instances of c at x + m*o and `before` at x - m*o (m = 1, 2, ...), x joins chains of
   * floor(before/2) and floor(after/2) merges into one of floor((before + 1 + after)/2): one
   * merge more exactly when a run is odd. Returns that 0 or 1, walking the run behind x only when
   * the one ahead (at least the neighbour) is even.
   */
  private selfJoin(x: number, c: number, dy: number, dx: number): number {
    if (this.chain(x, c, dy, dx, 1) & 1) return 1;
    return this.chain(x, c, dy, dx, -1) & 1;
  }

  /**
   * Updates pair counts for the instance at x leaving the tiling, given its
   * live neighbours list[0..n) and the key of the pair with each (keys[j],
   * read from the edge arrays: no hash lookup).
   */
  private removeInstance(x: number, list: Int32Array, keys: Int32Array, n: number): void {
    const c = this.cell[x * 4];
    const count = this.count;
    let nSelf = 0;
    for (let j = 0; j < n; j++) {
      const k = keys[j];
      if (count[k] < 0 || k === this.merging) continue;
      const y = list[j];
      if (this.cell[y * 4] !== c) {
        this.addCount(k, -1);
        continue;
      }
      // Self pair: x is in the chain of key k; handle each self key once.
      const m = this.recordSelf(k, nSelf);
      if (m < 0) continue;
      nSelf = m;
      // The offset from x to y (either order: the chain runs both ways).
      const rcx = this.rowColOf(x);
      const rcy = this.rowColOf(y);
      this.addCount(k, -this.selfJoin(x, c, (rcy >> 15) - (rcx >> 15), (rcy & 32767) - (rcx & 32767)));
    }
  }

  /**
   * Self keys (a token paired with its own kind) handled so far around one
   * instance are selfSeen[0..nSelf). Records k and returns the new count, or
   * -1 when k was already handled.
   */
  private recordSelf(k: number, nSelf: number): number {
    for (let i = 0; i < nSelf; i++) if (this.selfSeen[i] === k) return -1;
    if (nSelf >= this.selfSeen.length) this.selfSeen = growInt32(this.selfSeen, nSelf + 1);
    this.selfSeen[nSelf] = k;
    return nSelf + 1;
  }

  /**
   * Updates pair counts for the new instance at x joining the tiling, given
   * its live neighbours list[0..n); records the new occurrences and writes
   * the key of the pair with each neighbour to keys[j].
   */
  private addInstance(x: number, list: Int32Array, keys: Int32Array, n: number): void {
    const c = this.cell[x * 4];
    const count = this.count;
    let nSelf = 0;
    const rcx = this.rowColOf(x);
    const ry = rcx >> 15;
    const rx = rcx & 32767;
    for (let j = 0; j < n; j++) {
      const y = list[j];
      const ty = this.cell[y * 4];
      const rcy = this.rowColOf(y);
      const k = y < x ? this.stepKey(ty, 1, ry - (rcy >> 15), rx - (rcy & 32767)) : this.stepKey(ty, 0, (rcy >> 15) - ry, (rcy & 32767) - rx);
      keys[j] = k;
      if (count[k] < 0) continue;
      this.pushPosition(k, y < x ? y : x);
      if (ty !== c) {
        this.addCount(k, 1);
        continue;
      }
      const m = this.recordSelf(k, nSelf);
      if (m < 0) continue;
      nSelf = m;
      this.addCount(k, this.selfJoin(x, c, (rcy >> 15) - ry, (rcy & 32767) - rx));
    }
  }

  /**
   * Key of the pair of the token made in this step (t) with a neighbour of
   * token ty (before = 1: ty has the earlier anchor) at offset (dy, dx)
   * between the anchors, creating it when new. Every key made after the
   * initial count involves the token of the step that made it, so a key with
   * t is either made in this step or (only when t is an earlier shape made
   * again) in the keys of t loaded by beginStepKeys: an exact per-step hash
   * table of those keys replaces a global one.
   */
  private stepKey(ty: number, before: number, dy: number, dx: number): number {
    const t = this.stepTok;
    if (ty === t) before = 0; // (t, t, o) is one key whichever instance is earlier
    const off = pack(dy, dx);
    const tag = ty * 2 + before;
    const tab = this.stepTab;
    const mask = this.stepMask;
    const stamp = this.stepStamp;
    let h = stepHash(tag, off) & mask;
    for (;;) {
      const o = h * 4;
      if (tab[o + 3] !== stamp) break;
      if (tab[o] === tag && tab[o + 1] === off) return tab[o + 2];
      h = (h + 1) & mask;
    }
    const k = before ? this.newKey(ty, t, dy, dx) : this.newKey(t, ty, dy, dx);
    this.stepInsert(tag, off, k);
    return k;
  }

  private stepInsert(tag: number, off: number, k: number): void {
    if ((this.stepCount + 1) * 2 > this.stepMask + 1) this.growStepTable();
    const tab = this.stepTab;
    const mask = this.stepMask;
    const stamp = this.stepStamp;
    let h = stepHash(tag, off) & mask;
    while (tab[h * 4 + 3] === stamp) h = (h + 1) & mask;
    const o = h * 4;
    tab[o] = tag;
    tab[o + 1] = off;
    tab[o + 2] = k;
    tab[o + 3] = stamp;
    this.stepCount++;
  }

  private growStepTable(): void {
    const old = this.stepTab;
    const stamp = this.stepStamp;
    const cap = (this.stepMask + 1) * 2;
    const tab = new Int32Array(cap * 4);
    const mask = cap - 1;
    for (let o = 0; o < old.length; o += 4) {
      if (old[o + 3] !== stamp) continue;
      let h = stepHash(old[o], old[o + 1]) & mask;
      while (tab[h * 4 + 3] === stamp) h = (h + 1) & mask;
      tab.set(old.subarray(o, o + 4), h * 4);
    }
    this.stepTab = tab;
    this.stepMask = mask;
  }

  /** Starts the per-step key table for token t; when t is an earlier shape made again, loads its keys. */
  private beginStepKeys(t: number, reused: boolean): void {
    this.stepStamp++;
    this.stepCount = 0;
    this.stepTok = t;
    if (!reused || t >= this.keyHead.length) return;
    const { ka, kb, kc } = this.keys;
    for (let k = this.keyHead[t]; k >= 0; ) {
      const a = ka[k];
      const b = kb[k];
      if (a === t) this.stepInsert(b * 2, kc[k], k);
      else this.stepInsert(a * 2 + 1, kc[k], k);
      k = a === t ? this.keyNextA[k] : this.keyNextB[k];
    }
  }

  /**
   * For the rule being merged (a + b at (dy, dx) -> t), per contact cell j of
   * t: which of a (bit 1) and b (bit 2) it touches (cs.side), one edge from it
   * into a and one into b (cs.edgeA / cs.edgeB: EDGE_* direction, -1 = none),
   * and every edge between a contact cell and t (cs.tJ, cs.tDir; cs.nT of
   * them). One scan of t's contacts then gives the neighbours of a, of b and
   * of the merged instance, the keys of their pairs with a and b, and the
   * edges to rewrite.
   */
  private contactSides(a: number, b: number, dy: number, dx: number, t: number): void {
    const { start, len, cellDy, cellDx, bStart, bLen, bDy, bDx } = this.shapes;
    const key = (y: number, x: number): number => (y + 1) * 65536 + x + 32768;
    const inA = new Set<number>();
    const inB = new Set<number>();
    for (let i = start[a], e = i + len[a]; i < e; i++) inA.add(key(cellDy[i], cellDx[i]));
    for (let i = start[b], e = i + len[b]; i < e; i++) inB.add(key(dy + cellDy[i], dx + cellDx[i]));
    const nc = bLen[t];
    const cs = this.cs;
    if (cs.side.length < nc) {
      cs.side = new Uint8Array(2 * nc);
      cs.edgeA = new Int8Array(2 * nc);
      cs.edgeB = new Int8Array(2 * nc);
      cs.tJ = new Int32Array(8 * nc);
      cs.tDir = new Uint8Array(8 * nc);
    }
    cs.nT = 0;
    for (let j = 0; j < nc; j++) {
      const y = bDy[bStart[t] + j];
      const x = bDx[bStart[t] + j];
      cs.side[j] = 0;
      cs.edgeA[j] = -1;
      cs.edgeB[j] = -1;
      for (let d = 0; d < 4; d++) {
        if (d < 2 ? !this.horizontal : !this.vertical) continue;
        const k = d === EDGE_RIGHT ? key(y, x + 1) : d === EDGE_LEFT ? key(y, x - 1) : d === EDGE_DOWN ? key(y + 1, x) : d === EDGE_UP ? key(y - 1, x) : 0;
        const ia = inA.has(k);
        const ib = inB.has(k);
        if (ia) {
          cs.side[j] |= 1;
          if (cs.edgeA[j] < 0) cs.edgeA[j] = d;
        }
        if (ib) {
          cs.side[j] |= 2;
          if (cs.edgeB[j] < 0) cs.edgeB[j] = d;
        }
        if (ia || ib) {
          cs.tJ[cs.nT] = j;
          cs.tDir[cs.nT++] = d;
        }
      }
    }
  }

  private applyMerge(k: number, a: number, b: number, dy: number, dx: number, t: number): void {
    this.contactSides(a, b, dy, dx, t);
    const nc = this.shapes.bLen[t];
    if (this.nb.length < nc + 1) {
      const n2 = 2 * nc + 2;
      this.nb = new Int32Array(n2);
      this.nbA = new Int32Array(n2);
      this.nbB = new Int32Array(n2);
      this.nbSide = new Uint8Array(n2);
      this.nbKey = new Int32Array(n2);
      this.nbKeyA = new Int32Array(n2);
      this.nbKeyB = new Int32Array(n2);
      this.nbOf = new Int32Array(n2);
    }
    // Walk the key's list of left anchors (and free it), merging the valid ones. A compaction
    // during the merge (new occurrences fill the pool) makes a new pool without this list; the
    // walk goes on in the old one.
    const nodePos = this.nodePos;
    const nodeNext = this.nodeNext;
    let nd = this.head[k];
    this.head[k] = -1;
    if (a === b) {
      // Greedy in raster order matters only when a chain can overlap itself: sort all.
      let m = 0;
      for (; nd >= 0; nd = nodeNext[nd]) {
        const p = nodePos[nd];
        if (!this.valid(p, a, b, dy, dx)) continue;
        if (m >= this.collect.length) this.collect = growInt32(this.collect, m + 1);
        this.collect[m++] = p;
      }
      this.collect.subarray(0, m).sort();
      this.mergeBatch(this.collect, m, k, a, b, dy, dx, t);
      return;
    }
    // Otherwise in list order, a batch at a time (so that each anchor's cells are still in cache):
    // first the batch's anchors from the list, then the validity checks (independent reads).
    const ps = this.collect;
    const raw = this.raw;
    while (nd >= 0) {
      let n = 0;
      for (; nd >= 0 && n < MERGE_BATCH; nd = nodeNext[nd]) raw[n++] = nodePos[nd];
      let m = 0;
      for (let i = 0; i < n; i++) {
        const p = raw[i];
        if (this.valid(p, a, b, dy, dx)) ps[m++] = p;
      }
      this.mergeBatch(ps, m, k, a, b, dy, dx, t);
    }
  }

  /** Merges the occurrences of key k (a + b at (dy, dx) -> t) at left anchors ps[0..m). */
  private mergeBatch(ps: Int32Array, m: number, k: number, a: number, b: number, dy: number, dx: number, t: number): void {
    const cell = this.cell;
    const { start, len, cellDy, cellDx, bStart, bLen, bDy, bDx } = this.shapes;
    const { side: sides, edgeA, edgeB, tJ, tDir, nT } = this.cs;
    const nc = bLen[t];
    const c0 = bStart[t];
    const nb = this.nb;
    const nbA = this.nbA;
    const nbB = this.nbB;
    const nbSide = this.nbSide;
    const nbKey = this.nbKey;
    const nbKeyA = this.nbKeyA;
    const nbKeyB = this.nbKeyB;
    const nbOf = this.nbOf;
    const mark = this.mark;
    const small = nc <= 16;
    for (let i = 0; i < m; i++) {
      const p = ps[i];
      let H = this.sameH;
      let W = this.sameW;
      if (W === 0) {
        const g = this.gridOf[p];
        H = this.gridH[g];
        W = this.gridW[g];
      }
      const q = p + dy * W + dx;
      if (cell[p * 4] !== a || cell[q * 4] !== b) continue; // taken by an earlier merge of this step
      // Neighbours of the merged shape, each with the sides (a, b) it touches and
      // the keys of its pairs with a and b (from the edge arrays).
      let n = 0;
      let s = this.stamp;
      if (!small) {
        s = ++this.stamp;
        if (s >= 0x7fffffff) {
          mark.fill(0);
          s = this.stamp = 1;
        }
      }
      const rcp = this.rowColOf(p);
      const y0 = rcp >> 15;
      const x0 = rcp & 32767;
      const gridStart = p - y0 * W - x0;
      for (let j = 0; j < nc; j++) {
        const cy = y0 + bDy[c0 + j];
        const cx = x0 + bDx[c0 + j];
        if (cy < 0 || cy >= H || cx < 0 || cx >= W) {
          nbOf[j] = -1;
          continue;
        }
        const pc = p + bDy[c0 + j] * W + bDx[c0 + j];
        const o = cell[pc * 4 + 1];
        let at = -1;
        if (small) {
          for (let r = 0; r < n; r++) {
            if (nb[r] === o) {
              at = r;
              break;
            }
          }
        } else if (mark[o - gridStart] === s) {
          at = this.markAt[o - gridStart];
        } else {
          mark[o - gridStart] = s;
          this.markAt[o - gridStart] = n;
        }
        const sj = sides[j];
        if (at < 0) {
          at = n++;
          nb[at] = o;
          nbSide[at] = sj;
          nbKeyA[at] = -1;
          nbKeyB[at] = -1;
        } else {
          nbSide[at] |= sj;
        }
        nbOf[j] = at;
        if (sj & 1 && nbKeyA[at] < 0) {
          const d = edgeA[j];
          nbKeyA[at] = d === EDGE_RIGHT ? cell[pc * 4 + 2] : d === EDGE_LEFT ? cell[(pc - 1) * 4 + 2] : d === EDGE_DOWN ? cell[pc * 4 + 3] : cell[(pc - W) * 4 + 3];
        }
        if (sj & 2 && nbKeyB[at] < 0) {
          const d = edgeB[j];
          nbKeyB[at] = d === EDGE_RIGHT ? cell[pc * 4 + 2] : d === EDGE_LEFT ? cell[(pc - 1) * 4 + 2] : d === EDGE_DOWN ? cell[pc * 4 + 3] : cell[(pc - W) * 4 + 3];
        }
      }
      let na = 0;
      let nbb = 0;
      nbKey[0] = k;
      nbA[na++] = q;
      for (let j = 0; j < n; j++) {
        if (nbSide[j] & 1) {
          nbKey[na] = nbKeyA[j];
          nbA[na++] = nb[j];
        }
        if (nbSide[j] & 2) {
          nbKeyB[nbb] = nbKeyB[j];
          nbB[nbb++] = nb[j];
        }
      }
      this.removeInstance(p, nbA, nbKey, na);
      cell[p * 4] = -2;
      this.removeInstance(q, nbB, nbKeyB, nbb);
      cell[q * 4] = -1;
      for (let c = start[b], e = c + len[b]; c < e; c++) cell[(q + cellDy[c] * W + cellDx[c]) * 4 + 1] = p;
      cell[p * 4] = t;
      this.addInstance(p, nb, nbKey, n);
      // Every edge between t and a neighbour now holds the key of their pair.
      for (let e = 0; e < nT; e++) {
        const j = tJ[e];
        const r = nbOf[j];
        if (r < 0) continue;
        const pc = p + bDy[c0 + j] * W + bDx[c0 + j];
        const d = tDir[e];
        if (d === EDGE_RIGHT) cell[pc * 4 + 2] = nbKey[r];
        else if (d === EDGE_LEFT) cell[(pc - 1) * 4 + 2] = nbKey[r];
        else if (d === EDGE_DOWN) cell[pc * 4 + 3] = nbKey[r];
        else cell[(pc - W) * 4 + 3] = nbKey[r];
      }
    }
  }

  private flushTouched(): void {
    if (this.spatial) {
      for (const g of this.touchedGroups) {
        this.groupTouched[g] = 0;
        for (let k = this.groupHead[g]; k >= 0; k = this.nextInGroup[k]) {
          if (this.count[k] > 0) this.heapPush(this.priority(k), k);
        }
      }
      this.touchedGroups.length = 0;
      return;
    }
    // Keys whose count went up at least once in this step (it may have gone down again: push the current count).
    for (const k of this.touched) {
      this.touchedKey[k] = 0;
      if (this.count[k] > 0) this.queue(this.count[k], k);
    }
    this.touched.length = 0;
  }

  // The heap keeps, beside priority and key, the tie-break fields (left * 2^31 + right, packed
  // offset) so that comparing two entries never reads the key table.

  /** Adds the entry (prio, k) to the heap, or to the waiting entries of priority 1. */
  private queue(prio: number, k: number): void {
    if (prio > this.lowMax) {
      this.heapPush(prio, k);
      return;
    }
    this.waiting[prio].push(k);
  }

  /**
   * Moves the entries waiting at priority lowMax into the heap and lowers lowMax. An entry whose
   * key's count has changed is stale: a key whose count went up has a newer entry (flushTouched),
   * and one whose count went down waits again at its count, as step would do when popping it.
   */
  private flushWaiting(): void {
    const prio = this.lowMax;
    const list = this.waiting[prio];
    this.waiting[prio] = [];
    this.lowMax = prio - 1;
    for (const k of list) {
      const cur = this.count[k];
      if (cur === prio) this.heapPush(prio, k);
      else if (cur > 0 && cur < prio) this.queue(cur, k);
    }
  }

  private heapPush(prio: number, k: number): void {
    const n = this.heapSize++;
    if (HEAP_FIELDS * (n + HEAP_SKIP + 1) > this.heap.length) {
      const grown = new Float64Array(2 * this.heap.length);
      grown.set(this.heap);
      this.heap = grown;
    }
    const h = this.heap;
    const tie = this.keys.ka[k] * 2147483648 + this.keys.kb[k];
    const off = this.keys.kc[k];
    let i = n;
    while (i > 0) {
      const parent = (i - 1) >> 2;
      const po = HEAP_FIELDS * (parent + HEAP_SKIP);
      const pp = h[po];
      // stop unless the new entry is above its parent: higher priority, then smaller (left, right), then smaller offset
      if (!(prio > pp || (prio === pp && (tie < h[po + 1] || (tie === h[po + 1] && off < h[po + 2]))))) break;
      const io = HEAP_FIELDS * (i + HEAP_SKIP);
      h[io] = pp;
      h[io + 1] = h[po + 1];
      h[io + 2] = h[po + 2];
      h[io + 3] = h[po + 3];
      i = parent;
    }
    const io = HEAP_FIELDS * (i + HEAP_SKIP);
    h[io] = prio;
    h[io + 1] = tie;
    h[io + 2] = off;
    h[io + 3] = k;
  }

  private heapPop(): void {
    const h = this.heap;
    const n = --this.heapSize;
    if (n === 0) return;
    // Sift the last entry down from the top.
    const lo = HEAP_FIELDS * (n + HEAP_SKIP);
    const prio = h[lo];
    const tie = h[lo + 1];
    const off = h[lo + 2];
    const k = h[lo + 3];
    let i = 0;
    for (;;) {
      const first = 4 * i + 1;
      if (first >= n) break;
      // The child above its siblings.
      let c = first;
      let co = HEAP_FIELDS * (c + HEAP_SKIP);
      for (let d = first + 1, end = Math.min(first + 4, n); d < end; d++) {
        const dO = HEAP_FIELDS * (d + HEAP_SKIP);
        if (h[dO] > h[co] || (h[dO] === h[co] && (h[dO + 1] < h[co + 1] || (h[dO + 1] === h[co + 1] && h[dO + 2] < h[co + 2])))) {
          c = d;
          co = dO;
        }
      }
      const pc = h[co];
      if (!(pc > prio || (pc === prio && (h[co + 1] < tie || (h[co + 1] === tie && h[co + 2] < off))))) break;
      const io = HEAP_FIELDS * (i + HEAP_SKIP);
      h[io] = pc;
      h[io + 1] = h[co + 1];
      h[io + 2] = h[co + 2];
      h[io + 3] = h[co + 3];
      i = c;
    }
    const io = HEAP_FIELDS * (i + HEAP_SKIP);
    h[io] = prio;
    h[io + 1] = tie;
    h[io + 2] = off;
    h[io + 3] = k;
  }
}

/**
 * Trains visual BPE on a corpus of code grids and returns the model.
 *
 * Example:
 *   const model = trainBpe(grids, { baseVocab: 1024, vocabSize: 2048 });
 *   const ids = model.encode(grid, 16, 16);      // shorter than 256
 *   model.decode(ids, 16, 16);                    // == grid
 */
export function trainBpe(corpus: readonly CodeGrid[], options: Partial<BpeTrainOptions>): BpeModel {
  return new BpeTrainer(corpus, options).train();
}
