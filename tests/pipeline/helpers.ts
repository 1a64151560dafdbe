/**
 * Helpers for the pipeline tests: small seeded PNG/JPEG images made with
 * sharp in a temporary folder, a tar writer for WebDataset-style archives,
 * and readers that load every record of a token folder.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { Rng } from '../../src/core/random';
import type { SkippedInput, TokenRecord } from '../../src/core/pipeline-types';
import { readShard, readTokenDir } from '../../src/io/dataset/shard';
import { readErrors } from '../../src/io/dataset/shard';
import { pngChunk } from '../helpers/png-chunk';

export async function tmpDir(prefix = 'vtok-pipeline-'): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** A seeded image: a few flat rectangles of random colours on a random background. */
export function syntheticPixels(rng: Rng, width: number, height: number): Buffer {
  const px = Buffer.alloc(width * height * 3);
  const bg = [rng.int(256), rng.int(256), rng.int(256)];
  for (let i = 0; i < width * height; i++) px.set(bg, i * 3);
  for (let r = 0; r < 3; r++) {
    const c = [rng.int(256), rng.int(256), rng.int(256)];
    const x0 = rng.int(width);
    const y0 = rng.int(height);
    const x1 = Math.min(width, x0 + 1 + rng.int(width));
    const y1 = Math.min(height, y0 + 1 + rng.int(height));
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) px.set(c, (y * width + x) * 3);
  }
  return px;
}

export async function pngBytes(rng: Rng, width = 20, height = 16): Promise<Buffer> {
  return sharp(syntheticPixels(rng, width, height), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

export async function jpegBytes(rng: Rng, width = 20, height = 16): Promise<Buffer> {
  return sharp(syntheticPixels(rng, width, height), { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

/**
 * Writes n seeded images into dir (some in subfolders, PNG and JPEG), each
 * with a caption sidecar when `captions`; returns their relative paths, sorted.
 */
export async function makeImages(dir: string, n: number, seed: number, captions = true): Promise<string[]> {
  const rng = new Rng(seed);
  const rels: string[] = [];
  for (let i = 0; i < n; i++) {
    const sub = i % 3 === 0 ? 'a' : i % 3 === 1 ? 'b/c' : '';
    const ext = i % 4 === 3 ? 'jpg' : 'png';
    const rel = path.posix.join(sub, `img-${String(i).padStart(4, '0')}.${ext}`);
    await fsp.mkdir(path.join(dir, sub), { recursive: true });
    const w = 12 + rng.int(30);
    const h = 12 + rng.int(30);
    await fsp.writeFile(path.join(dir, rel), ext === 'png' ? await pngBytes(rng, w, h) : await jpegBytes(rng, w, h));
    if (captions) await fsp.writeFile(path.join(dir, rel.replace(/\.\w+$/, '.txt')), `caption ${i}\n`);
    rels.push(rel);
  }
  return rels.sort();
}

/** A ustar archive of the given members (name -> bytes), in the given order. */
export function makeTar(members: [string, Uint8Array][]): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, data] of members) {
    const h = Buffer.alloc(512);
    h.write(name, 0, 100, 'utf8');
    h.write('0000644\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h[156] = 0x30;
    h.write('ustar\0', 257);
    h.write('00', 263);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
    blocks.push(h, Buffer.from(data), Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** Every record of a finished token folder, in manifest order. */
export async function readAllRecords(dir: string): Promise<TokenRecord[]> {
  const { dir: d, manifest } = await readTokenDir(dir);
  const out: TokenRecord[] = [];
  for (const s of manifest.shards) out.push(...(await readShard(path.join(d, s.file), s.sha256)).records);
  return out;
}

export async function readAllErrors(dir: string): Promise<SkippedInput[]> {
  const { dir: d, manifest } = await readTokenDir(dir);
  return readErrors(path.join(d, manifest.errors));
}

/** Records in a comparable form (typed arrays as plain arrays), sorted by key. */
export function comparable(records: TokenRecord[]): unknown[] {
  return [...records]
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((r) => ({ ...r, codes: r.codes ? Array.from(r.codes) : null, bpe: r.bpe ? Array.from(r.bpe) : null }));
}

/**
 * A small PNG file whose header declares width x height pixels (a
 * decompression bomb in miniature: its pixel data is not there, the header is
 * all a reader needs to refuse it).
 */
export function hugePngHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
