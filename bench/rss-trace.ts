/**
 * Memory over one long tokenize run: every 1,000 inputs, the process's peak and
 * current RSS, V8 heap, ArrayBuffers and tf.memory(), with the shipped
 * fashion-mnist tokenizer on the first N Fashion-MNIST training PNGs.
 *   npx tsx bench/rss-trace.ts [N=10000]            (node --expose-gc --import tsx ... also collects garbage at each line)
 * Shows whether growth is a leak or garbage-collection lag (README, "Tokenizing datasets").
 */
import * as tf from '@tensorflow/tfjs';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend } from '../src/engine/backend';
import { loadTokenizer } from '../src/io/tokenizer-bundle';
import { modelTokenizer } from '../src/pipeline/model-tokenizer';
import { tokenizeDataset } from '../src/pipeline/tokenize';
(async () => {
  await initBackend();
  const t = await loadTokenizer('fashion-mnist');
  const tok = modelTokenizer(t.model, { imageSize: t.imageSize, id: t.id });
  const n = Number(process.argv[2] ?? 10000);
  const names = (await fsp.readdir('data/fashion-mnist/train')).filter((f) => f.endsWith('.png')).sort().slice(0, n);
  const list = path.join(os.tmpdir(), `rss-probe-${n}.txt`);
  await fsp.writeFile(list, names.map((f) => path.resolve('data/fashion-mnist/train', f)).join('\n') + '\n');
  const out = await fsp.mkdtemp(path.join(os.tmpdir(), 'rss-probe-'));
  let next = 0;
  const hwm = async (): Promise<number> => Number(/VmHWM:\s+(\d+)/.exec(await fsp.readFile('/proc/self/status', 'utf8'))![1]) / 1024;
  const rss = async (): Promise<number> => Number(/VmRSS:\s+(\d+)/.exec(await fsp.readFile('/proc/self/status', 'utf8'))![1]) / 1024;
  await tokenizeDataset({
    inputs: ['@' + list], out, tokenizer: tok, batchSize: 16, recordsPerShard: 1024, fit: 'pad',
    onProgress: (p) => {
      const done = p.done;
      if (done >= next) {
        next += 1000;
        (globalThis as unknown as { gc?: () => void }).gc?.();
        void Promise.all([hwm(), rss()]).then(([h, r]) => {
          const m = process.memoryUsage();
          console.log(done, 'hwm', h.toFixed(0), 'rss', r.toFixed(0), 'heapUsed', (m.heapUsed / 1e6).toFixed(0), 'heapTotal', (m.heapTotal / 1e6).toFixed(0), 'external', (m.external / 1e6).toFixed(0), 'ab', (m.arrayBuffers / 1e6).toFixed(0), 'tf', tf.memory().numTensors, (tf.memory().numBytes / 1e6).toFixed(1));
        });
      }
    },
  });
  await fsp.rm(out, { recursive: true });
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
