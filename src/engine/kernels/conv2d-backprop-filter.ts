/**
 * Conv2DBackpropFilter for the wasm backend (tfjs-backend-wasm 4.22 has none,
 * so no conv weight could be trained on wasm).
 *
 * The weight gradient of y = conv2d(x, W, stride s, pads (pt, pl)) is
 *   dW[kh, kw, c, o] = sum_{b, i, j} x[b, i*s + kh - pt, j*s + kw - pl, c] * dy[b, i, j, o]
 * i.e. per filter tap one matrix product over the B*OH*OW positions,
 *   dW[kh, kw] (C x O) = X_tap (C x B*OH*OW) @ dy (B*OH*OW x O).
 * Done here as FH*FW XNNPACK products (tfjs-backend-wasm's C++ BatchMatMul)
 * that share their right operand, with no copy per tap:
 *   - dy goes on a grid [B, Hg, Wg, O], zero-padded on the right and bottom
 *     (a row copy; none when no tap reaches past the output, e.g. 1x1);
 *   - x is split by stride phase (x_ph[r] = x[r*s + ph], so every tap is a
 *     stride-1 shift of one phase: no dilation, no wasted work) and written
 *     channel-major on the same grid, xg [phases, C, B*Hg*Wg] (one pass in JS);
 *   - a tap reads its phase at a constant offset on the flattened grid, so
 *     X_tap is a plain view of xg: rows of length K = B*Hg*Wg with stride K.
 *     Where a shifted row runs into the next one (or into `tail` zeros at the
 *     end), dy on the grid is zero.
 *   - XNNPACK packs the right operand (dy) once per operator, which tfjs caches
 *     by tensor id: one pack, FH*FW products. Packing runs on one thread; it is
 *     faster on a chunk of images just written (in cache), so the batch goes in
 *     chunks of about CHUNK_ELEMENTS elements of dy (2 chunks for the 8x64x64x64
 *     bench shape), each chunk's partial dW summed at the end.
 * The grid costs (Hg*Wg)/(OH*OW) extra work: 6% for 64x64 3x3 'same'.
 *
 * Measured (bench/conv-dw-profile.ts, 2 threads, on a machine with load 4-6
 * from other jobs, so absolute times are ~2.5x the quiet ones; ratios are to
 * the forward conv in the same run):
 *   x 8x64x64x64 * 3x3x64x64 s1: forward 90; this kernel 166 (1.85x): dy grid 3,
 *     x grid 10, first product per chunk (packs dy) 45, other 16 products 110.
 *   x 8x64x64x64 * 3x3x64x128 s2: forward 45; this kernel 78 (1.74x): dy grid 1,
 *     x grid 12, first product (packs dy) 12, other 8 products 51.
 *   1 thread: 1.5-1.8x (s1), 1.35-1.45x (s2); the tokenizer's conv shapes
 *     (bench:engine's training step) 1.6-2.5x faster than the previous kernel.
 *   bench:engine (full run, load 4.6): filter grad / forward 2.02x (s1) and
 *     1.95x (s2) on 2 threads, 1.75x and 1.34x on 1 thread. Three runs
 *     alternating with the previous kernel (wasm 1t/2t only, load 3.3-4.8):
 *     2 threads s1 1.59, 3.02, 1.64x vs 2.23, 2.50, 2.89x; s2 1.77, 2.69, 1.64x
 *     vs 2.50, 3.99, 3.22x; training step 1t 184, 238, 230 ms vs 324, 298, 430;
 *     2t 235, 358, 317 ms vs 367, 423, 311. On a busy machine the 2-thread
 *     times swing 2x between runs: the 2x target is met on average, not in
 *     every run. Small products on 2 threads (the tokenizer's 16x16 and 32x32
 *     layers) gain little over the previous kernel: each call is a thread-pool
 *     round trip.
 * The previous kernel (in git history before this file's rewrite), one XNNPACK
 * Conv2D of xT = transpose(x) [C, H, W, B] with dyT = transpose(dy)
 * [OH, OW, B, O] as its filter (dilation = stride), in the same runs: 2.9x (s1) and 3.4x (s2) the forward's time; its split (s1,
 * s2): transposeOuter(x) 48, 46; Transpose(dy) 2, 2; the conv 209, 105, of
 * which 134, 65 when re-run on the same tensors (XNNPACK's cached operator),
 * so ~75 and ~40 went to creating the operator (packing dyT, one thread) and
 * setup; final Transpose 0.4. Its conv also computes only FH*FW = 9 output
 * pixels per "image" (c), with B = 8 channels per tap: poor tiles for XNNPACK.
 *
 * Tried and not faster:
 *   - (before) one matmul per filter tap with a copy per tap, im2col + matmul
 *     (ENGINE.md); folding dy's columns into the channel axis; stacking groups
 *     of dy rows into the batch;
 *   - chunks smaller than 1M elements (0.5M, one image, 4096 grid rows): more
 *     calls, each a thread-pool round trip, which costs most on a busy machine
 *     (enc_in 4x64x64x3 2 threads: 18 ms in 2 chunks vs 11-12 in 1);
 *   - the whole batch in one chunk: packing the 35k-row dy of the s1 shape
 *     from memory took ~30-40 ms vs ~15 ms in cache-sized chunks (totals within
 *     noise of each other);
 *   - the right operand transposed (BatchMatMul's transposeB): the C++ kernel
 *     sends that to its scalar loop (300+ ms).
 * Not done: splitting a large image into row bands (chunks below one image)
 * would need x rows repeated at the band edges; on 2 threads small products
 * were slower, not faster.
 */
import * as tf from '@tensorflow/tfjs';
import { matmul3 } from './batch-matmul';
import { heapF32, offsetOf, Scratch, type KernelArgs, type WasmBackend } from './wasm-util';

/**
 * Elements of dy (on the grid) per chunk of images, about 4 MB: XNNPACK packs
 * each chunk's dy on one thread, faster while the chunk, just written, is still
 * in cache; fewer, larger chunks mean fewer (multi-threaded) calls.
 */
export const CHUNK_ELEMENTS = 1 << 20;

/** One axis of the grid: which x phase and which offset each filter tap reads. */
interface AxisPlan {
  /** Grid length: the output length plus the largest tap offset. */
  grid: number;
  /** Grid position of x's phase row 0 (>= 0). */
  lead: number;
  /** The x phases some tap reads, in order. */
  phases: number[];
  /** Per tap: index into `phases`, and offset on the grid. */
  tapPhase: number[];
  tapOffset: number[];
}

/**
 * Tap k of an axis reads x at i*s + k - p for output i: phase ph = (k - p) mod s,
 * phase row i + m with m = (k - p - ph) / s. On a grid where phase row r sits at
 * position r + lead (lead = -min m), tap k reads grid position i + (m + lead).
 */
function planAxis(taps: number, stride: number, padBefore: number, outLen: number): AxisPlan {
  const ph: number[] = [];
  const m: number[] = [];
  for (let k = 0; k < taps; k++) {
    const r = k - padBefore;
    const p = ((r % stride) + stride) % stride;
    ph.push(p);
    m.push((r - p) / stride);
  }
  const lead = -Math.min(...m);
  const phases = [...new Set(ph)].sort((a, b) => a - b);
  const tapOffset = m.map((v) => v + lead);
  return { grid: outLen + Math.max(...tapOffset), lead, phases, tapPhase: ph.map((p) => phases.indexOf(p)), tapOffset };
}

/**
 * The weight gradient as FH*FW matrix products with one shared right operand:
 *   dW[kh, kw] (C x O) = xg[phase(kh, kw)][:, off(kh, kw) : off + K] @ dyg (K x O)
 * dyg is dy on a zero-padded grid [B, Hg, Wg, O] (K = B*Hg*Wg rows), xg holds
 * each x phase channel-major on the same grid, [phase][C][B*Hg*Wg]; a tap is a
 * constant shift on the flattened grid, so each left operand is a plain view
 * (rows of length K, stride K). Where a shifted row runs into the next one
 * (or past the end: `tail` zeros), dyg is zero. XNNPACK packs dyg once per
 * chunk of images: its operator is cached by dyg's id across the FH*FW calls.
 */
export function conv2dBackpropFilterGemm(
  s: Scratch,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  /** Called after each step (bench/conv-dw-profile.ts times them). */
  mark?: (step: string) => void,
  chunkElements = CHUNK_ELEMENTS,
): tf.TensorInfo {
  const be = s.backend;
  const { batchSize: B, inChannels: C, outHeight: OH, outWidth: OW, outChannels: O } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW } = info;
  const rows = planAxis(FH, SH, info.padInfo.top, OH);
  const cols = planAxis(FW, SW, info.padInfo.left, OW);
  const Hg = rows.grid;
  const Wg = cols.grid;
  const G = Hg * Wg; // grid positions per image
  const tail = Math.max(...rows.tapOffset) * Wg + Math.max(...cols.tapOffset);
  const NP = rows.phases.length * cols.phases.length;
  const NPW = cols.phases.length;
  // Chunks of whole images, about chunkElements elements of dyg each; each
  // chunk's operands are built just before its products, in buffers reused by the next.
  const Bc = Math.ceil(B / Math.min(B, Math.max(1, Math.round((B * G * O) / chunkElements)))); // images per chunk
  const nChunks = Math.ceil(B / Bc);
  const needGrid = Hg !== OH || Wg !== OW;
  const dyg = needGrid ? s.alloc([Bc * G * O]) : dy; // [Bc, Hg, Wg, O]
  const xg = s.alloc([NP * C * Bc * G + tail]); // [NP, C, Bc, Hg, Wg] + tail
  const T = FH * FW;
  const dW = s.alloc([FH, FW, C, O]);
  if (B * OH * OW === 0) {
    const o = offsetOf(be, dW) >>> 2;
    heapF32(be).fill(0, o, o + T * C * O); // an empty sum
    return dW;
  }
  // One partial product per chunk, summed below (XNNPACK does not accumulate).
  const part = nChunks === 1 ? dW : s.alloc([nChunks, T, C, O]);
  for (let b0 = 0, j = 0; b0 < B; b0 += Bc, j++) {
    const nb = Math.min(Bc, B - b0);
    const K = nb * G;
    let dyc: tf.TensorInfo; // [1, K, O]
    if (needGrid) {
      // dy of images b0.. on the grid, zero right of column OW and below row OH.
      const heap = heapF32(be);
      const src = (offsetOf(be, dy) >>> 2) + b0 * OH * OW * O;
      const dst = offsetOf(be, dyg) >>> 2;
      heap.fill(0, dst, dst + K * O);
      for (let b = 0; b < nb; b++) {
        for (let i = 0; i < OH; i++) {
          const from = src + (b * OH + i) * OW * O;
          heap.copyWithin(dst + (b * Hg + i) * Wg * O, from, from + OW * O);
        }
      }
      dyc = s.view(dyg, 0, [1, K, O]);
    } else {
      dyc = s.view(dy, b0 * G * O, [1, K, O]);
    }
    mark?.('dy on the grid');
    writeXGrid(heapF32(be), offsetOf(be, x) >>> 2, offsetOf(be, xg) >>> 2, info, rows, cols, b0, nb, tail);
    mark?.('x phases on the grid');
    // A new view (id) per chunk: XNNPACK's operator, holding the packed dyc, is cached by id.
    for (let kh = 0; kh < FH; kh++) {
      for (let kw = 0; kw < FW; kw++) {
        const p = rows.tapPhase[kh] * NPW + cols.tapPhase[kw];
        const off = p * C * K + rows.tapOffset[kh] * Wg + cols.tapOffset[kw];
        matmul3(be, s.view(xg, off, [1, C, K]), dyc, s.view(part, (j * T + kh * FW + kw) * C * O, [1, C, O]));
        mark?.(kh + kw === 0 ? 'first product of a chunk (packs dyg)' : 'other products');
      }
    }
  }
  if (part !== dW) {
    const heap = heapF32(be);
    const src = offsetOf(be, part) >>> 2;
    const dst = offsetOf(be, dW) >>> 2;
    const n = T * C * O;
    heap.copyWithin(dst, src, src + n);
    for (let j = 1; j < nChunks; j++) {
      const from = src + j * n;
      for (let i = 0; i < n; i++) heap[dst + i] += heap[from + i];
    }
  }
  mark?.('sum of chunks');
  return dW;
}

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
  const s = new Scratch(backend as WasmBackend);
  try {
    return s.keep(conv2dBackpropFilterGemm(s, x, dy, info));
  } finally {
    s.dispose();
  }
}

/**
 * Images b0 .. b0+nb-1 of x as phase grids, channel-major, at `dst` (float index):
 *   xg[p, c, b - b0, r + lead_h, q + lead_w] = x[b, r*SH + ph, q*SW + pw, c]   // [NP, C, nb, Hg, Wg]
 * zero elsewhere, then `tail` zeros.
 */
function writeXGrid(
  heap: Float32Array,
  src: number,
  dst: number,
  info: tf.backend_util.Conv2DInfo,
  rows: AxisPlan,
  cols: AxisPlan,
  b0: number,
  nb: number,
  tail: number,
): void {
  const { inHeight: H, inWidth: W, inChannels: C, strideHeight: SH, strideWidth: SW } = info;
  const Hg = rows.grid;
  const Wg = cols.grid;
  const K = nb * Hg * Wg;
  const NPW = cols.phases.length;
  heap.fill(0, dst, dst + rows.phases.length * NPW * C * K + tail);
  rows.phases.forEach((ph, pi) => {
    cols.phases.forEach((pw, pj) => {
      // phase rows r with r*SH + ph < H and r + lead < Hg (likewise columns)
      const r1 = Math.min(Math.ceil((H - ph) / SH), Hg - rows.lead);
      const q1 = Math.min(Math.ceil((W - pw) / SW), Wg - cols.lead);
      const plane = dst + (pi * NPW + pj) * C * K;
      for (let b = 0; b < nb; b++) {
        for (let r = 0; r < r1; r++) {
          const xrow = src + (((b0 + b) * H + r * SH + ph) * W + pw) * C; // x[b0 + b, r*SH + ph, pw, 0]
          const grow = plane + (b * Hg + r + rows.lead) * Wg + cols.lead;
          for (let c = 0; c < C; c++) {
            let from = xrow + c;
            const to = grow + c * K;
            for (let q = 0; q < q1; q++, from += SW * C) heap[to + q] = heap[from];
          }
        }
      }
    });
  });
}
