import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { enumerateInputs, keysDigest } from '../../src/io/dataset/inputs';
import { listTar } from '../../src/io/dataset/tar';
import { loadLabelMap, lookupLabels } from '../../src/io/dataset/labels';
import { makeTar, tmpDir } from './helpers';

async function touch(dir: string, rel: string, content: string | Buffer = 'x'): Promise<void> {
  await fsp.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
  await fsp.writeFile(path.join(dir, rel), content);
}

describe('enumerateInputs', () => {
  let root: string;
  beforeAll(async () => {
    root = await tmpDir('vtok-inputs-');
    for (const rel of ['d/b.png', 'd/a.jpg', 'd/a.txt', 'd/sub/c.PNG', 'd/sub/c.json', 'd/notes.md', 'd/orphan.txt', 'd/.hidden.png', 'd/.git/x.png', 'd/w.seg.png', 'd/w.cls']) {
      await touch(root, rel);
    }
  });
  afterAll(() => fsp.rm(root, { recursive: true, force: true }));

  test('a folder: keys relative to it, sorted, sidecars attached, other files marked not-image, hidden ignored', async () => {
    const set = await enumerateInputs([path.join(root, 'd')]);
    const inputs = set.inputs.toArray();
    const digest = set.digest;
    expect(inputs.map((x) => x.key)).toEqual(['a.jpg', 'b.png', 'notes.md', 'orphan.txt', 'sub/c.PNG', 'w.seg.png']);
    const by = Object.fromEntries(inputs.map((x) => [x.key, x]));
    expect(by['a.jpg'].sidecars.map((s) => s.ext)).toEqual(['txt']);
    expect(by['sub/c.PNG'].sidecars.map((s) => s.ext)).toEqual(['json']);
    expect(by['w.seg.png'].sidecars.map((s) => s.ext)).toEqual(['cls']); // WebDataset: grouped by the first dot
    expect(by['b.png'].sidecars).toEqual([]);
    expect(by['notes.md'].problem?.reason).toBe('not-image');
    expect(by['orphan.txt'].problem?.message).toMatch(/no image of the same name/);
    expect(by['a.jpg'].problem).toBeNull();
    expect(digest).toBe(keysDigest(inputs.map((x) => x.key)));
    // without sidecars: the same inputs, no sidecars read
    const plain = await enumerateInputs([path.join(root, 'd')], { sidecars: false, exclude: [] });
    expect(plain.inputs.toArray().map((x) => x.key)).toEqual(inputs.map((x) => x.key));
    expect(plain.inputs.toArray().every((x) => x.sidecars.length === 0)).toBe(true);
  });

  test('globs, single files and file lists; order does not depend on argument order', async () => {
    const g = await enumerateInputs([path.join(root, 'd/**/*.{png,PNG}')]);
    expect(g.inputs.toArray().map((x) => x.key)).toEqual(['b.png', 'sub/c.PNG', 'w.seg.png']);
    const list = path.join(root, 'list.txt');
    await fsp.writeFile(list, '# images\nd/b.png\n\n./d/a.jpg\nd/missing.png\n');
    const l = await enumerateInputs([`@${list}`]);
    expect(l.inputs.toArray().map((x) => x.key)).toEqual(['d/a.jpg', 'd/b.png', 'd/missing.png']);
    expect(l.inputs.get(0).sidecars.map((s) => s.ext)).toEqual(['txt']);
    expect(l.inputs.get(2).problem).toEqual({ reason: 'unreadable', code: 'FILE_NOT_FOUND', message: `Could not read ${path.join(root, 'd/missing.png')}: no such file` });
    const l2 = await enumerateInputs([list]); // a .txt file given as input is a list too
    expect(l2.digest).toBe(l.digest);
    const a = await enumerateInputs([path.join(root, 'd/b.png'), path.join(root, 'd/a.jpg')]);
    const b = await enumerateInputs([path.join(root, 'd/a.jpg'), path.join(root, 'd/b.png')]);
    expect(a.inputs.toArray().map((x) => x.key)).toEqual(['a.jpg', 'b.png']);
    expect(a.digest).toBe(b.digest);
  });

  test('colliding keys, missing inputs and empty globs are errors that name the culprits', async () => {
    await touch(root, 'e/b.png');
    await expect(enumerateInputs([path.join(root, 'd'), path.join(root, 'e')])).rejects.toThrow(
      `Two inputs have the key "b.png": ${path.join(root, 'd/b.png')} and ${path.join(root, 'e/b.png')}; keys must be unique`,
    );
    await expect(enumerateInputs([path.join(root, 'nope')])).rejects.toThrow(`Could not find input ${path.join(root, 'nope')}: no such file or folder`);
    await expect(enumerateInputs([path.join(root, 'd/*.gif')])).rejects.toThrow(`The input pattern ${path.join(root, 'd/*.gif')} matches no files`);
  });

  test('tar archives: members as keys under the archive, sidecars inside, links and truncation marked', async () => {
    const tar = makeTar([
      ['000002.jpg', Buffer.from('jpegdata')],
      ['000001.png', Buffer.from('pngdata')],
      ['000001.txt', Buffer.from('a caption')],
      ['./000001.cls', Buffer.from('4')],
      ['sub/000003.webp', Buffer.alloc(1000, 7)],
    ]);
    await touch(root, 't/shard-000.tar', tar);
    const members = await listTar(path.join(root, 't/shard-000.tar'));
    expect(members.map((m) => [m.name, m.size])).toEqual([
      ['000002.jpg', 8],
      ['000001.png', 7],
      ['000001.txt', 9],
      ['000001.cls', 1],
      ['sub/000003.webp', 1000],
    ]);
    const bytes = await fsp.readFile(path.join(root, 't/shard-000.tar'));
    expect(bytes.subarray(members[4].offset, members[4].offset + 1000).every((b) => b === 7)).toBe(true);
    const inputs = (await enumerateInputs([path.join(root, 't')])).inputs.toArray();
    expect(inputs.map((x) => x.key)).toEqual(['shard-000.tar/000001.png', 'shard-000.tar/000002.jpg', 'shard-000.tar/sub/000003.webp']);
    expect(inputs[0].source).toBe(`${path.join(root, 't/shard-000.tar')}:000001.png`);
    expect(inputs[0].sidecars.map((s) => s.ext).sort()).toEqual(['cls', 'txt']);
    // a cut archive: the last member's data is incomplete
    await touch(root, 'cut.tar', tar.subarray(0, members[4].offset + 100));
    const cut = await enumerateInputs([path.join(root, 'cut.tar')]);
    expect(cut.inputs.toArray().find((x) => x.key.endsWith('000003.webp'))?.problem?.reason).toBe('truncated');
    // not a tar, compressed tar
    await touch(root, 'fake.tar', Buffer.alloc(1024, 65));
    await expect(enumerateInputs([path.join(root, 'fake.tar')])).rejects.toThrow(/not a tar archive, or damaged at byte 0 \(header checksum mismatch\)/);
    await touch(root, 'z.tar.gz', 'x');
    await expect(enumerateInputs([path.join(root, 'z.tar.gz')])).rejects.toThrow(/compressed tar archives are not supported/);
  });

  test('paths, sources and sidecars are derived from keys exactly, whatever the spelling of the inputs', async () => {
    const dir = path.join(root, 'x');
    await touch(dir, 'p.png');
    await touch(dir, 'p.TXT', 'upper-case extension');
    await touch(dir, 'q.r.png');
    await touch(dir, 'q.json', '{}');
    await touch(dir, 'q.r.cls', '1');
    const list = path.join(root, 'x-list.txt');
    await fsp.writeFile(list, `x//p.png\n${dir}//q.r.png\nx\\nope.png\n`);
    const listed = (await enumerateInputs([`@${list}`])).inputs;
    // An absolute line keeps its spelling as the path ('//'), and on POSIX a backslash is part of a name; keys are normalized.
    expect(listed.toArray().map((x) => [x.key, x.file, x.source, x.sidecars.map((s) => s.file), x.problem?.message ?? null])).toEqual([
      [path.join(dir, 'q.r.png'), `${dir}//q.r.png`, `${dir}//q.r.png`, [`${dir}/q.r.cls`], null],
      ['x/nope.png', path.join(root, 'x\\nope.png'), path.join(root, 'x\\nope.png'), [], `Could not read ${path.join(root, 'x\\nope.png')}: no such file`],
      ['x/p.png', path.join(dir, 'p.png'), path.join(dir, 'p.png'), [], null], // beside a listed file only the exact names count: p.txt, not p.TXT
    ]);
    // tar members: sidecar bytes located inside the archive
    const tar = makeTar([
      ['a.png', Buffer.from('png')],
      ['a.TXT', Buffer.from('caption')],
    ]);
    await touch(root, 'y/s.tar', tar);
    const members = await listTar(path.join(root, 'y/s.tar'));
    const [a] = (await enumerateInputs([path.join(root, 'y')])).inputs.toArray();
    expect(a.sidecars).toEqual([{ file: path.join(root, 'y/s.tar'), offset: members[1].offset, size: 7, member: true, ext: 'txt', name: `${path.join(root, 'y/s.tar')}:a.TXT` }]);
  });

  test('a list of 150,000 inputs (past where pushing a spread list overflows the stack)', async () => {
    const list = path.join(root, 'big.txt');
    const n = 150_000;
    await fsp.writeFile(list, Array.from({ length: n }, (_, i) => `gone/${String(n - i).padStart(6, '0')}.png\n`).join(''));
    const { inputs, digest } = await enumerateInputs([`@${list}`]);
    expect(inputs.length).toBe(n);
    expect([inputs.key(0), inputs.key(n - 1)]).toEqual(['gone/000001.png', `gone/${n}.png`]);
    expect(inputs.get(n - 1).problem?.message).toBe(`Could not read ${path.join(root, `gone/${n}.png`)}: no such file`);
    const keys: string[] = [];
    for (let i = 0; i < n; i++) keys.push(`gone/${String(i + 1).padStart(6, '0')}.png`);
    expect(digest).toBe(keysDigest(keys));
  });

  test('parts of the list and indices', async () => {
    const { inputs } = await enumerateInputs([path.join(root, 'd')]);
    const keys = inputs.toArray().map((x) => x.key);
    for (const n of [1, 2, 4, 7]) {
      for (let i = 0; i < n; i++) {
        const p = inputs.part(i, n);
        expect(p.toArray().map((x) => x.key)).toEqual(keys.filter((_, j) => j % n === i));
        expect(p.length === 0 ? [] : [p.key(p.length - 1)]).toEqual(keys.filter((_, j) => j % n === i).slice(-1));
      }
    }
    expect(inputs.part(1, 2).part(1, 2).toArray().map((x) => x.key)).toEqual(keys.filter((_, j) => j % 4 === 3));
    expect(() => inputs.get(keys.length)).toThrow(`Input index ${keys.length} is outside 0..${keys.length - 1}`);
    expect(() => inputs.key(-1)).toThrow(RangeError);
    expect(() => inputs.part(2, 2)).toThrow('Part 2 of 2 does not exist');
  });

  test('labels from CSV and JSONL mapping files', async () => {
    const csv = path.join(root, 'labels.csv');
    await fsp.writeFile(csv, 'path,label,caption\nd/a.jpg,cat,"a cat, asleep"\nd/b,dog,\n');
    const { map, sha256 } = await loadLabelMap(csv);
    expect(sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(lookupLabels(map, 'd/a.jpg')).toEqual({ label: 'cat', caption: 'a cat, asleep' });
    expect(lookupLabels(map, 'd/b.png')).toEqual({ label: 'dog' }); // key without extension
    expect(lookupLabels(map, 'd/c.png')).toBeUndefined();
    const jsonl = path.join(root, 'labels.jsonl');
    await fsp.writeFile(jsonl, '{"key": "x.png", "label": 3}\n\n{"key": "y.png", "text": "why"}\n');
    expect(lookupLabels((await loadLabelMap(jsonl)).map, 'y.png')).toEqual({ caption: 'why' });
    await fsp.writeFile(jsonl, '{"key": "x.png", "label": 3}\n{"key": "x.png", "label": 4}\n');
    await expect(loadLabelMap(jsonl)).rejects.toThrow(`Labels file ${jsonl} line 2: key "x.png" appears twice`);
    // CRLF line ends; line numbers count blank lines
    await fsp.writeFile(jsonl, '{"key": "x.png", "label": 3}\r\n\r\n{"key": "z.png", "caption": "zed"}\r\n');
    expect(lookupLabels((await loadLabelMap(jsonl)).map, 'z.png')).toEqual({ caption: 'zed' });
    await fsp.writeFile(jsonl, '{"key": "x.png"}\n\n{oops}');
    await expect(loadLabelMap(jsonl)).rejects.toThrow(`Labels file ${jsonl} line 3: not valid JSON`);
    await fsp.writeFile(csv, 'name,score\na,1\n');
    await expect(loadLabelMap(csv)).rejects.toThrow(/expected a header row with a key column/);
  });
});
