/**
 * Conv2DBackpropFilter for the wasm backend (tfjs-backend-wasm 4.22 has none,
 * so no conv weight could be trained on wasm).
 *
 * The weight gradient of y = conv2d(x, W, stride s, pads (pt, pl)) is
 *   dW[kh, kw, c, o] = sum_{b, i, j} x[b, i*s + kh - pt, j*s + kw - pl, c] * dy[b, i, j, o]
 * which is itself one convolution, run by XNNPACK: take x as a batch of `c`
 * images with `b` channels and dy as a filter whose taps are dy's pixels,
 * spaced s apart (dilation = stride):
 *   xT  = transpose(x,  [3, 1, 2, 0])                 // [C, H, W, B]
 *   dyT = transpose(dy, [1, 2, 0, 3])                 // [OH, OW, B, O]
 *   out = conv2d(xT, dyT, stride 1, dilation s, pad)  // [C, FH, FW, O]
 *   dW  = transpose(out, [1, 2, 0, 3])                // [FH, FW, C, O]
 * Rows and columns of x that the forward conv never read (a 'valid' conv whose
 * stride does not divide the input) are cut off first.
 *
 * Tried and not faster: one matmul per filter tap, im2col + matmul (ENGINE.md);
 * folding dy's columns into the channel axis (B*OW channels per tap instead of
 * B, at the price of FW gathered copies of x); stacking groups of dy rows into
 * the batch (P*B channels per tap, x rows duplicated at the group edges).
 * What the conv costs beyond the forward's is mostly XNNPACK packing dyT, an
 * activation-sized "filter", on one thread at every call.
 */
import * as tf from '@tensorflow/tfjs';
import { Scratch, transposeOuter, type KernelArgs, type WasmBackend } from './wasm-util';

export function conv2dBackpropFilterWasm({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    tf.backend_util.convertConv2DDataFormat(dataFormat),
  );
  if (info.dataFormat !== 'channelsLast') throw new Error('Conv2DBackpropFilter on wasm supports only NHWC');
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW } = info;
  const { top: pt, left: pl } = info.padInfo;

  const s = new Scratch(backend as WasmBackend);
  try {
    // Padding at the far edges that makes the conv below produce exactly FH x FW;
    // negative means x has rows/columns the forward conv never read.
    const pb = FH + (OH - 1) * SH - H - pt;
    const pr = FW + (OW - 1) * SW - W - pl;
    let xin = x;
    if (pb < 0 || pr < 0) {
      xin = s.run('Slice', { x }, { begin: [0, 0, 0, 0], size: [B, H + Math.min(pb, 0), W + Math.min(pr, 0), C] });
    }
    const [, H1, W1] = xin.shape;
    const xT = s.reshape(transposeOuter(s, xin, B, H1 * W1, C), [C, H1, W1, B]); // [C, H', W', B]
    const dyT = s.run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] }); // [OH, OW, B, O]
    const out = s.run(
      'Conv2D',
      { x: xT, filter: dyT },
      {
        strides: [1, 1],
        pad: [
          [0, 0],
          [pt, Math.max(pb, 0)],
          [pl, Math.max(pr, 0)],
          [0, 0],
        ],
        dataFormat: 'NHWC',
        dilations: [SH, SW],
      },
    ); // [C, FH, FW, O]
    return s.keep(s.run('Transpose', { x: out }, { perm: [1, 2, 0, 3] })); // [FH, FW, C, O]
  } finally {
    s.dispose();
  }
}

