/**
 * Parallel vtok BPE encoding for the benchmark: one worker thread per core,
 * each with its own BpeModel, encoding a contiguous share of the corpus from
 * shared memory. This is what Hugging Face's encodeBatch does in Rust
 * (rayon), so the comparison uses the same cores on both sides.
 *
 * This file is both the pool (main thread) and the worker (when loaded by
 * `new Worker`, with `workerData` set).
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { BpeModel, BpeModelData } from '../../src/core/bpe';

interface Init {
  model: BpeModelData;
  codes: Uint16Array; // on a SharedArrayBuffer
  h: number;
  w: number;
}

interface Job {
  start: number;
  end: number;
}

export class BpeEncodePool {
  private readonly workers: Worker[];
  private readonly count: number;

  private constructor(workers: Worker[], count: number) {
    this.workers = workers;
    this.count = count;
  }

  /** Starts `threads` workers, each building the model once (not part of any timing). */
  static async create(model: BpeModel, codes: ArrayLike<number>, count: number, h: number, w: number, threads: number): Promise<BpeEncodePool> {
    const shared = new Uint16Array(new SharedArrayBuffer(count * h * w * 2));
    shared.set(codes);
    const init: Init = { model: model.toJSON(), codes: shared, h, w };
    const workers = await Promise.all(
      Array.from({ length: threads }, async () => {
        // The worker runs this same TypeScript file through tsx's require hook (a worker does not
        // inherit the parent's tsx loader).
        const worker = new Worker(`require('tsx/cjs'); require(${JSON.stringify(__filename)});`, { eval: true, workerData: init });
        await new Promise<void>((resolve, reject) => {
          worker.once('message', () => resolve());
          worker.once('error', reject);
        });
        return worker;
      }),
    );
    return new BpeEncodePool(workers, count);
  }

  /** Encodes every grid once, split evenly over the workers; returns the total number of tokens. */
  async encodeAll(): Promise<number> {
    const n = this.workers.length;
    const totals = await Promise.all(
      this.workers.map(
        (worker, i) =>
          new Promise<number>((resolve, reject) => {
            worker.once('message', (total: number) => resolve(total));
            worker.once('error', reject);
            const job: Job = { start: Math.floor((i * this.count) / n), end: Math.floor(((i + 1) * this.count) / n) };
            worker.postMessage(job);
          }),
      ),
    );
    return totals.reduce((a, b) => a + b, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

if (!isMainThread && parentPort && workerData) {
  const init = workerData as Init;
  const model = BpeModel.fromJSON(init.model);
  const cells = init.h * init.w;
  const port = parentPort;
  port.on('message', (job: Job) => {
    let total = 0;
    for (let g = job.start; g < job.end; g++) total += model.encode(init.codes.subarray(g * cells, (g + 1) * cells), init.h, init.w).length;
    port.postMessage(total);
  });
  port.postMessage('ready');
}
