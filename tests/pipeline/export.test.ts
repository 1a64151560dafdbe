import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Tokenizer, WordLevel, whitespacePreTokenizer } from 'tokenizers';
import { trainBpe } from '../../src/core/bpe';
import {
  DEFAULT_TOKEN_NAMES,
  byteLevelAlphabet,
  checkTemplate,
  documentIds,
  documentText,
  exportLayout,
  extendTokenizerJson,
  freshTokenizerJson,
  renderTemplate,
} from '../../src/core/export-tokens';
import type { TokenRecord } from '../../src/core/pipeline-types';
import { colourGridTokenizer } from '../../src/pipeline/colour-grid';
import { exportTokens, readBinExport } from '../../src/pipeline/export';
import { tokenizeDataset } from '../../src/pipeline/tokenize';
import { makeImages, readAllRecords, tmpDir } from './helpers';

const names = DEFAULT_TOKEN_NAMES;

describe('export core (by hand)', () => {
  test('the worked example: caption, image, byte-level ids', () => {
    const segs = renderTemplate('{caption}{image}', { key: 'k', label: null, caption: 'a pig' });
    expect(documentText(segs, [5, 9], names)).toBe('a pig<|img_start|><|vis_5|><|vis_9|><|img_end|>');
    const layout = exportLayout(256, 512);
    expect(layout).toEqual({ textVocab: 256, imageStart: 256, imageEnd: 257, visualOffset: 258, visualCount: 512, size: 770 });
    expect(documentIds(segs, [5, 9], layout, (t) => Buffer.from(t, 'utf8'))).toEqual([97, 32, 112, 105, 103, 256, 263, 267, 257]);
    expect(() => documentIds(segs, [512], layout, (t) => Buffer.from(t))).toThrow('Visual id 512 of type number is outside 0..511');
    expect(() => documentIds(segs, [1], layout, () => [300])).toThrow(/text ids must be in 0..255/);
  });

  test('templates', () => {
    expect(renderTemplate('{caption}: {image} ({key})', { key: 'a.png', label: 3, caption: null })).toEqual([{ text: '3: ' }, { image: true }, { text: ' (a.png)' }]);
    expect(renderTemplate('{image}{label}', { key: 'a', label: null, caption: 'c' })).toEqual([{ image: true }]);
    expect(() => checkTemplate('{caption}')).toThrow('Expected a string with {image} exactly once');
    expect(() => checkTemplate('{image}{title}')).toThrow('placeholders among {image}, {caption}, {label}, {key} only (found {title})');
  });

  test('the byte-level alphabet is GPT-2s: 256 distinct visible characters, printable ASCII unchanged', () => {
    const a = byteLevelAlphabet();
    expect(new Set(a).size).toBe(256);
    expect(a[65]).toBe('A');
    expect(a[32]).toBe('Ġ'); // space
    expect(a[10]).toBe('Ċ'); // newline
  });

  test('extending a tokenizer.json: ids after its largest id, names must be new', () => {
    const base = { model: { type: 'WordLevel', vocab: { '[UNK]': 0, a: 1, pig: 7 } }, added_tokens: [{ id: 9, content: '[X]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }] };
    const { json, layout } = extendTokenizerJson(base, 3, names);
    expect(layout.textVocab).toBe(10);
    expect(json.added_tokens?.map((t) => [t.id, t.content])).toEqual([
      [9, '[X]'],
      [10, '<|img_start|>'],
      [11, '<|img_end|>'],
      [12, '<|vis_0|>'],
      [13, '<|vis_1|>'],
      [14, '<|vis_2|>'],
    ]);
    expect(base.added_tokens.length).toBe(1); // the base is not modified
    expect(() => extendTokenizerJson({ model: { vocab: { '<|img_end|>': 0 } } }, 3, names)).toThrow('The base tokenizer already has a token "<|img_end|>"; choose other image token names');
  });
});

describe('exportTokens', () => {
  let root: string;
  let tokens: string;
  let records: TokenRecord[];
  beforeAll(async () => {
    root = await tmpDir('vtok-export-');
    await makeImages(path.join(root, 'in'), 7, 21);
    await fsp.writeFile(path.join(root, 'in', 'a', 'img-0000.txt'), 'héllo wörld 🐖'); // non-ASCII text survives
    await fsp.unlink(path.join(root, 'in', 'b', 'c', 'img-0001.txt')); // one image without a caption
    tokens = path.join(root, 'tokens');
    await tokenizeDataset({ inputs: [path.join(root, 'in')], out: tokens, tokenizer: colourGridTokenizer({ imageSize: 16, grid: 4 }), recordsPerShard: 3 });
    records = await readAllRecords(tokens);
  });
  afterAll(() => fsp.rm(root, { recursive: true, force: true }));

  test('jsonl: one document a line, image tokens between img_start and img_end, caption before', async () => {
    const res = await exportTokens({ dir: tokens, out: path.join(root, 'x-jsonl'), format: 'jsonl' });
    expect(res.docs).toBe(7);
    const lines = (await fsp.readFile(path.join(root, 'x-jsonl', 'tokens.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { key: string; text: string });
    expect(lines.map((l) => l.key)).toEqual(records.map((r) => r.key));
    lines.forEach((l, i) => {
      const r = records[i];
      const m = /^(.*)<\|img_start\|>((?:<\|vis_\d+\|>)*)<\|img_end\|>$/s.exec(l.text) as RegExpExecArray;
      expect(m[1]).toBe(r.caption ?? '');
      expect([...m[2].matchAll(/<\|vis_(\d+)\|>/g)].map((x) => Number(x[1]))).toEqual(Array.from(r.codes as Int32Array));
    });
    expect(lines[0].text.startsWith('héllo wörld 🐖<|img_start|>')).toBe(true);
    await expect(exportTokens({ dir: tokens, out: path.join(root, 'x-jsonl'), format: 'jsonl' })).rejects.toThrow(
      `Refusing to overwrite ${path.join(root, 'x-jsonl', 'tokens.jsonl')}; pass overwrite to replace it`,
    );
  });

  test('bin (fresh byte-level ids) and hf tokenizer.json agree: every JSONL line encodes to its bin document, and decodes back', async () => {
    const bin = path.join(root, 'x-bin');
    const res = await exportTokens({ dir: tokens, out: bin, format: 'bin' });
    const { meta, docs } = await readBinExport(bin);
    expect(meta).toMatchObject({ dtype: 'uint16', textVocab: 256, imageStart: 256, imageEnd: 257, visualOffset: 258, visualCount: 512, docs: 7, ids: 'codes', text: 'byte-level' });
    expect(res.tokens).toBe(docs.reduce((s, d) => s + d.length, 0));
    // by hand for the first record: UTF-8 bytes of the caption, then the image
    const r0 = records[0];
    expect(docs[0]).toEqual([...Buffer.from('héllo wörld 🐖', 'utf8'), 256, ...Array.from(r0.codes as Int32Array, (c) => 258 + c), 257]);
    const idx = await fsp.readFile(path.join(bin, 'tokens.idx'));
    expect(idx.length).toBe(8 * 8);
    expect(Number(idx.readBigUInt64LE(8))).toBe(docs[0].length);

    await exportTokens({ dir: tokens, out: path.join(root, 'x-hf'), format: 'hf' });
    await exportTokens({ dir: tokens, out: path.join(root, 'x-jsonl2'), format: 'jsonl' });
    const hf = Tokenizer.fromFile(path.join(root, 'x-hf', 'tokenizer.json'));
    expect(hf.getVocabSize(true)).toBe(256 + 2 + 512);
    const lines = (await fsp.readFile(path.join(root, 'x-jsonl2', 'tokens.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { text: string });
    for (const [i, l] of lines.entries()) {
      const ids = (await hf.encode(l.text, null, { addSpecialTokens: false })).getIds();
      expect(ids).toEqual(docs[i]);
      expect(await hf.decode(ids, false)).toBe(l.text);
    }
  });

  test('extending a given tokenizer.json (WordLevel): bin ids through its encoder equal the extended tokenizer on the JSONL text', async () => {
    const vocab: Record<string, number> = { '[UNK]': 0, caption: 1 };
    for (let d = 0; d < 10; d++) vocab[String(d)] = 2 + d;
    const wl = new Tokenizer(WordLevel.init(vocab, { unkToken: '[UNK]' }));
    wl.setPreTokenizer(whitespacePreTokenizer());
    const baseFile = path.join(root, 'base-tokenizer.json');
    wl.save(baseFile);
    const template = '{caption} {image}';
    await expect(exportTokens({ dir: tokens, out: path.join(root, 'y-bin'), format: 'bin', baseTokenizer: baseFile, template })).rejects.toThrow(/for encodeText/);
    const encodeText = async (t: string): Promise<number[]> => (await wl.encode(t, null, { addSpecialTokens: false })).getIds();
    await exportTokens({ dir: tokens, out: path.join(root, 'y-bin'), format: 'bin', baseTokenizer: baseFile, encodeText, template });
    await exportTokens({ dir: tokens, out: path.join(root, 'y-hf'), format: 'hf', baseTokenizer: baseFile });
    await exportTokens({ dir: tokens, out: path.join(root, 'y-jsonl'), format: 'jsonl', template });
    const { meta, docs } = await readBinExport(path.join(root, 'y-bin'));
    expect(meta.textVocab).toBe(12);
    const hf = Tokenizer.fromFile(path.join(root, 'y-hf', 'tokenizer.json'));
    const lines = (await fsp.readFile(path.join(root, 'y-jsonl', 'tokens.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { text: string });
    for (const [i, l] of lines.entries()) expect((await hf.encode(l.text, null, { addSpecialTokens: false })).getIds()).toEqual(docs[i]);
    const at = (key: string): number => records.findIndex((r) => r.key === key);
    const i1 = at('b/c/img-0001.png');
    expect(docs[i1].slice(0, 4)).toEqual([12, ...Array.from(records[i1].codes as Int32Array).slice(0, 3).map((c) => 14 + c)]); // no caption: the image first
    expect(docs[at('a/img-0003.jpg')].slice(0, 3)).toEqual([1, 5, 12]); // "caption 3" -> caption, 3, <|img_start|>
  });

  test('BPE ids, a uint32 layout, and captions that would read back as image tokens', async () => {
    const bpe = trainBpe(records.map((r) => ({ codes: r.codes as Int32Array, h: 4, w: 4 })), { baseVocab: 512, merges: 5, minFrequency: 2 });
    const tb = path.join(root, 'tokens-bpe');
    await tokenizeDataset({ inputs: [path.join(root, 'in')], out: tb, tokenizer: colourGridTokenizer({ imageSize: 16, grid: 4 }), bpe });
    const res = await exportTokens({ dir: tb, out: path.join(root, 'z-bin'), format: 'bin', template: '{image}' });
    expect(res.ids).toBe('bpe');
    expect(res.layout.visualCount).toBe(bpe.vocabSize);
    const withBpe = await readAllRecords(tb);
    const { docs } = await readBinExport(path.join(root, 'z-bin'));
    expect(docs.map((d) => d.slice(1, -1).map((x) => x - 258))).toEqual(withBpe.map((r) => Array.from(r.bpe as Int32Array)));
    await expect(exportTokens({ dir: tokens, out: path.join(root, 'z2'), ids: 'bpe' })).rejects.toThrow('Expected "codes" or "auto": these tokens were made without BPE for ids');

    const big = path.join(root, 'big-tokenizer.json');
    await fsp.writeFile(big, JSON.stringify({ ...freshTokenizerJson(), added_tokens: [{ id: 70000, content: '[FAR]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }] }));
    await exportTokens({ dir: tokens, out: path.join(root, 'z-u32'), format: 'bin', baseTokenizer: big, template: '{image}' });
    const u32 = await readBinExport(path.join(root, 'z-u32'));
    expect(u32.meta.dtype).toBe('uint32');
    expect(u32.docs[0][0]).toBe(70001);
    expect(u32.docs[0].slice(1, -1)).toEqual(Array.from(records[0].codes as Int32Array, (c) => 70003 + c));

    await fsp.writeFile(path.join(root, 'in', 'a', 'img-0000.txt'), 'sneaky <|vis_3|> caption');
    const t2 = path.join(root, 'tokens-sneaky');
    await tokenizeDataset({ inputs: [path.join(root, 'in')], out: t2, tokenizer: colourGridTokenizer({ imageSize: 16, grid: 4 }) });
    await expect(exportTokens({ dir: t2, out: path.join(root, 'z3') })).rejects.toThrow('The text of a/img-0000.png contains an image token name ("<|vis_3|>")');
    expect(await fsp.readdir(path.join(root, 'z3'))).toEqual([]); // nothing half-written
  });
});
