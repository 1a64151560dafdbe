/**
 * Decode workers (src/io/dataset/load-workers.ts) load exactly what
 * loadInput loads on the main thread, for every kind of input, and a worker
 * that dies fails its loads with an error naming the input.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Rng } from '../../src/core/random';
import { enumerateInputs } from '../../src/io/dataset/inputs';
import { LoadWorkers, type LoadWorkerSettings } from '../../src/io/dataset/load-workers';
import { loadInputUnlabelled, type LoadResult } from '../../src/io/dataset/read';
import { RangeReader } from '../../src/io/dataset/tar';
import { PixelPool } from '../../src/pipeline/pixel-pool';
import { hugePngHeader, jpegBytes, makeImages, makeTar, pngBytes, tmpDir } from './helpers';

const S = 12;
const settings: LoadWorkerSettings = {
  image: { size: S, fit: 'pad', background: '#102030', kernel: 'lanczos3', maxPixels: 1 << 24, failOn: 'warning' },
  maxFileBytes: 5000,
  concurrency: 2,
  nice: 19,
};

let dir: string;
beforeAll(async () => {
  dir = await tmpDir('vtok-load-workers-');
  const rng = new Rng(3);
  await makeImages(dir, 6, 3); // PNGs with caption sidecars
  await fsp.writeFile(path.join(dir, 'photo.jpg'), await jpegBytes(rng, 30, 20));
  await fsp.writeFile(path.join(dir, 'photo.json'), '{"label": 4, "caption": "json"}');
  await fsp.writeFile(path.join(dir, 'cut.png'), (await pngBytes(rng)).subarray(0, 50));
  await fsp.writeFile(path.join(dir, 'empty.png'), '');
  await fsp.writeFile(path.join(dir, 'bomb.png'), hugePngHeader(20000, 20000));
  await fsp.writeFile(path.join(dir, 'big.png'), Buffer.concat([await pngBytes(rng), Buffer.alloc(6000)]));
  await fsp.writeFile(path.join(dir, 'notes.md'), 'not an image');
  await fsp.writeFile(path.join(dir, 'pack.tar'), makeTar([['m.png', await pngBytes(rng, 17, 9)], ['m.cls', Buffer.from('2')], ['n.jpg', Buffer.from('junk')]]));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/** A result without the pixel buffer's identity: what must agree. */
function plain(r: LoadResult): unknown {
  return r.ok ? { ...r.value, pixels: Array.from(r.value.pixels) } : r.skipped;
}

describe('LoadWorkers', () => {
  test.each([1, 2])('with %i workers, every input loads exactly as on the main thread (pixels, sha256, size, sidecars, skip reasons and messages)', async (count) => {
    const inputs = (await enumerateInputs([dir])).inputs.toArray();
    expect(inputs.length).toBe(14);
    const reader = new RangeReader();
    const here = await Promise.all(inputs.map((x) => loadInputUnlabelled(x, { ...settings, reader })));
    await reader.close();
    const pool = new PixelPool(S * S * 3);
    const workers = new LoadWorkers(count, settings, pool);
    try {
      expect(workers.count).toBe(count);
      await workers.whenReady();
      expect(workers.ready).toBe(true);
      const there = await Promise.all(inputs.map((x) => workers.load(x)));
      expect(workers.loaded).toBe(inputs.length);
      expect(there.map(plain)).toEqual(here.map(plain));
      // the variety is really there: good images, sidecar fields, and four kinds of skip
      expect(there.filter((r) => r.ok).length).toBe(8);
      expect(there.flatMap((r) => (r.ok ? [] : [`${r.skipped.key} ${r.skipped.reason}`]))).toEqual([
        'big.png too-large',
        'bomb.png too-large',
        'cut.png truncated',
        'empty.png zero-byte',
        'notes.md not-image',
        'pack.tar/n.jpg not-image',
      ]);
      expect(there.find((r) => r.ok && r.value.input.key === 'photo.jpg')).toMatchObject({ value: { fields: { label: 4, caption: 'json' } } });
      expect(there.find((r) => r.ok && r.value.input.key === 'pack.tar/m.png')).toMatchObject({ value: { fields: { label: 2 }, width: 17, height: 9 } });
      // pixels arrive in the pool's buffers, which can go back and be reused
      const good = there.filter((r): r is Extract<LoadResult, { ok: true }> => r.ok);
      for (const r of good) expect(r.value.pixels.length).toBe(S * S * 3);
      for (const r of good) pool.give(r.value.pixels);
      const again = await Promise.all(inputs.map((x) => workers.load(x)));
      expect(again.map(plain)).toEqual(here.map(plain));
      expect(pool.allocated).toBeLessThanOrEqual(2 * inputs.length);
    } finally {
      workers.close();
    }
  });

  test('a worker that dies fails its pending loads with an error naming the input; later loads fail too', async () => {
    const inputs = (await enumerateInputs([dir])).inputs.toArray();
    const workers = new LoadWorkers(1, settings, new PixelPool(S * S * 3));
    try {
      await workers.whenReady();
      workers.setFallback(() => Promise.reject(new Error('the fallback is only for workers that never started')));
      const slot = (workers as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }).slots[0];
      const pending = workers.load(inputs[0]);
      await slot.worker.terminate();
      await expect(pending).rejects.toThrow(`The decode worker stopped while loading ${inputs[0].source}`);
      await expect(workers.load(inputs[1])).rejects.toThrow(`The decode worker stopped while loading ${inputs[1].source}`);
    } finally {
      workers.close();
    }
  });

  test('a worker that stops before it is ready leaves its loads to the fallback, which loads the same', async () => {
    const inputs = (await enumerateInputs([dir])).inputs.toArray();
    const reader = new RangeReader();
    const here = (x: (typeof inputs)[number]): Promise<LoadResult> => loadInputUnlabelled(x, { ...settings, reader });
    const workers = new LoadWorkers(1, settings, new PixelPool(S * S * 3));
    const slot = (workers as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }).slots[0];
    let fallbackCalls = 0;
    workers.setFallback((x) => (fallbackCalls++, here(x)));
    try {
      const early = inputs.slice(0, 5).map((x) => workers.load(x)); // sent to a worker that never answers
      const waiting = workers.whenReady();
      await slot.worker.terminate();
      await expect(waiting).rejects.toThrow(/No decode worker started/);
      const late = inputs.slice(5).map((x) => workers.load(x)); // no worker left
      const all = await Promise.all([...early, ...late]);
      expect(workers.ready).toBe(false);
      expect(workers.loaded).toBe(0);
      expect(fallbackCalls).toBe(inputs.length);
      expect(all.map(plain)).toEqual((await Promise.all(inputs.map(here))).map(plain));
    } finally {
      workers.close();
      await reader.close();
    }
  });

  (process.platform === 'linux' ? test : test.skip)('the worker thread runs at the nice value asked for (Linux)', async () => {
    const niceOfThreads = async (): Promise<number[]> => {
      const tids = await fsp.readdir('/proc/self/task');
      const stats = await Promise.all(tids.map((t) => fsp.readFile(`/proc/self/task/${t}/stat`, 'utf8').catch(() => '')));
      // field 19 of stat is the nice value; the name (field 2) is in parentheses and may hold spaces
      return stats.filter((x) => x !== '').map((x) => Number(x.slice(x.lastIndexOf(')') + 2).split(' ')[16]));
    };
    expect(await niceOfThreads()).not.toContain(13);
    const workers = new LoadWorkers(1, { ...settings, nice: 13 }, new PixelPool(S * S * 3));
    try {
      await workers.whenReady();
      expect((await niceOfThreads()).filter((n) => n === 13)).toHaveLength(1);
    } finally {
      workers.close();
    }
  });

  test('bad settings are refused by name', () => {
    const pool = new PixelPool(3);
    expect(() => new LoadWorkers(0, settings, pool)).toThrow(/workers/);
    expect(() => new LoadWorkers(1, { ...settings, concurrency: 0 }, pool)).toThrow(/concurrency/);
    expect(() => new LoadWorkers(1, { ...settings, nice: 20 }, pool)).toThrow(/nice/);
  });
});

describe('loadInputUnlabelled into a buffer', () => {
  test('decodes into a buffer of size x size x 3 and returns it; a buffer of another length is left alone', async () => {
    const inputs = (await enumerateInputs([dir])).inputs.toArray();
    const reader = new RangeReader();
    let checked = 0;
    try {
      for (const input of inputs.filter((x) => /\.(png|jpg)$/.test(x.key) && x.problem === null)) {
        const expected = await loadInputUnlabelled(input, { ...settings, reader });
        if (!expected.ok) continue;
        checked++;
        const fits = new Float32Array(S * S * 3).fill(9);
        const into = await loadInputUnlabelled(input, { ...settings, reader }, fits);
        expect(into.ok && into.value.pixels).toBe(fits);
        expect(plain(into)).toEqual(plain(expected));
        const wrong = new Float32Array(S * S * 3 - 3).fill(9);
        const beside = await loadInputUnlabelled(input, { ...settings, reader }, wrong);
        expect(beside.ok && beside.value.pixels).not.toBe(wrong);
        expect(plain(beside)).toEqual(plain(expected));
        expect(wrong.every((v) => v === 9)).toBe(true);
      }
    } finally {
      await reader.close();
    }
    expect(checked).toBeGreaterThanOrEqual(5); // the PNGs (through the fast path) and the JPEG (through sharp)
  });
});
