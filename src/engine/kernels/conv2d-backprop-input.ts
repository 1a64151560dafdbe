/**
 * Conv2DBackpropInput for the wasm backend, replacing tfjs-backend-wasm
 * 4.22's, which is a scalar loop at about 2.5 GFLOP/s. It is the gradient of
 * every conv with respect to its input, and the forward pass of every
 * transposed conv (tf.conv2dTranspose, decoder upsampling).
 *
 * For y = conv2d(x, W, stride s, pads (pt, pl)):
 *   dx[b, h, w, c] = sum dy[b, i, j, o] * W[kh, kw, c, o]  over h = i*s + kh - pt, w = j*s + kw - pl
 * Every case becomes XNNPACK convolutions of dy:
 *
 * stride 1: a convolution of dy, padded (FH-1-pt) on top, with W flipped in
 *   space and its channels swapped, Wf[kh, kw, o, c] = W[FH-1-kh, FW-1-kw, c, o].
 *   XNNPACK pads implicitly: nothing is copied but the (small) filter.
 *
 * stride s > 1 (same in both axes): sub-pixel convolution. Output rows fall in
 *   s phases, h + pt = q*s + p, and phase p only meets the taps kh = p + m*s:
 *     dx[q*s + p - pt] = sum_m dy[q - m] * W[p + m*s]
 *   a stride-1 convolution of dy with a ceil((FH-p)/s)-tap sub-filter. One
 *   XNNPACK conv per phase pair (s*s of them), then one pass on the heap
 *   interleaves them into dx. Work: exactly the forward's, where spreading dy
 *   out with zeros between (the textbook way) costs s*s times that.
 *   (One conv with all phases as output channels, then DepthToSpace, was
 *   slower: tfjs-backend-wasm's DepthToSpace alone took longer than the conv.)
 *
 * Anything else (different strides per axis, pads wider than the filter,
 * input rows the forward never read): dy spread out with zeros on a padded
 * grid, written in one pass over the heap, then one stride-1 convolution.
 */
import * as tf from '@tensorflow/tfjs';
import { heapF32, offsetOf, Scratch, type KernelArgs, type WasmBackend } from './wasm-util';

type Info = tf.backend_util.Conv2DInfo;
type Pad4 = [[number, number], [number, number], [number, number], [number, number]];

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
  const s = new Scratch(backend as WasmBackend);
  try {
    const { strideHeight: SH, strideWidth: SW, filterHeight: FH, filterWidth: FW, inHeight: H, inWidth: W, outHeight: OH, outWidth: OW } = info;
    const { top: pt, left: pl } = info.padInfo;
    if (SH === 1 && SW === 1) {
      const top = FH - 1 - pt;
      const left = FW - 1 - pl;
      const bottom = H + pt - OH;
      const right = W + pl - OW;
      if (top >= 0 && left >= 0 && bottom >= 0 && right >= 0) {
        const pads: Pad4 = [
          [0, 0],
          [top, bottom],
          [left, right],
          [0, 0],
        ];
        return s.keep(s.run('Conv2D', { x: dy, filter: flippedFilter(s, filter, info) }, convAttrs(pads)));
      }
    } else if (SH === SW) {
      return s.keep(subPixel(s, dy, filter, info));
    }
    return s.keep(spreadOut(s, dy, filter, info));
  } finally {
    s.dispose();
  }
}

function convAttrs(pad: Pad4 | 'valid'): object {
  return { strides: [1, 1], pad, dataFormat: 'NHWC', dilations: [1, 1] };
}

/** Wf[kh, kw, o, c] = W[FH-1-kh, FW-1-kw, c, o]  // [FH, FW, O, C] */
function flippedFilter(s: Scratch, filter: tf.TensorInfo, info: Info): tf.TensorInfo {
  const { filterHeight: FH, filterWidth: FW, inChannels: C, outChannels: O } = info;
  const wf = s.alloc([FH, FW, O, C]);
  const heap = heapF32(s.backend);
  const w = offsetOf(s.backend, filter) / 4;
  const f = offsetOf(s.backend, wf) / 4;
  for (let kh = 0; kh < FH; kh++) {
    for (let kw = 0; kw < FW; kw++) {
      const from = w + ((FH - 1 - kh) * FW + (FW - 1 - kw)) * C * O;
      const to = f + (kh * FW + kw) * O * C;
      for (let c = 0; c < C; c++) {
        for (let o = 0; o < O; o++) heap[to + o * C + c] = heap[from + c * O + o];
      }
    }
  }
  return wf;
}

/**
 * Stride s in both axes: one stride-1 conv per output phase (ph, pw), each
 * with exactly its own taps W[ph + m*s, pw + n*s], then the phases are
 * interleaved into dx (and the pt/pl offset dropped) in one pass on the heap.
 */
function subPixel(s: Scratch, dy: tf.TensorInfo, filter: tf.TensorInfo, info: Info): tf.TensorInfo {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: O } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: S } = info;
  const { top: pt, left: pl } = info.padInfo;
  // Rows q of the phase grid cover h + pt in [0, QH*S); at least OH so no dy row is cut.
  const QH = Math.max(Math.ceil((H + pt) / S), OH);
  const QW = Math.max(Math.ceil((W + pl) / S), OW);
  const phases: (tf.TensorInfo | undefined)[] = [];
  for (let ph = 0; ph < S; ph++) {
    for (let pw = 0; pw < S; pw++) {
      const MH = Math.ceil((FH - ph) / S); // taps kh = ph + m*S < FH
      const MW = Math.ceil((FW - pw) / S);
      if (MH <= 0 || MW <= 0) {
        phases.push(undefined); // no tap reaches this phase: zeros
        continue;
      }
      // F[th, tw, o, c] = W[ph + (MH-1-th)*S, pw + (MW-1-tw)*S, c, o]
      const f = s.alloc([MH, MW, O, C]);
      const heap = heapF32(s.backend);
      const w0 = offsetOf(s.backend, filter) / 4;
      const f0 = offsetOf(s.backend, f) / 4;
      for (let th = 0; th < MH; th++) {
        for (let tw = 0; tw < MW; tw++) {
          const from = w0 + ((ph + (MH - 1 - th) * S) * FW + (pw + (MW - 1 - tw) * S)) * C * O;
          const to = f0 + (th * MW + tw) * O * C;
          for (let c = 0; c < C; c++) {
            for (let o = 0; o < O; o++) heap[to + o * C + c] = heap[from + c * O + o];
          }
        }
      }
      const pads: Pad4 = [
        [0, 0],
        [MH - 1, QH - OH],
        [MW - 1, QW - OW],
        [0, 0],
      ];
      phases.push(s.run('Conv2D', { x: dy, filter: f }, convAttrs(pads))); // [B, QH, QW, C]
      s.free(f);
    }
  }
  // dx[b, h, w, :] = phase[(h+pt) % S][(w+pl) % S][b, (h+pt) / S, (w+pl) / S, :]
  const dx = s.alloc([B, H, W, C]);
  const heap = heapF32(s.backend);
  const out = offsetOf(s.backend, dx) / 4;
  const src = phases.map((p) => (p ? offsetOf(s.backend, p) / 4 : -1));
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const hh = h + pt;
      const q = Math.floor(hh / S);
      const rowPhase = (hh % S) * S;
      for (let w = 0; w < W; w++) {
        const ww = w + pl;
        const from = src[rowPhase + (ww % S)];
        const to = out + ((b * H + h) * W + w) * C;
        if (from < 0) {
          heap.fill(0, to, to + C);
          continue;
        }
        const at = from + ((b * QH + q) * QW + Math.floor(ww / S)) * C;
        for (let c = 0; c < C; c++) heap[to + c] = heap[at + c];
      }
    }
  }
  return dx;
}

/** General case: dy spread s apart on a zero grid padded for a stride-1 'valid' conv with Wf. */
function spreadOut(s: Scratch, dy: tf.TensorInfo, filter: tf.TensorInfo, info: Info): tf.TensorInfo {
  const { batchSize: B, inHeight: H, inWidth: W, outHeight: OH, outWidth: OW, outChannels: O } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW } = info;
  const { top: pt, left: pl } = info.padInfo;
  const HP = H + FH - 1;
  const WP = W + FW - 1;
  const dyP = s.alloc([B, HP, WP, O]); // [B, HP, WP, O]
  const wf = flippedFilter(s, filter, info); // [FH, FW, O, C]
  const heap = heapF32(s.backend); // after the allocations: they may grow the heap
  const src = offsetOf(s.backend, dy) / 4;
  const dst = offsetOf(s.backend, dyP) / 4;
  heap.fill(0, dst, dst + B * HP * WP * O);
  const top = FH - 1 - pt;
  const left = FW - 1 - pl;
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < OH; i++) {
      const r = top + i * SH;
      if (r < 0 || r >= HP) continue;
      const rowDst = dst + (b * HP + r) * WP * O;
      const rowSrc = src + (b * OH + i) * OW * O;
      for (let j = 0; j < OW; j++) {
        const c = left + j * SW;
        if (c < 0 || c >= WP) continue;
        heap.copyWithin(rowDst + c * O, rowSrc + j * O, rowSrc + (j + 1) * O);
      }
    }
  }
  return s.run('Conv2D', { x: dyP, filter: wf }, convAttrs('valid')); // [B, H, W, C]
}
