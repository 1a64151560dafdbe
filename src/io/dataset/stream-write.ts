/**
 * Atomic writes of files too large to build in memory (binary token streams,
 * JSONL exports): chunks go to a temporary file in the target's folder; close()
 * fsyncs it and renames it over the target; abort() removes it. A reader sees
 * the old file or the whole new one, never a part.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { VtokError } from '../../core/errors';
import { syncDir } from '../atomic';

export class AtomicFileWriter {
  private handle: fsp.FileHandle | undefined;
  private readonly tmp: string;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes written so far. */
  bytes = 0;

  private constructor(
    readonly target: string,
    handle: fsp.FileHandle,
    tmp: string,
    private readonly chunk: number,
  ) {
    this.handle = handle;
    this.tmp = tmp;
  }

  /** Opens a writer for `target`; data is buffered in chunks of `chunk` bytes. */
  static async open(target: string, chunk = 1 << 20): Promise<AtomicFileWriter> {
    const tmp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      return new AtomicFileWriter(target, await fsp.open(tmp, 'wx'), tmp, chunk);
    } catch (err) {
      throw new VtokError('IO', `Could not write ${target}: ${(err as Error).message}`, { subject: target, cause: err });
    }
  }

  async write(data: Uint8Array | string): Promise<void> {
    const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.pending.push(typeof data === 'string' ? b : Buffer.from(b)); // copy: the caller may reuse its array
    this.pendingBytes += b.length;
    this.bytes += b.length;
    if (this.pendingBytes >= this.chunk) await this.flush();
  }

  private async flush(): Promise<void> {
    if (!this.handle) throw new VtokError('IO', `Could not write ${this.target}: the writer is closed`, { subject: this.target });
    if (this.pendingBytes === 0) return;
    const data = Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    try {
      await this.handle.write(data);
    } catch (err) {
      await this.abort();
      throw new VtokError('IO', `Could not write ${this.target}: ${(err as Error).message}`, { subject: this.target, cause: err });
    }
  }

  /** Flushes, fsyncs and renames the file into place. */
  async close(): Promise<void> {
    await this.flush();
    const h = this.handle as fsp.FileHandle;
    try {
      await h.sync();
      await h.close();
      this.handle = undefined;
      await fsp.rename(this.tmp, this.target);
    } catch (err) {
      await this.abort();
      throw new VtokError('IO', `Could not write ${this.target}: ${(err as Error).message}`, { subject: this.target, cause: err });
    }
    await syncDir(path.dirname(this.target));
  }

  /** Drops the temporary file; the target is untouched. */
  async abort(): Promise<void> {
    if (this.handle) await this.handle.close().catch(() => undefined);
    this.handle = undefined;
    await fsp.rm(this.tmp, { force: true }).catch(() => undefined);
  }
}
