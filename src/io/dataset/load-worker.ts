/**
 * The decode worker's entry (started by LoadWorkers in load-workers.ts):
 * loads each requested input with loadInputUnlabelled, at most
 * `settings.concurrency` at once (a sharp decode awaits libuv's threads
 * while the next one starts), and answers each group of requests with one
 * message once all of its inputs are done, the pixels in the buffers that
 * came with the requests.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import type { LoadReply, LoadWorkerSettings, ToWorker, WorkerResult } from './load-workers';
import { loadInputUnlabelled, type LoadResult } from './read';
import { RangeReader } from './tar';

const port = parentPort;
if (port === null) throw new Error('load-worker.ts runs only as a worker thread (see LoadWorkers)');
const { settings, started, index } = workerData as { settings: LoadWorkerSettings; started: Int32Array; index: number };
if (settings.nice > 0 && process.platform === 'linux') {
  // setpriority with a thread id sets that thread alone (Linux); /proc/thread-self names ours.
  try {
    setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), settings.nice);
  } catch {
    // not permitted or no /proc: decode at the inherited priority
  }
}
const ctx = { reader: new RangeReader(), image: settings.image, maxFileBytes: settings.maxFileBytes };

interface Group {
  group: number;
  results: WorkerResult[];
  /** The request's buffers, one an input, sent back in the same order. */
  into: ArrayBuffer[];
  /** Pixel arrays of results that were not decoded into their buffer (not expected: the settings give a square size, and the buffers hold it). */
  extra: ArrayBuffer[];
  left: number;
}

/** Loads waiting (input, its buffer, its group and place there), and loads running. */
const queue: { req: ToWorker & { kind: 'load' }; i: number; g: Group }[] = [];
let running = 0;
let closing = false;

function pump(): void {
  while (running < settings.concurrency && queue.length > 0) {
    const { req, i, g } = queue.shift() as (typeof queue)[number];
    running++;
    // The decoder writes straight into the request's buffer (size x size x 3 floats).
    void loadInputUnlabelled(req.inputs[i], ctx, new Float32Array(req.into[i])).then((result) => {
      running--;
      settle(g, i, result, req.into[i]);
      pump();
    });
  }
  if (closing && running === 0) void ctx.reader.close().finally(() => port?.close());
}

/** Records one result of a group (its pixels decoded into the request's buffer, the input not echoed back); sends the group when it is complete. */
function settle(g: Group, i: number, result: LoadResult, into: ArrayBuffer): void {
  if (!result.ok) {
    g.results[i] = { ok: false, skipped: result.skipped, inInto: false, pixels: null };
  } else {
    const { input: _input, pixels, ...rest } = result.value;
    if (pixels.buffer === into) {
      g.results[i] = { ok: true, value: rest, inInto: true, pixels: null };
    } else {
      g.results[i] = { ok: true, value: rest, inInto: false, pixels };
      if (pixels.byteOffset === 0 && pixels.buffer.byteLength === pixels.byteLength) g.extra.push(pixels.buffer as ArrayBuffer);
    }
  }
  if (--g.left === 0) {
    const reply: LoadReply = { group: g.group, results: g.results, into: g.into };
    port?.postMessage(reply, [...g.into, ...g.extra]);
  }
}

// Modules loaded (sharp among them): LoadWorkers starts sending.
Atomics.store(started, index, 1);
port.postMessage({ ready: true });

port.on('message', (m: ToWorker) => {
  if (m.kind === 'close') {
    closing = true;
    queue.length = 0;
  } else {
    const g: Group = { group: m.group, results: new Array<WorkerResult>(m.inputs.length), into: m.into, extra: [], left: m.inputs.length };
    for (let i = 0; i < m.inputs.length; i++) queue.push({ req: m, i, g });
  }
  pump();
});
