/**
 * UnsortedSegmentSum for the wasm backend (tfjs-backend-wasm 4.22 has none).
 * It is the gradient of tf.gather: every embedding table and every codebook
 * lookup needs it to train.
 *
 *   out[k, ...] = sum over i with segmentIds[i] = k of x[i, ...]
 * for x [n..., rest...] and segmentIds [n...]; ids outside [0, numSegments)
 * are dropped, as TensorFlow does. One pass over x on the wasm heap.
 */
import * as tf from '@tensorflow/tfjs';
import { heapF32, heapI32, offsetOf, type KernelArgs, type WasmBackend } from './wasm-util';

export function unsortedSegmentSumWasm({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const { numSegments } = attrs as unknown as tf.UnsortedSegmentSumAttrs;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new Error(`UnsortedSegmentSum on wasm does not handle dtype ${x.dtype}`);
  const be = backend as WasmBackend;
  const n = tf.util.sizeFromShape(segmentIds.shape);
  const rest = x.shape.slice(segmentIds.shape.length);
  const inner = tf.util.sizeFromShape(rest);
  const out = be.makeOutput([numSegments, ...rest], x.dtype);
  const heap = x.dtype === 'float32' ? heapF32(be) : heapI32(be);
  const ids = heapI32(be);
  const o = offsetOf(be, out) / 4;
  const xs = offsetOf(be, x) / 4;
  const is = offsetOf(be, segmentIds) / 4;
  heap.fill(0, o, o + numSegments * inner);
  for (let i = 0; i < n; i++) {
    const k = ids[is + i];
    if (k < 0 || k >= numSegments) continue;
    const src = xs + i * inner;
    const dst = o + k * inner;
    if (x.dtype === 'int32') {
      for (let j = 0; j < inner; j++) heap[dst + j] = (heap[dst + j] + heap[src + j]) | 0;
    } else {
      for (let j = 0; j < inner; j++) heap[dst + j] += heap[src + j];
    }
  }
  return out;
}
