/**
 * Slice for the wasm backend, replacing tfjs-backend-wasm 4.22's, which
 * first copies the *whole* input out of the wasm heap (readSync) and then cuts
 * the slice from that copy. vtok's copies only the slice, heap to heap, in the
 * longest contiguous runs the slice has.
 *
 * SplitV, Unpack and the simple cases of StridedSlice call the stock slice
 * function directly, not through the kernel registry, so they are replaced
 * too, with the same code paths as stock otherwise.
 */
import * as tf from '@tensorflow/tfjs';
import { bytesPerElement, heapBytes, heapI32, offsetOf, type KernelArgs, type WasmBackend } from './wasm-util';

/**
 * Copies x[begin : begin + size] into a new tensor. Example: shape [2, 3, 4],
 * begin [0, 1, 0], size [2, 2, 4] copies two runs of 8 elements.
 */
export function sliceHeap(backend: WasmBackend, x: tf.TensorInfo, begin: number[], size: number[]): tf.TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  const n = tf.util.sizeFromShape(size);
  if (n === 0) return out;
  const rank = x.shape.length;
  const bpe = bytesPerElement(x.dtype);
  // The innermost axes taken whole form one contiguous run with the next axis out.
  let inner = 1;
  let axis = rank - 1;
  while (axis >= 0 && begin[axis] === 0 && size[axis] === x.shape[axis]) {
    inner *= x.shape[axis];
    axis--;
  }
  const src = offsetOf(backend, x);
  const dst = offsetOf(backend, out);
  if (axis < 0) {
    heapBytes(backend).copyWithin(dst, src, src + n * bpe);
    return out;
  }
  const run = size[axis] * inner; // elements per contiguous run
  const strides = tf.util.computeStrides(x.shape);
  strides.push(1);
  const outer = axis; // axes 0..axis-1 are iterated
  const counts = size.slice(0, outer);
  const numRuns = tf.util.sizeFromShape(counts);
  const idx = new Array<number>(outer).fill(0);
  let base = 0;
  for (let a = 0; a <= axis; a++) base += begin[a] * strides[a];
  const useBytes = run * bpe >= 64 || bpe === 1;
  const bytes = heapBytes(backend);
  const words = heapI32(backend);
  let o = dst;
  for (let r = 0; r < numRuns; r++) {
    let off = base;
    for (let a = 0; a < outer; a++) off += idx[a] * strides[a];
    const from = src + off * bpe;
    if (useBytes) {
      bytes.copyWithin(o, from, from + run * bpe);
    } else {
      // Short runs of 4-byte elements: a plain loop beats copyWithin's call cost.
      const f = from >>> 2; // unsigned: offsets past 2 GiB
      const t = o >>> 2;
      for (let k = 0; k < run; k++) words[t + k] = words[f + k];
    }
    o += run * bpe;
    for (let a = outer - 1; a >= 0; a--) {
      if (++idx[a] < counts[a]) break;
      idx[a] = 0;
    }
  }
  return out;
}

export function sliceWasm({ inputs, backend, attrs }: KernelArgs, stock: tf.KernelConfig): tf.TensorInfo {
  const { x } = inputs as { x: tf.TensorInfo };
  if (x.dtype === 'string') return stock.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
  const { begin, size } = attrs as unknown as tf.SliceAttrs;
  const [begin_, size_] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, size);
  tf.slice_util.assertParamsValid(x as tf.Tensor, begin_, size_);
  return sliceHeap(backend as WasmBackend, x, begin_, size_);
}

export function splitVWasm({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { x } = inputs as { x: tf.TensorInfo };
  const { numOrSizeSplits, axis } = attrs as unknown as tf.SplitVAttrs;
  const $axis = tf.util.parseAxisParam(axis, x.shape)[0];
  const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, $axis);
  const begin = new Array<number>(x.shape.length).fill(0);
  return sizes.map((n) => {
    const size = [...x.shape];
    size[$axis] = n;
    const out = sliceHeap(backend as WasmBackend, x, [...begin], size);
    begin[$axis] += n;
    return out;
  });
}

export function unpackWasm({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo[] {
  const { value } = inputs as { value: tf.TensorInfo };
  let { axis } = attrs as unknown as tf.UnpackAttrs;
  if (axis < 0) axis += value.shape.length;
  const outShape = value.shape.filter((_, i) => i !== axis);
  const size = [...value.shape];
  size[axis] = 1;
  const begin = new Array<number>(value.shape.length).fill(0);
  const outs: tf.TensorInfo[] = [];
  for (let i = 0; i < value.shape[axis]; i++) {
    begin[axis] = i;
    const t = sliceHeap(backend as WasmBackend, value, [...begin], size);
    outs.push({ dataId: t.dataId, dtype: t.dtype, shape: outShape });
  }
  return outs;
}

export function stridedSliceWasm({ inputs, backend, attrs }: KernelArgs, stock: tf.KernelConfig): tf.TensorInfo {
  const { x } = inputs as { x: tf.TensorInfo };
  const a = attrs as unknown as tf.StridedSliceAttrs;
  const info = tf.slice_util.sliceInfo(
    x.shape,
    a.begin,
    a.end,
    a.strides,
    a.beginMask,
    a.endMask,
    a.ellipsisMask,
    a.newAxisMask,
    a.shrinkAxisMask,
  );
  if (info.isIdentity || !(info.sliceDim0 || info.isSimpleSlice) || x.dtype === 'string') {
    return stock.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
  }
  const size = tf.slice_util.computeOutShape(info.begin, info.end, info.strides);
  const sliced = sliceHeap(backend as WasmBackend, x, info.begin, size);
  return { dataId: sliced.dataId, dtype: sliced.dtype, shape: info.finalShape };
}
