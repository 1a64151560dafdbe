/**
 * The token-shard format, as plain data (no msgpackr, no disk here; the
 * reader and writer are src/io/dataset/shard.ts).
 *
 * A token directory (the `--out` of `vtok tokenize`) holds, for a run split
 * into `count` parts (`--shard index/count`; one part when not split):
 *
 *   <p>shard-00000.msgpack   shard k: the records of inputs [kR, (k+1)R) of the part
 *   <p>progress.json         journal while the part runs (gone when it is done)
 *   <p>errors.jsonl          every skipped input of the part, one JSON object a line
 *   <p>manifest.json         written last: the part is complete
 *
 * where <p> is empty for an unsplit run and `part-0003-of-0008.` for part 3
 * of 8 (so every part can write into one shared folder), and R is
 * `recordsPerShard`. `vtok manifest merge` writes the plain `manifest.json`
 * and `errors.jsonl` of the whole run next to the parts' files.
 *
 * Shard files are msgpack (plain maps, no msgpackr extensions) of a
 * `ShardWire` object. Integer arrays are stored as explicit little-endian
 * bytes (`uint16` when every value fits, else `int32`), never as msgpackr
 * typed-array extensions: those are unsafe for 16-bit arrays and come back as
 * foreign objects under Jest (see ENGINE.md). Any msgpack reader can load a
 * shard; in Python:
 *   rec = msgpack.unpackb(open(f, 'rb').read())['records'][0]
 *   codes = np.frombuffer(rec['codes'], '<u2' if shard['codeDtype'] == 'uint16' else '<i4').reshape(rec['shape'])
 *
 * Which part an input belongs to: inputs are sorted by key (JavaScript string
 * order, i.e. UTF-16 code units), and input number j of the sorted list of
 * ALL inputs goes to part j mod count. Every part enumerates all inputs, so
 * `manifest merge` can check that the parts cover the same input set exactly
 * once (through the digest of the sorted keys).
 */

import { VtokError, checkInt, describeValue } from './errors';
import type { SkippedInput, SkipReason, TokenRecord } from './pipeline-types';
import { SKIP_REASONS } from './pipeline-types';

export const SHARD_FORMAT = 'vtok-shard';
export const SHARD_VERSION = 1;
export const MANIFEST_FORMAT = 'vtok-tokens';
export const MANIFEST_VERSION = 1;
export const PROGRESS_FORMAT = 'vtok-progress';
export const PROGRESS_VERSION = 2;

/** How integer ids are stored: 2 or 4 bytes each, little-endian. */
export type IdDtype = 'uint16' | 'int32';

/** One part of a split run: part `index` of `count` (0-based). */
export interface PartSpec {
  index: number;
  count: number;
}

/**
 * Parses `--shard i/n` ("3/8": part 3 of 8, 0-based).
 *
 * Example: parseShardSpec('3/8') -> { index: 3, count: 8 }
 */
export function parseShardSpec(spec: string): PartSpec {
  const m = typeof spec === 'string' ? /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(spec) : null;
  if (!m) throw new VtokError('INVALID_OPTION', `Expected "i/n" (part i of n, 0 <= i < n) for shard but received ${describeValue(spec)}`, { subject: 'shard' });
  const count = Number(m[2]);
  const index = Number(m[1]);
  checkPart({ index, count });
  return { index, count };
}

/** Checks a PartSpec and returns it. */
export function checkPart(part: PartSpec): PartSpec {
  if (part === null || typeof part !== 'object') throw new VtokError('INVALID_OPTION', `Expected {index, count} for part but received ${describeValue(part)}`, { subject: 'part' });
  const count = checkInt('part.count', part.count, 1, 1_000_000);
  checkInt('part.index', part.index, 0, count - 1);
  return { index: part.index, count };
}

/** The file-name prefix of a part: '' for an unsplit run, 'part-0003-of-0008.' otherwise. */
export function partPrefix(part: PartSpec): string {
  if (part.count === 1) return '';
  const width = Math.max(4, String(part.count - 1).length);
  return `part-${String(part.index).padStart(width, '0')}-of-${String(part.count).padStart(width, '0')}.`;
}

export function shardFileName(part: PartSpec, shard: number): string {
  return `${partPrefix(part)}shard-${String(shard).padStart(5, '0')}.msgpack`;
}
export function manifestFileName(part: PartSpec): string {
  return `${partPrefix(part)}manifest.json`;
}
export function errorsFileName(part: PartSpec): string {
  return `${partPrefix(part)}errors.jsonl`;
}
export function progressFileName(part: PartSpec): string {
  return `${partPrefix(part)}progress.json`;
}

/** What a file name in a token directory is, or null for a file vtok did not write. */
export interface OutputName {
  part: PartSpec;
  kind: 'shard' | 'manifest' | 'errors' | 'progress';
  /** Shard number, for kind 'shard'. */
  shard?: number;
  /** True for a temporary file of an atomic write (`.<name>.<pid>.<random>.tmp`). */
  temp: boolean;
}

const OUTPUT_NAME = /^(?:part-(\d+)-of-(\d+)\.)?(?:shard-(\d+)\.msgpack|(manifest)\.json|(errors)\.jsonl|(progress)\.json)$/;
const TEMP_NAME = /^\.(.+)\.\d+\.[0-9a-f]+\.tmp$/;

/**
 * Parses a file name of a token directory.
 *
 * Example:
 *   parseOutputName('part-0003-of-0008.shard-00012.msgpack')
 *     -> { part: { index: 3, count: 8 }, kind: 'shard', shard: 12, temp: false }
 *   parseOutputName('notes.txt') -> null
 */
export function parseOutputName(name: string): OutputName | null {
  let base = name;
  let temp = false;
  const t = TEMP_NAME.exec(name);
  if (t) {
    base = t[1];
    temp = true;
  }
  const m = OUTPUT_NAME.exec(base);
  if (!m) return null;
  const part = m[1] === undefined ? { index: 0, count: 1 } : { index: Number(m[1]), count: Number(m[2]) };
  if (part.count < 1 || part.index >= part.count) return null;
  if (m[3] !== undefined) return { part, kind: 'shard', shard: Number(m[3]), temp };
  const kind = (m[4] ?? m[5] ?? m[6]) as 'manifest' | 'errors' | 'progress';
  return { part, kind, temp };
}

/** The smallest dtype that holds ids 0..vocab-1. */
export function idDtype(vocab: number): IdDtype {
  return vocab <= 65536 ? 'uint16' : 'int32';
}

/**
 * Integer ids -> little-endian bytes.
 *
 * Example: encodeIds(Int32Array.of(1, 258), 'uint16') -> bytes [1, 0, 2, 1]
 */
export function encodeIds(ids: ArrayLike<number>, dtype: IdDtype): Uint8Array {
  const n = ids.length;
  if (dtype === 'uint16') {
    const out = new Uint8Array(n * 2);
    for (let i = 0; i < n; i++) {
      const v = ids[i];
      if (!(v >= 0 && v < 65536)) throw new VtokError('INVALID_INPUT', `Id ${describeValue(v)} at position ${i} does not fit in uint16`);
      out[2 * i] = v & 0xff;
      out[2 * i + 1] = v >>> 8;
    }
    return out;
  }
  const out = new Uint8Array(n * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < n; i++) view.setInt32(4 * i, ids[i], true);
  return out;
}

/** Little-endian bytes -> Int32Array (the inverse of encodeIds). */
export function decodeIds(bytes: Uint8Array, dtype: IdDtype, where = 'ids'): Int32Array {
  const size = dtype === 'uint16' ? 2 : 4;
  if (!(bytes instanceof Uint8Array) || bytes.length % size !== 0) {
    throw new VtokError('STORE_CORRUPT', `Expected ${dtype} bytes (a multiple of ${size}) for ${where} but received ${describeValue(bytes)}`);
  }
  const n = bytes.length / size;
  const out = new Int32Array(n);
  if (size === 2) {
    for (let i = 0; i < n; i++) out[i] = bytes[2 * i] | (bytes[2 * i + 1] << 8);
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, true);
  }
  return out;
}

/** The options of a run that decide what its records are (all parts share them). */
export interface RunOptions {
  tokenizer: { id: string; imageSize: number; gridShape: [number, number]; codebookSize: number };
  /** The BPE model's content id and vocabulary size, or null. */
  bpe: { id: string; vocabSize: number } | null;
  storeCodes: boolean;
  fit: string;
  background: string;
  kernel: string;
  failOn: string;
  maxPixels: number;
  maxFileBytes: number;
  recordsPerShard: number;
  sidecars: boolean;
  /** sha256 of the label/caption mapping file, or null. */
  labels: string | null;
  /** Number of parts the input is split into (`--shard i/n`: n). */
  parts: number;
  /** All inputs, before the split: their number and the sha256 of their sorted keys joined by '\n'. */
  inputs: { count: number; digest: string };
}

/** A shard as listed in a manifest. */
export interface ShardEntry {
  /** Path of the shard file, relative to the manifest's folder ('/' separators). */
  file: string;
  sha256: string;
  bytes: number;
  /** Part and shard number within the part. */
  part: number;
  shard: number;
  records: number;
  errors: number;
}

/** manifest.json: a complete part (or, after merge, a complete run). */
export interface TokenManifest {
  format: typeof MANIFEST_FORMAT;
  version: number;
  /** sha256 of the canonical JSON of `options`: the run's identity. */
  run: string;
  options: RunOptions;
  /** The part this manifest covers; {index: 0, count: 1} for an unsplit or merged run. */
  part: PartSpec;
  /** Number of parts merged into this manifest, or 0 when it was written by a run. */
  merged: number;
  counts: { inputs: number; records: number; errors: number; byReason: Record<SkipReason, number> };
  shards: ShardEntry[];
  /** File name of the errors list, relative to the manifest's folder. */
  errors: string;
  /** The input arguments as given (for people; not part of the run's identity). */
  inputSpecs: string[];
}

/** progress.json: the journal of a part while it runs. */
export interface ProgressJournal {
  format: typeof PROGRESS_FORMAT;
  version: number;
  run: string;
  options: RunOptions;
  part: PartSpec;
  /**
   * Completed shards, by shard number. The inputs each one skipped are in the
   * shard file (version 1 listed them here too, so the journal rewritten after
   * every shard grew with all errors so far).
   */
  done: ShardEntry[];
}

/** The object stored in a shard file. */
export interface ShardWire {
  format: typeof SHARD_FORMAT;
  version: number;
  /** The run digest (manifest `run`) and the tokenizer's content id. */
  run: string;
  tokenizer: string;
  part: [number, number];
  shard: number;
  /** The shard's inputs are numbers [start, end) of the part's sorted input list. */
  slice: [number, number];
  codeDtype: IdDtype;
  bpeDtype: IdDtype;
  records: WireRecord[];
  skipped: SkippedInput[];
}

/** A TokenRecord as stored: ids as little-endian bytes. */
export type WireRecord = Omit<TokenRecord, 'codes' | 'bpe'> & { codes: Uint8Array | null; bpe: Uint8Array | null };

/** A record as stored: ids as little-endian bytes. */
export function recordToWire(r: TokenRecord, codeDtype: IdDtype, bpeDtype: IdDtype): WireRecord {
  return {
    key: r.key,
    source: r.source,
    sha256: r.sha256,
    width: r.width,
    height: r.height,
    shape: [r.shape[0], r.shape[1]],
    codes: r.codes === null ? null : encodeIds(r.codes, codeDtype),
    bpe: r.bpe === null ? null : encodeIds(r.bpe, bpeDtype),
    label: r.label,
    caption: r.caption,
  };
}

function corrupt(where: string, what: string, value: unknown): VtokError {
  return new VtokError('STORE_CORRUPT', `${where}: expected ${what} but found ${describeValue(value)}`, { subject: where });
}

/** A stored record back to a TokenRecord, checking every field. */
export function recordFromWire(w: WireRecord, codeDtype: IdDtype, bpeDtype: IdDtype, where: string): TokenRecord {
  if (w === null || typeof w !== 'object') throw corrupt(where, 'a record', w);
  for (const f of ['key', 'source', 'sha256'] as const) if (typeof w[f] !== 'string') throw corrupt(`${where} ${f}`, 'a string', w[f]);
  for (const f of ['width', 'height'] as const) if (!Number.isInteger(w[f]) || w[f] < 0) throw corrupt(`${where} ${f}`, 'an integer >= 0', w[f]);
  if (!Array.isArray(w.shape) || w.shape.length !== 2 || !w.shape.every((s) => Number.isInteger(s) && s > 0)) {
    throw corrupt(`${where} shape`, '[h, w]', w.shape);
  }
  const codes = w.codes === null || w.codes === undefined ? null : decodeIds(w.codes, codeDtype, `${where} codes`);
  if (codes !== null && codes.length !== w.shape[0] * w.shape[1]) {
    throw corrupt(`${where} codes`, `${w.shape[0] * w.shape[1]} codes for shape [${w.shape}]`, codes);
  }
  const bpe = w.bpe === null || w.bpe === undefined ? null : decodeIds(w.bpe, bpeDtype, `${where} bpe`);
  if (codes === null && bpe === null) throw corrupt(where, 'codes or bpe ids', null);
  const label = w.label ?? null;
  if (label !== null && typeof label !== 'string' && typeof label !== 'number') throw corrupt(`${where} label`, 'a string, number or null', label);
  const caption = w.caption ?? null;
  if (caption !== null && typeof caption !== 'string') throw corrupt(`${where} caption`, 'a string or null', caption);
  return {
    key: w.key,
    source: w.source,
    sha256: w.sha256,
    width: w.width,
    height: w.height,
    shape: [w.shape[0], w.shape[1]],
    codes,
    bpe,
    label,
    caption,
  };
}

/** Checks the header fields of an unpacked shard object. */
export function checkShardWire(s: unknown, where: string): ShardWire {
  const w = s as ShardWire;
  if (w === null || typeof w !== 'object' || w.format !== SHARD_FORMAT) {
    throw corrupt(where, `a ${SHARD_FORMAT} file`, w === null || typeof w !== 'object' ? w : w.format);
  }
  if (w.version !== SHARD_VERSION) {
    throw new VtokError('STORE_VERSION', `${where}: ${SHARD_FORMAT} version ${describeValue(w.version)} is not supported (this vtok reads version ${SHARD_VERSION})`, {
      subject: where,
    });
  }
  if (typeof w.run !== 'string' || typeof w.tokenizer !== 'string') throw corrupt(where, 'run and tokenizer ids', w.run);
  if (!Array.isArray(w.part) || !Array.isArray(w.slice) || !Number.isInteger(w.shard)) throw corrupt(where, 'part, shard and slice', w.part);
  if (w.codeDtype !== 'uint16' && w.codeDtype !== 'int32') throw corrupt(`${where} codeDtype`, '"uint16" or "int32"', w.codeDtype);
  if (w.bpeDtype !== 'uint16' && w.bpeDtype !== 'int32') throw corrupt(`${where} bpeDtype`, '"uint16" or "int32"', w.bpeDtype);
  if (!Array.isArray(w.records) || !Array.isArray(w.skipped)) throw corrupt(where, 'records and skipped lists', w.records);
  for (const e of w.skipped) checkSkipped(e, where);
  return w;
}

/** Checks one skipped-input object (a line of errors.jsonl). */
export function checkSkipped(e: unknown, where: string): SkippedInput {
  const s = e as SkippedInput;
  if (s === null || typeof s !== 'object' || typeof s.key !== 'string' || typeof s.source !== 'string' || typeof s.message !== 'string') {
    throw corrupt(where, 'a skipped input {key, source, reason, code, message}', e);
  }
  if (!SKIP_REASONS.includes(s.reason)) throw corrupt(`${where} reason`, `one of ${SKIP_REASONS.join(', ')}`, s.reason);
  return s;
}

/** Zero counts for every skip reason. */
export function emptyReasonCounts(): Record<SkipReason, number> {
  const out = {} as Record<SkipReason, number>;
  for (const r of SKIP_REASONS) out[r] = 0;
  return out;
}

/** Checks the fields of a parsed manifest.json. */
export function checkManifest(m: unknown, where: string): TokenManifest {
  const x = m as TokenManifest;
  if (x === null || typeof x !== 'object' || x.format !== MANIFEST_FORMAT) {
    throw corrupt(where, `a ${MANIFEST_FORMAT} manifest`, x === null || typeof x !== 'object' ? x : x.format);
  }
  if (x.version !== MANIFEST_VERSION) {
    throw new VtokError('STORE_VERSION', `${where}: ${MANIFEST_FORMAT} version ${describeValue(x.version)} is not supported (this vtok reads version ${MANIFEST_VERSION})`, {
      subject: where,
    });
  }
  if (typeof x.run !== 'string' || x.options === null || typeof x.options !== 'object' || !Array.isArray(x.shards)) {
    throw corrupt(where, 'run, options and shards', x.run);
  }
  for (const s of x.shards) {
    if (s === null || typeof s !== 'object' || typeof s.file !== 'string' || typeof s.sha256 !== 'string' || !Number.isInteger(s.records)) {
      throw corrupt(`${where} shards`, 'entries {file, sha256, bytes, part, shard, records, errors}', s);
    }
  }
  return x;
}

/**
 * JSON with object keys sorted at every level: the same data always gives the
 * same text, so its hash identifies it.
 *
 * Example: canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] }) -> '{"a":[2,{"c":4,"d":3}],"b":1}'
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

/** Size of part i of n over N sorted inputs (input j goes to part j mod n). */
export function partSize(N: number, i: number, n: number): number {
  return N > i ? Math.floor((N - 1 - i) / n) + 1 : 0;
}

/** Number of shards of a part with n inputs and R records per shard (0 for an empty part). */
export function shardCount(n: number, recordsPerShard: number): number {
  return Math.ceil(n / recordsPerShard);
}
