/**
 * Resume after kill -9: a child process tokenizes and is killed (after a
 * seeded random delay, or as soon as N records are done), then the run is
 * resumed, and the result must equal an uninterrupted run: the same shard
 * bytes (so the same records), the same errors.jsonl, the same manifest.
 * Then the states a kill can leave are made by hand, one by one.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../../src/core/random';
import { PROGRESS_FORMAT, PROGRESS_VERSION, type ProgressJournal, type TokenManifest } from '../../src/core/shard-format';
import { colourGridTokenizer } from '../../src/pipeline/colour-grid';
import { tokenizeDataset } from '../../src/pipeline/tokenize';
import { makeImages, tmpDir } from './helpers';
import { CHILD_RUN } from './resume-config';

const ROOT = path.resolve(__dirname, '../..');
const CHILD = path.join(__dirname, 'child-tokenize.ts');
const tok = colourGridTokenizer(CHILD_RUN.tokenizer);
const run = (inputs: string, out: string, resume = false): ReturnType<typeof tokenizeDataset> =>
  tokenizeDataset({ ...CHILD_RUN.options, inputs: [inputs], out, tokenizer: tok, resume });

/** Runs the child; kills it with SIGKILL `delayMs` after it starts tokenizing (unless killAfter kills it first). */
function runChild(inputs: string, out: string, opts: { resume: boolean; delayMs?: number; killAfter?: number }): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const args = ['--import', 'tsx', CHILD, inputs, out, opts.resume ? '1' : '0'];
    if (opts.killAfter !== undefined) args.push(String(opts.killAfter));
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (opts.delayMs !== undefined && stdout.includes('started') && !stdout.includes('#timer')) {
        stdout += '#timer';
        setTimeout(() => child.kill('SIGKILL'), opts.delayMs);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

async function snapshot(out: string): Promise<{ files: string[]; manifest: string; errors: string }> {
  return {
    files: (await fsp.readdir(out)).sort(),
    manifest: await fsp.readFile(path.join(out, 'manifest.json'), 'utf8'),
    errors: await fsp.readFile(path.join(out, 'errors.jsonl'), 'utf8'),
  };
}

describe('resume after kill -9', () => {
  let root: string;
  let inDir: string;
  let reference: Awaited<ReturnType<typeof snapshot>>;
  beforeAll(async () => {
    root = await tmpDir('vtok-resume-');
    inDir = path.join(root, 'in');
    await makeImages(inDir, 22, 4);
    await fsp.writeFile(path.join(inDir, 'broken.png'), 'not a png'); // a skipped input must also be listed exactly once
    await fsp.writeFile(path.join(inDir, 'empty.jpg'), '');
    await run(inDir, path.join(root, 'reference'));
    reference = await snapshot(path.join(root, 'reference'));
    expect(reference.files.filter((f) => f.startsWith('shard-')).length).toBe(6);
  });
  afterAll(() => fsp.rm(root, { recursive: true, force: true }));

  // Seeds pick the kill delay (10-110 ms after the first batch starts) or the number of records after which the child kills itself.
  test.each([1, 2, 3, 4])('seed %i: killed child, resumed, equals an uninterrupted run', async (seed) => {
    const rng = new Rng(seed);
    const out = path.join(root, `killed-${seed}`);
    const kill = seed % 2 === 0 ? { delayMs: 10 + rng.int(100) } : { killAfter: 1 + rng.int(20) };
    const first = await runChild(inDir, out, { resume: false, ...kill });
    expect(first.stderr).toBe('');
    if (first.signal === 'SIGKILL') {
      // the killed run left no manifest; if it left anything, a plain rerun refuses to touch it
      const left = await fsp.readdir(out);
      expect(left).not.toContain('manifest.json');
      if (left.length > 0) await expect(run(inDir, out)).rejects.toThrow(/holds the unfinished output of this run/);
    }
    if (seed === 3) {
      // kill the resumed run too, then resume again
      await runChild(inDir, out, { resume: true, delayMs: rng.int(40) });
    }
    const res = await run(inDir, out, true);
    expect(res.resumed + res.written).toBe(6);
    expect(await snapshot(out)).toEqual(reference);
    for (const f of reference.files.filter((x) => x.startsWith('shard-'))) {
      expect(await fsp.readFile(path.join(out, f))).toEqual(await fsp.readFile(path.join(root, 'reference', f)));
    }
  });

  describe('the states a kill can leave, made by hand', () => {
    let manifest: TokenManifest;
    let journalOf: (shards: number[]) => Promise<ProgressJournal>;
    beforeAll(async () => {
      manifest = JSON.parse(reference.manifest) as TokenManifest;
      journalOf = async (shards) => ({
        format: PROGRESS_FORMAT,
        version: PROGRESS_VERSION,
        run: manifest.run,
        options: manifest.options,
        part: manifest.part,
        done: shards.map((k) => manifest.shards[k]),
      });
    });

    async function state(name: string, shards: number[], journal: number[] | null, extra: (dir: string) => Promise<void> = async () => undefined): Promise<string> {
      const dir = path.join(root, name);
      await fsp.mkdir(dir);
      for (const k of shards) await fsp.copyFile(path.join(root, 'reference', manifest.shards[k].file), path.join(dir, manifest.shards[k].file));
      if (journal) await fsp.writeFile(path.join(dir, 'progress.json'), JSON.stringify(await journalOf(journal)));
      await extra(dir);
      return dir;
    }

    test('killed during a shard write: a temp file is left; it is removed and the shard redone', async () => {
      const dir = await state('temp-left', [0, 1], [0, 1], (d) => fsp.writeFile(path.join(d, '.shard-00002.msgpack.4242.a1b2c3.tmp'), 'half a shard'));
      const res = await run(inDir, dir, true);
      expect([res.resumed, res.written]).toEqual([2, 4]);
      expect(await snapshot(dir)).toEqual(reference);
    });

    test('killed between a shard rename and the journal write: the shard is checked record by record and kept', async () => {
      const dir = await state('no-journal-entry', [0, 1, 2], [0, 1]);
      const res = await run(inDir, dir, true);
      expect([res.resumed, res.written]).toEqual([3, 3]);
      expect(await snapshot(dir)).toEqual(reference);
    });

    test('killed before the first journal write: shards without any journal are adopted', async () => {
      const dir = await state('no-journal', [0], null);
      expect((await run(inDir, dir, true)).resumed).toBe(1);
      expect(await snapshot(dir)).toEqual(reference);
    });

    test('a journal of version 1 (skipped inputs listed in it) counts as absent: its shards are read and adopted', async () => {
      const dir = await state('journal-v1', [0, 1, 2], null, async (d) => {
        const v2 = await journalOf([0, 1, 2]);
        const v1 = { ...v2, version: 1, done: v2.done.map((entry) => ({ entry, skipped: [] })) };
        await fsp.writeFile(path.join(d, 'progress.json'), JSON.stringify(v1));
      });
      const res = await run(inDir, dir, true);
      expect([res.resumed, res.written]).toEqual([3, 3]);
      expect(await snapshot(dir)).toEqual(reference); // errors.jsonl included: the adopted shards' skipped inputs come from the shards
    });

    test('a journal entry whose shard is gone, and a damaged shard file, are redone', async () => {
      const dir = await state('gone-and-damaged', [0, 2], [0, 1, 2], async (d) => {
        await fsp.writeFile(path.join(d, manifest.shards[3].file), 'garbage that is not msgpack');
        const f = path.join(d, manifest.shards[2].file);
        const b = await fsp.readFile(f);
        await fsp.writeFile(f, b.subarray(0, b.length - 7));
      });
      const res = await run(inDir, dir, true);
      expect([res.resumed, res.written]).toEqual([1, 5]);
      expect(await snapshot(dir)).toEqual(reference);
    });

    test('killed after the errors file, before the manifest: finished on resume', async () => {
      const dir = await state('no-manifest', [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], (d) => fsp.writeFile(path.join(d, 'errors.jsonl'), reference.errors));
      const res = await run(inDir, dir, true);
      expect([res.resumed, res.written]).toEqual([6, 0]);
      expect(await snapshot(dir)).toEqual(reference);
    });

    test('a shard of another run under this name is not deleted: resume refuses', async () => {
      const other = path.join(root, 'other-run');
      await tokenizeDataset({ ...CHILD_RUN.options, inputs: [inDir], out: other, tokenizer: tok, maxFileBytes: 1 << 20 });
      const dir = await state('foreign-shard', [], null, (d) => fsp.copyFile(path.join(other, 'shard-00000.msgpack'), path.join(d, 'shard-00000.msgpack')));
      await expect(run(inDir, dir, true)).rejects.toThrow(`Refusing to resume in ${dir}: shard-00000.msgpack belongs to another run (options or inputs differ); choose another folder`);
      expect(await fsp.readdir(dir)).toEqual(['shard-00000.msgpack']);
    });

    test('inputs added after the crash: the run is another run and is refused', async () => {
      const dir = await state('inputs-changed', [0, 1], [0, 1]);
      const more = path.join(root, 'in-more');
      await fsp.cp(inDir, more, { recursive: true });
      await fsp.writeFile(path.join(more, 'zzz-new.png'), 'new');
      await expect(tokenizeDataset({ ...CHILD_RUN.options, inputs: [more], out: dir, tokenizer: tok, resume: true })).rejects.toThrow(
        /made with other options: inputs \(another set of input files\)/,
      );
    });
  });
});
