import { VtokError } from './errors';

/**
 * Parses an IDX file (the format of MNIST and Fashion-MNIST): a big-endian
 * header of magic (0x0000, a type byte, a dimension count) and one uint32 size
 * per dimension, then the data. Only unsigned bytes (type 0x08) are needed here.
 *
 * Example: the Fashion-MNIST training images parse to { shape: [60000, 28, 28], data: Uint8Array(47040000) }.
 */
export function parseIdx(bytes: Uint8Array, name = 'IDX data'): { shape: number[]; data: Uint8Array } {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw new VtokError('INVALID_INPUT', `${name} is not an IDX file (bad magic number)`, { subject: name });
  }
  if (bytes[2] !== 0x08) {
    throw new VtokError('INVALID_INPUT', `${name} holds IDX type 0x${bytes[2].toString(16)}; only unsigned bytes (0x08) are read`, { subject: name });
  }
  const dims = bytes[3];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerBytes = 4 + 4 * dims;
  if (bytes.length < headerBytes) throw new VtokError('INVALID_INPUT', `${name} is truncated inside its header`, { subject: name });
  const shape: number[] = [];
  for (let i = 0; i < dims; i++) shape.push(view.getUint32(4 + 4 * i, false));
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== headerBytes + count) {
    throw new VtokError(
      'INVALID_INPUT',
      `${name} should hold ${headerBytes + count} bytes for shape [${shape.join(', ')}] but holds ${bytes.length}`,
      { subject: name },
    );
  }
  return { shape, data: bytes.subarray(headerBytes) };
}
