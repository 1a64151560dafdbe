/**
 * k-means for codebook initialization (SoundStream, Zeghidour et al. 2021;
 * vector-quantize-pytorch's kmeans_init): seeding by distinct random samples
 * or k-means++ (Arthur & Vassilvitskii 2007), then Lloyd iterations.
 *
 * Distances may weigh dimensions differently, d(x, c) = sum_j a_j (x_j - c_j)^2,
 * which is exactly the dual quantizer's d[k] = v |z_s - E_s[k]|^2 + w |z_p - E_p[k]|^2
 * on concatenated [z_s, z_p] rows with a = [v (d_s times), w (d_p times)].
 * Centroids are plain means (weights do not change a mean); a `project`
 * callback may map them back onto the model's constraint set after each
 * update (the tokenizer re-normalizes each branch: spherical k-means).
 *
 * The nearest-centre search (n x k x d, the expensive part) runs as a tfjs
 * matmul in row chunks; seeding and means are typed-array code on the host.
 *
 * Example:
 *   const r = kmeans(points, 1000, 4, 16, { iters: 10, seeding: 'random', rng: new Rng(0) });
 *   r.centroids;    // Float32Array [16 * 4]
 *   r.assignments;  // Int32Array [1000], nearest centroid of each point
 */

import * as tf from '@tensorflow/tfjs';
import { VtokError } from '../core/errors';
import { Rng } from '../core/random';

export interface KmeansOptions {
  /** Lloyd iterations after seeding. */
  iters: number;
  seeding: 'random' | 'kmeans++';
  rng: Rng;
  /** Per-dimension weights a_j (length dim); default all 1. */
  weights?: Float32Array;
  /** Called on the centroids [k * dim] after seeding and after every update, to project them in place. */
  project?: (centroids: Float32Array) => void;
}

export interface KmeansResult {
  /** [k, dim] row-major. */
  centroids: Float32Array;
  /** Nearest centroid of every point, for the returned centroids. */
  assignments: Int32Array;
  /** Points per centroid, for the returned centroids. */
  counts: Int32Array;
  /** Mean weighted squared distance of the points to their centroid. */
  meanDistance: number;
}

/** Rows of the [chunk, k] distance matrix computed at once: bounds memory to ~16 MB of float32. */
const DISTANCE_BUDGET = 1 << 22;

/**
 * Nearest centroid of each point under the weighted distance, and that
 * distance. argmin_c |x - c|_a^2 = argmax_c (x.(a c) - |c|_a^2 / 2): one
 * tfjs matmul of [x, 1] with [a c, -|c|_a^2 / 2] per chunk of rows (no
 * broadcast op over the [n, k] scores, which is slow on the cpu backend),
 * argmax on the device, and |x - c|_a^2 = |x|_a^2 - 2 max on the host.
 */
export function assignNearest(
  data: Float32Array,
  n: number,
  dim: number,
  centroids: Float32Array,
  k: number,
  weights?: Float32Array,
): { assignments: Int32Array; distances: Float32Array } {
  const a = weights ?? new Float32Array(dim).fill(1);
  const assignments = new Int32Array(n);
  const distances = new Float32Array(n);
  const chunk = Math.max(1, Math.floor(DISTANCE_BUDGET / k));
  const caug = new Float32Array(k * (dim + 1)); // [k, dim + 1]: a c, -|c|_a^2 / 2
  for (let c = 0; c < k; c++) {
    let norm = 0;
    for (let t = 0; t < dim; t++) {
      const v = centroids[c * dim + t];
      caug[c * (dim + 1) + t] = a[t] * v;
      norm += a[t] * v * v;
    }
    caug[c * (dim + 1) + dim] = -norm / 2;
  }
  tf.tidy(() => {
    const cT = tf.tensor2d(caug, [k, dim + 1]);
    for (let start = 0; start < n; start += chunk) {
      const rows = Math.min(chunk, n - start);
      const xaug = new Float32Array(rows * (dim + 1)); // [rows, dim + 1]: x, 1
      for (let i = 0; i < rows; i++) {
        xaug.set(data.subarray((start + i) * dim, (start + i + 1) * dim), i * (dim + 1));
        xaug[i * (dim + 1) + dim] = 1;
      }
      tf.tidy(() => {
        const scores = tf.matMul(tf.tensor2d(xaug, [rows, dim + 1]), cT, false, true); // [rows, k]
        assignments.set(tf.argMax(scores, 1).dataSync() as Int32Array, start);
        const best = tf.max(scores, 1).dataSync() as Float32Array; // [rows]
        for (let i = 0; i < rows; i++) {
          let xNorm = 0;
          for (let t = 0; t < dim; t++) xNorm += a[t] * data[(start + i) * dim + t] ** 2;
          distances[start + i] = Math.max(0, xNorm - 2 * best[i]); // clamp the expansion's rounding
        }
      });
    }
  });
  return { assignments, distances };
}

/** Weighted squared distance between row i of `data` and row j of `cs`. */
function rowDistance(data: Float32Array, i: number, cs: Float32Array, j: number, dim: number, weights?: Float32Array): number {
  let s = 0;
  for (let t = 0; t < dim; t++) {
    const diff = data[i * dim + t] - cs[j * dim + t];
    s += (weights === undefined ? 1 : weights[t]) * diff * diff;
  }
  return s;
}

/** k distinct rows of data, chosen uniformly (partial Fisher-Yates). */
function seedRandom(data: Float32Array, n: number, dim: number, k: number, rng: Rng): Float32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const out = new Float32Array(k * dim);
  for (let j = 0; j < k; j++) {
    const r = j + rng.int(n - j);
    const t = order[j];
    order[j] = order[r];
    order[r] = t;
    out.set(data.subarray(order[j] * dim, (order[j] + 1) * dim), j * dim);
  }
  return out;
}

/** k-means++ seeding: each next centre is a row drawn with probability proportional to its squared distance to the nearest centre so far. */
function seedPlusPlus(data: Float32Array, n: number, dim: number, k: number, rng: Rng, weights?: Float32Array): Float32Array {
  const out = new Float32Array(k * dim);
  const minDist = new Float64Array(n).fill(Infinity);
  let pick = rng.int(n);
  for (let j = 0; j < k; j++) {
    out.set(data.subarray(pick * dim, (pick + 1) * dim), j * dim);
    let total = 0;
    for (let i = 0; i < n; i++) {
      const d = rowDistance(data, i, out, j, dim, weights);
      if (d < minDist[i]) minDist[i] = d;
      total += minDist[i];
    }
    if (j === k - 1) break;
    if (total <= 0) {
      pick = rng.int(n); // every point sits on a centre: any row will do
      continue;
    }
    let target = rng.next() * total;
    pick = n - 1;
    for (let i = 0; i < n; i++) {
      target -= minDist[i];
      if (target < 0) {
        pick = i;
        break;
      }
    }
  }
  return out;
}

/** Lloyd's k-means on n rows of `data` ([n, dim] row-major). Needs n >= k. */
export function kmeans(data: Float32Array, n: number, dim: number, k: number, options: KmeansOptions): KmeansResult {
  if (data.length !== n * dim) throw new VtokError('INVALID_INPUT', `kmeans: expected ${n * dim} values for ${n} rows of ${dim} but received ${data.length}`);
  if (n < k) throw new VtokError('INVALID_INPUT', `kmeans: needs at least as many points as centres, but received ${n} points for ${k} centres`);
  const { rng, weights, project } = options;
  const centroids = options.seeding === 'kmeans++' ? seedPlusPlus(data, n, dim, k, rng, weights) : seedRandom(data, n, dim, k, rng);
  project?.(centroids);
  const sums = new Float64Array(k * dim);
  const counts = new Int32Array(k);
  for (let it = 0; it < options.iters; it++) {
    const { assignments } = assignNearest(data, n, dim, centroids, k, weights);
    sums.fill(0);
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      const c = assignments[i];
      counts[c]++;
      for (let t = 0; t < dim; t++) sums[c * dim + t] += data[i * dim + t];
    }
    // An empty cluster keeps its centre (it was a data row, or a projected mean of rows).
    for (let c = 0; c < k; c++) {
      if (counts[c] === 0) continue;
      for (let t = 0; t < dim; t++) centroids[c * dim + t] = sums[c * dim + t] / counts[c];
    }
    project?.(centroids);
  }
  const { assignments, distances } = assignNearest(data, n, dim, centroids, k, weights);
  counts.fill(0);
  let total = 0;
  for (let i = 0; i < n; i++) {
    counts[assignments[i]]++;
    total += distances[i];
  }
  return { centroids, assignments, counts, meanDistance: total / n };
}
