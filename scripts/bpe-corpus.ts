/**
 * `npx tsx scripts/bpe-corpus.ts`: makes the benchmark corpus of `npm run bench:bpe`.
 *
 * WHAT THE CODES ARE (until vtok's own tokenizer exists): each grid is a
 * random 128x128 crop of a real image from /usr/share/backgrounds (Debian
 * packages mate-backgrounds and ukui-wallpapers; the synthetic stripes/logos
 * of mate/desktop and duplicate resolutions are left out), cut into 16x16
 * patches of 8x8 pixels. Each patch is described by its 4x4 grid of 2x2-pixel
 * mean colours (48 numbers in [0, 1]) and replaced by the index of its nearest
 * centre in a 1024-entry codebook learned by seeded two-level k-means (32
 * coarse centres, then 32 fine centres inside each: code = coarse * 32 +
 * fine). So a code is a quantized 8x8 colour patch, like the indices of a VQ
 * tokenizer with a patch size of 8, without a learned encoder.
 * Crops are taken at two scales (the image resized so that its long side is
 * 640 or 1280 pixels), at random positions, with a fixed seed.
 *
 * The output is a grid file (bench/lib/bpe-corpus.ts): any other producer of
 * code grids (e.g. the real tokenizer later) can write the same format and
 * the benchmark reads it with --corpus.
 *
 * Usage: npx tsx scripts/bpe-corpus.ts [--out bench/out/bpe-corpus.bin] [--count 20000]
 *          [--k 1024] [--seed 1] [--images /usr/share/backgrounds]
 */
import { promises as fsp, existsSync } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { Rng } from '../src/core/random';
import { writeGridFile } from '../bench/lib/bpe-corpus';

const CROP = 128;
const PATCH = 8;
const SIDE = CROP / PATCH; // 16 patches per side
const FEAT = 48; // 4x4 cells of 2x2 pixels, RGB
const SCALES = [640, 1280];

interface Args {
  out: string;
  count: number;
  k: number;
  seed: number;
  images: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { out: 'bench/out/bpe-corpus.bin', count: 20000, k: 1024, seed: 1, images: '/usr/share/backgrounds' };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, v] = [argv[i], argv[i + 1]];
    if (key === '--out') a.out = v;
    else if (key === '--count') a.count = Number(v);
    else if (key === '--k') a.k = Number(v);
    else if (key === '--seed') a.seed = Number(v);
    else if (key === '--images') a.images = v;
    else throw new Error(`Unknown argument ${key}; see the comment at the top of scripts/bpe-corpus.ts`);
  }
  const fine = Math.round(Math.sqrt(a.k));
  if (fine * fine !== a.k) throw new Error(`--k must be a square (two-level k-means, sqrt(k) x sqrt(k)); received ${a.k}`);
  return a;
}

async function listImages(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string): Promise<void> {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (/\.(jpe?g|png|webp)$/i.test(e.name) && !p.includes('/mate/desktop/') && !/_\d+x\d+\./.test(e.name)) out.push(p);
    }
  }
  if (existsSync(dir)) await walk(dir);
  return out.sort();
}

interface Raster {
  data: Buffer;
  width: number;
  height: number;
}

/** Features of the 256 patches of one crop: [256, 48] (patch-major, then 4x4 cells, then RGB). */
function cropFeatures(img: Raster, x0: number, y0: number, out: Float32Array): void {
  const { data, width } = img;
  let o = 0;
  for (let py = 0; py < SIDE; py++) {
    for (let px = 0; px < SIDE; px++) {
      for (let cy = 0; cy < 4; cy++) {
        for (let cx = 0; cx < 4; cx++) {
          const yy = y0 + py * PATCH + cy * 2;
          const xx = x0 + px * PATCH + cx * 2;
          for (let ch = 0; ch < 3; ch++) {
            const i00 = (yy * width + xx) * 3 + ch;
            const i10 = ((yy + 1) * width + xx) * 3 + ch;
            out[o++] = (data[i00] + data[i00 + 3] + data[i10] + data[i10 + 3]) / (4 * 255);
          }
        }
      }
    }
  }
}

function nearest(feat: Float32Array, fo: number, centres: Float32Array, first: number, n: number): number {
  let best = first;
  let bestD = Infinity;
  for (let c = first; c < first + n; c++) {
    let d = 0;
    const co = c * FEAT;
    for (let j = 0; j < FEAT; j++) {
      const t = feat[fo + j] - centres[co + j];
      d += t * t;
      if (d >= bestD) break;
    }
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

/** Seeded Lloyd k-means on rows `idx` of `data`; returns k centres [k, FEAT]. */
function kmeans(data: Float32Array, idx: Int32Array, k: number, rng: Rng, iters: number): Float32Array {
  const centres = new Float32Array(k * FEAT);
  const seedCentre = (c: number): void => {
    const i = idx[rng.int(idx.length)];
    centres.set(data.subarray(i * FEAT, i * FEAT + FEAT), c * FEAT);
  };
  for (let c = 0; c < k; c++) seedCentre(c);
  const sums = new Float64Array(k * FEAT);
  const counts = new Int32Array(k);
  for (let it = 0; it < iters; it++) {
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < idx.length; i++) {
      const fo = idx[i] * FEAT;
      const c = nearest(data, fo, centres, 0, k);
      counts[c]++;
      for (let j = 0; j < FEAT; j++) sums[c * FEAT + j] += data[fo + j];
    }
    for (let c = 0; c < k; c++) {
      if (counts[c] === 0) {
        seedCentre(c); // re-seed a dead centre
        continue;
      }
      for (let j = 0; j < FEAT; j++) centres[c * FEAT + j] = sums[c * FEAT + j] / counts[c];
    }
  }
  return centres;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const files = await listImages(args.images);
  if (files.length === 0) {
    throw new Error(`No images under ${args.images}: install the Debian packages mate-backgrounds and ukui-wallpapers, or pass --images DIR`);
  }
  const t0 = Date.now();
  const rasters: Raster[] = [];
  for (const f of files) {
    for (const s of SCALES) {
      const { data, info } = await sharp(f).rotate().removeAlpha().resize(s, s, { fit: 'inside' }).raw().toBuffer({ resolveWithObject: true });
      if (info.width >= CROP && info.height >= CROP && info.channels === 3) rasters.push({ data, width: info.width, height: info.height });
    }
  }
  process.stderr.write(`${files.length} images, ${rasters.length} rasters decoded in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);

  const rng = new Rng(args.seed);
  const cropAt = (): { r: Raster; x: number; y: number } => {
    const r = rasters[rng.int(rasters.length)];
    return { r, x: rng.int(r.width - CROP + 1), y: rng.int(r.height - CROP + 1) };
  };

  // Codebook: features of 1,000 crops (256,000 patches), two-level k-means.
  const fine = Math.round(Math.sqrt(args.k));
  const sampleCrops = 1000;
  const sample = new Float32Array(sampleCrops * 256 * FEAT);
  for (let i = 0; i < sampleCrops; i++) {
    const { r, x, y } = cropAt();
    cropFeatures(r, x, y, sample.subarray(i * 256 * FEAT, (i + 1) * 256 * FEAT));
  }
  const nSample = sampleCrops * 256;
  const all = Int32Array.from({ length: nSample }, (_, i) => i);
  const kmRng = new Rng(args.seed + 1);
  const coarse = kmeans(sample, all, fine, kmRng, 20);
  const members: number[][] = Array.from({ length: fine }, () => []);
  for (let i = 0; i < nSample; i++) members[nearest(sample, i * FEAT, coarse, 0, fine)].push(i);
  const centres = new Float32Array(args.k * FEAT);
  for (let c = 0; c < fine; c++) {
    const idx = Int32Array.from(members[c].length > 0 ? members[c] : [0]);
    centres.set(kmeans(sample, idx, fine, kmRng, 20), c * fine * FEAT);
  }
  process.stderr.write(`codebook of ${args.k} (${fine} x ${fine}) in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);

  // Grids: fresh crops, each patch -> nearest coarse centre, then nearest fine centre inside it.
  const codes = new Uint16Array(args.count * 256);
  const feat = new Float32Array(256 * FEAT);
  const used = new Uint8Array(args.k);
  for (let g = 0; g < args.count; g++) {
    const { r, x, y } = cropAt();
    cropFeatures(r, x, y, feat);
    for (let p = 0; p < 256; p++) {
      const c = nearest(feat, p * FEAT, coarse, 0, fine);
      const code = nearest(feat, p * FEAT, centres, c * fine, fine);
      codes[g * 256 + p] = code;
      used[code] = 1;
    }
  }
  const source =
    `random ${CROP}x${CROP} crops (seed ${args.seed}, long side ${SCALES.join('/')} px) of ${files.length} images in ${args.images} ` +
    `(mate-backgrounds, ukui-wallpapers; mate/desktop excluded); each 8x8 patch -> nearest of ${args.k} two-level k-means centres ` +
    `(${fine} coarse x ${fine} fine, code = coarse*${fine}+fine) of its 4x4 grid of 2x2-pixel mean RGB colours`;
  await writeGridFile(args.out, { count: args.count, h: SIDE, w: SIDE, baseVocab: args.k, source }, codes);
  let nUsed = 0;
  for (const u of used) nUsed += u;
  process.stdout.write(`wrote ${args.out}: ${args.count} grids of ${SIDE}x${SIDE}, K = ${args.k} (${nUsed} codes used), in ${((Date.now() - t0) / 1000).toFixed(1)} s\ncodes: ${source}\n`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
