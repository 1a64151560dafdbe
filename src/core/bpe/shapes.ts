/**
 * Token shapes of two-dimensional visual BPE.
 *
 * A token id below `baseVocab` (K) is one base code: the one-cell shape
 * [(0, 0, id)]. A merged id >= K is a *shape*: a list of cells (dy, dx, code)
 * relative to the token's *anchor*, its first cell in raster order. So no cell
 * has dy < 0, or dy == 0 and dx < 0, and the anchor cell (0, 0) is always
 * first. A merge rule (left a, right b, offset (dy, dx)) puts b's anchor at
 * (dy, dx) from a's anchor, with (dy, dx) after (0, 0) in raster order
 * (dy > 0, or dy == 0 and dx > 0); then every cell of b is after a's anchor
 * too, so the merged token keeps a's anchor.
 *
 * Example (K = 4): merge (a=1, b=2, dy=0, dx=1) -> id 4 with cells
 * [(0,0,1), (0,1,2)]; then merge (a=4, b=3, dy=1, dx=1) -> id 5 with cells
 * [(0,0,1), (0,1,2), (1,1,3)]:
 *     1 2
 *       3
 */
import { VtokError } from '../errors';

/** Packs an anchor offset into one int32: dy * 65536 + (dx + 32768). Needs 0 <= dy < 32768 and |dx| < 32768. */
export function packOffset(dy: number, dx: number): number {
  return dy * 65536 + (dx + 32768);
}

export function offsetDy(off: number): number {
  return Math.floor(off / 65536);
}

export function offsetDx(off: number): number {
  return (off % 65536) - 32768;
}

/** One cell of a token's shape, relative to its anchor. */
export interface ShapeCell {
  dy: number;
  dx: number;
  code: number;
}

/**
 * All token shapes of a vocabulary, flat: cells of id t are
 * cellDy/cellDx/cellCode[start[t] .. start[t] + len[t]), in raster order.
 */
export class ShapeTable {
  readonly baseVocab: number;
  /** Number of ids (base codes plus distinct merged shapes). */
  size: number;
  start: Int32Array;
  len: Int32Array;
  /** Bounding box of each shape relative to its anchor: rows 0..height-1, columns minDx..maxDx. */
  height: Int32Array;
  minDx: Int32Array;
  maxDx: Int32Array;
  cellDy: Int32Array;
  cellDx: Int32Array;
  cellCode: Int32Array;
  /**
   * Contact cells of each shape: the cells outside it that touch it in an
   * allowed direction, relative to the anchor (flat, like the cells). A
   * neighbour instance covers one of these; scanning them instead of all
   * 4 sides of every cell skips the shape's inside.
   */
  bStart: Int32Array;
  bLen: Int32Array;
  bDy: Int32Array;
  bDx: Int32Array;
  private nCells: number;
  private nContacts = 0;
  private readonly horizontal: boolean;
  private readonly vertical: boolean;
  /** Merged shapes by hash of their cells (cellHash, raster order); equal hashes are told apart cell by cell. */
  private readonly byHash = new Map<number, number[]>();
  /** Scratch for setContacts. */
  private candidates = new Float64Array(64);

  constructor(baseVocab: number, directions: 'horizontal' | 'vertical' | 'both' = 'both') {
    this.baseVocab = baseVocab;
    this.horizontal = directions !== 'vertical';
    this.vertical = directions !== 'horizontal';
    this.size = baseVocab;
    const cap = Math.max(16, baseVocab * 2);
    this.start = new Int32Array(cap);
    this.len = new Int32Array(cap);
    this.height = new Int32Array(cap);
    this.minDx = new Int32Array(cap);
    this.maxDx = new Int32Array(cap);
    this.cellDy = new Int32Array(cap * 2);
    this.cellDx = new Int32Array(cap * 2);
    this.cellCode = new Int32Array(cap * 2);
    this.bStart = new Int32Array(cap);
    this.bLen = new Int32Array(cap);
    this.bDy = new Int32Array(cap * 4);
    this.bDx = new Int32Array(cap * 4);
    for (let c = 0; c < baseVocab; c++) {
      this.start[c] = c;
      this.len[c] = 1;
      this.height[c] = 1;
      this.cellCode[c] = c;
      this.setContacts(c);
    }
    this.nCells = baseVocab;
  }

  /**
   * Contact cells of shape id (its cells set): every allowed neighbour of a cell, as
   * packOffset(dy + 1, dx), sorted (raster order) without repeats, minus the shape's own cells
   * (in the same order, so one merge-like walk tells them apart).
   */
  private setContacts(id: number): void {
    const from = this.start[id];
    const end = from + this.len[id];
    const { cellDy, cellDx } = this;
    if (this.candidates.length < 4 * this.len[id]) this.candidates = new Float64Array(8 * this.len[id]);
    const cand = this.candidates;
    let m = 0;
    for (let i = from; i < end; i++) {
      const y = cellDy[i] + 1;
      const x = cellDx[i];
      if (this.horizontal) {
        cand[m++] = packOffset(y, x - 1);
        cand[m++] = packOffset(y, x + 1);
      }
      if (this.vertical) {
        cand[m++] = packOffset(y - 1, x);
        cand[m++] = packOffset(y + 1, x);
      }
    }
    const sorted = cand.subarray(0, m).sort();
    if (this.nContacts + m > this.bDy.length) {
      let n = this.bDy.length;
      while (n < this.nContacts + m) n *= 2;
      const grow = (x: Int32Array): Int32Array => {
        const y = new Int32Array(n);
        y.set(x);
        return y;
      };
      this.bDy = grow(this.bDy);
      this.bDx = grow(this.bDx);
    }
    this.bStart[id] = this.nContacts;
    let inside = from; // the first cell of the shape not before the candidate
    for (let r = 0; r < m; r++) {
      const k = sorted[r];
      if (r > 0 && k === sorted[r - 1]) continue;
      while (inside < end && packOffset(cellDy[inside] + 1, cellDx[inside]) < k) inside++;
      if (inside < end && packOffset(cellDy[inside] + 1, cellDx[inside]) === k) continue;
      this.bDy[this.nContacts] = offsetDy(k) - 1;
      this.bDx[this.nContacts] = offsetDx(k);
      this.nContacts++;
    }
    this.bLen[id] = this.nContacts - this.bStart[id];
  }

  /** Cells of the shape made by putting b's anchor at (dy, dx) from a's anchor (not stored). */
  mergedCells(a: number, b: number, dy: number, dx: number): ShapeCell[] {
    const cells: ShapeCell[] = [];
    for (let i = this.start[a], e = i + this.len[a]; i < e; i++) {
      cells.push({ dy: this.cellDy[i], dx: this.cellDx[i], code: this.cellCode[i] });
    }
    for (let i = this.start[b], e = i + this.len[b]; i < e; i++) {
      cells.push({ dy: dy + this.cellDy[i], dx: dx + this.cellDx[i], code: this.cellCode[i] });
    }
    cells.sort((p, q) => p.dy - q.dy || p.dx - q.dx);
    return cells;
  }

  /** Number of cells and bounding box (height, width) of the merged shape, without building it. */
  mergedSize(a: number, b: number, dy: number, dx: number): { cells: number; height: number; width: number } {
    const height = Math.max(this.height[a], dy + this.height[b]);
    const lo = Math.min(this.minDx[a], dx + this.minDx[b]);
    const hi = Math.max(this.maxDx[a], dx + this.maxDx[b]);
    return { cells: this.len[a] + this.len[b], height, width: hi - lo + 1 };
  }

  /** The id of an existing identical merged shape (cells in raster order), or -1. */
  findShape(cells: readonly ShapeCell[]): number {
    let h = HASH_SEED;
    for (const c of cells) h = cellHash(h, c.dy, c.dx, c.code);
    for (const id of this.byHash.get(h) ?? []) {
      const s = this.start[id];
      if (this.len[id] === cells.length && cells.every((c, i) => c.dy === this.cellDy[s + i] && c.dx === this.cellDx[s + i] && c.code === this.cellCode[s + i])) return id;
    }
    return -1;
  }

  /**
   * Adds the merge of a and b at offset (dy, dx) and returns its id: a new id,
   * or the id of an identical shape made earlier by another merge (as Hugging
   * Face's trainer reuses the id of an identical string). Throws when the two
   * shapes overlap or the offset is not after the anchor in raster order.
   */
  add(a: number, b: number, dy: number, dx: number): number {
    if (!(dy > 0 || (dy === 0 && dx > 0))) {
      throw new VtokError('BPE', `Merge offset (${dy}, ${dx}) must come after the anchor in raster order`);
    }
    const n = this.len[a] + this.len[b];
    this.ensure(this.size + 1, this.nCells + n);
    // The cells of a and those of b (moved by (dy, dx)) are each in raster order: merge the two
    // lists into the free space after the last shape, which becomes the new shape's if it is new.
    const { cellDy, cellDx, cellCode } = this;
    const at = this.nCells;
    let i = this.start[a];
    const ie = i + this.len[a];
    let j = this.start[b];
    const je = j + this.len[b];
    let hash = HASH_SEED;
    let height = 0;
    let lo = 0;
    let hi = 0;
    for (let w = at; w < at + n; w++) {
      const by = j < je ? dy + cellDy[j] : 0;
      const bx = j < je ? dx + cellDx[j] : 0;
      const fromA = j >= je || (i < ie && (cellDy[i] < by || (cellDy[i] === by && cellDx[i] < bx)));
      if (!fromA && i < ie && cellDy[i] === by && cellDx[i] === bx) {
        throw new VtokError('BPE', `Merge of ids ${a} and ${b} at offset (${dy}, ${dx}) overlaps at cell (${by}, ${bx})`);
      }
      const y = fromA ? cellDy[i] : by;
      const x = fromA ? cellDx[i] : bx;
      cellDy[w] = y;
      cellDx[w] = x;
      cellCode[w] = fromA ? cellCode[i++] : cellCode[j++];
      hash = cellHash(hash, y, x, cellCode[w]);
      height = Math.max(height, y + 1);
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
    const same = this.byHash.get(hash);
    for (const id of same ?? []) {
      if (this.len[id] !== n) continue;
      const s = this.start[id];
      let k = 0;
      while (k < n && cellDy[s + k] === cellDy[at + k] && cellDx[s + k] === cellDx[at + k] && cellCode[s + k] === cellCode[at + k]) k++;
      if (k === n) return id;
    }
    const id = this.size++;
    this.start[id] = at;
    this.len[id] = n;
    this.nCells += n;
    this.height[id] = height;
    this.minDx[id] = lo;
    this.maxDx[id] = hi;
    if (same) same.push(id);
    else this.byHash.set(hash, [id]);
    this.setContacts(id);
    return id;
  }

  /** The cells of id t, in raster order. */
  cells(t: number): ShapeCell[] {
    const out: ShapeCell[] = [];
    for (let i = this.start[t], e = i + this.len[t]; i < e; i++) {
      out.push({ dy: this.cellDy[i], dx: this.cellDx[i], code: this.cellCode[i] });
    }
    return out;
  }

  private ensure(ids: number, cells: number): void {
    if (ids > this.start.length) {
      let n = this.start.length;
      while (n < ids) n *= 2;
      const grow = (x: Int32Array): Int32Array => {
        const y = new Int32Array(n);
        y.set(x);
        return y;
      };
      this.start = grow(this.start);
      this.len = grow(this.len);
      this.height = grow(this.height);
      this.minDx = grow(this.minDx);
      this.maxDx = grow(this.maxDx);
      this.bStart = grow(this.bStart);
      this.bLen = grow(this.bLen);
    }
    if (cells > this.cellDy.length) {
      let n = this.cellDy.length;
      while (n < cells) n *= 2;
      const grow = (x: Int32Array): Int32Array => {
        const y = new Int32Array(n);
        y.set(x);
        return y;
      };
      this.cellDy = grow(this.cellDy);
      this.cellDx = grow(this.cellDx);
      this.cellCode = grow(this.cellCode);
    }
  }
}

const HASH_SEED = 0x2545f491;

/** Folds one cell (dy, dx, code) into the hash h of a shape's cells. */
function cellHash(h: number, dy: number, dx: number, code: number): number {
  h = Math.imul(h ^ packOffset(dy, dx), 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15) ^ code, 0x85ebca77);
  return h ^ (h >>> 13);
}
