/**
 * Conv2DBackpropInput for the wasm backend, replacing tfjs-backend-wasm
 * 4.22's, which is a scalar loop at about 2.5 GFLOP/s. It is the gradient of
 * every conv with respect to its input, and the forward pass of every
 * transposed conv (tf.conv2dTranspose, decoder upsampling).
 *
 * For y = conv2d(x, W, stride s, pads (pt, pl)):
 *   dx[b, h, w, c] = sum dy[b, i, j, o] * W[kh, kw, c, o]  over h = i*s + kh - pt, w = j*s + kw - pl
 * which is a stride-1 convolution, run by XNNPACK, of dy spread out on a grid
 * s apart (zeros between) and padded, with W flipped in space and its in/out
 * channels swapped:
 *   dyP[b, (FH-1-pt) + i*s, (FW-1-pl) + j*s, o] = dy[b, i, j, o]   // [B, H+FH-1, W+FW-1, O], zeros elsewhere
 *   Wf[kh, kw, o, c] = W[FH-1-kh, FW-1-kw, c, o]                    // [FH, FW, O, C]
 *   dx = conv2d(dyP, Wf, stride 1, 'valid')                         // [B, H, W, C]
 * dyP is written in one pass over the heap; positions that fall outside it
 * (explicit pads larger than the filter) are dropped, as they never reach dx.
 */
import * as tf from '@tensorflow/tfjs';
import { heapF32, offsetOf, Scratch, type KernelArgs, type WasmBackend } from './wasm-util';

export function conv2dBackpropInputWasm({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(dataFormat),
  );
  if (info.dataFormat !== 'channelsLast') throw new Error('Conv2DBackpropInput on wasm supports only NHWC');
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: O } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW } = info;
  const { top: pt, left: pl } = info.padInfo;

  const be = backend as WasmBackend;
  const s = new Scratch(be);
  try {
    const HP = H + FH - 1;
    const WP = W + FW - 1;
    const dyP = s.alloc([B, HP, WP, O]); // [B, HP, WP, O]
    const wf = s.alloc([FH, FW, O, C]); // [FH, FW, O, C]
    const heap = heapF32(be); // after the allocations: they may grow the heap
    const src = offsetOf(be, dy) / 4;
    const dst = offsetOf(be, dyP) / 4;
    heap.fill(0, dst, dst + B * HP * WP * O);
    const top = FH - 1 - pt;
    const left = FW - 1 - pl;
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < OH; i++) {
        const r = top + i * SH;
        if (r < 0 || r >= HP) continue;
        const rowDst = dst + (b * HP + r) * WP * O;
        const rowSrc = src + (b * OH + i) * OW * O;
        if (SW === 1 && left >= 0 && left + OW <= WP) {
          heap.copyWithin(rowDst + left * O, rowSrc, rowSrc + OW * O);
          continue;
        }
        for (let j = 0; j < OW; j++) {
          const c = left + j * SW;
          if (c < 0 || c >= WP) continue;
          heap.copyWithin(rowDst + c * O, rowSrc + j * O, rowSrc + (j + 1) * O);
        }
      }
    }
    // Wf[kh, kw, o, c] = W[FH-1-kh, FW-1-kw, c, o]
    const w = offsetOf(be, filter) / 4;
    const f = offsetOf(be, wf) / 4;
    for (let kh = 0; kh < FH; kh++) {
      for (let kw = 0; kw < FW; kw++) {
        const from = w + ((FH - 1 - kh) * FW + (FW - 1 - kw)) * C * O;
        const to = f + (kh * FW + kw) * O * C;
        for (let c = 0; c < C; c++) {
          for (let o = 0; o < O; o++) heap[to + o * C + c] = heap[from + c * O + o];
        }
      }
    }
    const dx = s.run('Conv2D', { x: dyP, filter: wf }, { strides: [1, 1], pad: 'valid', dataFormat: 'NHWC', dilations: [1, 1] });
    return s.keep(dx); // [B, H, W, C]
  } finally {
    s.dispose();
  }
}
