/**
 * npm run bench:tokenize: the dataset pipeline end to end against the model
 * alone, and its peak memory at 1,000 and 10,000 images.
 *
 * Inputs: the 256 x 256 PNG photo crops of `npm run data` (data/photos/train,
 * 1,632 files); runs of more images use a folder of symbolic links that
 * cycle through them (real decode work, distinct keys).
 *
 * 1. Throughput: images/s of tokenizeDataset (read, sha256, decode, batch,
 *    encode, shard writes) vs tokenizer.encodeBatch alone on the same images,
 *    decoded beforehand into the same batches, after one untimed full pass of
 *    the model over them. Overhead = e2e time / model
 *    time - 1 (target <= 10%). Medians of `reps` alternating runs; "overhead,
 *    per rep" is the median of each rep's e2e / model ratio (the two run back
 *    to back, so drift of the machine between reps moves it less). "Outside
 *    the model" is the end-to-end wall time minus the time spent inside
 *    encodeBatch during that same run, per image: the pipeline's own work
 *    that the model did not hide (less sensitive to other load on the
 *    machine than the ratio of two separate runs). Each rep also runs the
 *    pipeline with every decode through sharp (VTOK_DECODER=sharp, no fast
 *    PNG path of src/io/png-fast.ts), so both decoders are compared in the
 *    same run.
 *    Tokenizers: the shipped default (codebooks/, trained on photos) at its
 *    training size 128 on the photos, the shipped fashion-mnist tokenizer at
 *    32 x 32 on Fashion-MNIST PNGs (a small model: per-file costs weigh most),
 *    both on the fastest backend, and the colour-grid reference tokenizer
 *    (almost no compute: its row measures the pipeline's own ceiling).
 * 2. Peak RSS (VmHWM of a fresh process) of tokenizeDataset at 1,000 and
 *    10,000 images (target: flat): the shipped fashion-mnist tokenizer on
 *    Fashion-MNIST (data/fashion-mnist/train, 28 x 28 PNGs with caption
 *    sidecars, given as a file list), and the colour-grid tokenizer on the
 *    photos at 256 x 256 (10,000 of them through a model would take an hour).
 *
 * Flags: --quick (fewer images and reps), --reps N, --only default|fashion-mnist|colour-grid|rss
 * (one part; repeatable), --workers N (decode workers of tokenizeDataset; default its own), --batch N (the batch
 * size of every throughput row instead of 16 / 64; `vtok tokenize` defaults to 4).
 * Results: a Markdown table on stdout and bench/out/tokenize.json.
 */
import { spawnSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ImageTokenizer } from '../src/core/pipeline-types';
import { initBackend, shutdownBackend } from '../src/engine/backend';
import { enumerateInputs } from '../src/io/dataset/inputs';
import { loadInput } from '../src/io/dataset/read';
import { RangeReader } from '../src/io/dataset/tar';
import { loadTokenizer } from '../src/io/tokenizer-bundle';
import { colourGridTokenizer } from '../src/pipeline/colour-grid';
import { modelTokenizer } from '../src/pipeline/model-tokenizer';
import { tokenizeDataset } from '../src/pipeline/tokenize';
import { formatTable } from './lib/table';
import { median } from './lib/timing';

const ROOT = path.resolve(__dirname, '..');
const PHOTOS = path.join(ROOT, 'data/photos/train');
const FMNIST = path.join(ROOT, 'data/fashion-mnist/train');
const OUT = path.join(ROOT, 'bench/out/tokenize.json');

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const repsArg = args.indexOf('--reps');
const REPS = repsArg >= 0 ? Number(args[repsArg + 1]) : quick ? 1 : 3;
const only = args.flatMap((a, i) => (args[i - 1] === '--only' ? [a] : []));
const workersArg = args.indexOf('--workers');
const batchArg = args.indexOf('--batch');
const BATCH = batchArg >= 0 ? Number(args[batchArg + 1]) : undefined;
if (BATCH !== undefined && !(Number.isInteger(BATCH) && BATCH >= 1)) throw new Error(`--batch takes a positive integer, not ${args[batchArg + 1]}`);
const WORKERS = workersArg >= 0 ? { workers: Number(args[workersArg + 1]) } : {};
const wanted = (part: string): boolean => only.length === 0 || only.includes(part);

/** A folder of n symbolic links to the photos, cycling through them. */
async function linkFolder(n: number): Promise<string> {
  const photos = (await fsp.readdir(PHOTOS)).filter((f) => f.endsWith('.png')).sort();
  if (photos.length === 0) throw new Error(`No photos in ${PHOTOS}: run npm run data first`);
  const dir = path.join(os.tmpdir(), `vtok-bench-tokenize-${n}`);
  const have = await fsp.readdir(dir).catch(() => [] as string[]);
  if (have.length !== n) {
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.mkdir(dir, { recursive: true });
    for (let i = 0; i < n; i++) await fsp.symlink(path.join(PHOTOS, photos[i % photos.length]), path.join(dir, `img-${String(i).padStart(6, '0')}.png`));
  }
  return dir;
}

type Data = 'photos' | 'fmnist';

/** The input spec of n images: a folder of links to the photos, or a file list of Fashion-MNIST PNGs. */
async function inputFor(data: Data, n: number): Promise<string> {
  return data === 'photos' ? linkFolder(n) : `@${await fmnistList(n)}`;
}

interface Throughput {
  tokenizer: string;
  data: Data;
  imageSize: number;
  images: number;
  batchSize: number;
  modelImagesPerSecond: number;
  e2eImagesPerSecond: number;
  overhead: number;
  /** Median over reps of (end to end / model alone) - 1, each pair run back to back: less moved by drift than the ratio of medians. */
  pairedOverhead: number;
  /** Median wall time per image of an end-to-end run spent outside encodeBatch (decode not hidden, shard writes, setup), ms. */
  outsideModelMsPerImage: number;
  modelSamples: number[];
  e2eSamples: number[];
  insideSamples: number[];
  /** The same end-to-end run with every decode through sharp (VTOK_DECODER=sharp: no fast PNG path), in the same reps. */
  sharpE2eImagesPerSecond: number;
  sharpOverhead: number;
  sharpE2eSamples: number[];
}

/** Model alone on pre-decoded batches vs the whole pipeline on the same files; alternating, medians. */
async function throughput(label: string, tokenizer: ImageTokenizer, data: Data, n: number, batchSize: number, reps: number): Promise<Throughput> {
  const dir = await inputFor(data, n);
  const inputs = (await enumerateInputs([dir])).inputs.toArray();
  const S = tokenizer.imageSize;
  const reader = new RangeReader();
  const batches: { images: Float32Array; b: number }[] = [];
  for (let start = 0; start < inputs.length; start += batchSize) {
    const part = inputs.slice(start, start + batchSize);
    const images = new Float32Array(part.length * S * S * 3); // [b, S, S, 3]
    for (const [i, input] of part.entries()) {
      const r = await loadInput(input, { reader, labels: null, image: { size: S, fit: data === 'photos' ? 'crop' : 'pad', background: '#ffffff', kernel: 'lanczos3', maxPixels: 1 << 28, failOn: 'warning' }, maxFileBytes: 1 << 28 });
      if (!r.ok) throw new Error(r.skipped.message);
      images.set(r.value.pixels, i * S * S * 3);
    }
    batches.push({ images, b: part.length });
  }
  await reader.close();
  // Warm-up: one full untimed pass (kernels, allocations, heap growth). One batch was not enough: the default's
  // model-alone time fell from 24.0 to 14.7 to 11.5 s over the three reps of one run (2026-12-02).
  for (const { images, b } of batches) await tokenizer.encodeBatch(images, b);
  const modelSamples: number[] = [];
  const e2eSamples: number[] = [];
  const insideSamples: number[] = [];
  const sharpE2eSamples: number[] = [];
  // The same tokenizer, timed from inside the end-to-end run: what is left is the pipeline's own time that the model did not hide.
  let inside = 0;
  const timed: ImageTokenizer = {
    id: tokenizer.id,
    imageSize: tokenizer.imageSize,
    gridShape: tokenizer.gridShape,
    codebookSize: tokenizer.codebookSize,
    async encodeBatch(images: Float32Array, batch: number): Promise<Int32Array> {
      const t = performance.now();
      try {
        return await tokenizer.encodeBatch(images, batch);
      } finally {
        inside += performance.now() - t;
      }
    },
  };
  for (let rep = 0; rep < reps; rep++) {
    let t0 = performance.now();
    for (const { images, b } of batches) await tokenizer.encodeBatch(images, b);
    modelSamples.push((performance.now() - t0) / 1000);
    // Both decoders in every rep, in alternating order, so that drift of the machine hits both alike.
    for (const viaSharp of rep % 2 === 0 ? [false, true] : [true, false]) {
      const out = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-bench-out-'));
      if (viaSharp) process.env.VTOK_DECODER = 'sharp';
      inside = 0;
      t0 = performance.now();
      try {
        await tokenizeDataset({ inputs: [dir], out, tokenizer: timed, batchSize, recordsPerShard: 1024, fit: data === 'photos' ? 'crop' : 'pad', ...WORKERS });
      } finally {
        if (viaSharp) delete process.env.VTOK_DECODER;
      }
      const seconds = (performance.now() - t0) / 1000;
      if (viaSharp) sharpE2eSamples.push(seconds);
      else {
        e2eSamples.push(seconds);
        insideSamples.push(inside / 1000);
      }
      await fsp.rm(out, { recursive: true, force: true });
    }
    process.stderr.write(
      `  ${label}: rep ${rep + 1}/${reps}: model ${modelSamples[rep].toFixed(2)} s, end to end ${e2eSamples[rep].toFixed(2)} s (${insideSamples[rep].toFixed(2)} s in the model), all decodes by sharp ${sharpE2eSamples[rep].toFixed(2)} s; load ${os.loadavg()[0].toFixed(1)}\n`,
    );
  }
  const m = median(modelSamples);
  const e = median(e2eSamples);
  const outside = median(e2eSamples.map((x, i) => x - insideSamples[i]));
  return {
    tokenizer: label,
    data,
    imageSize: S,
    images: n,
    batchSize,
    modelImagesPerSecond: n / m,
    e2eImagesPerSecond: n / e,
    overhead: e / m - 1,
    pairedOverhead: median(e2eSamples.map((x, i) => x / modelSamples[i])) - 1,
    outsideModelMsPerImage: (1000 * outside) / n,
    modelSamples,
    e2eSamples,
    insideSamples,
    sharpE2eImagesPerSecond: n / median(sharpE2eSamples),
    sharpOverhead: median(sharpE2eSamples) / m - 1,
    sharpE2eSamples,
  };
}

/** A file list of the first n Fashion-MNIST training PNGs (each has a caption sidecar). */
async function fmnistList(n: number): Promise<string> {
  const names = (await fsp.readdir(FMNIST)).filter((f) => f.endsWith('.png')).sort().slice(0, n);
  if (names.length < n) throw new Error(`Only ${names.length} PNGs in ${FMNIST}: run npm run data first`);
  const file = path.join(os.tmpdir(), `vtok-bench-fmnist-${n}.txt`);
  await fsp.writeFile(file, names.map((f) => path.join(FMNIST, f)).join('\n') + '\n');
  return file;
}

interface RssRow {
  images: number;
  data: string;
  tokenizer: string;
  maxRssMB: number;
  imagesPerSecond: number;
  peakPrefetched: number;
}

/**
 * Peak resident memory of this process, MB: VmHWM from /proc/self/status
 * (per address space, so it starts afresh at exec), else getrusage's maxrss
 * (which Linux carries over exec from the parent's peak, hence not first).
 */
async function peakRssMB(): Promise<number> {
  const status = await fsp.readFile('/proc/self/status', 'utf8').catch(() => '');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) / 1024 : process.resourceUsage().maxRSS / 1024;
}

/** In a fresh process: tokenize n images (the fashion-mnist tokenizer on Fashion-MNIST, the colour grid on photos), report the peak RSS. */
async function rssChild(n: number, data: Data): Promise<void> {
  const input = await inputFor(data, n);
  const out = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-bench-rss-'));
  let tokenizer: ImageTokenizer;
  let done = async (): Promise<void> => {};
  if (data === 'fmnist') {
    await initBackend();
    const t = await loadTokenizer('fashion-mnist');
    tokenizer = modelTokenizer(t.model, { imageSize: t.imageSize, id: t.id });
    done = async () => {
      t.model.dispose();
      await shutdownBackend();
    };
  } else {
    tokenizer = colourGridTokenizer({ imageSize: 256, grid: 16, levels: 8 });
  }
  const res = await tokenizeDataset({ inputs: [input], out, tokenizer, batchSize: 16, recordsPerShard: 1024, fit: data === 'photos' ? 'crop' : 'pad', ...WORKERS });
  if (res.manifest.counts.records !== n) throw new Error(`expected ${n} records, got ${res.manifest.counts.records}`);
  await fsp.rm(out, { recursive: true, force: true });
  const row: RssRow = {
    images: n,
    data: data === 'photos' ? 'photos 256x256 PNG' : 'Fashion-MNIST 28x28 PNG + caption sidecar',
    tokenizer: data === 'photos' ? tokenizer.id : `fashion-mnist (${tokenizer.id.slice(0, 12)}, ${tokenizer.imageSize}x${tokenizer.imageSize})`,
    maxRssMB: await peakRssMB(),
    imagesPerSecond: res.imagesPerSecond,
    peakPrefetched: res.peakPrefetched,
  };
  await done();
  process.stdout.write(JSON.stringify(row) + '\n');
}

function runRss(n: number, data: Data): RssRow {
  const r = spawnSync(process.execPath, ['--import', 'tsx', __filename, '--rss-child', String(n), data, ...(workersArg >= 0 ? ['--workers', args[workersArg + 1]] : [])], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`rss child for ${n} images failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as RssRow;
}

async function main(): Promise<void> {
  const child = args.indexOf('--rss-child');
  if (child >= 0) return rssChild(Number(args[child + 1]), args[child + 2] as Data);

  const info = await initBackend();
  const loadBefore = os.loadavg()[0];
  process.stderr.write(`backend ${info.backend}, ${info.threads} threads; ${os.cpus().length} cores; load average ${loadBefore.toFixed(1)}\n`);
  const rows: Throughput[] = [];
  // The shipped tokenizers (codebooks/): the default at its training size on photos, fashion-mnist on its own data.
  for (const [name, data, n, batch] of [
    ['default', 'photos', quick ? 32 : 512, 16],
    ['fashion-mnist', 'fmnist', quick ? 200 : 2000, 64],
  ] as const) {
    if (!wanted(name)) continue;
    const t = await loadTokenizer(name);
    const label = `${name} (${t.id.slice(0, 12)}, ${t.imageSize}x${t.imageSize}, K=${t.model.config.codebookSize})`;
    rows.push(await throughput(label, modelTokenizer(t.model, { imageSize: t.imageSize, id: t.id }), data, n, BATCH ?? batch, REPS));
    t.model.dispose();
  }
  await shutdownBackend();
  if (wanted('colour-grid')) rows.push(await throughput('colour-grid (no model: the pipeline ceiling)', colourGridTokenizer({ imageSize: 256, grid: 16, levels: 8 }), 'photos', quick ? 200 : 1000, BATCH ?? 16, REPS));

  const big = quick ? 2000 : 10000;
  const rss = wanted('rss') ? [runRss(1000, 'fmnist'), runRss(big, 'fmnist'), runRss(1000, 'photos'), runRss(big, 'photos')] : [];

  const loadAfter = os.loadavg()[0];
  console.log(
    `\n## bench:tokenize (${info.backend}, ${info.threads} threads, ${os.cpus().length} cores; medians of ${REPS} runs; load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after)\n`,
  );
  console.log(
    formatTable(
      ['tokenizer', 'data', 'image size', 'images', 'batch', 'model alone (img/s)', 'end to end (img/s)', 'overhead', 'overhead, per rep', 'outside the model (ms/img)', 'all decodes by sharp: end to end (img/s)', 'overhead'],
      rows.map((r) => [
        r.tokenizer,
        r.data === 'photos' ? 'photos (PNG 256x256)' : 'Fashion-MNIST (PNG 28x28 + sidecar)',
        String(r.imageSize),
        String(r.images),
        String(r.batchSize),
        r.modelImagesPerSecond.toFixed(1),
        r.e2eImagesPerSecond.toFixed(1),
        `${(100 * r.overhead).toFixed(1)}%`,
        `${(100 * r.pairedOverhead).toFixed(1)}%`,
        r.outsideModelMsPerImage.toFixed(1),
        r.sharpE2eImagesPerSecond.toFixed(1),
        `${(100 * r.sharpOverhead).toFixed(1)}%`,
      ]),
      { markdown: true },
    ),
  );
  console.log('');
  console.log(
    formatTable(
      ['images', 'data', 'tokenizer', 'peak RSS (MB)', 'end to end (img/s)', 'most images decoded ahead'],
      rss.map((r) => [String(r.images), r.data, r.tokenizer, r.maxRssMB.toFixed(0), r.imagesPerSecond.toFixed(1), String(r.peakPrefetched)]),
      { markdown: true },
    ),
  );
  await fsp.mkdir(path.dirname(OUT), { recursive: true });
  await fsp.writeFile(OUT, JSON.stringify({ backend: info.backend, threads: info.threads, cores: os.cpus().length, reps: REPS, load: [loadBefore, loadAfter], throughput: rows, rss }, null, 1));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
