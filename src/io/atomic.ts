import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { VtokError } from '../core/errors';

/**
 * Writes a file atomically: the bytes go to a temporary file in the same
 * folder, are fsync'd, and the temporary file is renamed over the target; the
 * folder is fsync'd too so the rename survives a crash. A reader sees either
 * the old file or the whole new one, never a half-written one. On failure the
 * temporary file is removed and the target is untouched.
 */
export async function writeFileAtomic(target: string, data: Uint8Array | string): Promise<void> {
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(tmp, 'wx');
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(tmp, target);
  } catch (err) {
    if (handle) await handle.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw new VtokError('IO', `Could not write ${target}: ${(err as Error).message}`, { subject: target, cause: err });
  }
  await syncDir(dir);
}

/** fsync a directory so that a rename in it is durable (a no-op where the OS refuses). */
export async function syncDir(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch {
    // Some file systems do not allow fsync on a directory; the rename is still atomic.
  } finally {
    if (handle) await handle.close().catch(() => undefined);
  }
}
