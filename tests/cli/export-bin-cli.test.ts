// `vtok export --format bin --base-tokenizer tokenizer.json` as a user runs it:
// text ids from the given Hugging Face tokenizer, visual ids as the
// `--format hf` tokenizer.json of the same folder assigns them.
import * as tf from '@tensorflow/tfjs';
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { Tokenizer } from 'tokenizers';
import type { TokenRecord } from '../../src/core/pipeline-types';
import { iterateShards, readTokenDir } from '../../src/io/dataset/shard';
import { saveTokenizer } from '../../src/io/tokenizer-bundle';
import { readBinExport } from '../../src/pipeline/export';
import { createTokenizerModel } from '../../src/tf/tokenizer';
import { tinyByteBpeJson } from '../io/tiny-byte-bpe';

const root = path.resolve(__dirname, '../..');
const tsx = path.join(root, 'node_modules/.bin/tsx');

function vtok(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(tsx, [path.join(root, 'src/cli/main.ts'), ...args], { env: { ...process.env, ...env }, cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

it('exports captions with a base tokenizer.json: bin text decodes to the captions, visual ids match the hf export', async () => {
  await tf.setBackend('cpu');
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-cli-bin-'));
  try {
    const store = path.join(work, 'store');
    const images = path.join(work, 'images');
    await fsp.mkdir(images, { recursive: true });
    const captions = ['picture 0', 'a picture, 红色的猪 🐷', 'urepict  1'];
    for (let i = 0; i < captions.length; i++) {
      await sharp({ create: { width: 24, height: 20, channels: 3, background: { r: 90 * i, g: 30, b: 200 - 50 * i } } })
        .png()
        .toFile(path.join(images, `img${i}.png`));
      await fsp.writeFile(path.join(images, `img${i}.txt`), captions[i]);
    }
    const model = createTokenizerModel(
      { codebookSize: 16, baseChannels: 8, channelMult: [1, 1, 1, 1], normGroups: 4, semanticDecoderChannels: 8, kmeansInit: false },
      1,
    );
    await saveTokenizer(model, { imageSize: 32, name: 'default', store: { store, shipped: false } });
    model.dispose();
    const env = { VTOK_STORE: store, VTOK_BACKEND: 'cpu' };
    const base = path.join(work, 'tokenizer.json');
    await fsp.writeFile(base, tinyByteBpeJson());
    const tokens = path.join(work, 'tokens');

    const tok = await vtok(['tokenize', images, '--out', tokens], env);
    expect(tok.code).toBe(0);
    const records: TokenRecord[] = [];
    const { dir, manifest } = await readTokenDir(tokens);
    for await (const shard of iterateShards(dir, manifest)) records.push(...shard.records);
    expect(records.map((r) => r.caption).sort()).toEqual([...captions].sort());

    const template = '{caption}{image} {caption}'; // text before and after the image
    const bin = await vtok(['export', tokens, '--out', path.join(work, 'bin'), '--format', 'bin', '--base-tokenizer', base, '--template', template, '--json'], env);
    expect(bin.stderr).toBe('');
    expect(bin.code).toBe(0);
    const hfExp = await vtok(['export', tokens, '--out', path.join(work, 'hf'), '--format', 'hf', '--base-tokenizer', base], env);
    expect(hfExp.code).toBe(0);
    const jsonl = await vtok(['export', tokens, '--out', path.join(work, 'jsonl'), '--format', 'jsonl', '--template', template], env);
    expect(jsonl.code).toBe(0);

    const { meta, docs } = await readBinExport(path.join(work, 'bin'));
    expect(meta).toMatchObject({ dtype: 'uint16', textVocab: 263, imageStart: 263, imageEnd: 264, visualOffset: 265, visualCount: 16, docs: 3, ids: 'codes', text: base });
    const baseTok = Tokenizer.fromFile(base);
    const extended = Tokenizer.fromFile(path.join(work, 'hf', 'tokenizer.json'));
    const lines = (await fsp.readFile(path.join(work, 'jsonl', 'tokens.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { key: string; text: string });
    for (const [d, r] of records.entries()) {
      const doc = docs[d];
      const start = doc.indexOf(meta.imageStart);
      const end = doc.indexOf(meta.imageEnd);
      // text segments decode, with the base tokenizer alone, to the caption
      expect(await baseTok.decode(doc.slice(0, start), false)).toBe(r.caption);
      expect(await baseTok.decode(doc.slice(end + 1), false)).toBe(` ${r.caption}`);
      // visual ids are the record's codes through the extended tokenizer.json's names
      const visual = doc.slice(start + 1, end);
      expect(visual.map((id) => extended.idToToken(id))).toEqual(Array.from(r.codes as Int32Array, (c) => `<|vis_${c}|>`));
      expect(extended.idToToken(meta.imageStart)).toBe('<|img_start|>');
      // and the extended tokenizer encodes the JSONL line of the same document to exactly these ids
      expect(lines[d].key).toBe(r.key);
      expect((await extended.encode(lines[d].text, null, { addSpecialTokens: false })).getIds()).toEqual(doc);
    }
    // "picture 0" by hand: [261, 32, 48] (see tests/io/tiny-byte-bpe.ts)
    const i0 = records.findIndex((r) => r.caption === 'picture 0');
    expect(docs[i0].slice(0, 4)).toEqual([261, 32, 48, 263]);

    const missing = await vtok(['export', tokens, '--out', path.join(work, 'bin2'), '--format', 'bin', '--base-tokenizer', path.join(work, 'nope.json')], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`Could not read the tokenizer ${path.join(work, 'nope.json')}`);
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
});
