import { Rng } from '../../src/core/random';
import {
  SampleOptions,
  applyAllowed,
  argmax,
  cfgCombine,
  resolveSampleOptions,
  sampleLogits,
  softmax,
  topKFilter,
  topPFilter,
} from '../../src/core/sampling';

const P = [0.5, 0.2, 0.15, 0.1, 0.05];
const LOGITS = Float32Array.from(P, Math.log);

/** Empirical frequencies of n draws. */
function frequencies(options: SampleOptions, n: number, seed: number, logits: Float32Array = LOGITS): number[] {
  const rng = new Rng(seed);
  const counts = new Array(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[sampleLogits(logits, options, rng)]++;
  return counts.map((c) => c / n);
}

describe('filters on a known distribution', () => {
  it('softmax recovers the probabilities and ignores -Infinity', () => {
    const p = softmax(LOGITS);
    P.forEach((x, i) => expect(p[i]).toBeCloseTo(x, 6));
    expect(Array.from(softmax([0, -Infinity, 0]))).toEqual([0.5, 0, 0.5]);
    expect(Array.from(softmax([1000, 1000]))).toEqual([0.5, 0.5]); // stable: no overflow
  });

  it('top-k keeps the k largest (and ties with the k-th)', () => {
    expect(Array.from(topKFilter(Float32Array.from([1, 3, 2, 3]), 2))).toEqual([-Infinity, 3, -Infinity, 3]);
    expect(Array.from(topKFilter(Float32Array.from([1, 3, 2, 0]), 2))).toEqual([-Infinity, 3, 2, -Infinity]);
    expect(Array.from(topKFilter(Float32Array.from([1, 2]), 0))).toEqual([1, 2]);
    expect(Array.from(topKFilter(Float32Array.from([1, 2]), 5))).toEqual([1, 2]);
  });

  it('top-p keeps the smallest most likely set reaching p', () => {
    const keep = (p: number): number[] => Array.from(topPFilter(Float32Array.from(LOGITS), p)).map((x, i) => (x === -Infinity ? -1 : i)).filter((i) => i >= 0);
    expect(keep(0.8)).toEqual([0, 1, 2]); // 0.5 + 0.2 = 0.7 < 0.8 <= 0.85
    expect(keep(0.45)).toEqual([0]);
    expect(keep(0.6)).toEqual([0, 1]);
    expect(keep(0.96)).toEqual([0, 1, 2, 3, 4]);
    expect(keep(1)).toEqual([0, 1, 2, 3, 4]);
  });

  it('classifier-free guidance is uncond + s (cond - uncond)', () => {
    expect(Array.from(cfgCombine([2, 0], [1, 1], 3))).toEqual([4, -2]);
    expect(Array.from(cfgCombine([2, 0], [1, 1], 1))).toEqual([2, 0]);
    expect(Array.from(cfgCombine([2, 0], [1, 1], 0))).toEqual([1, 1]);
    expect(() => cfgCombine([1], [1, 2], 2)).toThrow('Expected conditional and unconditional logits of the same length but received 1 and 2');
  });

  it('masks by a 0/1 mask or by id ranges', () => {
    expect(Array.from(applyAllowed(Float32Array.from([1, 2, 3, 4]), Uint8Array.from([1, 0, 0, 1])))).toEqual([1, -Infinity, -Infinity, 4]);
    expect(Array.from(applyAllowed(Float32Array.from([1, 2, 3, 4]), [{ start: 1, end: 3 }]))).toEqual([-Infinity, 2, 3, -Infinity]);
    expect(() => applyAllowed(new Float32Array(3), new Uint8Array(2))).toThrow('Expected an allowed-ids mask of length 3 but received length 2');
  });
});

describe('sampleLogits', () => {
  const base = resolveSampleOptions();

  it('draws from the filtered, renormalised distribution (hand-checked frequencies)', () => {
    const n = 40000;
    const plain = frequencies(base, n, 1);
    P.forEach((p, i) => expect(Math.abs(plain[i] - p)).toBeLessThan(0.01));
    const k2 = frequencies({ ...base, topK: 2 }, n, 2);
    [5 / 7, 2 / 7, 0, 0, 0].forEach((p, i) => expect(Math.abs(k2[i] - p)).toBeLessThan(0.01));
    const p8 = frequencies({ ...base, topP: 0.8 }, n, 3);
    [0.5 / 0.85, 0.2 / 0.85, 0.15 / 0.85, 0, 0].forEach((p, i) => expect(Math.abs(p8[i] - p)).toBeLessThan(0.01));
    // Temperature 0.5 squares the probabilities: [0.25, 0.04, 0.0225, 0.01, 0.0025] / 0.325.
    const t5 = frequencies({ ...base, temperature: 0.5 }, n, 4);
    [0.25, 0.04, 0.0225, 0.01, 0.0025].forEach((p, i) => expect(Math.abs(t5[i] - p / 0.325)).toBeLessThan(0.01));
  });

  it('is greedy at temperature 0: argmax, lowest id on ties, no random draw', () => {
    const rng = new Rng(9);
    const state = rng.getState();
    expect(sampleLogits([0, 2, 1], { ...base, temperature: 0 }, rng)).toBe(1);
    expect(sampleLogits([3, 1, 3], { ...base, temperature: 0 }, rng)).toBe(0);
    expect(sampleLogits([3, 1, 3], { ...base, temperature: 0 }, rng, Uint8Array.from([0, 1, 1]))).toBe(2);
    expect(rng.getState()).toBe(state);
    expect(argmax([-Infinity, -Infinity])).toBe(-1);
  });

  it('gives the same ids for the same seed, different ids for another', () => {
    const run = (seed: number): number[] => {
      const rng = new Rng(seed);
      return Array.from({ length: 50 }, () => sampleLogits(LOGITS, { ...base, topK: 4, topP: 0.95 }, rng));
    };
    expect(run(42)).toEqual(run(42));
    expect(run(42)).not.toEqual(run(43));
  });

  it('never returns a masked id and does not modify its input', () => {
    const logits = Float32Array.from(LOGITS);
    const rng = new Rng(0);
    const allowed = [{ start: 2, end: 5 }];
    for (let i = 0; i < 2000; i++) expect(sampleLogits(logits, base, rng, allowed)).toBeGreaterThanOrEqual(2);
    expect(Array.from(logits)).toEqual(Array.from(LOGITS));
  });

  it('gives exact errors', () => {
    const rng = new Rng(0);
    expect(() => sampleLogits([1, 2], base, rng, Uint8Array.from([0, 0]))).toThrow(
      'Every id is excluded for the next token (constraint, top-k and top-p left nothing to sample)',
    );
    expect(() => sampleLogits([1, NaN], base, rng)).toThrow("Logit 1 is NaN; the model's output is not usable");
    expect(() => resolveSampleOptions({ topP: 0 })).toThrow('Expected number between 5e-324 and 1 for topP but received 0 of type number');
    expect(() => resolveSampleOptions({ temperature: -1 })).toThrow('Expected number between 0 and Infinity for temperature but received -1 of type number');
    expect(() => resolveSampleOptions({ topK: 1.5 })).toThrow('Expected integer between 0 and 9007199254740991 for topK but received 1.5 of type number');
    expect(() => resolveSampleOptions({ top_k: 5 } as never)).toThrow('Unknown option "top_k" for sampling; known options are temperature, topK, topP');
  });
});
