/**
 * A small tar reader for WebDataset-style archives: it lists the members of an
 * uncompressed tar by reading only their 512-byte headers (the data is
 * skipped with positional reads), so listing a 10 GB archive reads a few MB,
 * and any member can later be read on its own. That random access is what lets
 * the pipeline sort, split (`--shard`) and resume over tar members exactly as
 * over files.
 *
 * Formats: POSIX ustar (with the `prefix` field), pax extended headers
 * (`path`, `size`, `linkpath`; typeflag 'x', global 'g' headers are skipped),
 * GNU long names ('L'), old v7 headers, base-256 sizes. Compressed archives
 * (.tar.gz) cannot be read at random and are refused with a clear message.
 * Reference: POSIX.1-2017 pax "ustar Interchange Format".
 */
import { promises as fsp } from 'node:fs';
import { VtokError } from '../../core/errors';

const BLOCK = 512;
/** Bytes read at a time while listing: several small members' headers arrive in one read. */
const WINDOW = 64 * 1024;

/** One member of an archive. */
export interface TarMember {
  /** Path inside the archive ('/' separators, no leading './'). */
  name: string;
  /** Byte offset of the member's data in the archive file. */
  offset: number;
  /** Size of the data in bytes. */
  size: number;
  /** 'file' for regular files; 'link' for hard and symbolic links (not followed); 'other' for devices, fifos, sparse files. */
  type: 'file' | 'link' | 'other';
  /** True when the archive ends before this member's data does. */
  truncated: boolean;
}

/** Reads a little window of the file at a time, for header parsing. */
class WindowReader {
  private buf = Buffer.alloc(WINDOW);
  private start = 0;
  private length = 0;

  constructor(
    private readonly handle: fsp.FileHandle,
    readonly fileSize: number,
  ) {}

  /** The `n` bytes at `pos` (n <= WINDOW), fewer at the end of the file. */
  async read(pos: number, n: number): Promise<Buffer> {
    if (pos >= this.start && pos + n <= this.start + this.length) return this.buf.subarray(pos - this.start, pos - this.start + n);
    const { bytesRead } = await this.handle.read(this.buf, 0, WINDOW, pos);
    this.start = pos;
    this.length = bytesRead;
    return this.buf.subarray(0, Math.min(n, bytesRead));
  }
}

function cString(b: Buffer, start: number, len: number): string {
  const end = b.indexOf(0, start);
  return b.toString('utf8', start, end < 0 || end > start + len ? start + len : end);
}

/** Numeric header field: octal text, or base-256 when the high bit of the first byte is set. */
function numberField(b: Buffer, start: number, len: number): number {
  if (b[start] & 0x80) {
    let v = b[start] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[start + i];
    return v;
  }
  const text = cString(b, start, len).trim();
  return text === '' ? 0 : parseInt(text, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = numberField(h, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  return sum === stored;
}

/** Parses pax records "<len> <key>=<value>\n". */
function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const len = parseInt(data.toString('utf8', pos, space), 10);
    if (!(len > 0) || pos + len > data.length) break;
    const record = data.toString('utf8', space + 1, pos + len - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return out;
}

function normalizeName(name: string): string {
  let n = name.replace(/\\/g, '/');
  while (n.startsWith('./')) n = n.slice(2);
  return n.replace(/^\/+/, '');
}

/** True when a path names a compressed tar that cannot be read at random. */
export function isCompressedTar(path: string): boolean {
  return /\.(tar\.(gz|bz2|xz|zst)|tgz|tbz2?|txz)$/i.test(path);
}

/**
 * Lists the members of a tar archive, in archive order.
 *
 * Example:
 *   const members = await listTar('shard-000.tar');
 *   // [{ name: '000001.jpg', offset: 512, size: 18342, type: 'file', truncated: false }, ...]
 */
export async function listTar(path: string): Promise<TarMember[]> {
  if (isCompressedTar(path)) {
    throw new VtokError('INVALID_INPUT', `Could not read ${path}: compressed tar archives are not supported (members must be read at random); decompress it first, e.g. gunzip`, {
      subject: path,
    });
  }
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(path, 'r');
  } catch (err) {
    throw new VtokError('IO', `Could not open ${path}: ${(err as Error).message}`, { subject: path, cause: err });
  }
  try {
    const size = (await handle.stat()).size;
    const reader = new WindowReader(handle, size);
    const members: TarMember[] = [];
    let pos = 0;
    let longName: string | undefined;
    let pax: Record<string, string> = {};
    while (pos + BLOCK <= size) {
      const h = Buffer.from(await reader.read(pos, BLOCK));
      if (h.length < BLOCK) break;
      if (h.every((b) => b === 0)) break; // end-of-archive marker
      if (!checksumOk(h)) {
        throw new VtokError('INVALID_INPUT', `Could not read ${path}: not a tar archive, or damaged at byte ${pos} (header checksum mismatch)`, { subject: path });
      }
      const type = String.fromCharCode(h[156] || 0x30);
      let dataSize = numberField(h, 124, 12);
      const dataStart = pos + BLOCK;
      const next = dataStart + Math.ceil(dataSize / BLOCK) * BLOCK;
      if (type === 'L' || type === 'x' || type === 'g') {
        const data = dataSize <= WINDOW ? Buffer.from(await reader.read(dataStart, dataSize)) : await readAt(handle, dataStart, dataSize);
        if (type === 'L') longName = cString(data, 0, data.length);
        else if (type === 'x') pax = parsePax(data);
        pos = next;
        continue;
      }
      const ustar = h.toString('latin1', 257, 262) === 'ustar';
      const prefix = ustar ? cString(h, 345, 155) : '';
      let name = longName ?? (prefix ? `${prefix}/${cString(h, 0, 100)}` : cString(h, 0, 100));
      if (pax.path !== undefined) name = pax.path;
      if (pax.size !== undefined) dataSize = Number(pax.size);
      const realNext = dataStart + Math.ceil(dataSize / BLOCK) * BLOCK;
      longName = undefined;
      pax = {};
      if (type !== '5') {
        const kind: TarMember['type'] = type === '0' || type === '7' ? 'file' : type === '1' || type === '2' ? 'link' : 'other';
        members.push({ name: normalizeName(name), offset: dataStart, size: dataSize, type: kind, truncated: dataStart + dataSize > size });
      }
      pos = realNext;
    }
    return members;
  } finally {
    await handle.close().catch(() => undefined);
  }
}

async function readAt(handle: fsp.FileHandle, pos: number, n: number): Promise<Buffer> {
  const buf = Buffer.alloc(n);
  let done = 0;
  while (done < n) {
    const { bytesRead } = await handle.read(buf, done, n - done, pos + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === n ? buf : buf.subarray(0, done);
}

/**
 * Reads byte ranges of files, keeping a few archives open (members of one
 * archive are read many times in a row). A handle is closed only when no read
 * on it is in flight.
 */
export class RangeReader {
  private readonly open = new Map<string, { handle: Promise<fsp.FileHandle>; busy: number }>();
  private closed = false;

  constructor(private readonly maxOpen = 8) {}

  /** The `size` bytes at `offset` of `file` (fewer if the file is shorter). */
  async read(file: string, offset: number, size: number): Promise<Buffer> {
    if (this.closed) throw new VtokError('IO', `Could not read ${file}: the reader is closed`, { subject: file });
    let slot = this.open.get(file);
    if (!slot) {
      this.evict();
      slot = { handle: fsp.open(file, 'r'), busy: 0 };
      this.open.set(file, slot);
    } else {
      // Most recently used last.
      this.open.delete(file);
      this.open.set(file, slot);
    }
    slot.busy++;
    try {
      return await readAt(await slot.handle, offset, size);
    } catch (err) {
      if (this.open.get(file) === slot) this.open.delete(file);
      throw err;
    } finally {
      slot.busy--;
    }
  }

  private evict(): void {
    for (const [file, slot] of this.open) {
      if (this.open.size < this.maxOpen) return;
      if (slot.busy === 0) {
        this.open.delete(file);
        slot.handle.then((h) => h.close()).catch(() => undefined);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = [...this.open.values()];
    this.open.clear();
    await Promise.all(slots.map((s) => s.handle.then((h) => h.close()).catch(() => undefined)));
  }
}
