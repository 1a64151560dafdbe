/**
 * The output folder of a tokenize run: refuse to write into a folder that
 * holds anything else, and find what a crashed run of the same part left.
 *
 * A folder is usable when it is missing or empty, or when it holds only vtok
 * token files (see parseOutputName) of the same run (same tokenizer, same
 * options, same input set: the run digest). Then:
 *   - this part complete (its manifest exists): done with `resume`, refused without;
 *   - this part unfinished (journal or shards exist): continued with `resume`, refused without;
 *   - only other parts' files: this part starts (parts of one run may share a folder).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { VtokError } from '../../core/errors';
import {
  canonicalJson,
  manifestFileName,
  parseOutputName,
  progressFileName,
  type PartSpec,
  type ProgressJournal,
  type RunOptions,
  type TokenManifest,
} from '../../core/shard-format';
import { readJournal, readJsonOrNull } from './shard';

export interface OutDirState {
  /** This part's manifest, when the part is complete. */
  manifest: TokenManifest | null;
  /** This part's journal, when there is one. */
  journal: ProgressJournal | null;
  /** This part's shard files present, by shard number (file names). */
  shards: Map<number, string>;
}

function refuse(dir: string, why: string): VtokError {
  return new VtokError('INVALID_OPTION', `Refusing to write into ${dir}: ${why}`, { subject: 'out' });
}

/** Names the options that differ between two runs, for the refusal message. */
export function describeRunDifference(mine: RunOptions, theirs: RunOptions | undefined): string {
  if (!theirs || typeof theirs !== 'object') return 'it belongs to another vtok run';
  if (theirs.tokenizer?.id !== mine.tokenizer.id) return `it holds tokens of another tokenizer (${theirs.tokenizer?.id}, not ${mine.tokenizer.id})`;
  const diffs: string[] = [];
  const keys = new Set([...Object.keys(mine), ...Object.keys(theirs)]);
  for (const k of keys) {
    const a = canonicalJson((mine as unknown as Record<string, unknown>)[k]);
    const b = canonicalJson((theirs as unknown as Record<string, unknown>)[k]);
    if (a !== b) diffs.push(k === 'inputs' ? 'inputs (another set of input files)' : `${k} (${b} there, ${a} now)`);
  }
  return `it holds tokens of the same tokenizer made with other options: ${diffs.join('; ')}`;
}

/**
 * Checks the output folder (creating it when missing) and returns what this
 * part already has there. Temporary files of this part are removed when
 * resuming (they are what a killed atomic write leaves).
 */
export async function prepareOutDir(dir: string, run: string, options: RunOptions, part: PartSpec, resume: boolean): Promise<OutDirState> {
  await fsp.mkdir(dir, { recursive: true }).catch((err) => {
    throw new VtokError('IO', `Could not create ${dir}: ${(err as Error).message}`, { subject: 'out', cause: err });
  });
  const st = await fsp.stat(dir);
  if (!st.isDirectory()) throw refuse(dir, 'it is a file, not a folder');
  const names = (await fsp.readdir(dir)).sort();
  const foreign = names.filter((n) => parseOutputName(n) === null);
  if (foreign.length > 0) {
    const shown = foreign.slice(0, 3).join(', ') + (foreign.length > 3 ? `, ... (${foreign.length} entries)` : '');
    throw refuse(dir, `it is not empty and is not a vtok token folder (it holds ${shown}); choose an empty or new folder`);
  }
  const state: OutDirState = { manifest: null, journal: null, shards: new Map() };
  const temps: string[] = [];
  let mine = false;
  for (const name of names) {
    const o = parseOutputName(name) as NonNullable<ReturnType<typeof parseOutputName>>;
    const samePart = o.part.index === part.index && o.part.count === part.count;
    if (o.temp) {
      if (samePart) {
        temps.push(name);
        mine = true; // a write of this part was cut short
      }
      continue;
    }
    if (o.kind === 'manifest' || o.kind === 'progress') {
      const data = (await readJsonOrNull(path.join(dir, name)).catch(() => null)) as { run?: string; options?: RunOptions } | null;
      if (data && data.run !== run) throw refuse(dir, describeRunDifference(options, data.options));
      if (data && samePart && o.kind === 'manifest') state.manifest = data as TokenManifest;
      if (samePart && o.kind === 'progress') mine = true;
    } else if (o.kind === 'shard') {
      if (o.part.count !== part.count) {
        throw refuse(dir, `it holds shards of a run split into ${o.part.count} parts (${name}), not ${part.count}`);
      }
      if (samePart) {
        state.shards.set(o.shard as number, name);
        mine = true;
      }
    } else if (o.kind === 'errors' && samePart) {
      mine = true;
    }
  }
  if (state.manifest) {
    if (!resume) throw refuse(dir, `it already holds the finished output of this run (${manifestFileName(part)}); pass resume to check it, or choose another folder`);
    return state;
  }
  if (mine && !resume) {
    throw refuse(dir, `it holds the unfinished output of this run (${progressFileName(part)}, shards or temporary files); pass resume to continue it, or choose another folder`);
  }
  if (resume) {
    state.journal = await readJournal(path.join(dir, progressFileName(part)), run, [part.index, part.count]);
    for (const t of temps) await fsp.rm(path.join(dir, t), { force: true });
  }
  return state;
}
