/**
 * A trained visual BPE model: the merge rules, the token shapes they define,
 * and the encoder and decoder.
 *
 * encode(grid, h, w) applies the merges in learned order: merge r joins every
 * instance of its left token a at anchor p with an instance of its right
 * token b at anchor p + (dy, dx), greedily in raster order of p (so a chain
 * a a a at that offset becomes (aa) a, as in text BPE), and emits the tokens
 * in raster order of their anchors. decode(ids, h, w) needs only the ids: the
 * first uncovered cell is always the next anchor, because every shape starts
 * at its anchor and never reaches before it.
 *
 * Mode '1d' is plain BPE on the raster-order sequence: the grid is read as one
 * row of h*w codes and merges are horizontal only.
 */
import { VtokError, describeValue } from '../errors';
import { PairIndex } from './pairindex';
import { ShapeTable, ShapeCell, packOffset } from './shapes';

export type BpeMode = '2d' | '1d';
export type BpeDirections = 'horizontal' | 'vertical' | 'both';
export type BpePriority = 'frequency' | 'spatial';

export const BPE_FORMAT = 'vtok-bpe';
const OFF_RIGHT = packOffset(0, 1);
const OFF_DOWN = packOffset(1, 0);
export const BPE_VERSION = 1;

/** Settings a model was trained with; the encoder needs mode and directions. */
export interface BpeSettings {
  mode: BpeMode;
  baseVocab: number;
  directions: BpeDirections;
  maxShapeCells: number;
  maxExtent: number;
  priority: BpePriority;
  minFrequency: number;
}

/** Merge rules as parallel typed arrays; rule r makes id[r] from left[r] and right[r] at (dy[r], dx[r]). */
export interface BpeMerges {
  left: Int32Array;
  right: Int32Array;
  dy: Int32Array;
  dx: Int32Array;
  id: Int32Array;
  /** How many merges the rule made in the training corpus when it was chosen. */
  count: Int32Array;
}

/** The plain-object form of a model (typed arrays inside), embedded in the tokenizer bundle as `bundle.bpe`. */
export interface BpeModelData extends BpeSettings {
  format: typeof BPE_FORMAT;
  version: typeof BPE_VERSION;
  vocabSize: number;
  merges: BpeMerges;
}

/** One merge rule, for people (inspect, tests). */
export interface BpeMergeRule {
  left: number;
  right: number;
  dy: number;
  dx: number;
  id: number;
  count: number;
}

export class BpeModel {
  readonly settings: Readonly<BpeSettings>;
  readonly merges: Readonly<BpeMerges>;
  readonly shapes: ShapeTable;
  /** (left, right, packed offset) -> first rule index with that key. */
  private readonly rules: PairIndex;
  private readonly firstRank: Int32Array;
  /** Next rule index with the same key as rule r, or -1 (a key recurs only when a shape is remade). */
  private readonly nextSameKey: Int32Array;
  private readonly horizontal: boolean;
  private readonly vertical: boolean;
  /** Whether id t is the left (right) token of some rule: pairs of other tokens need no lookup. */
  private readonly asLeft: Uint8Array;
  private readonly asRight: Uint8Array;
  /**
   * One bit per hash of a rule key (left, right, packed offset), set for every rule: a clear bit means
   * no rule has that key, so most pairs without a rule skip the (much larger, cache-missing) rules index.
   * About 32 bits per key, so roughly 3% of keyless pairs still reach the index.
   */
  private readonly keyFilter: Int32Array;
  private readonly keyFilterShift: number;
  // Encoder work buffers, reused across calls.
  private tok = new Int32Array(0);
  private owner = new Int32Array(0);
  private mark = new Int32Array(0);
  private stamp = 0;
  private bucketHead = new Int32Array(0);
  private bits = new Int32Array(0);
  private entryPos = new Int32Array(0);
  private entryNext = new Int32Array(0);
  private batch = new Int32Array(64);
  private baseRankTable: Int16Array | Int32Array | null = null;
  private nb = new Int32Array(0);

  /** Builds a model from merge rules; checks every rule (ids, offsets, overlaps). */
  constructor(settings: BpeSettings, merges: BpeMerges) {
    this.settings = Object.freeze({ ...settings });
    this.merges = merges;
    const n = merges.left.length;
    for (const name of ['right', 'dy', 'dx', 'id', 'count'] as const) {
      if (merges[name].length !== n) throw invalidModel(`merges.${name} has length ${merges[name].length}, expected ${n}`);
    }
    const shapes = new ShapeTable(settings.baseVocab, settings.directions);
    this.rules = new PairIndex(Math.max(16, n));
    this.firstRank = new Int32Array(Math.max(16, n * 2)).fill(-1);
    this.nextSameKey = new Int32Array(n).fill(-1);
    const lastRank: number[] = [];
    for (let r = 0; r < n; r++) {
      const a = merges.left[r];
      const b = merges.right[r];
      const dy = merges.dy[r];
      const dx = merges.dx[r];
      if (!(a >= 0 && a < shapes.size && b >= 0 && b < shapes.size)) {
        throw invalidModel(`merge ${r} joins ids ${a} and ${b} but only ids 0..${shapes.size - 1} exist at that point`);
      }
      if (!(dy >= 0 && dy < 32768 && Math.abs(dx) < 32768)) throw invalidModel(`merge ${r} has offset (${dy}, ${dx}) out of range`);
      let id: number;
      try {
        id = shapes.add(a, b, dy, dx);
      } catch (e) {
        throw invalidModel(`merge ${r}: ${(e as Error).message}`);
      }
      if (id !== merges.id[r]) throw invalidModel(`merge ${r} makes id ${id} but records id ${merges.id[r]}`);
      const before = this.rules.size;
      const k = this.rules.intern(a, b, packOffset(dy, dx));
      if (this.rules.size > before) {
        this.firstRank[k] = r;
      } else {
        this.nextSameKey[lastRank[k]] = r;
      }
      lastRank[k] = r;
    }
    if (settings.mode === '1d' && settings.directions !== 'horizontal') throw invalidModel(`mode "1d" needs directions "horizontal"`);
    this.shapes = shapes;
    this.asLeft = new Uint8Array(shapes.size);
    this.asRight = new Uint8Array(shapes.size);
    for (let r = 0; r < n; r++) {
      this.asLeft[merges.left[r]] = 1;
      this.asRight[merges.right[r]] = 1;
    }
    this.horizontal = settings.directions !== 'vertical';
    this.vertical = settings.directions !== 'horizontal';
    let logBits = 10;
    while (logBits < 30 && 1 << logBits < 32 * this.rules.size) logBits++;
    this.keyFilter = new Int32Array(1 << (logBits - 5));
    this.keyFilterShift = 32 - logBits;
    const { ka, kb, kc } = this.rulesKeys();
    for (let k = 0; k < ka.length; k++) {
      const bit = keyHash(ka[k], kb[k], kc[k]) >>> this.keyFilterShift;
      this.keyFilter[bit >>> 5] |= 1 << (bit & 31);
    }
  }

  /** Base codes plus distinct merged shapes. */
  get vocabSize(): number {
    return this.shapes.size;
  }

  get baseVocab(): number {
    return this.settings.baseVocab;
  }

  /** The cells of token id t (raster order, relative to its anchor). */
  shape(t: number): ShapeCell[] {
    this.checkId(t, 'shape');
    return this.shapes.cells(t);
  }

  /** Rule r as an object. */
  rule(r: number): BpeMergeRule {
    const m = this.merges;
    return { left: m.left[r], right: m.right[r], dy: m.dy[r], dx: m.dx[r], id: m.id[r], count: m.count[r] };
  }

  get numMerges(): number {
    return this.merges.left.length;
  }

  /**
   * Encodes an h x w grid of base codes (row-major) into token ids in raster
   * order of their anchors.
   *
   * Example (K = 3, one merge (1, 1, dy 0, dx 1) -> 3, mode '2d'):
   *   encode([1, 1, 1,
   *           2, 1, 1], 2, 3) -> [3, 1, 2, 3]
   *   (row 0: the chain 1 1 1 becomes (11) 1 greedily from the left)
   */
  encode(grid: ArrayLike<number>, h: number, w: number): Int32Array {
    checkGridSize(grid, h, w, 'encode');
    const K = this.settings.baseVocab;
    let H = h;
    let W = w;
    if (this.settings.mode === '1d') {
      H = 1;
      W = h * w;
    }
    const n = H * W;
    if (this.tok.length < n) {
      this.tok = new Int32Array(n);
      this.owner = new Int32Array(n);
      this.mark = new Int32Array(n);
      this.stamp = 0;
    }
    const { tok, owner, mark } = this;
    for (let p = 0; p < n; p++) {
      const c = grid[p];
      if (!(c >= 0 && c < K && Number.isInteger(c))) {
        throw new VtokError('BPE', `Code ${describeValue(c)} at cell ${p} (row ${Math.floor(p / w)}, column ${p % w}) is not a base code 0..${K - 1}`);
      }
      tok[p] = c;
      owner[p] = p;
    }
    // Bucket queue by rule rank: bucket r lists the left anchors of pairs whose key is rule r's key
    // and that appeared before rule r's turn. A bitset finds the next nonempty bucket; rules are
    // processed in learned order, and within a rule anchors are taken in raster order.
    const R = this.merges.left.length;
    if (this.bits.length < (R >> 5) + 1) {
      this.bucketHead = new Int32Array(R).fill(-1);
      this.bits = new Int32Array((R >> 5) + 1);
    }
    const bucketHead = this.bucketHead;
    const bits = this.bits;
    let entryPos = this.entryPos;
    let entryNext = this.entryNext;
    let nEntries = 0;
    const push = (rank: number, pos: number): void => {
      if (nEntries >= entryPos.length) {
        const m = Math.max(1024, entryPos.length * 2);
        const a = new Int32Array(m);
        a.set(entryPos);
        const b = new Int32Array(m);
        b.set(entryNext);
        entryPos = this.entryPos = a;
        entryNext = this.entryNext = b;
      }
      entryPos[nEntries] = pos;
      entryNext[nEntries] = bucketHead[rank];
      bucketHead[rank] = nEntries++;
      bits[rank >> 5] |= 1 << (rank & 31);
    };
    const rules = this.rules;
    const firstRank = this.firstRank;
    const nextSame = this.nextSameKey;
    const baseRanks = this.baseRanks();
    const KK = K * K;
    const keyFilter = this.keyFilter;
    const keyFilterShift = this.keyFilterShift;
    // Initial pairs of single cells (the key filter first: most pairs have no rule, and a clear bit
    // saves a read of the large rank table or index).
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const p = y * W + x;
        if (this.horizontal && x + 1 < W) {
          if (mayHaveRule(keyFilter, keyFilterShift, tok[p], tok[p + 1], OFF_RIGHT)) {
            let r: number;
            if (baseRanks) r = baseRanks[tok[p] * K + tok[p + 1]];
            else {
              const k = rules.find(tok[p], tok[p + 1], OFF_RIGHT);
              r = k < 0 ? -1 : firstRank[k];
            }
            if (r >= 0) push(r, p);
          }
        }
        if (this.vertical && y + 1 < H) {
          if (mayHaveRule(keyFilter, keyFilterShift, tok[p], tok[p + W], OFF_DOWN)) {
            let r: number;
            if (baseRanks) r = baseRanks[KK + tok[p] * K + tok[p + W]];
            else {
              const k = rules.find(tok[p], tok[p + W], OFF_DOWN);
              r = k < 0 ? -1 : firstRank[k];
            }
            if (r >= 0) push(r, p);
          }
        }
      }
    }
    const { left, right, dy: mdy, dx: mdx, id: mid } = this.merges;
    const { start, len, cellDy, cellDx, bStart, bLen, bDy, bDx } = this.shapes;
    const asLeft = this.asLeft;
    const asRight = this.asRight;
    const maxNb = 4 * (this.settings.maxShapeCells + 1);
    if (this.nb.length < maxNb) this.nb = new Int32Array(maxNb);
    const nb = this.nb;
    let batch = this.batch;
    const nWords = (R >> 5) + 1;
    let wi = 0;
    while (wi < nWords) {
      const word = bits[wi];
      if (word === 0) {
        wi++;
        continue;
      }
      const r = (wi << 5) + (31 - Math.clz32(word & -word));
      bits[wi] = word & (word - 1);
      // Take bucket r (it is complete: merges of rule r only create pairs of later rules).
      let m = 0;
      for (let e = bucketHead[r]; e >= 0; e = entryNext[e]) m++;
      if (m > batch.length) batch = this.batch = new Int32Array(2 * m);
      let fillAt = m;
      for (let e = bucketHead[r]; e >= 0; e = entryNext[e]) batch[--fillAt] = entryPos[e]; // undo the list's LIFO order
      bucketHead[r] = -1;
      const a = left[r];
      const b = right[r];
      const t = mid[r];
      if (a === b) {
        // Raster order matters only when instances of one token chain at this offset (greedy from the first).
        // Entries arrive nearly sorted, so insertion sort is about linear.
        for (let i = 1; i < m; i++) {
          const v = batch[i];
          let j = i - 1;
          while (j >= 0 && batch[j] > v) {
            batch[j + 1] = batch[j];
            j--;
          }
          batch[j + 1] = v;
        }
      }
      const step = mdy[r] * W + mdx[r];
      for (let bi = 0; bi < m; bi++) {
        const p = batch[bi];
        const q = p + step;
        if (tok[p] !== a || tok[q] !== b) continue; // stale, or taken by an earlier anchor of this rule
        // b's cells now belong to p.
        for (let i = start[b], e = i + len[b]; i < e; i++) owner[q + cellDy[i] * W + cellDx[i]] = p;
        tok[p] = t;
        tok[q] = -1;
        // Pairs of the new instance with its neighbours, each queued at the first rule after r with that key.
        const py = Math.floor(p / W);
        const px = p - py * W;
        let nn = 0;
        let s = ++this.stamp;
        if (s >= 0x7fffffff) {
          mark.fill(0);
          s = this.stamp = 1;
        }
        mark[p] = s;
        for (let i = bStart[t], e = i + bLen[t]; i < e; i++) {
          const cy = py + bDy[i];
          const cx = px + bDx[i];
          if (cy < 0 || cy >= H || cx < 0 || cx >= W) continue;
          const o = owner[cy * W + cx];
          if (mark[o] !== s) {
            mark[o] = s;
            nb[nn++] = o;
          }
        }
        for (let j = 0; j < nn; j++) {
          const o = nb[j];
          const e0 = o < p ? o : p;
          const l0 = o < p ? p : o;
          if (!asLeft[tok[e0]] || !asRight[tok[l0]]) continue; // no rule has this pair of tokens
          const ey = Math.floor(e0 / W);
          const ly = Math.floor(l0 / W);
          const off = packOffset(ly - ey, l0 - ly * W - (e0 - ey * W));
          if (!mayHaveRule(keyFilter, keyFilterShift, tok[e0], tok[l0], off)) continue; // no rule has this key
          const k = rules.find(tok[e0], tok[l0], off);
          if (k < 0) continue;
          let rr = firstRank[k];
          while (rr >= 0 && rr <= r) rr = nextSame[rr];
          if (rr >= 0) push(rr, e0);
        }
      }
    }
    let count = 0;
    for (let p = 0; p < n; p++) if (tok[p] >= 0) count++;
    const out = new Int32Array(count);
    let j = 0;
    for (let p = 0; p < n; p++) if (tok[p] >= 0) out[j++] = tok[p];
    return out;
  }

  /**
   * First rule rank of every pair of base codes side by side ([0, K*K)) and stacked ([K*K, 2*K*K)),
   * -1 for none: one array read instead of a hash probe for the first pairs of a grid. Only for
   * K <= 2048 (2 * K * K ints); null otherwise.
   */
  private baseRanks(): Int16Array | Int32Array | null {
    const K = this.settings.baseVocab;
    if (K > 2048) return null;
    if (this.baseRankTable) return this.baseRankTable;
    // Ranks fit in 16 bits for up to 32,767 rules: half the memory, more of it in cache.
    const table = this.merges.left.length < 32767 ? new Int16Array(2 * K * K).fill(-1) : new Int32Array(2 * K * K).fill(-1);
    const { ka, kb, kc } = this.rulesKeys();
    for (let k = 0; k < ka.length; k++) {
      if (ka[k] >= K || kb[k] >= K) continue;
      if (kc[k] === OFF_RIGHT) table[ka[k] * K + kb[k]] = this.firstRank[k];
      else if (kc[k] === OFF_DOWN) table[K * K + ka[k] * K + kb[k]] = this.firstRank[k];
    }
    this.baseRankTable = table;
    return table;
  }

  private rulesKeys(): { ka: Int32Array; kb: Int32Array; kc: Int32Array } {
    const n = this.rules.size;
    return { ka: this.rules.ka.subarray(0, n), kb: this.rules.kb.subarray(0, n), kc: this.rules.kc.subarray(0, n) };
  }

  /**
   * Rebuilds the h x w grid of base codes from token ids alone. Throws
   * VtokError 'BPE' naming the position and id for an id outside the
   * vocabulary, a shape that leaves the grid or covers a covered cell, ids
   * left over once the grid is full, or a sequence that ends before the grid
   * is covered.
   */
  decode(ids: ArrayLike<number>, h: number, w: number): Int32Array {
    checkDims(h, w, 'decode');
    let H = h;
    let W = w;
    if (this.settings.mode === '1d') {
      H = 1;
      W = h * w;
    }
    const n = H * W;
    const out = new Int32Array(n).fill(-1);
    const { start, len, cellDy, cellDx, cellCode } = this.shapes;
    const V = this.shapes.size;
    let cursor = 0;
    const where = (cell: number): string => (this.settings.mode === '1d' ? `cell ${cell}` : `row ${Math.floor(cell / W)}, column ${cell % W}`);
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i];
      if (!(Number.isInteger(t) && t >= 0 && t < V)) {
        throw new VtokError('BPE', `Token ${describeValue(t)} at position ${i} is outside the vocabulary 0..${V - 1}`, { subject: String(i) });
      }
      while (cursor < n && out[cursor] >= 0) cursor++;
      if (cursor === n) {
        throw new VtokError('BPE', `Token ${t} at position ${i} is past the end: the ${h}x${w} grid is already full after ${i} tokens`, { subject: String(i) });
      }
      const ay = Math.floor(cursor / W);
      const ax = cursor - ay * W;
      for (let c = start[t], e = c + len[t]; c < e; c++) {
        const y = ay + cellDy[c];
        const x = ax + cellDx[c];
        if (y >= H || x < 0 || x >= W) {
          throw new VtokError(
            'BPE',
            `Token ${t} at position ${i} (anchor ${where(cursor)}) reaches outside the ${h}x${w} grid at offset (${cellDy[c]}, ${cellDx[c]})`,
            { subject: String(i) },
          );
        }
        const cell = y * W + x;
        if (out[cell] >= 0) {
          throw new VtokError('BPE', `Token ${t} at position ${i} (anchor ${where(cursor)}) covers ${where(cell)}, which is already covered`, {
            subject: String(i),
          });
        }
        out[cell] = cellCode[c];
      }
    }
    while (cursor < n && out[cursor] >= 0) cursor++;
    if (cursor < n) {
      let missing = 0;
      for (let c = cursor; c < n; c++) if (out[c] < 0) missing++;
      throw new VtokError(
        'BPE',
        `Token sequence of length ${ids.length} ends before the ${h}x${w} grid is covered: ${missing} cells uncovered, the first at ${where(cursor)}`,
      );
    }
    return out;
  }

  /** The plain-object form (typed arrays are copied). */
  toJSON(): BpeModelData {
    const m = this.merges;
    return {
      format: BPE_FORMAT,
      version: BPE_VERSION,
      ...this.settings,
      vocabSize: this.vocabSize,
      merges: {
        left: m.left.slice(),
        right: m.right.slice(),
        dy: m.dy.slice(),
        dx: m.dx.slice(),
        id: m.id.slice(),
        count: m.count.slice(),
      },
    };
  }

  /** Rebuilds a model from `toJSON()` output (typed arrays or plain number arrays); checks everything. */
  static fromJSON(data: unknown): BpeModel {
    if (typeof data !== 'object' || data === null) throw invalidModel(`expected an object but received ${describeValue(data)}`);
    const d = data as Record<string, unknown>;
    if (d.format !== BPE_FORMAT) throw invalidModel(`expected format "${BPE_FORMAT}" but received ${describeValue(d.format)}`);
    if (d.version !== BPE_VERSION) {
      throw new VtokError('STORE_VERSION', `BPE model version ${describeValue(d.version)} is not supported; this vtok reads version ${BPE_VERSION}`);
    }
    const mode = oneOf(d.mode, ['2d', '1d'] as const, 'mode');
    const directions = oneOf(d.directions, ['horizontal', 'vertical', 'both'] as const, 'directions');
    const priority = oneOf(d.priority, ['frequency', 'spatial'] as const, 'priority');
    const int = (name: string, min: number): number => {
      const v = d[name];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw invalidModel(`${name} must be an integer >= ${min} but is ${describeValue(v)}`);
      return v;
    };
    const settings: BpeSettings = {
      mode,
      directions,
      priority,
      baseVocab: int('baseVocab', 1),
      maxShapeCells: int('maxShapeCells', 2),
      maxExtent: int('maxExtent', 1),
      minFrequency: int('minFrequency', 1),
    };
    const mm = d.merges as Record<string, unknown> | undefined;
    if (typeof mm !== 'object' || mm === null) throw invalidModel(`merges must be an object but is ${describeValue(mm)}`);
    const arr = (name: string): Int32Array => {
      const v = mm[name];
      if (!(ArrayBuffer.isView(v) || Array.isArray(v))) throw invalidModel(`merges.${name} must be an array but is ${describeValue(v)}`);
      const out = Int32Array.from(v as ArrayLike<number>);
      const src = v as ArrayLike<number>;
      for (let i = 0; i < out.length; i++) if (out[i] !== src[i]) throw invalidModel(`merges.${name}[${i}] is not an int32: ${describeValue(src[i])}`);
      return out;
    };
    const model = new BpeModel(settings, { left: arr('left'), right: arr('right'), dy: arr('dy'), dx: arr('dx'), id: arr('id'), count: arr('count') });
    if (d.vocabSize !== model.vocabSize) throw invalidModel(`vocabSize is ${describeValue(d.vocabSize)} but the merges make ${model.vocabSize} ids`);
    return model;
  }

  private checkId(t: number, where: string): void {
    if (!(Number.isInteger(t) && t >= 0 && t < this.shapes.size)) {
      throw new VtokError('BPE', `Token ${describeValue(t)} for ${where} is outside the vocabulary 0..${this.shapes.size - 1}`);
    }
  }
}

/** A 32-bit hash of a rule key for BpeModel's key filter (independent of PairIndex's hash); use its top bits. */
function keyHash(a: number, b: number, c: number): number {
  let h = Math.imul(a, 0x9e3779b1) ^ b;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) ^ c;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Whether key (a, b, c) may have a rule: its bit in BpeModel's key filter (false: certainly none). */
function mayHaveRule(filter: Int32Array, shift: number, a: number, b: number, c: number): boolean {
  const bit = keyHash(a, b, c) >>> shift;
  return (filter[bit >>> 5] & (1 << (bit & 31))) !== 0;
}

function invalidModel(msg: string): VtokError {
  return new VtokError('BPE', `Invalid BPE model: ${msg}`);
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], name: string): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw invalidModel(`${name} must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')} but is ${describeValue(v)}`);
  }
  return v as T;
}

function checkDims(h: number, w: number, where: string): void {
  if (!(Number.isInteger(h) && h >= 1 && Number.isInteger(w) && w >= 1 && h < 32768 && w < 32768)) {
    throw new VtokError('BPE', `Expected grid size h, w as integers between 1 and 32767 for ${where} but received ${describeValue(h)} x ${describeValue(w)}`);
  }
}

/** Checks h, w and that grid holds exactly h*w codes. */
export function checkGridSize(grid: ArrayLike<number>, h: number, w: number, where: string): void {
  checkDims(h, w, where);
  if (grid === null || typeof grid !== 'object' || typeof grid.length !== 'number' || grid.length !== h * w) {
    throw new VtokError('BPE', `Expected a grid of ${h}x${w} = ${h * w} codes for ${where} but received ${describeValue(grid)}`);
  }
}
