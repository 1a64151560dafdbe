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
  count: number;
  h: number;
  w: number;
  /** [0]: the next grid to take (workers take CHUNK grids at a time, so a busy core does less). */
  next: Int32Array; // on a SharedArrayBuffer
}

const CHUNK = 250;

export class BpeEncodePool {
  private readonly workers: Worker[];
  private readonly next: Int32Array;

  private constructor(workers: Worker[], next: Int32Array) {
    this.workers = workers;
    this.next = next;
  }

  /** Starts `threads` workers, each building the model once (not part of any timing). */
  static async create(model: BpeModel, codes: ArrayLike<number>, count: number, h: number, w: number, threads: number): Promise<BpeEncodePool> {
    const shared = new Uint16Array(new SharedArrayBuffer(count * h * w * 2));
    shared.set(codes);
    const next = new Int32Array(new SharedArrayBuffer(4));
    const init: Init = { model: model.toJSON(), codes: shared, count, h, w, next };
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
    return new BpeEncodePool(workers, next);
  }

  /** Encodes every grid once, the workers taking chunks of grids until none are left; returns the total number of tokens. */
  async encodeAll(): Promise<number> {
    Atomics.store(this.next, 0, 0);
    const totals = await Promise.all(
      this.workers.map(
        (worker) =>
          new Promise<number>((resolve, reject) => {
            worker.once('message', (total: number) => resolve(total));
            worker.once('error', reject);
            worker.postMessage('go');
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
  port.on('message', () => {
    let total = 0;
    for (;;) {
      const start = Atomics.add(init.next, 0, CHUNK);
      if (start >= init.count) break;
      const end = Math.min(init.count, start + CHUNK);
      for (let g = start; g < end; g++) total += model.encode(init.codes.subarray(g * cells, (g + 1) * cells), init.h, init.w).length;
    }
    port.postMessage(total);
  });
  port.postMessage('ready');
}
