/**
 * Byte-level BPE for text: vtok's own small text tokenizer for the unified
 * vocabulary (Sennrich et al. 2016, "Neural Machine Translation of Rare Words
 * with Subword Units"; byte-level as in GPT-2, Radford et al. 2019).
 *
 * Ids 0..255 are the raw bytes of the UTF-8 encoding; id 256 + i is merge i,
 * the concatenation of the two ids of that merge. Text is first split into
 * chunks (words with their leading space, runs of digits, runs of other
 * symbols, whitespace) so merges never cross a word boundary; the split keeps
 * every character, so decode(encode(s)) === s for every well-formed string
 * (emoji, CJK, combining marks included).
 *
 * Worked example (the one on Wikipedia's "Byte pair encoding" page):
 *   train(["aaabdaaabac"], { vocabSize: 259 }) merges
 *     (a, a) -> 256, (a, b) -> 257, (256, 257) -> 258
 *   and encode("aaabdaaabac") = [258, 100, 258, 97, 99]   ("XdXac")
 * Ties between equally frequent pairs go to the smaller pair (first id, then
 * second id), so training is deterministic.
 */

import { VtokError, checkInt, invalidOption, resolveOptions } from './errors';

/** Format name and version written into every serialized tokenizer. */
export const TEXT_BPE_FORMAT = 'vtok-text-bpe';
export const TEXT_BPE_VERSION = 1;

/**
 * The chunk pattern: an optional leading space followed by letters, or by
 * digits, or by other non-space symbols; then whitespace (trailing whitespace
 * before a word is left for the word's leading space). Every character of a
 * string falls into one of the alternatives.
 */
const CHUNK_PATTERN = / ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** A lone (unpaired) UTF-16 surrogate: such a string has no UTF-8 encoding. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Largest id a merge may produce; pair keys are a * PAIR_BASE + b. */
const PAIR_BASE = 1 << 22;

/** The key of the pair (a, b) in countPairs' map. */
export function pairKey(a: number, b: number): number {
  return a * PAIR_BASE + b;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: false });

export interface TextBpeTrainOptions {
  /** Final vocabulary size: 256 byte ids plus (vocabSize - 256) merges. Default 512. */
  vocabSize: number;
  /** Stop early when the most frequent pair occurs fewer times than this. Default 2. */
  minFrequency: number;
}

const TRAIN_DEFAULTS: TextBpeTrainOptions = { vocabSize: 512, minFrequency: 2 };

/** The plain-object form of a trained tokenizer (the store embeds it). */
// A type alias, not an interface, so it is assignable to vocab's SerializedTextTokenizer (index signature).
export type SerializedTextBpe = {
  kind: 'byte-bpe';
  format: typeof TEXT_BPE_FORMAT;
  version: number;
  /** Merge i joins ids merges[2i] and merges[2i+1] into id 256 + i. */
  merges: Int32Array;
};

/** Splits text into the chunks that merges never cross. Concatenated, the chunks are the input. */
export function splitChunks(text: string): string[] {
  return text.match(CHUNK_PATTERN) ?? [];
}

/** The UTF-8 bytes of a string; throws for a string with a lone surrogate (it has no UTF-8 form). */
export function utf8Bytes(text: string): Uint8Array {
  checkWellFormed(text);
  return utf8Encoder.encode(text);
}

function checkWellFormed(text: string): void {
  const m = LONE_SURROGATE.exec(text);
  if (m !== null) {
    throw new VtokError(
      'INVALID_INPUT',
      `Expected well-formed text but found a lone UTF-16 surrogate (0x${text.charCodeAt(m.index).toString(16)}) at index ${m.index}; it has no UTF-8 encoding`,
      { subject: 'text' },
    );
  }
}

/**
 * Counts adjacent pairs of `ids`, adding `weight` per occurrence to `counts`
 * (keyed by pairKey(a, b)).
 * Example: countPairs([1, 2, 3, 1, 2]) -> {(1,2): 2, (2,3): 1, (3,1): 1}
 */
export function countPairs(ids: ArrayLike<number>, counts: Map<number, number> = new Map(), weight = 1): Map<number, number> {
  for (let i = 0; i + 1 < ids.length; i++) {
    const key = ids[i] * PAIR_BASE + ids[i + 1];
    counts.set(key, (counts.get(key) ?? 0) + weight);
  }
  return counts;
}

/**
 * Replaces every non-overlapping occurrence (left to right) of the pair (a, b) by `id`.
 * Example: mergePair([1, 1, 1, 2], 1, 1, 9) -> [9, 1, 2]
 */
export function mergePair(ids: readonly number[], a: number, b: number, id: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
      out.push(id);
      i++;
    } else {
      out.push(ids[i]);
    }
  }
  return out;
}

/** A byte-level BPE text tokenizer: `encode`, `decode`, `serialize`; build one with `train` or `fromMerges`. */
export class TextBpe {
  readonly kind = 'byte-bpe';
  /** Merge i is the pair (merges[2i], merges[2i+1]) -> 256 + i. */
  private readonly merges: Int32Array;
  /** pair key -> merged id (also the merge's rank, since ids grow with rank). */
  private readonly rank = new Map<number, number>();
  /** id -> the bytes it stands for. */
  private readonly bytesOf: Uint8Array[] = [];
  private readonly cache = new Map<string, number[]>();

  private constructor(merges: Int32Array) {
    this.merges = merges;
    for (let b = 0; b < 256; b++) this.bytesOf.push(Uint8Array.of(b));
    for (let i = 0; i < merges.length / 2; i++) {
      const a = merges[2 * i];
      const b = merges[2 * i + 1];
      const id = 256 + i;
      if (!Number.isInteger(a) || !Number.isInteger(b) || a < 0 || b < 0 || a >= id || b >= id) {
        throw new VtokError('VOCAB', `Merge ${i} joins (${a}, ${b}) but a merge may only join ids below its own id ${id}`, {
          subject: `merge ${i}`,
        });
      }
      const key = a * PAIR_BASE + b;
      if (this.rank.has(key)) {
        throw new VtokError('VOCAB', `Merge ${i} repeats the pair (${a}, ${b}) of merge ${this.rank.get(key)! - 256}`, {
          subject: `merge ${i}`,
        });
      }
      this.rank.set(key, id);
      const joined = new Uint8Array(this.bytesOf[a].length + this.bytesOf[b].length);
      joined.set(this.bytesOf[a], 0);
      joined.set(this.bytesOf[b], this.bytesOf[a].length);
      this.bytesOf.push(joined);
    }
  }

  /** Number of ids: 256 bytes plus the merges. */
  get size(): number {
    return 256 + this.merges.length / 2;
  }

  /** Number of merges. */
  get mergeCount(): number {
    return this.merges.length / 2;
  }

  /** A tokenizer from a merge list (pairs flattened: [a0, b0, a1, b1, ...]). */
  static fromMerges(merges: ArrayLike<number>): TextBpe {
    if (merges.length % 2 !== 0) throw invalidOption('merges', 'an even number of ids (pairs)', merges);
    return new TextBpe(Int32Array.from(merges));
  }

  /**
   * Learns merges from a corpus. Words are counted once with their frequency,
   * and only the words that contain the merged pair are recounted after a merge.
   */
  static train(corpus: Iterable<string>, options?: Partial<TextBpeTrainOptions>): TextBpe {
    const opts = resolveOptions('TextBpe.train', TRAIN_DEFAULTS, options);
    checkInt('vocabSize', opts.vocabSize, 256, PAIR_BASE);
    checkInt('minFrequency', opts.minFrequency, 1);

    // Unique chunks with their counts.
    const chunkCount = new Map<string, number>();
    for (const text of corpus) {
      if (typeof text !== 'string') throw invalidOption('corpus item', 'a string', text);
      for (const chunk of splitChunks(text)) chunkCount.set(chunk, (chunkCount.get(chunk) ?? 0) + 1);
    }
    const words: number[][] = [];
    const freq: number[] = [];
    for (const [chunk, n] of chunkCount) {
      words.push(Array.from(utf8Bytes(chunk)));
      freq.push(n);
    }

    // Pair counts and, per pair, the words that may contain it (a superset is fine).
    const counts = new Map<number, number>();
    const where = new Map<number, Set<number>>();
    const addWord = (w: number, sign: number): void => {
      const ids = words[w];
      for (let i = 0; i + 1 < ids.length; i++) {
        const key = ids[i] * PAIR_BASE + ids[i + 1];
        const c = (counts.get(key) ?? 0) + sign * freq[w];
        if (c === 0) counts.delete(key);
        else counts.set(key, c);
        if (sign > 0) {
          let set = where.get(key);
          if (set === undefined) where.set(key, (set = new Set()));
          set.add(w);
        }
      }
    };
    for (let w = 0; w < words.length; w++) addWord(w, 1);

    const merges: number[] = [];
    for (let id = 256; id < opts.vocabSize; id++) {
      let bestKey = -1;
      let bestCount = 0;
      for (const [key, c] of counts) {
        if (c > bestCount || (c === bestCount && key < bestKey)) {
          bestKey = key;
          bestCount = c;
        }
      }
      if (bestKey < 0 || bestCount < opts.minFrequency) break;
      const a = Math.floor(bestKey / PAIR_BASE);
      const b = bestKey - a * PAIR_BASE;
      merges.push(a, b);
      const affected = where.get(bestKey)!;
      where.delete(bestKey);
      for (const w of affected) {
        addWord(w, -1);
        words[w] = mergePair(words[w], a, b, id);
        addWord(w, 1);
      }
    }
    return new TextBpe(Int32Array.from(merges));
  }

  /** Ids of a string. Throws for a string with a lone surrogate (no UTF-8 form). */
  encode(text: string): number[] {
    if (typeof text !== 'string') throw invalidOption('text', 'a string', text);
    checkWellFormed(text); // here, so an error names the index in the whole text
    const out: number[] = [];
    for (const chunk of splitChunks(text)) {
      let ids = this.cache.get(chunk);
      if (ids === undefined) {
        ids = this.encodeChunk(utf8Bytes(chunk));
        if (this.cache.size > 50000) this.cache.clear();
        this.cache.set(chunk, ids);
      }
      for (const id of ids) out.push(id);
    }
    return out;
  }

  /** Applies merges to one chunk's bytes, lowest rank first (the order they were learned). */
  private encodeChunk(bytes: Uint8Array): number[] {
    let ids = Array.from(bytes);
    while (ids.length > 1) {
      let best = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const r = this.rank.get(ids[i] * PAIR_BASE + ids[i + 1]);
        if (r !== undefined && (best < 0 || r < best)) best = r;
      }
      if (best < 0) break;
      ids = mergePair(ids, this.merges[2 * (best - 256)], this.merges[2 * (best - 256) + 1], best);
    }
    return ids;
  }

  /** The bytes that a sequence of ids stands for. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let n = 0;
    for (let i = 0; i < ids.length; i++) n += this.bytesOfId(ids[i], i).length;
    const out = new Uint8Array(n);
    let o = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.bytesOfId(ids[i], i);
      out.set(b, o);
      o += b.length;
    }
    return out;
  }

  /**
   * The text of a sequence of ids. Ids that do not form valid UTF-8 (possible
   * in sampled output, never in encode's output) decode to U+FFFD.
   */
  decode(ids: ArrayLike<number>): string {
    return utf8Decoder.decode(this.decodeBytes(ids));
  }

  /** The bytes of one id. */
  tokenBytes(id: number): Uint8Array {
    return this.bytesOfId(id, 0).slice();
  }

  private bytesOfId(id: number, position: number): Uint8Array {
    const bytes = Number.isInteger(id) ? this.bytesOf[id] : undefined;
    if (bytes === undefined) {
      throw new VtokError('VOCAB', `Expected a text id between 0 and ${this.size - 1} at position ${position} but received ${id}`, {
        subject: String(id),
      });
    }
    return bytes;
  }

  serialize(): SerializedTextBpe {
    return { kind: 'byte-bpe', format: TEXT_BPE_FORMAT, version: TEXT_BPE_VERSION, merges: this.merges.slice() };
  }

  static deserialize(data: unknown): TextBpe {
    const d = data as Partial<SerializedTextBpe> | null;
    if (d === null || typeof d !== 'object' || d.format !== TEXT_BPE_FORMAT) {
      throw new VtokError('STORE_CORRUPT', `Expected a serialized text BPE with format "${TEXT_BPE_FORMAT}"`, { subject: 'text' });
    }
    if (d.version !== TEXT_BPE_VERSION) {
      throw new VtokError('STORE_VERSION', `Text BPE version ${String(d.version)} is not supported (this build reads version ${TEXT_BPE_VERSION})`, {
        subject: 'text',
      });
    }
    // Any integer array is accepted: typed arrays may come back from another realm (workers, jest).
    if (!ArrayBuffer.isView(d.merges) && !Array.isArray(d.merges)) {
      throw new VtokError('STORE_CORRUPT', `Expected merges of a serialized text BPE to be an integer array but received ${describeKind(d.merges)}`, {
        subject: 'merges',
      });
    }
    return TextBpe.fromMerges(d.merges as ArrayLike<number>);
  }
}

function describeKind(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v !== 'object') return typeof v;
  return (v as object).constructor?.name ?? 'object';
}
