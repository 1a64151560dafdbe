import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeFileAtomic } from '../../src/io/atomic';

describe('writeFileAtomic', () => {
  it('replaces the whole file and leaves no temporary files', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-atomic-'));
    const target = path.join(dir, 'a.bin');
    await writeFileAtomic(target, 'old');
    await writeFileAtomic(target, new Uint8Array([1, 2, 3]));
    expect([...(await fsp.readFile(target))]).toEqual([1, 2, 3]);
    expect(await fsp.readdir(dir)).toEqual(['a.bin']);
  });

  it('fails with the target named and leaves the old file as it was', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-atomic-'));
    const target = path.join(dir, 'sub');
    await fsp.mkdir(target); // renaming a file over a directory fails
    await expect(writeFileAtomic(target, 'x')).rejects.toThrow(`Could not write ${target}`);
    expect((await fsp.stat(target)).isDirectory()).toBe(true);
    expect(await fsp.readdir(dir)).toEqual(['sub']);
  });
});
