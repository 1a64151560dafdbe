/**
 * How much decoding beside the model slows the model: the model alone on
 * pre-decoded batches, against the same batches while the next batch's
 * inputs are loaded (read, sha256, sidecars, decode) by LoadWorkers at
 * several nice values, and while they are loaded on the main thread after
 * each batch (tokenizeDataset's `workers: 0`). Modes alternate within each
 * rep so that drift of the machine hits all alike; medians over reps.
 *
 * "model" is the time inside encodeBatch; "wait" the time after it until the
 * next batch's inputs were all loaded (what the pipeline would wait for).
 *
 * Usage: npx tsx bench/decode-contention.ts [fmnist|photos] [reps] [nice...]
 *   fmnist: the fashion-mnist tokenizer on 2,048 Fashion-MNIST PNGs at 32 (batch 64)
 *   photos: the default tokenizer on 256 photos at 128 (batch 16)
 *   nice values of the worker modes: default 0 10 19
 */
import * as path from 'node:path';
import { initBackend, shutdownBackend } from '../src/engine/backend';
import { enumerateInputs } from '../src/io/dataset/inputs';
import { LoadWorkers } from '../src/io/dataset/load-workers';
import { loadInputUnlabelled, type LoadResult } from '../src/io/dataset/read';
import { RangeReader } from '../src/io/dataset/tar';
import { loadTokenizer } from '../src/io/tokenizer-bundle';
import { modelTokenizer } from '../src/pipeline/model-tokenizer';
import { PixelPool } from '../src/pipeline/pixel-pool';
import { formatTable } from './lib/table';
import { median } from './lib/timing';

const ROOT = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const data = args[0] === 'photos' ? 'photos' : 'fmnist';
const REPS = Number(args[1] ?? 5);
const NICES = args.length > 2 ? args.slice(2).map(Number) : [0, 10, 19];

async function main(): Promise<void> {
  const info = await initBackend();
  const t = await loadTokenizer(data === 'photos' ? 'default' : 'fashion-mnist');
  const tok = modelTokenizer(t.model, { imageSize: t.imageSize, id: t.id });
  const S = t.imageSize;
  const B = data === 'photos' ? 16 : 64;
  const n = data === 'photos' ? 256 : 2048;
  const dir = path.join(ROOT, data === 'photos' ? 'data/photos/train' : 'data/fashion-mnist/train');
  const inputs = (await enumerateInputs([dir])).inputs.toArray().filter((x) => x.problem === null).slice(0, n);
  if (inputs.length < n) throw new Error(`Only ${inputs.length} images in ${dir}: run npm run data first`);
  const image = { size: S, fit: data === 'photos' ? ('crop' as const) : ('pad' as const), background: '#ffffff', kernel: 'lanczos3' as const, maxPixels: 1 << 28, failOn: 'warning' as const };
  const reader = new RangeReader();
  const here = (x: (typeof inputs)[number]): Promise<LoadResult> => loadInputUnlabelled(x, { reader, image, maxFileBytes: 1 << 28 });
  const chunks: (typeof inputs)[] = [];
  for (let s = 0; s < n; s += B) chunks.push(inputs.slice(s, s + B));
  const batches: Float32Array[] = [];
  for (const c of chunks) {
    const buf = new Float32Array(c.length * S * S * 3); // [B, S, S, 3]
    for (const [i, r] of (await Promise.all(c.map(here))).entries()) {
      if (!r.ok) throw new Error(r.skipped.message);
      buf.set(r.value.pixels, i * S * S * 3);
    }
    batches.push(buf);
  }
  for (const b of batches) await tok.encodeBatch(b, B); // warm-up
  const pool = new PixelPool(S * S * 3);
  const workers = new Map(NICES.map((nice) => [nice, new LoadWorkers(1, { image, maxFileBytes: 1 << 28, concurrency: 2, nice }, pool)]));
  for (const w of workers.values()) await w.whenReady();
  const release = (rs: LoadResult[]): void => rs.forEach((r) => r.ok && pool.give(r.value.pixels));

  const modes = ['model alone', ...NICES.map((x) => `worker at nice ${x}`), 'main thread after each batch'];
  const model: Record<string, number[]> = {};
  const wait: Record<string, number[]> = {};
  for (let rep = 0; rep < REPS; rep++) {
    const order = rep % 2 === 0 ? modes : [...modes].reverse();
    for (const mode of order) {
      let inModel = 0;
      let waited = 0;
      for (let k = 0; k < batches.length; k++) {
        const next = chunks[(k + 1) % chunks.length];
        const nice = mode.startsWith('worker') ? Number(mode.split(' ').pop()) : -1;
        const pending = nice >= 0 ? Promise.all(next.map((x) => (workers.get(nice) as LoadWorkers).load(x))) : null;
        // LoadWorkers sends the loads of a tick in a microtask; encodeBatch computes before its first await, so let that
        // message go first (tokenizeDataset awaits its prefetch between issuing loads and encoding).
        await Promise.resolve();
        const t0 = performance.now();
        await tok.encodeBatch(batches[k], B);
        const t1 = performance.now();
        if (pending) release(await pending);
        else if (mode.startsWith('main')) await Promise.all(next.map(here));
        inModel += t1 - t0;
        waited += performance.now() - t1;
      }
      (model[mode] ??= []).push(inModel / 1000);
      (wait[mode] ??= []).push(waited / 1000);
    }
    process.stderr.write(`rep ${rep + 1}/${REPS}: ${modes.map((m) => `${m} ${model[m][rep].toFixed(2)} + ${wait[m][rep].toFixed(2)} s`).join(', ')}\n`);
  }
  for (const w of workers.values()) w.close();
  await reader.close();
  t.model.dispose();
  await shutdownBackend();
  const base = median(model['model alone']);
  console.log(`\n## bench/decode-contention.ts (${data}, ${info.backend} ${info.threads} threads, ${n} images, batch ${B}; medians of ${REPS} reps)\n`);
  console.log(
    formatTable(
      ['mode', 'inside the model (s)', 'vs model alone', 'waiting for the next batch (s)', 'total vs model alone'],
      modes.map((m) => [
        m,
        median(model[m]).toFixed(2),
        `${((median(model[m]) / base - 1) * 100).toFixed(1)}%`,
        median(wait[m]).toFixed(2),
        `${((median(model[m].map((x, i) => x + wait[m][i])) / base - 1) * 100).toFixed(1)}%`,
      ]),
      { markdown: true },
    ),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
