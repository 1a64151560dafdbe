// What happens when wasm cannot start: a loud warning naming every reason, and
// an error (no fallback) when wasm was asked for. Simulated by removing the
// wasm backend that @tensorflow/tfjs-backend-wasm registers, before vtok's
// backend module records it, and by making the threaded loader fail.
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type * as BackendModule from '../../src/engine/backend';
import { VtokError } from '../../src/core/errors';

jest.mock('../../src/engine/wasm-threads', () => ({
  WASM_MAX_THREADS: 8,
  createThreadedWasmBackend: () => Promise.reject(new Error('simulated: threads unavailable')),
}));

tf.removeBackend('wasm');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { initBackend, shutdownBackend } = require('../../src/engine/backend') as typeof BackendModule;

afterAll(() => shutdownBackend());

it('falls back to cpu with a loud warning that names the reasons', async () => {
  delete process.env.VTOK_BACKEND;
  const warnings: string[] = [];
  const info = await initBackend({ warn: (m) => warnings.push(m) });
  expect(info.backend).toBe('cpu');
  expect(info.threads).toBe(1);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatch(/^vtok is computing on the pure-JavaScript "cpu" backend, 40-70x slower than wasm, because: /);
  expect(warnings[0]).toContain('@tensorflow/tfjs-node-gpu is not installed');
  expect(warnings[0]).toContain('the threaded build failed to start (simulated: threads unavailable)');
  expect(warnings[0]).toContain('wasm: failed to start: @tensorflow/tfjs-backend-wasm did not register a wasm backend');
  expect(info.reasons.some((r) => r.startsWith('wasm: failed to start'))).toBe(true);
});

it('is an error when wasm was asked for', async () => {
  let caught: unknown;
  try {
    await initBackend({ backend: 'wasm' });
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(VtokError);
  expect((caught as VtokError).code).toBe('BACKEND');
  expect((caught as VtokError).message).toBe(
    'Backend "wasm" was asked for by the backend option but cannot load: @tensorflow/tfjs-backend-wasm did not register a wasm backend',
  );
});

it('does not warn when cpu is chosen on purpose', async () => {
  const warnings: string[] = [];
  expect((await initBackend({ backend: 'cpu', warn: (m) => warnings.push(m) })).backend).toBe('cpu');
  expect(warnings).toEqual([]);
});
