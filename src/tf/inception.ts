/**
 * The Inception-v3 network of pytorch-fid (Szegedy et al., "Rethinking the
 * Inception Architecture for Computer Vision", 2016; Heusel et al. 2017 for
 * FID; https://github.com/mseitzer/pytorch-fid for the PyTorch port of the
 * TensorFlow 2015-12-05 graph that published FIDs use), in TensorFlow.js, NHWC.
 *
 * The FID network is torchvision's Inception3 (num_classes 1008, no aux head)
 * with four patches that reproduce the TensorFlow graph:
 *   - FIDInceptionA/C (Mixed_5b-5d, 6b-6e) and FIDInceptionE_1 (Mixed_7b):
 *     the branch_pool 3x3/1 average pool excludes the padding from its count
 *     (count_include_pad=False; tfjs's 'same' average pool does the same);
 *   - FIDInceptionE_2 (Mixed_7c): the branch pool is a 3x3/1 MAX pool.
 * Input: images resized to 299x299 bilinear without antialiasing
 * (F.interpolate align_corners=False = tfjs halfPixelCenters) in [-1, 1];
 * output: the 2048-d average-pooled features after Mixed_7c ("pool3").
 *
 * Weights are pytorch-fid's state-dict tensors under their PyTorch names
 * (`Mixed_5b.branch1x1.conv.weight`, [out, in, kh, kw], and the four
 * BatchNorm tensors with eps 0.001); src/io/feature-models.ts reads them from
 * the file scripts/convert-pytorch-fid.py writes. Each conv + BatchNorm +
 * ReLU is folded into one fused conv with bias at load time (in float64).
 *
 * `width` scales every channel count (rounded, at least 1) for small test
 * networks with the same blocks; the FID network is width 1.
 *
 * Example:
 *   const net = new FidInceptionV3(weights);                  // from loadFidInceptionWeights(path)
 *   const f = net.features(images);                           // [B, H, W, 3] in [-1, 1] -> [B, 2048]
 *   net.dispose();
 */

import * as tf from '@tensorflow/tfjs';
import { VtokError, checkNumber, resolveOptions } from '../core/errors';

export interface FidInceptionConfig {
  /** Channel multiplier: every conv's output channels times width, rounded, at least 1. Default 1 (the FID network). */
  width: number;
}

export const FID_INCEPTION_DEFAULTS: FidInceptionConfig = { width: 1 };
/** Side of the square input the network sees. */
export const FID_INCEPTION_INPUT_SIZE = 299;
/** BatchNorm epsilon of torchvision's BasicConv2d. */
const BN_EPS = 0.001;

/** One weight tensor: shape and float32 values (row-major, PyTorch layout). */
export interface WeightTensor {
  shape: number[];
  data: Float32Array;
}
export type NamedWeights = Record<string, WeightTensor>;

export function resolveFidInceptionConfig(config?: Partial<FidInceptionConfig>): FidInceptionConfig {
  const c = resolveOptions('FidInceptionConfig', FID_INCEPTION_DEFAULTS, config);
  checkNumber('width', c.width, 1 / 64, 1);
  return c;
}

/** A BasicConv2d: conv without bias + BatchNorm + ReLU. */
interface ConvSpec {
  name: string;
  inC: number;
  outC: number;
  kh: number;
  kw: number;
  stride: number;
  /** 'same' = PyTorch padding (k - 1) / 2 (all stride-1 convs here); 'valid' = padding 0. */
  pad: 'same' | 'valid';
}

/**
 * Every BasicConv2d of the network in order, with channel counts for the
 * given width, built by walking the architecture exactly as forward() does.
 */
export function fidInceptionConvs(config?: Partial<FidInceptionConfig>): ConvSpec[] {
  const { width } = resolveFidInceptionConfig(config);
  const ch = (c: number): number => Math.max(1, Math.floor(c * width + 0.5));
  const specs: ConvSpec[] = [];
  const conv = (name: string, inC: number, outC: number, k: [number, number] | number, stride = 1, pad: 'same' | 'valid' = 'same'): number => {
    const [kh, kw] = typeof k === 'number' ? [k, k] : k;
    specs.push({ name, inC, outC, kh, kw, stride, pad });
    return outC;
  };
  let c = 3;
  c = conv('Conv2d_1a_3x3', c, ch(32), 3, 2, 'valid');
  c = conv('Conv2d_2a_3x3', c, ch(32), 3, 1, 'valid');
  c = conv('Conv2d_2b_3x3', c, ch(64), 3, 1, 'same');
  c = conv('Conv2d_3b_1x1', c, ch(80), 1, 1, 'valid');
  c = conv('Conv2d_4a_3x3', c, ch(192), 3, 1, 'valid');
  const blockA = (m: string, inC: number, pool: number): number => {
    const b1 = conv(`${m}.branch1x1`, inC, ch(64), 1);
    const b5 = conv(`${m}.branch5x5_2`, conv(`${m}.branch5x5_1`, inC, ch(48), 1), ch(64), 5);
    const d = conv(`${m}.branch3x3dbl_1`, inC, ch(64), 1);
    const b3 = conv(`${m}.branch3x3dbl_3`, conv(`${m}.branch3x3dbl_2`, d, ch(96), 3), ch(96), 3);
    return b1 + b5 + b3 + conv(`${m}.branch_pool`, inC, ch(pool), 1);
  };
  c = blockA('Mixed_5b', c, 32);
  c = blockA('Mixed_5c', c, 64);
  c = blockA('Mixed_5d', c, 64);
  {
    const m = 'Mixed_6a';
    const b3 = conv(`${m}.branch3x3`, c, ch(384), 3, 2, 'valid');
    const d = conv(`${m}.branch3x3dbl_2`, conv(`${m}.branch3x3dbl_1`, c, ch(64), 1), ch(96), 3);
    c = b3 + conv(`${m}.branch3x3dbl_3`, d, ch(96), 3, 2, 'valid') + c;
  }
  const blockC = (m: string, inC: number, c7: number): number => {
    const b1 = conv(`${m}.branch1x1`, inC, ch(192), 1);
    let s = conv(`${m}.branch7x7_1`, inC, ch(c7), 1);
    s = conv(`${m}.branch7x7_2`, s, ch(c7), [1, 7]);
    const b7 = conv(`${m}.branch7x7_3`, s, ch(192), [7, 1]);
    let d = conv(`${m}.branch7x7dbl_1`, inC, ch(c7), 1);
    d = conv(`${m}.branch7x7dbl_2`, d, ch(c7), [7, 1]);
    d = conv(`${m}.branch7x7dbl_3`, d, ch(c7), [1, 7]);
    d = conv(`${m}.branch7x7dbl_4`, d, ch(c7), [7, 1]);
    const b77 = conv(`${m}.branch7x7dbl_5`, d, ch(192), [1, 7]);
    return b1 + b7 + b77 + conv(`${m}.branch_pool`, inC, ch(192), 1);
  };
  c = blockC('Mixed_6b', c, 128);
  c = blockC('Mixed_6c', c, 160);
  c = blockC('Mixed_6d', c, 160);
  c = blockC('Mixed_6e', c, 192);
  {
    const m = 'Mixed_7a';
    const b3 = conv(`${m}.branch3x3_2`, conv(`${m}.branch3x3_1`, c, ch(192), 1), ch(320), 3, 2, 'valid');
    let s = conv(`${m}.branch7x7x3_1`, c, ch(192), 1);
    s = conv(`${m}.branch7x7x3_2`, s, ch(192), [1, 7]);
    s = conv(`${m}.branch7x7x3_3`, s, ch(192), [7, 1]);
    c = b3 + conv(`${m}.branch7x7x3_4`, s, ch(192), 3, 2, 'valid') + c;
  }
  const blockE = (m: string, inC: number): number => {
    const b1 = conv(`${m}.branch1x1`, inC, ch(320), 1);
    const s = conv(`${m}.branch3x3_1`, inC, ch(384), 1);
    const b3 = conv(`${m}.branch3x3_2a`, s, ch(384), [1, 3]) + conv(`${m}.branch3x3_2b`, s, ch(384), [3, 1]);
    const d = conv(`${m}.branch3x3dbl_2`, conv(`${m}.branch3x3dbl_1`, inC, ch(448), 1), ch(384), 3);
    const b33 = conv(`${m}.branch3x3dbl_3a`, d, ch(384), [1, 3]) + conv(`${m}.branch3x3dbl_3b`, d, ch(384), [3, 1]);
    return b1 + b3 + b33 + conv(`${m}.branch_pool`, inC, ch(192), 1);
  };
  c = blockE('Mixed_7b', c);
  blockE('Mixed_7c', c);
  return specs;
}

/** Feature dimension for a width (2048 for the FID network). */
export function fidInceptionDim(config?: Partial<FidInceptionConfig>): number {
  const { width } = resolveFidInceptionConfig(config);
  const ch = (c: number): number => Math.max(1, Math.floor(c * width + 0.5));
  // Mixed_7c: 320 + 2 * 384 + 2 * 384 + 192.
  return ch(320) + 4 * ch(384) + ch(192);
}

/** The PyTorch state-dict names and shapes the network needs (fc and num_batches_tracked are not needed). */
export function fidInceptionWeightShapes(config?: Partial<FidInceptionConfig>): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  for (const s of fidInceptionConvs(config)) {
    shapes[`${s.name}.conv.weight`] = [s.outC, s.inC, s.kh, s.kw];
    for (const t of ['weight', 'bias', 'running_mean', 'running_var']) shapes[`${s.name}.bn.${t}`] = [s.outC];
  }
  return shapes;
}

interface FoldedConv {
  filter: tf.Tensor4D; // [kh, kw, in, out]
  bias: tf.Tensor1D; // [out]
  stride: number;
  pad: 'same' | 'valid';
}

export class FidInceptionV3 {
  readonly config: FidInceptionConfig;
  /** Feature dimension: 2048 at width 1. */
  readonly dim: number;
  private readonly convs = new Map<string, FoldedConv>();
  private disposed = false;

  /**
   * Builds the network from PyTorch state-dict tensors (see
   * fidInceptionWeightShapes); extra tensors such as fc.* and
   * *.num_batches_tracked are ignored, a missing or misshapen one is an error.
   */
  constructor(weights: NamedWeights, config?: Partial<FidInceptionConfig>) {
    this.config = resolveFidInceptionConfig(config);
    this.dim = fidInceptionDim(this.config);
    const shapes = fidInceptionWeightShapes(this.config);
    for (const [name, shape] of Object.entries(shapes)) {
      const w = weights[name];
      if (w === undefined) throw new VtokError('INVALID_INPUT', `Missing weight ${name} (shape [${shape.join(', ')}]) for the FID Inception network (width ${this.config.width})`, { subject: name });
      if (w.shape.length !== shape.length || w.shape.some((d, i) => d !== shape[i]) || w.data.length !== shape.reduce((a, b) => a * b, 1)) {
        throw new VtokError('INVALID_INPUT', `Expected shape [${shape.join(', ')}] for weight ${name} but received [${w.shape.join(', ')}] with ${w.data.length} values`, { subject: name });
      }
    }
    try {
      for (const s of fidInceptionConvs(this.config)) this.convs.set(s.name, foldConv(s, weights));
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  /** Pool features [B, dim] of images [B, H, W, 3] in [-1, 1] (any size; resized to 299x299). */
  features(images: tf.Tensor4D): tf.Tensor2D {
    if (this.disposed) throw new VtokError('INVALID_INPUT', 'This FidInceptionV3 has been disposed');
    if (images.rank !== 4 || images.shape[3] !== 3) {
      throw new VtokError('INVALID_INPUT', `Expected images of shape [B, H, W, 3] but received [${images.shape.join(', ')}]`);
    }
    return tf.tidy(() => {
      const S = FID_INCEPTION_INPUT_SIZE;
      const [, H, W] = images.shape;
      let x: tf.Tensor4D = images.toFloat();
      // F.interpolate(mode='bilinear', align_corners=False) = half-pixel centres, no antialiasing.
      if (H !== S || W !== S) x = tf.image.resizeBilinear(x, [S, S], false, true); // [B, 299, 299, 3]
      x = this.conv('Conv2d_1a_3x3', x); // [B, 149, 149, 32]
      x = this.conv('Conv2d_2a_3x3', x); // [B, 147, 147, 32]
      x = this.conv('Conv2d_2b_3x3', x); // [B, 147, 147, 64]
      x = tf.maxPool(x, 3, 2, 'valid'); // [B, 73, 73, 64]
      x = this.conv('Conv2d_3b_1x1', x); // [B, 73, 73, 80]
      x = this.conv('Conv2d_4a_3x3', x); // [B, 71, 71, 192]
      x = tf.maxPool(x, 3, 2, 'valid'); // [B, 35, 35, 192]
      x = this.blockA('Mixed_5b', x); // [B, 35, 35, 256]
      x = this.blockA('Mixed_5c', x); // [B, 35, 35, 288]
      x = this.blockA('Mixed_5d', x); // [B, 35, 35, 288]
      x = this.blockB('Mixed_6a', x); // [B, 17, 17, 768]
      for (const m of ['Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e']) x = this.blockC(m, x); // [B, 17, 17, 768]
      x = this.blockD('Mixed_7a', x); // [B, 8, 8, 1280]
      x = this.blockE('Mixed_7b', x, 'avg'); // [B, 8, 8, 2048]
      x = this.blockE('Mixed_7c', x, 'max'); // [B, 8, 8, 2048]
      return tf.mean(x, [1, 2]) as tf.Tensor2D; // [B, 2048]
    });
  }

  dispose(): void {
    for (const c of this.convs.values()) {
      c.filter.dispose();
      c.bias.dispose();
    }
    this.convs.clear();
    this.disposed = true;
  }

  private conv(name: string, x: tf.Tensor4D): tf.Tensor4D {
    const c = this.convs.get(name)!;
    return tf.fused.conv2d({ x, filter: c.filter, bias: c.bias, strides: c.stride, pad: c.pad, activation: 'relu' });
  }

  private chain(x: tf.Tensor4D, ...names: string[]): tf.Tensor4D {
    return names.reduce((y, n) => this.conv(n, y), x);
  }

  /** FIDInceptionA: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool(3, excluding padding)-1x1. */
  private blockA(m: string, x: tf.Tensor4D): tf.Tensor4D {
    return tf.concat(
      [
        this.conv(`${m}.branch1x1`, x),
        this.chain(x, `${m}.branch5x5_1`, `${m}.branch5x5_2`),
        this.chain(x, `${m}.branch3x3dbl_1`, `${m}.branch3x3dbl_2`, `${m}.branch3x3dbl_3`),
        this.conv(`${m}.branch_pool`, tf.avgPool(x, 3, 1, 'same')),
      ],
      3,
    );
  }

  /** InceptionB (unpatched): 3x3/2 | 1x1-3x3-3x3/2 | maxpool 3/2. */
  private blockB(m: string, x: tf.Tensor4D): tf.Tensor4D {
    return tf.concat(
      [
        this.conv(`${m}.branch3x3`, x),
        this.chain(x, `${m}.branch3x3dbl_1`, `${m}.branch3x3dbl_2`, `${m}.branch3x3dbl_3`),
        tf.maxPool(x, 3, 2, 'valid'),
      ],
      3,
    );
  }

  /** FIDInceptionC: 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avgpool(3, excluding padding)-1x1. */
  private blockC(m: string, x: tf.Tensor4D): tf.Tensor4D {
    return tf.concat(
      [
        this.conv(`${m}.branch1x1`, x),
        this.chain(x, `${m}.branch7x7_1`, `${m}.branch7x7_2`, `${m}.branch7x7_3`),
        this.chain(x, `${m}.branch7x7dbl_1`, `${m}.branch7x7dbl_2`, `${m}.branch7x7dbl_3`, `${m}.branch7x7dbl_4`, `${m}.branch7x7dbl_5`),
        this.conv(`${m}.branch_pool`, tf.avgPool(x, 3, 1, 'same')),
      ],
      3,
    );
  }

  /** InceptionD (unpatched): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool 3/2. */
  private blockD(m: string, x: tf.Tensor4D): tf.Tensor4D {
    return tf.concat(
      [
        this.chain(x, `${m}.branch3x3_1`, `${m}.branch3x3_2`),
        this.chain(x, `${m}.branch7x7x3_1`, `${m}.branch7x7x3_2`, `${m}.branch7x7x3_3`, `${m}.branch7x7x3_4`),
        tf.maxPool(x, 3, 2, 'valid'),
      ],
      3,
    );
  }

  /** FIDInceptionE_1 ('avg', excluding padding) and FIDInceptionE_2 ('max'): 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | pool-1x1. */
  private blockE(m: string, x: tf.Tensor4D, pool: 'avg' | 'max'): tf.Tensor4D {
    const s = this.conv(`${m}.branch3x3_1`, x);
    const d = this.chain(x, `${m}.branch3x3dbl_1`, `${m}.branch3x3dbl_2`);
    const pooled = pool === 'avg' ? tf.avgPool(x, 3, 1, 'same') : tf.maxPool(x, 3, 1, 'same');
    return tf.concat(
      [
        this.conv(`${m}.branch1x1`, x),
        this.conv(`${m}.branch3x3_2a`, s),
        this.conv(`${m}.branch3x3_2b`, s),
        this.conv(`${m}.branch3x3dbl_3a`, d),
        this.conv(`${m}.branch3x3dbl_3b`, d),
        this.conv(`${m}.branch_pool`, pooled),
      ],
      3,
    );
  }
}

/** Folds BatchNorm (eps 0.001) into the conv, in float64, and moves the filter to [kh, kw, in, out]. */
function foldConv(s: ConvSpec, weights: NamedWeights): FoldedConv {
  const w = weights[`${s.name}.conv.weight`].data; // [out, in, kh, kw]
  const gamma = weights[`${s.name}.bn.weight`].data;
  const beta = weights[`${s.name}.bn.bias`].data;
  const mean = weights[`${s.name}.bn.running_mean`].data;
  const variance = weights[`${s.name}.bn.running_var`].data;
  const { inC, outC, kh, kw } = s;
  const filter = new Float32Array(kh * kw * inC * outC);
  const bias = new Float32Array(outC);
  for (let o = 0; o < outC; o++) {
    const scale = gamma[o] / Math.sqrt(variance[o] + BN_EPS);
    bias[o] = beta[o] - mean[o] * scale;
    for (let i = 0; i < inC; i++) {
      for (let y = 0; y < kh; y++) {
        for (let x = 0; x < kw; x++) {
          filter[((y * kw + x) * inC + i) * outC + o] = w[((o * inC + i) * kh + y) * kw + x] * scale;
        }
      }
    }
  }
  return { filter: tf.tensor4d(filter, [kh, kw, inC, outC]), bias: tf.tensor1d(bias), stride: s.stride, pad: s.pad };
}

/**
 * Deterministic pseudo-random weights for every tensor of the network, the
 * same bit for bit in Python (tests/fixtures/inception/make_inception_fixture.py),
 * so that a full-size network can be checked against PyTorch without
 * shipping 95 MB of weights. NOT trained weights: features from them are not FID.
 *
 * Element i of tensor `name`: u = fmix32(key + i * 0x9E3779B9) / 2^32 with
 * key = fmix32(fnv1a32(name) + seed * 0x9E3779B9) (all mod 2^32, fmix32 =
 * MurmurHash3's finalizer), then, in float64 and rounded to float32:
 *   conv.weight  (2u - 1) * sqrt(6 / fan_in)   (He-uniform: keeps activations O(1))
 *   bn.weight    1 + 0.25 * (2u - 1)
 *   bn.bias      0.1 * (2u - 1)
 *   running_mean 0.1 * (2u - 1)
 *   running_var  1 + 0.5 * u
 */
export function seededFidInceptionWeights(seed: number, config?: Partial<FidInceptionConfig>): NamedWeights {
  const out: NamedWeights = {};
  for (const [name, shape] of Object.entries(fidInceptionWeightShapes(config))) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const key = fmix32((fnv1a32(name) + mul32(seed >>> 0, 0x9e3779b9)) >>> 0);
    const kind = name.slice(name.lastIndexOf('.') + 1);
    const fanIn = shape.length === 4 ? shape[1] * shape[2] * shape[3] : 1;
    if (name.endsWith('.conv.weight')) {
      const scale = Math.sqrt(6 / fanIn);
      for (let i = 0; i < n; i++) data[i] = (2 * uAt(key, i) - 1) * scale;
    } else if (kind === 'weight') {
      for (let i = 0; i < n; i++) data[i] = 1 + 0.25 * (2 * uAt(key, i) - 1);
    } else if (kind === 'bias' || kind === 'running_mean') {
      for (let i = 0; i < n; i++) data[i] = 0.1 * (2 * uAt(key, i) - 1);
    } else {
      for (let i = 0; i < n; i++) data[i] = 1 + 0.5 * uAt(key, i);
    }
    out[name] = { shape, data };
  }
  return out;
}

/** Element i's uniform number in [0, 1) for a tensor key (exact in float64). */
function uAt(key: number, i: number): number {
  return fmix32((key + mul32(i, 0x9e3779b9)) >>> 0) / 4294967296;
}

/**
 * (a * b) mod 2^32 for a, b in [0, 2^32). Not Math.imul: under jest (a vm
 * context) calls to Math builtins are not inlined and Math.imul runs ~200x
 * slower, which turns the 21.8M-value generator from 0.5 s into 16 s.
 */
export function mul32(a: number, b: number): number {
  const lo = (a & 0xffff) * b; // < 2^48, exact
  const hi = ((a >>> 16) * b) & 0xffff; // low 16 bits of the high half's product
  return (lo + hi * 65536) >>> 0;
}

/** MurmurHash3's 32-bit finalizer. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = mul32(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = mul32(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over the UTF-16 code units of an ASCII name. */
function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = mul32(h, 0x01000193);
  }
  return h >>> 0;
}
