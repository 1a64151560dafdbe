/**
 * The tokenizer bundle file (`.vtok`): one trained tokenizer (or AR model, or
 * BPE model) in one self-checking file, named by a content id. The format is
 * specified in codebooks/README.md; in short:
 *
 *   header   192 bytes: magic, format name, version, section lengths, hashes
 *   meta     msgpack: name, createdAt, meta, parents (descriptive: not part of the id)
 *   head     msgpack: kind, config, tensor shapes, bpe, vocab, with every typed
 *            array replaced by a reference into the data section
 *   data     the typed arrays' raw little-endian bytes, back to back
 *
 * The content id is sha256(head ‖ data) in hex: everything that decides what
 * tokens mean, and nothing that does not (name, time, training card), so two
 * runs that give bit-identical weights give the same id. Loading checks the
 * magic, the header's own checksum, the version, every length and every hash
 * before anything is decoded; a damaged file fails with the file named.
 *
 * Example:
 *   const id = await writeBundleFile('tok.vtok', { kind: 'tokenizer', name: 'tiny', config: { K: 4 },
 *     tensors: { codebook: tensorRecord('float32', [4, 2], new Float32Array(8)) } });
 *   const b = await readBundleFile('tok.vtok', { expectedId: id });   // b.tensors.codebook.data: Float32Array
 */

import { promises as fsp } from 'node:fs';
import { createHash } from 'node:crypto';
import { Packr, Unpackr } from 'msgpackr';
import { VtokError, describeValue } from '../core/errors';
import {
  TENSOR_DTYPES,
  TYPED_KINDS,
  bytesPerElement,
  checkTensorRecord,
  typedArrayFromLittleEndian,
  typedArrayToLittleEndian,
  typedKindOf,
  type TensorDType,
  type TensorMap,
  type TypedArray,
  type TypedKind,
} from '../core/tensor-map';
import { writeFileAtomic } from './atomic';

export const BUNDLE_FORMAT = 'vtok-bundle';
/** Major version: a reader refuses a file with a different major version. */
export const BUNDLE_VERSION = 1;
/** Minor version: additions a reader of the same major version can ignore. */
export const BUNDLE_MINOR_VERSION = 0;
/** "\x89VTK\r\n\x1a\n": a high byte (no 7-bit channel), a name, and line endings that catch text-mode mangling (as PNG does). */
export const BUNDLE_MAGIC: readonly number[] = [0x89, 0x56, 0x54, 0x4b, 0x0d, 0x0a, 0x1a, 0x0a];
export const BUNDLE_EXTENSION = '.vtok';
export const HEADER_LENGTH = 192;

/** Known bundle kinds (any lowercase name is accepted; these are the ones vtok itself writes). */
export const BUNDLE_KINDS = ['tokenizer', 'ar-model', 'bpe', 'vocab', 'teacher'] as const;

/** What a caller gives to write a bundle. */
export interface BundleInput {
  /** Optional; when given must be 'vtok-bundle'. */
  format?: string;
  /** Optional; when given must be BUNDLE_VERSION. */
  version?: number;
  /** Ignored on input (the id is computed from the content); present so a loaded bundle can be written back. */
  id?: string;
  /** What this is: 'tokenizer', 'ar-model', 'bpe', ... (lowercase letters, digits, '-'). Part of the id. */
  kind: string;
  /** A human name ('default-256'); not part of the id (store names are in refs.json). */
  name: string;
  /** ISO 8601 time; default now. Not part of the id. */
  createdAt?: string;
  /** The model configuration (plain data, typed arrays allowed). Part of the id. */
  config: Record<string, unknown>;
  /** Weights and codebooks. Part of the id. */
  tensors: TensorMap;
  /** Visual BPE model (BpeModel.toJSON() or the model itself). Part of the id. */
  bpe?: unknown;
  /** Unified vocabulary (Vocab.serialize()). Part of the id. */
  vocab?: unknown;
  /** Training card, metrics, anything descriptive (plain data, typed arrays allowed). Not part of the id. */
  meta?: unknown;
  /** Ids of the bundles this one derives from (fine-tuned from, BPE trained on). Not part of the id. */
  parents?: string[];
}

/** A loaded bundle: the input fields plus its id, with every typed array rebuilt in this realm. */
export interface Bundle extends BundleInput {
  format: typeof BUNDLE_FORMAT;
  version: number;
  id: string;
  createdAt: string;
}

/** A typed array seen without its data (bundle info, listings): `{ $typed: 'float32', length: 1024 }`. */
export interface TypedSummary {
  $typed: TypedKind;
  length: number;
}

/** What the first part of a file says, read without the data section (fast: for listings). */
export interface BundleInfo {
  id: string;
  file: string;
  format: typeof BUNDLE_FORMAT;
  /** "major.minor" of the file format, e.g. "1.0". */
  version: string;
  kind: string;
  name: string;
  createdAt: string;
  /** Whole file size in bytes. */
  size: number;
  sections: { header: number; meta: number; head: number; data: number };
  config: Record<string, unknown>;
  tensors: Record<string, { dtype: TensorDType; shape: number[] }>;
  /** bpe, vocab and meta with typed arrays shown as TypedSummary. */
  bpe?: unknown;
  vocab?: unknown;
  meta?: unknown;
  parents?: string[];
}

const BUNDLE_FIELDS = ['format', 'version', 'id', 'kind', 'name', 'createdAt', 'config', 'tensors', 'bpe', 'vocab', 'meta', 'parents'];
const KIND_PATTERN = /^[a-z][a-z0-9-]{0,63}$/;
const ID_PATTERN = /^[0-9a-f]{64}$/;
const TYPED_TAG = '$typed';
/** Largest single typed array (msgpack bin32 and section lengths are 32-bit on the way in). */
const MAX_SECTION = 0xffffffff;

/** True for a full content id: 64 lowercase hex digits. */
export function isBundleId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value);
}

// ---------------------------------------------------------------------------
// Plain-data trees with typed arrays: canonical form for writing, checks for reading.

type TypedHandler = (kind: TypedKind, array: TypedArray, path: string) => unknown;

/**
 * The canonical form of a plain-data tree for msgpack: objects become Maps with
 * keys sorted by UTF-16 code unit (msgpackr writes Map entries in order, while
 * a plain object would put integer-like keys first), undefined object fields are
 * dropped (as JSON does), and typed arrays are replaced by what `onTyped` returns.
 * Anything that is not plain data is refused with its path named.
 */
function canonicalize(value: unknown, path: string, onTyped: TypedHandler, seen: Set<object> = new Set()): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean' || typeof value === 'number') return value;
  if (typeof value !== 'object') throw notPlainData(path, value);
  const kind = typedKindOf(value);
  if (kind !== undefined) return onTyped(kind, value as TypedArray, path);
  if (ArrayBuffer.isView(value)) {
    throw new VtokError('INVALID_INPUT', `Cannot store ${path}: ${describeValue(value)} is not supported; use one of ${TYPED_KINDS.join(', ')} typed arrays`, {
      subject: path,
    });
  }
  if (seen.has(value)) throw new VtokError('INVALID_INPUT', `Cannot store ${path}: it refers back to itself (circular reference)`, { subject: path });
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      return value.map((item, i) => {
        if (item === undefined) throw notPlainData(`${path}[${i}]`, item);
        return canonicalize(item, `${path}[${i}]`, onTyped, seen);
      });
    }
    if (!isPlainObject(value)) {
      const toJSON = (value as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') return canonicalize(toJSON.call(value), path, onTyped, seen);
      throw notPlainData(path, value);
    }
    const out = new Map<string, unknown>();
    for (const key of Object.keys(value).sort()) {
      if (key === TYPED_TAG || key === '__proto__') {
        throw new VtokError('INVALID_INPUT', `Cannot store ${path}: the key ${JSON.stringify(key)} is reserved`, { subject: path });
      }
      const item = (value as Record<string, unknown>)[key];
      if (item !== undefined) out.set(key, canonicalize(item, `${path}.${key}`, onTyped, seen));
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === null || Object.getPrototypeOf(proto) === null; // Object.prototype of any realm
}

function notPlainData(path: string, value: unknown): VtokError {
  const what = typeof value === 'object' && value !== null ? `a ${value.constructor?.name ?? 'object'}` : describeValue(value);
  return new VtokError(
    'INVALID_INPUT',
    `Cannot store ${path}: expected plain data (null, boolean, number, string, array, plain object or typed array) but received ${what}`,
    { subject: path },
  );
}

/**
 * Walks a decoded msgpack tree, replacing every `{ $typed, ... }` record with
 * what `onTyped` returns, and checks that the rest is plain data.
 */
function restoreTree(value: unknown, path: string, onTyped: (record: Record<string, unknown>, path: string) => unknown): unknown {
  if (value === null || typeof value === 'string' || typeof value === 'boolean' || typeof value === 'number') return value;
  if (Array.isArray(value)) return value.map((item, i) => restoreTree(item, `${path}[${i}]`, onTyped));
  if (typeof value === 'object' && !ArrayBuffer.isView(value) && isPlainObject(value)) {
    const record = value as Record<string, unknown>;
    if (TYPED_TAG in record) return onTyped(record, path);
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(record)) out[key] = restoreTree(record[key], `${path}.${key}`, onTyped);
    return out;
  }
  throw new Error(`${path} holds ${describeValue(value)}, which a vtok writer never stores`);
}

function typedKindField(record: Record<string, unknown>, path: string): TypedKind {
  const kind = record[TYPED_TAG];
  if (typeof kind !== 'string' || !(TYPED_KINDS as readonly string[]).includes(kind)) {
    throw new Error(`${path} has an unknown typed-array kind ${describeValue(kind)}`);
  }
  return kind as TypedKind;
}

// msgpackr, set for one canonical encoding: standard msgpack only (no records, no
// typed-array or other extensions), shortest sizes, non-integers as float64.
const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  variableMapSize: true,
  useFloat32: 0,
  bundleStrings: false,
  encodeUndefinedAsNil: false,
});
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, moreTypes: false, int64AsType: 'number' });

/** msgpack bytes of a canonical tree, copied out of msgpackr's reusable buffer. */
function pack(tree: unknown): Uint8Array {
  const packed = packr.pack(tree);
  const out = new Uint8Array(packed.length);
  out.set(packed);
  return out;
}

// ---------------------------------------------------------------------------
// Encoding

/** A bundle as bytes, ready to write. */
export interface EncodedBundle {
  id: string;
  bytes: Uint8Array;
  sections: { header: number; meta: number; head: number; data: number };
}

/** Checks a bundle and encodes it as the bytes of a `.vtok` file. */
export function encodeBundle(input: BundleInput): EncodedBundle {
  const b = checkBundleInput(input);

  // The head: every typed array becomes { $typed, offset, byteLength } into the data section,
  // laid out in the order the canonical walk meets them.
  const chunks: Uint8Array[] = [];
  let dataLength = 0;
  const toDataRef: TypedHandler = (kind, array) => {
    const bytes = typedArrayToLittleEndian(array);
    if (bytes.length > MAX_SECTION) throw tooLarge('a typed array', bytes.length);
    const ref = new Map<string, unknown>([
      [TYPED_TAG, kind],
      ['byteLength', bytes.length],
      ['offset', dataLength],
    ]);
    chunks.push(bytes);
    dataLength += bytes.length;
    return ref;
  };
  const headTree: Record<string, unknown> = { kind: b.kind, config: b.config, tensors: b.tensors, bpe: b.bpe, vocab: b.vocab };
  const head = pack(canonicalize(headTree, 'bundle', toDataRef));

  // The meta section holds its (rare, small) typed arrays inline.
  const inline: TypedHandler = (kind, array) =>
    new Map<string, unknown>([
      [TYPED_TAG, kind],
      ['bytes', new Uint8Array(typedArrayToLittleEndian(array))],
    ]);
  const metaTree: Record<string, unknown> = { name: b.name, createdAt: b.createdAt ?? new Date().toISOString(), meta: b.meta, parents: b.parents };
  const meta = pack(canonicalize(metaTree, 'bundle', inline));

  const total = HEADER_LENGTH + meta.length + head.length + dataLength;
  // Every byte is written below (the header's reserved bytes by writeHeader), so skip zero-filling.
  const unfilled = Buffer.allocUnsafeSlow(total);
  const bytes = new Uint8Array(unfilled.buffer, unfilled.byteOffset, total);
  let at = HEADER_LENGTH;
  bytes.set(meta, at);
  at += meta.length;
  bytes.set(head, at);
  at += head.length;
  const headAndData = bytes.subarray(at - head.length);
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  const id = sha256(headAndData);
  writeHeader(bytes, {
    format: BUNDLE_FORMAT,
    headerLength: HEADER_LENGTH,
    major: BUNDLE_VERSION,
    minor: BUNDLE_MINOR_VERSION,
    metaLength: meta.length,
    headLength: head.length,
    dataLength,
    metaHash: sha256(meta),
    headHash: sha256(head),
    id,
  });
  return { id, bytes, sections: { header: HEADER_LENGTH, meta: meta.length, head: head.length, data: dataLength } };
}

/** The content id a bundle would get, without writing it. */
export function bundleId(input: BundleInput): string {
  return encodeBundle(input).id;
}

function checkBundleInput(input: BundleInput): BundleInput {
  const bad = (field: string, expected: string, value: unknown): VtokError =>
    new VtokError('INVALID_INPUT', `Expected ${expected} for bundle.${field} but received ${describeValue(value)}`, { subject: `bundle.${field}` });
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new VtokError('INVALID_INPUT', `Expected a bundle object but received ${describeValue(input)}`, { subject: 'bundle' });
  }
  for (const key of Object.keys(input)) {
    if (!BUNDLE_FIELDS.includes(key)) {
      throw new VtokError('INVALID_INPUT', `Unknown bundle field ${JSON.stringify(key)}; a bundle has ${BUNDLE_FIELDS.join(', ')}`, {
        subject: `bundle.${key}`,
      });
    }
  }
  if (input.format !== undefined && input.format !== BUNDLE_FORMAT) throw bad('format', `"${BUNDLE_FORMAT}"`, input.format);
  if (input.version !== undefined && input.version !== BUNDLE_VERSION) throw bad('version', `${BUNDLE_VERSION}`, input.version);
  if (typeof input.kind !== 'string' || !KIND_PATTERN.test(input.kind)) {
    throw bad('kind', `a lowercase name such as ${BUNDLE_KINDS.map((k) => JSON.stringify(k)).join(', ')}`, input.kind);
  }
  if (typeof input.name !== 'string') throw bad('name', 'a string', input.name);
  if (input.createdAt !== undefined && (typeof input.createdAt !== 'string' || Number.isNaN(Date.parse(input.createdAt)))) {
    throw bad('createdAt', 'an ISO 8601 date string', input.createdAt);
  }
  const config = input.config as unknown;
  if (typeof config !== 'object' || config === null || Array.isArray(config) || ArrayBuffer.isView(config) || !isPlainObject(config)) {
    throw bad('config', 'a plain object', config);
  }
  const tensors = input.tensors as unknown;
  if (typeof tensors !== 'object' || tensors === null || Array.isArray(tensors) || ArrayBuffer.isView(tensors) || !isPlainObject(tensors)) {
    throw bad('tensors', 'an object of named tensors { dtype, shape, data }', tensors);
  }
  for (const [name, rec] of Object.entries(tensors)) checkTensorRecord(name, rec);
  if (input.parents !== undefined && !(Array.isArray(input.parents) && input.parents.every(isBundleId))) {
    throw bad('parents', 'an array of bundle ids (64 hex digits)', input.parents);
  }
  return input;
}

// ---------------------------------------------------------------------------
// The header

interface Header {
  format: string;
  headerLength: number;
  major: number;
  minor: number;
  metaLength: number;
  headLength: number;
  dataLength: number;
  metaHash: string;
  headHash: string;
  id: string;
}

// Offsets in the 192-byte header (all integers little-endian). Bytes 0..32 and
// "the last 32 bytes of the header are the sha256 of the bytes before them" are
// the same in every version, so any vtok can tell a newer file from a damaged one.
const H_FORMAT = 8;
const H_MAJOR = 24;
const H_MINOR = 26;
const H_LENGTH = 28;
const H_META_LENGTH = 32;
const H_HEAD_LENGTH = 40;
const H_DATA_LENGTH = 48;
const H_META_HASH = 56;
const H_HEAD_HASH = 88;
const H_ID = 120;
const H_CHECKSUM = 160;
const FORMAT_FIELD = 16;

function writeHeader(bytes: Uint8Array, h: Header): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_LENGTH);
  bytes.fill(0, 0, HEADER_LENGTH);
  bytes.set(BUNDLE_MAGIC, 0);
  bytes.set(Buffer.from(h.format, 'ascii').subarray(0, FORMAT_FIELD), H_FORMAT);
  view.setUint16(H_MAJOR, h.major, true);
  view.setUint16(H_MINOR, h.minor, true);
  view.setUint32(H_LENGTH, HEADER_LENGTH, true);
  view.setBigUint64(H_META_LENGTH, BigInt(h.metaLength), true);
  view.setBigUint64(H_HEAD_LENGTH, BigInt(h.headLength), true);
  view.setBigUint64(H_DATA_LENGTH, BigInt(h.dataLength), true);
  bytes.set(Buffer.from(h.metaHash, 'hex'), H_META_HASH);
  bytes.set(Buffer.from(h.headHash, 'hex'), H_HEAD_HASH);
  bytes.set(Buffer.from(h.id, 'hex'), H_ID);
  bytes.set(Buffer.from(sha256(bytes.subarray(0, H_CHECKSUM)), 'hex'), H_CHECKSUM);
}

/**
 * Reads and checks the header from the first bytes of a file whose total size
 * is `fileSize`. Checks, in order: magic, header length, the header checksum,
 * format name, version, and that the sections add up to the file size.
 */
function readHeader(first: Uint8Array, fileSize: number, source: string): Header {
  const corrupt = (reason: string) => storeCorrupt(source, reason);
  if (fileSize === 0) throw corrupt('the file is empty (0 bytes)');
  const magicLength = Math.min(first.length, BUNDLE_MAGIC.length);
  for (let i = 0; i < magicLength; i++) {
    if (first[i] !== BUNDLE_MAGIC[i]) {
      throw corrupt(`it is not a vtok bundle: it starts with bytes ${hexBytes(first.subarray(0, 8))}, a vtok bundle starts with ${hexBytes(BUNDLE_MAGIC)}`);
    }
  }
  if (fileSize < HEADER_LENGTH) throw corrupt(`the file is truncated: it has ${fileSize} bytes, fewer than the ${HEADER_LENGTH}-byte header`);
  const view = new DataView(first.buffer, first.byteOffset, first.length);
  const headerLength = view.getUint32(H_LENGTH, true);
  const major = view.getUint16(H_MAJOR, true);
  const minor = view.getUint16(H_MINOR, true);
  if (headerLength < 64 || headerLength > 65536) throw corrupt(`the header is damaged: it gives an impossible header length of ${headerLength} bytes`);
  if (fileSize < headerLength) {
    throw corrupt(
      fileSize < HEADER_LENGTH
        ? `the file is truncated: it has ${fileSize} bytes, fewer than the ${HEADER_LENGTH}-byte header`
        : `the header is damaged: it gives a header length of ${headerLength} bytes, more than the file's ${fileSize}`,
    );
  }
  if (first.length < headerLength) throw new Error(`readHeader needs the first ${headerLength} bytes`); // a caller bug, not a file problem
  const checksum = sha256(first.subarray(0, headerLength - 32));
  if (checksum !== Buffer.from(first.subarray(headerLength - 32, headerLength)).toString('hex')) {
    throw corrupt('the header is damaged (its checksum does not match)');
  }
  const formatBytes = first.subarray(H_FORMAT, H_FORMAT + FORMAT_FIELD);
  const format = Buffer.from(formatBytes.subarray(0, formatBytes.indexOf(0) < 0 ? FORMAT_FIELD : formatBytes.indexOf(0))).toString('latin1');
  if (format !== BUNDLE_FORMAT) throw corrupt(`it is not a vtok bundle: it is a ${JSON.stringify(format)} file`);
  if (major !== BUNDLE_VERSION) {
    throw new VtokError(
      'STORE_VERSION',
      `Could not read vtok bundle ${source}: it has format version ${major}.${minor}, and this vtok reads version ${BUNDLE_VERSION}.x` +
        (major > BUNDLE_VERSION ? ' (update vtok to read it)' : ''),
      { subject: source },
    );
  }
  const length = (offset: number): number => {
    const n = view.getBigUint64(offset, true);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(`the header gives an impossible section length of ${n} bytes`);
    return Number(n);
  };
  if (headerLength < HEADER_LENGTH) throw corrupt(`the header is damaged: a version 1 header has at least ${HEADER_LENGTH} bytes, this one says ${headerLength}`);
  const h: Header = {
    format,
    headerLength,
    major,
    minor,
    metaLength: length(H_META_LENGTH),
    headLength: length(H_HEAD_LENGTH),
    dataLength: length(H_DATA_LENGTH),
    metaHash: hex(first, H_META_HASH),
    headHash: hex(first, H_HEAD_HASH),
    id: hex(first, H_ID),
  };
  const expected = headerLength + h.metaLength + h.headLength + h.dataLength;
  if (fileSize < expected) {
    throw corrupt(`the file is truncated: the header says ${expected} bytes but the file has ${fileSize} (${expected - fileSize} missing)`);
  }
  if (fileSize > expected) throw corrupt(`the file has ${fileSize - expected} unexpected bytes after its end (the header says ${expected} bytes)`);
  return h;
}

// ---------------------------------------------------------------------------
// Decoding

export interface DecodeOptions {
  /** Names the bytes in error messages (a file path); default '<memory>'. */
  source?: string;
  /** When given, the bundle must have this id (else STORE_MISMATCH). */
  expectedId?: string;
}

/** Checks and decodes the bytes of a `.vtok` file. */
export function decodeBundle(bytes: Uint8Array, options: DecodeOptions = {}): Bundle {
  const source = options.source ?? '<memory>';
  const h = readHeader(bytes, bytes.length, source);
  const metaStart = h.headerLength;
  const headStart = metaStart + h.metaLength;
  const dataStart = headStart + h.headLength;
  const meta = bytes.subarray(metaStart, headStart);
  const head = bytes.subarray(headStart, dataStart);
  const data = bytes.subarray(dataStart);
  if (sha256(meta) !== h.metaHash) throw storeCorrupt(source, 'the meta section is damaged (its sha256 does not match the header)');
  if (sha256(head) !== h.headHash) throw storeCorrupt(source, 'the head section is damaged (its sha256 does not match the header)');
  const id = sha256(bytes.subarray(headStart));
  if (id !== h.id) throw storeCorrupt(source, `the content is damaged: its sha256 is ${id}, the header says ${h.id}`);
  checkExpectedId(options.expectedId, id, source);

  const bundle = decodeSections(source, h, meta, head, (record, path) => {
    const { kind, offset, byteLength } = dataRef(record, path, data.length);
    return typedArrayFromLittleEndian(kind, data.subarray(offset, offset + byteLength));
  }) as unknown as Bundle;
  try {
    for (const [name, rec] of Object.entries(bundle.tensors)) checkTensorRecord(name, rec);
  } catch (err) {
    throw storeCorrupt(source, `its content is not a valid bundle: ${(err as Error).message}`, err);
  }
  return bundle;
}

/** The typed-array reference `{ $typed, offset, byteLength }` of the head, checked against the data section. */
function dataRef(record: Record<string, unknown>, path: string, dataLength: number): { kind: TypedKind; offset: number; byteLength: number } {
  const kind = typedKindField(record, path);
  const { offset, byteLength } = record;
  if (
    typeof offset !== 'number' ||
    typeof byteLength !== 'number' ||
    !Number.isInteger(offset) ||
    !Number.isInteger(byteLength) ||
    offset < 0 ||
    byteLength < 0 ||
    offset + byteLength > dataLength ||
    byteLength % bytesPerElement(kind) !== 0
  ) {
    throw new Error(`${path} refers to bytes ${String(offset)}..+${String(byteLength)} that are not ${kind} values in the ${dataLength}-byte data section`);
  }
  return { kind, offset, byteLength };
}

/** Decodes meta and head into a bundle (or a bundle info), with `onDataRef` standing in for each data-section array. */
function decodeSections(
  source: string,
  h: Header,
  meta: Uint8Array,
  head: Uint8Array,
  onDataRef: (record: Record<string, unknown>, path: string) => unknown,
): Record<string, unknown> {
  try {
    const metaTree = restoreTree(unpackr.unpack(meta), 'meta', (record, path) => {
      const kind = typedKindField(record, path);
      const bytes = record.bytes;
      if (!ArrayBuffer.isView(bytes)) throw new Error(`${path} has no bytes`);
      return typedArrayFromLittleEndian(kind, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    }) as Record<string, unknown>;
    const headTree = restoreTree(unpackr.unpack(head), 'head', onDataRef) as Record<string, unknown>;
    const out: Record<string, unknown> = {
      format: BUNDLE_FORMAT,
      version: h.major,
      id: h.id,
      kind: headTree.kind,
      name: metaTree.name,
      createdAt: metaTree.createdAt,
      config: headTree.config,
      tensors: headTree.tensors,
    };
    // Fields a newer minor version may add are ignored; optional ones are set only when present.
    for (const [key, tree] of [
      ['bpe', headTree],
      ['vocab', headTree],
      ['meta', metaTree],
      ['parents', metaTree],
    ] as const) {
      if (tree[key] !== undefined) out[key] = tree[key];
    }
    if (typeof out.kind !== 'string' || !KIND_PATTERN.test(out.kind)) throw new Error(`kind is ${describeValue(out.kind)}`);
    if (typeof out.name !== 'string') throw new Error(`name is ${describeValue(out.name)}`);
    if (typeof out.createdAt !== 'string') throw new Error(`createdAt is ${describeValue(out.createdAt)}`);
    if (typeof out.config !== 'object' || out.config === null || Array.isArray(out.config)) throw new Error(`config is ${describeValue(out.config)}`);
    if (typeof out.tensors !== 'object' || out.tensors === null || Array.isArray(out.tensors)) throw new Error(`tensors is ${describeValue(out.tensors)}`);
    if (out.parents !== undefined && !(Array.isArray(out.parents) && out.parents.every(isBundleId))) throw new Error('parents is not a list of ids');
    return out;
  } catch (err) {
    if (err instanceof VtokError && err.code === 'STORE_CORRUPT') throw err;
    // The hashes matched, so these bytes are what a writer wrote: a writer bug or a hand-made file.
    throw storeCorrupt(source, `its content is not a valid bundle: ${(err as Error).message}`, err);
  }
}

// ---------------------------------------------------------------------------
// Files

/** Reads, checks and decodes a `.vtok` file. */
export async function readBundleFile(path: string, options: { expectedId?: string } = {}): Promise<Bundle> {
  const bytes = await readWhole(path);
  return decodeBundle(bytes, { source: path, expectedId: options.expectedId });
}

/** Writes a bundle to a file atomically (temp file, fsync, rename) and returns its id. */
export async function writeBundleFile(path: string, input: BundleInput): Promise<string> {
  const { id, bytes } = encodeBundle(input);
  await writeFileAtomic(path, bytes);
  return id;
}

/**
 * Reads what a listing needs (header, meta and head; not the data section) and
 * checks it: magic, header checksum, version, file size, and the meta and head
 * hashes. The content id itself is checked only by a full read (readBundleFile,
 * verify), which hashes the data.
 */
export async function readBundleInfo(path: string): Promise<BundleInfo> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await openForRead(path);
    const size = (await handle.stat()).size;
    const first = await readAt(handle, 0, Math.min(size, HEADER_LENGTH));
    const headerLength = first.length >= 32 ? new DataView(first.buffer, first.byteOffset, 32).getUint32(H_LENGTH, true) : HEADER_LENGTH;
    const headerBytes = headerLength > first.length && headerLength <= Math.min(size, 65536) ? await readAt(handle, 0, headerLength) : first;
    const h = readHeader(headerBytes, size, path);
    const meta = await readAt(handle, h.headerLength, h.metaLength);
    const head = await readAt(handle, h.headerLength + h.metaLength, h.headLength);
    if (sha256(meta) !== h.metaHash) throw storeCorrupt(path, 'the meta section is damaged (its sha256 does not match the header)');
    if (sha256(head) !== h.headHash) throw storeCorrupt(path, 'the head section is damaged (its sha256 does not match the header)');
    const summary = (record: Record<string, unknown>, p: string): TypedSummary => {
      const { kind, byteLength } = dataRef(record, p, h.dataLength);
      return { $typed: kind, length: byteLength / bytesPerElement(kind) };
    };
    const d = decodeSections(path, h, meta, head, summary);
    const tensors: BundleInfo['tensors'] = {};
    for (const [name, rec] of Object.entries(d.tensors as Record<string, Record<string, unknown>>)) {
      const dtype = rec?.dtype as TensorDType;
      if (!(TENSOR_DTYPES as readonly string[]).includes(dtype) || !Array.isArray(rec.shape)) {
        throw storeCorrupt(path, `its content is not a valid bundle: tensor ${JSON.stringify(name)} has no dtype or shape`);
      }
      tensors[name] = { dtype, shape: rec.shape as number[] };
    }
    const info: BundleInfo = {
      id: h.id,
      file: path,
      format: BUNDLE_FORMAT,
      version: `${h.major}.${h.minor}`,
      kind: d.kind as string,
      name: d.name as string,
      createdAt: d.createdAt as string,
      size,
      sections: { header: h.headerLength, meta: h.metaLength, head: h.headLength, data: h.dataLength },
      config: d.config as Record<string, unknown>,
      tensors,
    };
    if (d.bpe !== undefined) info.bpe = d.bpe;
    if (d.vocab !== undefined) info.vocab = d.vocab;
    if (d.meta !== undefined) info.meta = summarizeTypedArrays(d.meta);
    if (d.parents !== undefined) info.parents = d.parents as string[];
    return info;
  } finally {
    if (handle) await handle.close().catch(() => undefined);
  }
}

/** A copy of a tree with every typed array replaced by its TypedSummary (for JSON output). */
export function summarizeTypedArrays(value: unknown): unknown {
  const kind = typedKindOf(value);
  if (kind !== undefined) return { $typed: kind, length: (value as TypedArray).length } satisfies TypedSummary;
  if (Array.isArray(value)) return value.map(summarizeTypedArrays);
  if (typeof value === 'object' && value !== null && !ArrayBuffer.isView(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = summarizeTypedArrays(v);
    return out;
  }
  return value;
}

/**
 * Checks that data made with bundle `expectedId` (a token file, say) is used
 * with that bundle: throws STORE_MISMATCH naming both ids otherwise. `what`
 * names the data in the message.
 */
export function assertBundleId(expectedId: string, bundle: { id: string } | string, what = 'the data'): void {
  const actual = typeof bundle === 'string' ? bundle : bundle.id;
  if (!isBundleId(expectedId)) {
    throw new VtokError('INVALID_INPUT', `Expected a bundle id (64 hex digits) for ${what} but received ${describeValue(expectedId)}`, { subject: what });
  }
  if (actual !== expectedId) {
    throw new VtokError(
      'STORE_MISMATCH',
      `${what} was made with bundle ${expectedId}, but the bundle given is ${actual}; use the tokenizer that made it`,
      { subject: what },
    );
  }
}

function checkExpectedId(expectedId: string | undefined, id: string, source: string): void {
  if (expectedId !== undefined && expectedId !== id) {
    throw new VtokError('STORE_MISMATCH', `Bundle ${source} holds ${id}, not the requested ${expectedId}`, { subject: source });
  }
}

// ---------------------------------------------------------------------------
// Helpers

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function hex(bytes: Uint8Array, offset: number): string {
  return Buffer.from(bytes.subarray(offset, offset + 32)).toString('hex');
}

function hexBytes(bytes: ArrayLike<number>): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

function storeCorrupt(source: string, reason: string, cause?: unknown): VtokError {
  return new VtokError('STORE_CORRUPT', `Could not read vtok bundle ${source}: ${reason}`, { subject: source, cause });
}

function tooLarge(what: string, n: number): VtokError {
  return new VtokError('INVALID_INPUT', `Cannot store ${what} of ${n} bytes: the limit is ${MAX_SECTION} bytes`, { subject: what });
}

async function openForRead(path: string): Promise<fsp.FileHandle> {
  try {
    const handle = await fsp.open(path, 'r');
    if ((await handle.stat()).isDirectory()) {
      await handle.close();
      throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    }
    return handle;
  } catch (err) {
    throw readError(path, err);
  }
}

async function readWhole(path: string): Promise<Uint8Array> {
  const handle = await openForRead(path);
  try {
    // One read into a buffer of the file's size (FileHandle.readFile reads in chunks and joins them: slower).
    const size = (await handle.stat()).size;
    const unfilled = Buffer.allocUnsafeSlow(size);
    return await readAt(handle, 0, size, new Uint8Array(unfilled.buffer, unfilled.byteOffset, size)); // shorter if the file shrank meanwhile
  } catch (err) {
    throw readError(path, err);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

async function readAt(handle: fsp.FileHandle, position: number, length: number, out = new Uint8Array(length)): Promise<Uint8Array> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(out, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return out.subarray(0, done);
}

function readError(path: string, err: unknown): VtokError {
  if (err instanceof VtokError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return new VtokError('FILE_NOT_FOUND', `Could not read vtok bundle ${path}: no such file`, { subject: path, cause: err });
  if (code === 'EISDIR') return new VtokError('IO', `Could not read vtok bundle ${path}: it is a directory`, { subject: path, cause: err });
  if (code === 'EACCES') return new VtokError('IO', `Could not read vtok bundle ${path}: permission denied`, { subject: path, cause: err });
  return new VtokError('IO', `Could not read vtok bundle ${path}: ${(err as Error).message}`, { subject: path, cause: err });
}
