/**
 * `npm run bench:eval`: the cost of evaluation.
 *
 *   Fréchet distance at N x D (default 10,000 x 2048, the FID shape): two
 *   synthetic feature sets (non-negative, correlated, like pooled ReLU
 *   features), accumulated batch by batch in FeatureStats (float64), then
 *   frechetDistance with both factorizations of S1, beside scipy's sqrtm
 *   (pytorch-fid's formula) on the SAME two mean/covariance pairs, read from
 *   files written here (bench/eval_scipy.py fd). Node computes on one thread;
 *   numpy/scipy use their BLAS/LAPACK threads.
 *
 *   Feature extraction, images/s on the vtok backend (initBackend: wasm with
 *   threads here), a batch of random 256x256 images: nsfwjs MobileNetV2 and
 *   InceptionV3, and the pytorch-fid Inception-v3 architecture with seeded
 *   (untrained) weights: its speed does not depend on the weights. Beside it,
 *   the same network in PyTorch CPU float32 (bench/eval_scipy.py inception).
 *
 * Usage: npm run bench:eval -- [--n 10000] [--dim 2048] [--runs 3] [--batch 16] [--no-fd] [--no-extract] [--markdown]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { FeatureStats, frechetDistance, type FrechetMethod, type GaussianStats } from '../src/core/metrics';
import { Rng } from '../src/core/random';
import { initBackend, shutdownBackend } from '../src/engine/backend';
import { fidInceptionExtractor, type FeatureExtractor } from '../src/tf/features';
import { FidInceptionV3, seededFidInceptionWeights } from '../src/tf/inception';
import { loadFeatureExtractor } from '../src/io/feature-models';
import { findPythonWith } from './lib/python';
import { formatTable } from './lib/table';
import { formatMs, median } from './lib/timing';

interface Args {
  n: number;
  dim: number;
  runs: number;
  batch: number;
  fd: boolean;
  extract: boolean;
  markdown: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { n: 10000, dim: 2048, runs: 3, batch: 16, fd: true, extract: true, markdown: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--n') a.n = Number(argv[++i]);
    else if (k === '--dim') a.dim = Number(argv[++i]);
    else if (k === '--runs') a.runs = Number(argv[++i]);
    else if (k === '--batch') a.batch = Number(argv[++i]);
    else if (k === '--no-fd') a.fd = false;
    else if (k === '--no-extract') a.extract = false;
    else if (k === '--markdown') a.markdown = true;
    else throw new Error(`Unknown argument ${k}; see the comment at the top of bench/eval.ts`);
  }
  return a;
}

/** CPU seconds and wall seconds of a synchronous call. */
function timed<T>(fn: () => T): { result: T; wall: number; cpu: number } {
  const u = process.cpuUsage();
  const t = performance.now();
  const result = fn();
  const d = process.cpuUsage(u);
  return { result, wall: (performance.now() - t) / 1000, cpu: (d.user + d.system) / 1e6 };
}

/**
 * N synthetic feature vectors streamed into FeatureStats in batches of 500:
 * x = max(0, z W + c + 0.5 e), z ~ N(0, I_32), e ~ N(0, I_D), so the covariance
 * is full rank with a strong low-rank part, as for pooled network features.
 */
function syntheticStats(rng: Rng, n: number, dim: number, w: Float64Array, c: Float64Array, shift: number): { stats: GaussianStats; seconds: number } {
  const acc = new FeatureStats(dim);
  const B = 500;
  const z = new Float64Array(32);
  let seconds = 0;
  for (let start = 0; start < n; start += B) {
    const rows = Math.min(B, n - start);
    const x = new Float32Array(rows * dim);
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < 32; k++) z[k] = rng.normal();
      for (let j = 0; j < dim; j++) {
        let v = c[j] + shift + 0.5 * rng.normal();
        for (let k = 0; k < 32; k++) v += z[k] * w[k * dim + j];
        x[r * dim + j] = v > 0 ? v : 0;
      }
    }
    const t = performance.now();
    acc.add(x);
    seconds += (performance.now() - t) / 1000;
  }
  return { stats: acc.finalize(), seconds };
}

function writeF64(file: string, a: Float64Array): void {
  writeFileSync(file, Buffer.from(a.buffer, a.byteOffset, a.byteLength));
}

async function benchFrechet(args: Args, rows: string[][]): Promise<void> {
  const { n, dim } = args;
  const rng = new Rng(2024);
  const w = Float64Array.from({ length: 32 * dim }, () => rng.normal() * 0.3);
  const c = Float64Array.from({ length: dim }, () => rng.normal() * 0.3);
  console.error(`generating and accumulating 2 x ${n} x ${dim} features ...`);
  const a = syntheticStats(rng, n, dim, w, c, 0);
  const b = syntheticStats(rng, n, dim, w, c, 0.05);
  rows.push([`FeatureStats.add, ${dim}-d (float64 mean + covariance)`, `${Math.round((2 * n) / (a.seconds + b.seconds))} vectors/s`, `${(a.seconds + b.seconds).toFixed(1)} s for 2 x ${n}`, '']);

  const results: Record<string, number> = {};
  for (const method of ['cholesky', 'eigen'] as FrechetMethod[]) {
    const wall: number[] = [];
    const cpu: number[] = [];
    for (let r = 0; r < args.runs; r++) {
      console.error(`frechetDistance ${method} run ${r + 1}/${args.runs} ...`);
      const t = timed(() => frechetDistance(a.stats, b.stats, { method }));
      wall.push(t.wall);
      cpu.push(t.cpu);
      results[method] = t.result.distance;
    }
    rows.push([`vtok frechetDistance '${method}' (JS float64, 1 thread)`, formatMs(median(wall) * 1000), `cpu ${formatMs(median(cpu) * 1000)}`, results[method].toFixed(6)]);
  }

  const py = findPythonWith('scipy');
  if (py === undefined) {
    rows.push(['scipy sqrtm (pytorch-fid formula)', 'python3 with scipy not found', '', '']);
    return;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vtok-bench-eval-'));
  try {
    writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({ dim, n1: a.stats.n, n2: b.stats.n }));
    writeF64(path.join(dir, 'mean1.f64'), a.stats.mean);
    writeF64(path.join(dir, 'cov1.f64'), a.stats.cov);
    writeF64(path.join(dir, 'mean2.f64'), b.stats.mean);
    writeF64(path.join(dir, 'cov2.f64'), b.stats.cov);
    console.error(`scipy sqrtm x ${args.runs} (${py.python}) ...`);
    const r = spawnSync(py.python, [path.join(__dirname, 'eval_scipy.py'), 'fd', '--dir', dir, '--runs', String(args.runs)], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (r.status !== 0) throw new Error(`eval_scipy.py fd failed: ${r.stderr}`);
    const s = JSON.parse(r.stdout.trim().split('\n').pop()!);
    const rel = (x: number): string => (Math.abs(x - s.fd) / Math.abs(s.fd)).toExponential(1);
    rows.push([`scipy ${s.versions.scipy} sqrtm(S1 S2), pytorch-fid formula`, formatMs(s.median_s * 1000), `max imag ${Number(s.max_imag).toExponential(1)}`, s.fd.toFixed(6)]);
    rows.push([`numpy ${s.versions.numpy} eigh, symmetric form`, formatMs(s.eigh_s * 1000), '1 run', s.fd_eigh.toFixed(6)]);
    rows.push(['relative difference vtok vs scipy', '', `eigen ${rel(results.eigen)}, cholesky ${rel(results.cholesky)}`, '']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchExtract(args: Args, rows: string[][]): Promise<void> {
  const info = await initBackend();
  const backend = `${info.backend}${info.backend === 'wasm' ? `, ${info.threads} threads` : ''}`;
  const B = args.batch;
  const images = tf.randomUniform([B, 256, 256, 3], -1, 1, 'float32', 7) as tf.Tensor4D;
  const make: [string, () => Promise<FeatureExtractor>][] = [
    ['nsfwjs-mobilenet-v2', () => loadFeatureExtractor({ kind: 'nsfwjs-mobilenet-v2', batchSize: B })],
    ['nsfwjs-inception-v3', () => loadFeatureExtractor({ kind: 'nsfwjs-inception-v3', batchSize: B })],
    ['pytorch-fid-inception-v3 (seeded weights)', async () => fidInceptionExtractor(new FidInceptionV3(seededFidInceptionWeights(1)), { batchSize: B })],
  ];
  for (const [label, load] of make) {
    console.error(`extracting with ${label} ...`);
    const ex = await load();
    await ex.extract(images); // warm-up
    const times: number[] = [];
    for (let r = 0; r < args.runs; r++) {
      const t = performance.now();
      await ex.extract(images);
      times.push((performance.now() - t) / 1000);
    }
    rows.push([`${label}, ${ex.dim}-d, ${ex.inputSize}px (${backend})`, `${(B / median(times)).toFixed(2)} images/s`, `batch ${B}, 256px input`, '']);
    ex.dispose();
  }
  images.dispose();
  await shutdownBackend();

  const py = findPythonWith('torch');
  if (py === undefined) {
    rows.push(['PyTorch FID Inception-v3', 'python3 with torch not found', '', '']);
    return;
  }
  console.error(`PyTorch FID Inception-v3 (${py.python}) ...`);
  const r = spawnSync(py.python, [path.join(__dirname, 'eval_scipy.py'), 'inception', '--batch', String(B), '--runs', String(args.runs), '--threads', String(info.threads)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`eval_scipy.py inception failed: ${r.stderr}`);
  const s = JSON.parse(r.stdout.trim().split('\n').pop()!);
  rows.push([`PyTorch ${s.versions.torch} FID Inception-v3, float32 CPU, ${s.threads} threads`, `${s.images_per_s.toFixed(2)} images/s`, `batch ${s.batch}, 256px input`, '']);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const rows: string[][] = [];
  if (args.fd) await benchFrechet(args, rows);
  if (args.extract) await benchExtract(args, rows);
  console.log(`\nbench:eval  N = ${args.n}, D = ${args.dim}, medians of ${args.runs} runs, ${os.cpus().length} cores, node ${process.version}\n`);
  console.log(formatTable(['what', 'median', 'notes', 'value'], rows, { markdown: args.markdown, align: ['left', 'right', 'left', 'right'] }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
