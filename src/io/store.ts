/**
 * The codebook store: a folder of content-addressed tokenizer bundles
 * (`<id>.vtok`, see bundle.ts) plus `refs.json`, which maps names such as
 * 'default' to ids. A store is read by id, by name, or by a unique id prefix
 * of at least 8 hex digits (as git does).
 *
 * Two stores are searched, in this order (a StoreSet):
 *   1. the user's store (writable): option > env VTOK_STORE > ~/.vtok/store
 *   2. the shipped store (read-only): the repository's codebooks/ folder
 * A name is taken from the first store that has it (the user's 'default'
 * overrides the shipped one); ids and prefixes are looked up in all stores.
 *
 * Example:
 *   const store = openStore('/data/vtok-store');
 *   const id = await store.put(bundle, { name: 'default' });
 *   const b = await store.get('default');          // or the id, or its first 8+ hex digits
 *   (await store.verify()).ok;                      // true when every entry checks out
 */

import { promises as fsp } from 'node:fs';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VtokError, describeValue } from '../core/errors';
import { shapeSize } from '../core/tensor-map';
import { writeFileAtomic } from './atomic';
import {
  BUNDLE_EXTENSION,
  encodeBundle,
  isBundleId,
  readBundleFile,
  readBundleInfo,
  type Bundle,
  type BundleInfo,
  type BundleInput,
} from './bundle';

export const REFS_FILE = 'refs.json';
export const REFS_FORMAT = 'vtok-refs';
export const REFS_VERSION = 1;
const LOCK_FILE = 'refs.lock';
/** Shortest id prefix accepted as a ref. */
export const MIN_PREFIX = 8;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const HEX_PATTERN = /^[0-9a-fA-F]+$/;
const ENTRY_PATTERN = /^([0-9a-f]{64})\.vtok$/;
/** A temporary file left by an interrupted atomic write (see atomic.ts). */
const TEMP_PATTERN = /^\..+\.tmp$/;

export interface StoreOptions {
  /** Refuse put/remove/name changes (the shipped store). Default false. */
  readOnly?: boolean;
}

export interface PutOptions {
  /** Also point this name at the bundle (in refs.json). */
  name?: string;
  /**
   * Rewrite the file even when an intact one with the same id is there. The id
   * covers only what decides the tokens, so this is how to update the
   * descriptive fields (name, createdAt, meta, parents) of a stored bundle.
   */
  replace?: boolean;
}

/** One bundle in a listing. When its file cannot be read, `error` says why and the bundle fields are absent. */
export interface StoreEntry {
  id: string;
  file: string;
  /** The store folder the entry is in. */
  store: string;
  /** Names in refs.json that point at it. */
  names: string[];
  /** File size in bytes. */
  size: number;
  kind?: string;
  name?: string;
  createdAt?: string;
  /** Short one-line summary of the scalar config values: "codebookSize=1024 imageSize=256". */
  summary?: string;
  tensors?: number;
  parameters?: number;
  error?: { code: string; message: string };
}

/** The check of one entry by verify(). */
export interface VerifyResult {
  id: string;
  file: string;
  names: string[];
  ok: boolean;
  /** Bytes checked. */
  size?: number;
  code?: string;
  message?: string;
}

export interface VerifyReport {
  store: string;
  /** True when every entry is intact, no name points at a missing bundle, and no stray file was found. */
  ok: boolean;
  entries: VerifyResult[];
  /** Names in refs.json whose bundle file is missing. */
  danglingRefs: { name: string; id: string }[];
  /** Files that are not entries: temporary files of interrupted writes, `.vtok` files not named by their id. */
  strays: string[];
}

/** What a ref matched in one store. */
interface Lookup {
  /** Set when the ref is a name in this store's refs.json. */
  byName?: string;
  /** Ids whose hex starts with the ref (when the ref is 8+ hex digits). */
  byPrefix: string[];
}

/** Opens (without touching the disk) the store in folder `dir`; the folder is made on the first put. */
export function openStore(dir: string, options: StoreOptions = {}): Store {
  return new Store(path.resolve(dir), options.readOnly ?? false);
}

export class Store {
  constructor(
    readonly dir: string,
    readonly readOnly: boolean,
  ) {}

  /** The file of an entry (whether or not it exists). */
  pathOf(id: string): string {
    return path.join(this.dir, `${id}${BUNDLE_EXTENSION}`);
  }

  /** The ids of all entries, sorted. An absent folder is an empty store. */
  async ids(): Promise<string[]> {
    const ids: string[] = [];
    for (const file of await this.files()) {
      const m = ENTRY_PATTERN.exec(file);
      if (m) ids.push(m[1]);
    }
    return ids.sort();
  }

  /** Name -> id, from refs.json ({} when there is none). */
  async refs(): Promise<Record<string, string>> {
    const file = path.join(this.dir, REFS_FILE);
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new VtokError('IO', `Could not read ${file}: ${(err as Error).message}`, { subject: file, cause: err });
    }
    return parseRefs(text, file);
  }

  /** The id a ref (name, id or id prefix) stands for in this store. */
  async resolve(ref: string): Promise<string> {
    return (await resolveIn([this], ref)).id;
  }

  async has(id: string): Promise<boolean> {
    return isBundleId(id) && (await exists(this.pathOf(id)));
  }

  /** Loads and fully checks a bundle (hashes, version, and that the file holds the id it is named by). */
  async get(ref: string): Promise<Bundle> {
    const id = await this.resolve(ref);
    return readBundleFile(this.pathOf(id), { expectedId: id });
  }

  /** What a listing shows of one bundle, without reading its data section. */
  async info(ref: string): Promise<BundleInfo & { names: string[]; store: string }> {
    const id = await this.resolve(ref);
    const info = await readBundleInfo(this.pathOf(id));
    checkNamedId(info.id, id, info.file);
    return { ...info, names: namesOf(await this.refs(), id), store: this.dir };
  }

  /**
   * Adds a bundle and returns its id. The file is written atomically (temp
   * file, fsync, rename). When an entry with the same id is already there it
   * is verified and kept (a damaged one is rewritten), unless `replace`.
   * The name, if any, is set only after the bundle is safely on disk.
   */
  async put(bundle: BundleInput, options: PutOptions = {}): Promise<string> {
    this.checkWritable('add a bundle to');
    if (options.name !== undefined) checkName(options.name);
    const { id, bytes } = encodeBundle(bundle);
    await this.makeDir();
    const file = this.pathOf(id);
    let keep = false;
    if (!options.replace && (await exists(file))) {
      keep = await readBundleFile(file, { expectedId: id }).then(
        () => true,
        () => false, // damaged: write it again
      );
    }
    if (!keep) await writeFileAtomic(file, bytes);
    if (options.name !== undefined) {
      const name = options.name;
      await this.updateRefs((refs) => {
        refs[name] = id;
      });
    }
    return id;
  }

  /** Points a name at a bundle of this store. */
  async setName(name: string, ref: string): Promise<string> {
    this.checkWritable('name a bundle in');
    checkName(name);
    const id = await this.resolve(ref);
    await this.updateRefs((refs) => {
      refs[name] = id;
    });
    return id;
  }

  /** Removes a name (not the bundle). Returns the id it pointed at. */
  async removeName(name: string): Promise<string> {
    this.checkWritable('remove a name from');
    let id: string | undefined;
    await this.updateRefs((refs) => {
      id = refs[name];
      delete refs[name];
    });
    if (id === undefined) throw new VtokError('STORE_NOT_FOUND', `No name ${JSON.stringify(name)} in store ${this.dir}`, { subject: name });
    return id;
  }

  /** Removes a bundle and every name that points at it (names first, so no name is ever left dangling). */
  async remove(ref: string): Promise<{ id: string; names: string[] }> {
    this.checkWritable('remove a bundle from');
    const id = await this.resolve(ref);
    let names: string[] = [];
    await this.updateRefs((refs) => {
      names = namesOf(refs, id);
      for (const n of names) delete refs[n];
    });
    await fsp.rm(this.pathOf(id), { force: true });
    return { id, names };
  }

  /** Every entry with its names and a summary; an unreadable entry is listed with its error (listing never stops at one). */
  async list(): Promise<StoreEntry[]> {
    const [ids, refs] = await Promise.all([this.ids(), this.refs()]);
    const entries: StoreEntry[] = [];
    for (const id of ids) {
      const file = this.pathOf(id);
      const base = { id, file, store: this.dir, names: namesOf(refs, id), size: await fileSize(file) };
      try {
        const info = await readBundleInfo(file);
        checkNamedId(info.id, id, file);
        entries.push({ ...base, ...entryFields(info) });
      } catch (err) {
        entries.push({ ...base, error: errorFields(err) });
      }
    }
    return entries.sort(byNewest);
  }

  /**
   * Fully checks one entry (ref given) or the whole store: every byte hashed,
   * every file holding the id it is named by, names pointing at files that
   * exist, no leftovers of interrupted writes.
   */
  async verify(ref?: string): Promise<VerifyReport> {
    const refs = await this.refs();
    const ids = ref === undefined ? await this.ids() : [await this.resolve(ref)];
    const entries: VerifyResult[] = [];
    for (const id of ids) {
      const file = this.pathOf(id);
      const result: VerifyResult = { id, file, names: namesOf(refs, id), ok: true, size: await fileSize(file) };
      try {
        await readBundleFile(file, { expectedId: id });
      } catch (err) {
        Object.assign(result, { ok: false, ...errorFields(err) });
      }
      entries.push(result);
    }
    const danglingRefs: VerifyReport['danglingRefs'] = [];
    const strays: string[] = [];
    if (ref === undefined) {
      const present = new Set(ids);
      for (const [name, id] of Object.entries(refs)) if (!present.has(id)) danglingRefs.push({ name, id });
      for (const f of await this.files()) {
        if (TEMP_PATTERN.test(f) || (f.endsWith(BUNDLE_EXTENSION) && !ENTRY_PATTERN.test(f))) strays.push(path.join(this.dir, f));
      }
    }
    const ok = entries.every((e) => e.ok) && danglingRefs.length === 0 && strays.length === 0;
    return { store: this.dir, ok, entries, danglingRefs, strays };
  }

  /** What a ref matches here (used by resolve, across one or more stores). */
  async lookup(ref: string): Promise<Lookup> {
    const refs = await this.refs();
    const out: Lookup = { byPrefix: [] };
    if (Object.prototype.hasOwnProperty.call(refs, ref)) out.byName = refs[ref];
    if (ref.length >= MIN_PREFIX && ref.length <= 64 && HEX_PATTERN.test(ref)) {
      const prefix = ref.toLowerCase();
      out.byPrefix = (await this.ids()).filter((id) => id.startsWith(prefix));
    }
    return out;
  }

  private async files(): Promise<string[]> {
    try {
      return await fsp.readdir(this.dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return [];
      if (code === 'ENOTDIR') throw new VtokError('IO', `Store ${this.dir} is not a folder`, { subject: this.dir, cause: err });
      throw new VtokError('IO', `Could not read store ${this.dir}: ${(err as Error).message}`, { subject: this.dir, cause: err });
    }
  }

  private checkWritable(what: string): void {
    if (this.readOnly) throw new VtokError('IO', `Cannot ${what} store ${this.dir}: it is read-only (the shipped codebooks)`, { subject: this.dir });
  }

  private async makeDir(): Promise<void> {
    try {
      await fsp.mkdir(this.dir, { recursive: true });
    } catch (err) {
      throw new VtokError('IO', `Could not create store folder ${this.dir}: ${(err as Error).message}`, { subject: this.dir, cause: err });
    }
  }

  /** Read-modify-write of refs.json under a lock file, written atomically. */
  private async updateRefs(change: (refs: Record<string, string>) => void): Promise<void> {
    await this.makeDir();
    const release = await acquireLock(path.join(this.dir, LOCK_FILE));
    try {
      const refs = await this.refs();
      change(refs);
      const sorted: Record<string, string> = {};
      for (const k of Object.keys(refs).sort()) sorted[k] = refs[k];
      const text = JSON.stringify({ format: REFS_FORMAT, version: REFS_VERSION, refs: sorted }, null, 2) + '\n';
      await writeFileAtomic(path.join(this.dir, REFS_FILE), text);
    } finally {
      await release();
    }
  }
}

// ---------------------------------------------------------------------------
// The search path: the user's store, then the shipped one.

export interface StoreSetOptions {
  /** The user's store folder (default: env VTOK_STORE, else ~/.vtok/store). */
  store?: string;
  /** The shipped, read-only store (default: the repository's codebooks/); false for none. */
  shipped?: string | false;
  /** Environment to read VTOK_STORE from (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}

/** Where the user's store is: the option, else env VTOK_STORE, else ~/.vtok/store ('~/' expanded). */
export function defaultStoreDir(options: { store?: string; env?: Readonly<Record<string, string | undefined>> } = {}): string {
  const env = options.env ?? process.env;
  // An empty option or variable counts as unset (a shell's `VTOK_STORE= vtok ...`).
  const chosen = options.store || env.VTOK_STORE || path.join(os.homedir(), '.vtok', 'store');
  return path.resolve(chosen === '~' || chosen.startsWith('~/') ? path.join(os.homedir(), chosen.slice(1)) : chosen);
}

/**
 * The folder of vtok's package.json, found from this file upwards (the same
 * from src/ under tsx and from dist/src/ once compiled), or undefined.
 */
export function packageRoot(): string | undefined {
  let dir = __dirname;
  for (;;) {
    try {
      if (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).name === 'vtok') return dir;
    } catch {
      // no package.json here: keep going up
    }
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** The repository's codebooks/ folder, or undefined when vtok is not laid out as a repository. */
export function shippedStoreDir(): string | undefined {
  const root = packageRoot();
  if (root === undefined) return undefined;
  const codebooks = path.join(root, 'codebooks');
  return fs.existsSync(codebooks) ? codebooks : undefined;
}

/**
 * The file of a shipped training config (training/configs/NAME.json). Found
 * from the package root: the compiled code lives in dist/, the JSON does not.
 */
export function shippedConfigFile(name: string): string {
  return path.join(packageRoot() ?? path.join(__dirname, '..', '..'), 'training', 'configs', `${name}.json`);
}

/** The user's store then the shipped one (once, writable, when both are the same folder). */
export function openStoreSet(options: StoreSetOptions = {}): StoreSet {
  const user = openStore(defaultStoreDir(options));
  const shippedDir = options.shipped === false ? undefined : (options.shipped ?? shippedStoreDir());
  const stores = [user];
  if (shippedDir !== undefined && path.resolve(shippedDir) !== user.dir) stores.push(openStore(shippedDir, { readOnly: true }));
  return new StoreSet(stores);
}

/** Stores searched in order; writes go to the first (writable) one. */
export class StoreSet {
  constructor(readonly stores: readonly Store[]) {
    if (stores.length === 0) throw new VtokError('INVALID_INPUT', 'A store set needs at least one store', { subject: 'stores' });
  }

  /** The id a ref stands for and the first store that holds it. */
  async resolve(ref: string): Promise<{ id: string; store: Store }> {
    return resolveIn(this.stores, ref);
  }

  async get(ref: string): Promise<Bundle> {
    const { id, store } = await this.resolve(ref);
    return readBundleFile(store.pathOf(id), { expectedId: id });
  }

  async info(ref: string): Promise<BundleInfo & { names: string[]; store: string }> {
    const { id, store } = await this.resolve(ref);
    return store.info(id);
  }

  /** Adds to the first writable store. */
  async put(bundle: BundleInput, options: PutOptions = {}): Promise<string> {
    return this.writable().put(bundle, options);
  }

  async remove(ref: string): Promise<{ id: string; names: string[] }> {
    return this.writable().remove(ref);
  }

  /** Entries of every store, in search order; a bundle present in two stores is listed once, from the first. */
  async list(): Promise<StoreEntry[]> {
    const seen = new Set<string>();
    const out: StoreEntry[] = [];
    for (const store of this.stores) {
      for (const e of await store.list()) {
        if (seen.has(e.id)) continue;
        seen.add(e.id);
        out.push(e);
      }
    }
    return out;
  }

  /** verify() of every store (ref given: only the store that resolves it). */
  async verify(ref?: string): Promise<VerifyReport[]> {
    if (ref !== undefined) {
      const { id, store } = await this.resolve(ref);
      return [await store.verify(id)];
    }
    const reports: VerifyReport[] = [];
    for (const store of this.stores) reports.push(await store.verify());
    return reports;
  }

  private writable(): Store {
    const store = this.stores.find((s) => !s.readOnly);
    if (!store) throw new VtokError('IO', `No writable store among ${this.stores.map((s) => s.dir).join(', ')}`, { subject: 'store' });
    return store;
  }
}

/**
 * Resolves a ref over stores in order: a name from the first store that has
 * it; else an id or id prefix (8+ hex digits) matched in all stores, which must
 * match exactly one id.
 */
async function resolveIn(stores: readonly Store[], ref: string): Promise<{ id: string; store: Store }> {
  if (typeof ref !== 'string' || ref.length === 0) {
    throw new VtokError('INVALID_INPUT', `Expected a bundle name, id or id prefix but received ${describeValue(ref)}`, { subject: 'ref' });
  }
  const lookups = await Promise.all(stores.map((s) => s.lookup(ref)));
  const named = lookups.findIndex((l) => l.byName !== undefined);
  if (named >= 0) {
    const id = lookups[named].byName as string;
    // A name may point into a later store (a user's alias of a shipped bundle).
    for (const store of stores.slice(named)) if (await store.has(id)) return { id, store };
    throw new VtokError(
      'STORE_NOT_FOUND',
      `Name ${JSON.stringify(ref)} in store ${stores[named].dir} points at ${id}, but ${stores[named].pathOf(id)} is missing`,
      { subject: ref },
    );
  }
  const matches = [...new Set(lookups.flatMap((l) => l.byPrefix))].sort();
  if (matches.length === 1) {
    const id = matches[0];
    const store = stores[lookups.findIndex((l) => l.byPrefix.includes(id))];
    return { id, store };
  }
  const where = stores.map((s) => s.dir).join(', ');
  if (matches.length > 1) {
    throw new VtokError(
      'INVALID_INPUT',
      `Bundle prefix ${JSON.stringify(ref)} is ambiguous in ${where}: it matches ${matches.join(', ')}; give more digits`,
      { subject: ref },
    );
  }
  if (HEX_PATTERN.test(ref) && ref.length < MIN_PREFIX) {
    throw new VtokError('INVALID_INPUT', `Bundle id prefix ${JSON.stringify(ref)} is too short: give at least ${MIN_PREFIX} hex digits (or a name)`, {
      subject: ref,
    });
  }
  const names = (await Promise.all(stores.map((s) => s.refs()))).flatMap((r) => Object.keys(r));
  const known = names.length ? `; names are ${[...new Set(names)].sort().join(', ')}` : '';
  throw new VtokError('STORE_NOT_FOUND', `No bundle ${JSON.stringify(ref)} in ${where}${known}`, { subject: ref });
}

// ---------------------------------------------------------------------------
// Helpers

/** Checks a store name: letters, digits, '.', '_', '-', not starting with a symbol, and not 8+ hex digits (that reads as an id prefix). */
export function checkName(name: unknown): string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name) || (name.length >= MIN_PREFIX && HEX_PATTERN.test(name))) {
    throw new VtokError(
      'INVALID_INPUT',
      `Expected a store name (letters, digits, '.', '_', '-'; up to 128 characters; not ${MIN_PREFIX} or more hex digits, which read as an id) but received ${describeValue(name)}`,
      { subject: 'name' },
    );
  }
  return name;
}

function parseRefs(text: string, file: string): Record<string, string> {
  const corrupt = (why: string) => new VtokError('STORE_CORRUPT', `Could not read ${file}: ${why}`, { subject: file });
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw corrupt(`it is not valid JSON (${(err as Error).message})`);
  }
  const d = data as { format?: unknown; version?: unknown; refs?: unknown };
  if (typeof d !== 'object' || d === null || d.format !== REFS_FORMAT) throw corrupt(`expected a "${REFS_FORMAT}" file`);
  if (d.version !== REFS_VERSION) {
    throw new VtokError('STORE_VERSION', `Could not read ${file}: it has version ${describeValue(d.version)}, and this vtok reads version ${REFS_VERSION}`, {
      subject: file,
    });
  }
  if (typeof d.refs !== 'object' || d.refs === null || Array.isArray(d.refs)) throw corrupt('expected "refs" to be an object of name: id');
  const out: Record<string, string> = Object.create(null);
  for (const [name, id] of Object.entries(d.refs)) {
    if (!isBundleId(id)) throw corrupt(`name ${JSON.stringify(name)} points at ${describeValue(id)}, which is not a bundle id`);
    out[name] = id;
  }
  return { ...out };
}

function namesOf(refs: Record<string, string>, id: string): string[] {
  return Object.keys(refs)
    .filter((n) => refs[n] === id)
    .sort();
}

function checkNamedId(actual: string, expected: string, file: string): void {
  if (actual !== expected) throw new VtokError('STORE_MISMATCH', `Bundle ${file} holds ${actual}, not the ${expected} its name says`, { subject: file });
}

function entryFields(info: BundleInfo): Partial<StoreEntry> {
  let parameters = 0;
  for (const t of Object.values(info.tensors)) parameters += shapeSize(t.shape);
  return {
    kind: info.kind,
    name: info.name,
    createdAt: info.createdAt,
    summary: configSummary(info.config),
    tensors: Object.keys(info.tensors).length,
    parameters,
  };
}

/** "a=1 b=x c={..}", at most `max` characters: the scalar values of a config first. */
export function configSummary(config: Record<string, unknown>, max = 72): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(config)) {
    if (v === null || ['number', 'string', 'boolean'].includes(typeof v)) parts.push(`${k}=${typeof v === 'string' ? v : String(v)}`);
  }
  const s = parts.join(' ');
  return s.length <= max ? s : s.slice(0, max - 3) + '...';
}

function errorFields(err: unknown): { code: string; message: string } {
  return err instanceof VtokError ? { code: err.code, message: err.message } : { code: 'IO', message: (err as Error)?.message ?? String(err) };
}

function byNewest(a: StoreEntry, b: StoreEntry): number {
  const ta = a.createdAt ?? '';
  const tb = b.createdAt ?? '';
  return ta === tb ? (a.id < b.id ? -1 : 1) : ta < tb ? 1 : -1;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.stat(file);
    return true;
  } catch {
    return false;
  }
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await fsp.stat(file)).size;
  } catch {
    return 0;
  }
}

/**
 * Takes a lock file (exclusive create). Waits up to `waitMs` for another holder;
 * a lock older than `staleMs` is from a crashed process and is taken over.
 */
async function acquireLock(file: string, waitMs = 10_000, staleMs = 60_000): Promise<() => Promise<void>> {
  const start = Date.now();
  for (;;) {
    try {
      const handle = await fsp.open(file, 'wx');
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return () => fsp.rm(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new VtokError('IO', `Could not lock ${file}: ${(err as Error).message}`, { subject: file, cause: err });
      }
    }
    const age = await fsp.stat(file).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > staleMs) {
      await fsp.rm(file, { force: true });
      continue;
    }
    if (Date.now() - start > waitMs) {
      throw new VtokError('IO', `Could not lock ${file}: another vtok process holds it (remove the file if no vtok is running)`, { subject: file });
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
