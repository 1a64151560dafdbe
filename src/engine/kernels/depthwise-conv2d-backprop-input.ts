/**
 * DepthwiseConv2dNativeBackpropInput for the wasm backend, which
 * tfjs-backend-wasm 4.22 does not have: the gradient of a depthwise
 * convolution with respect to its input. The tokenizer trainer's perceptual
 * term needs it to take gradients through a MobileNet teacher (its depthwise
 * 3x3 convs) into the reconstruction.
 *
 * For y = depthwiseConv2d(x, W [FH, FW, C, M], strides (SH, SW), dilations
 * (DH, DW), pads (pt, pl)), y[b, i, j, c*M + m] = sum x[b, h, w, c] * W[kh, kw, c, m]
 * over h = i*SH + kh*DH - pt, w = j*SW + kw*DW - pl, so
 *   dx[b, h, w, c] = sum dy[b, i, j, c*M + m] * W[kh, kw, c, m]  over the same (i, j, kh, kw, m).
 * One scatter pass on the wasm heap (a MobileNetV2 up to block 13 at 224 is
 * about 20 M multiply-adds per image); no XNNPACK: a frozen teacher's
 * gradient is a small part of a training step.
 *
 * Not registered yet: add
 *   { name: 'DepthwiseConv2dNativeBackpropInput', kernelFunc: (a) => depthwiseConv2dBackpropInputWasm(a) },
 * to WASM_KERNELS in index.ts.
 */
import * as tf from '@tensorflow/tfjs';
import { heapF32, offsetOf, type KernelArgs, type WasmBackend } from './wasm-util';

export function depthwiseConv2dBackpropInputWasm({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { strides, dilations, pad, dimRoundingMode, inputShape } = attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    inputShape as [number, number, number, number],
    filter.shape as [number, number, number, number],
    strides,
    dilations,
    pad,
    dimRoundingMode,
    true, // depthwise
  );
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: CM } = info;
  const { strideHeight: SH, strideWidth: SW, filterHeight: FH, filterWidth: FW, dilationHeight: DH, dilationWidth: DW } = info;
  const { top: pt, left: pl } = info.padInfo;
  const M = CM / C; // channel multiplier
  const be = backend as WasmBackend;
  const dx = be.makeOutput([B, H, W, C], 'float32');
  const heap = heapF32(be); // after the allocation: it may have grown the heap
  const dyo = offsetOf(be, dy) / 4;
  const wo = offsetOf(be, filter) / 4;
  const dxo = offsetOf(be, dx) / 4;
  heap.fill(0, dxo, dxo + B * H * W * C);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < OH; i++) {
      for (let kh = 0; kh < FH; kh++) {
        const h = i * SH + kh * DH - pt;
        if (h < 0 || h >= H) continue;
        for (let j = 0; j < OW; j++) {
          const g = dyo + ((b * OH + i) * OW + j) * CM; // dy[b, i, j, :]
          for (let kw = 0; kw < FW; kw++) {
            const w = j * SW + kw * DW - pl;
            if (w < 0 || w >= W) continue;
            const out = dxo + ((b * H + h) * W + w) * C; // dx[b, h, w, :]
            const f = wo + (kh * FW + kw) * CM; // W[kh, kw, :, :]
            if (M === 1) {
              for (let c = 0; c < C; c++) heap[out + c] += heap[g + c] * heap[f + c];
            } else {
              for (let c = 0; c < C; c++) {
                let s = 0;
                for (let m = 0; m < M; m++) s += heap[g + c * M + m] * heap[f + c * M + m];
                heap[out + c] += s;
              }
            }
          }
        }
      }
    }
  }
  return dx;
}
