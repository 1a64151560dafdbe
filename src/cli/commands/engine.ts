import { initBackend, shutdownBackend } from '../../engine/backend';
import { note, type GlobalArgs } from '../output';

export interface EngineArgs extends GlobalArgs {
  backend?: 'tensorflow' | 'wasm' | 'cpu';
  threads?: number;
  store?: string;
}

/** Starts the backend (saying which, on stderr), runs `fn`, and always frees the backend's threads. */
export async function withEngine<T>(args: EngineArgs, fn: () => Promise<T>): Promise<T> {
  const info = await initBackend({ backend: args.backend, threads: args.threads, warn: (m) => note(args, `vtok WARNING: ${m}`) });
  note(args, `backend ${info.backend} (${info.threads} thread${info.threads === 1 ? '' : 's'})`);
  try {
    return await fn();
  } finally {
    await shutdownBackend();
  }
}

