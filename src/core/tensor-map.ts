/**
 * Named tensors as plain typed arrays: what a tokenizer bundle stores for its
 * weights and codebooks, with no tfjs in sight (src/tf turns a record into a
 * tf.Tensor and back). Also the little-endian byte form of any typed array,
 * which is how the codebook store writes them (explicit bytes, whatever the
 * host's byte order).
 *
 * Example:
 *   const rec = tensorRecord('float32', [2, 3], new Float32Array(6));
 *   const bytes = typedArrayToLittleEndian(rec.data);        // 24 bytes, a view on little-endian hosts
 *   typedArrayFromLittleEndian('float32', bytes);            // Float32Array(6), a fresh aligned copy
 */

import { VtokError, describeValue } from './errors';

/** Element types a stored tensor may have (the dtypes TensorFlow.js uses, plus compact integer codes). */
export const TENSOR_DTYPES = ['float32', 'int32', 'uint16', 'uint8'] as const;
export type TensorDType = (typeof TENSOR_DTYPES)[number];

/** Every typed-array kind the store can hold anywhere in a bundle (tensors use the TENSOR_DTYPES subset). */
export const TYPED_KINDS = ['float32', 'float64', 'int8', 'int16', 'int32', 'uint8', 'uint16', 'uint32'] as const;
export type TypedKind = (typeof TYPED_KINDS)[number];

export type TypedArray = Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | Uint8Array | Uint16Array | Uint32Array;

export interface TypedArrayOf {
  float32: Float32Array;
  float64: Float64Array;
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  uint8: Uint8Array;
  uint16: Uint16Array;
  uint32: Uint32Array;
}

/** One named tensor: element type, shape (row-major, NHWC for images) and its values. */
export interface TensorRecord<D extends TensorDType = TensorDType> {
  dtype: D;
  shape: number[];
  data: TypedArrayOf[D];
}

export type TensorMap = Record<string, TensorRecord>;

const CONSTRUCTORS: { [K in TypedKind]: { new (n: number): TypedArrayOf[K]; BYTES_PER_ELEMENT: number } } = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  uint8: Uint8Array,
  uint16: Uint16Array,
  uint32: Uint32Array,
};

const KIND_BY_TAG: Readonly<Record<string, TypedKind>> = {
  '[object Float32Array]': 'float32',
  '[object Float64Array]': 'float64',
  '[object Int8Array]': 'int8',
  '[object Int16Array]': 'int16',
  '[object Int32Array]': 'int32',
  '[object Uint8Array]': 'uint8',
  '[object Uint16Array]': 'uint16',
  '[object Uint32Array]': 'uint32',
};

/** True when this machine stores numbers little-endian (every platform Node ships on today). */
export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Bytes per element of a typed-array kind. */
export function bytesPerElement(kind: TypedKind): number {
  return CONSTRUCTORS[kind].BYTES_PER_ELEMENT;
}

/**
 * The kind of a typed array ('float32', ...), or undefined for anything else
 * (including Uint8ClampedArray, BigInt64Array and DataView, which the store
 * does not hold). Works across realms (jest, workers): it reads the
 * `Symbol.toStringTag` every typed array carries instead of using instanceof.
 * A Node Buffer is a 'uint8'.
 */
export function typedKindOf(value: unknown): TypedKind | undefined {
  if (!ArrayBuffer.isView(value)) return undefined;
  return KIND_BY_TAG[Object.prototype.toString.call(value)];
}

/** The number of elements of a shape (1 for a scalar `[]`). */
export function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Checks a tensor record and returns it: dtype one of TENSOR_DTYPES, shape a
 * list of non-negative integers, data a typed array of that dtype whose length
 * is the product of the shape. `name` is used in the error message.
 */
export function checkTensorRecord(name: string, value: unknown): TensorRecord {
  const bad = (what: string): VtokError => new VtokError('INVALID_INPUT', `Tensor ${JSON.stringify(name)}: ${what}`, { subject: name });
  if (typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) {
    throw bad(`expected an object { dtype, shape, data } but received ${describeValue(value)}`);
  }
  const rec = value as Record<string, unknown>;
  for (const key of Object.keys(rec)) {
    if (key !== 'dtype' && key !== 'shape' && key !== 'data') throw bad(`unknown field ${JSON.stringify(key)}; a tensor has dtype, shape and data`);
  }
  const { dtype, shape, data } = rec;
  if (typeof dtype !== 'string' || !(TENSOR_DTYPES as readonly string[]).includes(dtype)) {
    throw bad(`expected dtype one of ${TENSOR_DTYPES.map((d) => JSON.stringify(d)).join(', ')} but received ${describeValue(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 0)) {
    throw bad(`expected shape to be an array of non-negative integers but received ${describeValue(shape)}`);
  }
  const kind = typedKindOf(data);
  if (kind !== dtype) {
    throw bad(`expected data to be a ${CONSTRUCTORS[dtype as TensorDType].name} (dtype ${dtype}) but received ${describeValue(data)}`);
  }
  const length = (data as TypedArray).length;
  const size = shapeSize(shape as number[]);
  if (length !== size) throw bad(`shape [${(shape as number[]).join(', ')}] has ${size} elements but data has ${length}`);
  return value as TensorRecord;
}

/** Makes a checked tensor record. */
export function tensorRecord<D extends TensorDType>(dtype: D, shape: readonly number[], data: TypedArrayOf[D]): TensorRecord<D> {
  return checkTensorRecord('tensor', { dtype, shape: [...shape], data }) as TensorRecord<D>;
}

/**
 * Reverses the bytes of every `itemSize`-byte element, in place; the byte-order
 * swap between big- and little-endian. Exact for every bit pattern (NaN payloads
 * too), unlike a round trip through DataView's float getters.
 *
 * Example: swapBytes(Uint8Array [1, 2, 3, 4], 2) -> [2, 1, 4, 3]
 */
export function swapBytes(bytes: Uint8Array, itemSize: number): Uint8Array {
  if (itemSize === 1) return bytes;
  if (bytes.length % itemSize !== 0) {
    throw new VtokError('INVALID_INPUT', `Cannot swap bytes of ${bytes.length} bytes in ${itemSize}-byte elements`, { subject: 'bytes' });
  }
  for (let i = 0; i < bytes.length; i += itemSize) {
    for (let a = i, b = i + itemSize - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
  return bytes;
}

/**
 * The little-endian bytes of a typed array. On a little-endian host this is a
 * view on the array's own memory (no copy: do not modify either while the
 * other is in use); on a big-endian host, a swapped copy. `hostLittleEndian`
 * is there so tests can run the big-endian path anywhere.
 */
export function typedArrayToLittleEndian(array: TypedArray, hostLittleEndian = HOST_LITTLE_ENDIAN): Uint8Array {
  const view = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  if (hostLittleEndian || array.BYTES_PER_ELEMENT === 1) return view;
  return swapBytes(view.slice(), array.BYTES_PER_ELEMENT);
}

/**
 * A typed array of `kind` from little-endian bytes: always a fresh copy with
 * its own aligned buffer (the source may sit at any offset in a file buffer),
 * made in this realm, so `instanceof Float32Array` holds for the caller.
 */
export function typedArrayFromLittleEndian<K extends TypedKind>(kind: K, bytes: Uint8Array, hostLittleEndian = HOST_LITTLE_ENDIAN): TypedArrayOf[K] {
  const ctor = CONSTRUCTORS[kind];
  const size = ctor.BYTES_PER_ELEMENT;
  if (bytes.length % size !== 0) {
    throw new VtokError('INVALID_INPUT', `Cannot read ${kind} values from ${bytes.length} bytes: not a multiple of ${size}`, { subject: kind });
  }
  const out = new ctor(bytes.length / size);
  const outBytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  outBytes.set(bytes);
  if (!hostLittleEndian) swapBytes(outBytes, size);
  return out;
}
