import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { VtokError } from '../../src/core/errors';
import { tensorRecord } from '../../src/core/tensor-map';
import * as atomic from '../../src/io/atomic';
import { openStore } from '../../src/io/store';
import type { BundleInput } from '../../src/io/bundle';

// The real atomic writer, wrapped so a test can make one write fail the way a
// crash or a full disk would: half the bytes in a temporary file, then an error.
jest.mock('../../src/io/atomic', () => {
  const real = jest.requireActual('../../src/io/atomic');
  return { ...real, writeFileAtomic: jest.fn(real.writeFileAtomic) };
});
const writeFileAtomic = atomic.writeFileAtomic as jest.MockedFunction<typeof atomic.writeFileAtomic>;

/** Makes the next write whose target matches `pattern` die halfway, leaving its temporary file behind. */
function crashNextWrite(pattern: RegExp): void {
  const real = jest.requireActual('../../src/io/atomic').writeFileAtomic as typeof atomic.writeFileAtomic;
  writeFileAtomic.mockImplementation(async (target, data) => {
    if (!pattern.test(path.basename(target))) return real(target, data);
    writeFileAtomic.mockImplementation(real);
    const bytes = typeof data === 'string' ? Buffer.from(data) : data;
    await fsp.writeFile(path.join(path.dirname(target), `.${path.basename(target)}.999.deadbe.tmp`), bytes.subarray(0, bytes.length >> 1));
    throw new VtokError('IO', `Could not write ${target}: ENOSPC: no space left on device`, { subject: target });
  });
}

function bundle(seed: number): BundleInput {
  return {
    kind: 'tokenizer',
    name: `tok-${seed}`,
    config: { seed },
    tensors: { codebook: tensorRecord('float32', [2, 2], new Float32Array([seed, 1, 2, 3])) },
  };
}

async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of (await fsp.readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    out[f.name] = f.isDirectory() ? '<folder>' : (await fsp.readFile(path.join(dir, f.name))).toString('base64');
  }
  return out;
}

describe('put is atomic', () => {
  afterEach(() => writeFileAtomic.mockImplementation(jest.requireActual('../../src/io/atomic').writeFileAtomic));

  it('a write that dies mid-way leaves no <id>.vtok and refs.json as it was; the store still works', async () => {
    const store = openStore(await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-atomic-store-')));
    const old = await store.put(bundle(1), { name: 'default' });
    const before = await snapshot(store.dir);

    crashNextWrite(/\.vtok$/);
    await expect(store.put(bundle(2), { name: 'default' })).rejects.toThrow('no space left on device');
    const after = await snapshot(store.dir);
    const leftovers = Object.keys(after).filter((f) => !(f in before));
    expect(leftovers).toHaveLength(1);
    expect(leftovers[0]).toMatch(/^\.[0-9a-f]{64}\.vtok\.999\.deadbe\.tmp$/); // the half-written temp file only
    for (const f of Object.keys(before)) expect(after[f]).toBe(before[f]); // refs.json and the old bundle unchanged
    expect(await store.ids()).toEqual([old]);
    expect((await store.get('default')).id).toBe(old);
    expect((await store.list()).map((e) => e.id)).toEqual([old]);
    const report = await store.verify();
    expect(report.strays).toEqual([path.join(store.dir, leftovers[0])]);
    expect(report.entries.every((e) => e.ok)).toBe(true);

    // Trying again succeeds.
    const id = await store.put(bundle(2), { name: 'default' });
    expect((await store.get('default')).id).toBe(id);
  });

  it('when the names cannot be written the bundle is on disk but refs.json is unchanged', async () => {
    const store = openStore(await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-atomic-store-')));
    const old = await store.put(bundle(1), { name: 'default' });
    const refsBefore = await fsp.readFile(path.join(store.dir, 'refs.json'), 'utf8');
    crashNextWrite(/^refs\.json$/);
    await expect(store.put(bundle(2), { name: 'default' })).rejects.toMatchObject({ code: 'IO' });
    expect(await fsp.readFile(path.join(store.dir, 'refs.json'), 'utf8')).toBe(refsBefore);
    expect((await store.get('default')).id).toBe(old);
    expect(await store.ids()).toHaveLength(2); // the new bundle is complete, only unnamed
    expect((await fsp.readdir(store.dir)).includes('refs.lock')).toBe(false); // the lock is released
  });

  it('a real failure of the rename (a folder in the way) leaves nothing half-written', async () => {
    const store = openStore(await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-atomic-store-')));
    await store.put(bundle(1), { name: 'default' });
    const { encodeBundle } = jest.requireActual('../../src/io/bundle') as typeof import('../../src/io/bundle');
    const blocked = store.pathOf(encodeBundle(bundle(2)).id);
    await fsp.mkdir(blocked);
    const before = await snapshot(store.dir);
    expect(Object.keys(before)).toHaveLength(3);
    await expect(store.put(bundle(2), { name: 'default' })).rejects.toMatchObject({ code: 'IO', message: expect.stringContaining(`Could not write ${blocked}`) });
    expect(await snapshot(store.dir)).toEqual(before);
  });
});
