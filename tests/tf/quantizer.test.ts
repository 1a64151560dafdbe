import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../src/core/random';
import { type TokenizerConfig, resolveTokenizerConfig } from '../../src/core/tokenizer-config';
import { DualQuantizer, type QuantizerBatch, histogramStats } from '../../src/tf/quantizer';

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

/** A quantizer on given codebooks (owned by the returned dispose). */
function makeQuantizer(config: Partial<TokenizerConfig>, es: Float32Array, ep: Float32Array, seed = 1): { q: DualQuantizer; dispose: () => void } {
  const c = resolveTokenizerConfig({ kmeansInit: false, deadCodeSteps: 0, ...config });
  const semantic = tf.variable(tf.tensor2d(es, [c.codebookSize, c.semanticDim]), c.codebookUpdate === 'loss');
  const pixel = tf.variable(tf.tensor2d(ep, [c.codebookSize, c.pixelDim]), c.codebookUpdate === 'loss');
  const q = new DualQuantizer(c, semantic, pixel, seed);
  return {
    q,
    dispose: () => {
      semantic.dispose();
      pixel.dispose();
    },
  };
}

/** argmin_k of |zs - Es[k]|^2 + w |zp - Ep[k]|^2 in float64, with the distances. */
function bruteForce(zs: Float32Array, zp: Float32Array, es: Float32Array, ep: Float32Array, K: number, ds: number, dp: number, w: number) {
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
      d[i * K + k] = a + w * b;
      if (d[i * K + k] < best) {
        best = d[i * K + k];
        codes[i] = k;
      }
    }
  }
  return { codes, d };
}

describe('DualQuantizer: nearest code', () => {
  it.each([
    [37, 5, 3, 1],
    [37, 5, 3, 0],
    [64, 8, 4, 0.3],
    [16, 2, 6, 5],
  ])('argmin equals a brute-force float64 d[k] (K %i, d_s %i, d_p %i, w %f)', (K, ds, dp, w) => {
    const rng = new Rng(K * 100 + ds);
    const N = 300;
    const es = unitRows(rng, K, ds);
    const ep = unitRows(rng, K, dp);
    const zs = unitRows(rng, N, ds);
    const zp = unitRows(rng, N, dp);
    const { q, dispose } = makeQuantizer({ codebookSize: K, semanticDim: ds, pixelDim: dp, pixelWeight: w }, es, ep);
    const got = tf.tidy(() => {
      const { es: E, ep: P } = q.codebooks();
      return q.nearest(tf.tensor2d(zs, [N, ds]), tf.tensor2d(zp, [N, dp]), E, P).dataSync() as Int32Array;
    });
    const want = bruteForce(zs, zp, es, ep, K, ds, dp, w);
    let exact = 0;
    for (let i = 0; i < N; i++) {
      if (got[i] === want.codes[i]) exact++;
      // A different code is acceptable only as a float32 near-tie.
      else expect(want.d[i * K + got[i]] - want.d[i * K + want.codes[i]]).toBeLessThan(1e-5);
    }
    expect(exact).toBeGreaterThanOrEqual(N - 2);
    dispose();
  });

  it('gives the same codes when the distance matrix is split into row chunks (large K)', () => {
    const K = 70000; // 2^22 / K = 59 rows per chunk, so 130 rows take 3 chunks
    const rng = new Rng(5);
    const [ds, dp, N] = [3, 2, 130];
    const es = unitRows(rng, K, ds);
    const ep = unitRows(rng, K, dp);
    const zs = unitRows(rng, N, ds);
    const zp = unitRows(rng, N, dp);
    const { q, dispose } = makeQuantizer({ codebookSize: K, semanticDim: ds, pixelDim: dp, reservoirSize: 4 }, es, ep);
    const got = tf.tidy(() => {
      const { es: E, ep: P } = q.codebooks();
      return q.nearest(tf.tensor2d(zs, [N, ds]), tf.tensor2d(zp, [N, dp]), E, P).dataSync() as Int32Array;
    });
    const want = bruteForce(zs, zp, es, ep, K, ds, dp, 1);
    for (let i = 0; i < N; i++) expect(want.d[i * K + got[i]] - want.d[i * K + want.codes[i]]).toBeLessThan(1e-5);
    dispose();
  });

  it('quantize: codebook rows, straight-through values, and losses equal to the mean of the minimum distance', () => {
    const [K, ds, dp, N, w, beta] = [12, 4, 3, 40, 0.7, 0.25];
    const rng = new Rng(9);
    const es = unitRows(rng, K, ds);
    const ep = unitRows(rng, K, dp);
    const zs = unitRows(rng, N, ds);
    const zp = unitRows(rng, N, dp);
    const { q, dispose } = makeQuantizer({ codebookSize: K, semanticDim: ds, pixelDim: dp, pixelWeight: w, beta }, es, ep);
    const want = bruteForce(zs, zp, es, ep, K, ds, dp, w);
    const before = tf.memory().numTensors;
    const r = tf.tidy(() => {
      const out = q.quantize(tf.tensor2d(zs, [N, ds]), tf.tensor2d(zp, [N, dp]));
      return { codes: out.codes.dataSync(), qs: out.qs.dataSync(), qp: out.qp.dataSync(), commit: out.commit.dataSync()[0], codebook: out.codebook.dataSync()[0] };
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(r.codes)).toEqual(Array.from(want.codes));
    let meanMin = 0;
    for (let i = 0; i < N; i++) {
      const k = want.codes[i];
      meanMin += want.d[i * K + k] / N;
      for (let j = 0; j < ds; j++) expect(r.qs[i * ds + j]).toBeCloseTo(es[k * ds + j], 6);
      for (let j = 0; j < dp; j++) expect(r.qp[i * dp + j]).toBeCloseTo(ep[k * dp + j], 6);
    }
    expect(r.codebook).toBeCloseTo(meanMin, 5);
    expect(r.commit).toBeCloseTo(beta * meanMin, 5);
    dispose();
  });

  it('gradients: straight-through to z, commitment to z only, codebook loss to the codebooks only', () => {
    const [K, ds, dp, N] = [6, 3, 2, 10];
    const rng = new Rng(11);
    const { q, dispose } = makeQuantizer({ codebookSize: K, semanticDim: ds, pixelDim: dp, codebookUpdate: 'loss' }, unitRows(rng, K, ds), unitRows(rng, K, dp));
    const zs = tf.tensor2d(unitRows(rng, N, ds), [N, ds]);
    const zp = tf.tensor2d(unitRows(rng, N, dp), [N, dp]);
    const upstream = tf.randomNormal([N, ds], 0, 1, 'float32', 3);
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      // d(sum(qs * u))/dzs = u exactly (straight-through); qs is not connected to zp at all (the argmin is off the tape).
      const [gs] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(q.quantize(a as tf.Tensor2D, zp).qs, upstream)))([zs]);
      expect(Array.from(gs.dataSync())).toEqual(Array.from(upstream.dataSync()));

      const commit = tf.variableGrads(() => q.quantize(zs, zp).commit, [q.semantic, q.pixel]);
      expect(tf.max(tf.abs(commit.grads[q.semantic.name])).dataSync()[0]).toBe(0);
      const codebook = tf.variableGrads(() => q.quantize(zs, zp).codebook, [q.semantic, q.pixel]);
      expect(tf.max(tf.abs(codebook.grads[q.semantic.name])).dataSync()[0]).toBeGreaterThan(0);
      expect(tf.max(tf.abs(codebook.grads[q.pixel.name])).dataSync()[0]).toBeGreaterThan(0);
      const [gz] = tf.grads((a: tf.Tensor) => q.quantize(a as tf.Tensor2D, zp).codebook)([zs]);
      expect(tf.max(tf.abs(gz)).dataSync()[0]).toBe(0);
    });
    expect(tf.memory().numTensors).toBe(before);
    // (tfjs leaks the tensors of a tf.grads call that throws, so this one runs after the leak check.)
    expect(() => tf.grads((b: tf.Tensor) => tf.sum(q.quantize(zs, b as tf.Tensor2D).qs))([zp])).toThrow('Cannot compute gradient of y=f(x) with respect to x');
    tf.dispose([zs, zp, upstream]);
    dispose();
  });
});

describe('DualQuantizer: codebook health', () => {
  const eye2 = new Float32Array([1, 0, 0, 1]);

  it('EMA update, checked by hand', () => {
    // K = 2, d_s = d_p = 2, decay 0.5. Start: E_s = E_p = identity, cluster sizes 0, sums = codes.
    const { q, dispose } = makeQuantizer({ codebookSize: 2, semanticDim: 2, pixelDim: 2, emaDecay: 0.5, emaEps: 0.01, reservoirSize: 4 }, eye2, eye2);
    q.update({
      codes: new Int32Array([0, 0, 1]),
      zs: new Float32Array([0.6, 0.8, 0.8, 0.6, 0, 1]),
      zp: new Float32Array([1, 0, 0, 1, 0, 1]),
    });
    // sizes = 0.5 * 0 + 0.5 * [2, 1] = [1, 0.5]
    // sum_s[0] = 0.5 * [1, 0] + 0.5 * ([0.6, 0.8] + [0.8, 0.6]) = [1.2, 0.7];  sum_s[1] = 0.5 * [0, 1] + 0.5 * [0, 1] = [0, 1]
    // sum_p[0] = 0.5 * [1, 0] + 0.5 * ([1, 0] + [0, 1]) = [1, 0.5];            sum_p[1] = [0, 1]
    // E_k = normalize(sum_k / smoothed size_k): the direction of the sum.
    let s = q.getState();
    expect(Array.from(s['quantizer.ema_cluster_size'].data)).toEqual([1, 0.5]);
    expectClose(s['quantizer.ema_sum_s'].data, [1.2, 0.7, 0, 1]);
    expectClose(s['quantizer.ema_sum_p'].data, [1, 0.5, 0, 1]);
    const n0 = Math.sqrt(1.2 * 1.2 + 0.7 * 0.7);
    expectClose(q.semantic.dataSync(), [1.2 / n0, 0.7 / n0, 0, 1]);
    expectClose(q.pixel.dataSync(), [1 / Math.sqrt(1.25), 0.5 / Math.sqrt(1.25), 0, 1]);

    // One more step, only code 1 used, with z = ([1, 0], [1, 0]):
    // sizes = [0.5, 0.5 * 0.5 + 0.5 * 1] = [0.5, 0.75]; sum_s[1] = 0.5 * [0, 1] + 0.5 * [1, 0] = [0.5, 0.5]
    q.update({ codes: new Int32Array([1]), zs: new Float32Array([1, 0]), zp: new Float32Array([1, 0]) });
    s = q.getState();
    expect(Array.from(s['quantizer.ema_cluster_size'].data)).toEqual([0.5, 0.75]);
    expectClose(s['quantizer.ema_sum_s'].data, [0.6, 0.35, 0.5, 0.5]);
    const r = Math.SQRT1_2;
    expectClose(q.semantic.dataSync(), [1.2 / n0, 0.7 / n0, r, r]); // code 0 keeps its direction
    expectClose(q.pixel.dataSync(), [1 / Math.sqrt(1.25), 0.5 / Math.sqrt(1.25), r, r]);
    dispose();
  });

  it('dead-code restart replaces exactly the codes unused for deadCodeSteps updates, by distinct reservoir latents', () => {
    const [K, ds, dp] = [6, 2, 2];
    const rng = new Rng(21);
    const es = unitRows(rng, K, ds);
    const ep = unitRows(rng, K, dp);
    const { q, dispose } = makeQuantizer({ codebookSize: K, semanticDim: ds, pixelDim: dp, codebookUpdate: 'loss', deadCodeSteps: 2, reservoirSize: 8 }, es, ep, 4);
    const batch = (codes: number[]): QuantizerBatch => ({ codes: Int32Array.from(codes), zs: unitRows(rng, codes.length, ds), zp: unitRows(rng, codes.length, dp) });
    const b1 = batch([0, 1, 0, 1]);
    const b2 = batch([1, 0, 0, 1]);
    expect(q.update(b1).restarted).toEqual([]); // codes 2..5 idle for 1 update
    const r2 = q.update(b2);
    expect(r2.restarted).toEqual([2, 3, 4, 5]); // idle for 2 updates
    const newS = q.semantic.dataSync();
    const newP = q.pixel.dataSync();
    // Codes 0 and 1 are untouched ('loss' mode: nothing else moves them).
    expect(Array.from(newS.slice(0, 2 * ds))).toEqual(Array.from(es.slice(0, 2 * ds)));
    expect(Array.from(newP.slice(0, 2 * dp))).toEqual(Array.from(ep.slice(0, 2 * dp)));
    // Each restarted code is one of the latents the reservoir took (2 per update: a quarter of 8), all different.
    const seen = [b1, b2].flatMap((b) => Array.from({ length: 4 }, (_, i) => [...b.zs.slice(i * ds, (i + 1) * ds), ...b.zp.slice(i * dp, (i + 1) * dp)]));
    const sources = [2, 3, 4, 5].map((k) => {
      const row = [...newS.slice(k * ds, (k + 1) * ds), ...newP.slice(k * dp, (k + 1) * dp)];
      const j = seen.findIndex((z) => z.every((v, t) => Math.abs(v - row[t]) < 1e-6));
      expect(j).toBeGreaterThanOrEqual(0);
      return j;
    });
    expect(new Set(sources).size).toBe(4);
    // Restarted codes get a fresh grace period; code 1 (last used at update 2) dies at update 4 with them.
    expect(q.update(batch([0, 0, 0, 0])).restarted).toEqual([]);
    expect(q.update(batch([0, 0, 0, 0])).restarted).toEqual([1, 2, 3, 4, 5]);
    expect(q.stats().restarts).toBe(9);
    dispose();
  });

  it('EMA mode also restarts codes whose cluster size fell below deadCodeThreshold', () => {
    const { q, dispose } = makeQuantizer({ codebookSize: 2, semanticDim: 2, pixelDim: 2, emaDecay: 0.5, deadCodeThreshold: 0.3, reservoirSize: 4 }, eye2, eye2);
    // Sizes after this update: [0.5 * 3, 0] -> code 1 is below 0.3 and is restarted from a latent of this batch ([0, 1], [1, 0]).
    // Code 0 only moves by EMA: sum_s[0] = 0.5 * [1, 0] + 0.5 * 3 * [0, 1] = [0.5, 1.5].
    const r = q.update({ codes: new Int32Array([0, 0, 0]), zs: new Float32Array([0, 1, 0, 1, 0, 1]), zp: new Float32Array([1, 0, 1, 0, 1, 0]) });
    expect(r.restarted).toEqual([1]);
    expectClose(q.semantic.dataSync(), [1 / Math.sqrt(10), 3 / Math.sqrt(10), 0, 1]);
    expectClose(q.pixel.dataSync(), [1, 0, 1, 0]);
    expectClose(q.getState()['quantizer.ema_cluster_size'].data, [1.5, 0.3]);
    dispose();
  });

  it('usage and perplexity over the window and in total, checked by hand', () => {
    const { q, dispose } = makeQuantizer({ codebookSize: 4, semanticDim: 1, pixelDim: 1, usageWindow: 2, codebookUpdate: 'loss', reservoirSize: 4 }, new Float32Array([1, 1, 1, 1]), new Float32Array([1, 1, 1, 1]));
    const batch = (codes: number[]): QuantizerBatch => ({ codes: Int32Array.from(codes), zs: new Float32Array(codes.length).fill(1), zp: new Float32Array(codes.length).fill(1) });
    q.update(batch([0, 0, 1, 1])); // window [2, 2, 0, 0]: usage 1/2, perplexity 2
    expect(q.stats()).toMatchObject({ step: 1, usage: 0.5, totalUsage: 0.5 });
    expect(q.stats().perplexity).toBeCloseTo(2, 12);
    q.update(batch([2, 2, 2, 2])); // window [2, 2, 4, 0]: p = 1/4, 1/4, 1/2 -> perplexity 2^1.5
    expect(q.stats().usage).toBe(0.75);
    expect(q.stats().perplexity).toBeCloseTo(2 ** 1.5, 12);
    q.update(batch([3, 3, 3, 3])); // the first update leaves the window: [0, 0, 4, 4]; total [2, 2, 4, 4]
    const s = q.stats();
    expect(s.usage).toBe(0.5);
    expect(s.perplexity).toBeCloseTo(2, 12);
    expect(s.totalUsage).toBe(1);
    expect(s.totalPerplexity).toBeCloseTo(Math.cbrt(54), 12); // exp(-(2/6 ln 1/6 + 2/3 ln 1/3)) = 6^(1/3) 3^(2/3)
    expect(histogramStats([0, 0])).toEqual({ usage: 0, perplexity: 0 });
    dispose();
  });

  it('initializes by k-means once enough latents were seen, from distinct clusters', () => {
    // Latents from 4 well-separated directions; K = 4; 16 samples needed (two batches of 8).
    const [K, ds, dp] = [4, 2, 2];
    const rng = new Rng(3);
    const centres = [
      [1, 0, 1, 0],
      [-1, 0, 0, 1],
      [0, 1, -1, 0],
      [0, -1, 0, -1],
    ];
    const batch = (): QuantizerBatch => {
      const zs = new Float32Array(8 * ds);
      const zp = new Float32Array(8 * dp);
      for (let i = 0; i < 8; i++) {
        const c = centres[i % 4];
        const s = [c[0] + 0.05 * rng.normal(), c[1] + 0.05 * rng.normal()];
        const p = [c[2] + 0.05 * rng.normal(), c[3] + 0.05 * rng.normal()];
        zs.set(s.map((v) => v / Math.hypot(s[0], s[1])), i * ds);
        zp.set(p.map((v) => v / Math.hypot(p[0], p[1])), i * dp);
      }
      return { codes: new Int32Array(8), zs, zp };
    };
    const c = resolveTokenizerConfig({ codebookSize: K, semanticDim: ds, pixelDim: dp, kmeansInit: true, kmeansSamples: 16, kmeansSeeding: 'kmeans++', reservoirSize: 8 });
    const semantic = tf.variable(tf.tensor2d(unitRows(rng, K, ds), [K, ds]), false);
    const pixel = tf.variable(tf.tensor2d(unitRows(rng, K, dp), [K, dp]), false);
    const q = new DualQuantizer(c, semantic, pixel, 7);
    expect(q.initialized).toBe(false);
    expect(q.update(batch()).initialized).toBe(false);
    expect(q.update(batch()).initialized).toBe(true);
    expect(q.initialized).toBe(true);
    const s = semantic.dataSync();
    const p = pixel.dataSync();
    const found = centres.map((ctr) => {
      for (let k = 0; k < K; k++) {
        const d = Math.hypot(s[k * 2] - ctr[0], s[k * 2 + 1] - ctr[1], p[k * 2] - ctr[2], p[k * 2 + 1] - ctr[3]);
        if (d < 0.1) return k;
      }
      return -1;
    });
    expect(new Set(found).size).toBe(4);
    expect(found).not.toContain(-1);
    // EMA cluster sizes are scaled to one batch: 2 of the 8 positions per batch in each cluster.
    expectClose(q.getState()['quantizer.ema_cluster_size'].data, [2, 2, 2, 2]);
    semantic.dispose();
    pixel.dispose();
  });

  it('state round trip: a restored quantizer continues exactly like the original', () => {
    const cfg: Partial<TokenizerConfig> = { codebookSize: 8, semanticDim: 3, pixelDim: 2, kmeansInit: true, kmeansSamples: 8, deadCodeSteps: 2, usageWindow: 3, reservoirSize: 6 };
    const rng = new Rng(8);
    const es = unitRows(rng, 8, 3);
    const ep = unitRows(rng, 8, 2);
    const batches = Array.from({ length: 7 }, (_, t): QuantizerBatch => {
      const n = 5 + t;
      return { codes: Int32Array.from({ length: n }, () => rng.int(t < 4 ? 3 : 8)), zs: unitRows(rng, n, 3), zp: unitRows(rng, n, 2) };
    });
    const a = makeQuantizer(cfg, es, ep, 5);
    const b = makeQuantizer(cfg, unitRows(rng, 8, 3), unitRows(rng, 8, 2), 99);
    a.q.update(batches[0]); // 5 of 8 samples: not initialized yet, so the state holds pending k-means rows
    b.q.setState(a.q.getState());
    b.q.semantic.assign(a.q.semantic);
    b.q.pixel.assign(a.q.pixel);
    for (const batch of batches.slice(1)) {
      const ra = a.q.update(batch);
      const rb = b.q.update(batch);
      expect(rb).toEqual(ra);
    }
    expect(a.q.stats().restarts).toBeGreaterThan(0);
    expect(Array.from(b.q.semantic.dataSync())).toEqual(Array.from(a.q.semantic.dataSync()));
    expect(Array.from(b.q.pixel.dataSync())).toEqual(Array.from(a.q.pixel.dataSync()));
    expect(b.q.getState()).toEqual(a.q.getState());
    expect(b.q.stats()).toEqual(a.q.stats());
    a.dispose();
    b.dispose();
  });

  it('rejects a state of another config, and a bad batch, without changing anything', () => {
    const { q, dispose } = makeQuantizer({ codebookSize: 2, semanticDim: 2, pixelDim: 2, reservoirSize: 4 }, eye2, eye2);
    const other = makeQuantizer({ codebookSize: 2, semanticDim: 2, pixelDim: 2, reservoirSize: 8 }, eye2, eye2);
    const before = q.getState();
    expect(() => q.setState(other.q.getState())).toThrow('Expected quantizer.reservoir to be float32 [4, 4] but received float32 [8, 4]');
    const { 'quantizer.last_used': _dropped, ...rest } = before;
    expect(() => q.setState(rest)).toThrow('Quantizer state does not match the config: missing quantizer.last_used');
    expect(q.getState()).toEqual(before);
    expect(() => q.update({ codes: new Int32Array([2]), zs: new Float32Array(2), zp: new Float32Array(2) })).toThrow('Expected codes between 0 and 1 but received 2 at 0');
    expect(() => q.update({ codes: new Int32Array([0]), zs: new Float32Array(3), zp: new Float32Array(2) })).toThrow(
      'Expected 1 rows of d_s 2 and d_p 2 for 1 codes but received 3 and 2 values',
    );
    expect(q.stats().step).toBe(0);
    other.dispose();
    dispose();
  });
});

function expectClose(got: ArrayLike<number>, want: number[], digits = 6): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i], digits);
}
