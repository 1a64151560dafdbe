/**
 * BatchMatMul for the wasm backend. tfjs-backend-wasm 4.22 sends only a
 * batch-1 product without transposes to XNNPACK; every other case (attention's
 * Q K^T, A V, and every matmul gradient, which transposes) runs a scalar loop
 * at 1-2 GFLOP/s. vtok's kernel brings the operands to the plain layout with
 * (at most) one transpose each, then:
 *   - b shared by every batch (a dense layer on [B, T, C]): one XNNPACK product
 *     of a as [1, batch*M, K] with b;
 *   - otherwise one XNNPACK product per batch, on views of a, b and the output
 *     (no copies), with numpy-style broadcasting of the batch dimensions.
 */
import * as tf from '@tensorflow/tfjs';
import { heapF32, offsetOf, Scratch, type KernelArgs, type WasmBackend } from './wasm-util';

type WasmMatMul = (
  aId: number,
  aShape: Uint8Array,
  aRank: number,
  bId: number,
  bShape: Uint8Array,
  bRank: number,
  transposeA: boolean,
  transposeB: boolean,
  outId: number,
) => void;

let wasmMatMul: WasmMatMul | undefined;

/** setupFunc: binds the C++ BatchMatMul of the backend being started. */
export function setupBatchMatMulWasm(backend: unknown): void {
  const be = backend as WasmBackend;
  wasmMatMul = be.wasm.cwrap('BatchMatMul', null, [
    'number',
    'array',
    'number',
    'number',
    'array',
    'number',
    'number',
    'number',
    'number',
  ]) as unknown as WasmMatMul;
}

function shapeBytes(shape: number[]): Uint8Array {
  return new Uint8Array(new Int32Array(shape).buffer);
}

/** out = a @ b for a [1, M, K], b [1, K, N], out [1, M, N] (XNNPACK's path; also the filter gradient's products). */
export function matmul3(be: WasmBackend, a: tf.TensorInfo, b: tf.TensorInfo, out: tf.TensorInfo): void {
  if (!wasmMatMul) throw new Error('vtok BatchMatMul used before the wasm backend set it up');
  const id = (t: tf.TensorInfo) => be.dataIdMap.get(t.dataId).id;
  wasmMatMul(id(a), shapeBytes(a.shape), 3, id(b), shapeBytes(b.shape), 3, false, false, id(out));
}

export function batchMatMulWasm({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error('BatchMatMul for non-float32 tensors is not supported on wasm');
  const be = backend as WasmBackend;
  const ra = a.shape.length;
  const rb = b.shape.length;
  const M = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
  const K = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
  const Kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
  const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
  if (K !== Kb) {
    throw new Error(
      `Error in matMul: inner shapes (${K}) and (${Kb}) of Tensors with shapes ${a.shape} and ${b.shape} and transposeA=${transposeA} and transposeB=${transposeB} must match.`,
    );
  }
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  const batchA = tf.util.sizeFromShape(outerA);
  const batchB = tf.util.sizeFromShape(outerB);
  const batch = tf.util.sizeFromShape(outer);
  const outShape = [...outer, M, N];

  const s = new Scratch(be);
  try {
    if (M * N * batch === 0 || K === 0) {
      const out = s.alloc(outShape);
      const o = offsetOf(be, out) / 4;
      heapF32(be).fill(0, o, o + batch * M * N);
      return s.keep(out);
    }
    // Plain layouts: a3 [batchA, M, K], b3 [batchB, K, N].
    let a3 = s.reshape(a, transposeA ? [batchA, K, M] : [batchA, M, K]);
    if (transposeA) a3 = s.run('Transpose', { x: a3 }, { perm: [0, 2, 1] });
    let b3 = s.reshape(b, transposeB ? [batchB, N, K] : [batchB, K, N]);
    if (transposeB) b3 = s.run('Transpose', { x: b3 }, { perm: [0, 2, 1] });

    if (batchB === 1) {
      // One product: every batch of a against the same b.
      const a2 = s.reshape(a3, [1, batchA * M, K]);
      const out = s.alloc([1, batchA * M, N]);
      matmul3(be, a2, b3, out);
      const res = s.reshape(out, outShape);
      return s.keep(res);
    }
    const out = s.alloc([batch, M, N]);
    const stridesOut = tf.util.computeStrides(outer);
    for (let i = 0; i < batch; i++) {
      // Broadcast the flat batch index i of `outer` onto a's and b's batch dims.
      const loc = outer.length ? tf.util.indexToLoc(i, outer.length, stridesOut) : [];
      const ia = batchIndex(loc, outerA);
      const ib = batchIndex(loc, outerB);
      const av = s.view(a3, ia * M * K, [1, M, K]);
      const bv = s.view(b3, ib * K * N, [1, K, N]);
      const ov = s.view(out, i * M * N, [1, M, N]);
      matmul3(be, av, bv, ov);
    }
    return s.keep(s.reshape(out, outShape));
  } finally {
    s.dispose();
  }
}

/** Flat index into dims `shape` (right-aligned with loc) of a broadcast location. */
function batchIndex(loc: number[], shape: number[]): number {
  let index = 0;
  const shift = loc.length - shape.length;
  for (let d = 0; d < shape.length; d++) index = index * shape[d] + (shape[d] === 1 ? 0 : loc[d + shift]);
  return index;
}
