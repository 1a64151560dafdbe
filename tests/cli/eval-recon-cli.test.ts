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

describe('vtok eval recon as a user runs it', () => {
  let work: string;
  beforeAll(async () => {
    work = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-cli-recon-'));
  });
  afterAll(async () => fsp.rm(work, { recursive: true, force: true }));

  it('--help teaches the options and what the report holds', async () => {
    const r = await vtok(['eval', 'recon', '--help']);
    expect(r.code).toBe(0);
    for (const opt of ['--tokenizer', '--data', '--out', '--batch-size', '--limit', '--extractor', '--worst', '--fid-weights']) expect(r.stdout).toContain(opt);
    expect(r.stdout).toContain('report.html');
    expect(r.stdout.replace(/\s+/g, ' ')).toContain('"rFID" only with pytorch-fid\'s Inception weights');
    expect(r.stdout).toContain('nsfwjs-mobilenet-v2');
  });

  it('a missing --data folder is a clear error, and nothing is written', async () => {
    const r = await vtok(['eval', 'recon', '--data', path.join(work, 'no-such-folder'), '--out', path.join(work, 'rep0')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`vtok: Expected an image folder but cannot read ${path.join(work, 'no-such-folder')}`);
    expect(r.stderr).toContain('[FILE_NOT_FOUND]');
    await expect(fsp.stat(path.join(work, 'rep0'))).rejects.toThrow('ENOENT');

    const noWeights = await vtok(['eval', 'recon', '--data', work, '--out', path.join(work, 'rep0'), '--extractor', 'pytorch-fid-inception']);
    expect(noWeights.code).toBe(2);
    expect(noWeights.stderr).toContain('--extractor pytorch-fid-inception needs --fid-weights FILE');
  });

  it('writes a report with the default tokenizer of the store', async () => {
    await tf.setBackend('cpu');
    const store = path.join(work, 'store');
    const images = path.join(work, 'images');
    await fsp.mkdir(images);
    for (let i = 0; i < 3; i++) {
      const px = new Uint8Array(24 * 20 * 3).map((_, j) => (j * (i + 3)) % 256);
      await writePng(path.join(images, `im${i}.png`), px, { width: 24, height: 20 });
    }
    const model = createTokenizerModel({ codebookSize: 16, baseChannels: 8, channelMult: [1, 1, 1, 1], normGroups: 4, semanticDecoderChannels: 8, kmeansInit: false }, 1);
    const id = await saveTokenizer(model, { imageSize: 16, name: 'default', store: { store, shipped: false } });
    model.dispose();
    const out = path.join(work, 'rep');
    const r = await vtok(['eval', 'recon', '--data', images, '--out', out, '--extractor', 'none', '--json'], { VTOK_STORE: store });
    expect(r.stderr).toContain('backend cpu');
    expect(r.code).toBe(0);
    const printed = JSON.parse(r.stdout);
    expect(printed.tokenizer.id).toBe(id);
    expect(printed.data.evaluated).toBe(3);
    const saved = JSON.parse(await fsp.readFile(path.join(out, 'report.json'), 'utf8'));
    expect(saved.metrics).toEqual(printed.metrics);
    expect(saved.metrics.frechet).toBeNull();

    const human = await vtok(['eval', 'recon', '--data', images, '--out', out, '--extractor', 'none', '--limit', '2'], { VTOK_STORE: store });
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^PSNR \d+\.\d\d dB {2}SSIM -?\d\.\d{4} {2}usage \d+\.\d\d% {2}perplexity \d+\.\d\d\nN = 2 images at 16x16, tokenizer default/);
    expect(human.stdout).toContain(`report: ${path.join(out, 'report.html')}`);
  });
});
