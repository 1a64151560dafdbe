/**
 * Picks and starts the TensorFlow.js backend that vtok computes on.
 *
 * Order: the `backend` option, then the VTOK_BACKEND environment variable,
 * else the fastest backend that loads here:
 *   1. `tensorflow`: native libtensorflow from `@tensorflow/tfjs-node-gpu`,
 *      then `@tensorflow/tfjs-node` (optional dependencies: their install
 *      downloads libtensorflow, so where that is not possible they are absent);
 *   2. `wasm`: XNNPACK with SIMD on `threads` worker threads (./wasm-threads),
 *      with vtok's training kernels registered (./kernels);
 *   3. `cpu`: pure JavaScript, 40-70x slower than wasm; chosen only with a loud
 *      warning that names why the others were not used.
 * A backend asked for explicitly (option or VTOK_BACKEND) that cannot load is
 * an error (VtokError code 'BACKEND'), never a silent fallback.
 *
 * Example:
 *   const info = await initBackend();          // { backend: 'wasm', threads: 2, ... }
 *   ... train, tokenize ...
 *   await shutdownBackend();                   // frees the wasm heap and its threads
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import * as tfwasm from '@tensorflow/tfjs-backend-wasm';
import { checkInt, checkOneOf, invalidOption, resolveOptions, VtokError } from '../core/errors';
import { registerVtokKernels } from './kernels';
import { createThreadedWasmBackend, WASM_MAX_THREADS } from './wasm-threads';

export const BACKEND_NAMES = ['tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export interface BackendOptions {
  /** Backend to use; default: VTOK_BACKEND, else the fastest one that loads. */
  backend?: BackendName;
  /** Threads for the wasm backend (1-256; wasm uses at most 8); default: VTOK_THREADS, else every core (at most 8). */
  threads?: number;
  /** Where warnings go; default: console.warn with a "vtok WARNING:" prefix. */
  warn?: (message: string) => void;
}

export interface BackendInfo {
  /** The backend in use. */
  backend: BackendName;
  /** Threads computing: wasm's XNNPACK pool size as it reports it; 1 for cpu; the core count for tensorflow (its own pools). */
  threads: number;
  /** wasm: the WebAssembly SIMD build is in use; tensorflow: true (native vector code); cpu: false. */
  simd: boolean;
  /** Version of @tensorflow/tfjs-core. */
  tfjsVersion: string;
  /** node and the tfjs packages in use. */
  versions: Record<string, string>;
  /** Why each faster backend (or configuration) was not used; empty when nothing was given up. */
  reasons: string[];
  /** The kernels vtok registered for this backend. */
  kernels: string[];
}

/** Where a setting came from, for messages. */
type Source = 'option' | 'VTOK_BACKEND' | 'VTOK_THREADS' | 'default';

interface Request {
  backend?: BackendName;
  backendSource: Source;
  threads: number;
  threadsSource: Source;
  warn: (message: string) => void;
}

const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;
/** tfjs-node's registration priority for its backend. */
const NATIVE_PRIORITY = 3;
/** tfjs's own registration priority for wasm; kept when vtok re-registers it. */
const WASM_PRIORITY = 2;

let current: { info: BackendInfo; request: Request } | undefined;
let queue: Promise<unknown> = Promise.resolve();

// The factories the tfjs packages registered when they were imported, kept so
// a backend can be restored after shutdownBackend() removes it.
type BackendFactory = () => tf.KernelBackend | Promise<tf.KernelBackend>;

/** The registered factory for a backend name, if any (tfjs types it as always present; it returns null). */
function registeredFactory(name: string): BackendFactory | undefined {
  return (tf.findBackendFactory(name) as BackendFactory | null) ?? undefined;
}

const stockFactories = new Map<string, { factory: BackendFactory; priority: number; pkg?: string }>();
for (const [name, priority] of [
  ['cpu', 1],
  ['wasm', WASM_PRIORITY],
] as const) {
  const factory = registeredFactory(name);
  if (factory) stockFactories.set(name, { factory, priority });
}

function defaultWarn(message: string): void {
  console.warn(`vtok WARNING: ${message}`);
}

function coreCount(): number {
  return os.availableParallelism();
}

function resolveRequest(options: BackendOptions | undefined): Request {
  const opts = resolveOptions<BackendOptions>('initBackend', { backend: undefined, threads: undefined, warn: undefined }, options);
  if (opts.warn !== undefined && typeof opts.warn !== 'function') throw invalidOption('warn', 'a function', opts.warn);
  const warn = opts.warn ?? defaultWarn;

  let backend: BackendName | undefined;
  let backendSource: Source = 'default';
  if (opts.backend !== undefined) {
    backend = checkOneOf('backend', opts.backend, BACKEND_NAMES);
    backendSource = 'option';
  } else if (process.env.VTOK_BACKEND) {
    backend = checkOneOf('VTOK_BACKEND', process.env.VTOK_BACKEND, BACKEND_NAMES);
    backendSource = 'VTOK_BACKEND';
  }

  let threads = Math.min(coreCount(), WASM_MAX_THREADS);
  let threadsSource: Source = 'default';
  if (opts.threads !== undefined) {
    threads = checkInt('threads', opts.threads, 1, 256);
    threadsSource = 'option';
  } else if (process.env.VTOK_THREADS) {
    const raw = process.env.VTOK_THREADS;
    threads = checkInt('VTOK_THREADS', /^\d+$/.test(raw) ? Number(raw) : raw, 1, 256);
    threadsSource = 'VTOK_THREADS';
  }
  return { backend, backendSource, threads, threadsSource, warn };
}

/**
 * Whether the running backend already satisfies a request. A call that asks
 * for nothing (no option, no environment variable) takes whatever runs: library
 * code calling initBackend() must not restart a backend its caller chose.
 */
function satisfies(running: { info: BackendInfo; request: Request }, req: Request): boolean {
  if (req.backend !== undefined && req.backend !== running.info.backend) return false;
  if (running.info.backend === 'wasm' && req.threadsSource !== 'default' && req.threads !== running.request.threads) return false;
  return true;
}

function errorText(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0];
}

function packageVersion(name: string): string | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require(`${name}/package.json`) as { version?: string }).version;
  } catch {
    return undefined;
  }
}

function baseVersions(): Record<string, string> {
  return {
    node: process.versions.node,
    '@tensorflow/tfjs': tf.version.tfjs,
    '@tensorflow/tfjs-core': tf.version_core,
    '@tensorflow/tfjs-backend-wasm': tfwasm.version_wasm,
  };
}

/** Makes `instance` the registered backend `name` (replacing any factory) and activates it. */
async function activate(name: string, instance: tf.KernelBackend, priority: number): Promise<void> {
  if (registeredFactory(name)) tf.removeBackend(name);
  tf.registerBackend(name, () => instance, priority);
  if (!(await tf.setBackend(name))) throw new Error(`tf.setBackend('${name}') failed after the backend was created`);
}

/** Tries the native packages in order; returns the one that worked, or undefined with `reasons` filled. */
async function tryTensorflow(reasons: string[]): Promise<string | undefined> {
  // After a shutdown the package is still loaded but its backend was removed: put it back.
  const saved = stockFactories.get('tensorflow');
  if (saved && !registeredFactory('tensorflow')) tf.registerBackend('tensorflow', saved.factory, saved.priority);
  for (const pkg of NATIVE_PACKAGES) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      require(pkg);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'MODULE_NOT_FOUND' && e.message.includes(`'${pkg}'`)) {
        reasons.push(
          `tensorflow: ${pkg} is not installed (an optional dependency whose install downloads libtensorflow; npm skips it where that download fails)`,
        );
      } else {
        reasons.push(`tensorflow: ${pkg} is installed but failed to load: ${errorText(err)}`);
      }
      continue;
    }
    const factory = registeredFactory('tensorflow');
    if (!factory) {
      reasons.push(
        `tensorflow: ${pkg} loaded but registered its backend with another copy of @tensorflow/tfjs-core (vtok uses ${tf.version_core}); install matching versions`,
      );
      continue;
    }
    try {
      if (await tf.setBackend('tensorflow')) {
        if (!saved) stockFactories.set('tensorflow', { factory, priority: NATIVE_PRIORITY, pkg });
        return pkg;
      }
      reasons.push(`tensorflow: ${pkg} loaded but its backend failed to start`);
    } catch (err) {
      reasons.push(`tensorflow: ${pkg} loaded but its backend failed to start: ${errorText(err)}`);
    }
  }
  return undefined;
}

/** Starts wasm: the threaded build, else the stock single-threaded one. Throws if neither starts. */
async function startWasm(req: Request, reasons: string[]): Promise<{ threads: number; simd: boolean }> {
  const simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
  const wanted = Math.min(req.threads, WASM_MAX_THREADS);
  if (req.threads > WASM_MAX_THREADS) {
    reasons.push(`wasm: ${req.threads} threads asked for (${req.threadsSource}); tfjs-backend-wasm's XNNPACK pool stops at ${WASM_MAX_THREADS}`);
  }
  if (!simd) {
    reasons.push('wasm: this runtime has no WebAssembly SIMD, which the threaded build needs; running single-threaded without SIMD');
  } else if (typeof SharedArrayBuffer === 'undefined') {
    reasons.push('wasm: this runtime has no SharedArrayBuffer, which threads need; running single-threaded');
  } else {
    try {
      const { backend, threads } = await createThreadedWasmBackend(wanted);
      await activate('wasm', backend, WASM_PRIORITY);
      if (threads < wanted) reasons.push(`wasm: ${wanted} threads asked for, XNNPACK started ${threads}`);
      return { threads, simd };
    } catch (err) {
      reasons.push(`wasm: the threaded build failed to start (${errorText(err)}); running the stock single-threaded build`);
      if (registeredFactory('wasm')) tf.removeBackend('wasm');
    }
  }
  const stock = stockFactories.get('wasm');
  if (!stock) throw new Error('@tensorflow/tfjs-backend-wasm did not register a wasm backend');
  tfwasm.setThreadsCount(1);
  const instance = await stock.factory();
  await activate('wasm', instance, WASM_PRIORITY);
  return { threads: tfwasm.getThreadsCount(), simd };
}

async function startCpu(): Promise<void> {
  const stock = stockFactories.get('cpu');
  if (!registeredFactory('cpu') && stock) tf.registerBackend('cpu', stock.factory, stock.priority);
  if (!(await tf.setBackend('cpu'))) throw new Error("tf.setBackend('cpu') failed");
}

function sourceText(source: Source): string {
  return source === 'option' ? 'the backend option' : source;
}

async function start(req: Request): Promise<BackendInfo> {
  const reasons: string[] = [];
  const versions = baseVersions();
  // Register for every backend, not only the chosen one: code may still
  // switch with tf.setBackend, and the cpu fix must hold there too.
  registerVtokKernels('cpu');
  registerVtokKernels('wasm');
  const finish = (backend: BackendName, threads: number, simd: boolean): BackendInfo => ({
    backend,
    threads,
    simd,
    tfjsVersion: tf.version_core,
    versions,
    reasons,
    kernels: registerVtokKernels(backend),
  });

  if (req.backend === 'tensorflow' || req.backend === undefined) {
    const pkg = await tryTensorflow(reasons);
    if (pkg) {
      const v = packageVersion(pkg);
      if (v) versions[pkg] = v;
      return finish('tensorflow', coreCount(), true);
    }
    if (req.backend === 'tensorflow') {
      throw new VtokError('BACKEND', `Backend "tensorflow" was asked for by ${sourceText(req.backendSource)} but cannot load: ${reasons.join('; ')}`, {
        subject: 'backend',
      });
    }
  } else {
    reasons.push(`tensorflow: not tried; "${req.backend}" was asked for by ${sourceText(req.backendSource)}`);
  }

  if (req.backend === 'wasm' || req.backend === undefined) {
    try {
      const { threads, simd } = await startWasm(req, reasons);
      if (threads < Math.min(req.threads, WASM_MAX_THREADS)) {
        req.warn(`wasm runs ${threads} thread(s), not ${req.threads}: ${reasons.filter((r) => r.startsWith('wasm:')).join('; ')}`);
      }
      return finish('wasm', threads, simd);
    } catch (err) {
      if (req.backend === 'wasm') {
        throw new VtokError('BACKEND', `Backend "wasm" was asked for by ${sourceText(req.backendSource)} but cannot load: ${errorText(err)}`, {
          subject: 'backend',
          cause: err,
        });
      }
      reasons.push(`wasm: failed to start: ${errorText(err)}`);
    }
  } else {
    reasons.push(`wasm: not tried; "${req.backend}" was asked for by ${sourceText(req.backendSource)}`);
  }

  await startCpu();
  if (req.backend !== 'cpu') {
    req.warn(
      `vtok is computing on the pure-JavaScript "cpu" backend, 40-70x slower than wasm, because: ${reasons.join('; ')}. ` +
        'Set VTOK_BACKEND=cpu (or backend: "cpu") to choose it on purpose.',
    );
  }
  return finish('cpu', 1, false);
}

async function initOnce(options: BackendOptions | undefined): Promise<BackendInfo> {
  const req = resolveRequest(options);
  if (current && satisfies(current, req)) return current.info;
  if (current) await stop();
  const info = await start(req);
  current = { info, request: req };
  return info;
}

/**
 * Starts the backend (see the module comment for the order) and returns what
 * is running. Idempotent: a second call whose options the running backend
 * already satisfies returns the same info; a call asking for a different
 * backend or thread count stops the running one first. Calls are serialized.
 */
export function initBackend(options?: BackendOptions): Promise<BackendInfo> {
  const run = queue.then(() => initOnce(options));
  queue = run.catch(() => undefined);
  return run;
}

/** The running backend's info, or undefined before initBackend (or after shutdownBackend). */
export function backendInfo(): BackendInfo | undefined {
  return current?.info;
}

async function stop(): Promise<void> {
  if (!current) return;
  const name = current.info.backend;
  current = undefined;
  // Removing the backend disposes it: for wasm that frees the heap and
  // terminates the worker threads, which otherwise keep the process alive.
  if (registeredFactory(name)) tf.removeBackend(name);
  const stock = stockFactories.get(name);
  if (stock) tf.registerBackend(name, stock.factory, stock.priority);
}

/**
 * Stops the running backend: every tensor on it is freed, and for wasm its
 * worker threads end, so the process (and jest) can exit. Safe to call when
 * nothing is running. initBackend may be called again afterwards.
 */
export function shutdownBackend(): Promise<void> {
  const run = queue.then(stop);
  queue = run.catch(() => undefined);
  return run;
}
