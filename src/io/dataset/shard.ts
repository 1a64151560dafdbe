/**
 * Reading and writing token shards, manifests, journals and error lists (the
 * formats are described in src/core/shard-format.ts). Every file is written
 * atomically (writeFileAtomic: temp file, fsync, rename), so a reader, or a
 * resumed run after kill -9, finds either the whole file or none.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Packr } from 'msgpackr';
import { VtokError } from '../../core/errors';
import type { SkippedInput, TokenRecord } from '../../core/pipeline-types';
import {
  checkManifest,
  checkShardWire,
  checkSkipped,
  recordFromWire,
  recordToWire,
  PROGRESS_FORMAT,
  PROGRESS_VERSION,
  SHARD_FORMAT,
  SHARD_VERSION,
  type ProgressJournal,
  type ShardWire,
  type TokenManifest,
} from '../../core/shard-format';
import { writeFileAtomic } from '../atomic';

/** Plain msgpack: maps as maps (no msgpackr record extension), so any msgpack reader can load a shard. */
const packr = new Packr({ useRecords: false, moreTypes: false });

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 of a file, streamed. */
export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** What a shard holds, before it is packed. */
export type ShardContent = Omit<ShardWire, 'format' | 'version' | 'records'> & { records: TokenRecord[] };

/** Packs a shard into bytes (deterministic: the same content gives the same bytes). */
export function packShard(c: ShardContent): Uint8Array {
  const wire: ShardWire = {
    format: SHARD_FORMAT,
    version: SHARD_VERSION,
    run: c.run,
    tokenizer: c.tokenizer,
    part: c.part,
    shard: c.shard,
    slice: c.slice,
    codeDtype: c.codeDtype,
    bpeDtype: c.bpeDtype,
    records: c.records.map((r) => recordToWire(r, c.codeDtype, c.bpeDtype)),
    skipped: c.skipped.map((s) => ({ key: s.key, source: s.source, reason: s.reason, code: s.code, message: s.message })),
  };
  return packr.pack(wire);
}

/** Unpacks and checks shard bytes. `where` names the file in errors. */
export function unpackShard(bytes: Uint8Array, where: string): ShardContent {
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch (err) {
    throw new VtokError('STORE_CORRUPT', `${where}: not a readable msgpack file (${(err as Error).message}); the file is damaged`, { subject: where, cause: err });
  }
  const w = checkShardWire(raw, where);
  return {
    run: w.run,
    tokenizer: w.tokenizer,
    part: [w.part[0], w.part[1]],
    shard: w.shard,
    slice: [w.slice[0], w.slice[1]],
    codeDtype: w.codeDtype,
    bpeDtype: w.bpeDtype,
    records: w.records.map((r, i) => recordFromWire(r, w.codeDtype, w.bpeDtype, `${where} record ${i}`)),
    skipped: w.skipped.map((s) => checkSkipped(s, where)),
  };
}

/** Reads a shard file; with `sha256`, checks the file against it first. */
export async function readShard(file: string, expectSha256?: string): Promise<ShardContent & { sha256: string; bytes: number }> {
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(file);
  } catch (err) {
    throw new VtokError('FILE_NOT_FOUND', `Could not read shard ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  const sha256 = sha256Hex(bytes);
  if (expectSha256 !== undefined && sha256 !== expectSha256) {
    throw new VtokError('STORE_CORRUPT', `Shard ${file} is damaged: its sha256 is ${sha256} but the manifest records ${expectSha256}`, { subject: file });
  }
  return { ...unpackShard(bytes, file), sha256, bytes: bytes.length };
}

/** Writes a shard atomically; returns its sha256 and size. */
export async function writeShard(file: string, c: ShardContent): Promise<{ sha256: string; bytes: number }> {
  const bytes = packShard(c);
  await writeFileAtomic(file, bytes);
  return { sha256: sha256Hex(bytes), bytes: bytes.length };
}

/** Reads a JSON file, or null when it does not exist. Throws STORE_CORRUPT when it is not JSON. */
export async function readJsonOrNull(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new VtokError('IO', `Could not read ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new VtokError('STORE_CORRUPT', `${file} is not valid JSON (${(err as Error).message})`, { subject: file, cause: err });
  }
}

/** Reads and checks a manifest. */
export async function readManifest(file: string): Promise<TokenManifest> {
  const m = await readJsonOrNull(file);
  if (m === null) throw new VtokError('FILE_NOT_FOUND', `Could not find ${file}: not a finished vtok token folder (no manifest)`, { subject: file });
  return checkManifest(m, file);
}

/** The manifest of a token folder (or the manifest file itself). */
export async function readTokenDir(dirOrManifest: string): Promise<{ dir: string; manifest: TokenManifest }> {
  const st = await fsp.stat(dirOrManifest).catch(() => null);
  if (!st) throw new VtokError('FILE_NOT_FOUND', `Could not find ${dirOrManifest}`, { subject: dirOrManifest });
  const file = st.isDirectory() ? path.join(dirOrManifest, 'manifest.json') : dirOrManifest;
  return { dir: path.dirname(file), manifest: await readManifest(file) };
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 1)}\n`);
}

/** errors.jsonl text: one skipped input a line, in the given order. */
export function errorsJsonl(skipped: readonly SkippedInput[]): string {
  return skipped.map((s) => JSON.stringify({ key: s.key, source: s.source, reason: s.reason, code: s.code, message: s.message })).join('\n') + (skipped.length ? '\n' : '');
}

/** Reads errors.jsonl. */
export async function readErrors(file: string): Promise<SkippedInput[]> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw new VtokError('FILE_NOT_FOUND', `Could not read ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => {
      try {
        return checkSkipped(JSON.parse(l), `${file} line ${i + 1}`);
      } catch (err) {
        if (err instanceof VtokError) throw err;
        throw new VtokError('STORE_CORRUPT', `${file} line ${i + 1} is not valid JSON`, { subject: file, cause: err });
      }
    });
}

/** Reads a progress journal, or null when absent or not a journal of this run and part. */
export async function readJournal(file: string, run: string, part: [number, number]): Promise<ProgressJournal | null> {
  let j: ProgressJournal | null;
  try {
    j = (await readJsonOrNull(file)) as ProgressJournal | null;
  } catch {
    return null; // a journal is always written atomically; an unreadable one is treated as absent
  }
  if (j === null || j.format !== PROGRESS_FORMAT || j.version !== PROGRESS_VERSION || j.run !== run) return null;
  if (!j.part || j.part.index !== part[0] || j.part.count !== part[1] || !Array.isArray(j.done)) return null;
  return j;
}

/**
 * The records of a token folder, shard by shard in manifest order (one shard
 * in memory at a time); every shard is checked against the manifest's sha256
 * and must carry the manifest's run id.
 */
export async function* iterateShards(dir: string, manifest: TokenManifest): AsyncGenerator<ShardContent & { file: string }> {
  for (const s of manifest.shards) {
    const file = path.join(dir, s.file);
    const shard = await readShard(file, s.sha256);
    if (shard.run !== manifest.run) {
      throw new VtokError('STORE_MISMATCH', `${file} belongs to run ${shard.run.slice(0, 12)}, not to the manifest's run ${manifest.run.slice(0, 12)}`, { subject: file });
    }
    yield { ...shard, file };
  }
}
