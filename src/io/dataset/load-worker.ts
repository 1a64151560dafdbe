/**
 * The decode worker's entry (started by LoadWorkers in load-workers.ts):
 * loads each requested input with loadInputUnlabelled and sends the result
 * back, the pixels in the request's buffer. Requests run concurrently (a
 * sharp decode awaits libuv's threads while the next request is read).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { CloseRequest, LoadReply, LoadRequest, LoadWorkerSettings } from './load-workers';
import { loadInputUnlabelled, type LoadResult } from './read';
import { RangeReader } from './tar';

const port = parentPort;
if (port === null) throw new Error('load-worker.ts runs only as a worker thread (see LoadWorkers)');
const settings = (workerData as { settings: LoadWorkerSettings }).settings;
const ctx = { reader: new RangeReader(), image: settings.image, maxFileBytes: settings.maxFileBytes };

/** Requests waiting, and loads running (at most settings.concurrency at once; the main thread sends its whole window). */
const queue: LoadRequest[] = [];
let running = 0;
let closing = false;

function pump(): void {
  while (running < settings.concurrency && queue.length > 0) {
    const req = queue.shift() as LoadRequest;
    running++;
    void loadInputUnlabelled(req.input, ctx).then((result) => {
      running--;
      reply(req, result);
      pump();
    });
  }
  if (closing && running === 0) void ctx.reader.close().finally(() => port?.close());
}

function reply(req: LoadRequest, result: LoadResult): void {
  let inInto = false;
  const transfer: ArrayBuffer[] = [req.into];
  if (result.ok) {
    const px = result.value.pixels;
    if (px.byteLength === req.into.byteLength) {
      new Float32Array(req.into).set(px);
      inInto = true;
      result = { ok: true, value: { ...result.value, pixels: new Float32Array(0) } };
    } else if (px.byteOffset === 0 && px.buffer.byteLength === px.byteLength) {
      transfer.push(px.buffer as ArrayBuffer);
    }
  }
  const msg: LoadReply = { id: req.id, result, into: req.into, inInto };
  port?.postMessage(msg, transfer);
}

port.on('message', (req: LoadRequest | CloseRequest) => {
  if ('close' in req) {
    closing = true;
    queue.length = 0;
  } else {
    queue.push(req);
  }
  pump();
});
