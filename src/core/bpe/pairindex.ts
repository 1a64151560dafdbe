/**
 * An open-addressing hash index from an integer triple (a, b, c) to a dense
 * index 0, 1, 2, ... in insertion order. Callers keep whatever they need per
 * entry in their own typed arrays indexed by that dense index, so a resize of
 * the hash slots never moves their data. No deletion (BPE never needs it).
 *
 * Example:
 *   const ix = new PairIndex();
 *   ix.intern(3, 7, 65537); // 0 (new)
 *   ix.intern(5, 5, 65537); // 1 (new)
 *   ix.find(3, 7, 65537);   // 0
 *   ix.find(7, 3, 65537);   // -1
 */
export class PairIndex {
  /** The key fields of entry i. */
  ka: Int32Array;
  kb: Int32Array;
  kc: Int32Array;
  /** Number of entries. */
  size = 0;
  /** Hash slots, 4 ints each: a, b, c, entry index (-1 = empty); one cache line per probe. */
  private slots: Int32Array;
  private mask: number;

  constructor(initialCapacity = 1024) {
    let cap = 16;
    while (cap < initialCapacity * 2) cap *= 2;
    this.slots = PairIndex.emptySlots(cap);
    this.mask = cap - 1;
    const n = Math.max(16, initialCapacity);
    this.ka = new Int32Array(n);
    this.kb = new Int32Array(n);
    this.kc = new Int32Array(n);
  }

  private static emptySlots(cap: number): Int32Array {
    const s = new Int32Array(cap * 4);
    for (let i = 3; i < s.length; i += 4) s[i] = -1;
    return s;
  }

  private static hash(a: number, b: number, c: number): number {
    let h = Math.imul(a ^ 0x5bd1e995, 0x9e3779b1);
    h = Math.imul(h ^ (h >>> 15) ^ b, 0x85ebca77);
    h = Math.imul(h ^ (h >>> 13) ^ c, 0xc2b2ae3d);
    return (h ^ (h >>> 16)) >>> 0;
  }

  /** The dense index of (a, b, c), or -1. */
  find(a: number, b: number, c: number): number {
    const { slots, mask } = this;
    let s = PairIndex.hash(a, b, c) & mask;
    for (;;) {
      const o = s << 2;
      const i = slots[o + 3];
      if (i < 0) return -1;
      if (slots[o] === a && slots[o + 1] === b && slots[o + 2] === c) return i;
      s = (s + 1) & mask;
    }
  }

  /** The dense index of (a, b, c), inserting it when missing (check `size` before/after to tell). */
  intern(a: number, b: number, c: number): number {
    const { slots, mask } = this;
    let s = PairIndex.hash(a, b, c) & mask;
    for (;;) {
      const o = s << 2;
      const i = slots[o + 3];
      if (i < 0) break;
      if (slots[o] === a && slots[o + 1] === b && slots[o + 2] === c) return i;
      s = (s + 1) & mask;
    }
    const i = this.size++;
    if (i >= this.ka.length) this.growEntries();
    this.ka[i] = a;
    this.kb[i] = b;
    this.kc[i] = c;
    const o = s << 2;
    slots[o] = a;
    slots[o + 1] = b;
    slots[o + 2] = c;
    slots[o + 3] = i;
    if (this.size * 2 > mask + 1) this.rehash();
    return i;
  }

  private growEntries(): void {
    const n = this.ka.length * 2;
    const grow = (x: Int32Array): Int32Array => {
      const y = new Int32Array(n);
      y.set(x);
      return y;
    };
    this.ka = grow(this.ka);
    this.kb = grow(this.kb);
    this.kc = grow(this.kc);
  }

  private rehash(): void {
    const cap = (this.mask + 1) * 2;
    const slots = PairIndex.emptySlots(cap);
    const mask = cap - 1;
    for (let i = 0; i < this.size; i++) {
      const a = this.ka[i];
      const b = this.kb[i];
      const c = this.kc[i];
      let s = PairIndex.hash(a, b, c) & mask;
      while (slots[(s << 2) + 3] >= 0) s = (s + 1) & mask;
      const o = s << 2;
      slots[o] = a;
      slots[o + 1] = b;
      slots[o + 2] = c;
      slots[o + 3] = i;
    }
    this.slots = slots;
    this.mask = mask;
  }
}

/** Grows an Int32Array to at least n entries (doubling), keeping its contents; fills new entries with `fill`. */
export function growInt32(x: Int32Array, n: number, fill = 0): Int32Array<ArrayBuffer> {
  if (x.length >= n) return x as Int32Array<ArrayBuffer>;
  let m = Math.max(16, x.length);
  while (m < n) m *= 2;
  const y = new Int32Array(m);
  y.set(x);
  if (fill !== 0) y.fill(fill, x.length);
  return y;
}

/**
 * Integer triples (a, b, c) by dense index 0, 1, 2, ... in insertion order,
 * with no index from triple to entry (for callers that find their entries
 * another way).
 */
export class TripleList {
  ka: Int32Array;
  kb: Int32Array;
  kc: Int32Array;
  /** Number of entries. */
  size = 0;

  constructor(initialCapacity = 1024) {
    const n = Math.max(16, initialCapacity);
    this.ka = new Int32Array(n);
    this.kb = new Int32Array(n);
    this.kc = new Int32Array(n);
  }

  /** Appends (a, b, c) and returns its index. */
  add(a: number, b: number, c: number): number {
    const i = this.size++;
    if (i >= this.ka.length) {
      this.ka = growInt32(this.ka, i + 1);
      this.kb = growInt32(this.kb, i + 1);
      this.kc = growInt32(this.kc, i + 1);
    }
    this.ka[i] = a;
    this.kb[i] = b;
    this.kc[i] = c;
    return i;
  }
}
