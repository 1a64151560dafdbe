/**
 * Enumerates the inputs of a dataset run: every image with a stable key, in
 * one deterministic order.
 *
 * An input argument is, in this order of checks:
 *   `@FILE`             a file list: one path a line (blank lines and lines
 *                       starting with '#' are skipped; relative paths are
 *                       relative to the list's folder)
 *   an existing folder  every file under it, recursively
 *   FILE.tar            the members of an (uncompressed) tar archive, WebDataset style
 *   FILE.txt/.lst/.list a file list, as `@FILE`
 *   another file        that one image
 *   a glob pattern      the files it matches (see glob.ts); `*`, `?`, `[..]`, `{a,b}`, `**`
 * A tar archive met inside a folder, glob or file list is read as if it were
 * a folder.
 *
 * Keys: the path relative to the folder (or the glob's fixed leading folder),
 * '/'-separated; for a single file its name; for a file list the path as
 * listed; for a tar member `<key of the tar>/<member path>`. Keys must be
 * unique across all inputs; a collision is an error that names both sources.
 * Inputs are sorted by key (JavaScript string order) whatever order the
 * arguments, the file system or the archive list them in.
 *
 * In folders, globs and tars: files whose path has a segment starting with
 * '.' are ignored; `NAME.txt`, `NAME.json` and `NAME.cls` next to an image
 * `NAME.<ext>` are its sidecars (also `NAME.seg.png` -> `NAME.txt`, as
 * WebDataset groups by the first dot), not inputs; every other file whose
 * extension is not an image format is an input that is skipped as
 * 'not-image' (so it appears in errors.jsonl, nothing is dropped silently).
 * Paths in a file list are always decoded, whatever their extension.
 *
 * Memory: a run holds its whole input list, and a million inputs is an
 * ordinary dataset, so the list is kept in columns (InputList): each input's
 * key as a string, its numbers in typed arrays, and everything that follows
 * from them (path, source, sidecar paths, skip messages) derived when get(i)
 * builds the input's object. Measure with bench/inputs.ts.
 */
import { createHash } from 'node:crypto';
import { promises as fsp, statSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import { VtokError } from '../../core/errors';
import type { SkipReason } from '../../core/pipeline-types';
import { partSize } from '../../core/shard-format';
import { compareKeys, expandGlob, hasGlob, walkFiles } from './glob';
import { SIDECAR_EXTS, type SidecarExt } from './labels';
import { listTar, isCompressedTar } from './tar';

/** Extensions read as images in folders, globs and tars. */
export const IMAGE_EXTS = ['jpg', 'jpeg', 'jpe', 'jfif', 'png', 'webp', 'tif', 'tiff', 'gif', 'avif', 'heic', 'heif'];
const LIST_EXTS = ['txt', 'lst', 'list'];

/** Where bytes live: a whole file (offset 0, size as stat'ed) or a tar member. */
export interface ByteSource {
  file: string;
  offset: number;
  size: number;
  /** True for a member of a tar archive. */
  member: boolean;
}

export interface Sidecar extends ByteSource {
  ext: SidecarExt;
  /** For messages: the path, or `archive.tar:member`. */
  name: string;
}

/** One input of a run. */
export interface DatasetInput extends ByteSource {
  key: string;
  /** The file path, or `archive.tar:member/path`. */
  source: string;
  sidecars: Sidecar[];
  /** A reason to skip the input that is known without reading it, or null. */
  problem: { reason: SkipReason; code: string; message: string } | null;
}

export interface EnumerateOptions {
  /** Look for sidecar files. Default true. */
  sidecars: boolean;
  /** Files, and folders with everything under them, never taken as inputs: the labels file, the output folder. Default none. */
  exclude: readonly string[];
}

/** The enumerated inputs and the digest that identifies the set. */
export interface InputSet {
  inputs: InputList;
  /** sha256 of the sorted keys joined by '\n'. */
  digest: string;
}

/**
 * Where the paths of a group of files come from: the file's path is derived
 * from its key (and checked against the real one when the file is added; a
 * path that does not follow, say a list line `a//b.png`, is kept as it is).
 */
type Origin =
  /** A folder, glob or file list: the file is `dir` joined with the key ('' for a list's absolute paths). Listed files are `explicit`. */
  | { kind: 'dir'; dir: string; explicit: boolean }
  /** One file named as an input (explicit). */
  | { kind: 'file'; file: string }
  /** A tar archive: a member's path inside `file` is the key after its first `skip` characters. */
  | { kind: 'tar'; file: string; skip: number };

function originFile(o: Origin, key: string): string {
  return o.kind === 'dir' ? path.join(o.dir, key) : o.file;
}

function originSource(o: Origin, key: string, file: string): string {
  return o.kind === 'tar' ? `${o.file}:${key.slice(o.skip)}` : file;
}

// What is known to be wrong with an input before it is read (column `problem`).
const OK = 0;
const LINK = 1;
const NOT_REGULAR = 2;
const TRUNCATED = 3;
const NOT_IMAGE = 4;
const ORPHAN_SIDECAR = 5;
const MISSING = 6;

function problemOf(code: number, source: string, key: string, size: number): DatasetInput['problem'] {
  switch (code) {
    case OK:
      return null;
    case LINK:
      return { reason: 'unreadable', code: 'INVALID_INPUT', message: `Could not read ${source}: links inside tar archives are not followed` };
    case NOT_REGULAR:
      return { reason: 'unreadable', code: 'INVALID_INPUT', message: `Could not read ${source}: not a regular file` };
    case TRUNCATED:
      return { reason: 'truncated', code: 'IO', message: `Could not read ${source}: the archive ends before this member's ${size} bytes do` };
    case NOT_IMAGE:
      return { reason: 'not-image', code: 'IMAGE_DECODE', message: `Skipped ${source}: .${extOf(key) || '(no extension)'} is not an image file extension` };
    case ORPHAN_SIDECAR:
      return {
        reason: 'not-image',
        code: 'IMAGE_DECODE',
        message: `Skipped ${source}: .${extOf(key)} is not an image file extension (and no image of the same name was found for it to describe)`,
      };
    case MISSING:
      return { reason: 'unreadable', code: 'FILE_NOT_FOUND', message: `Could not read ${source}: no such file` };
    default:
      throw new RangeError(`unknown input problem ${code}`);
  }
}

// How a sidecar's path follows from its image's (column `code`, bits 2-3; bits 0-1 index SIDECAR_EXTS).
/** Next to a listed file: its stem (up to the last dot) and the extension. */
const BESIDE_FILE = 0;
/** Same folder (or archive folder), the image's name up to its last dot. */
const LAST_DOT = 1;
/** Same folder, the image's name up to its first dot (WebDataset). */
const FIRST_DOT = 2;

function extOf(name: string): string {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot + 1).toLowerCase() : '';
}

function isSidecarExt(ext: string): boolean {
  return (SIDECAR_EXTS as readonly string[]).includes(ext);
}

function hidden(rel: string): boolean {
  return rel.split('/').some((s) => s.startsWith('.'));
}

/** A key's folder part (with its '/') and the stems of its name up to the last and the first dot. */
function stemsOf(key: string): { dir: string; last: string; first: string } {
  const slash = key.lastIndexOf('/');
  const base = key.slice(slash + 1);
  const lastDot = base.lastIndexOf('.');
  const firstDot = base.indexOf('.');
  return { dir: key.slice(0, slash + 1), last: lastDot > 0 ? base.slice(0, lastDot) : base, first: firstDot > 0 ? base.slice(0, firstDot) : base };
}

/** The key of an image's sidecar with extension `ext` found by its stem up to the last or first dot (`how`). */
function stemSidecarKey(key: string, how: number, ext: string): string {
  const { dir, last, first } = stemsOf(key);
  return `${dir}${how === LAST_DOT ? last : first}.${ext}`;
}

/** The path of a listed file's sidecar with extension `ext`: the same folder and stem. */
function besidePath(file: string, ext: string): string {
  return path.join(path.dirname(file), `${stemsOf(path.basename(file)).last}.${ext}`);
}

/** Digest of a sorted key list. */
export function keysDigest(keys: Iterable<string>): string {
  const h = createHash('sha256');
  let first = true;
  for (const k of keys) {
    h.update(first ? k : `\n${k}`);
    first = false;
  }
  return h.digest('hex');
}

/** The columns of an input list (see InputList). */
interface Columns {
  origins: Origin[];
  keys: string[];
  origin: Uint32Array;
  offset: Float64Array;
  size: Float64Array;
  problem: Uint8Array;
  /** Paths that do not follow from the key and origin, by row. */
  files: Map<number, string>;
  /** Input i's sidecars are sidecar rows sidecarAt[i] to sidecarAt[i] + sidecarCount[i] - 1. */
  sidecarAt: Uint32Array;
  sidecarCount: Uint8Array;
  sidecar: {
    offset: Float64Array;
    size: Float64Array;
    /** SIDECAR_EXTS index | how the path follows (BESIDE_FILE, LAST_DOT, FIRST_DOT) << 2. */
    code: Uint8Array;
    /** Keys that do not follow from the image's (an upper-case extension), by sidecar row. */
    keys: Map<number, string>;
    files: Map<number, string>;
  };
}

/**
 * The inputs of a run in key order, held compactly: get(i) builds input i's
 * object (for a batch at a time), key(i) reads only its key.
 *
 * Example:
 *   const { inputs } = await enumerateInputs(['photos/']);
 *   for (let i = 0; i < inputs.length; i++) load(inputs.get(i));
 *   inputs.part(0, 4)   // inputs 0, 4, 8, ... as a list of their own
 */
export class InputList {
  readonly length: number;

  /** Rows first, first + step, ... of the columns (`length` of them). */
  constructor(
    private readonly c: Columns,
    private readonly first = 0,
    private readonly step = 1,
    length?: number,
  ) {
    this.length = length ?? c.keys.length;
  }

  private row(i: number): number {
    if (!Number.isInteger(i) || i < 0 || i >= this.length) throw new RangeError(`Input index ${i} is outside 0..${this.length - 1}`);
    return this.first + i * this.step;
  }

  key(i: number): string {
    return this.c.keys[this.row(i)];
  }

  get(i: number): DatasetInput {
    const c = this.c;
    const r = this.row(i);
    const key = c.keys[r];
    const o = c.origins[c.origin[r]];
    const file = c.files.get(r) ?? originFile(o, key);
    const source = originSource(o, key, file);
    const sidecars: Sidecar[] = [];
    const s0 = c.sidecarAt[r];
    for (let s = s0; s < s0 + c.sidecarCount[r]; s++) sidecars.push(this.sidecar(s, key, file, o));
    return { key, source, file, offset: c.offset[r], size: c.size[r], member: o.kind === 'tar', sidecars, problem: problemOf(c.problem[r], source, key, c.size[r]) };
  }

  private sidecar(s: number, key: string, file: string, o: Origin): Sidecar {
    const t = this.c.sidecar;
    const ext = SIDECAR_EXTS[t.code[s] & 3];
    const how = t.code[s] >> 2;
    const at = { offset: t.offset[s], size: t.size[s], member: o.kind === 'tar', ext };
    if (how === BESIDE_FILE) {
      const f = besidePath(file, ext);
      return { file: f, ...at, name: f };
    }
    const scKey = t.keys.get(s) ?? stemSidecarKey(key, how, ext);
    const f = t.files.get(s) ?? originFile(o, scKey);
    return { file: f, ...at, name: originSource(o, scKey, f) };
  }

  /** Inputs index, index + count, index + 2 * count, ... (part `index` of `count`). */
  part(index: number, count: number): InputList {
    if (!(Number.isInteger(count) && count >= 1 && Number.isInteger(index) && index >= 0 && index < count)) {
      throw new RangeError(`Part ${index} of ${count} does not exist`);
    }
    return new InputList(this.c, this.first + index * this.step, this.step * count, partSize(this.length, index, count));
  }

  *[Symbol.iterator](): Iterator<DatasetInput> {
    for (let i = 0; i < this.length; i++) yield this.get(i);
  }

  /** Every input as an object (for small lists: tests, tools). */
  toArray(): DatasetInput[] {
    return [...this];
  }
}

/**
 * Lists the inputs named by `specs` (see the top of this file), sorted by key.
 *
 * Example:
 *   const { inputs, digest } = await enumerateInputs(['photos/', 'extra/*.jpg', 'shards/000.tar']);
 *   inputs.key(0) === 'a/001.png'
 */
export async function enumerateInputs(specs: readonly string[], options: EnumerateOptions = { sidecars: true, exclude: [] }): Promise<InputSet> {
  const exclude = new Excluded(options.exclude);
  const files = new Files();
  const found = new Found();
  for (const spec of specs) {
    const start = files.keys.length;
    await expandSpec(spec, exclude, files);
    attachSidecars(files, start, files.keys.length, options.sidecars, found);
  }
  const c = found.columns(files);
  const keys = c.keys;
  for (let i = 1; i < keys.length; i++) {
    if (keys[i] === keys[i - 1]) {
      const list = new InputList(c);
      throw new VtokError(
        'INVALID_INPUT',
        `Two inputs have the key ${JSON.stringify(keys[i])}: ${list.get(i - 1).source} and ${list.get(i).source}; keys must be unique (pass a common parent folder instead of both, so that keys keep their folder names)`,
        { subject: keys[i] },
      );
    }
  }
  return { inputs: new InputList(c), digest: keysDigest(keys) };
}

/** A typed array that grows by doubling: a column being built (a JS number array takes 8 bytes a value, more as it grows). */
class Column<A extends Float64Array | Uint32Array | Uint8Array> {
  length = 0;
  constructor(
    private data: A,
    private readonly make: (n: number) => A,
  ) {}
  push(v: number): void {
    if (this.length === this.data.length) {
      const bigger = this.make(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = v;
  }
  at(i: number): number {
    return this.data[i];
  }
  /** The values as an array of their own length. */
  done(): A {
    return this.data.slice(0, this.length) as A;
  }
}

const f64 = (): Column<Float64Array> => new Column(new Float64Array(256), (n) => new Float64Array(n));
const u32 = (): Column<Uint32Array> => new Column(new Uint32Array(256), (n) => new Uint32Array(n));
const u8 = (): Column<Uint8Array> => new Column(new Uint8Array(256), (n) => new Uint8Array(n));

/** Every file the specs name (images, sidecars, other files), in the order found. */
class Files {
  readonly origins: Origin[] = [];
  readonly keys: string[] = [];
  readonly origin = u32();
  readonly offset = f64();
  /** Size in bytes; -1 for a listed file that does not exist. */
  readonly size = f64();
  readonly problem = u8();
  readonly files = new Map<number, string>();

  addOrigin(o: Origin): number {
    this.origins.push(o);
    return this.origins.length - 1;
  }

  add(key: string, origin: number, file: string, offset: number, size: number, problem: number): void {
    if (originFile(this.origins[origin], key) !== file) this.files.set(this.keys.length, file);
    this.keys.push(key);
    this.origin.push(origin);
    this.offset.push(offset);
    this.size.push(size);
    this.problem.push(problem);
  }

  explicit(i: number): boolean {
    const o = this.origins[this.origin.at(i)];
    return o.kind === 'file' || (o.kind === 'dir' && o.explicit);
  }

  file(i: number): string {
    return this.files.get(i) ?? originFile(this.origins[this.origin.at(i)], this.keys[i]);
  }
}

/** The inputs chosen from Files (rows of it), with their problems and sidecars, before sorting. */
class Found {
  readonly row = u32();
  readonly problem = u8();
  readonly sidecarAt = u32();
  readonly sidecarCount = u8();
  readonly sidecar = { offset: f64(), size: f64(), code: u8(), keys: new Map<number, string>(), files: new Map<number, string>() };

  addInput(row: number, problem: number, sidecarAt: number): void {
    this.row.push(row);
    this.problem.push(problem);
    this.sidecarAt.push(sidecarAt);
    this.sidecarCount.push(this.sidecar.code.length - sidecarAt);
  }

  addSidecar(offset: number, size: number, ext: string, how: number, key?: string, file?: string): void {
    const t = this.sidecar;
    const s = t.code.length;
    t.offset.push(offset);
    t.size.push(size);
    t.code.push((SIDECAR_EXTS as readonly string[]).indexOf(ext) | (how << 2));
    if (key !== undefined) t.keys.set(s, key);
    if (file !== undefined) t.files.set(s, file);
  }

  /** The inputs sorted by key (stable: equal keys keep the order found, for the collision message), as columns. */
  columns(f: Files): Columns {
    const n = this.row.length;
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((a, b) => compareKeys(f.keys[this.row.at(a)], f.keys[this.row.at(b)]));
    const c: Columns = {
      origins: f.origins,
      keys: new Array<string>(n),
      origin: new Uint32Array(n),
      offset: new Float64Array(n),
      size: new Float64Array(n),
      problem: new Uint8Array(n),
      files: new Map(),
      sidecarAt: new Uint32Array(n),
      sidecarCount: new Uint8Array(n),
      sidecar: {
        offset: this.sidecar.offset.done(),
        size: this.sidecar.size.done(),
        code: this.sidecar.code.done(),
        keys: this.sidecar.keys,
        files: this.sidecar.files,
      },
    };
    for (let i = 0; i < n; i++) {
      const j = order[i];
      const r = this.row.at(j);
      c.keys[i] = f.keys[r];
      c.origin[i] = f.origin.at(r);
      c.offset[i] = f.offset.at(r);
      c.size[i] = Math.max(0, f.size.at(r));
      c.problem[i] = this.problem.at(j);
      c.sidecarAt[i] = this.sidecarAt.at(j);
      c.sidecarCount[i] = this.sidecarCount.at(j);
      const file = f.files.get(r);
      if (file !== undefined) c.files.set(i, file);
    }
    return c;
  }
}

/** Paths (files or folders) to leave out. */
class Excluded {
  private readonly paths: string[];
  constructor(paths: readonly string[]) {
    this.paths = paths.map((p) => path.resolve(p));
  }
  has(p: string): boolean {
    if (this.paths.length === 0) return false;
    const abs = path.resolve(p);
    return this.paths.some((x) => abs === x || abs.startsWith(x + path.sep));
  }
}

/**
 * stat, or null when the path cannot be stat'ed. Synchronous: enumeration
 * stats every input and nothing else runs meanwhile, and a stat from the
 * page cache takes microseconds where an awaited fsp.stat takes a trip
 * through libuv's thread pool (2,000 listed files: ~150 ms less).
 */
function statOrNull(p: string): Stats | null {
  try {
    return statSync(p, { throwIfNoEntry: false }) ?? null;
  } catch {
    return null;
  }
}

async function expandSpec(spec: string, exclude: Excluded, out: Files): Promise<void> {
  if (typeof spec !== 'string' || spec === '') throw new VtokError('INVALID_OPTION', `Expected a path, glob or @list for an input but received ${JSON.stringify(spec)}`, { subject: 'inputs' });
  if (spec.startsWith('@')) return readFileList(spec.slice(1), exclude, out);
  const st = statOrNull(spec);
  if (st?.isDirectory()) return expandFiles(spec, await walkFiles(spec), exclude, out);
  if (st?.isFile()) {
    const name = path.basename(spec);
    if (isCompressedTar(spec) || extOf(name) === 'tar') return tarFiles(spec, name, exclude, out);
    if (LIST_EXTS.includes(extOf(name))) return readFileList(spec, exclude, out);
    out.add(name, out.addOrigin({ kind: 'file', file: spec }), spec, 0, st.size, OK);
    return;
  }
  if (hasGlob(spec)) {
    const { root, files } = await expandGlob(spec);
    if (files.length === 0) throw new VtokError('FILE_NOT_FOUND', `The input pattern ${spec} matches no files`, { subject: spec });
    return expandFiles(root, files, exclude, out);
  }
  throw new VtokError('FILE_NOT_FOUND', `Could not find input ${spec}: no such file or folder`, { subject: spec });
}

/** Files under a root (folder walk or glob), with tar archives opened. */
async function expandFiles(root: string, rels: string[], exclude: Excluded, out: Files): Promise<void> {
  const origin = out.addOrigin({ kind: 'dir', dir: root, explicit: false });
  for (const rel of rels) {
    if (hidden(rel)) continue;
    const file = path.join(root, rel);
    if (exclude.has(file)) continue;
    if (extOf(rel) === 'tar' || isCompressedTar(rel)) {
      await tarFiles(file, rel, exclude, out);
      continue;
    }
    out.add(rel, origin, file, 0, statOrNull(file)?.size ?? 0, OK);
  }
}

async function tarFiles(file: string, key: string, exclude: Excluded, out: Files): Promise<void> {
  if (exclude.has(file)) return;
  const members = await listTar(file);
  const origin = out.addOrigin({ kind: 'tar', file, skip: key.length + 1 });
  for (const m of members) {
    if (m.name === '' || hidden(m.name)) continue;
    const problem = m.type === 'link' ? LINK : m.type === 'other' ? NOT_REGULAR : m.truncated ? TRUNCATED : OK;
    out.add(`${key}/${m.name}`, origin, file, m.offset, m.size, problem);
  }
}

async function readFileList(listFile: string, exclude: Excluded, out: Files): Promise<void> {
  let text: string;
  try {
    text = await fsp.readFile(listFile, 'utf8');
  } catch (err) {
    throw new VtokError('FILE_NOT_FOUND', `Could not read the file list ${listFile}: ${(err as Error).message}`, { subject: listFile, cause: err });
  }
  const base = path.dirname(listFile);
  let relative = -1;
  let absolute = -1;
  // Line by line without splitting: a list of a million paths would otherwise stand as a million strings at once.
  for (let at = 0; at < text.length; ) {
    let nl = text.indexOf('\n', at);
    if (nl < 0) nl = text.length;
    const line = text.slice(at, nl).trim();
    at = nl + 1;
    if (line === '' || line.startsWith('#')) continue;
    const file = path.isAbsolute(line) ? line : path.join(base, line);
    if (exclude.has(file)) continue;
    const key = path.posix.normalize(line.replace(/\\/g, '/')).replace(/^\.\//, '');
    if (extOf(line) === 'tar' || isCompressedTar(line)) {
      await tarFiles(file, key, exclude, out);
      continue;
    }
    const st = statOrNull(file);
    let origin: number;
    if (path.isAbsolute(line)) origin = absolute >= 0 ? absolute : (absolute = out.addOrigin({ kind: 'dir', dir: '', explicit: true }));
    else origin = relative >= 0 ? relative : (relative = out.addOrigin({ kind: 'dir', dir: base, explicit: true }));
    out.add(key, origin, file, 0, st?.isFile() ? st.size : -1, OK);
  }
}

/**
 * Takes the inputs among files[start, end) (one spec's): finds each image's
 * sidecars, leaves out the files that are sidecars, and marks non-image files.
 */
function attachSidecars(files: Files, start: number, end: number, useSidecars: boolean, out: Found): void {
  // Sidecar-type files of folders, globs and tars, by key with the extension in lower case (first found wins).
  const byKey = new Map<string, number>();
  const ext = (i: number): string => extOf(files.keys[i]);
  const sidecarFile = (i: number): boolean => !files.explicit(i) && isSidecarExt(ext(i));
  for (let i = start; i < end; i++) {
    if (!sidecarFile(i)) continue;
    const key = files.keys[i];
    const e = ext(i);
    const k = key.endsWith(e) ? key : key.slice(0, key.length - e.length) + e;
    if (!byKey.has(k)) byKey.set(k, i);
  }
  const consumed = new Uint8Array(end - start);
  for (let i = start; i < end; i++) {
    if (sidecarFile(i)) continue; // decided below
    const explicit = files.explicit(i);
    const isImage = explicit || IMAGE_EXTS.includes(ext(i));
    const at = out.sidecar.code.length;
    if (isImage && explicit && useSidecars) {
      besideFile(files.file(i), out);
    } else if (isImage && !explicit) {
      for (const [s, how] of stemSidecars(files, i, byKey)) {
        consumed[s - start] = 1;
        if (!useSidecars) continue;
        const derived = stemSidecarKey(files.keys[i], how, ext(s));
        out.addSidecar(files.offset.at(s), files.size.at(s), ext(s), how, derived === files.keys[s] ? undefined : files.keys[s], files.files.get(s));
      }
    }
    let problem = files.problem.at(i);
    if (problem === OK && !isImage) problem = NOT_IMAGE;
    if (problem === OK && files.size.at(i) < 0) problem = MISSING;
    out.addInput(i, problem, at);
  }
  // Sidecar-type files that belong to no image are inputs of their own (skipped as not-image).
  for (let i = start; i < end; i++) {
    if (sidecarFile(i) && consumed[i - start] === 0) out.addInput(i, files.problem.at(i) === OK ? ORPHAN_SIDECAR : files.problem.at(i), out.sidecar.code.length);
  }
}

/**
 * Sidecars of a folder/glob/tar image, as [file row, how its key follows]:
 * same folder and origin, same stem (up to the image name's last dot, else
 * up to its first), one per extension, the first found.
 */
function stemSidecars(files: Files, i: number, byKey: Map<string, number>): Array<[number, number]> {
  const { dir, last, first } = stemsOf(files.keys[i]);
  const found = new Map<string, [number, number]>();
  for (const [stem, how] of [
    [last, LAST_DOT],
    [first, FIRST_DOT],
  ] as const) {
    const rows: number[] = [];
    for (const e of SIDECAR_EXTS) {
      const s = byKey.get(`${dir}${stem}.${e}`);
      if (s !== undefined && files.origin.at(s) === files.origin.at(i)) rows.push(s);
    }
    for (const s of rows.sort((a, b) => a - b)) {
      const e = extOf(files.keys[s]);
      if (!found.has(e)) found.set(e, [s, how]);
    }
  }
  return [...found.values()];
}

/**
 * Sidecars of a listed file: NAME.txt, NAME.json and NAME.cls next to it,
 * each probed with one stat (a list of 2,000 files from Fashion-MNIST's
 * 120,000-file folder: ~6 ms, where listing the folder took ~200 ms).
 */
function besideFile(file: string, out: Found): void {
  for (const ext of SIDECAR_EXTS) {
    const sidecar = besidePath(file, ext);
    if (path.basename(sidecar) === path.basename(file)) continue;
    const st = statOrNull(sidecar);
    if (st?.isFile()) out.addSidecar(0, st.size, ext, BESIDE_FILE);
  }
}
