import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { accuracy, applyStandardizer, fitSoftmaxRegression, fitStandardizer, predictClasses, predictProbabilities } from '../../src/core/linear-probe';
import { Rng } from '../../src/core/random';

interface Reference {
  n: number;
  d: number;
  classes: number;
  l2: number;
  x: number[];
  y: number[];
  loss: number;
  probabilities: number[];
}

describe('standardizer', () => {
  it('hand-worked: mean, population std, constant feature -> 0', () => {
    // Columns: [1, 3, 5] -> mean 3, population std sqrt(8/3); [7, 7, 7] -> constant.
    const x = [1, 7, 3, 7, 5, 7];
    const s = fitStandardizer(x, 3, 2);
    expect(Array.from(s.mean)).toEqual([3, 7]);
    expect(s.std[0]).toBeCloseTo(Math.sqrt(8 / 3), 12);
    expect(s.std[1]).toBe(1);
    const z = applyStandardizer(x, 3, 2, s);
    const k = 2 / Math.sqrt(8 / 3);
    [-k, 0, 0, 0, k, 0].forEach((v, i) => expect(z[i]).toBeCloseTo(v, 12));
    // Test rows use the train statistics.
    expect(Array.from(applyStandardizer([3, 8], 1, 2, s))).toEqual([0, 1]);
  });

  it('refuses rows of the wrong size', () => {
    expect(() => fitStandardizer([1, 2, 3], 2, 2)).toThrow('Expected features to hold 2 rows of 2 features (4 values) but received 3');
    expect(() => applyStandardizer([1, 2, 3], 1, 3, fitStandardizer([1, 2], 1, 2))).toThrow('Expected a standardizer of 3 features but received 2');
  });
});

describe('softmax regression', () => {
  it('reaches the optimum scipy L-BFGS-B finds (objective and probabilities)', () => {
    const ref = JSON.parse(readFileSync(path.join(__dirname, '../fixtures/probe/softmax-reference.json'), 'utf8')) as Reference;
    const fit = fitSoftmaxRegression(ref.x, ref.y, ref.n, ref.d, ref.classes, { l2: ref.l2, tolerance: 1e-8 });
    expect(fit.converged).toBe(true);
    expect(Math.abs(fit.loss - ref.loss)).toBeLessThan(1e-10);
    const p = predictProbabilities(ref.x, ref.n, ref.d, fit);
    let worst = 0;
    for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(p[i] - ref.probabilities[i]));
    expect(worst).toBeLessThan(1e-5);
  });

  it('separates separable classes; constant features give the majority class; deterministic', () => {
    const rng = new Rng(2);
    const n = 90;
    const y = Int32Array.from({ length: n }, (_, i) => i % 3);
    const x = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) {
      x[2 * i] = 3 * y[i] + 0.3 * rng.normal();
      x[2 * i + 1] = rng.normal();
    }
    const fit = fitSoftmaxRegression(x, y, n, 2, 3);
    expect(accuracy(predictClasses(x, n, 2, fit), y)).toBe(1);
    const again = fitSoftmaxRegression(x, y, n, 2, 3);
    expect(Array.from(again.weights)).toEqual(Array.from(fit.weights));

    // One constant feature, classes 2:1: every row gets class 0, so accuracy is the majority share.
    const y2 = Int32Array.from({ length: 30 }, (_, i) => (i % 3 === 2 ? 1 : 0));
    const flat = applyStandardizer(new Float64Array(30).fill(4), 30, 1, fitStandardizer(new Float64Array(30).fill(4), 30, 1));
    const f2 = fitSoftmaxRegression(flat, y2, 30, 1, 2);
    expect(Array.from(predictClasses(flat, 30, 1, f2)).every((c) => c === 0)).toBe(true);
    expect(accuracy(predictClasses(flat, 30, 1, f2), y2)).toBeCloseTo(2 / 3, 12);
  });

  it('names bad labels and shapes', () => {
    expect(() => fitSoftmaxRegression([0, 1], [0, 2], 2, 1, 2)).toThrow('Expected class labels in [0, 2) but received 2 at row 1');
    expect(() => fitSoftmaxRegression([0, 1], [0], 2, 1, 2)).toThrow('Expected 2 class labels but received 1');
    expect(() => fitSoftmaxRegression([0, 1], [0, 0], 2, 1, 1)).toThrow(/classes/);
    expect(() => accuracy([1], [1, 2])).toThrow('Expected as many predictions as labels');
  });
});
