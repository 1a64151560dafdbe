/**
 * Decode workers: loadInput (read, sha256, sidecars, decode) on worker
 * threads, so that decoding overlaps with the model.
 *
 * Why threads: on the wasm backend the model runs synchronously on the main
 * thread (it is the first thread of XNNPACK's pool), so nothing queued on
 * the main event loop runs while a batch is encoded. Decoding there, even
 * when sharp does the pixel work on libuv's threads, waits for the batch to
 * end at every step that needs the loop (each sharp call of an image, every
 * JavaScript decode), and the model then waits for the decode. A worker has
 * its own event loop, so it decodes while the model computes, on the cycles
 * the model's threads leave idle (its single-threaded ops; it keeps about
 * 1.75 of 2 cores busy). Measured (2026-12-02, the experiment that
 * bench/decode-contention.ts repeats; default tokenizer at 128, 256 photos
 * in batches of 16, 3 reps): the model alone 6.3-7.1 s; with a worker
 * decoding the next batch during each one 6.0-6.7 s and nothing left to wait
 * for afterwards; with sharp called from the main thread the model took
 * 6.2-6.9 s and then waited 0.6-0.8 s for the decodes.
 *
 * The pixels come back in a pooled buffer that travels to the worker with
 * the request and back with the result (transferred, not copied), so the
 * main thread allocates nothing per image. The mapping file's labels are
 * added on the main thread (withLabels), so workers do not hold the mapping.
 *
 * A worker that dies (a crash in native code, out of memory) fails every
 * load it held with an error that names the input: loadInput itself never
 * throws for a bad input, so this is not a skip but a failed run, which
 * --resume continues.
 *
 * Example:
 *   const workers = new LoadWorkers(1, { image: { size: 128, fit: 'crop', ... }, maxFileBytes, concurrency: 2, nice: 0 }, pool);
 *   const r = await workers.load(input);   // LoadResult; r.value.pixels is pool.take()'s buffer
 *   workers.close();
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { VtokError, checkInt } from '../../core/errors';
import type { DatasetInput } from './inputs';
import type { SkippedInput } from '../../core/pipeline-types';
import type { LoadContext, LoadedInput, LoadResult } from './read';

/** What a worker needs to load inputs: loadInput's context without the reader (each worker has its own) and the labels. */
export interface LoadWorkerSettings {
  image: LoadContext['image'];
  maxFileBytes: number;
  /** Loads run at once in each worker; further requests wait in the worker. */
  concurrency: number;
  /**
   * Nice value of each worker thread (Linux; 0-19; elsewhere ignored). A
   * high value lets the model's threads preempt the decoder whenever they
   * run, so it decodes in the cycles they leave idle.
   */
  nice: number;
}

/** Where decoded pixels go: buffers of one size, taken per request and given back when unused. */
export interface PixelBuffers {
  readonly size: number;
  take(): Float32Array;
  give(b: Float32Array): void;
}

/** Messages to a worker (load-worker.ts): a group of inputs, each with a buffer of `size` floats for its pixels (transferred), or close. */
export type ToWorker = { kind: 'load'; group: number; inputs: DatasetInput[]; into: ArrayBuffer[] } | { kind: 'close' };

/** One input's result as a worker sends it: without the input (the main thread has it); the pixels in its buffer when inInto. */
export type WorkerResult =
  | { ok: true; value: Omit<LoadedInput, 'input' | 'pixels'>; inInto: boolean; pixels: Float32Array | null }
  | { ok: false; skipped: SkippedInput; inInto: false; pixels: null };

/** A worker's answer to one group: results and the group's buffers, in request order. */
export interface LoadReply {
  group: number;
  results: WorkerResult[];
  into: ArrayBuffer[];
}

interface Pending {
  inputs: DatasetInput[];
  resolve: ((r: LoadResult) => void)[];
  reject: ((e: Error) => void)[];
}

interface Slot {
  index: number;
  worker: Worker;
  /** Groups sent and not answered, by group number. */
  pending: Map<number, Pending>;
  /** Loads in those groups. */
  loads: number;
  /** The group being gathered in this tick (sent at the end of it), or null. */
  outbox: (Pending & { into: ArrayBuffer[] }) | null;
  /** Why it stopped, once it has. */
  dead: Error | null;
}

/** The worker's entry module next to this one, in the same flavour (.ts under tsx/jest, .js when built). */
function workerSource(): string {
  const ext = path.extname(__filename);
  const entry = path.join(__dirname, `load-worker${ext}`);
  // Uncompiled TypeScript (tests, `npx tsx`): the worker registers tsx's require hook first, as the main thread's loader does not reach workers.
  const hook = ext === '.ts' ? `require(${JSON.stringify(require.resolve('tsx/cjs'))});` : '';
  return `${hook}require(${JSON.stringify(entry)});`;
}

export class LoadWorkers {
  private readonly slots: Slot[] = [];
  private nextGroup = 0;
  /**
   * Which workers have loaded their modules (one flag a worker, set by the
   * worker itself): the 'ready' message alone would be seen only when the main
   * thread's event loop turns, which it need not do for many batches when
   * every decode finishes in microtasks.
   */
  private readonly started: Int32Array;
  private readonly readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private fallback: ((input: DatasetInput) => Promise<LoadResult>) | undefined;
  /** Inputs loaded by the workers so far. */
  loaded = 0;
  private closed = false;

  /**
   * Starts `count` worker threads (at least 1) that load inputs with `settings`.
   * Buffers for the pixels come from `buffers` (size: the image's float count).
   */
  constructor(
    count: number,
    settings: LoadWorkerSettings,
    private readonly buffers: PixelBuffers,
  ) {
    checkInt('workers', count, 1, 256);
    checkInt('concurrency', settings.concurrency, 1, 1024);
    checkInt('nice', settings.nice, 0, 19);
    this.started = new Int32Array(new SharedArrayBuffer(4 * count));
    const source = workerSource();
    for (let i = 0; i < count; i++) {
      const worker = new Worker(source, { eval: true, workerData: { settings, started: this.started, index: i } });
      const slot: Slot = { index: i, worker, pending: new Map(), loads: 0, outbox: null, dead: null };
      worker.on('message', (m: LoadReply | { ready: true }) => {
        if ('ready' in m) {
          for (const w of this.readyWaiters.splice(0)) w.resolve();
        } else {
          this.onReply(slot, m);
        }
      });
      worker.on('error', (err) => this.fail(slot, err));
      worker.on('exit', (code) => this.fail(slot, new Error(`the decode worker exited with code ${code}`)));
      this.slots.push(slot);
    }
  }

  /**
   * Loads on the calling thread instead: the inputs of a worker that stopped
   * before it was ever ready (threads unavailable, a module that does not
   * load), and every input once no worker is left if none ever started, so
   * that such an environment runs without workers rather than failing (a
   * worker that stops later is a failure: its loads reject). Without a
   * fallback those loads reject. Its results are taken as they are (their
   * pixels need not come from `buffers`).
   */
  setFallback(load: (input: DatasetInput) => Promise<LoadResult>): void {
    this.fallback = load;
  }

  /** Number of worker threads. */
  get count(): number {
    return this.slots.length;
  }

  /**
   * True once a worker has loaded its modules (~0.15 s after the start;
   * ~0.25 s under tsx). Until then a caller can decode on its own thread
   * rather than wait: the thread starts on the other core meanwhile.
   */
  get ready(): boolean {
    return this.slots.some((s) => s.dead === null && this.hasStarted(s));
  }

  /** Whether the slot's worker loaded its modules (it may have stopped since). */
  private hasStarted(s: Slot): boolean {
    return Atomics.load(this.started, s.index) > 0;
  }

  /** Resolves when a worker is ready (at once if one was); rejects if every worker stopped before. */
  whenReady(): Promise<void> {
    if (this.slots.some((s) => this.hasStarted(s))) return Promise.resolve();
    if (this.slots.every((s) => s.dead !== null)) return Promise.reject(new VtokError('IO', `No decode worker started: ${this.slots[0].dead?.message}`));
    return new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
  }

  /**
   * Loads one input on the least busy worker. The pixels of a good result
   * are in a buffer from `buffers`. Loads asked for in the same tick go to
   * the workers as one message each (and come back as one), so ask for many
   * at once (a prefetch window): each worker queues them and runs
   * `concurrency` at a time, so it keeps decoding while the main thread is
   * busy.
   */
  load(input: DatasetInput): Promise<LoadResult> {
    if (this.closed) return Promise.reject(new VtokError('INVALID_OPTION', 'LoadWorkers.load after close()'));
    const live = this.slots.filter((s) => s.dead === null);
    if (live.length === 0) {
      const neverStarted = !this.slots.some((s) => this.hasStarted(s));
      return this.fallback && neverStarted ? this.fallback(input) : Promise.reject(this.deadError(input, this.slots[0].dead as Error));
    }
    let slot = live[0];
    for (const s of live) if (s.loads < slot.loads) slot = s;
    slot.loads++;
    if (slot.outbox === null) {
      const box = { inputs: [], resolve: [], reject: [], into: [] };
      slot.outbox = box;
      queueMicrotask(() => this.send(slot, box));
    }
    const box = slot.outbox;
    box.inputs.push(input);
    box.into.push(this.buffers.take().buffer as ArrayBuffer);
    return new Promise<LoadResult>((resolve, reject) => {
      box.resolve.push(resolve);
      box.reject.push(reject);
    });
  }

  private send(slot: Slot, box: Pending & { into: ArrayBuffer[] }): void {
    if (slot.outbox === box) slot.outbox = null;
    if (slot.dead !== null || this.closed) {
      this.settleLost(slot, box, slot.dead ?? new Error('closed'));
      return;
    }
    const group = this.nextGroup++;
    slot.pending.set(group, box);
    const msg: ToWorker = { kind: 'load', group, inputs: box.inputs, into: box.into };
    slot.worker.postMessage(msg, box.into);
  }

  private onReply(slot: Slot, m: LoadReply): void {
    const p = slot.pending.get(m.group);
    if (!p) return;
    slot.pending.delete(m.group);
    slot.loads -= p.inputs.length;
    this.loaded += p.inputs.length;
    m.results.forEach((r, i) => {
      const into = new Float32Array(m.into[i]);
      const input = p.inputs[i];
      if (!r.ok) {
        this.buffers.give(into);
        p.resolve[i]({ ok: false, skipped: r.skipped });
        return;
      }
      if (!r.inInto) this.buffers.give(into);
      p.resolve[i]({ ok: true, value: { ...r.value, input, pixels: r.inInto ? into : (r.pixels as Float32Array) } });
    });
  }

  private deadError(input: DatasetInput, cause: Error): VtokError {
    return new VtokError('IO', `The decode worker stopped while loading ${input.source}: ${cause.message}; rerun with resume to continue`, { subject: input.source, cause });
  }

  private fail(slot: Slot, err: Error): void {
    if (slot.dead !== null || this.closed) return;
    slot.dead = err;
    for (const p of slot.pending.values()) this.settleLost(slot, p, err);
    slot.pending.clear();
    slot.loads = 0;
    if (!this.slots.some((s) => this.hasStarted(s)) && this.slots.every((s) => s.dead !== null)) {
      for (const w of this.readyWaiters.splice(0)) w.reject(new VtokError('IO', `No decode worker started: ${err.message}`));
    }
  }

  /** Loads a stopped worker will not answer: to the fallback if it never started (see setFallback), else rejected. */
  private settleLost(slot: Slot, p: Pending, err: Error): void {
    const fallback = this.fallback;
    if (fallback && !this.closed && !this.hasStarted(slot)) {
      p.inputs.forEach((input, i) => fallback(input).then(p.resolve[i], p.reject[i]));
    } else {
      p.inputs.forEach((input, i) => p.reject[i](this.deadError(input, err)));
    }
  }

  /**
   * Stops the workers; loads still pending are rejected. Each worker closes
   * its open archives and exits on its own; close() does not wait for that
   * (the threads no longer keep the process alive).
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.slots) {
      for (const p of s.pending.values()) p.inputs.forEach((input, i) => p.reject[i](new VtokError('INVALID_OPTION', `LoadWorkers closed while loading ${input.source}`)));
      s.pending.clear();
      if (s.dead !== null) continue;
      const msg: ToWorker = { kind: 'close' };
      s.worker.postMessage(msg);
      s.worker.unref();
    }
  }
}
