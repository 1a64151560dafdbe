/**
 * tsx eval/png-fast-identity.ts: checks that the fast PNG path
 * (src/io/png-fast.ts) gives the same 8-bit samples as readImage's sharp
 * pipeline on every Fashion-MNIST file (data/fashion-mnist/{train,test}), at
 * the shipped tokenizer's read settings (32 x 32, fit 'pad', lanczos3).
 * Prints the number of files checked, of fast-path fallbacks and of
 * mismatches (different size, channel count or any sample), and exits 1 on any
 * mismatch.
 *
 * Flags: --size N (default 32), --fit crop|pad (default pad), --limit N (first
 * N files of each split), --dir D (repeatable; default the two FM splits).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { decodePngFast } from '../src/io/png-fast';

const ROOT = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const SIZE = Number(flag('--size') ?? 32);
const FIT = (flag('--fit') ?? 'pad') as 'crop' | 'pad';
const LIMIT = Number(flag('--limit') ?? Infinity);
const dirs = args.flatMap((a, i) => (a === '--dir' ? [args[i + 1]] : []));
const DIRS = dirs.length > 0 ? dirs : ['data/fashion-mnist/train', 'data/fashion-mnist/test'];

async function main(): Promise<void> {
  const files: string[] = [];
  for (const d of DIRS) {
    const names = (await fsp.readdir(path.resolve(ROOT, d))).filter((f) => f.endsWith('.png')).sort();
    files.push(...names.slice(0, LIMIT).map((f) => path.resolve(ROOT, d, f)));
  }
  const target = { width: SIZE, height: SIZE };
  let checked = 0;
  let fallbacks = 0;
  let mismatches = 0;
  const examples: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const file = files[next++];
      const bytes = await fsp.readFile(file);
      const fast = decodePngFast(bytes, { target, fit: FIT, kernel: 'lanczos3' });
      checked++;
      if (checked % 10000 === 0) console.error(`${checked} / ${files.length}: ${mismatches} mismatches, ${fallbacks} fallbacks so far`);
      if (!fast) {
        fallbacks++;
        continue;
      }
      const ref = await sharp(bytes, { autoOrient: true })
        .resize({ width: SIZE, height: SIZE, fit: FIT === 'crop' ? 'cover' : 'inside', position: 'centre', kernel: 'lanczos3' })
        .toColourspace('srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
      const same =
        ref.info.width === fast.width &&
        ref.info.height === fast.height &&
        ref.info.channels === fast.channels &&
        Buffer.compare(ref.data, Buffer.from(fast.samples.buffer, fast.samples.byteOffset, fast.samples.length)) === 0;
      if (!same) {
        mismatches++;
        if (examples.length < 10) examples.push(path.relative(ROOT, file));
      }
    }
  };
  await Promise.all([worker(), worker()]);
  console.log(`checked ${checked} files at ${SIZE} x ${SIZE} fit '${FIT}': ${mismatches} mismatches, ${fallbacks} fell back to sharp`);
  if (examples.length > 0) console.log(`first mismatches: ${examples.join(', ')}`);
  process.exitCode = mismatches > 0 ? 1 : 0;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 2;
});
