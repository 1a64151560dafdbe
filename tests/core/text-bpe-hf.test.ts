// Agreement with an independent reference: Hugging Face `tokenizers` (Rust,
// via its npm binding), given vtok's merges as a byte-level BPE tokenizer.json,
// must produce the same ids as TextBpe.encode.
//
// Byte-level BPE in `tokenizers` stores tokens as strings over GPT-2's
// byte-to-character table, and its pre-tokenizer regex also splits English
// contractions ('s, 't, 're, ...); vtok's does not, so the texts here contain no
// apostrophes. Everything else (letters, digits, symbols, whitespace runs,
// merges applied by rank) must match exactly.
import { Tokenizer } from 'tokenizers';
import { Rng } from '../../src/core/random';
import { TextBpe } from '../../src/core/text-bpe';

/** GPT-2's table from byte to a printable character (printable bytes map to themselves). */
function byteToChar(): string[] {
  const table = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    table[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return table;
}

function toTokenizerJson(bpe: TextBpe): string {
  const chars = byteToChar();
  const name = (id: number): string => Array.from(bpe.tokenBytes(id), (b) => chars[b]).join('');
  const vocab: Record<string, number> = {};
  for (let id = 0; id < bpe.size; id++) {
    const n = name(id);
    if (n in vocab) throw new Error(`two ids spell ${n}`); // the reference cannot hold duplicates
    vocab[n] = id;
  }
  const m = bpe.serialize().merges;
  const merges: string[] = [];
  for (let i = 0; i < m.length; i += 2) merges.push(`${name(m[i])} ${name(m[i + 1])}`);
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true };
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: byteLevel,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges },
  });
}

function randomText(rng: Rng): string {
  const words = ['the', 'red', 'pig', 'sleeps', 'blue', 'cat', 'café', 'naïve', '红色', '猪', '🐷', 'T-shirt/top', 'Ankle', 'boot', '2024', '3.14', '!!', '(ok)'];
  const spaces = [' ', ' ', ' ', '  ', '\n', '\t', ''];
  let s = '';
  const n = 1 + rng.int(12);
  for (let i = 0; i < n; i++) s += words[rng.int(words.length)] + spaces[rng.int(spaces.length)];
  return s;
}

it('encodes exactly as Hugging Face tokenizers with the same merges', async () => {
  const rng = new Rng(21);
  const corpus = Array.from({ length: 300 }, () => randomText(rng));
  const bpe = TextBpe.train(corpus, { vocabSize: 400 });
  expect(bpe.mergeCount).toBeGreaterThan(60);
  const hf = Tokenizer.fromString(toTokenizerJson(bpe));
  const texts = [...Array.from({ length: 200 }, () => randomText(rng)), 'Trouser', 'a   b', ' leading', 'trailing  ', '\n\n', '🐷🐷 红色的猪'];
  for (const text of texts) {
    const ids = bpe.encode(text);
    const ref = (await hf.encode(text)).getIds();
    expect({ text, ids }).toEqual({ text, ids: ref });
    expect(await hf.decode(ids, false)).toBe(text);
  }
});
