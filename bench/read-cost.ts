/**
 * tsx bench/read-cost.ts: CPU and wall time per image of the dataset read
 * step, split by stage (issue #6), on 2000 Fashion-MNIST PNGs at 32 'pad'
 * and the 128 photo test PNGs at 128 'crop'.
 *
 * Stages, each run over all files on its own (so its CPU can be told apart):
 *   read      fsp.readFile of the image (and, for Fashion-MNIST, its .txt sidecar)
 *   readSync  the same with readFileSync (what src/io/dataset/read.ts does for files <= 256 KiB)
 *   sha256    sha256 of the image bytes
 *   metadata  sharp(bytes).metadata()
 *   header    the JS header parser (src/core/image-header.ts)
 *   pipeline  sharp(bytes, {autoOrient: true}).resize(...).raw().toBuffer(), as readImage built it
 *   pipelineNoOrient  the same without autoOrient (a candidate for unrotated files: no measurable saving)
 *   floats    8-bit samples -> [-1, 1] float32
 *   readImage readImage(bytes) end to end (header + pipeline + floats)
 * CPU = process.cpuUsage() user + sys (all threads, libvips's included).
 *
 * Flags: --inflight N (images in flight, default 2), --sharp-threads N
 * (sharp.concurrency), --no-cache (sharp.cache(false)), --reps N (default 3,
 * the median is reported), --n N (Fashion-MNIST files, default 2000).
 */
import { createHash } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import type { OutputInfo } from 'sharp';
import { parseImageHeader } from '../src/core/image-header';
import { readImage } from '../src/io/image';
import { median } from './lib/timing';

const ROOT = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const INFLIGHT = flag('--inflight', 2);
const REPS = flag('--reps', 3);
const N = flag('--n', 2000);
if (args.includes('--sharp-threads')) sharp.concurrency(flag('--sharp-threads', 1));
if (args.includes('--no-cache')) sharp.cache(false);

/** Runs fn over 0..n-1 with `inflight` at a time; returns CPU and wall ms per item. */
async function measure(n: number, fn: (i: number) => Promise<unknown> | unknown): Promise<{ cpu: number; wall: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) await fn(next++);
  };
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { cpu: (c.user + c.system) / 1000 / n, wall: wall / n };
}

interface Set {
  name: string;
  files: string[];
  size: number;
  fit: 'crop' | 'pad';
  sidecars: boolean;
}

async function run(set: Set): Promise<void> {
  const { files, size, fit } = set;
  const bytes: Buffer[] = await Promise.all(files.map((f) => fsp.readFile(f)));
  const metas = await Promise.all(bytes.map((b) => sharp(b).metadata()));
  const raws: { data: Buffer; info: OutputInfo }[] = new Array(files.length);
  /** readImage's sharp pipeline for file i, with or without autoOrient (the stage skipped when the file is upright). */
  const decode = (i: number, autoOrient: boolean): Promise<{ data: Buffer; info: OutputInfo }> => {
    const is16 = metas[i].depth === 'ushort';
    let p = sharp(bytes[i], { limitInputPixels: 1 << 28, failOn: 'warning', ...(autoOrient ? { autoOrient: true } : {}) }).resize({
      width: size,
      height: size,
      fit: fit === 'crop' ? 'cover' : 'inside',
      position: 'centre',
      kernel: 'lanczos3',
    });
    p = is16 ? p.toColourspace('rgb16').raw({ depth: 'ushort' }) : p.toColourspace('srgb').raw();
    return p.toBuffer({ resolveWithObject: true });
  };
  const stages: Record<string, () => Promise<{ cpu: number; wall: number }>> = {
    read: () =>
      measure(files.length, async (i) => {
        await fsp.readFile(files[i]);
        if (set.sidecars) await fsp.readFile(files[i].replace(/\.png$/, '.txt'));
      }),
    readSync: () =>
      measure(files.length, (i) => {
        readFileSync(files[i]);
        if (set.sidecars) readFileSync(files[i].replace(/\.png$/, '.txt'));
      }),
    sha256: () => measure(files.length, (i) => createHash('sha256').update(bytes[i]).digest('hex')),
    metadata: () => measure(files.length, (i) => sharp(bytes[i], { limitInputPixels: false, failOn: 'warning' }).metadata()),
    header: () => measure(files.length, (i) => parseImageHeader(bytes[i])),
    pipeline: () =>
      measure(files.length, async (i) => {
        raws[i] = await decode(i, true);
      }),
    pipelineNoOrient: () => measure(files.length, (i) => decode(i, false)),
    floats: () =>
      measure(files.length, (i) => {
        const s = raws[i].data;
        const out = new Float32Array(size * size * 3);
        for (let k = 0; k < s.length; k++) out[k] = s[k] / 127.5 - 1;
        return out;
      }),
    readImage: () => measure(files.length, (i) => readImage(bytes[i], { size, fit })),
  };
  const rows: string[] = [];
  for (const [name, stage] of Object.entries(stages)) {
    await stage(); // warm-up
    const samples = [];
    for (let r = 0; r < REPS; r++) samples.push(await stage());
    const cpu = median(samples.map((s) => s.cpu));
    const wall = median(samples.map((s) => s.wall));
    rows.push(`| ${set.name} | ${name} | ${cpu.toFixed(3)} | ${wall.toFixed(3)} |`);
  }
  console.log(rows.join('\n'));
}

async function main(): Promise<void> {
  const fm = path.join(ROOT, 'data/fashion-mnist/train');
  const fmFiles = (await fsp.readdir(fm)).filter((f) => f.endsWith('.png')).sort().slice(0, N).map((f) => path.join(fm, f));
  const ph = path.join(ROOT, 'data/photos/test');
  const phFiles = (await fsp.readdir(ph)).filter((f) => f.endsWith('.png')).sort().map((f) => path.join(ph, f));
  console.log(
    `\ninflight ${INFLIGHT}, sharp.concurrency ${sharp.concurrency()}, cache ${args.includes('--no-cache') ? 'off' : 'default'}, medians of ${REPS}\n`,
  );
  console.log('| data | stage | CPU ms/img | wall ms/img |\n|---|---|--:|--:|');
  await run({ name: `FM ${fmFiles.length} @32 pad`, files: fmFiles, size: 32, fit: 'pad', sidecars: true });
  await run({ name: `photos ${phFiles.length} @128 crop`, files: phFiles, size: 128, fit: 'crop', sidecars: false });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
