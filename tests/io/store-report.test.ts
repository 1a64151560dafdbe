import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { tensorRecord } from '../../src/core/tensor-map';
import { openStore } from '../../src/io/store';
import { formatBytes, formatStoreList, formatStoreShow, formatStoreVerify, storeList, storeShow, storeVerify } from '../../src/io/store-report';

async function stores(): Promise<{ user: string; shipped: string; ids: { mine: string; shipped: string } }> {
  const user = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-report-user-'));
  const shipped = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-report-shipped-'));
  const shippedId = await openStore(shipped).put(
    {
      kind: 'tokenizer',
      name: 'default-4',
      createdAt: '2025-01-01T00:00:00.000Z',
      config: { codebookSize: 4, dim: 2 },
      tensors: {
        'pixel/codebook': tensorRecord('float32', [4, 2], new Float32Array(8)),
        'semantic/codebook': tensorRecord('float32', [4, 3], new Float32Array(12)),
      },
      bpe: { merges: new Int32Array(6) },
      meta: { card: { steps: 10 }, usage: new Float32Array([NaN, 1]) },
    },
    { name: 'default' },
  );
  const mine = await openStore(user).put(
    { kind: 'bpe', name: 'mine', createdAt: '2025-02-01T00:00:00.000Z', config: { merges: 2 }, tensors: {}, parents: [shippedId] },
    { name: 'mine' },
  );
  return { user, shipped, ids: { mine, shipped: shippedId } };
}

/** What --json prints must be plain JSON: no typed arrays, no undefined, no NaN numbers sneaking through as objects. */
const jsonRoundTrip = (x: unknown): unknown => JSON.parse(JSON.stringify(x));

describe('store commands as library functions', () => {
  it('storeList: both stores, newest first, JSON-able, and a table for people', async () => {
    const s = await stores();
    const r = await storeList(s.user, { shipped: s.shipped });
    expect(jsonRoundTrip(r)).toEqual(r);
    expect(r.stores).toEqual([
      { dir: s.user, role: 'user', readOnly: false },
      { dir: s.shipped, role: 'shipped', readOnly: true },
    ]);
    expect(r.entries.map((e) => [e.id, e.names, e.store])).toEqual([
      [s.ids.mine, ['mine'], s.user],
      [s.ids.shipped, ['default'], s.shipped],
    ]);
    const text = formatStoreList(r);
    expect(text).toContain(`user store: ${s.user}`);
    expect(text).toContain(`shipped store: ${s.shipped} (read-only)`);
    const row = text.split('\n').find((l) => l.startsWith(s.ids.shipped.slice(0, 12)));
    expect(row?.split(/\s{2,}/)).toEqual([s.ids.shipped.slice(0, 12), 'default', 'tokenizer', 'default-4', expect.stringMatching(/^\d+ B$/), '2025-01-01 00:00', 'shipped', 'codebookSize=4 dim=2']);
  });

  it('storeShow: header, config, tensor table and metadata without reading the data', async () => {
    const s = await stores();
    const r = await storeShow(s.user, 'default', { shipped: s.shipped });
    expect(jsonRoundTrip(r)).toEqual({ ...r, meta: { card: { steps: 10 }, usage: { $typed: 'float32', length: 2 } } });
    expect(r).toMatchObject({
      id: s.ids.shipped,
      store: s.shipped,
      names: ['default'],
      kind: 'tokenizer',
      format: 'vtok-bundle 1.0',
      parameters: 20,
      config: { codebookSize: 4, dim: 2 },
      bpe: { merges: { $typed: 'int32', length: 6 } },
      tensors: [
        { name: 'pixel/codebook', dtype: 'float32', shape: [4, 2], size: 8 },
        { name: 'semantic/codebook', dtype: 'float32', shape: [4, 3], size: 12 },
      ],
    });
    const text = formatStoreShow(r);
    expect(text).toContain(`id        ${s.ids.shipped}`);
    expect(text).toMatch(/ {2}semantic\/codebook +float32 +\[4, 3\]/);
    expect(text).toContain('tensors   2, 20 values, 80 B');
    const child = await storeShow(s.user, s.ids.mine.slice(0, 8), { shipped: s.shipped });
    expect(formatStoreShow(child)).toContain(`parents   ${s.ids.shipped}`);
  });

  it('storeVerify: ok for good stores, names the damaged bundle otherwise', async () => {
    const s = await stores();
    const good = await storeVerify(s.user, undefined, { shipped: s.shipped });
    expect(good.ok).toBe(true);
    expect(jsonRoundTrip(good)).toEqual(good);
    expect(formatStoreVerify(good)).toMatch(/all bundles verified$/);

    const file = path.join(s.shipped, `${s.ids.shipped}.vtok`);
    const bytes = await fsp.readFile(file);
    bytes[bytes.length - 5] ^= 4;
    await fsp.writeFile(file, bytes);
    const bad = await storeVerify(s.user, undefined, { shipped: s.shipped });
    expect(bad.ok).toBe(false);
    expect(bad.reports.map((r) => r.ok)).toEqual([true, false]);
    const text = formatStoreVerify(bad);
    expect(text).toContain(`  DAMAGED  ${s.ids.shipped} (default): Could not read vtok bundle ${file}: the content is damaged`);
    expect(text).toMatch(/verification FAILED$/);
    const one = await storeVerify(s.user, 'mine', { shipped: s.shipped });
    expect(one.ok).toBe(true);
    expect(one.reports).toHaveLength(1);
  });

  it('formatBytes', () => {
    expect([0, 1023, 1024, 1536, 20 * 1024 * 1024, 300 * 1024 ** 3].map(formatBytes)).toEqual(['0 B', '1023 B', '1.0 KB', '1.5 KB', '20.0 MB', '300 GB']);
  });
});
