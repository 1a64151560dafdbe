/**
 * Cost of enumerating a dataset's inputs (src/io/dataset/inputs.ts): wall
 * time of enumerateInputs, and the JS heap the sorted input list holds per
 * input (heap after a full collection, with and without the list).
 *
 * Usage: node --expose-gc --import tsx bench/inputs.ts SPEC [reps]
 *   SPEC: what `vtok tokenize` takes: a folder, glob, tar, or @file-list
 *   e.g.  node --expose-gc --import tsx bench/inputs.ts data/fashion-mnist/train
 */
import { enumerateInputs } from '../src/io/dataset/inputs';
import { median } from './lib/timing';

async function main(): Promise<void> {
  const spec = process.argv[2];
  const reps = Number(process.argv[3] ?? 5);
  if (!spec) throw new Error('Usage: node --expose-gc --import tsx bench/inputs.ts SPEC [reps]');
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('Run with node --expose-gc (the heap per input needs full collections)');
  // The heap first, in a fresh process: later enumerations leave code and caches behind that blur the difference.
  gc();
  const before = process.memoryUsage().heapUsed;
  let held: Awaited<ReturnType<typeof enumerateInputs>> | null = await enumerateInputs([spec]);
  gc();
  const count = held.inputs.length;
  const bytes = (process.memoryUsage().heapUsed - before) / count;
  held = null;
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await enumerateInputs([spec]);
    times.push(performance.now() - t0);
  }
  console.log(`${spec}: ${count} inputs; enumerateInputs median ${median(times).toFixed(0)} ms (${times.map((t) => t.toFixed(0)).join(', ')}); ${bytes.toFixed(0)} bytes of heap per input held`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
