/**
 * Helpers for kernels that vtok builds for the wasm backend out of the
 * backend's own fast (XNNPACK) kernels and direct reads and writes of the
 * wasm heap. Kernels receive and return `TensorInfo`s (no tf.Tensor objects,
 * no tape): what a kernel allocates and does not return, it frees.
 */
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-backend-wasm's BackendWasm that vtok's kernels use. */
export interface WasmBackend {
  wasm: {
    HEAPU8: Uint8Array;
    wasmMemory?: { buffer: ArrayBufferLike };
    cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: unknown[]) => unknown;
    tfjs: { registerTensor(id: number, size: number, offset: number): void; disposeData(id: number): void };
  };
  dataIdMap: {
    get(dataId: object): { id: number; memoryOffset: number; shape: number[]; dtype: tf.DataType; refCount: number };
    delete(dataId: object): boolean;
  };
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  incRef(dataId: object): void;
}

export type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap };

/** Bytes per element of the dtypes the wasm backend stores on its heap. */
export function bytesPerElement(dtype: tf.DataType): number {
  if (dtype === 'float32' || dtype === 'int32') return 4;
  if (dtype === 'bool') return 1;
  throw new Error(`vtok wasm kernels do not handle dtype ${dtype}`);
}

/**
 * The whole wasm heap as bytes. Read it again after any allocation: the heap
 * may have grown, which detaches earlier views.
 */
export function heapBytes(backend: WasmBackend): Uint8Array {
  const buffer = backend.wasm.wasmMemory?.buffer ?? backend.wasm.HEAPU8.buffer;
  return new Uint8Array(buffer);
}

/** The whole wasm heap as float32 (byte offsets / 4 index it). */
export function heapF32(backend: WasmBackend): Float32Array {
  const buffer = backend.wasm.wasmMemory?.buffer ?? backend.wasm.HEAPU8.buffer;
  return new Float32Array(buffer);
}

/** The whole wasm heap as int32. */
export function heapI32(backend: WasmBackend): Int32Array {
  const buffer = backend.wasm.wasmMemory?.buffer ?? backend.wasm.HEAPU8.buffer;
  return new Int32Array(buffer);
}

/** Byte offset of a tensor's data on the heap. */
export function offsetOf(backend: WasmBackend, t: tf.TensorInfo): number {
  return backend.dataIdMap.get(t.dataId).memoryOffset >>> 0; // unsigned: the heap grows past 2 GiB
}

/**
 * Runs registered wasm kernels and frees what the caller does not keep.
 * Every TensorInfo made through `run`/`alloc`/`view` is freed by `dispose()`
 * unless passed to `keep()` first.
 *
 * Example:
 *   const s = new Scratch(backend);
 *   try {
 *     const xT = s.run('Transpose', { x }, { perm: [3, 1, 2, 0] });
 *     return s.keep(s.run('Conv2D', { x: xT, filter }, attrs));
 *   } finally { s.dispose(); }
 */
export class Scratch {
  private owned: tf.TensorInfo[] = [];
  private views: tf.TensorInfo[] = [];

  constructor(readonly backend: WasmBackend) {}

  /** Runs the wasm kernel registered under `name` (or the given config). */
  run(name: string | tf.KernelConfig, inputs: tf.NamedTensorInfoMap, attrs: object = {}): tf.TensorInfo {
    const config = typeof name === 'string' ? tf.getKernel(name, 'wasm') : name;
    if (!config) throw new Error(`no wasm kernel ${String(name)}`);
    const out = config.kernelFunc({ inputs, backend: this.backend, attrs: attrs as tf.NamedAttrMap });
    if (Array.isArray(out)) throw new Error(`kernel ${config.kernelName} returned several outputs`);
    this.owned.push(out);
    return out;
  }

  /** A new uninitialized tensor on the heap. */
  alloc(shape: number[], dtype: tf.DataType = 'float32'): tf.TensorInfo {
    const out = this.backend.makeOutput(shape, dtype);
    this.owned.push(out);
    return out;
  }

  /** Same data, new shape (no copy). */
  reshape(x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
    return this.run('Reshape', { x }, { shape });
  }

  /**
   * A tensor that aliases `shape`-many elements of `base` starting at element
   * `elementOffset` (no copy). Valid only while `base` lives; never returned
   * from a kernel: dispose() unregisters it without freeing the memory.
   */
  view(base: tf.TensorInfo, elementOffset: number, shape: number[]): tf.TensorInfo {
    const bytes = bytesPerElement(base.dtype);
    const size = tf.util.sizeFromShape(shape);
    if (elementOffset < 0 || elementOffset + size > tf.util.sizeFromShape(base.shape)) {
      throw new Error(`view [${elementOffset}, +${size}) outside a tensor of shape [${base.shape}]`);
    }
    const out = this.backend.makeOutput(shape, base.dtype, offsetOf(this.backend, base) + elementOffset * bytes);
    this.views.push(out);
    return out;
  }

  /** Takes a tensor made elsewhere (e.g. by a kernel function called directly) to free at dispose(). */
  adopt(t: tf.TensorInfo): tf.TensorInfo {
    this.owned.push(t);
    return t;
  }

  /** Marks a tensor as the caller's: dispose() will not free it. */
  keep(t: tf.TensorInfo): tf.TensorInfo {
    const i = this.owned.indexOf(t);
    if (i >= 0) this.owned.splice(i, 1);
    return t;
  }

  /** Frees a tensor made here now, instead of at dispose(). */
  free(t: tf.TensorInfo): void {
    const i = this.owned.indexOf(t);
    if (i >= 0) {
      this.owned.splice(i, 1);
      this.backend.disposeData(t.dataId);
    }
  }

  dispose(): void {
    for (const v of this.views) {
      const data = this.backend.dataIdMap.get(v.dataId);
      this.backend.wasm.tfjs.disposeData(data.id);
      this.backend.dataIdMap.delete(v.dataId);
    }
    this.views = [];
    for (const t of this.owned) this.backend.disposeData(t.dataId);
    this.owned = [];
  }
}
