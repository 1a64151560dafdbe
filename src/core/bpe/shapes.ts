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
  private readonly byShape = new Map<string, number>();

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
      this.setContacts(c, [{ dy: 0, dx: 0, code: c }]);
    }
    this.nCells = baseVocab;
  }

  private setContacts(id: number, cells: readonly ShapeCell[]): void {
    const inside = new Set<number>();
    for (const c of cells) inside.add(packOffset(c.dy + 1, c.dx));
    const out = new Set<number>();
    const add = (dy: number, dx: number): void => {
      const k = packOffset(dy + 1, dx);
      if (!inside.has(k)) out.add(k);
    };
    for (const c of cells) {
      if (this.horizontal) {
        add(c.dy, c.dx - 1);
        add(c.dy, c.dx + 1);
      }
      if (this.vertical) {
        add(c.dy - 1, c.dx);
        add(c.dy + 1, c.dx);
      }
    }
    const list = [...out].sort((a, b) => a - b);
    if (this.nContacts + list.length > this.bDy.length) {
      let n = this.bDy.length;
      while (n < this.nContacts + list.length) n *= 2;
      const grow = (x: Int32Array): Int32Array => {
        const y = new Int32Array(n);
        y.set(x);
        return y;
      };
      this.bDy = grow(this.bDy);
      this.bDx = grow(this.bDx);
    }
    this.bStart[id] = this.nContacts;
    this.bLen[id] = list.length;
    for (const k of list) {
      this.bDy[this.nContacts] = offsetDy(k) - 1;
      this.bDx[this.nContacts] = offsetDx(k);
      this.nContacts++;
    }
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

  /** The id of an existing identical shape, or -1. */
  findShape(cells: readonly ShapeCell[]): number {
    return this.byShape.get(shapeKey(cells)) ?? -1;
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
    const cells = this.mergedCells(a, b, dy, dx);
    for (let i = 1; i < cells.length; i++) {
      if (cells[i].dy === cells[i - 1].dy && cells[i].dx === cells[i - 1].dx) {
        throw new VtokError('BPE', `Merge of ids ${a} and ${b} at offset (${dy}, ${dx}) overlaps at cell (${cells[i].dy}, ${cells[i].dx})`);
      }
    }
    const key = shapeKey(cells);
    const existing = this.byShape.get(key);
    if (existing !== undefined) return existing;
    const id = this.size++;
    this.ensure(id + 1, this.nCells + cells.length);
    this.start[id] = this.nCells;
    this.len[id] = cells.length;
    let h = 0;
    let lo = 0;
    let hi = 0;
    for (const c of cells) {
      this.cellDy[this.nCells] = c.dy;
      this.cellDx[this.nCells] = c.dx;
      this.cellCode[this.nCells] = c.code;
      this.nCells++;
      h = Math.max(h, c.dy + 1);
      lo = Math.min(lo, c.dx);
      hi = Math.max(hi, c.dx);
    }
    this.height[id] = h;
    this.minDx[id] = lo;
    this.maxDx[id] = hi;
    this.byShape.set(key, id);
    this.setContacts(id, cells);
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

function shapeKey(cells: readonly ShapeCell[]): string {
  let s = '';
  for (const c of cells) s += `${c.dy},${c.dx},${c.code};`;
  return s;
}
