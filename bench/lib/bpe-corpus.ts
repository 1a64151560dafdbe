/**
 * A file of code grids, the input of `npm run bench:bpe` (pluggable: any
 * producer of code grids can write one, e.g. the real tokenizer later).
 *
 * Layout: the 8 bytes "VTOKGRID", a uint32 (little-endian) byte length L, L
 * bytes of UTF-8 JSON header, then count * h * w codes as uint16 (K <= 65536)
 * or int32 little-endian, grid after grid, each row-major.
 *
 * Header: { format: "vtok-grids", version: 1, count, h, w, baseVocab,
 *           dtype: "uint16" | "int32", source: "<what the codes are>" }
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../src/io/atomic';

export interface GridFileHeader {
  format: 'vtok-grids';
  version: 1;
  count: number;
  h: number;
  w: number;
  baseVocab: number;
  dtype: 'uint16' | 'int32';
  source: string;
}

export interface GridFile {
  header: GridFileHeader;
  /** count * h * w codes, grid after grid. */
  codes: Uint16Array | Int32Array;
}

const MAGIC = 'VTOKGRID';

export async function writeGridFile(file: string, header: Omit<GridFileHeader, 'format' | 'version' | 'dtype'>, codes: ArrayLike<number>): Promise<void> {
  const dtype = header.baseVocab <= 65536 ? 'uint16' : 'int32';
  const full: GridFileHeader = { format: 'vtok-grids', version: 1, dtype, ...header };
  const n = full.count * full.h * full.w;
  if (codes.length !== n) throw new Error(`writeGridFile: expected ${n} codes, received ${codes.length}`);
  const json = Buffer.from(JSON.stringify(full), 'utf8');
  const body = dtype === 'uint16' ? Uint16Array.from(codes) : Int32Array.from(codes);
  const out = Buffer.alloc(12 + json.length + body.byteLength);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(json.length, 8);
  json.copy(out, 12);
  Buffer.from(body.buffer, body.byteOffset, body.byteLength).copy(out, 12 + json.length);
  await fsp.mkdir(path.dirname(file), { recursive: true });
  await writeFileAtomic(file, out);
}

export async function readGridFile(file: string): Promise<GridFile> {
  const buf = await fsp.readFile(file);
  if (buf.length < 12 || buf.toString('latin1', 0, 8) !== MAGIC) throw new Error(`${file} is not a vtok grid file (no VTOKGRID magic)`);
  const len = buf.readUInt32LE(8);
  const header = JSON.parse(buf.toString('utf8', 12, 12 + len)) as GridFileHeader;
  if (header.format !== 'vtok-grids' || header.version !== 1) throw new Error(`${file}: unsupported grid file ${header.format} v${header.version}`);
  const n = header.count * header.h * header.w;
  const bytes = header.dtype === 'uint16' ? 2 : 4;
  if (buf.length !== 12 + len + n * bytes) throw new Error(`${file}: expected ${n} codes of ${bytes} bytes after the header, file has ${buf.length - 12 - len} bytes`);
  const body = new Uint8Array(n * bytes);
  body.set(buf.subarray(12 + len));
  const codes = header.dtype === 'uint16' ? new Uint16Array(body.buffer) : new Int32Array(body.buffer);
  return { header, codes };
}
