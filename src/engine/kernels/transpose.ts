/**
 * Transpose for the wasm backend, replacing tfjs-backend-wasm 4.22's for the
 * permutations where it is slow. The stock kernel handles rank 5 and every
 * permutation that keeps the last axis with a per-element loop: splitting an
 * attention layer's qkv [B, T, 3, H, hd] into [3, B, H, T, hd] took ~100 ms
 * (B 32, T 74, C 160), 40 % of a training step of the Fashion-MNIST AR model.
 *
 * The permutation is first simplified: axes of size 1 are dropped and runs of
 * input axes that stay adjacent and in order are merged (a [B, T, H, hd] ->
 * [B, H, T, hd] swap is a 4D permutation of 4 axes, [B, T, 3, H, hd] ->
 * [3, B, H, T, hd] one of 5). Then:
 *   - nothing left to permute: one block copy;
 *   - the last axis stays last: a copy of each contiguous row (of `row`
 *     elements) to its place, walking the output in order;
 *   - otherwise: the stock kernel (XNNPACK-free but compiled loops, faster
 *     than JavaScript for element-by-element moves).
 */
import * as tf from '@tensorflow/tfjs';
import { bytesPerElement, heapBytes, offsetOf, type KernelArgs, type WasmBackend } from './wasm-util';

/** Shape and permutation with size-1 axes dropped and adjacent in-order axes merged. */
export function simplifyPermutation(shape: readonly number[], perm: readonly number[]): { shape: number[]; perm: number[] } {
  // Renumber the axes of size > 1 as 0..m-1 (input order).
  const kept = shape.map((_, a) => a).filter((a) => shape[a] !== 1);
  const order = perm.filter((a) => shape[a] !== 1).map((a) => kept.indexOf(a)); // output order, new numbering
  // Runs of consecutive input axes in the output become one axis.
  const groups: number[][] = [];
  for (const a of order) {
    const last = groups[groups.length - 1];
    if (last !== undefined && last[last.length - 1] === a - 1) last.push(a);
    else groups.push([a]);
  }
  const byInput = [...groups].sort((g, h) => g[0] - h[0]);
  return {
    shape: byInput.map((g) => g.reduce((n, a) => n * shape[kept[a]], 1)),
    perm: groups.map((g) => byInput.indexOf(g)),
  };
}

export function transposeWasm({ inputs, backend, attrs }: KernelArgs, stock: tf.KernelConfig): tf.TensorInfo {
  const { x } = inputs as { x: tf.TensorInfo };
  const { perm } = attrs as unknown as tf.TransposeAttrs;
  if (x.dtype === 'string' || x.dtype === 'complex64') return stock.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
  const { shape, perm: p } = simplifyPermutation(x.shape, perm);
  const r = shape.length;
  if (r > 1 && p[r - 1] !== r - 1) return stock.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
  const be = backend as WasmBackend;
  const outShape = perm.map((a) => x.shape[a]);
  const out = be.makeOutput(outShape, x.dtype);
  const size = tf.util.sizeFromShape(outShape);
  if (size === 0) return out;
  const bpe = bytesPerElement(x.dtype);
  const heap = heapBytes(be); // after makeOutput: the heap may have grown
  const src = offsetOf(be, x);
  const dst = offsetOf(be, out);
  if (r <= 1) {
    heap.copyWithin(dst, src, src + size * bpe);
    return out;
  }
  // Rows of the last axis are contiguous in both; walk the output's outer axes in order.
  const rowBytes = shape[r - 1] * bpe;
  const inStrides = [...tf.util.computeStrides(shape), 1].map((s) => s * bpe);
  const outer = p.slice(0, r - 1).map((a) => shape[a]); // output's outer dims
  const strides = p.slice(0, r - 1).map((a) => inStrides[a]); // input step for each
  const idx = new Array<number>(r - 1).fill(0);
  const rows = size / shape[r - 1];
  let from = src;
  let to = dst;
  for (let n = 0; n < rows; n++) {
    heap.copyWithin(to, from, from + rowBytes);
    to += rowBytes;
    // Odometer over the outer output axes.
    for (let k = r - 2; k >= 0; k--) {
      idx[k]++;
      from += strides[k];
      if (idx[k] < outer[k]) break;
      from -= strides[k] * outer[k];
      idx[k] = 0;
    }
  }
  return out;
}
