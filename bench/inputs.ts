/**
 * Cost of enumerating a dataset's inputs (src/io/dataset/inputs.ts): wall
 * time of enumerateInputs, the memory the sorted input list holds per input
 * (JS heap plus ArrayBuffers, after full collections, with the list held and
 * after it is dropped), and the process's peak RSS.
 *
 * Usage: node --expose-gc --import tsx bench/inputs.ts SPEC [reps]
 *        node --expose-gc --import tsx bench/inputs.ts --list N [reps]
 *   SPEC: what `vtok tokenize` takes: a folder, glob, tar, or @file-list
 *         e.g.  node --expose-gc --import tsx bench/inputs.ts data/fashion-mnist/train
 *   --list N: a file list of N Fashion-MNIST images with their caption
 *         sidecars (data/fashion-mnist/train through symbolic links to its
 *         folder, so that N can exceed its 60,000 files), written to a
 *         temporary folder; e.g. --list 1000000 for a million inputs.
 *   --labels N csv|jsonl: instead, a mapping file of N rows (key, label,
 *         caption) read with loadLabelMap, as `vtok tokenize --labels` reads it.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { enumerateInputs } from '../src/io/dataset/inputs';
import { loadLabelMap } from '../src/io/dataset/labels';
import { median } from './lib/timing';

const gc = (globalThis as { gc?: () => void }).gc;

/** Heap plus ArrayBuffers after full collections. Promise continuations hold the last results for a while: let them go first. */
async function settled(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 20));
    (gc as () => void)();
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Writes a list of n Fashion-MNIST images (with .txt sidecars), reaching past 60,000 through links to the folder. */
async function syntheticList(n: number): Promise<{ spec: string; dir: string }> {
  const train = path.resolve('data/fashion-mnist/train');
  const names = (await fsp.readdir(train)).filter((f) => f.endsWith('.png')).sort();
  if (names.length === 0) throw new Error(`No PNGs in ${train}: run npm run data first`);
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-bench-inputs-'));
  const links = Math.ceil(n / names.length);
  for (let l = 0; l < links; l++) await fsp.symlink(train, path.join(dir, `l${l}`));
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`l${Math.floor(i / names.length)}/${names[i % names.length]}`);
  await fsp.writeFile(path.join(dir, 'list.txt'), `${lines.join('\n')}\n`);
  return { spec: `@${path.join(dir, 'list.txt')}`, dir };
}

/** A mapping file of n rows, its memory held per row and the time to read it. */
async function labels(n: number, format: string): Promise<void> {
  if (!(Number.isInteger(n) && n > 0) || (format !== 'csv' && format !== 'jsonl')) throw new Error('Usage: --labels N csv|jsonl');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-bench-labels-'));
  try {
    const file = path.join(dir, `labels.${format}`);
    const row = (i: number): [string, number, string] => [`train/${String(i).padStart(7, '0')}.png`, i % 10, `a photo of thing number ${i} on a table`];
    const lines: string[] = format === 'csv' ? ['key,label,caption'] : [];
    for (let i = 0; i < n; i++) {
      const [key, label, caption] = row(i);
      lines.push(format === 'csv' ? `${key},${label},${caption}` : JSON.stringify({ key, label, caption }));
    }
    await fsp.writeFile(file, `${lines.join('\n')}\n`);
    lines.length = 0;
    const before = await settled();
    const t0 = performance.now();
    const held = await loadLabelMap(file);
    const seconds = (performance.now() - t0) / 1000;
    const withMap = await settled();
    const { size } = await fsp.stat(file);
    console.log(`${format} mapping file of ${held.map.size} rows (${(size / 1e6).toFixed(1)} MB): read in ${seconds.toFixed(1)} s`);
    console.log(`  held: ${((withMap - before) / n).toFixed(0)} bytes per row; peak RSS of the process ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (!gc) throw new Error('Run with node --expose-gc (the memory per input needs full collections)');
  if (args[0] === '--labels') return labels(Number(args[1]), args[2] ?? 'csv');
  let spec = args[0];
  let temp: string | null = null;
  let reps = Number(args[1] ?? 5);
  if (spec === '--list') {
    const made = await syntheticList(Number(args[1]));
    spec = made.spec;
    temp = made.dir;
    reps = Number(args[2] ?? 3);
  }
  if (!spec) throw new Error('Usage: node --expose-gc --import tsx bench/inputs.ts SPEC|--list N [reps]');
  try {
    // The memory first, in a fresh process: later enumerations leave code and caches behind that blur the difference.
    const before = await settled();
    const t0 = performance.now();
    let held: Awaited<ReturnType<typeof enumerateInputs>> | null = await enumerateInputs([spec]);
    const first = performance.now() - t0;
    const count = held.inputs.length;
    const sidecars = held.inputs.get(0).sidecars.length;
    const withList = await settled();
    const peakRss = process.resourceUsage().maxRSS * 1024;
    held = null;
    const dropped = await settled();
    const times: number[] = [first];
    for (let r = 1; r < reps; r++) {
      const t = performance.now();
      await enumerateInputs([spec]);
      times.push(performance.now() - t);
    }
    const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`;
    console.log(`${args[0] === '--list' ? `list of ${count} Fashion-MNIST files` : spec}: ${count} inputs (${sidecars} sidecar(s) on the first)`);
    console.log(`  enumerateInputs median ${median(times).toFixed(0)} ms (${times.map((t) => t.toFixed(0)).join(', ')})`);
    console.log(
      `  held: ${((withList - before) / count).toFixed(0)} bytes per input (${mb(withList - before)}); freed when dropped: ${((withList - dropped) / count).toFixed(0)} bytes per input; peak RSS of the process ${mb(peakRss)}`,
    );
  } finally {
    if (temp) await fsp.rm(temp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
