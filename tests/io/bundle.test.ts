import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { VtokError } from '../../src/core/errors';
import { swapBytes, tensorRecord, typedArrayFromLittleEndian, typedArrayToLittleEndian, type TypedArray } from '../../src/core/tensor-map';
import { TextBpe } from '../../src/core/text-bpe';
import { Vocab } from '../../src/core/vocab';
import {
  BUNDLE_MAGIC,
  HEADER_LENGTH,
  assertBundleId,
  bundleId,
  decodeBundle,
  encodeBundle,
  readBundleFile,
  readBundleInfo,
  writeBundleFile,
  type BundleInput,
} from '../../src/io/bundle';

/** The raw bytes of a typed array (bit-exact comparisons: NaN payloads, -0). */
const bytesOf = (a: TypedArray): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A float32 NaN with a payload (not the canonical 0x7fc00000) and a float64 one. */
const nan32 = new Float32Array(new Uint32Array([0x7fc00001]).buffer)[0];
const weirdF32 = (): Float32Array => {
  const a = new Float32Array([1.5, -0, Infinity, -Infinity, 1e-45, 3.4e38]);
  new Uint32Array(a.buffer)[0] = 0x7fc00001; // NaN with payload in slot 0
  return a;
};
const weirdF64 = (): Float64Array => {
  const a = new Float64Array([0, -0, Number.MIN_VALUE, -1e308]);
  new Uint32Array(a.buffer)[0] = 0x00000123; // low word of a NaN with payload (little-endian host)
  new Uint32Array(a.buffer)[1] = 0x7ff80000;
  return a;
};
const PARENT = 'ab'.repeat(32);

function sample(): BundleInput {
  return {
    kind: 'tokenizer',
    name: 'tiny',
    createdAt: '2025-01-02T03:04:05.000Z',
    config: { codebookSize: 4, dims: [8, 16], label: 'ü 漢字 😀', nested: { table: weirdF64(), flag: true, none: null }, '10': 'ten', '9': 'nine' },
    tensors: {
      'encoder/conv1/kernel': tensorRecord('float32', [2, 3], weirdF32()),
      codes: tensorRecord('int32', [2, 2], new Int32Array([-2147483648, 2147483647, 0, -1])),
      // The dtype whose default msgpackr packing is broken (ENGINE.md).
      u16: tensorRecord('uint16', [4], new Uint16Array([0, 1, 0x1234, 65535])),
      mask: tensorRecord('uint8', [3], new Uint8Array([0, 255, 7])),
      scalar: tensorRecord('float32', [], new Float32Array([42])),
      empty: tensorRecord('float32', [0, 4], new Float32Array(0)),
    },
    bpe: { merges: new Int32Array([1, -2, 3]), small: new Int8Array([-128, 127]), i16: new Int16Array([-32768, 32767]), u32: new Uint32Array([0xffffffff]) },
    meta: { usage: new Float32Array([0.25, nan32]), card: { steps: 1000, seed: 7 } },
    parents: [PARENT],
  };
}

async function tmpDir(): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-bundle-'));
}

/** Rewrites a file's header checksum after editing header fields (a well-formed header with other values). */
function reseal(bytes: Uint8Array): Uint8Array {
  const sum = createHash('sha256').update(bytes.subarray(0, HEADER_LENGTH - 32)).digest();
  bytes.set(sum, HEADER_LENGTH - 32);
  return bytes;
}

function codeOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof VtokError) return { code: err.code, message: err.message };
    throw err;
  }
  throw new Error('expected a VtokError');
}

describe('little-endian typed-array bytes (core)', () => {
  it('swapBytes reverses each element: hand-worked', () => {
    expect([...swapBytes(new Uint8Array([1, 2, 3, 4]), 2)]).toEqual([2, 1, 4, 3]);
    expect([...swapBytes(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), 4)]).toEqual([4, 3, 2, 1, 8, 7, 6, 5]);
  });

  it('writes the little-endian byte order explicitly: 0x1234 as 34 12', () => {
    expect([...typedArrayToLittleEndian(new Uint16Array([0x1234]))]).toEqual([0x34, 0x12]);
    expect([...typedArrayToLittleEndian(new Int32Array([-2]))]).toEqual([0xfe, 0xff, 0xff, 0xff]);
    expect(typedArrayFromLittleEndian('uint16', new Uint8Array([0x34, 0x12]))[0]).toBe(0x1234);
  });

  it('the big-endian-host path swaps and swaps back, bit-exact (run here by pretending the host is big-endian)', () => {
    const a = weirdF32();
    const asIfBigEndianHost = typedArrayToLittleEndian(a, false);
    expect(asIfBigEndianHost).toEqual(swapBytes(Uint8Array.from(bytesOf(a)), 4));
    const back = typedArrayFromLittleEndian('float32', asIfBigEndianHost, false);
    expect(bytesOf(back).equals(bytesOf(a))).toBe(true);
  });

  it('reads from any byte offset into a fresh aligned array of this realm', () => {
    const file = new Uint8Array(13);
    file.set(typedArrayToLittleEndian(new Float32Array([1, -2, 3])), 1);
    const out = typedArrayFromLittleEndian('float32', file.subarray(1, 13));
    expect(out).toBeInstanceOf(Float32Array);
    expect([...out]).toEqual([1, -2, 3]);
    expect(() => typedArrayFromLittleEndian('float32', file.subarray(0, 5))).toThrow('Cannot read float32 values from 5 bytes: not a multiple of 4');
  });
});

describe('bundle round trip', () => {
  it('keeps every dtype, nested typed arrays and all fields bit-exact (NaN payloads, -0, infinities)', () => {
    const input = sample();
    const { bytes, id } = encodeBundle(input);
    const b = decodeBundle(bytes);
    expect(b.id).toBe(id);
    expect(b.format).toBe('vtok-bundle');
    expect(b.version).toBe(1);
    expect(b.kind).toBe('tokenizer');
    expect(b.name).toBe('tiny');
    expect(b.createdAt).toBe('2025-01-02T03:04:05.000Z');
    expect(b.parents).toEqual([PARENT]);
    expect(Object.keys(b.tensors).sort()).toEqual(Object.keys(input.tensors).sort());
    for (const [name, t] of Object.entries(input.tensors)) {
      const got = b.tensors[name];
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(got.data.constructor).toBe(t.data.constructor); // same realm: instanceof works under jest
      expect(bytesOf(got.data).equals(bytesOf(t.data))).toBe(true);
    }
    const cfg = b.config as { nested: { table: Float64Array; flag: boolean; none: null }; dims: number[]; label: string; '10': string; '9': string };
    expect(cfg.nested.table).toBeInstanceOf(Float64Array);
    expect(bytesOf(cfg.nested.table).equals(bytesOf(weirdF64()))).toBe(true);
    expect(cfg).toMatchObject({ dims: [8, 16], label: 'ü 漢字 😀', '10': 'ten', '9': 'nine', nested: { flag: true, none: null } });
    const bpe = b.bpe as Record<string, TypedArray>;
    const inBpe = input.bpe as Record<string, TypedArray>;
    for (const k of Object.keys(inBpe)) {
      expect(bpe[k].constructor).toBe(inBpe[k].constructor);
      expect(bytesOf(bpe[k]).equals(bytesOf(inBpe[k]))).toBe(true);
    }
    const meta = b.meta as { usage: Float32Array; card: object };
    expect(meta.usage).toBeInstanceOf(Float32Array);
    expect(bytesOf(meta.usage).equals(bytesOf(new Float32Array([0.25, nan32])))).toBe(true);
    expect(meta.card).toEqual({ steps: 1000, seed: 7 });
  });

  it('accepts a Node Buffer (another realm under jest) as uint8 data and a class with toJSON', () => {
    class Card {
      toJSON() {
        return { lr: 0.001 };
      }
    }
    const input: BundleInput = {
      kind: 'bpe',
      name: 'b',
      config: {},
      tensors: { raw: { dtype: 'uint8', shape: [3], data: Buffer.from([9, 8, 7]) } },
      meta: { card: new Card() },
    };
    const b = decodeBundle(encodeBundle(input).bytes);
    expect(b.tensors.raw.data).toBeInstanceOf(Uint8Array);
    expect([...b.tensors.raw.data]).toEqual([9, 8, 7]);
    expect(b.meta).toEqual({ card: { lr: 0.001 } });
  });

  it('stores a real vocabulary (Vocab.serialize) that loads back and encodes the same', () => {
    const text = TextBpe.train(['a red pig', 'a blue pig', 'a red hen'], { vocabSize: 260 });
    const vocab = Vocab.create({ text, visual: { baseCodes: 16, merges: 4 } });
    const b = decodeBundle(encodeBundle({ kind: 'tokenizer', name: 'v', config: {}, tensors: {}, vocab: vocab.serialize() }).bytes);
    const again = Vocab.deserialize(b.vocab);
    const segs = [{ special: '<bos>' }, { text: 'a red pig' }, { image: new Int32Array([0, 15, 3]) }];
    expect([...again.encodeSequence(segs)]).toEqual([...vocab.encodeSequence(segs)]);
  });

  it('writes and reads a file, and reads the info of a file without its data', async () => {
    const file = path.join(await tmpDir(), 'tiny.vtok');
    const id = await writeBundleFile(file, sample());
    const b = await readBundleFile(file, { expectedId: id });
    expect(b.id).toBe(id);
    const info = await readBundleInfo(file);
    expect(info).toMatchObject({ id, file, kind: 'tokenizer', name: 'tiny', version: '1.0', parents: [PARENT] });
    expect(info.tensors['encoder/conv1/kernel']).toEqual({ dtype: 'float32', shape: [2, 3] });
    expect(info.bpe).toEqual({
      merges: { $typed: 'int32', length: 3 },
      small: { $typed: 'int8', length: 2 },
      i16: { $typed: 'int16', length: 2 },
      u32: { $typed: 'uint32', length: 1 },
    });
    expect((info.config.nested as { table: unknown }).table).toEqual({ $typed: 'float64', length: 4 });
    expect(info.meta).toEqual({ usage: { $typed: 'float32', length: 2 }, card: { steps: 1000, seed: 7 } });
    expect(info.size).toBe((await fsp.stat(file)).size);
  });

  it('has the documented header layout (codebooks/README.md)', () => {
    const { bytes, id, sections } = encodeBundle(sample());
    const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_LENGTH);
    expect([...bytes.subarray(0, 8)]).toEqual([...BUNDLE_MAGIC]);
    expect(Buffer.from(bytes.subarray(8, 24)).toString('latin1')).toBe('vtok-bundle\0\0\0\0\0');
    expect([view.getUint16(24, true), view.getUint16(26, true), view.getUint32(28, true)]).toEqual([1, 0, 192]);
    expect(Number(view.getBigUint64(32, true))).toBe(sections.meta);
    expect(Number(view.getBigUint64(40, true))).toBe(sections.head);
    expect(Number(view.getBigUint64(48, true))).toBe(sections.data);
    const sha = (a: number, b?: number) => createHash('sha256').update(bytes.subarray(a, b)).digest('hex');
    const metaEnd = 192 + sections.meta;
    const headEnd = metaEnd + sections.head;
    expect(Buffer.from(bytes.subarray(56, 88)).toString('hex')).toBe(sha(192, metaEnd));
    expect(Buffer.from(bytes.subarray(88, 120)).toString('hex')).toBe(sha(metaEnd, headEnd));
    expect(Buffer.from(bytes.subarray(120, 152)).toString('hex')).toBe(id);
    expect(id).toBe(sha(metaEnd)); // the id is sha256(head ‖ data)
    expect([...bytes.subarray(152, 160)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(Buffer.from(bytes.subarray(160, 192)).toString('hex')).toBe(sha(0, 160));
    // 6 tensors + 1 float64 config table + 4 bpe arrays, little-endian, back to back
    expect(sections.data).toBe(4 * 6 + 4 * 4 + 2 * 4 + 3 + 4 + 0 + 8 * 4 + 4 * 3 + 2 + 2 * 2 + 4);
  });
});

describe('content id', () => {
  it('is a golden value for a fixed bundle (a change here means the encoding changed: bump the format version)', () => {
    const fixed: BundleInput = {
      kind: 'tokenizer',
      name: 'golden',
      config: { codebookSize: 2, dim: 2, note: 'x' },
      tensors: { codebook: tensorRecord('float32', [2, 2], new Float32Array([1, 0, 0, -1])) },
    };
    expect(bundleId(fixed)).toBe(GOLDEN_ID);
  });

  it('is the same for the same content: key order, name, createdAt, meta and parents do not count', () => {
    const a = sample();
    const b: BundleInput = {
      ...sample(),
      name: 'renamed',
      createdAt: '2030-01-01T00:00:00.000Z',
      meta: { other: 1 },
      parents: undefined,
      config: Object.fromEntries(Object.entries(sample().config).reverse()),
    };
    expect(bundleId(b)).toBe(bundleId(a));
  });

  it('changes with any change to what tokens depend on', () => {
    const base = bundleId(sample());
    const variants: [string, (b: BundleInput) => void][] = [
      ['one bit of one float', (b) => (new Uint32Array(b.tensors['encoder/conv1/kernel'].data.buffer)[1] ^= 1)],
      ['the sign of -0', (b) => (b.tensors['encoder/conv1/kernel'].data[1] = 0)],
      ['a config value', (b) => (b.config.codebookSize = 5)],
      ['the shape, same data', (b) => (b.tensors.codes.shape = [4, 1])],
      ['a tensor name', (b) => ((b.tensors.codes2 = b.tensors.codes), delete b.tensors.codes)],
      ['the kind', (b) => (b.kind = 'bpe')],
      ['the bpe', (b) => ((b.bpe as { merges: Int32Array }).merges[0] = 2)],
      ['adding a vocab', (b) => (b.vocab = { n: 1 })],
      ['a typed array type, same bytes', (b) => ((b.bpe as Record<string, unknown>).u32 = new Int32Array([-1]))],
    ];
    const seen = new Set([base]);
    for (const [what, change] of variants) {
      const b = sample();
      change(b);
      const id = bundleId(b);
      expect({ what, differs: !seen.has(id) }).toEqual({ what, differs: true });
      seen.add(id);
    }
  });
});

describe('damaged files', () => {
  const input = sample();
  const good = encodeBundle(input).bytes;
  const src = '/store/x.vtok';
  const { sections } = encodeBundle(input);
  const metaStart = HEADER_LENGTH;
  const headStart = metaStart + sections.meta;
  const dataStart = headStart + sections.head;

  it('fails with STORE_CORRUPT naming the file for a flipped byte at every position, with the part that is damaged', () => {
    const expectedReason = (pos: number): string =>
      pos < 8
        ? 'it is not a vtok bundle'
        : pos < HEADER_LENGTH
          ? 'the header is damaged'
          : pos < headStart
            ? 'the meta section is damaged'
            : pos < dataStart
              ? 'the head section is damaged'
              : 'the content is damaged';
    for (let pos = 0; pos < good.length; pos++) {
      for (const mask of [0x01, 0x80]) {
        const bad = Uint8Array.from(good);
        bad[pos] ^= mask;
        const err = codeOf(() => decodeBundle(bad, { source: src }));
        expect({ pos, mask, code: err.code, named: err.message.startsWith(`Could not read vtok bundle ${src}: `) }).toEqual({ pos, mask, code: 'STORE_CORRUPT', named: true });
        if (!err.message.includes(expectedReason(pos))) throw new Error(`flip at ${pos}: ${err.message}`);
      }
    }
  });

  it('flipped bytes in a file on disk: read fails naming the file; info catches header/meta/head damage', async () => {
    const dir = await tmpDir();
    for (const pos of [0, 30, 100, headStart - 1, headStart, (headStart + dataStart) >> 1, dataStart, good.length - 1]) {
      const file = path.join(dir, `flip-${pos}.vtok`);
      const bad = Uint8Array.from(good);
      bad[pos] ^= 0x10;
      await fsp.writeFile(file, bad);
      await expect(readBundleFile(file)).rejects.toMatchObject({ code: 'STORE_CORRUPT', message: expect.stringContaining(file) });
      if (pos < dataStart) await expect(readBundleInfo(file)).rejects.toMatchObject({ code: 'STORE_CORRUPT' });
    }
  });

  it('a truncated file of any length is STORE_CORRUPT and says how much is there', async () => {
    const dir = await tmpDir();
    const cases: [number, string][] = [
      [0, 'the file is empty (0 bytes)'],
      [1, 'the file is truncated: it has 1 bytes, fewer than the 192-byte header'],
      [7, 'the file is truncated: it has 7 bytes, fewer than the 192-byte header'],
      [31, 'the file is truncated: it has 31 bytes, fewer than the 192-byte header'],
      [100, 'the file is truncated: it has 100 bytes, fewer than the 192-byte header'],
      [191, 'the file is truncated: it has 191 bytes, fewer than the 192-byte header'],
      [192, `the file is truncated: the header says ${good.length} bytes but the file has 192 (${good.length - 192} missing)`],
      [dataStart, `the file is truncated: the header says ${good.length} bytes but the file has ${dataStart} (${good.length - dataStart} missing)`],
      [good.length - 1, `the file is truncated: the header says ${good.length} bytes but the file has ${good.length - 1} (1 missing)`],
    ];
    for (const [n, reason] of cases) {
      const file = path.join(dir, `cut-${n}.vtok`);
      await fsp.writeFile(file, good.subarray(0, n));
      const expected = { code: 'STORE_CORRUPT', message: `Could not read vtok bundle ${file}: ${reason}` };
      await expect(readBundleFile(file)).rejects.toMatchObject(expected);
      await expect(readBundleInfo(file)).rejects.toMatchObject(expected);
    }
  });

  it('extra bytes after the end are STORE_CORRUPT', () => {
    const longer = new Uint8Array(good.length + 3);
    longer.set(good);
    expect(codeOf(() => decodeBundle(longer, { source: src }))).toEqual({
      code: 'STORE_CORRUPT',
      message: `Could not read vtok bundle ${src}: the file has 3 unexpected bytes after its end (the header says ${good.length} bytes)`,
    });
  });

  it('a file that is not a bundle at all says so', async () => {
    const dir = await tmpDir();
    const png = path.join(dir, 'image.png');
    await fsp.writeFile(png, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]));
    await expect(readBundleFile(png)).rejects.toMatchObject({
      code: 'STORE_CORRUPT',
      message: `Could not read vtok bundle ${png}: it is not a vtok bundle: it starts with bytes 89 50 4e 47 0d 0a 1a 0a, a vtok bundle starts with 89 56 54 4b 0d 0a 1a 0a`,
    });
    const txt = path.join(dir, 'notes.txt');
    await fsp.writeFile(txt, 'hello');
    await expect(readBundleFile(txt)).rejects.toThrow(`Could not read vtok bundle ${txt}: it is not a vtok bundle: it starts with bytes 68 65 6c 6c 6f`);
  });

  it('another vtok file type with an intact header is named', () => {
    const other = Uint8Array.from(good);
    other.set(Buffer.from('vtok-tokens\0\0\0\0\0', 'latin1'), 8);
    expect(codeOf(() => decodeBundle(reseal(other), { source: src }))).toEqual({
      code: 'STORE_CORRUPT',
      message: `Could not read vtok bundle ${src}: it is not a vtok bundle: it is a "vtok-tokens" file`,
    });
  });

  it('a newer major version is STORE_VERSION saying both versions; a newer minor version still reads', () => {
    const v2 = Uint8Array.from(good);
    new DataView(v2.buffer).setUint16(24, 2, true);
    expect(codeOf(() => decodeBundle(reseal(v2), { source: src }))).toEqual({
      code: 'STORE_VERSION',
      message: `Could not read vtok bundle ${src}: it has format version 2.0, and this vtok reads version 1.x (update vtok to read it)`,
    });
    const v11 = Uint8Array.from(good);
    new DataView(v11.buffer).setUint16(26, 1, true);
    expect(decodeBundle(reseal(v11)).kind).toBe('tokenizer');
  });

  it('a bundle with another id than the one asked for is STORE_MISMATCH', () => {
    const want = 'cd'.repeat(32);
    const id = bundleId(input);
    expect(codeOf(() => decodeBundle(good, { source: src, expectedId: want }))).toEqual({
      code: 'STORE_MISMATCH',
      message: `Bundle ${src} holds ${id}, not the requested ${want}`,
    });
  });

  it('missing files and folders give the path and reason', async () => {
    const dir = await tmpDir();
    await expect(readBundleFile(path.join(dir, 'nope.vtok'))).rejects.toMatchObject({
      code: 'FILE_NOT_FOUND',
      message: `Could not read vtok bundle ${path.join(dir, 'nope.vtok')}: no such file`,
    });
    await expect(readBundleFile(dir)).rejects.toMatchObject({ code: 'IO', message: `Could not read vtok bundle ${dir}: it is a directory` });
  });
});

describe('bad bundles are refused before anything is written', () => {
  const base = (): BundleInput => ({ kind: 'tokenizer', name: 'x', config: {}, tensors: {} });
  const cases: [string, (b: BundleInput) => void, string][] = [
    ['unknown field', (b) => ((b as unknown as Record<string, unknown>).tensor = {}), 'Unknown bundle field "tensor"; a bundle has format, version, id, kind, name, createdAt, config, tensors, bpe, vocab, meta, parents'],
    ['kind', (b) => (b.kind = 'Tokenizer!'), 'Expected a lowercase name such as "tokenizer", "ar-model", "bpe", "vocab", "teacher" for bundle.kind but received "Tokenizer!" of type string'],
    ['version', (b) => (b.version = 2), 'Expected 1 for bundle.version but received 2 of type number'],
    ['config', (b) => (b.config = [] as unknown as Record<string, unknown>), 'Expected a plain object for bundle.config but received an array of length 0'],
    ['createdAt', (b) => (b.createdAt = 'yesterday'), 'Expected an ISO 8601 date string for bundle.createdAt but received "yesterday" of type string'],
    ['parents', (b) => (b.parents = ['abc']), 'Expected an array of bundle ids (64 hex digits) for bundle.parents but received an array of length 1'],
    [
      'tensor shape',
      (b) => (b.tensors.w = { dtype: 'float32', shape: [2, 2], data: new Float32Array(3) }),
      'Tensor "w": shape [2, 2] has 4 elements but data has 3',
    ],
    [
      'tensor dtype',
      (b) => (b.tensors.w = { dtype: 'float32', shape: [2], data: new Int32Array(2) as unknown as Float32Array }),
      'Tensor "w": expected data to be a Float32Array (dtype float32) but received a Int32Array of length 2',
    ],
    [
      'tensor float64',
      (b) => (b.tensors.w = { dtype: 'float64', shape: [1], data: new Float64Array(1) } as never),
      'Tensor "w": expected dtype one of "float32", "int32", "uint16", "uint8" but received "float64" of type string',
    ],
    [
      'clamped array',
      (b) => (b.config.x = new Uint8ClampedArray(2)),
      'Cannot store bundle.config.x: a Uint8ClampedArray of length 2 is not supported; use one of float32, float64, int8, int16, int32, uint8, uint16, uint32 typed arrays',
    ],
    [
      'a Map',
      (b) => (b.meta = { m: new Map() }),
      'Cannot store bundle.meta.m: expected plain data (null, boolean, number, string, array, plain object or typed array) but received a Map',
    ],
    ['a bigint', (b) => (b.config.n = 1n), 'Cannot store bundle.config.n: expected plain data (null, boolean, number, string, array, plain object or typed array) but received 1 of type bigint'],
    ['reserved key', (b) => (b.bpe = { $typed: 'float32' }), 'Cannot store bundle.bpe: the key "$typed" is reserved'],
    ['undefined in an array', (b) => (b.config.list = [1, undefined]), 'Cannot store bundle.config.list[1]: expected plain data (null, boolean, number, string, array, plain object or typed array) but received undefined'],
    [
      'circular',
      (b) => {
        const loop: Record<string, unknown> = {};
        loop.self = loop;
        b.meta = loop;
      },
      'Cannot store bundle.meta.self: it refers back to itself (circular reference)',
    ],
  ];
  it.each(cases)('%s', (_what, change, message) => {
    const b = base();
    change(b);
    expect(codeOf(() => encodeBundle(b))).toEqual({ code: 'INVALID_INPUT', message });
  });

  it('drops undefined fields as JSON does', () => {
    const b = decodeBundle(encodeBundle({ ...base(), config: { a: 1, b: undefined }, bpe: undefined }).bytes);
    expect(b.config).toEqual({ a: 1 });
    expect('b' in b.config).toBe(false);
    expect('bpe' in b).toBe(false);
  });

  it('a failed write leaves no file', async () => {
    const file = path.join(await tmpDir(), 'x.vtok');
    await expect(writeBundleFile(file, { ...base(), kind: '' })).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(fsp.readdir(path.dirname(file))).resolves.toEqual([]);
  });
});

describe('assertBundleId', () => {
  const id = 'ab'.repeat(32);
  const other = 'cd'.repeat(32);
  it('passes for the same id and names both ids otherwise', () => {
    expect(() => assertBundleId(id, { id })).not.toThrow();
    expect(codeOf(() => assertBundleId(id, other, 'tokens.vtt'))).toEqual({
      code: 'STORE_MISMATCH',
      message: `tokens.vtt was made with bundle ${id}, but the bundle given is ${other}; use the tokenizer that made it`,
    });
    expect(codeOf(() => assertBundleId('abc', { id }))).toEqual({
      code: 'INVALID_INPUT',
      message: 'Expected a bundle id (64 hex digits) for the data but received "abc" of type string',
    });
  });
});

// Computed once by this encoder (sha256 of the head and data of the fixed bundle above).
const GOLDEN_ID = 'fcff8c99b8d1277f6545451b389445b7ae508c0f6afea19d57e83fa8dc3c7bc2';
