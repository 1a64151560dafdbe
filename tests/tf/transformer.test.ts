import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import { TRANSFORMER_PRESETS, Transformer, TransformerConfig, countParams, mlpWidth, resolveTransformerConfig, weightShapes } from '../../src/tf/transformer';

const TINY: Partial<TransformerConfig> = { vocabSize: 31, contextLength: 16, dModel: 16, nLayers: 2, nHeads: 2 };

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function ids2d(rows: number[][]): tf.Tensor2D {
  return tf.tensor2d(rows, [rows.length, rows[0].length], 'int32');
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Logits of forward() as nested arrays [B][T][V]. */
function forwardArray(model: Transformer, rows: number[][], pos2d?: number[][][]): number[][][] {
  return tf.tidy(() => {
    const p = pos2d === undefined ? undefined : tf.tensor3d(pos2d, [rows.length, rows[0].length, 2], 'int32');
    return model.forward(ids2d(rows), { pos2d: p }).arraySync();
  });
}

describe('TransformerConfig', () => {
  it('fills documented defaults and rejects unknown keys and bad values', () => {
    const c = resolveTransformerConfig({ vocabSize: 100 });
    expect(c).toMatchObject({ contextLength: 256, dModel: 128, nLayers: 4, nHeads: 4, mlp: 'swiglu', norm: 'rms', positions: 'rope', tieEmbeddings: true, bias: false, dropout: 0, padId: 0 });
    expect(mlpWidth(c)).toBe(344); // ceil(8 * 128 / 3 / 8) * 8
    expect(mlpWidth({ ...c, mlp: 'gelu' })).toBe(512);
    expect(() => resolveTransformerConfig({})).toThrow('Expected integer between 2 and 9007199254740991 for vocabSize but received 0 of type number');
    expect(() => resolveTransformerConfig({ vocabSize: 10, nHead: 2 } as never)).toThrow('Unknown option "nHead" for TransformerConfig');
    expect(() => resolveTransformerConfig({ vocabSize: 10, dModel: 12, nHeads: 4 })).toThrow(
      'Expected a divisor of dModel 12 that leaves an even head size for nHeads but received 4 of type number',
    );
    expect(() => resolveTransformerConfig({ vocabSize: 10, norm: 'batch' as never })).toThrow('Expected one of "rms", "layer" for norm but received "batch" of type string');
    expect(() => resolveTransformerConfig({ vocabSize: 10, gridRows: 3 })).toThrow('Expected 0 when gridRows is 0 and > 0 otherwise (gridRows 3) for gridCols but received 0 of type number');
  });

  it('has presets from tiny to GPU size with the documented weight counts', () => {
    // Per layer with SwiGLU: 4 C^2 (attention) + 3 C F (MLP) + 2 C (norms); plus V C (tied embedding) + C (final norm).
    const counts = Object.entries(TRANSFORMER_PRESETS).map(([name, p]) => {
      const c = resolveTransformerConfig({ vocabSize: 1000, ...p });
      const F = mlpWidth(c);
      expect(countParams(c)).toBe(1000 * c.dModel + c.nLayers * (4 * c.dModel ** 2 + 3 * c.dModel * F + 2 * c.dModel) + c.dModel);
      return [name, Math.round((countParams(c) - 1000 * c.dModel) / 1e5) / 10];
    });
    expect(Object.fromEntries(counts)).toEqual({ tiny: 0.1, small: 4.7, base: 25.2, large: 85 }); // millions, embedding excluded
  });

  it('has the hand-counted number of weights', () => {
    const m = new Transformer(TINY);
    // V*C + L * (ln1 C + wqkv 3C^2 + wo C^2 + ln2 C + w1, w3 2*C*F + w2 F*C) + ln_f C, F = 48.
    const [V, C, L, F] = [31, 16, 2, 48];
    expect(m.numParams).toBe(V * C + L * (C + 3 * C * C + C * C + C + 3 * C * F) + C);
    expect(Object.keys(weightShapes(m.config))).toEqual([
      'tok_emb', 'h0.ln1.g', 'h0.attn.wqkv', 'h0.attn.wo', 'h0.ln2.g', 'h0.mlp.w1', 'h0.mlp.w3', 'h0.mlp.w2',
      'h1.ln1.g', 'h1.attn.wqkv', 'h1.attn.wo', 'h1.ln2.g', 'h1.mlp.w1', 'h1.mlp.w3', 'h1.mlp.w2', 'ln_f.g',
    ]);
    m.dispose();
  });
});

describe('Transformer.forward agrees with an independent PyTorch model', () => {
  // Fixture made by tests/tf/transformer.reference.py (float64 PyTorch, each row alone and unpadded).
  const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, 'transformer.reference.json'), 'utf8'));
  const f32 = (b64: string): Float32Array => {
    const buf = Buffer.from(b64, 'base64');
    return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  };

  for (const c of fixture.cases as { name: string; config: TransformerConfig; weights: Record<string, string>; rows: number[][]; pos2d: number[][][]; logits: string[] }[]) {
    it(`${c.name}: left-padded batch logits match row-by-row reference logits`, () => {
      const model = new Transformer(c.config);
      model.setWeights(Object.fromEntries(Object.entries(c.weights).map(([k, v]) => [k, f32(v)])));
      const T = Math.max(...c.rows.map((r) => r.length));
      const padded = c.rows.map((r) => [...new Array(T - r.length).fill(c.config.padId), ...r]);
      const pos2d = c.config.gridRows > 0 ? c.pos2d.map((p) => [...new Array(T - p.length).fill([-1, -1]), ...p]) : undefined;
      const got = forwardArray(model, padded, pos2d);
      c.rows.forEach((row, b) => {
        const ref = f32(c.logits[b]);
        const off = T - row.length;
        const mine = got[b].slice(off).flat();
        expect(maxAbsDiff(mine, ref)).toBeLessThan(2e-4);
      });
      model.dispose();
    });
  }
});

describe('Transformer invariants', () => {
  it('is causal: changing a later id leaves earlier logits unchanged', () => {
    const m = new Transformer(TINY, { seed: 3 });
    const a = forwardArray(m, [[1, 5, 9, 12, 20, 7]])[0];
    const b = forwardArray(m, [[1, 5, 9, 30, 20, 7]])[0];
    expect(maxAbsDiff(a.slice(0, 3).flat(), b.slice(0, 3).flat())).toBe(0);
    expect(maxAbsDiff(a[3], b[3])).toBeGreaterThan(1e-3);
    // No leaked tensors: forward (outside any tidy) adds exactly its output.
    const ids = ids2d([[1, 5, 9]]);
    const before = tf.memory().numTensors;
    const out = m.forward(ids);
    expect(tf.memory().numTensors).toBe(before + 1);
    out.dispose();
    ids.dispose();
    m.dispose();
  });

  it('ignores padding on either side, with RoPE and with learned positions', () => {
    for (const positions of ['rope', 'learned'] as const) {
      const m = new Transformer({ ...TINY, positions }, { seed: 4 });
      const plain = forwardArray(m, [[1, 5, 9, 12]])[0];
      const left = forwardArray(m, [[0, 0, 1, 5, 9, 12]])[0].slice(2);
      const right = forwardArray(m, [[1, 5, 9, 12, 0, 0]])[0].slice(0, 4);
      expect(maxAbsDiff(plain.flat(), left.flat())).toBeLessThan(1e-5);
      expect(maxAbsDiff(plain.flat(), right.flat())).toBeLessThan(1e-5);
      m.dispose();
    }
  });

  it('frees everything it allocates when disposed', () => {
    const before = tf.memory().numTensors;
    const m = new Transformer({ ...TINY, positions: 'rope', gridRows: 2, gridCols: 2 });
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is seeded: the same seed gives the same weights, another seed others', () => {
    const a = new Transformer(TINY, { seed: 7 });
    const b = new Transformer(TINY, { seed: 7 });
    const c = new Transformer(TINY, { seed: 8 });
    expect(a.getWeights()).toEqual(b.getWeights());
    expect(a.getWeights()['h0.attn.wqkv']).not.toEqual(c.getWeights()['h0.attn.wqkv']);
    [a, b, c].forEach((m) => m.dispose());
  });

  it('round-trips its weights as plain typed arrays, and names mismatches', () => {
    const a = new Transformer({ ...TINY, tieEmbeddings: false }, { seed: 1 });
    const b = new Transformer({ ...TINY, tieEmbeddings: false }, { seed: 2 });
    const w = a.getWeights();
    expect(w.head).toBeInstanceOf(Float32Array);
    expect(w.head.length).toBe(16 * 31);
    b.setWeights(w);
    expect(forwardArray(b, [[3, 4, 5]])).toEqual(forwardArray(a, [[3, 4, 5]]));
    const { head: _head, ...noHead } = w;
    expect(() => b.setWeights({ ...noHead, extra: new Float32Array(1) })).toThrow('Weights do not match the transformer config: missing head; unknown extra');
    expect(() => b.setWeights({ ...w, 'ln_f.g': new Float32Array(3) })).toThrow('Expected 16 values for weight ln_f.g [16] but received 3');
    [a, b].forEach((m) => m.dispose());
  });

  it('trains: every weight gets a finite gradient (dropout on, LayerNorm, gelu, biases, 2D positions)', () => {
    const m = new Transformer({ ...TINY, norm: 'layer', mlp: 'gelu', bias: true, dropout: 0.1, gridRows: 2, gridCols: 2, positions: 'learned' }, { seed: 5 });
    const ids = ids2d([[1, 3, 7, 8, 9, 4]]);
    const pos2d = tf.tensor3d([[[-1, -1], [-1, -1], [0, 0], [0, 1], [1, 0], [-1, -1]]], [1, 6, 2], 'int32');
    const vars = m.trainableVariables();
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(m.forward(ids, { pos2d, training: true }))) as tf.Scalar, vars);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    for (const [name, g] of Object.entries(grads)) {
      const data = g.dataSync();
      expect({ name, finite: data.every(Number.isFinite) }).toEqual({ name, finite: true });
    }
    // Dropout only when training: two inference passes agree, two training passes differ.
    const inf1 = m.forward(ids, { pos2d });
    const inf2 = m.forward(ids, { pos2d });
    const tr1 = m.forward(ids, { pos2d, training: true });
    const tr2 = m.forward(ids, { pos2d, training: true });
    expect(maxAbsDiff(inf1.dataSync(), inf2.dataSync())).toBe(0);
    expect(maxAbsDiff(tr1.dataSync(), tr2.dataSync())).toBeGreaterThan(0);
    tf.dispose([ids, pos2d, value, ...Object.values(grads), inf1, inf2, tr1, tr2]);
    m.dispose();
  });

  it('has gradients that match finite differences (2 layers, 2D positions, custom embedding gradient)', () => {
    const m = new Transformer({ vocabSize: 12, contextLength: 8, dModel: 8, nLayers: 2, nHeads: 2, initStd: 0.5, gridRows: 2, gridCols: 2 }, { seed: 3 });
    const ids = ids2d([[1, 5, 6, 7], [1, 8, 9, 0]]);
    const pos2d = tf.tensor3d([[[-1, -1], [0, 0], [0, 1], [1, 0]], [[-1, -1], [1, 1], [-1, -1], [-1, -1]]], [2, 4, 2], 'int32');
    const probe = tf.tensor3d(Array.from({ length: 2 * 4 * 12 }, (_, i) => Math.sin(i)), [2, 4, 12]); // a fixed random-looking direction
    const f = (): tf.Scalar => tf.sum(tf.mul(m.forward(ids, { pos2d }), probe));
    const { grads } = tf.variableGrads(f, m.trainableVariables());
    const w = m.getWeights();
    const names = Object.keys(w);
    const at = (): number => tf.tidy(() => f().dataSync()[0]);
    let worst = 0;
    for (const [n, v] of Object.entries(m.variables)) {
      const g = grads[v.name].dataSync();
      for (const i of [0, Math.floor(w[n].length / 2), w[n].length - 1]) {
        const orig = w[n][i];
        const eps = 1e-2;
        w[n][i] = orig + eps;
        m.setWeights(w);
        const up = at();
        w[n][i] = orig - eps;
        m.setWeights(w);
        const down = at();
        w[n][i] = orig;
        const numeric = (up - down) / (2 * eps);
        worst = Math.max(worst, Math.abs(numeric - g[i]) / Math.max(1e-2, Math.abs(numeric) + Math.abs(g[i])));
      }
    }
    m.setWeights(w);
    expect(names.length).toBe(Object.keys(grads).length);
    expect(worst).toBeLessThan(0.02);
    tf.dispose([ids, pos2d, probe, ...Object.values(grads)]);
    m.dispose();
  });

  it('gives clear errors for bad inputs', () => {
    const m = new Transformer(TINY);
    expect(() => m.forward(tf.tensor2d([[1, 2]], [1, 2], 'float32'))).toThrow('Expected an int32 tensor for ids but received "float32" of type string');
    expect(() => m.prefill([[1, 31]])).toThrow('Expected an id between 0 and 30 at row 0, position 1 but received 31');
    expect(() => m.prefill([[1, 2], [3]])).toThrow('Expected a row of 2 ids like ids[0] (left-pad with padId 0) for ids[1] but received an array of length 1');
    expect(() => m.prefill([[1, 2]], [[0, 0, 0, 0]])).toThrow('Expected no 2D positions (the model has gridRows 0) for pos2d but received an array of length 1');
    expect(() => m.forward(ids2d([new Array(17).fill(1)]))).toThrow('Expected at most contextLength 16 positions for ids but received 17 of type number');
    m.dispose();
    expect(() => m.forward(ids2d([[1]]))).toThrow('This transformer was disposed');
  });
});

describe('KV cache', () => {
  const configs: [string, Partial<TransformerConfig>][] = [
    ['llama-style (RoPE, RMSNorm, SwiGLU, tied)', TINY],
    ['gpt2-style (learned positions, LayerNorm, GELU, untied, biases)', { ...TINY, positions: 'learned', norm: 'layer', mlp: 'gelu', tieEmbeddings: false, bias: true }],
  ];
  for (const [name, config] of configs) {
    it(`${name}: prefill + step give the logits of a full forward pass, rows left-padded`, () => {
      const m = new Transformer(config, { seed: 11 });
      const rows = [
        [0, 0, 1, 5, 9, 12, 20, 7, 3, 3],
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      ];
      const full = forwardArray(m, rows);
      const before = tf.memory().numTensors;
      const P = 4;
      let { logits, cache } = m.prefill(rows.map((r) => r.slice(0, P)));
      const check = (l: tf.Tensor2D, t: number): void => {
        const got = l.arraySync();
        rows.forEach((_, b) => expect(maxAbsDiff(got[b], full[b][t])).toBeLessThan(1e-4));
        l.dispose();
      };
      check(logits, P - 1);
      for (let t = P; t < rows[0].length; t++) {
        const old = cache;
        ({ logits, cache } = m.step(cache, rows.map((r) => r[t])));
        expect(old.disposed).toBe(true);
        expect(cache.length).toBe(t + 1);
        check(logits, t);
      }
      expect(Array.from(cache.nextPosition)).toEqual([8, 10]);
      cache.dispose();
      expect(tf.memory().numTensors).toBe(before);
      m.dispose();
    });
  }

  it('carries 2D positions through prefill and step', () => {
    const m = new Transformer({ ...TINY, gridRows: 2, gridCols: 2 }, { seed: 2 });
    const ids = [1, 3, 20, 21, 22, 23, 4];
    const p2 = [[-1, -1], [-1, -1], [0, 0], [0, 1], [1, 0], [1, 1], [-1, -1]];
    const full = forwardArray(m, [ids], [p2])[0];
    const without = forwardArray(m, [ids])[0];
    expect(maxAbsDiff(full[3], without[3])).toBeGreaterThan(1e-4); // the 2D embedding matters
    let { logits, cache } = m.prefill([ids.slice(0, 3)], [p2.slice(0, 3).flat()]);
    logits.dispose();
    for (let t = 3; t < ids.length; t++) {
      ({ logits, cache } = m.step(cache, [ids[t]], p2[t]));
      expect(maxAbsDiff(logits.dataSync(), full[t])).toBeLessThan(1e-4);
      logits.dispose();
    }
    expect(() => m.step(cache, [5], [2, 0])).toThrow('Expected -1, -1 or a cell inside 2x2 for step pos2d at 0 but received "2, 0" of type string');
    cache.dispose();
    m.dispose();
  });

  it('branch runs two continuations in one pass, each equal to its own full forward, and keeps the cache', () => {
    const m = new Transformer(TINY, { seed: 5 });
    const rows = [
      [0, 0, 1, 5, 9],
      [1, 2, 3, 4, 6],
    ];
    // Continuation A = [11, 12, 13], continuation B = [14, 15]: one block each.
    const ids = [11, 12, 13, 14, 15];
    const offsets = [0, 1, 2, 0, 1];
    const sees = new Uint8Array(25);
    for (const [q, i] of [[1, 0], [2, 0], [2, 1], [4, 3]]) sees[q * 5 + i] = 1;
    const fullA = forwardArray(m, rows.map((r) => [...r, 11, 12, 13]));
    const fullB = forwardArray(m, rows.map((r) => [...r, 14, 15]));
    const { logits, cache } = m.prefill(rows);
    logits.dispose();
    const before = tf.memory().numTensors;
    const out = tf.tidy(() => m.branch(cache, ids, offsets, sees).arraySync());
    expect(tf.memory().numTensors).toBe(before);
    expect(cache.disposed).toBe(false);
    rows.forEach((_, b) => {
      for (let j = 0; j < 3; j++) expect(maxAbsDiff(out[b][j], fullA[b][5 + j])).toBeLessThan(1e-4);
      for (let j = 0; j < 2; j++) expect(maxAbsDiff(out[b][3 + j], fullB[b][5 + j])).toBeLessThan(1e-4);
    });
    expect(() => m.branch(cache, ids, [0, 1], sees)).toThrow('Expected 5 offsets (one per id) for offsets but received an array of length 2');
    expect(() => m.branch(cache, ids, [0, 1, 2, 0, 12], sees)).toThrow("Row 1 would reach position 17 but the model's contextLength is 16");
    expect(() => m.branch(cache, [11, 31], [0, 1], new Uint8Array(4))).toThrow('Expected an id between 0 and 30');
    cache.dispose();
    expect(() => m.branch(cache, ids, offsets, sees)).toThrow(/consumed/);
    m.dispose();
  });

  it('refuses a consumed cache and positions beyond the context', () => {
    const m = new Transformer({ ...TINY, contextLength: 4 });
    const { logits, cache } = m.prefill([[1, 2, 3]]);
    const next = m.step(cache, [4]);
    expect(() => m.step(cache, [4])).toThrow('This KV cache was consumed by an earlier step (or disposed); use the cache that step returned');
    expect(() => m.step(next.cache, [5])).toThrow("Row 0 would reach position 4 but the model's contextLength is 4");
    // A pad does not advance the position, so it still fits.
    const padded = m.step(next.cache, [0]);
    expect(padded.cache.length).toBe(5);
    expect(() => m.prefill([[1, 2, 3, 4, 5]])).toThrow('Expected at most contextLength 4 ids (pads excluded) for ids[0] but received an array of length 5');
    tf.dispose([logits, next.logits, padded.logits]);
    padded.cache.dispose();
    m.dispose();
  });
});
