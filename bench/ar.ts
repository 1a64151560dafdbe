/**
 * npm run bench:ar: sampling speed of the autoregressive head, with and
 * without the KV cache (issue #8).
 *
 * What is timed: generateImages (src/pipeline/ar.ts) drawing one Fashion-MNIST
 * image, i.e. an 8 x 8 code grid = 64 visual tokens + <eoi> after the prompt
 * `<bos> <gen> Sneaker <boi>`, for a batch of 1 and of 8 images, with the KV
 * cache (prefill once, then one position per step) and without it (the whole
 * sequence recomputed at every step). tokens/s = batch x 65 / wall time;
 * median (min-max) over --reps runs; one untimed warm-up run per model and
 * mode, at batch 1 (a no-cache batch-8 warm-up of the small model would cost
 * ~25 s on one thread).
 *
 * Models: RANDOM-INIT weights (speed does not depend on the values; the
 * sampled ids do, but the grid controller fixes the sequence length to 65):
 *   - ar-fashion-mnist: the shape training/configs/ar-fashion-mnist.json trains
 *     (dModel 160, 4 layers, 4 heads, 2D positions), vocabulary and context
 *     built as trainAr builds them from the ten class names;
 *   - small: the `small` preset (dModel 256, 6 layers), same vocabulary.
 *
 * Flags: --reps N (default 3), --threads N (wasm threads; default
 * VTOK_THREADS, else every core), --quick (reps 1, batch 8 only for small).
 * Output: a Markdown table on stdout and bench/out/ar.json.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TextBpe } from '../src/core/text-bpe';
import { Vocab } from '../src/core/vocab';
import { initBackend, shutdownBackend } from '../src/engine/backend';
import type { ArParts } from '../src/io/ar-bundle';
import { generateImages } from '../src/pipeline/ar';
import { TRANSFORMER_PRESETS, Transformer, type TransformerConfig } from '../src/tf/transformer';
import { resolveArConfig } from '../training/ar';
import { formatTable } from './lib/table';
import { median } from './lib/timing';

const ROOT = path.resolve(__dirname, '..');
const OUT = path.join(ROOT, 'bench/out/ar.json');
const CLASSES = ['Ankle boot', 'Bag', 'Coat', 'Dress', 'Pullover', 'Sandal', 'Shirt', 'Sneaker', 'T-shirt/top', 'Trouser'];
const GRID = { height: 8, width: 8 };
const CODES = 256; // the Fashion-MNIST image tokenizer's codebook (training/configs/fashion-mnist.json)

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = argv.includes('--quick');
const REPS = Number(flag('--reps') ?? (quick ? 1 : 3));
const THREADS = flag('--threads') === undefined ? undefined : Number(flag('--threads'));

/** An AR head of the given shape with random weights, vocabulary and context as trainAr builds them. */
async function randomHead(label: string, overrides: Partial<TransformerConfig>): Promise<{ label: string; ar: ArParts }> {
  const c = await resolveArConfig('ar-fashion-mnist');
  const vocab = Vocab.create({ text: TextBpe.train(CLASSES, { vocabSize: c.textVocabSize }), visual: { baseCodes: CODES, merges: 0 } });
  const longestText = Math.max(...CLASSES.map((t) => vocab.encodeText(t).length));
  const model = new Transformer(
    {
      ...TRANSFORMER_PRESETS[c.preset],
      ...c.model,
      ...overrides,
      vocabSize: vocab.size,
      contextLength: longestText + GRID.height * GRID.width + 6 + c.contextSlack,
      gridRows: c.pos2d ? GRID.height : 0,
      gridCols: c.pos2d ? GRID.width : 0,
      padId: vocab.pad,
    },
    { seed: 1 },
  );
  return { label, ar: { model, vocab, grid: GRID, imageTokenizer: 'bench-random', classes: CLASSES, bpe: undefined } };
}

interface Row {
  model: string;
  params: number;
  batch: number;
  cache: { median: number; min: number; max: number };
  noCache: { median: number; min: number; max: number };
  ratio: number;
}

function tokensPerSecond(ar: ArParts, batch: number, useCache: boolean, seed: number): number {
  const t0 = process.hrtime.bigint();
  const grids = generateImages(ar, { prompt: 'Sneaker', n: batch, seed, useCache });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (grids.length !== batch || grids.some((g) => g.length !== GRID.height * GRID.width)) throw new Error('sampling returned the wrong shape');
  return (batch * (GRID.height * GRID.width + 1)) / seconds;
}

function measure(ar: ArParts, batch: number, useCache: boolean, warmUp: boolean): { median: number; min: number; max: number } {
  if (warmUp) tokensPerSecond(ar, batch, useCache, 0); // kernels, weight uploads
  const xs: number[] = [];
  for (let r = 0; r < REPS; r++) xs.push(tokensPerSecond(ar, batch, useCache, r + 1));
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

async function main(): Promise<void> {
  const info = await initBackend({ threads: THREADS });
  const loadBefore = os.loadavg()[0];
  process.stderr.write(`backend ${info.backend}, ${info.threads} thread(s); ${os.cpus().length} cores; load average ${loadBefore.toFixed(1)}; ${REPS} timed run(s) per cell\n`);
  const started = Date.now();
  const heads = [await randomHead('ar-fashion-mnist (random init)', {}), await randomHead('small preset (random init)', { ...TRANSFORMER_PRESETS.small })];
  const rows: Row[] = [];
  for (const { label, ar } of heads) {
    for (const batch of label.startsWith('small') && quick ? [8] : [1, 8]) {
      // One warm-up per model and mode (at the first batch size): a batch-8 no-cache warm-up of the small model alone takes ~25 s.
      const first = batch === (label.startsWith('small') && quick ? 8 : 1);
      const cache = measure(ar, batch, true, first);
      const noCache = measure(ar, batch, false, first);
      rows.push({ model: label, params: ar.model.numParams, batch, cache, noCache, ratio: cache.median / noCache.median });
      process.stderr.write(`${label} batch ${batch}: ${cache.median.toFixed(0)} vs ${noCache.median.toFixed(0)} tokens/s\n`);
    }
    ar.model.dispose();
  }
  await shutdownBackend();
  const loadAfter = os.loadavg()[0];
  const f = (t: { median: number; min: number; max: number }): string => `${t.median.toFixed(0)} (${t.min.toFixed(0)}-${t.max.toFixed(0)})`;
  const table = formatTable(
    ['model', 'params', 'batch', 'KV cache tokens/s', 'no cache tokens/s', 'cache / no cache'],
    rows.map((r) => [r.model, `${(r.params / 1e6).toFixed(2)}M`, String(r.batch), f(r.cache), f(r.noCache), `${r.ratio.toFixed(1)}x`]),
    { markdown: true },
  );
  const wall = (Date.now() - started) / 1000;
  process.stdout.write(
    [
      table,
      '',
      `Sampling one 8x8 Fashion-MNIST code grid (64 visual tokens + <eoi>) after "Sneaker"; RANDOM-INIT weights (speed only).`,
      `Median (min-max) of ${REPS} run(s) (one warm-up per model and mode); ${info.backend} backend, ${info.threads} thread(s); load average ${loadBefore.toFixed(1)} -> ${loadAfter.toFixed(1)}; ${wall.toFixed(0)} s in all.`,
      '',
    ].join('\n'),
  );
  await fsp.mkdir(path.dirname(OUT), { recursive: true });
  await fsp.writeFile(OUT, JSON.stringify({ backend: info.backend, threads: info.threads, reps: REPS, loadBefore, loadAfter, wallSeconds: wall, rows }, null, 2) + '\n');
}

void main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
