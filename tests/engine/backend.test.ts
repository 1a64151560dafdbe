import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { backendInfo, initBackend, shutdownBackend } from '../../src/engine/backend';
import { VtokError } from '../../src/core/errors';

const ENV_KEYS = ['VTOK_BACKEND', 'VTOK_THREADS'] as const;
const savedEnv: Record<string, string | undefined> = {};

beforeEach(() => {
  for (const k of ENV_KEYS) {
    savedEnv[k] = process.env[k];
    delete process.env[k];
  }
});
afterEach(async () => {
  for (const k of ENV_KEYS) {
    if (savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = savedEnv[k];
  }
  await shutdownBackend();
});

async function rejection(p: Promise<unknown>): Promise<VtokError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(VtokError);
    return err as VtokError;
  }
  throw new Error('expected a rejection');
}

describe('initBackend', () => {
  it('picks threaded wasm when the native packages are absent, and says why', async () => {
    const warnings: string[] = [];
    const info = await initBackend({ threads: 2, warn: (m) => warnings.push(m) });
    expect(info.backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(info.threads).toBe(2);
    expect(info.simd).toBe(true);
    expect(info.tfjsVersion).toBe(tf.version_core);
    expect(info.versions.node).toBe(process.versions.node);
    expect(info.versions['@tensorflow/tfjs-backend-wasm']).toBe('4.22.0');
    // Here (the build machines) neither native package installs.
    expect(info.reasons.join('\n')).toContain('@tensorflow/tfjs-node-gpu is not installed');
    expect(info.reasons.join('\n')).toContain('@tensorflow/tfjs-node is not installed');
    expect(warnings).toEqual([]);
    expect(backendInfo()).toBe(info);
  });

  it('is idempotent and switches when asked for something else', async () => {
    const a = await initBackend({ threads: 1 });
    expect(await initBackend()).toBe(a);
    expect(await initBackend({ backend: 'wasm', threads: 1 })).toBe(a);
    const b = await initBackend({ threads: 2 });
    expect(b).not.toBe(a);
    expect(b.threads).toBe(2);
    const c = await initBackend({ backend: 'cpu' });
    expect(c.backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    // a call that asks for nothing keeps what its caller chose
    expect(await initBackend()).toBe(c);
  });

  it('computes the same on 1 thread, 2 threads and cpu', async () => {
    const run = (): Float32Array => {
      const x = tf.tensor4d(Array.from({ length: 2 * 9 * 9 * 5 }, (_, i) => Math.sin(i)), [2, 9, 9, 5]);
      const w = tf.tensor4d(Array.from({ length: 3 * 3 * 5 * 7 }, (_, i) => Math.cos(i)), [3, 3, 5, 7]);
      const y = tf.conv2d(x, w, 2, 'same');
      const out = y.dataSync() as Float32Array;
      tf.dispose([x, w, y]);
      return out;
    };
    await initBackend({ backend: 'cpu' });
    const ref = run();
    for (const threads of [1, 2]) {
      await initBackend({ backend: 'wasm', threads });
      const got = run();
      for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i] - ref[i])).toBeLessThan(1e-4);
    }
  });

  it('reads VTOK_BACKEND and VTOK_THREADS; the option wins', async () => {
    process.env.VTOK_BACKEND = 'cpu';
    expect((await initBackend()).backend).toBe('cpu');
    expect((await initBackend({ backend: 'wasm', threads: 1 })).backend).toBe('wasm');
    await shutdownBackend();
    process.env.VTOK_BACKEND = 'wasm';
    process.env.VTOK_THREADS = '1';
    const info = await initBackend();
    expect(info.threads).toBe(1);
    expect(info.reasons).toContain('tensorflow: not tried; "wasm" was asked for by VTOK_BACKEND');
  });

  it('rejects bad options with the exact message', async () => {
    expect((await rejection(initBackend({ backend: 'gpu' as never }))).message).toBe(
      'Expected one of "tensorflow", "wasm", "cpu" for backend but received "gpu" of type string',
    );
    expect((await rejection(initBackend({ threads: 0 }))).message).toBe(
      'Expected integer between 1 and 256 for threads but received 0 of type number',
    );
    expect((await rejection(initBackend({ thread: 2 } as never))).message).toBe(
      'Unknown option "thread" for initBackend; known options are backend, threads, warn',
    );
    process.env.VTOK_THREADS = 'two';
    expect((await rejection(initBackend())).message).toBe(
      'Expected integer between 1 and 256 for VTOK_THREADS but received "two" of type string',
    );
    process.env.VTOK_BACKEND = 'gpu';
    expect((await rejection(initBackend())).code).toBe('INVALID_OPTION');
    expect(backendInfo()).toBeUndefined();
  });

  it('fails, not falls back, when the asked-for backend cannot load', async () => {
    const err = await rejection(initBackend({ backend: 'tensorflow' }));
    expect(err.code).toBe('BACKEND');
    expect(err.message).toMatch(/^Backend "tensorflow" was asked for by the backend option but cannot load: /);
    expect(err.message).toContain('@tensorflow/tfjs-node-gpu is not installed');
    process.env.VTOK_BACKEND = 'tensorflow';
    expect((await rejection(initBackend())).message).toContain('was asked for by VTOK_BACKEND');
  });

  it('falls back to single-threaded wasm without SIMD, with a warning', async () => {
    tf.env().set('WASM_HAS_SIMD_SUPPORT', false);
    try {
      const warnings: string[] = [];
      const info = await initBackend({ threads: 2, warn: (m) => warnings.push(m) });
      expect(info.backend).toBe('wasm');
      expect(info.threads).toBe(1);
      expect(info.simd).toBe(false);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('wasm runs 1 thread(s), not 2');
      expect(tf.tensor1d([1, 2]).add(1).arraySync()).toEqual([2, 3]);
    } finally {
      tf.env().set('WASM_HAS_SIMD_SUPPORT', true);
    }
  });

  it('shutdownBackend frees the backend and is safe to repeat', async () => {
    await initBackend({ threads: 2 });
    await shutdownBackend();
    await shutdownBackend();
    expect(backendInfo()).toBeUndefined();
    expect(tf.findBackend('wasm')).toBeNull();
    // and it starts again
    expect((await initBackend({ threads: 2 })).threads).toBe(2);
  });
});

describe('process exit', () => {
  // A child process that starts 2-thread wasm and computes must end on its own.
  const tsx = path.join(__dirname, '../../node_modules/.bin/tsx');
  const child = path.join(__dirname, 'fixtures/exit-child.ts');
  it.each(['shutdown', 'no-shutdown'])('exits after a 2-thread run (%s)', (mode) => {
    const res = spawnSync(tsx, [child, mode], { encoding: 'utf8', timeout: 30000 });
    expect(res.error).toBeUndefined();
    expect(res.stderr).not.toContain('Error');
    expect(res.stdout.trim()).toBe('wasm 2 [5,7,9]');
    expect(res.status).toBe(0);
  });
});
