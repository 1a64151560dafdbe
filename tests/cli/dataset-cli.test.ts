import * as tf from '@tensorflow/tfjs';
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { createTokenizerModel } from '../../src/tf/tokenizer';
import { saveTokenizer } from '../../src/io/tokenizer-bundle';
import { iterateShards, readTokenDir } from '../../src/io/dataset/shard';

const root = path.resolve(__dirname, '../..');
const tsx = path.join(root, 'node_modules/.bin/tsx');

function vtok(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(tsx, [path.join(root, 'src/cli/main.ts'), ...args], { env: { ...process.env, ...env }, cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('vtok tokenize / decode / export as a user runs them', () => {
  it('tokenizes a folder with a stored tokenizer, skips a bad file, decodes and exports', async () => {
    await tf.setBackend('cpu');
    const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-cli-ds-'));
    const store = path.join(work, 'store');
    const images = path.join(work, 'images');
    await fsp.mkdir(images, { recursive: true });
    for (let i = 0; i < 3; i++) {
      await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 80 * i, g: 40, b: 200 - 60 * i } } })
        .png()
        .toFile(path.join(images, `img${i}.png`));
      await fsp.writeFile(path.join(images, `img${i}.txt`), `picture ${i}\n`);
    }
    await fsp.writeFile(path.join(images, 'broken.png'), 'not a png at all');
    const model = createTokenizerModel(
      { codebookSize: 16, baseChannels: 8, channelMult: [1, 1, 1, 1], normGroups: 4, semanticDecoderChannels: 8, kmeansInit: false },
      1,
    );
    const id = await saveTokenizer(model, { imageSize: 32, name: 'default', store: { store, shipped: false } });
    model.dispose();
    const env = { VTOK_STORE: store, VTOK_BACKEND: 'cpu' };

    const tok = await vtok(['tokenize', images, '--out', path.join(work, 'tokens'), '--json'], env);
    expect(tok.stderr).toContain('backend cpu');
    expect(tok.code).toBe(0);
    const result = JSON.parse(tok.stdout);
    expect(result.manifest.counts.records).toBe(3);
    expect(result.manifest.counts.errors).toBe(1);
    expect(result.manifest.options.tokenizer.id).toBe(id);
    const errors = await fsp.readFile(path.join(work, 'tokens', 'errors.jsonl'), 'utf8');
    expect(errors).toContain('broken.png');

    // Codebook usage over the token folder, against a count made here from the shards.
    const usage = await vtok(['eval', 'usage', path.join(work, 'tokens'), '--json'], env);
    expect(usage.code).toBe(0);
    const counts = new Map<number, number>();
    const { dir: tokDir, manifest } = await readTokenDir(path.join(work, 'tokens'));
    for await (const shard of iterateShards(tokDir, manifest)) {
      for (const r of shard.records) for (const c of r.codes ?? []) counts.set(c, (counts.get(c) ?? 0) + 1);
    }
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    const entropy = -[...counts.values()].reduce((a, n) => a + (n / total) * Math.log(n / total), 0);
    const reported = JSON.parse(usage.stdout);
    expect(reported.records).toBe(3);
    expect(reported.total).toBe(total);
    expect(reported.used).toBe(counts.size);
    expect(reported.usage).toBeCloseTo(counts.size / 16, 12);
    expect(reported.perplexity).toBeCloseTo(Math.exp(entropy), 10);

    // --workers 0 decodes on the main thread: the same shards, byte for byte.
    const w0 = await vtok(['tokenize', images, '--out', path.join(work, 'tokens-w0'), '--workers', '0', '--json'], env);
    expect(w0.code).toBe(0);
    expect(JSON.parse(w0.stdout).manifest.shards.map((x: { sha256: string }) => x.sha256)).toEqual(result.manifest.shards.map((x: { sha256: string }) => x.sha256));
    expect(JSON.parse(w0.stdout).loadedByWorkers).toBe(0);

    const again = await vtok(['tokenize', images, '--out', path.join(work, 'tokens')], env);
    expect(again.code).toBe(2); // refuses to overwrite a finished run without --resume

    const dec = await vtok(['decode', path.join(work, 'tokens'), '--out', path.join(work, 'recon')], env);
    expect(dec.code).toBe(0);
    const pngs = (await fsp.readdir(path.join(work, 'recon'), { recursive: true })).filter((f) => String(f).endsWith('.png'));
    expect(pngs).toHaveLength(3);
    const meta = await sharp(path.join(work, 'recon', String(pngs[0]))).metadata();
    expect([meta.width, meta.height]).toEqual([32, 32]);

    const exp = await vtok(['export', path.join(work, 'tokens'), '--out', path.join(work, 'llm'), '--format', 'jsonl'], env);
    expect(exp.code).toBe(0);
    const jsonl = (await fsp.readFile(path.join(work, 'llm', (await fsp.readdir(path.join(work, 'llm'))).find((f) => f.endsWith('.jsonl'))!), 'utf8'))
      .trim()
      .split('\n');
    expect(jsonl).toHaveLength(3);
    expect(jsonl[0]).toContain('picture 0');
    expect(jsonl[0]).toContain('<|img_start|>');
    expect((jsonl[0].match(/<\|vis_\d+\|>/g) ?? []).length).toBe(16); // a 4 x 4 grid

    // Visual BPE over those tokens: train, encode/decode round trip, inspect, tokenize with BPE ids.
    const train = await vtok(['bpe', 'train', '--tokens', path.join(work, 'tokens'), '--vocab-size', '24', '--min-frequency', '1', '--name', 'tiny-bpe', '--json'], env);
    expect(train.code).toBe(0);
    const trained = JSON.parse(train.stdout);
    expect(trained.parent).toBe(id);
    expect(trained.grids).toBe(3);
    expect(trained.tokensPerImage.bpe).toBeLessThan(16);
    const grid = { h: 4, w: 4, codes: Array.from({ length: 16 }, (_, i) => (i * 7) % 16) };
    await fsp.writeFile(path.join(work, 'grids.jsonl'), JSON.stringify(grid) + '\n');
    const enc = await vtok(['bpe', 'encode', path.join(work, 'grids.jsonl'), '--tokenizer', 'tiny-bpe'], env);
    expect(enc.code).toBe(0);
    await fsp.writeFile(path.join(work, 'ids.jsonl'), enc.stdout);
    const back = await vtok(['bpe', 'decode', path.join(work, 'ids.jsonl'), '--tokenizer', 'tiny-bpe'], env);
    expect(back.code).toBe(0);
    expect(JSON.parse(back.stdout).codes).toEqual(grid.codes);
    const bad = await vtok(['bpe', 'decode', '--tokenizer', 'tiny-bpe', path.join(work, 'grids.jsonl')], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('Expected an array of integers for ids');
    const inspect = await vtok(['bpe', 'inspect', '--tokenizer', 'tiny-bpe', '--top', '4', '--out', path.join(work, 'merges.png'), '--json'], env);
    expect(inspect.code).toBe(0);
    expect(JSON.parse(inspect.stdout).length).toBeGreaterThan(0);
    expect((await sharp(path.join(work, 'merges.png')).metadata()).width).toBeGreaterThan(0);
    const tokBpe = await vtok(['tokenize', images, '--out', path.join(work, 'tokens-bpe'), '--tokenizer', 'tiny-bpe', '--bpe', '--json'], env);
    expect(tokBpe.code).toBe(0);
    const expBpe = await vtok(['export', path.join(work, 'tokens-bpe'), '--out', path.join(work, 'llm-bpe'), '--ids', 'bpe', '--json'], env);
    expect(expBpe.code).toBe(0);
    expect(JSON.parse(expBpe.stdout).ids).toBe('bpe');
  });
});
