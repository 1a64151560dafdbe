/**
 * MaxPoolGrad for the wasm backend, replacing tfjs-backend-wasm 4.22's, which
 * sends the gradient of a window whose values are all negative to the wrong
 * element (as if the window's maximum started at 0).
 *
 * Same rule as the cpu backend (and TensorFlow): each output's gradient goes
 * to the first position, in row-major window order, that holds the window's
 * maximum; padding positions never win. One pass on the wasm heap.
 */
import * as tf from '@tensorflow/tfjs';
import { heapF32, offsetOf, type KernelArgs, type WasmBackend } from './wasm-util';

export function maxPoolGradWasm({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { dy, input } = inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as tf.MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { strideHeight: SH, strideWidth: SW, effectiveFilterHeight: FH, effectiveFilterWidth: FW } = info;
  const { dilationHeight: DH, dilationWidth: DW } = info;
  const { top: pt, left: pl } = info.padInfo;
  const be = backend as WasmBackend;
  const dx = be.makeOutput(input.shape, 'float32');
  const heap = heapF32(be);
  const xo = offsetOf(be, input) / 4;
  const dyo = offsetOf(be, dy) / 4;
  const dxo = offsetOf(be, dx) / 4;
  heap.fill(0, dxo, dxo + B * H * W * C);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < OH; i++) {
      const r0 = i * SH - pt;
      for (let j = 0; j < OW; j++) {
        const c0 = j * SW - pl;
        const g = dyo + ((b * OH + i) * OW + j) * C;
        for (let d = 0; d < C; d++) {
          let best = -Infinity;
          let at = -1;
          for (let r = r0; r < r0 + FH; r += DH) {
            if (r < 0 || r >= H) continue;
            for (let c = c0; c < c0 + FW; c += DW) {
              if (c < 0 || c >= W) continue;
              const k = ((b * H + r) * W + c) * C + d;
              const v = heap[xo + k];
              if (v > best) {
                best = v;
                at = k;
              }
            }
          }
          if (at >= 0) heap[dxo + at] += heap[g + d];
        }
      }
    }
  }
  return dx;
}
