/**
 * tsx bench/png-fast.ts: CPU per image of the fast PNG path
 * (src/io/png-fast.ts) against readImage's sharp pipeline (issue #6).
 *
 * 1. Fashion-MNIST: the first --n (default 1000) train PNGs at 32 x 32 'pad',
 *    one image at a time: sharp's pipeline alone, decodePngFast alone, and
 *    readImage end to end with VTOK_DECODER=sharp and with the fast path.
 * 2. Synthetic RGB PNGs (a smooth pattern with noise) of several sizes, decoded
 *    at their own size, upsized by 8/7 and halved ('crop'), to pick
 *    MAX_FAST_PIXELS: the size up to which the fast path costs less CPU than
 *    sharp (the limit is lifted here with decodePngFast's maxPixels option).
 * 3. The 256 x 256 photo crops of data/photos/test (first --n) at 128 x 128
 *    'crop' (the default tokenizer's read, a 2x downscale) and at 256 x 256.
 * CPU = process.cpuUsage() user + sys (all threads, libvips's included), the
 * median of --reps (default 3) runs.
 */
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { readImage } from '../src/io/image';
import { MAX_FAST_PIXELS, decodePngFast } from '../src/io/png-fast';
import { median } from './lib/timing';

const ROOT = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const N = flag('--n', 1000);
const REPS = flag('--reps', 3);

/** CPU ms per item of running fn over items one at a time (median of REPS runs). */
async function cpuPer<T>(items: readonly T[], fn: (x: T) => unknown): Promise<number> {
  const runs: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const c0 = process.cpuUsage();
    for (const x of items) await fn(x);
    const c = process.cpuUsage(c0);
    runs.push((c.user + c.system) / 1000 / items.length);
  }
  return median(runs);
}

function sharpPipeline(bytes: Buffer, size: { width: number; height: number } | undefined, fit: 'cover' | 'inside'): Promise<Buffer> {
  let p = sharp(bytes, { autoOrient: true });
  if (size) p = p.resize({ ...size, fit, position: 'centre', kernel: 'lanczos3' });
  return p.toColourspace('srgb').raw().toBuffer();
}

async function main(): Promise<void> {
  const dir = path.join(ROOT, 'data/fashion-mnist/train');
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.png'))
    .sort()
    .slice(0, N)
    .map((f) => readFileSync(path.join(dir, f)));
  const t32 = { width: 32, height: 32 };
  // warm-up
  for (const b of files.slice(0, 50)) {
    await sharpPipeline(b, t32, 'inside');
    decodePngFast(b, { target: t32, fit: 'pad', kernel: 'lanczos3' });
  }
  console.log(`Fashion-MNIST, ${files.length} files, 32 x 32 'pad', CPU ms per image (median of ${REPS}):`);
  const rows: [string, number][] = [];
  rows.push(['sharp pipeline', await cpuPer(files, (b) => sharpPipeline(b, t32, 'inside'))]);
  rows.push(['decodePngFast', await cpuPer(files, (b) => decodePngFast(b, { target: t32, fit: 'pad', kernel: 'lanczos3' }))]);
  process.env.VTOK_DECODER = 'sharp';
  rows.push(['readImage, VTOK_DECODER=sharp', await cpuPer(files, (b) => readImage(b, { size: 32, fit: 'pad' }))]);
  delete process.env.VTOK_DECODER;
  rows.push(['readImage, fast path', await cpuPer(files, (b) => readImage(b, { size: 32, fit: 'pad' }))]);
  for (const [name, ms] of rows) console.log(`  ${name.padEnd(32)} ${ms.toFixed(3)}`);

  console.log('\nSynthetic RGB PNGs, CPU ms per image: sharp / fast (same size; upsized by 8/7 with pad; halved with crop)');
  for (const side of [28, 64, 128, 181, 256, 362, 512]) {
    const raw = Buffer.alloc(side * side * 3);
    let seed = side;
    for (let i = 0; i < raw.length; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      raw[i] = (((i / 3) % side) * 2 + ((seed >> 16) & 15)) & 255;
    }
    const png = await sharp(raw, { raw: { width: side, height: side, channels: 3 } }).png().toBuffer();
    const k = Math.max(20, Math.round(200000 / (side * side)));
    const many = Array.from({ length: k }, () => png);
    const up = { width: Math.round((side * 8) / 7), height: Math.round((side * 8) / 7) };
    const s0 = await cpuPer(many, (b) => sharpPipeline(b, undefined, 'inside'));
    const f0 = await cpuPer(many, (b) => decodePngFast(b, { target: undefined, fit: 'pad', kernel: 'lanczos3', maxPixels: 1 << 20 }));
    const s1 = await cpuPer(many, (b) => sharpPipeline(b, up, 'inside'));
    const f1 = await cpuPer(many, (b) => decodePngFast(b, { target: up, fit: 'pad', kernel: 'lanczos3', maxPixels: 1 << 20 }));
    const half = { width: Math.round(side / 2), height: Math.round(side / 2) };
    const s2 = await cpuPer(many, (b) => sharpPipeline(b, half, 'cover'));
    const f2 = await cpuPer(many, (b) => decodePngFast(b, { target: half, fit: 'crop', kernel: 'lanczos3', maxPixels: 1 << 20 }));
    const note = side * side > MAX_FAST_PIXELS ? ' (above MAX_FAST_PIXELS: readImage uses sharp)' : '';
    console.log(
      `  ${String(side).padStart(3)} x ${side} (${String(side * side).padStart(6)} px): ` +
        `same size ${s0.toFixed(3)} / ${f0.toFixed(3)}, upsized ${s1.toFixed(3)} / ${f1.toFixed(3)}, ` +
        `halved ${s2.toFixed(3)} / ${f2.toFixed(3)}${note}`,
    );
  }

  const photoDir = path.join(ROOT, 'data/photos/test');
  const photos = readdirSync(photoDir)
    .filter((f) => f.endsWith('.png'))
    .sort()
    .slice(0, N)
    .map((f) => readFileSync(path.join(photoDir, f)));
  console.log(`\ndata/photos/test, ${photos.length} files, CPU ms per image: sharp / fast`);
  for (const size of [128, 256]) {
    const t = { width: size, height: size };
    const sp = await cpuPer(photos, (b) => sharpPipeline(b, t, 'cover'));
    const fp = await cpuPer(photos, (b) => decodePngFast(b, { target: t, fit: 'crop', kernel: 'lanczos3' }));
    console.log(`  at ${size} x ${size} 'crop': ${sp.toFixed(3)} / ${fp.toFixed(3)}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
