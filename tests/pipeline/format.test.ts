import { Rng } from '../../src/core/random';
import {
  canonicalJson,
  decodeIds,
  encodeIds,
  idDtype,
  parseOutputName,
  parseShardSpec,
  partPrefix,
  shardCount,
  shardFileName,
} from '../../src/core/shard-format';
import type { TokenRecord } from '../../src/core/pipeline-types';
import { packShard, unpackShard } from '../../src/io/dataset/shard';
import { globRoot, globToRegExp } from '../../src/io/dataset/glob';
import { parseCsv, parseSidecar } from '../../src/io/dataset/labels';
import { looksTruncated } from '../../src/io/dataset/read';
import { OrderedPrefetch } from '../../src/pipeline/prefetch';
import { colourGridDetokenizer, colourGridTokenizer } from '../../src/pipeline/colour-grid';

/** A minimal msgpack reader written from the spec; throws on extension types (msgpackr's records, typed arrays). */
function readPlainMsgpack(b: Uint8Array): unknown {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 0;
  const str = (n: number): string => Buffer.from(b.subarray(p, (p += n))).toString('utf8');
  const bin = (n: number): Uint8Array => b.subarray(p, (p += n));
  const arr = (n: number): unknown[] => Array.from({ length: n }, () => read());
  const map = (n: number): Record<string, unknown> => {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) o[read() as string] = read();
    return o;
  };
  const read = (): unknown => {
    const t = b[p++];
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 256;
    if ((t & 0xf0) === 0x80) return map(t & 0x0f);
    if ((t & 0xf0) === 0x90) return arr(t & 0x0f);
    if ((t & 0xe0) === 0xa0) return str(t & 0x1f);
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return bin(b[p++]);
      case 0xc5: { const n = v.getUint16(p); p += 2; return bin(n); }
      case 0xc6: { const n = v.getUint32(p); p += 4; return bin(n); }
      case 0xcb: { const x = v.getFloat64(p); p += 8; return x; }
      case 0xcc: return b[p++];
      case 0xcd: { const x = v.getUint16(p); p += 2; return x; }
      case 0xce: { const x = v.getUint32(p); p += 4; return x; }
      case 0xd0: return v.getInt8(p++);
      case 0xd1: { const x = v.getInt16(p); p += 2; return x; }
      case 0xd2: { const x = v.getInt32(p); p += 4; return x; }
      case 0xd9: return str(b[p++]);
      case 0xda: { const n = v.getUint16(p); p += 2; return str(n); }
      case 0xdb: { const n = v.getUint32(p); p += 4; return str(n); }
      case 0xdc: { const n = v.getUint16(p); p += 2; return arr(n); }
      case 0xdd: { const n = v.getUint32(p); p += 4; return arr(n); }
      case 0xde: { const n = v.getUint16(p); p += 2; return map(n); }
      case 0xdf: { const n = v.getUint32(p); p += 4; return map(n); }
      default: throw new Error(`msgpack type byte 0x${t.toString(16)} at ${p - 1} is not plain msgpack`);
    }
  };
  const out = read();
  if (p !== b.length) throw new Error(`trailing bytes after msgpack value at ${p}`);
  return out;
}

describe('shard format', () => {
  test('ids as little-endian bytes, by hand', () => {
    expect(Array.from(encodeIds(Int32Array.of(1, 258, 65535), 'uint16'))).toEqual([1, 0, 2, 1, 255, 255]);
    expect(Array.from(encodeIds(Int32Array.of(1, 65536, -2), 'int32'))).toEqual([1, 0, 0, 0, 0, 0, 1, 0, 254, 255, 255, 255]);
    expect(Array.from(decodeIds(Uint8Array.of(1, 0, 2, 1), 'uint16'))).toEqual([1, 258]);
    expect(() => encodeIds([70000], 'uint16')).toThrow('Id 70000 of type number at position 0 does not fit in uint16');
    expect(() => decodeIds(Uint8Array.of(1, 2, 3), 'uint16', 'codes')).toThrow('Expected uint16 bytes (a multiple of 2) for codes');
    expect(idDtype(65536)).toBe('uint16');
    expect(idDtype(65537)).toBe('int32');
  });

  test('ids round-trip through bytes at odd offsets (seeded)', () => {
    const rng = new Rng(7);
    for (const dtype of ['uint16', 'int32'] as const) {
      const ids = Int32Array.from({ length: 257 }, () => rng.int(dtype === 'uint16' ? 65536 : 2 ** 31));
      const bytes = encodeIds(ids, dtype);
      const shifted = new Uint8Array(bytes.length + 1);
      shifted.set(bytes, 1);
      expect(Array.from(decodeIds(shifted.subarray(1), dtype))).toEqual(Array.from(ids));
    }
  });

  test('--shard i/n parsing and file names', () => {
    expect(parseShardSpec('3/8')).toEqual({ index: 3, count: 8 });
    expect(parseShardSpec(' 0 / 1 ')).toEqual({ index: 0, count: 1 });
    expect(() => parseShardSpec('8/8')).toThrow('Expected integer between 0 and 7 for part.index but received 8 of type number');
    expect(() => parseShardSpec('3-8')).toThrow('Expected "i/n" (part i of n, 0 <= i < n) for shard but received "3-8" of type string');
    expect(partPrefix({ index: 0, count: 1 })).toBe('');
    expect(shardFileName({ index: 3, count: 8 }, 12)).toBe('part-0003-of-0008.shard-00012.msgpack');
    expect(parseOutputName('part-0003-of-0008.shard-00012.msgpack')).toEqual({ part: { index: 3, count: 8 }, kind: 'shard', shard: 12, temp: false });
    expect(parseOutputName('.shard-00001.msgpack.123.abcdef.tmp')).toEqual({ part: { index: 0, count: 1 }, kind: 'shard', shard: 1, temp: true });
    expect(parseOutputName('manifest.json')?.kind).toBe('manifest');
    expect(parseOutputName('part-0008-of-0008.manifest.json')).toBeNull();
    expect(parseOutputName('notes.txt')).toBeNull();
    expect(shardCount(0, 4)).toBe(0);
    expect(shardCount(9, 4)).toBe(3);
  });

  test('canonical JSON sorts keys at every level', () => {
    expect(canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] })).toBe('{"a":[2,{"c":4,"d":3}],"b":1}');
  });

  test('a shard packs to plain msgpack and back, byte-identical when packed again', () => {
    const rec: TokenRecord = {
      key: 'a/1.png',
      source: '/data/a/1.png',
      sha256: 'ab'.repeat(32),
      width: 640,
      height: 480,
      shape: [2, 3],
      codes: Int32Array.of(0, 1, 2, 300, 4, 65535),
      bpe: Int32Array.of(7, 70000),
      label: 3,
      caption: 'a "quoted" caption',
    };
    const content = {
      run: 'r',
      tokenizer: 't',
      part: [0, 1] as [number, number],
      shard: 0,
      slice: [0, 2] as [number, number],
      codeDtype: 'uint16' as const,
      bpeDtype: 'int32' as const,
      records: [rec],
      skipped: [{ key: 'a/2.png', source: '/data/a/2.png', reason: 'corrupt' as const, code: 'IMAGE_DECODE', message: 'bad' }],
    };
    const bytes = packShard(content);
    const back = unpackShard(bytes, 'x');
    expect(back.records[0]).toEqual(rec);
    expect(back.skipped).toEqual(content.skipped);
    expect(Buffer.from(packShard(back)).equals(Buffer.from(bytes))).toBe(true);
    // Plain msgpack: an independent minimal reader (no extension types) loads it, ids as little-endian bytes.
    const plain = readPlainMsgpack(bytes) as { records: { codes: Uint8Array; shape: number[] }[]; codeDtype: string };
    expect(plain.codeDtype).toBe('uint16');
    expect(Array.from(new Uint16Array(Uint8Array.from(plain.records[0].codes).buffer))).toEqual([0, 1, 2, 300, 4, 65535]);
    expect(() => unpackShard(Uint8Array.of(0xde, 0x00, 0x05), 'bad.msgpack')).toThrow(/^bad.msgpack: not a readable msgpack file \(.*\); the file is damaged$/);
    expect(() => unpackShard(Uint8Array.of(0x01), 'one.msgpack')).toThrow('one.msgpack: expected a vtok-shard file but found 1 of type number');
    expect(() => unpackShard(packShard({ ...content, records: [] }).slice(0, 10), 'cut.msgpack')).toThrow(/cut.msgpack/);
  });
});

describe('inputs: globs, CSV, sidecars, truncation signs', () => {
  test('globs', () => {
    expect(globRoot('data/imgs/**/*.png')).toBe('data/imgs');
    expect(globRoot('*.jpg')).toBe('.');
    const re = globToRegExp('**/*.{jpg,png}');
    expect(['a/b/c.png', 'c.jpg'].every((p) => re.test(p))).toBe(true);
    expect(['c.gif', '.hidden/c.png', 'a/.c.png'].some((p) => re.test(p))).toBe(false);
    const one = globToRegExp('img-[0-4]?.png');
    expect(one.test('img-3a.png')).toBe(true);
    expect(one.test('img-5a.png')).toBe(false);
    expect(one.test('sub/img-3a.png')).toBe(false);
    expect(globToRegExp('[!a]*').test('bcd')).toBe(true);
    expect(globToRegExp('[!a]*').test('abc')).toBe(false);
  });

  test('CSV (RFC 4180)', () => {
    expect(parseCsv('key,caption\r\na.png,"a ""big"" dog, sleeping"\nb.png,"two\nlines"\n')).toEqual([
      ['key', 'caption'],
      ['a.png', 'a "big" dog, sleeping'],
      ['b.png', 'two\nlines'],
    ]);
    expect(parseCsv('\ufeffk,l\nx,1')).toEqual([['k', 'l'], ['x', '1']]);
    expect(() => parseCsv('k\n"open')).toThrow('Could not parse CSV: a quoted field is not closed before the end of the file');
    // quotes inside an unquoted field are kept; text after a closing quote joins the field; blank lines are skipped
    expect(parseCsv('a"b,c')).toEqual([['a"b', 'c']]);
    expect(parseCsv('""x,y')).toEqual([['x', 'y']]);
    expect(parseCsv('"a"b,"c""",d\r')).toEqual([['ab', 'c"', 'd']]);
    expect(parseCsv('k,v\r\n\r\nx,\n')).toEqual([['k', 'v'], ['x', '']]);
    expect(parseCsv(',\n,,')).toEqual([['', ''], ['', '', '']]);
    expect(parseCsv('"x\r\ny",z\n\n\nlast')).toEqual([['x\r\ny', 'z'], ['last']]);
    // long fields come out whole (the parser adds runs of characters as slices)
    const long = 'w'.repeat(5000);
    expect(parseCsv(`${long},"${long}""${long}"\n`)).toEqual([[long, `${long}"${long}`]]);
  });

  test('sidecars', () => {
    const b = (s: string): Uint8Array => Buffer.from(s);
    expect(parseSidecar('txt', b('  A Tamworth pig.\n'), 'x.txt')).toEqual({ caption: 'A Tamworth pig.' });
    expect(parseSidecar('cls', b('7\n'), 'x.cls')).toEqual({ label: 7 });
    expect(parseSidecar('cls', b('cat'), 'x.cls')).toEqual({ label: 'cat' });
    expect(parseSidecar('json', b('{"label": 3, "text": "a pig", "other": 1}'), 'x.json')).toEqual({ label: 3, caption: 'a pig' });
    expect(() => parseSidecar('json', b('{oops'), 'x.json')).toThrow(/Could not read sidecar x.json: not valid JSON/);
    expect(() => parseSidecar('json', b('[1]'), 'x.json')).toThrow('Could not read sidecar x.json: expected a JSON object');
  });

  test('structural truncation signs', () => {
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(20), Buffer.from('IEND'), Buffer.alloc(4)]);
    expect(looksTruncated(png)).toBe(false);
    expect(looksTruncated(png.subarray(0, png.length - 3))).toBe(true);
    const jpg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]);
    expect(looksTruncated(jpg)).toBe(false);
    expect(looksTruncated(Buffer.concat([jpg, Buffer.alloc(3)]))).toBe(false);
    expect(looksTruncated(jpg.subarray(0, 6))).toBe(true);
    expect(looksTruncated(Buffer.from('hello'))).toBe(false);
  });
});

describe('ordered prefetch', () => {
  test('results in order, never more than `window` held, concurrency respected (seeded delays)', async () => {
    const rng = new Rng(3);
    const delays = Array.from({ length: 60 }, () => rng.int(5));
    let running = 0;
    let maxRunning = 0;
    const p = new OrderedPrefetch(
      delays,
      async (d, i) => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, d));
        running--;
        return i * 10;
      },
      { concurrency: 3, window: 7 },
    );
    const got: number[] = [];
    for (let i = 0; i < delays.length; i++) {
      got.push(await p.next());
      if (i % 5 === 0) await new Promise((r) => setTimeout(r, 3)); // a slow consumer
    }
    expect(got).toEqual(delays.map((_, i) => i * 10));
    expect(maxRunning).toBeLessThanOrEqual(3);
    expect(p.peakHeld).toBeLessThanOrEqual(7);
    await expect(p.next()).rejects.toThrow('no items left');
  });
});

describe('colour-grid tokenizer', () => {
  test('the hand-worked example: white top-left cell, black elsewhere', async () => {
    const t = colourGridTokenizer({ imageSize: 4, grid: 2, levels: 2 });
    const img = new Float32Array(4 * 4 * 3).fill(-1); // [1, 4, 4, 3]
    for (const [y, x] of [[0, 0], [0, 1], [1, 0], [1, 1]]) img.fill(1, (y * 4 + x) * 3, (y * 4 + x) * 3 + 3);
    expect(Array.from(await t.encodeBatch(img, 1))).toEqual([7, 0, 0, 0]);
    expect(t.codebookSize).toBe(8);
    const d = colourGridDetokenizer({ imageSize: 4, grid: 2, levels: 2 });
    const back = await d.decodeBatch(Int32Array.of(7, 0, 0, 0), 1);
    expect(back[0]).toBeCloseTo(0.5); // level 1 of 2 -> centre 0.75 of [0, 1] -> 0.5 in [-1, 1]
    expect(back[back.length - 1]).toBeCloseTo(-0.5);
    // decode -> encode is the identity on codes
    const rng = new Rng(1);
    const t8 = colourGridTokenizer({ imageSize: 8, grid: 4, levels: 8 });
    const codes = Int32Array.from({ length: 3 * 16 }, () => rng.int(512));
    const imgs = await colourGridDetokenizer({ imageSize: 8, grid: 4, levels: 8 }).decodeBatch(codes, 3);
    expect(Array.from(await t8.encodeBatch(imgs, 3))).toEqual(Array.from(codes));
    expect(() => colourGridTokenizer({ imageSize: 10, grid: 4 })).toThrow('Expected a divisor of imageSize 10 for grid but received 4 of type number');
  });
});
