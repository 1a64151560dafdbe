import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writePng } from '../../src/io/image';
import { saveTokenizer } from '../../src/io/tokenizer-bundle';
import { createTokenizerModel } from '../../src/tf/tokenizer';

const root = path.resolve(__dirname, '../..');
const tsx = path.join(root, 'node_modules/.bin/tsx');

function vtok(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(tsx, [path.join(root, 'src/cli/main.ts'), ...args], { env: { ...process.env, VTOK_BACKEND: 'cpu', ...env }, cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** n images of 16 x 16 with classes alternating "a" / "b" as NNNNN.txt sidecars (the Fashion-MNIST layout). */
async function folder(dir: string, n: number): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const px = new Uint8Array(16 * 16 * 3).map((_, j) => (i % 2 === 0 ? (j * 7) % 256 : 255 - ((j * 3) % 256)));
    const stem = path.join(dir, String(i).padStart(5, '0'));
    await writePng(`${stem}.png`, px, { width: 16, height: 16 });
    await fsp.writeFile(`${stem}.txt`, i % 2 === 0 ? 'a' : 'b');
  }
}

describe('vtok eval probe as a user runs it', () => {
  let work: string;
  beforeAll(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-cli-probe-'));
  });
  afterAll(async () => fsp.rm(work, { recursive: true, force: true }));

  it('--help teaches the options', async () => {
    const r = await vtok(['eval', 'probe', '--help']);
    expect(r.code).toBe(0);
    for (const opt of ['--tokenizer', '--train', '--test', '--branch', '--size', '--limit', '--test-limit', '--l2', '"semantic"', '"both"']) expect(r.stdout).toContain(opt);
    expect(r.stdout.replace(/\s+/g, ' ')).toContain('8 x the tokenizer\'s downsample factor');
  });

  it('probes the store tokenizer: JSON and human output; an unknown branch is refused', async () => {
    await tf.setBackend('cpu');
    const store = path.join(work, 'store');
    await folder(path.join(work, 'train'), 6);
    await folder(path.join(work, 'test'), 4);
    const model = createTokenizerModel({ codebookSize: 16, baseChannels: 8, channelMult: [1, 1, 1, 1], normGroups: 4, kmeansInit: false }, 1);
    const id = await saveTokenizer(model, { imageSize: 16, name: 'probe-me', store: { store, shipped: false } });
    model.dispose();
    const common = ['eval', 'probe', '--tokenizer', 'probe-me', '--train', path.join(work, 'train'), '--test', path.join(work, 'test'), '--size', '16'];

    const r = await vtok([...common, '--branch', 'semantic', 'both', '--json'], { VTOK_STORE: store });
    expect(r.stderr).toContain('backend cpu');
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout);
    expect(printed.format).toBe('vtok-probe-report');
    expect(printed.tokenizer.id).toBe(id);
    expect(printed.results.map((x: { branch: string; dim: number }) => [x.branch, x.dim])).toEqual([
      ['semantic', 16],
      ['both', 24],
    ]);
    expect(printed.data).toMatchObject({ train: { n: 6 }, test: { n: 4 }, classes: ['a', 'b'] });

    const human = await vtok([...common, '--branch', 'pixel', '--limit', '4'], { VTOK_STORE: store });
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^tokenizer probe-me \([0-9a-f]{12}\); images at 16x16, crop, 2x2 code grid; N = 4 train \/ 4 test, 2 classes\n/);
    expect(human.stdout).toMatch(/pixel +8 +\d+\.\d\d% +\d+\.\d\d% +50\.00% \(majority 50\.00%\)/);

    const bad = await vtok([...common, '--branch', 'colour'], { VTOK_STORE: store });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('colour');
    expect(bad.stderr).toContain('semantic');
  });
});
