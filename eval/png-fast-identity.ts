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
 *
 * --photos: instead, every file of data/photos/test, data/photos-heldout/test
 * and data/photos/train at 128 x 128 'crop' (the default tokenizer's read of
 * the 256 x 256 photo crops, a 2x downscale) and at 256 x 256 'crop' (their
 * own size); --limit and --dir still apply.
 *
 * --alpha-resize: also resize images with alpha in the fast path (off in
 * readImage: 9 of 703 stamps-probe files at 128 did not match).
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
const PHOTOS = args.includes('--photos');
const ALPHA_RESIZE = args.includes('--alpha-resize');
const LIMIT = Number(flag('--limit') ?? Infinity);
const dirs = args.flatMap((a, i) => (a === '--dir' ? [args[i + 1]] : []));
const DEFAULT_DIRS = PHOTOS
  ? ['data/photos/test', 'data/photos-heldout/test', 'data/photos/train']
  : ['data/fashion-mnist/train', 'data/fashion-mnist/test'];
const DIRS = dirs.length > 0 ? dirs : DEFAULT_DIRS;
const RUNS: { size: number; fit: 'crop' | 'pad' }[] = PHOTOS
  ? [
      { size: 128, fit: 'crop' },
      { size: 256, fit: 'crop' },
    ]
  : [{ size: Number(flag('--size') ?? 32), fit: (flag('--fit') ?? 'pad') as 'crop' | 'pad' }];

async function main(): Promise<void> {
  const files: string[] = [];
  for (const d of DIRS) {
    const names = (await fsp.readdir(path.resolve(ROOT, d))).filter((f) => f.endsWith('.png')).sort();
    files.push(...names.slice(0, LIMIT).map((f) => path.resolve(ROOT, d, f)));
  }
  let failed = false;
  for (const { size, fit } of RUNS) failed = (await check(files, size, fit)) || failed;
  process.exitCode = failed ? 1 : 0;
}

/** Compares the two paths on every file at size x size; prints the counts; true on any mismatch. */
async function check(files: string[], SIZE: number, FIT: 'crop' | 'pad'): Promise<boolean> {
  const target = { width: SIZE, height: SIZE };
  let differing = 0;
  let samples = 0;
  let maxDiff = 0;
  let checked = 0;
  let fallbacks = 0;
  let mismatches = 0;
  const examples: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const file = files[next++];
      const bytes = await fsp.readFile(file);
      const fast = decodePngFast(bytes, { target, fit: FIT, kernel: 'lanczos3', alphaResize: ALPHA_RESIZE });
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
        if (ref.data.length === fast.samples.length) {
          for (let i = 0; i < ref.data.length; i++) {
            const d = Math.abs(ref.data[i] - fast.samples[i]);
            if (d > 0) differing++;
            if (d > maxDiff) maxDiff = d;
          }
          samples += ref.data.length;
        }
        if (examples.length < 10) examples.push(path.relative(ROOT, file));
      }
    }
  };
  await Promise.all([worker(), worker()]);
  console.log(`checked ${checked} files at ${SIZE} x ${SIZE} fit '${FIT}': ${mismatches} mismatches, ${fallbacks} fell back to sharp`);
  if (examples.length > 0) {
    console.log(`first mismatches: ${examples.join(', ')}`);
    console.log(`in the mismatching files of the same size: ${differing} of ${samples} samples differ, by at most ${maxDiff}`);
  }
  return mismatches > 0;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 2;
});
