/**
 * Dense float64 linear algebra for the Fréchet distance, on plain
 * Float64Arrays (TensorFlow.js has no float64 and no eigensolver).
 *
 * `symmetricEigen` is the classical two-phase symmetric eigensolver
 * (Householder reduction to tridiagonal form, then the implicit QL algorithm
 * with shifts, as in EISPACK's tred2/tql2; Wilkinson and Reinsch, Handbook for
 * Automatic Computation II, 1971). It is written for speed in JavaScript: the
 * working matrix is stored column by column, so that every inner loop (the
 * rank-2 updates, the accumulation of the Householder reflections and, most
 * of all, the plane rotations of the QL phase) walks contiguous memory.
 *
 * Example:
 *   const { values, vectors } = symmetricEigen(new Float64Array([2, 1, 1, 2]), 2);
 *   // values = [1, 3] (ascending); vectors row j is the unit eigenvector of values[j]:
 *   // [0.7071, -0.7071] (up to sign) and [0.7071, 0.7071]
 */

import { VtokError } from '../errors';

export interface SymmetricEigen {
  /** The n eigenvalues, ascending. */
  values: Float64Array;
  /**
   * The eigenvectors, [n, n] row-major, ROW j is the unit eigenvector of
   * values[j] (so vectors.subarray(j * n, j * n + n) is one eigenvector).
   * Absent when `vectors: false` was asked for.
   */
  vectors?: Float64Array;
}

/** Most QL iterations allowed for one eigenvalue before giving up (it takes 1-3 in practice). */
const MAX_QL_ITERATIONS = 100;

/**
 * Eigenvalues (and optionally eigenvectors) of a symmetric n x n matrix given
 * row-major. Only symmetry is assumed, not definiteness. The input is not
 * modified.
 */
export function symmetricEigen(matrix: ArrayLike<number>, n: number, options: { vectors?: boolean } = {}): SymmetricEigen {
  if (!Number.isInteger(n) || n < 1) throw new VtokError('INVALID_INPUT', `Expected a positive integer matrix size but received ${n}`);
  if (matrix.length !== n * n) {
    throw new VtokError('INVALID_INPUT', `Expected a ${n} x ${n} matrix (${n * n} values) but received ${matrix.length} values`);
  }
  const wantVectors = options.vectors ?? true;
  // z(k, j) lives at z[j * n + k] (column-major); for a symmetric input this is the same array.
  const z = Float64Array.from(matrix);
  for (let i = 0; i < z.length; i++) {
    if (!Number.isFinite(z[i])) throw new VtokError('INVALID_INPUT', `Expected finite matrix entries but entry ${i} is ${z[i]}`);
  }
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tridiagonalize(z, n, d, e, wantVectors);
  implicitQL(d, e, wantVectors ? z : null, n);
  return sortAscending(d, wantVectors ? z : null, n);
}

/**
 * Householder reduction of the symmetric matrix in z to tridiagonal form:
 * on return d holds the diagonal, e[1..n-1] the subdiagonal (e[0] = 0) and,
 * when `vectors`, z holds the orthogonal transformation (column j = z[j*n..]).
 * Works on the lower triangle, last row first.
 */
function tridiagonalize(z: Float64Array, n: number, d: Float64Array, e: Float64Array, vectors: boolean): void {
  // d starts as the last row; each step reduces row i and loads row i - 1.
  for (let j = 0; j < n; j++) d[j] = z[j * n + n - 1];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      // Row i is already reduced: nothing to annihilate.
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = z[j * n + i - 1];
        z[j * n + i] = 0;
        z[i * n + j] = 0;
      }
    } else {
      // The Householder vector u = row i scaled, with u[i-1] shifted so H = I - u u^T / h.
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = f > 0 ? -Math.sqrt(h) : Math.sqrt(h);
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      // p = A u (lower triangle of the leading i x i block; store u above the diagonal for later).
      for (let j = 0; j < i; j++) {
        const cj = j * n;
        f = d[j];
        z[i * n + j] = f;
        g = e[j] + z[cj + j] * f;
        for (let k = j + 1; k < i; k++) {
          const zkj = z[cj + k];
          g += zkj * d[k];
          e[k] += zkj * f;
        }
        e[j] = g;
      }
      // q = p / h - (u^T p / 2h^2) u, then A -= u q^T + q u^T.
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        const cj = j * n;
        f = d[j];
        g = e[j];
        for (let k = j; k < i; k++) z[cj + k] -= f * e[k] + g * d[k];
        d[j] = z[cj + i - 1];
        z[cj + i] = 0;
      }
    }
    d[i] = h;
  }

  if (!vectors) {
    // The tridiagonal diagonal sits on z's diagonal; d[] held the h's needed only to accumulate.
    for (let j = 0; j < n; j++) d[j] = z[j * n + j];
    e[0] = 0;
    return;
  }
  // Accumulate the reflections into z (column i+1 held the i-th Householder vector).
  for (let i = 0; i < n - 1; i++) {
    const ci = i * n;
    const cu = (i + 1) * n;
    z[ci + n - 1] = z[ci + i];
    z[ci + i] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = z[cu + k] / h;
      for (let j = 0; j <= i; j++) {
        const cj = j * n;
        let g = 0;
        for (let k = 0; k <= i; k++) g += z[cu + k] * z[cj + k];
        for (let k = 0; k <= i; k++) z[cj + k] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) z[cu + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = z[j * n + n - 1];
    z[j * n + n - 1] = 0;
  }
  z[n * n - 1] = 1;
  e[0] = 0;
}

/**
 * Implicit QL iterations with shifts on the tridiagonal (d, e): on return d
 * holds the eigenvalues (unsorted) and, when z is given, z's columns are
 * rotated into the eigenvectors.
 *
 * The plane rotations dominate the cost (about 0.75 n^2 rotations of two
 * length-n columns). Applied one at a time they stream the whole n x n
 * matrix through memory once per QL sweep; instead they are recorded and
 * applied in batches, a band of rows at a time (RotationBatch), so the band
 * stays in cache while thousands of rotations pass over it.
 */
function implicitQL(d: Float64Array, e: Float64Array, z: Float64Array | null, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  const eps = 2 ** -52;
  const batch = z === null ? null : new RotationBatch(z, n);
  let f = 0;
  let tst1 = 0;
  for (let l = 0; l < n; l++) {
    // Find the first negligible subdiagonal element at or after l.
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]) > eps * tst1) m++;
    if (m > l) {
      let iterations = 0;
      do {
        if (++iterations > MAX_QL_ITERATIONS) {
          throw new VtokError('INVALID_INPUT', `The symmetric eigensolver did not converge for eigenvalue ${l} after ${MAX_QL_ITERATIONS} iterations`);
        }
        // Shift from the leading 2 x 2 block.
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.sqrt(p * p + 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        // Chase the bulge with plane rotations from m - 1 up to l.
        p = d[m];
        let c = 1;
        let c2 = 1;
        let c3 = 1;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.sqrt(p * p + e[i] * e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          if (batch !== null) batch.push(i, c, s);
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0;
  }
  batch?.flush();
}

/**
 * Plane rotations of columns (i, i+1) of a column-major n x n matrix,
 * recorded in order and applied in bands of rows: for each band, every
 * recorded rotation in order (rotations on different rows commute, so this
 * equals applying them one by one to whole columns).
 */
class RotationBatch {
  private readonly col: Int32Array;
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;
  private count = 0;
  /** Rows per band: a band of all n columns stays within about 512 KB. */
  private readonly band: number;

  constructor(
    private readonly z: Float64Array,
    private readonly n: number,
    capacity = 1 << 20,
  ) {
    this.col = new Int32Array(capacity);
    this.cos = new Float64Array(capacity);
    this.sin = new Float64Array(capacity);
    this.band = Math.max(8, Math.min(n, Math.floor(65536 / n)));
  }

  push(i: number, c: number, s: number): void {
    if (this.count === this.col.length) this.flush();
    this.col[this.count] = i;
    this.cos[this.count] = c;
    this.sin[this.count] = s;
    this.count++;
  }

  flush(): void {
    const { z, n, col, cos, sin, count, band } = this;
    // Copy each band to a contiguous scratch block first: in place, the band's
    // pieces sit n * 8 bytes apart, a power of two for the usual feature sizes,
    // and would all compete for the same few cache sets.
    const scratch = new Float64Array(n * band);
    for (let k0 = 0; k0 < n; k0 += band) {
      const rows = Math.min(n, k0 + band) - k0;
      for (let j = 0; j < n; j++) scratch.set(z.subarray(j * n + k0, j * n + k0 + rows), j * rows);
      for (let t = 0; t < count; t++) {
        const a = col[t] * rows;
        const b = a + rows;
        const c = cos[t];
        const s = sin[t];
        for (let k = 0; k < rows; k++) {
          const zb = scratch[b + k];
          const za = scratch[a + k];
          scratch[b + k] = s * za + c * zb;
          scratch[a + k] = c * za - s * zb;
        }
      }
      for (let j = 0; j < n; j++) z.set(scratch.subarray(j * rows, j * rows + rows), j * n + k0);
    }
    this.count = 0;
  }
}

function sortAscending(d: Float64Array, z: Float64Array | null, n: number): SymmetricEigen {
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => d[a] - d[b]);
  const values = new Float64Array(n);
  for (let j = 0; j < n; j++) values[j] = d[order[j]];
  if (z === null) return { values };
  const vectors = new Float64Array(n * n);
  for (let j = 0; j < n; j++) vectors.set(z.subarray(order[j] * n, order[j] * n + n), j * n);
  return { values, vectors };
}

/**
 * The r x r symmetric matrix W^T S W for a symmetric n x n S (row-major) and
 * W given as r columns of length n (column j at w[j * n .. j * n + n)).
 * With `trapezoidal`, column j of W is taken to be zero above row j (a
 * Cholesky factor) and those zeros are skipped.
 * Computes T = S W four columns at a time (each row of S is read once per
 * four columns), then the upper triangle of W^T T, mirrored.
 */
export function congruence(s: Float64Array, n: number, w: Float64Array, r: number, trapezoidal = false): Float64Array {
  const t = new Float64Array(n * r);
  let j = 0;
  for (; j + 4 <= r; j += 4) {
    const w0 = j * n;
    const w1 = w0 + n;
    const w2 = w1 + n;
    const w3 = w2 + n;
    // Columns j..j+3 are zero above row j when trapezoidal.
    const k0 = trapezoidal ? j : 0;
    for (let i = 0; i < n; i++) {
      const si = i * n;
      let a0 = 0;
      let a1 = 0;
      let a2 = 0;
      let a3 = 0;
      for (let k = k0; k < n; k++) {
        const sik = s[si + k];
        a0 += sik * w[w0 + k];
        a1 += sik * w[w1 + k];
        a2 += sik * w[w2 + k];
        a3 += sik * w[w3 + k];
      }
      t[w0 + i] = a0;
      t[w1 + i] = a1;
      t[w2 + i] = a2;
      t[w3 + i] = a3;
    }
  }
  for (; j < r; j++) {
    const wj = j * n;
    const k0 = trapezoidal ? j : 0;
    for (let i = 0; i < n; i++) {
      const si = i * n;
      let acc = 0;
      for (let k = k0; k < n; k++) acc += s[si + k] * w[wj + k];
      t[wj + i] = acc;
    }
  }
  const m = new Float64Array(r * r);
  for (let a = 0; a < r; a++) {
    const wa = a * n;
    const k0 = trapezoidal ? a : 0;
    for (let b = a; b < r; b++) {
      const tb = b * n;
      let acc = 0;
      for (let k = k0; k < n; k++) acc += w[wa + k] * t[tb + k];
      m[a * r + b] = acc;
    }
  }
  // (W^T T)_ab and _ba differ only by rounding; mirror the upper triangle.
  for (let a = 0; a < r; a++) for (let b = a + 1; b < r; b++) m[b * r + a] = m[a * r + b];
  return m;
}

export interface PivotedCholesky {
  /** The factor L, n x rank, column j at factor[j * n .. j * n + n), zero above row j, rows in pivot order. */
  factor: Float64Array;
  /** Columns of L: the numerical rank. */
  rank: number;
  /** perm[i] is the original index of row i of L: P A P^T = L L^T with (P A P^T)_ij = A[perm[i]][perm[j]]. */
  perm: Int32Array;
}

/**
 * Cholesky factorization with diagonal pivoting of a symmetric positive
 * SEMI-definite n x n matrix (row-major): P A P^T ~= L L^T, L n x rank lower
 * trapezoidal. Each step takes the largest remaining diagonal entry as pivot
 * and stops once it falls to `tolerance` or below (default n * 2^-52 * the
 * largest diagonal entry, LAPACK dpstrf's choice): what remains is rounding
 * noise of a singular matrix (a covariance of N <= D samples has rank N - 1).
 */
export function pivotedCholesky(a: ArrayLike<number>, n: number, tolerance?: number): PivotedCholesky {
  if (a.length !== n * n) throw new VtokError('INVALID_INPUT', `Expected a ${n} x ${n} matrix (${n * n} values) but received ${a.length} values`);
  const perm = new Int32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  // Remaining diagonal of the Schur complement, in pivot order.
  const diag = new Float64Array(n);
  let maxDiag = 0;
  for (let i = 0; i < n; i++) {
    diag[i] = a[i * n + i];
    if (!Number.isFinite(diag[i])) throw new VtokError('INVALID_INPUT', `Expected finite matrix entries but diagonal entry ${i} is ${diag[i]}`);
    maxDiag = Math.max(maxDiag, diag[i]);
  }
  const tol = tolerance ?? n * 2 ** -52 * maxDiag;
  const factor = new Float64Array(n * n);
  let rank = 0;
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (diag[i] > diag[p]) p = i;
    if (!(diag[p] > tol)) break;
    if (p !== k) {
      // Swap rows k and p of L's finished columns, and the bookkeeping.
      for (let j = 0; j < k; j++) {
        const c = j * n;
        const t = factor[c + k];
        factor[c + k] = factor[c + p];
        factor[c + p] = t;
      }
      [perm[k], perm[p]] = [perm[p], perm[k]];
      [diag[k], diag[p]] = [diag[p], diag[k]];
    }
    const ck = k * n;
    const pivot = Math.sqrt(diag[k]);
    factor[ck + k] = pivot;
    // Column k below the pivot: (A[perm[i]][perm[k]] - sum_j L[i][j] L[k][j]) / pivot.
    const rowK = perm[k] * n;
    for (let i = k + 1; i < n; i++) factor[ck + i] = a[rowK + perm[i]];
    for (let j = 0; j < k; j++) {
      const c = j * n;
      const lkj = factor[c + k];
      if (lkj === 0) continue;
      for (let i = k + 1; i < n; i++) factor[ck + i] -= lkj * factor[c + i];
    }
    for (let i = k + 1; i < n; i++) {
      const v = factor[ck + i] / pivot;
      factor[ck + i] = v;
      diag[i] -= v * v;
    }
    rank++;
  }
  return { factor: factor.slice(0, rank * n), rank, perm };
}
