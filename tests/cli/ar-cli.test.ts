/**
 * `vtok ar train|eval|generate|describe` as a user runs them: a random tiny
 * image tokenizer in a temporary store, a labelled folder tokenized with it,
 * the AR head trained on it (ar-tiny), then used.
 */
import * as tf from '@tensorflow/tfjs';
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { createTokenizerModel } from '../../src/tf/tokenizer';
import { saveTokenizer } from '../../src/io/tokenizer-bundle';

const root = path.resolve(__dirname, '../..');
const tsx = path.join(root, 'node_modules/.bin/tsx');

function vtok(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(tsx, [path.join(root, 'src/cli/main.ts'), ...args], { env: { ...process.env, ...env }, cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let work: string;
let env: Record<string, string>;
beforeAll(async () => {
  await tf.setBackend('cpu');
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-cli-ar-'));
  const store = path.join(work, 'store');
  const images = path.join(work, 'images');
  await fsp.mkdir(images, { recursive: true });
  for (let i = 0; i < 4; i++) {
    const bg = i % 2 === 0 ? { r: 230, g: 20, b: 20 } : { r: 20, g: 20, b: 230 };
    await sharp({ create: { width: 16, height: 16, channels: 3, background: bg } })
      .png()
      .toFile(path.join(images, `img${i}.png`));
    await fsp.writeFile(path.join(images, `img${i}.cls`), i % 2 === 0 ? 'red' : 'blue');
  }
  const model = createTokenizerModel({ codebookSize: 8, baseChannels: 8, channelMult: [1, 1, 1, 1], normGroups: 4, semanticDecoderChannels: 8, kmeansInit: false }, 1);
  await saveTokenizer(model, { imageSize: 16, name: 'default', store: { store, shipped: false } });
  model.dispose();
  env = { VTOK_STORE: store, VTOK_BACKEND: 'cpu' };
  const tok = await vtok(['tokenize', images, '--out', path.join(work, 'tokens'), '--quiet'], env);
  expect(tok.stderr).not.toMatch(/Error/);
  expect(tok.code).toBe(0);
});
afterAll(async () => {
  await fsp.rm(work, { recursive: true, force: true });
});

it('trains, evaluates, generates PNGs and describes images', async () => {
  const run = path.join(work, 'run');
  const train = await vtok(['ar', 'train', '--tokens', path.join(work, 'tokens'), '--config', 'ar-tiny', '--out', run, '--json'], env);
  expect(train.stderr).not.toMatch(/Error/);
  expect(train.code).toBe(0);
  const t = JSON.parse(train.stdout);
  expect(t.steps).toBe(40);
  expect(t.classes).toEqual(['blue', 'red']);

  const ev = await vtok(['ar', 'eval', '--ar', run, '--tokens', path.join(work, 'tokens'), '--json'], env);
  expect(ev.code).toBe(0);
  expect(JSON.parse(ev.stdout)).toMatchObject({ n: 4, unknownTexts: 0 });

  const gen = await vtok(['ar', 'generate', 'red', '--ar', run, '--n', '3', '--seed', '1', '--out', path.join(work, 'gen'), '--json'], env);
  expect(gen.stderr).not.toMatch(/vtok: |Error/);
  expect(gen.code).toBe(0);
  const g = JSON.parse(gen.stdout);
  expect(g.files).toHaveLength(3);
  const meta = await sharp(path.join(work, 'gen', 'sample-000.png')).metadata();
  expect([meta.width, meta.height]).toEqual([16, 16]);
  await fsp.access(path.join(work, 'gen', 'grid.png'));

  const desc = await vtok(['ar', 'describe', path.join(work, 'images', 'img0.png'), '--ar', run], env);
  expect(desc.code).toBe(0);
  expect(desc.stdout).toMatch(/img0\.png: ".*"\n\s+\d+\.\d%\s+(red|blue)/);
});

it('explains itself and fails clearly', async () => {
  const help = await vtok(['ar', 'train', '--help'], env);
  expect(help.code).toBe(0);
  expect(help.stdout).toContain('--resume');
  expect(help.stdout).toContain('conditionDrop');
  const missing = await vtok(['ar', 'generate', 'red', '--ar', path.join(work, 'nope'), '--out', path.join(work, 'x')], env);
  expect(missing.code).not.toBe(0);
  expect(missing.stderr).toMatch(/nope/);
});
