/**
 * The multi-threaded wasm backend in Node.
 *
 * `@tensorflow/tfjs-backend-wasm` ships a threaded SIMD build but never uses
 * it in Node: its `WASM_HAS_MULTITHREAD_SUPPORT` flag is hard-wired to false
 * there (tensorflow/tfjs#3830). The build itself runs fine on
 * `worker_threads`; three things stand in the way, and this module works
 * around each one without touching node_modules:
 *
 * 1. tfjs hands Emscripten the pthread worker script as a `blob:` URL, which
 *    Node's `Worker` cannot load. We start workers from the script's source
 *    with `new Worker(source, { eval: true })` instead.
 * 2. The C++ side sizes its thread pool from `emscripten_num_logical_cores() / 2`
 *    (it assumes two hyper-threads per core), so 2 cores give 1 thread. We
 *    report `2 * threads` logical cores to it, so the pool gets exactly the
 *    thread count asked for (XNNPACK caps it at 8).
 * 3. The glue pre-spawns 8 workers whatever the thread count; we spawn
 *    `threads - 1` (the calling thread is the pool's first thread), at least 1
 *    because the glue waits for one worker to load before it resolves.
 * 4. The glue installs process listeners that re-throw uncaught errors from
 *    inside itself; we drop them (Node's defaults behave the same).
 *
 * (1)-(4) are small, exact-string edits of the Emscripten glue, applied in
 * memory before it is evaluated. tfjs is pinned (4.22.0); if an edit does not
 * apply to the installed glue, `createThreadedWasmBackend` throws and the
 * caller falls back to the stock single-threaded build with that reason.
 *
 * The workers keep the process alive: `tf.removeBackend('wasm')` (done by
 * `shutdownBackend`) terminates them.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import type { Worker } from 'node:worker_threads';

/** The most threads XNNPACK's pool in tfjs-backend-wasm 4.22 will create. */
export const WASM_MAX_THREADS = 8;

/** What we need of the Emscripten module object. */
interface EmscriptenModule {
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: number[]) => number;
  PThread?: { terminateAllThreads(): void; runningWorkers: Worker[]; unusedWorkers: Worker[] };
  [key: string]: unknown;
}

type EmscriptenFactory = (config: Record<string, unknown>) => Promise<EmscriptenModule>;

/** One exact-string edit of the glue; `from` must occur exactly once. */
interface GlueEdit {
  what: string;
  from: string;
  to: string;
}

const GLUE_EDITS: GlueEdit[] = [
  {
    what: 'worker pool size',
    from: 'var pthreadPoolSize=8;',
    to: 'var pthreadPoolSize=Module["vtokPoolSize"];',
  },
  {
    what: 'logical core count',
    from: '_emscripten_num_logical_cores(){if(ENVIRONMENT_IS_NODE)return require("os").cpus().length;',
    to: '_emscripten_num_logical_cores(){if(ENVIRONMENT_IS_NODE)return Module["vtokLogicalCores"];',
  },
  {
    // The glue re-throws every uncaught exception and unhandled rejection
    // from its own listeners, so Node would print the glue's one 50 kB line
    // as the throw site of any error anywhere. Node's defaults do the same
    // without that.
    what: 'process error listeners',
    from: 'process["on"]("uncaughtException",function(ex){if(!(ex instanceof ExitStatus)){throw ex}});process["on"]("unhandledRejection",function(reason){throw reason});',
    to: '',
  },
  {
    what: 'worker start-up',
    from: 'worker=new Worker(pthreadMainJs);',
    to: 'worker=new Worker(Module["vtokWorkerSource"],{eval:true});',
  },
];

function wasmOutDir(): string {
  return path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'wasm-out');
}

let cachedFactory: { factory: EmscriptenFactory; gluePath: string; workerSource: string } | undefined;

/** Loads (once) the threaded glue with vtok's edits applied. Throws naming the edit that did not apply. */
function loadThreadedFactory(): { factory: EmscriptenFactory; gluePath: string; workerSource: string } {
  if (cachedFactory) return cachedFactory;
  const dir = wasmOutDir();
  const gluePath = path.join(dir, 'tfjs-backend-wasm-threaded-simd.js');
  let source = fs.readFileSync(gluePath, 'utf8');
  for (const edit of GLUE_EDITS) {
    const n = source.split(edit.from).length - 1;
    if (n !== 1) {
      throw new Error(
        `the threaded wasm glue in ${gluePath} does not have the expected ${edit.what} code (found ${n} times; tfjs-backend-wasm ${tfwasm.version_wasm}, vtok expects 4.22.0)`,
      );
    }
    source = source.replace(edit.from, edit.to);
  }
  // The glue is a CommonJS module; evaluate the edited source as one.
  const mod: { exports: unknown } = { exports: {} };
  const evaluate = new Function('module', 'exports', 'require', '__filename', '__dirname', source);
  evaluate(mod, mod.exports, require, gluePath, dir);
  if (typeof mod.exports !== 'function') throw new Error(`evaluating ${gluePath} did not give a module factory`);

  // The worker script ships as a JS string export. Inside that string, "\n"
  // escapes became real newlines (it is a template literal); put them back,
  // as tfjs itself does before it makes its blob.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const workerModule = require(path.join(dir, 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents?: unknown };
  if (typeof workerModule.wasmWorkerContents !== 'string') throw new Error('the threaded wasm worker script was not found');
  const workerSource = workerModule.wasmWorkerContents.replace(/\n/g, '\\n');
  cachedFactory = { factory: mod.exports as EmscriptenFactory, gluePath, workerSource };
  return cachedFactory;
}

/**
 * Creates a wasm backend instance running `threads` threads (the calling
 * thread plus `threads - 1` workers). Returns the backend and the thread count
 * that XNNPACK actually reports.
 */
export async function createThreadedWasmBackend(threads: number): Promise<{ backend: tf.KernelBackend; threads: number }> {
  const { factory, gluePath, workerSource } = loadThreadedFactory();
  const dir = path.dirname(gluePath);
  const module = await factory({
    vtokPoolSize: Math.max(1, threads - 1),
    vtokLogicalCores: 2 * threads,
    vtokWorkerSource: workerSource,
    // Workers importScripts() this file; it must be a real path, not a blob.
    mainScriptUrlOrBlob: gluePath,
    locateFile: (file: string, prefix: string) => (file.endsWith('.wasm') ? path.join(dir, file) : prefix + file),
  });
  // The same bridge tfjs's own init() builds.
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  tfwasm.setThreadsCount(threads);
  let backend: tf.KernelBackend;
  try {
    backend = new tfwasm.BackendWasm(module as unknown as ConstructorParameters<typeof tfwasm.BackendWasm>[0]);
  } catch (err) {
    module.PThread?.terminateAllThreads();
    throw err;
  }
  // The pool's threads now wait for work; the main thread blocks on them
  // during each kernel, so they are idle whenever the event loop runs. Let
  // them not keep the process alive: a script that forgets shutdownBackend
  // still exits (shutdownBackend also frees the heap).
  for (const worker of [...(module.PThread?.runningWorkers ?? []), ...(module.PThread?.unusedWorkers ?? [])]) worker.unref();
  return { backend, threads: tfwasm.getThreadsCount() };
}
