/**
 * mergeManifests: the parts of a split run (`--shard i/n`, one manifest per
 * part) become one manifest.json and one errors.jsonl, after checking that
 * the parts cover the input exactly once:
 *   - every part 0..n-1 is there exactly once, all of one run (same
 *     tokenizer, options and input set: the run digest);
 *   - with `verify` (default), every shard is read and its sha256 checked,
 *     each input key appears exactly once over all parts' records and skipped
 *     inputs, each key sits in the part its sorted position j says
 *     (j mod n), and the sorted keys hash to the run's input digest, so the
 *     merged run holds exactly the input set every part enumerated;
 *   - without it, only the counts are checked (records + skipped = inputs of
 *     the part, parts sum to the input count).
 * The merged manifest lists every part's shards (paths relative to `out`),
 * part by part; errors.jsonl lists the skipped inputs in key order.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { VtokError, invalidOption, resolveOptions } from '../core/errors';
import type { SkippedInput } from '../core/pipeline-types';
import { MANIFEST_FORMAT, MANIFEST_VERSION, checkManifest, emptyReasonCounts, parseOutputName, partSize, type ShardEntry, type TokenManifest } from '../core/shard-format';
import { writeFileAtomic } from '../io/atomic';
import { compareKeys } from '../io/dataset/glob';
import { errorsJsonl, readErrors, readJsonOrNull, readShard, writeJsonAtomic } from '../io/dataset/shard';

export interface MergeOptions {
  /** Folders holding the parts' files (`part-IIII-of-NNNN.manifest.json` and shards); the same folder for parts that shared one. Required. */
  dirs: string[];
  /** Folder for the merged manifest.json and errors.jsonl. Default undefined: the first of dirs. */
  out: string | undefined;
  /** Read every shard to check sha256 and exactly-once coverage of the input keys. Default true. */
  verify: boolean;
}

export const MERGE_DEFAULTS: MergeOptions = { dirs: [], out: undefined, verify: true };

export interface MergeResult {
  manifestFile: string;
  manifest: TokenManifest;
  parts: number;
}

interface FoundPart {
  dir: string;
  file: string;
  manifest: TokenManifest;
}

function mergeError(message: string): VtokError {
  return new VtokError('INVALID_INPUT', `Cannot merge: ${message}`, { subject: 'dirs' });
}

/**
 * The keys of one part in its order, shard by shard (a shard's records and
 * skipped inputs together, sorted), checking that each shard belongs to it;
 * its skipped inputs are added to `skipped` as they are read.
 */
async function* partKeys(f: FoundPart, i: number, n: number, run: string, skipped: SkippedInput[]): AsyncGenerator<string> {
  for (const s of [...f.manifest.shards].sort((a, b) => a.shard - b.shard)) {
    const file = path.join(f.dir, s.file);
    const shard = await readShard(file, s.sha256);
    if (shard.run !== run || shard.part[0] !== i || shard.part[1] !== n) throw mergeError(`${file} does not belong to part ${i} of this run`);
    const keys = shard.records.map((r) => r.key);
    for (const x of shard.skipped) {
      keys.push(x.key);
      skipped.push(x); // one at a time: push(...list) overflows the stack past ~100,000 arguments
    }
    yield* keys.sort(compareKeys);
  }
}

/**
 * Merges the manifests of a split run (see the top of this file).
 *
 * Example: await mergeManifests({ dirs: ['tokens/'] });  // tokens/manifest.json for all parts
 */
export async function mergeManifests(options: Partial<MergeOptions>): Promise<MergeResult> {
  const opts = resolveOptions('mergeManifests', MERGE_DEFAULTS, options);
  if (!Array.isArray(opts.dirs) || opts.dirs.length === 0 || !opts.dirs.every((d) => typeof d === 'string' && d !== '')) {
    throw invalidOption('dirs', 'a non-empty array of folders', opts.dirs);
  }
  const out = opts.out ?? opts.dirs[0];
  if (typeof out !== 'string' || out === '') throw invalidOption('out', 'a folder', out);
  if (typeof opts.verify !== 'boolean') throw invalidOption('verify', 'a boolean', opts.verify);

  const found: FoundPart[] = [];
  const seenDirs = new Set<string>();
  for (const dir of opts.dirs) {
    const abs = path.resolve(dir);
    if (seenDirs.has(abs)) continue;
    seenDirs.add(abs);
    let names: string[];
    try {
      names = (await fsp.readdir(dir)).sort();
    } catch (err) {
      throw new VtokError('FILE_NOT_FOUND', `Could not read ${dir}: ${(err as Error).message}`, { subject: dir, cause: err });
    }
    for (const name of names) {
      const o = parseOutputName(name);
      if (!o || o.temp || o.kind !== 'manifest' || o.part.count === 1) continue;
      const file = path.join(dir, name);
      found.push({ dir, file, manifest: checkManifest(await readJsonOrNull(file), file) });
    }
  }
  if (found.length === 0) throw mergeError(`no part manifests (part-IIII-of-NNNN.manifest.json) in ${opts.dirs.join(', ')}; are the parts finished?`);

  const first = found[0].manifest;
  const n = first.part.count;
  const byIndex = new Map<number, FoundPart>();
  for (const f of found) {
    const m = f.manifest;
    if (m.run !== first.run) {
      throw mergeError(`${f.file} belongs to another run than ${found[0].file} (tokenizer, options or input set differ)`);
    }
    const prev = byIndex.get(m.part.index);
    if (prev) throw mergeError(`part ${m.part.index} of ${n} appears twice: ${prev.file} and ${f.file}`);
    byIndex.set(m.part.index, f);
  }
  const missing: number[] = [];
  for (let i = 0; i < n; i++) if (!byIndex.has(i)) missing.push(i);
  if (missing.length > 0) throw mergeError(`parts ${missing.join(', ')} of ${n} are missing (not finished, or in a folder not given)`);

  const N = first.options.inputs.count;
  const parts = [...byIndex.keys()].sort((a, b) => a - b).map((i) => byIndex.get(i) as FoundPart);
  for (const [i, f] of parts.entries()) {
    const c = f.manifest.counts;
    const expect = partSize(N, i, n);
    if (c.inputs !== expect || c.records + c.errors !== c.inputs) {
      throw mergeError(`${f.file} accounts for ${c.records} records + ${c.errors} skipped of ${c.inputs} inputs, but part ${i} of ${n} over ${N} inputs has ${expect}`);
    }
  }

  // Skipped inputs, and (verify) every key with the part it was found in.
  let skipped: SkippedInput[] = [];
  if (opts.verify) {
    // Input j of the run is in part j mod n, so the parts' keys taken in turn must be the run's sorted key list:
    // each one after the one before (strictly: no input twice), N of them, hashing to its digest. One shard of each
    // part is held at a time.
    const streams = parts.map((f, i) => partKeys(f, i, n, first.run, skipped));
    const hash = createHash('sha256');
    let prev = '';
    for (let j = 0; j < N; j++) {
      const p = j % n;
      const next = await streams[p].next();
      if (next.done) throw mergeError(`part ${p} of ${n} holds fewer than its ${partSize(N, p, n)} of the run's ${N} inputs`);
      const key = next.value;
      if (j > 0 && compareKeys(key, prev) <= 0) {
        throw mergeError(
          key === prev
            ? `input ${JSON.stringify(key)} appears twice (parts ${(j - 1) % n} and ${p})`
            : `the parts do not interleave into one sorted input list: input ${JSON.stringify(key)} (part ${p}, position ${j}) sorts before ${JSON.stringify(prev)} (part ${(j - 1) % n}, position ${j - 1}); an input is in the wrong part, in two parts, or was renamed`,
        );
      }
      hash.update(j === 0 ? key : `\n${key}`);
      prev = key;
    }
    for (const [p, stream] of streams.entries()) {
      if (!(await stream.next()).done) throw mergeError(`part ${p} of ${n} holds more than its ${partSize(N, p, n)} of the run's ${N} inputs`);
    }
    if (hash.digest('hex') !== first.options.inputs.digest) throw mergeError(`the parts' input keys do not hash to the run's input digest`);
  } else {
    for (const f of parts) for (const x of await readErrors(path.join(f.dir, f.manifest.errors))) skipped.push(x);
  }
  skipped = skipped.sort((a, b) => compareKeys(a.key, b.key));

  await fsp.mkdir(out, { recursive: true });
  const existing = (await readJsonOrNull(path.join(out, 'manifest.json')).catch(() => null)) as TokenManifest | null;
  if (existing && existing.run !== first.run) {
    throw new VtokError('INVALID_OPTION', `Refusing to overwrite ${path.join(out, 'manifest.json')}: it belongs to another run`, { subject: 'out' });
  }
  const shards: ShardEntry[] = [];
  for (const f of parts) {
    for (const s of f.manifest.shards) {
      shards.push({ ...s, file: path.relative(out, path.join(f.dir, s.file)).split(path.sep).join('/') });
    }
  }
  const byReason = emptyReasonCounts();
  for (const s of skipped) byReason[s.reason]++;
  const manifest: TokenManifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    run: first.run,
    options: first.options,
    part: { index: 0, count: 1 },
    merged: n,
    counts: { inputs: N, records: parts.reduce((s, f) => s + f.manifest.counts.records, 0), errors: skipped.length, byReason },
    shards,
    errors: 'errors.jsonl',
    inputSpecs: first.inputSpecs,
  };
  await writeFileAtomic(path.join(out, 'errors.jsonl'), errorsJsonl(skipped));
  const manifestFile = path.join(out, 'manifest.json');
  await writeJsonAtomic(manifestFile, manifest);
  return { manifestFile, manifest, parts: n };
}
