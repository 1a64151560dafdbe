import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { trainBpe } from '../../src/core/bpe';
import { Rng } from '../../src/core/random';
import { readImage } from '../../src/io/image';
import { readShard, writeShard } from '../../src/io/dataset/shard';
import { colourGridDetokenizer, colourGridTokenizer } from '../../src/pipeline/colour-grid';
import { decodeDataset, outputNameOf } from '../../src/pipeline/decode';
import { mergeManifests } from '../../src/pipeline/merge';
import { defaultBatchSize, tokenizeDataset, type TokenizeProgress } from '../../src/pipeline/tokenize';
import { comparable, hugePngHeader, jpegBytes, makeImages, makeTar, pngBytes, readAllErrors, readAllRecords, tmpDir } from './helpers';

const tok = colourGridTokenizer({ imageSize: 16, grid: 4, levels: 8 });
const small = { tokenizer: tok, recordsPerShard: 5, batchSize: 3 };

describe('tokenizeDataset', () => {
  let root: string;
  let inDir: string;
  let rels: string[];
  beforeAll(async () => {
    root = await tmpDir();
    inDir = path.join(root, 'in');
    rels = await makeImages(inDir, 13, 11);
  });
  afterAll(() => fsp.rm(root, { recursive: true, force: true }));

  test('records hold exactly what the tokenizer gives for each image, with sha256, original size and caption', async () => {
    const out = path.join(root, 'out-basic');
    const progress: TokenizeProgress[] = [];
    const res = await tokenizeDataset({ ...small, inputs: [inDir], out, onProgress: (p) => progress.push(p) });
    expect(res.manifest.counts).toEqual({ inputs: 13, records: 13, errors: 0, byReason: expect.any(Object) });
    expect(res.manifest.shards.map((s) => [s.file, s.records])).toEqual([
      ['shard-00000.msgpack', 5],
      ['shard-00001.msgpack', 5],
      ['shard-00002.msgpack', 3],
    ]);
    expect(res.manifest.options.tokenizer.id).toBe(tok.id);
    expect((await fsp.readdir(out)).sort()).toEqual(['errors.jsonl', 'manifest.json', 'shard-00000.msgpack', 'shard-00001.msgpack', 'shard-00002.msgpack']);
    expect(await fsp.readFile(path.join(out, 'errors.jsonl'), 'utf8')).toBe('');
    const records = await readAllRecords(out);
    expect(records.map((r) => r.key)).toEqual(rels);
    for (const [i, r] of records.entries()) {
      const file = path.join(inDir, rels[i]);
      const bytes = await fsp.readFile(file);
      const meta = await sharp(bytes).metadata();
      const img = await readImage(file, { size: 16 });
      expect(r.source).toBe(file);
      expect(r.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
      expect([r.width, r.height]).toEqual([meta.width, meta.height]);
      expect(r.shape).toEqual([4, 4]);
      expect(Array.from(r.codes as Int32Array)).toEqual(Array.from(await tok.encodeBatch(img.data, 1)));
      expect(r.caption).toBe(`caption ${Number(rels[i].match(/(\d+)\./)?.[1])}`);
      expect(r.bpe).toBeNull();
    }
    const last = progress[progress.length - 1];
    expect([last.done, last.total, last.records, last.shardsDone, last.shards]).toEqual([13, 13, 13, 3, 3]);
    expect(res.peakPrefetched).toBeLessThanOrEqual(2 + 2 * 3 + 3);
  });

  test.each([0, 1, 2])('decoded images wait in reused buffers: at most the prefetch window is ever allocated, and every record is still its own image (%i decode workers)', async (workers) => {
    // Issue #6: a fresh array per image let dead ArrayBuffers pile up in V8's old generation (RSS grew with the image count).
    const dir = path.join(root, 'in-many');
    const many = await makeImages(dir, 40, 12, false);
    const out = path.join(root, `out-pool-${workers}`);
    const res = await tokenizeDataset({ tokenizer: tok, inputs: [dir], out, recordsPerShard: 7, batchSize: 3, concurrency: 2, queueDepth: 1, workers });
    expect(res.manifest.counts.records).toBe(40);
    expect(res.pixelBuffers).toBeGreaterThan(0);
    expect(res.pixelBuffers).toBeLessThanOrEqual(2 + 1 * 3 + 3 + 1); // the prefetch window and the image being copied into its batch, not 40
    const records = await readAllRecords(out);
    expect(records.map((r) => r.key)).toEqual(many);
    for (const [i, r] of records.entries()) {
      const img = await readImage(path.join(dir, many[i]), { size: 16 });
      expect(Array.from(r.codes as Int32Array)).toEqual(Array.from(await tok.encodeBatch(img.data, 1)));
    }
  });

  test('corrupt, truncated, non-image, zero-byte and huge inputs land in errors.jsonl; the rest is tokenized', async () => {
    const dir = path.join(root, 'bad');
    await fsp.mkdir(dir, { recursive: true });
    const rng = new Rng(5);
    const png = await pngBytes(rng, 30, 30);
    const jpg = await jpegBytes(rng, 40, 30);
    const corrupt = Buffer.from(png);
    for (let i = 40; i < 60; i++) corrupt[i] ^= 0xff;
    await fsp.writeFile(path.join(dir, 'good-1.png'), png);
    await fsp.writeFile(path.join(dir, 'good-2.jpg'), jpg);
    await fsp.writeFile(path.join(dir, 'corrupt.png'), corrupt);
    await fsp.writeFile(path.join(dir, 'cut.png'), png.subarray(0, png.length - 30));
    await fsp.writeFile(path.join(dir, 'cut.jpg'), jpg.subarray(0, Math.floor(jpg.length / 2)));
    await fsp.writeFile(path.join(dir, 'text.png'), 'this is not an image');
    await fsp.writeFile(path.join(dir, 'notes.md'), '# notes');
    await fsp.writeFile(path.join(dir, 'empty.png'), '');
    await fsp.writeFile(path.join(dir, 'bomb.png'), hugePngHeader(30000, 30000));
    await fsp.writeFile(path.join(dir, 'big-file.png'), Buffer.concat([png, Buffer.alloc(5000)]));
    const out = path.join(root, 'out-bad');
    const res = await tokenizeDataset({ ...small, inputs: [dir], out, maxFileBytes: 4000 });
    const errors = await readAllErrors(out);
    expect(errors.map((e) => [e.key, e.reason])).toEqual([
      ['big-file.png', 'too-large'],
      ['bomb.png', 'too-large'],
      ['corrupt.png', 'corrupt'],
      ['cut.jpg', 'truncated'],
      ['cut.png', 'truncated'],
      ['empty.png', 'zero-byte'],
      ['notes.md', 'not-image'],
      ['text.png', 'not-image'],
    ]);
    expect(errors.find((e) => e.key === 'bomb.png')?.message).toBe(
      `Could not decode ${path.join(dir, 'bomb.png')}: it declares 30000 x 30000 = 900000000 pixels, more than the limit of 268402689 pixels (option maxPixels)`,
    );
    expect(errors.find((e) => e.key === 'big-file.png')?.message).toMatch(/bytes, more than the limit of 4000 bytes \(option maxFileBytes\)$/);
    expect((await readAllRecords(out)).map((r) => r.key)).toEqual(['good-1.png', 'good-2.jpg']);
    expect(res.manifest.counts.byReason).toEqual({ 'zero-byte': 1, 'too-large': 2, 'not-image': 2, truncated: 2, corrupt: 1, unreadable: 0 });
    // each line of errors.jsonl is one JSON object with the five fields
    const lines = (await fsp.readFile(path.join(out, 'errors.jsonl'), 'utf8')).trim().split('\n');
    expect(lines.map((l) => Object.keys(JSON.parse(l)))).toEqual(lines.map(() => ['key', 'source', 'reason', 'code', 'message']));
  });

  test('refuses a non-empty foreign folder, another tokenizer, other options, and a finished run without resume', async () => {
    const foreign = path.join(root, 'foreign');
    await fsp.mkdir(foreign, { recursive: true });
    await fsp.writeFile(path.join(foreign, 'thesis.pdf'), 'precious');
    await expect(tokenizeDataset({ ...small, inputs: [inDir], out: foreign })).rejects.toThrow(
      `Refusing to write into ${foreign}: it is not empty and is not a vtok token folder (it holds thesis.pdf); choose an empty or new folder`,
    );
    expect(await fsp.readdir(foreign)).toEqual(['thesis.pdf']);

    const out = path.join(root, 'out-refuse');
    await tokenizeDataset({ ...small, inputs: [inDir], out });
    const before = await fsp.readFile(path.join(out, 'manifest.json'), 'utf8');
    const other = colourGridTokenizer({ imageSize: 16, grid: 2, levels: 8 });
    await expect(tokenizeDataset({ ...small, tokenizer: other, inputs: [inDir], out, resume: true })).rejects.toThrow(
      `Refusing to write into ${out}: it holds tokens of another tokenizer (${tok.id}, not ${other.id})`,
    );
    await expect(tokenizeDataset({ ...small, recordsPerShard: 4, inputs: [inDir], out, resume: true })).rejects.toThrow(
      'it holds tokens of the same tokenizer made with other options: recordsPerShard (5 there, 4 now)',
    );
    await expect(tokenizeDataset({ ...small, inputs: [inDir], out })).rejects.toThrow(/it already holds the finished output of this run \(manifest.json\); pass resume/);
    // resume on a finished run checks it and returns it
    const again = await tokenizeDataset({ ...small, inputs: [inDir], out, resume: true });
    expect(again.written).toBe(0);
    expect(await fsp.readFile(path.join(out, 'manifest.json'), 'utf8')).toBe(before);
    // ... and finds a damaged shard
    const shard = path.join(out, 'shard-00001.msgpack');
    const bytes = await fsp.readFile(shard);
    bytes[bytes.length - 1] ^= 1;
    await fsp.writeFile(shard, bytes);
    await expect(tokenizeDataset({ ...small, inputs: [inDir], out, resume: true })).rejects.toThrow(`${shard} is damaged: its sha256 is`);
  });

  test('an output folder inside the input folder is not read as input', async () => {
    const dir = path.join(root, 'nested');
    await makeImages(dir, 4, 3, false);
    const out = path.join(dir, 'tokens');
    const a = await tokenizeDataset({ ...small, inputs: [dir], out });
    expect(a.manifest.counts.inputs).toBe(4);
    const b = await tokenizeDataset({ ...small, inputs: [dir], out, resume: true });
    expect(b.manifest.run).toBe(a.manifest.run);
  });

  test('option errors name the option', async () => {
    await expect(tokenizeDataset({ ...small, inputs: [inDir], out: path.join(root, 'x'), batchSize: 0 })).rejects.toThrow(
      'Expected integer between 1 and 4096 for batchSize but received 0 of type number',
    );
    await expect(tokenizeDataset({ ...small, inputs: [], out: path.join(root, 'x') })).rejects.toThrow('Expected a non-empty array of paths, globs or @lists for inputs');
    await expect(tokenizeDataset({ ...small, inputs: [inDir], out: path.join(root, 'x'), shard: '2/2' })).rejects.toThrow('for part.index but received 2');
    await expect(tokenizeDataset({ ...small, inputs: [inDir], out: path.join(root, 'x'), storeCodes: false })).rejects.toThrow(/for storeCodes/);
    await expect(tokenizeDataset({ inputs: [inDir], out: path.join(root, 'x') })).rejects.toThrow(/for tokenizer but received undefined/);
    const bpe4 = trainBpe([{ codes: [0, 1, 0, 1], h: 2, w: 2 }], { baseVocab: 4, merges: 1, minFrequency: 1 });
    await expect(tokenizeDataset({ ...small, inputs: [inDir], out: path.join(root, 'x'), bpe: bpe4 })).rejects.toThrow(
      "Expected a BPE model over the tokenizer's 512 codes for bpe but received a model over 4 base codes",
    );
    await expect(tokenizeDataset({ ...small, inputs: [inDir], out: path.join(root, 'x'), recordsPerShard: 5, bogus: 1 } as never)).rejects.toThrow(
      /Unknown option "bogus" for tokenizeDataset/,
    );
  });

  test('BPE ids decode back to the code grid; storeCodes false keeps BPE ids only, and decode goes through BPE', async () => {
    const base = await readAllRecords(path.join(root, 'out-basic'));
    const bpe = trainBpe(
      base.map((r) => ({ codes: r.codes as Int32Array, h: 4, w: 4 })),
      { baseVocab: 512, merges: 20, minFrequency: 2 },
    );
    const out = path.join(root, 'out-bpe');
    await tokenizeDataset({ ...small, inputs: [inDir], out, bpe });
    const withBpe = await readAllRecords(out);
    for (const [i, r] of withBpe.entries()) {
      expect(Array.from(bpe.decode(r.bpe as Int32Array, 4, 4))).toEqual(Array.from(base[i].codes as Int32Array));
    }
    expect(withBpe.some((r) => (r.bpe as Int32Array).length < 16)).toBe(true);
    const out2 = path.join(root, 'out-bpe-only');
    await tokenizeDataset({ ...small, inputs: [inDir], out: out2, bpe, storeCodes: false });
    expect((await readAllRecords(out2)).every((r) => r.codes === null && r.bpe !== null)).toBe(true);
    const det = colourGridDetokenizer({ imageSize: 16, grid: 4, levels: 8 });
    await expect(decodeDataset({ dir: out2, out: path.join(root, 'dec-x'), detokenizer: det })).rejects.toThrow(/for bpe but received undefined/);
    const dec = await decodeDataset({ dir: out2, out: path.join(root, 'dec-bpe'), detokenizer: det, bpe });
    expect(dec.images).toBe(13);
  });

  test('decode renders PNGs that tokenize back to the same codes; the wrong detokenizer is refused', async () => {
    const out = path.join(root, 'dec');
    const det = colourGridDetokenizer({ imageSize: 16, grid: 4, levels: 8 });
    const res = await decodeDataset({ dir: path.join(root, 'out-basic'), out, detokenizer: det, batchSize: 4 });
    expect(res.files).toEqual(rels.map(outputNameOf));
    const again = await tokenizeDataset({ ...small, inputs: [out], out: path.join(root, 'dec-tokens') });
    const first = await readAllRecords(path.join(root, 'out-basic'));
    const second = await readAllRecords(path.join(root, 'dec-tokens'));
    expect(second.map((r) => Array.from(r.codes as Int32Array))).toEqual(first.map((r) => Array.from(r.codes as Int32Array)));
    expect(again.manifest.counts.records).toBe(13);
    await expect(
      decodeDataset({ dir: path.join(root, 'out-basic'), out: path.join(root, 'dec2'), detokenizer: colourGridDetokenizer({ imageSize: 16, grid: 4, levels: 4 }) }),
    ).rejects.toThrow(`These tokens were made by tokenizer ${tok.id}; the detokenizer is colour-grid-v1-s16-g4-l4`);
    await expect(decodeDataset({ dir: path.join(root, 'out-basic'), out, detokenizer: det })).rejects.toThrow(`Refusing to write into ${out}: it is not empty`);
    expect(outputNameOf('../../etc/x.jpg')).toBe('etc/x.png');
    expect(outputNameOf('shard.tar/000001.jpg')).toBe('shard.tar/000001.png');
  });

  test('tar members and a CSV mapping file', async () => {
    const rng = new Rng(9);
    const tarDir = path.join(root, 'tars');
    await fsp.mkdir(tarDir, { recursive: true });
    await fsp.writeFile(
      path.join(tarDir, 'train-000.tar'),
      makeTar([
        ['000001.png', await pngBytes(rng)],
        ['000001.cls', Buffer.from('2')],
        ['000002.jpg', await jpegBytes(rng)],
        ['000002.json', Buffer.from('{"caption": "from json"}')],
        ['000003.png', Buffer.from('junk')],
      ]),
    );
    const labels = path.join(root, 'labels.csv');
    await fsp.writeFile(labels, 'key,caption\ntrain-000.tar/000001,"from csv"\n');
    const out = path.join(root, 'out-tar');
    const res = await tokenizeDataset({ ...small, inputs: [path.join(tarDir, '*.tar')], out, labels });
    const records = await readAllRecords(out);
    expect(records.map((r) => [r.key, r.label, r.caption])).toEqual([
      ['train-000.tar/000001.png', 2, 'from csv'],
      ['train-000.tar/000002.jpg', null, 'from json'],
    ]);
    expect(records[0].source).toBe(`${path.join(tarDir, 'train-000.tar')}:000001.png`);
    expect((await readAllErrors(out)).map((e) => [e.key, e.reason])).toEqual([['train-000.tar/000003.png', 'not-image']]);
    expect(res.manifest.options.labels).toMatch(/^[0-9a-f]{64}$/);
  });

  test('decode workers change nothing: 0, 1 and 2 workers write byte-identical shards, errors and manifests', async () => {
    const rng = new Rng(21);
    const dir = path.join(root, 'in-workers');
    await makeImages(dir, 9, 21);
    await fsp.writeFile(path.join(dir, 'broken.png'), (await pngBytes(rng)).subarray(0, 60));
    await fsp.writeFile(path.join(dir, 'empty.jpg'), '');
    await fsp.writeFile(path.join(dir, 'pack.tar'), makeTar([['a.png', await pngBytes(rng)], ['a.cls', Buffer.from('7')], ['b.jpg', await jpegBytes(rng)]]));
    const labels = path.join(root, 'labels-workers.jsonl');
    await fsp.writeFile(labels, '{"key": "pack.tar/b", "caption": "from jsonl"}\n');
    const files: Record<number, Record<string, string>> = {};
    for (const workers of [0, 1, 2]) {
      const out = path.join(root, `out-workers-${workers}`);
      await tokenizeDataset({ ...small, inputs: [dir], out, labels, workers, recordsPerShard: 4 });
      files[workers] = {};
      for (const f of (await fsp.readdir(out)).sort()) files[workers][f] = createHash('sha256').update(await fsp.readFile(path.join(out, f))).digest('hex');
    }
    expect(Object.keys(files[0]).filter((f) => f.endsWith('.msgpack')).length).toBe(4); // 13 inputs, 4 a shard
    expect(files[1]).toEqual(files[0]);
    expect(files[2]).toEqual(files[0]);
    const records = await readAllRecords(path.join(root, 'out-workers-1'));
    expect(records.filter((r) => r.key.startsWith('pack.tar/')).map((r) => [r.key, r.label, r.caption])).toEqual([
      ['pack.tar/a.png', 7, null],
      ['pack.tar/b.jpg', null, 'from jsonl'],
    ]);
    expect((await readAllErrors(path.join(root, 'out-workers-1'))).map((e) => [e.key, e.reason])).toEqual([
      ['broken.png', 'truncated'],
      ['empty.jpg', 'zero-byte'],
    ]);
  });

  test('--shard i/n: three parts in one folder merge to the same records as one run; merge checks coverage', async () => {
    const out = path.join(root, 'out-parts');
    for (const i of [2, 0, 1]) {
      const r = await tokenizeDataset({ ...small, inputs: [inDir], out, shard: `${i}/3`, recordsPerShard: 2 });
      expect(r.manifest.counts.inputs).toBe([5, 4, 4][i]);
    }
    const merged = await mergeManifests({ dirs: [out] });
    expect(merged.manifest.counts.records).toBe(13);
    expect(merged.manifest.merged).toBe(3);
    const single = await readAllRecords(path.join(root, 'out-basic'));
    const parts = await readAllRecords(out);
    expect(comparable(parts)).toEqual(comparable(single));
    // a part's shard lists every third input, starting at its index
    const p1 = await readShard(path.join(out, 'part-0001-of-0003.shard-00000.msgpack'));
    expect(p1.records.map((r) => r.key)).toEqual([rels[1], rels[4]]);

    // merge refuses a missing part, and a part of another run
    const copy = path.join(root, 'out-parts-copy');
    await fsp.mkdir(copy);
    for (const f of await fsp.readdir(out)) if (f.startsWith('part-0000') || f.startsWith('part-0002')) await fsp.copyFile(path.join(out, f), path.join(copy, f));
    await expect(mergeManifests({ dirs: [copy] })).rejects.toThrow('Cannot merge: parts 1 of 3 are missing (not finished, or in a folder not given)');
    const other = path.join(root, 'out-parts-other');
    await tokenizeDataset({ ...small, inputs: [inDir], out: other, shard: '1/3', recordsPerShard: 3 });
    await expect(mergeManifests({ dirs: [copy, other], out: path.join(root, 'm') })).rejects.toThrow(/belongs to another run than/);
    // parts in separate folders merge into a third one, with relative shard paths
    const sep = path.join(root, 'out-parts-sep');
    await fsp.mkdir(sep);
    for (const f of await fsp.readdir(out)) if (f.startsWith('part-0001')) await fsp.copyFile(path.join(out, f), path.join(sep, f));
    const m2 = await mergeManifests({ dirs: [copy, sep], out: path.join(root, 'merged') });
    expect(m2.manifest.shards[0].file).toBe('../out-parts-copy/part-0000-of-0003.shard-00000.msgpack');
    expect(comparable(await readAllRecords(path.join(root, 'merged')))).toEqual(comparable(single));
    // a shard that was tampered with is caught by verify
    const victim = path.join(sep, 'part-0001-of-0003.shard-00000.msgpack');
    const b = await fsp.readFile(victim);
    b[b.length - 2] ^= 1;
    await fsp.writeFile(victim, b);
    await expect(mergeManifests({ dirs: [copy, sep], out: path.join(root, 'merged') })).rejects.toThrow(`${victim} is damaged`);
  });

  test('merge checks that the parts hold the run\'s inputs exactly once, each in its part: twice, swapped, renamed, missing, extra', async () => {
    // Copies of the three parts from the test above, with one shard rewritten (and its part's manifest updated to match).
    // Part p holds inputs p, p + 3, ...; two to a shard: part 0 [0, 3] [6, 9] [12], part 1 [1, 4] [7, 10], part 2 [2, 5] [8, 11].
    let copies = 0;
    const tampered = async (part: number, shard: number, edit: (keys: string[]) => string[]): Promise<string> => {
      const dir = path.join(root, `out-parts-tampered-${copies++}`);
      await fsp.cp(path.join(root, 'out-parts'), dir, { recursive: true });
      const manifestFile = path.join(dir, `part-000${part}-of-0003.manifest.json`);
      const manifest = JSON.parse(await fsp.readFile(manifestFile, 'utf8')) as { shards: { file: string; sha256: string; bytes: number }[] };
      const entry = manifest.shards[shard];
      const { sha256: _sha, bytes: _bytes, ...content } = await readShard(path.join(dir, entry.file));
      const keys = edit(content.records.map((r) => r.key));
      const records = keys.map((key, i) => ({ ...content.records[Math.min(i, content.records.length - 1)], key }));
      Object.assign(entry, await writeShard(path.join(dir, entry.file), { ...content, records }));
      await fsp.writeFile(manifestFile, JSON.stringify(manifest));
      return dir;
    };
    const merge = async (dir: string): Promise<number> => (await mergeManifests({ dirs: [dir] })).manifest.counts.records;
    expect(await merge(await tampered(1, 0, (k) => k))).toBe(13); // rewritten as it was: still fine
    await expect(merge(await tampered(1, 0, ([, b]) => [rels[0], b]))).rejects.toThrow(`Cannot merge: input ${JSON.stringify(rels[0])} appears twice (parts 0 and 1)`);
    await expect(merge(await tampered(1, 0, ([, b]) => [rels[2], b]))).rejects.toThrow(`Cannot merge: input ${JSON.stringify(rels[2])} appears twice (parts 1 and 2)`);
    await expect(merge(await tampered(0, 0, ([, b]) => [rels[2], b]))).rejects.toThrow(
      `Cannot merge: the parts do not interleave into one sorted input list: input ${JSON.stringify(rels[1])} (part 1, position 1) sorts before ${JSON.stringify(rels[2])} (part 0, position 0); an input is in the wrong part, in two parts, or was renamed`,
    );
    // an input twice in one part, and in two parts that are not neighbours
    await expect(merge(await tampered(0, 1, ([a]) => [a, a]))).rejects.toThrow(/Cannot merge: the parts do not interleave into one sorted input list: .* in two parts/);
    await expect(merge(await tampered(2, 0, ([, b]) => [rels[0], b]))).rejects.toThrow(/Cannot merge: the parts do not interleave .* sorts before/);
    await expect(merge(await tampered(1, 0, ([a, b]) => [`${a}~`, b]))).rejects.toThrow("Cannot merge: the parts' input keys do not hash to the run's input digest");
    await expect(merge(await tampered(2, 1, ([a]) => [a]))).rejects.toThrow("Cannot merge: part 2 of 3 holds fewer than its 4 of the run's 13 inputs");
    await expect(merge(await tampered(0, 2, ([a]) => [a, `${a}~`]))).rejects.toThrow("Cannot merge: part 0 of 3 holds more than its 5 of the run's 13 inputs");
  });
});

describe('defaultBatchSize', () => {
  test('about 16 images of 128 x 128 in pixels, 1 to 64 images', () => {
    expect([16, 28, 32, 64, 100, 128, 181, 256, 512, 1024].map(defaultBatchSize)).toEqual([64, 64, 64, 64, 26, 16, 8, 4, 1, 1]);
    expect(() => defaultBatchSize(0)).toThrow(/imageSize/);
  });
});
