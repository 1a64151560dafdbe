/**
 * Linear probe: multinomial logistic regression (softmax, L2) on fixed
 * features, fitted full-batch by L-BFGS (Nocedal & Wright, Numerical
 * Optimization, 2nd ed., algorithm 7.4 and 7.5) with a backtracking Armijo
 * line search. Plain TypeScript on typed arrays, float64 throughout.
 *
 * Objective, for n rows x_i [d] with classes y_i in [0, C):
 *   z_i = x_i W + b                                    W [d, C], b [C]
 *   f   = (1/n) sum_i (logsumexp(z_i) - z_i[y_i]) + (l2 / 2) |W|^2
 * (the bias is not penalized, as in scikit-learn's LogisticRegression). The
 * start is W = 0, b = 0 and nothing is random: the same data give the same
 * weights on every machine and backend, without a seed.
 *
 * Features are standardized first with the train set's statistics
 * (fitStandardizer / applyStandardizer): per feature, (x - mean) / std with the
 * population std; a constant feature becomes 0.
 *
 * Example:
 *   const s = fitStandardizer(trainX, n, d);
 *   const m = fitSoftmaxRegression(applyStandardizer(trainX, n, d, s), trainY, n, d, 10, { l2: 1e-3 });
 *   accuracy(predictClasses(applyStandardizer(testX, nt, d, s), nt, d, m), testY);
 */

import { VtokError, checkInt, checkNumber } from './errors';

export interface Standardizer {
  /** Per feature: [d]. */
  mean: Float64Array;
  /** Per feature population std; 1 where the feature is constant (it becomes 0). [d]. */
  std: Float64Array;
}

export interface SoftmaxRegression {
  /** Features d and classes C. */
  dim: number;
  classes: number;
  /** [d, C] row-major. */
  weights: Float64Array;
  /** [C]. */
  bias: Float64Array;
}

export interface SoftmaxFitOptions {
  /** L2 penalty on the weights (not the bias). Default 1e-3. */
  l2: number;
  /** L-BFGS iterations at most. Default 500. */
  maxIters: number;
  /** Stop when the largest gradient component is below this. Default 1e-6. */
  tolerance: number;
  /** L-BFGS memory (pairs kept). Default 10. */
  memory: number;
}

export interface SoftmaxFit extends SoftmaxRegression {
  /** Final objective value f. */
  loss: number;
  iterations: number;
  /** True when the gradient tolerance was reached (else maxIters, or no further decrease). */
  converged: boolean;
  /** Largest gradient component at the end. */
  gradMax: number;
}

export const SOFTMAX_FIT_DEFAULTS: SoftmaxFitOptions = { l2: 1e-3, maxIters: 500, tolerance: 1e-6, memory: 10 };

function checkRows(name: string, x: ArrayLike<number>, n: number, d: number): void {
  if (x.length !== n * d) throw new VtokError('INVALID_INPUT', `Expected ${name} to hold ${n} rows of ${d} features (${n * d} values) but received ${x.length}`, { subject: name });
}

/** Per-feature mean and population std of n rows of d features. */
export function fitStandardizer(x: ArrayLike<number>, n: number, d: number): Standardizer {
  checkInt('rows', n, 1);
  checkInt('features', d, 1);
  checkRows('features', x, n, d);
  const mean = new Float64Array(d);
  const std = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const c = x[i * d + j] - mean[j];
      std[j] += c * c;
    }
  }
  for (let j = 0; j < d; j++) {
    const s = Math.sqrt(std[j] / n);
    // A feature constant up to float32 rounding carries nothing: map it to 0 rather than amplify its rounding noise.
    std[j] = s > 1e-6 * Math.max(1, Math.abs(mean[j])) ? s : 1;
  }
  return { mean, std };
}

/** (x - mean) / std, row by row: [n, d] float64. Also subtracts the mean of a constant feature, so it becomes 0. */
export function applyStandardizer(x: ArrayLike<number>, n: number, d: number, s: Standardizer): Float64Array {
  checkRows('features', x, n, d);
  if (s.mean.length !== d) throw new VtokError('INVALID_INPUT', `Expected a standardizer of ${d} features but received ${s.mean.length}`, { subject: 'standardizer' });
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) out[i * d + j] = (x[i * d + j] - s.mean[j]) / s.std[j];
  return out;
}

/** Class scores z = x W + b for n rows: [n, C]. */
function scores(x: ArrayLike<number>, n: number, d: number, C: number, theta: Float64Array): Float64Array {
  const z = new Float64Array(n * C);
  const bOff = d * C;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < C; c++) z[i * C + c] = theta[bOff + c];
    for (let j = 0; j < d; j++) {
      const v = x[i * d + j];
      if (v === 0) continue;
      for (let c = 0; c < C; c++) z[i * C + c] += v * theta[j * C + c];
    }
  }
  return z;
}

/** f(theta) and its gradient (theta = [W row-major, b]). */
function objective(x: ArrayLike<number>, y: ArrayLike<number>, n: number, d: number, C: number, l2: number, theta: Float64Array, grad: Float64Array): number {
  const z = scores(x, n, d, C, theta);
  grad.fill(0);
  const bOff = d * C;
  let f = 0;
  const p = new Float64Array(C);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, z[i * C + c]);
    let s = 0;
    for (let c = 0; c < C; c++) {
      p[c] = Math.exp(z[i * C + c] - m);
      s += p[c];
    }
    f += m + Math.log(s) - z[i * C + y[i]];
    for (let c = 0; c < C; c++) p[c] = p[c] / s - (c === y[i] ? 1 : 0); // dloss_i / dz_i
    for (let c = 0; c < C; c++) grad[bOff + c] += p[c];
    for (let j = 0; j < d; j++) {
      const v = x[i * d + j];
      if (v === 0) continue;
      for (let c = 0; c < C; c++) grad[j * C + c] += v * p[c];
    }
  }
  for (let k = 0; k < grad.length; k++) grad[k] /= n;
  let penalty = 0;
  for (let k = 0; k < bOff; k++) {
    penalty += theta[k] * theta[k];
    grad[k] += l2 * theta[k];
  }
  return f / n + 0.5 * l2 * penalty;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k] * b[k];
  return s;
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k]));
  return m;
}

/**
 * Fits the softmax regression (see the file comment) to n rows x [n, d]
 * (standardize first) with classes y [n] in [0, classes).
 */
export function fitSoftmaxRegression(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  n: number,
  d: number,
  classes: number,
  options: Partial<SoftmaxFitOptions> = {},
): SoftmaxFit {
  const o = { ...SOFTMAX_FIT_DEFAULTS, ...options };
  checkInt('rows', n, 1);
  checkInt('features', d, 1);
  const C = checkInt('classes', classes, 2);
  checkRows('features', x, n, d);
  if (y.length !== n) throw new VtokError('INVALID_INPUT', `Expected ${n} class labels but received ${y.length}`, { subject: 'labels' });
  for (let i = 0; i < n; i++) {
    if (!Number.isInteger(y[i]) || y[i] < 0 || y[i] >= C) throw new VtokError('INVALID_INPUT', `Expected class labels in [0, ${C}) but received ${y[i]} at row ${i}`, { subject: 'labels' });
  }
  const l2 = checkNumber('l2', o.l2, 0);
  const maxIters = checkInt('maxIters', o.maxIters, 0);
  const tol = checkNumber('tolerance', o.tolerance, 0);
  const m = checkInt('memory', o.memory, 1, 1000);

  const P = d * C + C;
  let theta = new Float64Array(P);
  let g = new Float64Array(P);
  let f = objective(x, y, n, d, C, l2, theta, g);
  const S: Float64Array[] = [];
  const Y: Float64Array[] = [];
  const rho: number[] = [];
  let iterations = 0;
  let converged = maxAbs(g) <= tol;
  const dir = new Float64Array(P);
  const alpha = new Float64Array(m);
  while (!converged && iterations < maxIters) {
    // Two-loop recursion: dir = -H g.
    for (let k = 0; k < P; k++) dir[k] = -g[k];
    for (let k = S.length - 1; k >= 0; k--) {
      alpha[k] = rho[k] * dot(S[k], dir);
      for (let t = 0; t < P; t++) dir[t] -= alpha[k] * Y[k][t];
    }
    const gamma = S.length > 0 ? dot(S[S.length - 1], Y[Y.length - 1]) / dot(Y[Y.length - 1], Y[Y.length - 1]) : 1 / Math.max(1, Math.sqrt(dot(g, g)));
    for (let t = 0; t < P; t++) dir[t] *= gamma;
    for (let k = 0; k < S.length; k++) {
      const beta = rho[k] * dot(Y[k], dir);
      for (let t = 0; t < P; t++) dir[t] += (alpha[k] - beta) * S[k][t];
    }
    let slope = dot(g, dir);
    if (!(slope < 0)) {
      // Not a descent direction (numerical trouble): restart from steepest descent.
      S.length = 0;
      Y.length = 0;
      rho.length = 0;
      for (let t = 0; t < P; t++) dir[t] = -g[t];
      slope = -dot(g, g);
    }
    // Backtracking Armijo line search from step 1.
    let step = 1;
    const next = new Float64Array(P);
    const gNext = new Float64Array(P);
    let fNext = Infinity;
    for (let tries = 0; tries < 60; tries++) {
      for (let t = 0; t < P; t++) next[t] = theta[t] + step * dir[t];
      fNext = objective(x, y, n, d, C, l2, next, gNext);
      if (fNext <= f + 1e-4 * step * slope) break;
      step *= 0.5;
    }
    iterations++;
    if (!(fNext <= f)) break; // no decrease possible at float64 precision
    const s = new Float64Array(P);
    const yk = new Float64Array(P);
    for (let t = 0; t < P; t++) {
      s[t] = next[t] - theta[t];
      yk[t] = gNext[t] - g[t];
    }
    const sy = dot(s, yk);
    if (sy > 1e-12 * Math.sqrt(dot(s, s) * dot(yk, yk))) {
      S.push(s);
      Y.push(yk);
      rho.push(1 / sy);
      if (S.length > m) {
        S.shift();
        Y.shift();
        rho.shift();
      }
    }
    const decrease = f - fNext;
    theta = next;
    g = gNext;
    f = fNext;
    converged = maxAbs(g) <= tol;
    if (!converged && decrease <= 1e-15 * Math.max(1, Math.abs(f))) break;
  }
  return { dim: d, classes: C, weights: theta.slice(0, d * C), bias: theta.slice(d * C), loss: f, iterations, converged, gradMax: maxAbs(g) };
}

/** Class probabilities of n rows: [n, C]. */
export function predictProbabilities(x: ArrayLike<number>, n: number, d: number, model: SoftmaxRegression): Float64Array {
  if (model.dim !== d) throw new VtokError('INVALID_INPUT', `Expected features of the model's ${model.dim} dimensions but received ${d}`, { subject: 'features' });
  checkRows('features', x, n, d);
  const C = model.classes;
  const theta = new Float64Array(d * C + C);
  theta.set(model.weights);
  theta.set(model.bias, d * C);
  const z = scores(x, n, d, C, theta);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, z[i * C + c]);
    let s = 0;
    for (let c = 0; c < C; c++) s += z[i * C + c] = Math.exp(z[i * C + c] - m);
    for (let c = 0; c < C; c++) z[i * C + c] /= s;
  }
  return z;
}

/** The most probable class of each row (the lowest class on a tie): [n]. */
export function predictClasses(x: ArrayLike<number>, n: number, d: number, model: SoftmaxRegression): Int32Array {
  const p = predictProbabilities(x, n, d, model);
  const C = model.classes;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < C; c++) if (p[i * C + c] > p[i * C + best]) best = c;
    out[i] = best;
  }
  return out;
}

/** Fraction of predictions equal to the labels. */
export function accuracy(predicted: ArrayLike<number>, labels: ArrayLike<number>): number {
  if (predicted.length !== labels.length || labels.length === 0) {
    throw new VtokError('INVALID_INPUT', `Expected as many predictions as labels (at least 1) but received ${predicted.length} and ${labels.length}`);
  }
  let right = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) right++;
  return right / labels.length;
}
