/**
 * semanticWeight v in d[k] = v |z_s - E_s[k]|^2 + w |z_p - E_p[k]|^2: v = 0
 * chooses codes by the pixel branch alone (the pixel-only semantic ablation,
 * training/configs/ablation-pixel.json); the default v = 1 is the distance the
 * quantizer always used.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/random';
import { type TokenizerConfig, resolveTokenizerConfig } from '../../src/core/tokenizer-config';
import { DualQuantizer } from '../../src/tf/quantizer';
import { createTokenizerModel } from '../../src/tf/tokenizer';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function unitRows(rng: Rng, n: number, d: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) {
      out[i * d + j] = rng.normal();
      s += out[i * d + j] ** 2;
    }
    for (let j = 0; j < d; j++) out[i * d + j] /= Math.sqrt(s);
  }
  return out;
}

function makeQuantizer(config: Partial<TokenizerConfig>, es: Float32Array, ep: Float32Array): { q: DualQuantizer; dispose: () => void } {
  const c = resolveTokenizerConfig({ kmeansInit: false, deadCodeSteps: 0, ...config });
  const semantic = tf.variable(tf.tensor2d(es, [c.codebookSize, c.semanticDim]), false);
  const pixel = tf.variable(tf.tensor2d(ep, [c.codebookSize, c.pixelDim]), false);
  return { q: new DualQuantizer(c, semantic, pixel, 1), dispose: () => tf.dispose([semantic, pixel]) };
}

/** Float64 d[k] = v |zs - Es[k]|^2 + w |zp - Ep[k]|^2 for every row and code, and the argmin. */
function bruteForce(zs: Float32Array, zp: Float32Array, es: Float32Array, ep: Float32Array, K: number, ds: number, dp: number, v: number, w: number) {
  const N = zs.length / ds;
  const codes = new Int32Array(N);
  const d = new Float64Array(N * K);
  for (let i = 0; i < N; i++) {
    let best = Infinity;
    for (let k = 0; k < K; k++) {
      let a = 0;
      for (let j = 0; j < ds; j++) a += (zs[i * ds + j] - es[k * ds + j]) ** 2;
      let b = 0;
      for (let j = 0; j < dp; j++) b += (zp[i * dp + j] - ep[k * dp + j]) ** 2;
      d[i * K + k] = v * a + w * b;
      if (d[i * K + k] < best) {
        best = d[i * K + k];
        codes[i] = k;
      }
    }
  }
  return { codes, d };
}

describe('semanticWeight: config', () => {
  it('defaults to 1 and is checked', () => {
    expect(resolveTokenizerConfig().semanticWeight).toBe(1);
    expect(resolveTokenizerConfig({ semanticWeight: 0 }).semanticWeight).toBe(0);
    expect(() => resolveTokenizerConfig({ semanticWeight: -1 })).toThrow('Expected number between 0 and 1000 for semanticWeight but received -1 of type number');
    expect(() => resolveTokenizerConfig({ semanticWeight: 0, pixelWeight: 0 })).toThrow('Expected semanticWeight and pixelWeight not both 0');
  });
});

describe('semanticWeight: nearest code and losses', () => {
  it.each([
    [0, 1],
    [0, 2.5],
    [0.3, 2],
    [1, 1],
  ])('argmin equals a brute-force float64 d[k] (v %f, w %f)', (v, w) => {
    const [K, ds, dp, N] = [40, 6, 3, 300];
    const rng = new Rng(7 + 10 * v + w);
    const es = unitRows(rng, K, ds);
    const ep = unitRows(rng, K, dp);
    const zs = unitRows(rng, N, ds);
    const zp = unitRows(rng, N, dp);
    const { q, dispose } = makeQuantizer({ codebookSize: K, semanticDim: ds, pixelDim: dp, semanticWeight: v, pixelWeight: w }, es, ep);
    const got = tf.tidy(() => {
      const { es: E, ep: P } = q.codebooks();
      return q.nearest(tf.tensor2d(zs, [N, ds]), tf.tensor2d(zp, [N, dp]), E, P).dataSync() as Int32Array;
    });
    const want = bruteForce(zs, zp, es, ep, K, ds, dp, v, w);
    let exact = 0;
    for (let i = 0; i < N; i++) {
      if (got[i] === want.codes[i]) exact++;
      else expect(want.d[i * K + got[i]] - want.d[i * K + want.codes[i]]).toBeLessThan(1e-5);
    }
    expect(exact).toBeGreaterThanOrEqual(N - 2);
    dispose();
  });

  it('v = 0: the code is the nearest pixel code, whatever the semantic latent', () => {
    // K = 2, d_s = d_p = 2. E_s = [[1, 0], [0, 1]], E_p = [[1, 0], [0, 1]].
    // Row: z_s = [1, 0] (semantically code 0), z_p = [0, 1] (pixel-wise code 1).
    // v = 0: d = [0 * 0 + 1 * 2, 0 * 2 + 1 * 0] = [2, 0] -> code 1. v = 1, w = 0.5: d = [0 + 1, 2 + 0] -> code 0.
    const eye = new Float32Array([1, 0, 0, 1]);
    const zs = new Float32Array([1, 0]);
    const zp = new Float32Array([0, 1]);
    const codeWith = (v: number, w: number): number => {
      const { q, dispose } = makeQuantizer({ codebookSize: 2, semanticDim: 2, pixelDim: 2, semanticWeight: v, pixelWeight: w, reservoirSize: 4 }, eye, eye);
      const r = tf.tidy(() => q.quantize(tf.tensor2d(zs, [1, 2]), tf.tensor2d(zp, [1, 2])).codes.dataSync()[0]);
      dispose();
      return r;
    };
    expect(codeWith(0, 1)).toBe(1);
    expect(codeWith(1, 0.5)).toBe(0);
  });

  it('commitment and codebook losses are weighted by v (hand-computed)', () => {
    // Same setup, v = 0.5, w = 2, beta = 0.25. d = [0.5 * 0 + 2 * 2, 0.5 * 2 + 2 * 0] = [4, 1] -> code 1,
    // |z_s - E_s[1]|^2 = 2, |z_p - E_p[1]|^2 = 0: codebook = 0.5 * 2 + 2 * 0 = 1, commit = 0.25 * 1.
    const eye = new Float32Array([1, 0, 0, 1]);
    const { q, dispose } = makeQuantizer({ codebookSize: 2, semanticDim: 2, pixelDim: 2, semanticWeight: 0.5, pixelWeight: 2, beta: 0.25, reservoirSize: 4 }, eye, eye);
    const before = tf.memory().numTensors;
    const r = tf.tidy(() => {
      const out = q.quantize(tf.tensor2d([1, 0], [1, 2]), tf.tensor2d([0, 1], [1, 2]));
      return { code: out.codes.dataSync()[0], commit: out.commit.dataSync()[0], codebook: out.codebook.dataSync()[0] };
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.code).toBe(1);
    expect(r.codebook).toBeCloseTo(1, 6);
    expect(r.commit).toBeCloseTo(0.25, 6);
    dispose();
  });

  it('v = 0: the commitment loss sends no gradient to the semantic latent', () => {
    const [K, ds, dp, N] = [5, 3, 2, 8];
    const rng = new Rng(3);
    const { q, dispose } = makeQuantizer({ codebookSize: K, semanticDim: ds, pixelDim: dp, semanticWeight: 0 }, unitRows(rng, K, ds), unitRows(rng, K, dp));
    const zs = tf.tensor2d(unitRows(rng, N, ds), [N, ds]);
    const zp = tf.tensor2d(unitRows(rng, N, dp), [N, dp]);
    const [gs, gp] = tf.tidy(() => tf.grads((a: tf.Tensor, b: tf.Tensor) => q.quantize(a as tf.Tensor2D, b as tf.Tensor2D).commit)([zs, zp]).map((g) => tf.max(tf.abs(g)).dataSync()[0]));
    expect(gs).toBe(0);
    expect(gp).toBeGreaterThan(0);
    tf.dispose([zs, zp]);
    dispose();
  });
});

describe('semanticWeight: k-means initialization', () => {
  it('v = 0 clusters by the pixel latents alone', () => {
    // Two pixel clusters (around [1, 0] and [0, 1]); the semantic latents are random and would split the rows otherwise.
    const [K, ds, dp, n] = [2, 4, 2, 64];
    const rng = new Rng(21);
    const zs = unitRows(rng, n, ds);
    const zp = new Float32Array(n * dp);
    const cluster = Int32Array.from({ length: n }, (_, i) => i % 2);
    for (let i = 0; i < n; i++) {
      const a = cluster[i] === 0 ? [1, 0.05 * rng.normal()] : [0.05 * rng.normal(), 1];
      const s = Math.hypot(a[0], a[1]);
      zp[i * dp] = a[0] / s;
      zp[i * dp + 1] = a[1] / s;
    }
    const rows = new Float32Array(n * (ds + dp));
    for (let i = 0; i < n; i++) {
      rows.set(zs.subarray(i * ds, (i + 1) * ds), i * (ds + dp));
      rows.set(zp.subarray(i * dp, (i + 1) * dp), i * (ds + dp) + ds);
    }
    const { q, dispose } = makeQuantizer(
      { codebookSize: K, semanticDim: ds, pixelDim: dp, semanticWeight: 0, kmeansInit: true, kmeansSamples: n, reservoirSize: 4 },
      unitRows(rng, K, ds),
      unitRows(rng, K, dp),
    );
    q.initFromLatents(rows, n);
    const codes = tf.tidy(() => {
      const { es, ep } = q.codebooks();
      return q.nearest(tf.tensor2d(zs, [n, ds]), tf.tensor2d(zp, [n, dp]), es, ep).dataSync() as Int32Array;
    });
    // One code per pixel cluster (in either order).
    const first = codes[0];
    for (let i = 0; i < n; i++) expect(codes[i] === first).toBe(cluster[i] === cluster[0]);
    // The semantic rows are the normalized means of their clusters' semantic latents.
    const es = q.semantic.dataSync() as Float32Array;
    const mean = new Float64Array(ds);
    for (let i = 0; i < n; i++) if (codes[i] === first) for (let j = 0; j < ds; j++) mean[j] += zs[i * ds + j];
    const norm = Math.hypot(...mean);
    for (let j = 0; j < ds; j++) expect(es[first * ds + j]).toBeCloseTo(mean[j] / norm, 4);
    dispose();
  });
});

describe('semanticWeight: tokenizer model', () => {
  const tiny: Partial<TokenizerConfig> = {
    baseChannels: 8,
    channelMult: [1, 1, 2, 2],
    normGroups: 4,
    codebookSize: 8,
    semanticDim: 4,
    pixelDim: 4,
    headResBlocks: 0,
    kmeansSamples: 8,
    kmeansInit: false,
  };

  it('v = 0: encode chooses the nearest pixel code of the pixel latent; v = 1 keeps the default codes', () => {
    const images = tf.randomUniform([2, 32, 32, 3], -1, 1, 'float32', 5) as tf.Tensor4D;
    const pixelOnly = createTokenizerModel({ ...tiny, semanticWeight: 0 }, 3);
    const dual = createTokenizerModel(tiny, 3);
    const dualExplicit = createTokenizerModel({ ...tiny, semanticWeight: 1 }, 3);
    const before = tf.memory().numTensors;
    const codesOf = (m: typeof dual): number[] => tf.tidy(() => Array.from(m.encode(images).dataSync() as Int32Array));
    const codes = codesOf(pixelOnly);
    const { zs, zp } = pixelOnly.latents(images);
    const es = pixelOnly.quantizer.semantic.dataSync() as Float32Array; // unit rows already ('unitRows' init, 'ema' mode)
    const ep = pixelOnly.quantizer.pixel.dataSync() as Float32Array;
    const want = bruteForce(zs.dataSync() as Float32Array, zp.dataSync() as Float32Array, es, ep, 8, 4, 4, 0, 1);
    const wantDual = bruteForce(zs.dataSync() as Float32Array, zp.dataSync() as Float32Array, es, ep, 8, 4, 4, 1, 1);
    tf.dispose([zs, zp]);
    for (let i = 0; i < codes.length; i++) if (codes[i] !== want.codes[i]) expect(want.d[i * 8 + codes[i]] - want.d[i * 8 + want.codes[i]]).toBeLessThan(1e-5);
    const dualCodes = codesOf(dual);
    expect(codesOf(dualExplicit)).toEqual(dualCodes);
    for (let i = 0; i < dualCodes.length; i++) {
      if (dualCodes[i] !== wantDual.codes[i]) expect(wantDual.d[i * 8 + dualCodes[i]] - wantDual.d[i * 8 + wantDual.codes[i]]).toBeLessThan(1e-5);
    }
    // The two distances choose differently somewhere on this input (else the test above proves nothing).
    expect(want.codes.some((c, i) => c !== wantDual.codes[i])).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(images);
    pixelOnly.dispose();
    dual.dispose();
    dualExplicit.dispose();
  });
});
