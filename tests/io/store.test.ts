import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tensorRecord } from '../../src/core/tensor-map';
import { encodeBundle, type BundleInput } from '../../src/io/bundle';
import { checkName, configSummary, defaultStoreDir, openStore, openStoreSet, shippedStoreDir } from '../../src/io/store';

async function tmpDir(): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-store-'));
}

function bundle(seed: number, extra: Partial<BundleInput> = {}): BundleInput {
  const w = new Float32Array(12);
  for (let i = 0; i < w.length; i++) w[i] = Math.sin(seed * 100 + i);
  return {
    kind: 'tokenizer',
    name: `tok-${seed}`,
    createdAt: new Date(Date.UTC(2025, 0, 1 + seed)).toISOString(),
    config: { codebookSize: 4, dim: 3, seed, layers: [1, 2] },
    tensors: { codebook: tensorRecord('float32', [4, 3], w) },
    ...extra,
  };
}

const readRefs = async (dir: string): Promise<unknown> => JSON.parse(await fsp.readFile(path.join(dir, 'refs.json'), 'utf8'));

describe('store put/get', () => {
  it('round-trips a bundle by id, by name and by an 8-digit prefix', async () => {
    const store = openStore(path.join(await tmpDir(), 'nested', 'store')); // made on first put
    const id = await store.put(bundle(1), { name: 'default' });
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(await fsp.readdir(store.dir)).toEqual(['refs.json', `${id}.vtok`].sort());
    for (const ref of [id, 'default', id.slice(0, 8), id.slice(0, 20).toUpperCase()]) {
      const b = await store.get(ref);
      expect(b.id).toBe(id);
      expect(b.tensors.codebook.data).toEqual(bundle(1).tensors.codebook.data);
    }
    expect(await readRefs(store.dir)).toEqual({ format: 'vtok-refs', version: 1, refs: { default: id } });
  });

  it('putting the same content again is a no-op (file untouched); a damaged copy is repaired', async () => {
    const store = openStore(await tmpDir());
    const id = await store.put(bundle(2));
    const file = store.pathOf(id);
    const before = await fsp.stat(file);
    await new Promise((r) => setTimeout(r, 20));
    expect(await store.put({ ...bundle(2), name: 'other name', meta: { note: 'not part of the id' } })).toBe(id);
    const after = await fsp.stat(file);
    expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
    expect((await store.get(id)).name).toBe('tok-2'); // first write wins...
    await store.put({ ...bundle(2), meta: { note: 'new' } }, { replace: true });
    expect((await store.get(id)).meta).toEqual({ note: 'new' }); // ...unless replace

    const bytes = await fsp.readFile(file);
    bytes[bytes.length - 1] ^= 1;
    await fsp.writeFile(file, bytes);
    await expect(store.get(id)).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
    await store.put(bundle(2));
    expect((await store.get(id)).id).toBe(id);
  });

  it('a file that does not hold the id it is named by is STORE_MISMATCH', async () => {
    const store = openStore(await tmpDir());
    const id = await store.put(bundle(3));
    const fake = 'f'.repeat(64);
    await fsp.copyFile(store.pathOf(id), store.pathOf(fake));
    await expect(store.get(fake)).rejects.toMatchObject({
      code: 'STORE_MISMATCH',
      message: `Bundle ${store.pathOf(fake)} holds ${id}, not the requested ${fake}`,
    });
    await expect(store.info(fake)).rejects.toMatchObject({ code: 'STORE_MISMATCH' });
  });
});

describe('refs and prefixes', () => {
  it('a name whose bundle file is missing is STORE_NOT_FOUND saying so', async () => {
    const store = openStore(await tmpDir());
    const id = await store.put(bundle(8), { name: 'default' });
    await fsp.rm(store.pathOf(id));
    await expect(store.get('default')).rejects.toMatchObject({
      code: 'STORE_NOT_FOUND',
      message: `Name "default" in store ${store.dir} points at ${id}, but ${store.pathOf(id)} is missing`,
    });
  });

  it('a loaded bundle can be changed and put back: its old id is ignored, the new one computed', async () => {
    const store = openStore(await tmpDir());
    const id = await store.put(bundle(9));
    const b = await store.get(id);
    expect(await store.put(b)).toBe(id);
    b.tensors.codebook.data[0] += 1;
    const child = await store.put({ ...b, parents: [id] });
    expect(child).not.toBe(id);
    expect((await store.get(child)).parents).toEqual([id]);
  });

  it('an ambiguous prefix lists the candidates; a longer one resolves', async () => {
    const store = openStore(await tmpDir());
    await fsp.mkdir(store.dir, { recursive: true });
    const a = 'abcdef12' + '0'.repeat(56);
    const b = 'abcdef12' + '1'.repeat(56);
    for (const id of [a, b]) await fsp.writeFile(store.pathOf(id), '');
    await expect(store.resolve('abcdef12')).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: `Bundle prefix "abcdef12" is ambiguous in ${store.dir}: it matches ${a}, ${b}; give more digits`,
    });
    expect(await store.resolve('abcdef121')).toBe(b);
  });

  it('short prefixes, unknown names and bad names are clear errors', async () => {
    const store = openStore(await tmpDir());
    const id = await store.put(bundle(4), { name: 'small' });
    await expect(store.resolve(id.slice(0, 7))).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: `Bundle id prefix "${id.slice(0, 7)}" is too short: give at least 8 hex digits (or a name)`,
    });
    await expect(store.resolve('large')).rejects.toMatchObject({
      code: 'STORE_NOT_FOUND',
      message: `No bundle "large" in ${store.dir}; names are small`,
    });
    await expect(store.resolve('0'.repeat(64))).rejects.toMatchObject({ code: 'STORE_NOT_FOUND' });
    for (const bad of ['deadbeef', '-x', 'a b', '', 'x'.repeat(129)]) {
      await expect(store.put(bundle(4), { name: bad })).rejects.toMatchObject({ code: 'INVALID_INPUT', subject: 'name' });
    }
    expect(checkName('cafe')).toBe('cafe'); // fewer than 8 hex digits cannot be a prefix
    expect(checkName('default-256.v2')).toBe('default-256.v2');
  });

  it('names move, are removed, and remove() takes the bundle and all its names', async () => {
    const store = openStore(await tmpDir());
    const one = await store.put(bundle(5), { name: 'default' });
    const two = await store.put(bundle(6), { name: 'default' }); // moves 'default'
    await store.setName('old', one);
    await store.setName('also-two', two.slice(0, 10));
    expect(await store.refs()).toEqual({ default: two, old: one, 'also-two': two });
    expect(await store.removeName('old')).toBe(one);
    await expect(store.removeName('old')).rejects.toMatchObject({ code: 'STORE_NOT_FOUND' });
    expect(await store.remove('default')).toEqual({ id: two, names: ['also-two', 'default'] });
    expect(await store.refs()).toEqual({});
    expect(await store.ids()).toEqual([one]);
    expect(await fsp.readdir(store.dir)).not.toContain('refs.lock');
  });

  it('a damaged refs.json is STORE_CORRUPT naming it', async () => {
    const store = openStore(await tmpDir());
    await store.put(bundle(7), { name: 'x' });
    const file = path.join(store.dir, 'refs.json');
    await fsp.writeFile(file, '{"format":"vtok-refs","version":1,"refs":{"x":"123"}}');
    await expect(store.refs()).rejects.toMatchObject({
      code: 'STORE_CORRUPT',
      message: `Could not read ${file}: name "x" points at "123" of type string, which is not a bundle id`,
    });
    await fsp.writeFile(file, '{"format":"vtok-refs"');
    await expect(store.get('x')).rejects.toMatchObject({ code: 'STORE_CORRUPT', subject: file });
  });
});

describe('list and verify', () => {
  it('lists entries newest first with names, kind and a config summary; an empty or absent store lists nothing', async () => {
    expect(await openStore(path.join(await tmpDir(), 'absent')).list()).toEqual([]);
    const store = openStore(await tmpDir());
    const a = await store.put(bundle(1), { name: 'first' });
    const b = await store.put(bundle(3, { kind: 'bpe' }));
    const list = await store.list();
    expect(list.map((e) => [e.id, e.names, e.kind, e.name])).toEqual([
      [b, [], 'bpe', 'tok-3'],
      [a, ['first'], 'tokenizer', 'tok-1'],
    ]);
    expect(list[1]).toMatchObject({
      store: store.dir,
      file: store.pathOf(a),
      createdAt: '2025-01-02T00:00:00.000Z',
      summary: 'codebookSize=4 dim=3 seed=1',
      tensors: 1,
      parameters: 12,
      size: (await fsp.stat(store.pathOf(a))).size,
    });
  });

  it('verify reports one damaged entry among good ones, a dangling name and leftovers of interrupted writes', async () => {
    const store = openStore(await tmpDir());
    const ids = [await store.put(bundle(1), { name: 'one' }), await store.put(bundle(2), { name: 'two' }), await store.put(bundle(3))];
    expect((await store.verify()).ok).toBe(true);
    const damaged = ids[1];
    const bytes = await fsp.readFile(store.pathOf(damaged));
    bytes[bytes.length >> 1] ^= 0xff;
    await fsp.writeFile(store.pathOf(damaged), bytes);
    const gone = 'e'.repeat(64);
    await store.setName('gone', ids[2]);
    const refs = await store.refs();
    await fsp.writeFile(path.join(store.dir, 'refs.json'), JSON.stringify({ format: 'vtok-refs', version: 1, refs: { ...refs, gone } }));
    await fsp.writeFile(path.join(store.dir, `.${ids[0]}.vtok.123.abcdef.tmp`), 'partial');
    await fsp.writeFile(path.join(store.dir, 'copy.vtok'), 'misnamed');

    const report = await store.verify();
    expect(report.ok).toBe(false);
    expect(report.entries.map((e) => [e.id, e.ok, e.code])).toEqual(
      [...ids].sort().map((id) => [id, id !== damaged, id === damaged ? 'STORE_CORRUPT' : undefined]),
    );
    expect(report.entries.find((e) => e.id === damaged)?.message).toContain(store.pathOf(damaged));
    expect(report.danglingRefs).toEqual([{ name: 'gone', id: gone }]);
    expect(report.strays.sort()).toEqual([path.join(store.dir, `.${ids[0]}.vtok.123.abcdef.tmp`), path.join(store.dir, 'copy.vtok')].sort());
    expect((await store.verify('one')).ok).toBe(true);
    expect((await store.verify('two')).entries).toMatchObject([{ id: damaged, ok: false, names: ['two'] }]);

    // A listing still shows everything (the damage here is in the data section, which a listing does not read);
    // damage to the header shows as an error entry.
    const head = await fsp.readFile(store.pathOf(ids[0]));
    head[40] ^= 1;
    await fsp.writeFile(store.pathOf(ids[0]), head);
    const list = await store.list();
    expect(list).toHaveLength(3);
    expect(list.find((e) => e.id === ids[0])).toMatchObject({ names: ['one'], error: { code: 'STORE_CORRUPT' } });
    expect(await store.get(ids[2])).toMatchObject({ id: ids[2] });
  });
});

describe('store search path', () => {
  it('the user store comes from the option, else VTOK_STORE, else ~/.vtok/store', () => {
    expect(defaultStoreDir({ store: '/a/b', env: { VTOK_STORE: '/c' } })).toBe('/a/b');
    expect(defaultStoreDir({ env: { VTOK_STORE: '/c' } })).toBe('/c');
    expect(defaultStoreDir({ env: { VTOK_STORE: '' } })).toBe(path.join(os.homedir(), '.vtok', 'store'));
    expect(defaultStoreDir({ env: {} })).toBe(path.join(os.homedir(), '.vtok', 'store'));
    expect(defaultStoreDir({ store: '', env: { VTOK_STORE: '/c' } })).toBe('/c');
    expect(defaultStoreDir({ store: '~/x', env: {} })).toBe(path.join(os.homedir(), 'x'));
    expect(defaultStoreDir({ store: 'rel', env: {} })).toBe(path.resolve('rel'));
  });

  it("the shipped store is the repository's codebooks/ folder", () => {
    expect(shippedStoreDir()).toBe(path.resolve(__dirname, '../../codebooks'));
  });

  it('names come from the user store first, ids from either; writes go to the user store only', async () => {
    const userDir = await tmpDir();
    const shippedDir = await tmpDir();
    const shippedId = await openStore(shippedDir).put(bundle(1), { name: 'default' });
    const set = openStoreSet({ store: userDir, shipped: shippedDir });
    const shipped = set.stores[1];
    expect(shipped.readOnly).toBe(true);

    expect((await set.resolve('default')).id).toBe(shippedId);
    expect((await set.resolve(shippedId.slice(0, 8))).store.dir).toBe(shippedDir);
    const userId = await set.put(bundle(2), { name: 'default' }); // overrides the shipped 'default'
    expect((await set.get('default')).id).toBe(userId);
    expect((await set.get(shippedId)).id).toBe(shippedId);
    expect(await fsp.readdir(shippedDir)).toEqual(['refs.json', `${shippedId}.vtok`].sort());

    // a user name for a shipped bundle
    await fsp.writeFile(path.join(userDir, 'refs.json'), JSON.stringify({ format: 'vtok-refs', version: 1, refs: { default: userId, base: shippedId } }));
    expect(await set.resolve('base')).toMatchObject({ id: shippedId, store: shipped });

    // the same bundle in both is listed once, from the user store
    await set.put(bundle(1));
    const list = await set.list();
    expect(list.map((e) => [e.id, e.store])).toEqual(
      expect.arrayContaining([
        [userId, userDir],
        [shippedId, userDir],
      ]),
    );
    expect(list).toHaveLength(2);

    await expect(shipped.put(bundle(3))).rejects.toMatchObject({
      code: 'IO',
      message: `Cannot add a bundle to store ${shippedDir}: it is read-only (the shipped codebooks)`,
    });
    await expect(shipped.remove(shippedId)).rejects.toMatchObject({ code: 'IO' });
    expect((await set.verify()).map((r) => [r.store, r.ok])).toEqual([
      [userDir, true],
      [shippedDir, true],
    ]);
  });

  it('the same folder as user and shipped store is opened once, writable', async () => {
    const dir = await tmpDir();
    const set = openStoreSet({ store: dir, shipped: dir });
    expect(set.stores.map((s) => [s.dir, s.readOnly])).toEqual([[dir, false]]);
    expect(openStoreSet({ store: dir, shipped: false }).stores).toHaveLength(1);
  });
});

describe('configSummary', () => {
  it('shows scalar values only, cut to the width', () => {
    expect(configSummary({ a: 1, b: 'x', c: [1, 2], d: { e: 1 }, f: true, g: null })).toBe('a=1 b=x f=true g=null');
    expect(configSummary({ long: 'y'.repeat(100) }, 20)).toBe('long=yyyyyyyyyyyy...');
  });
});

describe('a large bundle', () => {
  it('stores 4 MB of float32 weights bit-exactly (raw bytes, not number lists: the file is barely larger than the data)', async () => {
    const store = openStore(await tmpDir());
    const w = new Float32Array(1 << 20);
    for (let i = 0; i < w.length; i++) w[i] = Math.fround(Math.sin(i) * 1e3);
    const id = await store.put({ kind: 'tokenizer', name: 'big', config: {}, tensors: { w: tensorRecord('float32', [1024, 1024], w) } });
    expect((await fsp.stat(store.pathOf(id))).size - w.byteLength).toBeLessThan(512);
    const b = await store.get(id);
    expect(Buffer.from(b.tensors.w.data.buffer).equals(Buffer.from(w.buffer))).toBe(true);
    expect(encodeBundle({ kind: 'tokenizer', name: 'other', config: {}, tensors: { w: tensorRecord('float32', [1024, 1024], w) } }).id).toBe(id);
  });
});
