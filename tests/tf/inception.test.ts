import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { VtokError } from '../../src/core/errors';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import {
  FidInceptionV3,
  fidInceptionConvs,
  fidInceptionDim,
  fidInceptionWeightShapes,
  seededFidInceptionWeights,
} from '../../src/tf/inception';
import { fidInceptionExtractor, scoreLabel } from '../../src/tf/features';
import {
  loadFeatureExtractor,
  parseSafetensors,
  readFidInceptionWeights,
  serializeSafetensors,
  writeFidInceptionWeights,
} from '../../src/io/feature-models';
import { f32, maxAbsDiff, reference, seededImage } from '../fixtures/inception/helpers';

// Reference: tests/fixtures/inception/make_inception_fixture.py, pytorch-fid's FID Inception-v3 built in
// PyTorch (float64) from torchvision's blocks with pytorch-fid's patches, with the deterministic weights
// of seededFidInceptionWeights, run on deterministic 8-bit noise images given in [0, 1] as pytorch-fid takes them.
const SMALL = reference.cases.find((c) => c.width === 0.125)!;
let tmp: string;

// wasm: the CPU backend needs ~20 s for these 299x299 forward passes, wasm ~2 s.
beforeAll(async () => {
  await initBackend({ backend: 'wasm', threads: 1 });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vtok-inception-'));
});
afterAll(async () => {
  fs.rmSync(tmp, { recursive: true, force: true });
  await shutdownBackend();
});

describe('FID Inception-v3 architecture', () => {
  it('has pytorch-fid\'s 94 BasicConv2d layers and its tensor names, counted like the PyTorch reference', () => {
    for (const c of reference.cases) {
      const shapes = fidInceptionWeightShapes({ width: c.width });
      expect(Object.keys(shapes).length).toBe(c.numWeights);
      expect(Object.values(shapes).reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0)).toBe(c.numParams);
      expect(fidInceptionDim({ width: c.width })).toBe(c.dim);
    }
    expect(fidInceptionConvs().length).toBe(94);
    const shapes = fidInceptionWeightShapes();
    expect(shapes['Conv2d_1a_3x3.conv.weight']).toEqual([32, 3, 3, 3]);
    expect(shapes['Mixed_6b.branch7x7_2.conv.weight']).toEqual([128, 128, 1, 7]);
    expect(shapes['Mixed_7c.branch_pool.bn.running_var']).toEqual([192]);
    expect(fidInceptionDim()).toBe(2048);
  });

  it(`width ${SMALL.width}: features match PyTorch to 1e-4 (up- and down-sampled inputs)`, () => {
    const net = new FidInceptionV3(seededFidInceptionWeights(reference.seed, { width: SMALL.width }), { width: SMALL.width });
    const expected = f32(SMALL.features);
    reference.images.forEach((im, b) => {
      const x = seededImage(im.key, im.height, im.width);
      const f = net.features(x);
      expect(f.shape).toEqual([1, SMALL.dim]);
      expect(maxAbsDiff(f.dataSync(), expected.subarray(b * SMALL.dim, (b + 1) * SMALL.dim))).toBeLessThan(1e-4);
      tf.dispose([x, f]);
    });
    net.dispose();
  });

  it('batches: a batch gives each image\'s own features; no tensors leak', () => {
    const net = new FidInceptionV3(seededFidInceptionWeights(5, { width: 0.125 }), { width: 0.125 });
    const a = seededImage(1, 40, 50);
    const b = seededImage(2, 40, 50);
    const batch = tf.concat([a, b]);
    const before = tf.memory().numTensors;
    const fb = net.features(batch);
    expect(tf.memory().numTensors).toBe(before + 1);
    const fa = net.features(a);
    const f2 = net.features(b);
    expect(maxAbsDiff(fb.dataSync().subarray(0, net.dim), fa.dataSync())).toBeLessThan(1e-6);
    expect(maxAbsDiff(fb.dataSync().subarray(net.dim), f2.dataSync())).toBeLessThan(1e-6);
    tf.dispose([a, b, batch, fa, fb, f2]);
    const beforeNet = tf.memory().numTensors;
    net.dispose();
    expect(tf.memory().numTensors).toBe(beforeNet - 2 * 94); // a filter and a bias per conv
  });

  it('rejects missing and misshapen weights, bad configs and bad images', () => {
    const w = seededFidInceptionWeights(1, { width: 0.125 });
    const before = tf.memory().numTensors;
    const { ['Mixed_7c.branch_pool.bn.bias']: _gone, ...missing } = w;
    expect(() => new FidInceptionV3(missing, { width: 0.125 })).toThrow('Missing weight Mixed_7c.branch_pool.bn.bias (shape [24]) for the FID Inception network (width 0.125)');
    expect(() => new FidInceptionV3({ ...w, 'Conv2d_1a_3x3.conv.weight': { shape: [4, 3, 3, 2], data: new Float32Array(72) } }, { width: 0.125 })).toThrow(
      'Expected shape [4, 3, 3, 3] for weight Conv2d_1a_3x3.conv.weight but received [4, 3, 3, 2] with 72 values',
    );
    expect(() => new FidInceptionV3(w)).toThrow('Expected shape [32, 3, 3, 3] for weight Conv2d_1a_3x3.conv.weight but received [4, 3, 3, 3] with 108 values');
    expect(() => new FidInceptionV3(w, { width: 2 })).toThrow('Expected number between 0.015625 and 1 for width but received 2 of type number');
    expect(() => new FidInceptionV3(w, { widht: 1 } as never)).toThrow('Unknown option "widht" for FidInceptionConfig');
    expect(tf.memory().numTensors).toBe(before);
    const net = new FidInceptionV3(w, { width: 0.125 });
    const grey = tf.zeros([1, 32, 32, 1]) as tf.Tensor4D;
    expect(() => net.features(grey)).toThrow('Expected images of shape [B, H, W, 3] but received [1, 32, 32, 1]');
    net.dispose();
    expect(() => net.features(grey)).toThrow('This FidInceptionV3 has been disposed');
    grey.dispose();
  });
});

describe('FID Inception weights file (safetensors)', () => {
  it('round-trips through a file and loads as an extractor that is labelled non-standard', async () => {
    const width = SMALL.width;
    const weights = seededFidInceptionWeights(reference.seed, { width });
    const file = path.join(tmp, 'small.safetensors');
    // A width-0.125 file vouched "standard" is still not standard: only width 1 can be pytorch-fid's network.
    await writeFidInceptionWeights(file, weights, { width: String(width), source: 'seeded test weights', standard: 'true' });
    const read = await readFidInceptionWeights(file);
    expect(read.width).toBe(width);
    expect(read.standard).toBe(false);
    expect(read.metadata).toMatchObject({ format: 'vtok-fid-inception', version: '1', source: 'seeded test weights' });
    for (const [name, t] of Object.entries(weights)) {
      expect(read.weights[name].shape).toEqual(t.shape);
      // Byte comparison: jest's toEqual walks typed arrays element by element (seconds for 350k values).
      expect(Buffer.compare(Buffer.from(read.weights[name].data.buffer), Buffer.from(t.data.buffer))).toBe(0);
    }
    const ex = await loadFeatureExtractor({ kind: 'pytorch-fid-inception', weights: file, batchSize: 1 });
    expect(ex.dim).toBe(SMALL.dim);
    expect(ex.standard).toBe(false);
    expect(ex.name).toBe('pytorch-fid-inception-v3-width-0.125');
    expect(scoreLabel(ex)).toBe('FD[pytorch-fid-inception-v3-width-0.125]');
    expect(ex.description).toContain("weights from seeded test weights NOT recognised as pytorch-fid's: not FID");
    // extract() in chunks of 1 over a batch of 2 equals the PyTorch reference for the first image twice.
    const im = reference.images[0];
    const x = seededImage(im.key, im.height, im.width);
    const two = tf.concat([x, x]);
    const before = tf.memory().numTensors;
    const f = await ex.extract(two);
    expect(tf.memory().numTensors).toBe(before);
    const expected = f32(SMALL.features).subarray(0, SMALL.dim);
    expect(maxAbsDiff(f.subarray(0, SMALL.dim), expected)).toBeLessThan(1e-4);
    expect(maxAbsDiff(f.subarray(SMALL.dim), expected)).toBeLessThan(1e-4);
    tf.dispose([x, two]);
    ex.dispose();
  });

  it('only pytorch-fid\'s own network and weights are called FID', () => {
    const net = new FidInceptionV3(seededFidInceptionWeights(1, { width: 0.125 }), { width: 0.125 });
    expect(fidInceptionExtractor(net, { standard: true }).standard).toBe(false); // width 0.125
    net.dispose();
    expect(scoreLabel({ name: 'pytorch-fid-inception-v3', standard: true })).toBe('FID');
    expect(scoreLabel({ name: 'nsfwjs-inception-v3', standard: false })).toBe('FD[nsfwjs-inception-v3]');
  });

  it('safetensors bytes round-trip and match the format (8-byte length, JSON header, little-endian data)', () => {
    const bytes = serializeSafetensors({ a: { shape: [2], data: Float32Array.of(1, -2) }, b: { shape: [1, 1], data: Float32Array.of(0.5) } }, { k: 'v' });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + n) % 8).toBe(0);
    expect(JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString())).toEqual({
      __metadata__: { k: 'v' },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [1, 1], data_offsets: [8, 12] },
    });
    expect(Array.from(bytes.subarray(8 + n, 8 + n + 4))).toEqual([0, 0, 0x80, 0x3f]); // 1.0f little-endian
    const back = parseSafetensors(bytes);
    expect(back.metadata).toEqual({ k: 'v' });
    expect(Array.from(back.tensors.a.data)).toEqual([1, -2]);
    expect(back.tensors.b.shape).toEqual([1, 1]);
  });

  it('rejects damaged and foreign files, naming the file', async () => {
    const good = serializeSafetensors({ a: { shape: [2], data: Float32Array.of(1, 2) } });
    expect(() => parseSafetensors(good.subarray(0, 5), 'x.st')).toThrow('x.st is not a valid safetensors file: 5 bytes is shorter than the 8-byte header length');
    expect(() => parseSafetensors(good.subarray(0, good.length - 1), 'x.st')).toThrow(
      'x.st is not a valid safetensors file: tensor a [2] needs 8 bytes but data_offsets are [0, 8] within 7 data bytes',
    );
    const header = (json: string): Uint8Array => {
      const h = Buffer.from(json);
      const out = new Uint8Array(8 + h.length);
      new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
      out.set(h, 8);
      return out;
    };
    expect(() => parseSafetensors(header('{"a": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}'), 'x.st')).toThrow(
      'x.st is not a valid safetensors file: tensor a has dtype "F16" of type string; only F32 is supported',
    );
    expect(() => parseSafetensors(header('not json'), 'x.st')).toThrow('x.st is not a valid safetensors file: its header is not JSON');
    expect(() => parseSafetensors(header('{}').subarray(0, 9), 'x.st')).toThrow('x.st is not a valid safetensors file: header length 2 does not fit in 9 bytes');

    const foreign = path.join(tmp, 'foreign.safetensors');
    fs.writeFileSync(foreign, serializeSafetensors({}, { format: 'something-else' }));
    await expect(readFidInceptionWeights(foreign)).rejects.toThrow(`Expected metadata format "vtok-fid-inception" in ${foreign} but received "something-else" of type string`);
    const future = path.join(tmp, 'future.safetensors');
    fs.writeFileSync(future, serializeSafetensors({}, { format: 'vtok-fid-inception', version: '2' }));
    await expect(readFidInceptionWeights(future)).rejects.toThrow(`Expected vtok-fid-inception version 1 in ${future} but received "2" of type string`);
    const empty = path.join(tmp, 'empty.safetensors');
    await writeFidInceptionWeights(empty, {});
    await expect(readFidInceptionWeights(empty)).rejects.toThrow(`${empty} lacks 470 FID Inception tensors, e.g. Conv2d_1a_3x3.conv.weight, Conv2d_1a_3x3.bn.weight, Conv2d_1a_3x3.bn.bias`);
    const err = await readFidInceptionWeights(path.join(tmp, 'nope.safetensors')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VtokError);
    expect((err as VtokError).code).toBe('FILE_NOT_FOUND');
    expect((err as VtokError).message).toContain('convert pytorch-fid\'s pt_inception-2015-12-05-6726825d.pth with scripts/convert-pytorch-fid.py');
  });

  it('loadFeatureExtractor rejects bad specs', async () => {
    await expect(loadFeatureExtractor({ kind: 'clip' } as never)).rejects.toThrow(
      'Expected one of "pytorch-fid-inception", "nsfwjs-inception-v3", "nsfwjs-mobilenet-v2" for kind but received "clip" of type string',
    );
    await expect(loadFeatureExtractor({ kind: 'pytorch-fid-inception' } as never)).rejects.toThrow('Expected the path of a converted weights file for weights but received undefined');
    await expect(loadFeatureExtractor({ kind: 'nsfwjs-mobilenet-v2', weights: 'x' } as never)).rejects.toThrow(
      'Unknown option "weights" for loadFeatureExtractor kind "nsfwjs-mobilenet-v2"; known options are kind, batchSize',
    );
  });
});
