/**
 * One PNG chunk (length, type, data, CRC-32 by Node's zlib), for tests that
 * build PNG files by hand: odd headers, declared-but-missing pixels, bad CRCs.
 */
import * as zlib from 'node:zlib';

export function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body) >>> 0);
  return Buffer.concat([len, body, crc]);
}
