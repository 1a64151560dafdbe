import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { openStoreSet } from '../../src/io/store';

const root = path.resolve(__dirname, '../..');
const tsx = path.join(root, 'node_modules/.bin/tsx');

function vtok(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(tsx, [path.join(root, 'src/cli/main.ts'), ...args], { env: { ...process.env, VTOK_BACKEND: 'wasm', VTOK_THREADS: '1' }, cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

it('vtok train tokenizer --init-from: trains on from a stored tokenizer, records it as the parent, refuses --resume', async () => {
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-cli-init-'));
  const store = path.join(work, 'store');
  const images = path.join(work, 'images');
  await fsp.mkdir(images);
  for (let i = 0; i < 3; i++) {
    await sharp({ create: { width: 24, height: 20, channels: 3, background: { r: 80 * i, g: 40, b: 200 - 60 * i } } })
      .png()
      .toFile(path.join(images, `img${i}.png`));
  }
  const common = ['train', 'tokenizer', '--config', 'tiny', '--data', images, '--store', store, '--steps', '2', '--json'];
  const parent = await vtok([...common, '--run', path.join(work, 'a'), '--name', 'parent']);
  expect(parent.code).toBe(0);
  const parentId = JSON.parse(parent.stdout).id as string;

  const child = await vtok([...common, '--run', path.join(work, 'b'), '--name', 'child', '--init-from', 'parent']);
  expect(child.code).toBe(0);
  expect(JSON.parse(child.stdout).steps).toBe(2);
  const bundle = await openStoreSet({ store, shipped: false }).get('child');
  expect(bundle.parents).toEqual([parentId]);
  expect((bundle.meta as { card: { totalSteps: number } }).card.totalSteps).toBe(4);

  const both = await vtok([...common, '--run', path.join(work, 'b'), '--init-from', 'parent', '--resume']);
  expect(both.code).not.toBe(0);
  expect(both.stderr).toMatch(/initFrom \(parent\) cannot be combined with resume/);

  const help = await vtok(['train', 'tokenizer', '--help']);
  expect(help.stdout).toMatch(/--init-from/);
  await fsp.rm(work, { recursive: true, force: true });
}, 120000);
