import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tokenizer } from 'tokenizers';
import { Rng } from '../../src/core/random';
import { loadHfTokenizer, requireTokenizers } from '../../src/io/hf-tokenizer';
import { END_OF_TEXT, tinyByteBpeJson } from './tiny-byte-bpe';

let dir: string;
let file: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-hf-tok-'));
  file = path.join(dir, 'tokenizer.json');
  await fsp.writeFile(file, tinyByteBpeJson());
});
afterAll(() => fsp.rm(dir, { recursive: true, force: true }));

describe('loadHfTokenizer', () => {
  test('the worked example: merges by rank, no special tokens added, decode back', async () => {
    const hf = await loadHfTokenizer(file);
    expect(await hf.encode('picture 0')).toEqual([261, 32, 48]);
    expect(await hf.encode('')).toEqual([]);
    expect(await hf.decode([261, 32, 48])).toBe('picture 0');
    expect(await hf.decode([261, END_OF_TEXT])).toBe('picture<|endoftext|>');
    expect(await hf.decode([261, END_OF_TEXT], { skipSpecialTokens: true })).toBe('picture');
    expect(hf.vocabSize).toBe(263);
    expect(hf.addedTokens).toEqual([{ id: END_OF_TEXT, content: '<|endoftext|>', special: true }]);
    // the post-processor would append <|endoftext|>: tokenizers itself, with special tokens
    const ref = Tokenizer.fromFile(file);
    expect((await ref.encode('picture 0')).getIds()).toEqual([261, 32, 48, END_OF_TEXT]);
    expect(ref.getVocabSize(true)).toBe(hf.vocabSize);
  });

  test('agrees with tokenizers on random text (seeded), and decode(encode(x)) == x', async () => {
    const hf = await loadHfTokenizer(file);
    const ref = Tokenizer.fromFile(file);
    const pieces = ['picture', 'pic', 'ture', 'a', ' ', '  ', '\n', '\t', 'café', '红色', '🐷', '0', '42', '!', 'urepict'];
    const rng = new Rng(8);
    for (let n = 0; n < 100; n++) {
      let text = '';
      for (let k = rng.int(8); k >= 0; k--) text += pieces[rng.int(pieces.length)];
      const ids = await hf.encode(text);
      expect({ text, ids }).toEqual({ text, ids: (await ref.encode(text, null, { addSpecialTokens: false })).getIds() });
      expect(await hf.decode(ids)).toBe(text);
    }
  });

  test('errors name the file: missing, not JSON, not a tokenizer.json, one tokenizers rejects; ids outside the vocabulary', async () => {
    const missing = path.join(dir, 'nope.json');
    await expect(loadHfTokenizer(missing)).rejects.toMatchObject({ code: 'FILE_NOT_FOUND', message: expect.stringContaining(`Could not read the tokenizer ${missing}`) });
    const bad = path.join(dir, 'bad.json');
    await fsp.writeFile(bad, '{"model": ');
    await expect(loadHfTokenizer(bad)).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining(`The tokenizer ${bad} is not valid JSON`) });
    const noModel = path.join(dir, 'no-model.json');
    await fsp.writeFile(noModel, '{"vocab": {"a": 0}}');
    await expect(loadHfTokenizer(noModel)).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining(`The tokenizer ${noModel} is not a Hugging Face tokenizer.json`) });
    const unknownType = path.join(dir, 'unknown.json');
    await fsp.writeFile(unknownType, JSON.stringify({ ...JSON.parse(tinyByteBpeJson()), model: { type: 'NoSuchModel', vocab: { a: 0 } } }));
    await expect(loadHfTokenizer(unknownType)).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining(`The tokenizers package could not load ${unknownType}`) });
    const hf = await loadHfTokenizer(file);
    await expect(hf.decode([1, 263])).rejects.toThrow(`Expected ids in 0..262 to decode with ${file} but received 263`);
  });

  test('without the tokenizers package: a clear error that says how to install it', async () => {
    const absent = (id: string): never => {
      const err = new Error(`Cannot find module '${id}'\nRequire stack: ...`) as NodeJS.ErrnoException;
      err.code = 'MODULE_NOT_FOUND';
      throw err;
    };
    expect(() => requireTokenizers(absent)).toThrow('needs the optional package `tokenizers`, which is not installed; run `npm install tokenizers`');
    await expect(loadHfTokenizer(file, { load: absent })).rejects.toMatchObject({ code: 'FILE_NOT_FOUND', message: expect.stringContaining('npm install tokenizers') });
    const broken = (): never => {
      throw new Error('libc mismatch');
    };
    expect(() => requireTokenizers(broken)).toThrow('The package `tokenizers` is installed but failed to load: libc mismatch');
    expect(() => requireTokenizers(() => ({}))).toThrow('has no Tokenizer.fromString');
  });
});
