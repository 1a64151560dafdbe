/**
 * Conv2DBackpropFilter for the wasm backend (tfjs-backend-wasm 4.22 has none,
 * so no conv weight could be trained on wasm).
 *
 * The weight gradient of y = conv2d(x, W, stride s, pads (pt, pl)) is
 *   dW[kh, kw, c, o] = sum_{b, i, j} x[b, i*s + kh - pt, j*s + kw - pl, c] * dy[b, i, j, o]
 * i.e. per filter tap one matrix product over the B*OH*OW positions,
 *   dW[kh, kw] (C x O) = X_tap (C x B*OH*OW) @ dy (B*OH*OW x O).
 * Done here with XNNPACK products (tfjs-backend-wasm's C++ BatchMatMul, i.e.
 * XNNPACK's fully connected operator) whose right operand is dy:
 *   - the batch goes in chunks of whole images (or, for an image larger than a
 *     chunk, bands of its output rows; see Slab), about CHUNK_ELEMENTS elements
 *     of dy each; each chunk's partial dW is summed at the end;
 *   - a chunk's dy goes on a grid [slabs, Hs, Wg, O], zero-padded on the right
 *     and bottom (a row copy; none when no tap reaches past the output);
 *   - x is split by stride phase (x_ph[r] = x[r*s + ph], so every tap is a
 *     stride-1 shift of one phase: no dilation, no wasted work) and written
 *     channel-major on the same grid, [C, K] per phase with K = the chunk's grid
 *     positions (one pass in JS);
 *   - a tap reads its phase at a constant offset on the flattened grid. Where a
 *     shifted row runs into the next one (or into zeros at the end), dy on the
 *     grid is zero;
 *   - TapLayout 'all' (the default): the FH*FW shifted planes are copied
 *     (memmove, in wasm) side by side into one [FH*FW*C, K] left operand, so a
 *     chunk is ONE product [FH*FW*C, K] @ [K, O] = the chunk's dW, laid out as
 *     dW already is. A plane that a tap reads at offset (0, 0) is written
 *     straight into that tap's slot (s1 3x3: 8 copies; s2 3x3: 5).
 *     ('views', the previous layout: FH*FW products of plain views, no copies;
 *     'rows': FH products of FW*C rows. Both kept for the profile and tested.)
 * The grid costs (Hs*Wg)/(rows*OW) extra work: 3% for 64x64 3x3 'same' whole images.
 *
 * Why (issue #3; measured with bench/conv-dw-profile.ts, which pairs every run
 * with a forward conv run just before it, on a machine shared with 2 other jobs,
 * load 3-4.7, so absolute times are ~2x the quiet ones and swing run to run):
 *   - XNNPACK packs the right operand when tfjs creates the operator (on the
 *     first product with a new right operand's id), on ONE thread, at 2.5-3 ns
 *     per element while it is in cache (<= ~70k elements) and 7-35 ns for 0.3M
 *     to 2.2M elements: the previous kernel's 2 packs of 1.1M took 11-24 ms
 *     (1 thread, this machine) of its 104.8 (1 thread) / 63.2 ms (2 threads, quiet).
 *   - Every product is a thread-pool round trip; on a loaded machine each costs
 *     ~0.5-1.4 ms extra (a worker waits for a core): a product of one image
 *     (K = 4356, M = 64) took 2-4x longer on 2 threads than on 1. The previous
 *     kernel made 18 products (s1), 'views' with 256K-element chunks 144:
 *     2.7-3.3x the forward's time vs 2.0x.
 *   - With M = FH*FW*C = 576 rows, one product per chunk: 4 products for s1
 *     (2 images per chunk) and 2 for s2 (4 images), instead of 18 and 18.
 *   - In the threaded build the heap is a SharedArrayBuffer, where V8's
 *     copyWithin/fill are 5-9x slower than memmove (see heapOps): the copies
 *     cost 1.5-3.5 ms per 8.9 MB in JS, 0.2-0.4 ms in wasm.
 * Measured (npx tsx bench/conv-dw-profile.ts with the previous kernel, f5e67da,
 * added as a variant; load 3.6-4.7), medians of the ratio to the forward run
 * just before, 21 pairs, quartiles in parentheses, previous -> this kernel:
 *   2 threads, x 8x64x64x64 * 3x3x64x64 s1: run A 1.88 (1.58-2.23) -> 1.45 (1.37-1.57);
 *     run B 1.80 (1.65-2.23) -> 1.61 (1.37-1.73); fastest run over fastest forward
 *     1.75 -> 1.42 and 1.95 -> 1.57.
 *   2 threads, x 8x64x64x64 * 3x3x64x128 s2: run A 1.94 (1.74-2.21) -> 1.68 (1.48-1.83);
 *     run B 1.71 (1.62-2.31) -> 1.74 (1.57-2.08); fastest 1.77 -> 1.46, 1.89 -> 1.65.
 *   1 thread, s1: 1.70 -> 1.40, 1.73 -> 1.61; s2: 1.47 -> 1.37, 1.69 -> 1.16.
 *   Earlier runs with 256K/512K/1M chunks: s1 2.03-2.24 -> 1.46-1.81, s2
 *     1.74-2.08 -> 1.54-1.84. On this machine the 2-thread s2 ratio is the
 *     least improved: its x grid (4 phases, ~5 ms in JS) and the pack stay
 *     single-threaded.
 *   The tokenizer's training shapes (bench:engine's step, batch 4), 2 threads,
 *     15 pairs: 4x64x64x32*3x3x32x64 s2 3.67 -> 1.73; 4x32x32x64*3x3x64x64 s2
 *     3.14 -> 1.42; 4x64x64x32*3x3x32x32 2.39 -> 1.62; 4x64x64x32*3x3x32x3
 *     3.63 -> 1.78; 4x32x32x64*3x3x64x32 3.07 -> 1.94; 1x1 and 16x16 layers
 *     (under 1.5 ms) 2.4-7x -> 2.4-4x; the 3-channel input layer (2-14 ms,
 *     noisiest) 4.6 -> 1.9, 6.4 -> 2.0 and 4.2 -> 7.6 in three runs.
 *   bench:engine's whole training step (its trainRow, both kernels registered in
 *     turn in one process, 9 pairs, load ~5): 2 threads 397 -> 339 ms (median
 *     per-pair ratio 0.80), 1 thread 338 -> 337 ms (0.93).
 *   Chunks of 280K elements (1 image for s1, 2 for s2) vs 512K: within noise.
 *
 * Tried and not faster (all in this profile unless said):
 *   - (earlier) one matmul per filter tap with a copy per tap, im2col + matmul
 *     (ENGINE.md); folding dy's columns into the channel axis; stacking groups
 *     of dy rows into the batch; one XNNPACK Conv2D of transpose(x) with
 *     transpose(dy) as its filter (2.9x/3.4x the forward: packing the whole dy
 *     on one thread and only 9 output pixels per "image" with 8 channels per tap);
 *   - the right operand transposed (BatchMatMul's transposeB): the C++ kernel
 *     sends that to its scalar loop (300+ ms);
 *   - small chunks with one product per tap ('views', 64K-256K elements: packs
 *     in cache, 1 thread 10% faster) lose on a loaded machine (2.7-5x the
 *     forward): see the thread-pool round trips above;
 *   - 'all' with chunks of 64K-128K elements (bands of rows): more products and
 *     more halo rows, 1.8-2.4x; 256K (bands of 32 rows for s1), 512K and 1M
 *     were within noise of each other (1.5-1.8x s1, 1.4-1.8x s2);
 *   - 'rows' (3 products per chunk, 2 copies for s1): between 'views' and 'all'
 *     on a loaded machine (s1 1.65-1.95x); with the copies in JS (copyWithin on
 *     the shared heap) the copies alone took 3.5-4.6 ms;
 *   - the x grid through tfjs-wasm's Transpose + pad kernels: 4-9 ms vs ~4 ms
 *     for the JS pass (which is 1.3x faster 8 channels at a time).
 * Not done: overlapping the JS grid writes and the single-threaded pack with
 * a JS worker (the heap is shared in the threaded build): it could only help
 * on an idle machine, where the pthreadpool worker spins anyway.
 */
import * as tf from '@tensorflow/tfjs';
import { matmul3 } from './batch-matmul';
import { heapF32, offsetOf, Scratch, type KernelArgs, type WasmBackend } from './wasm-util';

/**
 * memmove and zero fill on the wasm heap, in float indices. In the threaded build the heap is a
 * SharedArrayBuffer, on which V8's TypedArray copyWithin and fill run ~5-9x slower than on a
 * plain buffer (8.9 MB: copyWithin 1.55 ms, fill 0.63 ms); a 2-function wasm module on the same
 * memory (memory.copy, memory.fill) does them at memcpy speed (0.17 ms, 0.12 ms).
 */
interface HeapOps {
  copy(dst: number, src: number, n: number): void;
  fill0(dst: number, n: number): void;
}

const heapOpsByMemory = new WeakMap<object, HeapOps>();

/** The wasm module's bytes: imports a shared env.memory, exports copy(dst, src, bytes), fill0(dst, bytes). */
function heapOpsModule(): Uint8Array {
  const leb = (n: number) => {
    const out: number[] = [];
    do {
      const b = n & 0x7f;
      n >>>= 7;
      out.push(n ? b | 0x80 : b);
    } while (n);
    return out;
  };
  const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
  const name = (str: string) => [str.length, ...[...str].map((ch) => ch.charCodeAt(0))];
  const body = (code: number[]) => [...leb(code.length + 2), 0, ...code, 0x0b]; // size, no locals, code, end
  const I32 = 0x7f;
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // \0asm, version 1
    ...section(1, [2, 0x60, 3, I32, I32, I32, 0, 0x60, 2, I32, I32, 0]), // types (i32 i32 i32) -> (), (i32 i32) -> ()
    ...section(2, [1, ...name('env'), ...name('memory'), 0x02, 0x03, ...leb(1), ...leb(65536)]), // shared, 1..65536 pages
    ...section(3, [2, 0, 1]),
    ...section(7, [2, ...name('copy'), 0x00, 0, ...name('fill0'), 0x00, 1]),
    ...section(10, [
      2,
      ...body([0x20, 0, 0x20, 1, 0x20, 2, 0xfc, 0x0a, 0, 0]), // memory.copy(dst, src, n)
      ...body([0x20, 0, 0x41, 0, 0x20, 1, 0xfc, 0x0b, 0]), // memory.fill(dst, 0, n)
    ]),
  ]);
}

/** The parts of the WebAssembly global used here (the project's TypeScript libs do not declare it). */
interface WebAssemblyApi {
  Memory: abstract new () => { buffer: ArrayBufferLike };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}

function heapOps(be: WasmBackend): HeapOps {
  const WebAssembly = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
  const memory = be.wasm.wasmMemory;
  // Only the shared heap needs it (on a plain ArrayBuffer, copyWithin and fill are memcpy speed).
  if (memory instanceof WebAssembly.Memory && typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer) {
    let ops = heapOpsByMemory.get(memory);
    if (!ops) {
      const module = new WebAssembly.Module(heapOpsModule());
      const fns = new WebAssembly.Instance(module, { env: { memory } }).exports as {
        copy(dst: number, src: number, bytes: number): void;
        fill0(dst: number, bytes: number): void;
      };
      ops = { copy: (dst, src, n) => fns.copy(dst * 4, src * 4, n * 4), fill0: (dst, n) => fns.fill0(dst * 4, n * 4) };
      heapOpsByMemory.set(memory, ops);
    }
    return ops;
  }
  return {
    copy: (dst, src, n) => heapF32(be).copyWithin(dst, src, src + n),
    fill0: (dst, n) => heapF32(be).fill(0, dst, dst + n),
  };
}

/**
 * Elements of dy (on the grid) per chunk, about 4 MB: XNNPACK packs
 * each chunk's dy on one thread, faster while the chunk, just written, is still
 * in cache; fewer, larger chunks mean fewer (multi-threaded) calls.
 */
export const CHUNK_ELEMENTS = 1 << 19;

/** About this many floats (32 MB) at most in a chunk's left operands (xb), whatever chunkElements says. */
export const STACK_ELEMENTS = 1 << 23;

/**
 * How a chunk's left operands are laid out:
 *   'views': one plain view of the x grid per tap, FH*FW products of C rows, no copies;
 *   'rows': per row phase, the FW column shifts copied (memmove) side by side, so that a filter
 *           row is one view: FH products of FW*C rows;
 *   'all': every tap copied: one product of FH*FW*C rows.
 */
export type TapLayout = 'views' | 'rows' | 'all';
export const TAP_LAYOUT: TapLayout = 'all';

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
  /** The largest tap offset: grid rows (or columns) past the output's. */
  extra: number;
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
  const extra = Math.max(...tapOffset);
  return { grid: outLen + extra, lead, phases, tapPhase: ph.map((p) => phases.indexOf(p)), tapOffset, extra };
}

/**
 * Output rows [i0, i0 + rows) of image b, on a grid of rows + (largest row
 * offset) rows: the rows past `rows` hold zeros of dy and the x rows that the
 * taps read below the slab. A whole image is the slab i0 = 0, rows = OH.
 */
interface Slab {
  b: number;
  i0: number;
  rows: number;
}

/**
 * The batch as chunks of slabs, each chunk about `positions` grid positions (K): several whole
 * images, or, where one image has more, one band of rows of one image.
 */
function planChunks(B: number, OH: number, Wg: number, extraRows: number, positions: number): Slab[][] {
  const chunks: Slab[][] = [];
  const imagePositions = (OH + extraRows) * Wg;
  if (imagePositions <= positions || OH <= 1) {
    const nChunks = Math.min(B, Math.max(1, Math.round((B * imagePositions) / positions)));
    const perChunk = Math.ceil(B / nChunks);
    for (let b0 = 0; b0 < B; b0 += perChunk) {
      const slabs: Slab[] = [];
      for (let b = b0; b < Math.min(B, b0 + perChunk); b++) slabs.push({ b, i0: 0, rows: OH });
      chunks.push(slabs);
    }
    return chunks;
  }
  const maxRows = Math.max(1, Math.floor(positions / Wg) - extraRows);
  const bands = Math.ceil(OH / maxRows);
  const rows = Math.ceil(OH / bands);
  for (let b = 0; b < B; b++) {
    for (let i0 = 0; i0 < OH; i0 += rows) chunks.push([{ b, i0, rows: Math.min(rows, OH - i0) }]);
  }
  return chunks;
}

/**
 * The weight gradient, per chunk, as matrix products with one shared right operand:
 *   dW[kh, kw] (C x O) = xg[phase(kh, kw)][:, off(kh, kw) : off + K] @ dyg (K x O)
 * dyg is a chunk of dy on a zero-padded grid [slabs, Hs, Wg, O] (K rows), xg
 * holds each x phase channel-major on the same grid, [phase][C][K]; a tap is a
 * constant shift on the flattened grid. Where a shifted row runs into the next
 * one (or past the end: `tail` zeros), dyg is zero. `layout` decides how the
 * taps' left operands are laid out and so how many products a chunk makes
 * (see TapLayout: 'all', the default, stacks all FH*FW taps into one product;
 * 'views' makes FH*FW products of plain views). XNNPACK packs dyg once per
 * chunk: its operator is cached by dyg's id across the products of the chunk.
 */
export function conv2dBackpropFilterGemm(
  s: Scratch,
  x: tf.TensorInfo,
  dy: tf.TensorInfo,
  info: tf.backend_util.Conv2DInfo,
  /** Called after each step (bench/conv-dw-profile.ts times them). */
  mark?: (step: string) => void,
  chunkElements = CHUNK_ELEMENTS,
  layout: TapLayout = TAP_LAYOUT,
): tf.TensorInfo {
  const be = s.backend;
  const { batchSize: B, inChannels: C, outHeight: OH, outWidth: OW, outChannels: O } = info;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW } = info;
  const rows = planAxis(FH, SH, info.padInfo.top, OH);
  const cols = planAxis(FW, SW, info.padInfo.left, OW);
  const Wg = cols.grid;
  const tail = rows.extra * Wg + cols.extra;
  const NPW = cols.phases.length;
  const T = FH * FW;
  const dW = s.alloc([FH, FW, C, O]);
  if (B * OH * OW === 0) {
    const o = offsetOf(be, dW) >>> 2;
    heapF32(be).fill(0, o, o + T * C * O); // an empty sum
    return dW;
  }
  const NPH = rows.phases.length;
  // Where each x phase plane (C x K) and, for 'rows', each slot (row phase, kw) goes, in units
  // of C*K from the start of one buffer xb; after them, zeros that the last shifted reads run into.
  //   'views': the planes, [NP, C, K];
  //   'all': one slot per tap [T, C, K]; a plane that some tap reads at offset (0, 0) is written in
  //          that tap's slot, the others after the slots;
  //   'rows': slots [NPH, FW, C, K], slot (pr, kw) = plane (pr, phase of kw) shifted by kw's column
  //           offset; a plane that some kw reads unshifted is written in that slot (no copy), the others after the slots.
  const slotCount = layout === 'rows' ? NPH * FW : layout === 'all' ? T : 0;
  const planeSlot: number[] = [];
  for (let pr = 0; pr < NPH; pr++) {
    for (let pw = 0; pw < NPW; pw++) {
      // a tap (kh, kw) that reads this plane at offset 0 along an axis
      const kh = rows.tapPhase.findIndex((p, k) => p === pr && rows.tapOffset[k] === 0);
      const kw = cols.tapPhase.findIndex((p, k) => p === pw && cols.tapOffset[k] === 0);
      let home = -1;
      if (layout === 'rows' && kw >= 0) home = pr * FW + kw;
      if (layout === 'all' && kh >= 0 && kw >= 0) home = kh * FW + kw;
      planeSlot.push(home >= 0 ? home : slotCount + planeSlot.filter((q) => q >= slotCount).length);
    }
  }
  const regions = Math.max(slotCount, ...planeSlot.map((q) => q + 1));
  // Grid positions per chunk: about chunkElements elements of dy, and about STACK_ELEMENTS at most in xb.
  const chunkPositions = Math.max(1, Math.min(chunkElements / O, STACK_ELEMENTS / (regions * C)));
  const chunks = planChunks(B, OH, Wg, rows.extra, chunkPositions);
  const nChunks = chunks.length;
  const chunkK = (c: Slab[]) => c.reduce((k, sl) => k + (sl.rows + rows.extra) * Wg, 0);
  const Kmax = Math.max(...chunks.map(chunkK));
  // dy needs a grid unless no tap reaches past the output (then a chunk is a run of dy's rows).
  const needGrid = rows.extra > 0 || Wg !== OW;
  const dyg = needGrid ? s.alloc([Kmax * O]) : dy; // [slabs, Hs, Wg, O]
  const xbTail = Math.max(tail, rows.extra * Wg);
  const xb = s.alloc([regions * C * Kmax + xbTail]);
  const ops = heapOps(be);
  // One partial product per chunk, summed below (XNNPACK does not accumulate).
  const part = nChunks === 1 ? dW : s.alloc([nChunks, T, C, O]);
  chunks.forEach((slabs, j) => {
    const K = chunkK(slabs);
    const CK = C * K;
    const cs = new Scratch(be); // this chunk's views: freeing dyc frees its packed copy
    try {
      let dyc: tf.TensorInfo; // [1, K, O]
      if (needGrid) {
        writeDyGrid(ops, offsetOf(be, dy) >>> 2, offsetOf(be, dyg) >>> 2, info, Wg, rows.extra, slabs, K);
        dyc = cs.view(dyg, 0, [1, K, O]);
      } else {
        dyc = cs.view(dy, (slabs[0].b * OH + slabs[0].i0) * OW * O, [1, K, O]);
      }
      mark?.('dy on the grid');
      const heap = heapF32(be);
      const base = offsetOf(be, xb) >>> 2;
      // Reads that run past a region (by at most xbTail) see the next one or the zeros after the last;
      // dy is zero there, so it only has to be finite: the start of each region is zeroed before it is
      // written (it may be read by a copy before a later copy fills it; the heap is not zeroed).
      for (let r = 1; r <= regions; r++) ops.fill0(base + r * CK, xbTail);
      writeXGrid(heap, ops, offsetOf(be, x) >>> 2, planeSlot.map((q) => base + q * CK), info, rows, cols, slabs, K);
      mark?.('x phases on the grid');
      // start of tap (kh, kw)'s operand in its phase plane
      const tapStart = (kh: number, kw: number) =>
        planeSlot[rows.tapPhase[kh] * NPW + cols.tapPhase[kw]] * CK + rows.tapOffset[kh] * Wg + cols.tapOffset[kw];
      const out = (kh: number, kw: number, m: number) => cs.view(part, (j * T + kh * FW + kw) * C * O, [1, m, O]);
      if (layout === 'views') {
        for (let kh = 0; kh < FH; kh++) {
          for (let kw = 0; kw < FW; kw++) {
            matmul3(be, cs.view(xb, tapStart(kh, kw), [1, C, K]), dyc, out(kh, kw, C));
            mark?.(kh + kw === 0 ? 'first product of a chunk (packs dyg)' : 'other products');
          }
        }
        return;
      }
      const copy = (slot: number, from: number) => {
        if (slot * CK !== from) ops.copy(base + slot * CK, base + from, CK);
      };
      if (layout === 'all') {
        for (let kh = 0; kh < FH; kh++) for (let kw = 0; kw < FW; kw++) copy(kh * FW + kw, tapStart(kh, kw));
        mark?.('taps copied');
        matmul3(be, cs.view(xb, 0, [1, T * C, K]), dyc, out(0, 0, T * C));
        mark?.('first product of a chunk (packs dyg)');
        return;
      }
      for (let pr = 0; pr < NPH; pr++) {
        for (let kw = 0; kw < FW; kw++) copy(pr * FW + kw, planeSlot[pr * NPW + cols.tapPhase[kw]] * CK + cols.tapOffset[kw]);
      }
      mark?.('taps copied');
      for (let kh = 0; kh < FH; kh++) {
        const a = cs.view(xb, rows.tapPhase[kh] * FW * CK + rows.tapOffset[kh] * Wg, [1, FW * C, K]);
        matmul3(be, a, dyc, out(kh, 0, FW * C));
        mark?.(kh === 0 ? 'first product of a chunk (packs dyg)' : 'other products');
      }
    } finally {
      cs.dispose();
    }
  });
  if (part !== dW) {
    const heap = heapF32(be);
    const src = offsetOf(be, part) >>> 2;
    const dst = offsetOf(be, dW) >>> 2;
    const n = T * C * O;
    ops.copy(dst, src, n);
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
 * dy of a chunk's slabs on the grid at `dst` (float index), zero right of column OW and below each slab's rows:
 *   dyg[slab, g, j, o] = dy[b, i0 + g, j, o] for g < rows, j < OW   // [slabs, rows + extraRows, Wg, O]
 */
function writeDyGrid(
  ops: HeapOps,
  src: number,
  dst: number,
  info: tf.backend_util.Conv2DInfo,
  Wg: number,
  extraRows: number,
  slabs: Slab[],
  K: number,
): void {
  const { outHeight: OH, outWidth: OW, outChannels: O } = info;
  ops.fill0(dst, K * O);
  let base = dst;
  for (const { b, i0, rows } of slabs) {
    for (let g = 0; g < rows; g++) {
      const from = src + ((b * OH + i0 + g) * OW) * O;
      ops.copy(base + g * Wg * O, from, OW * O);
    }
    base += (rows + extraRows) * Wg * O;
  }
}

/**
 * A chunk's slabs of x as phase grids, channel-major, plane (pi, pj) at planes[pi * NPW + pj] (float index):
 *   xg[p, c, slab, g, q + lead_w] = x[b, (i0 + g - lead_h)*SH + ph, q*SW + pw, c]   // [C, K] per plane
 * for each slab (b, i0, rows) with g < rows + extra rows; zero elsewhere in the plane.
 */
function writeXGrid(
  heap: Float32Array,
  ops: HeapOps,
  src: number,
  planes: number[],
  info: tf.backend_util.Conv2DInfo,
  rows: AxisPlan,
  cols: AxisPlan,
  slabs: Slab[],
  K: number,
): void {
  const { inHeight: H, inWidth: W, inChannels: C, strideHeight: SH, strideWidth: SW } = info;
  const Wg = cols.grid;
  const NPW = cols.phases.length;
  const step = SW * C;
  const C8 = C - (C % 8);
  rows.phases.forEach((ph, pi) => {
    cols.phases.forEach((pw, pj) => {
      const plane = planes[pi * NPW + pj];
      ops.fill0(plane, C * K);
      const rowsOfPhase = Math.ceil((H - ph) / SH); // phase rows r with r*SH + ph < H (likewise columns)
      const q1 = Math.min(Math.ceil((W - pw) / SW), Wg - cols.lead);
      let base = plane; // the slab's first grid position
      for (const { b, i0, rows: nr } of slabs) {
        const Hs = nr + rows.extra;
        // grid rows g hold phase rows r = i0 + g - lead, where 0 <= r < rowsOfPhase
        const g0 = Math.max(0, rows.lead - i0);
        const g1 = Math.min(Hs, rowsOfPhase - i0 + rows.lead);
        for (let g = g0; g < g1; g++) {
          const r = i0 + g - rows.lead;
          const xrow = src + ((b * H + r * SH + ph) * W + pw) * C; // x[b, r*SH + ph, pw, 0]
          const grow = base + g * Wg + cols.lead;
          // 8 channels at a time (about 1.3x faster in V8 than one), then the rest
          for (let c = 0; c < C8; c += 8) {
            let from = xrow + c;
            for (let q = 0, to = grow + c * K; q < q1; q++, to++, from += step) {
              heap[to] = heap[from];
              heap[to + K] = heap[from + 1];
              heap[to + 2 * K] = heap[from + 2];
              heap[to + 3 * K] = heap[from + 3];
              heap[to + 4 * K] = heap[from + 4];
              heap[to + 5 * K] = heap[from + 5];
              heap[to + 6 * K] = heap[from + 6];
              heap[to + 7 * K] = heap[from + 7];
            }
          }
          for (let c = C8; c < C; c++) {
            let from = xrow + c;
            const to = grow + c * K;
            for (let q = 0; q < q1; q++, from += step) heap[to + q] = heap[from];
          }
        }
        base += Hs * Wg;
      }
    });
  });
}
