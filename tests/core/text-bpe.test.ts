import { VtokError } from '../../src/core/errors';
import { Rng } from '../../src/core/random';
import { TextBpe, countPairs, mergePair, pairKey, splitChunks } from '../../src/core/text-bpe';

/** Random well-formed strings from a mix of scripts: ASCII, Latin-1, CJK, emoji (astral), combining marks, whitespace. */
function randomText(rng: Rng, maxLength: number): string {
  const pools: (() => number)[] = [
    () => 0x20 + rng.int(0x5f), // printable ASCII
    () => 0xc0 + rng.int(0x40), // Latin-1 letters
    () => 0x4e00 + rng.int(0x200), // CJK
    () => 0x1f300 + rng.int(0x300), // emoji (4 UTF-8 bytes, surrogate pair in UTF-16)
    () => 0x300 + rng.int(0x30), // combining marks
    () => [0x20, 0x0a, 0x09, 0x3000][rng.int(4)], // spaces, newline, tab, ideographic space
    () => 0x30 + rng.int(10), // digits
  ];
  const n = rng.int(maxLength + 1);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCodePoint(pools[rng.int(pools.length)]());
  return s;
}

describe('countPairs and mergePair (the two pure BPE steps)', () => {
  it('count adjacent pairs', () => {
    const counts = countPairs([1, 2, 3, 1, 2]);
    expect(counts.get(pairKey(1, 2))).toBe(2);
    expect(counts.get(pairKey(2, 3))).toBe(1);
    expect(counts.get(pairKey(3, 1))).toBe(1);
    expect(counts.size).toBe(3);
  });

  it('merge non-overlapping occurrences left to right', () => {
    expect(mergePair([1, 1, 1, 2], 1, 1, 9)).toEqual([9, 1, 2]);
    expect(mergePair([1, 2, 1, 2, 1], 1, 2, 7)).toEqual([7, 7, 1]);
    expect(mergePair([], 1, 2, 7)).toEqual([]);
  });
});

describe('TextBpe', () => {
  it('learns the Wikipedia example: aaabdaaabac -> XdXac', () => {
    const bpe = TextBpe.train(['aaabdaaabac'], { vocabSize: 259, minFrequency: 1 });
    const a = 97;
    const b = 98;
    // (a,a) -> 256 "Z", then (a,b) -> 257 "Y" (ties with (Z,a) at 2; the smaller pair wins), then (Z,Y) -> 258 "X".
    expect(Array.from(bpe.serialize().merges)).toEqual([a, a, a, b, 256, 257]);
    expect(bpe.encode('aaabdaaabac')).toEqual([258, 100, 258, 97, 99]);
    expect(bpe.decode([258, 100, 258, 97, 99])).toBe('aaabdaaabac');
    expect(bpe.size).toBe(259);
    expect(Array.from(bpe.tokenBytes(258))).toEqual([a, a, a, b]);
  });

  it('stops at minFrequency and never merges across chunks', () => {
    const bpe = TextBpe.train(['ab ab ab', 'ab'], { vocabSize: 300, minFrequency: 2 });
    // chunks: "ab" x2, " ab" x2. Pairs: (a,b) 4, (' ',a) 2 -> merge ab; then (' ', ab) 2 -> merge; then nothing >= 2.
    expect(bpe.mergeCount).toBe(2);
    expect(bpe.encode('ab ab')).toEqual([256, 257]);
    expect(bpe.decode([256, 257])).toBe('ab ab');
    // "b a" never becomes one token: no merge crosses the space before a word.
    expect(TextBpe.train(['b a b a b a'], { vocabSize: 300 }).encode('b a').length).toBe(2);
  });

  it('splits text into chunks that concatenate to the input', () => {
    expect(splitChunks("Hello, world! It's 2024  ok\n")).toEqual(['Hello', ',', ' world', '!', ' It', "'", 's', ' 2024', ' ', ' ok', '\n']);
    const rng = new Rng(5);
    for (let i = 0; i < 200; i++) {
      const s = randomText(rng, 40);
      expect(splitChunks(s).join('')).toBe(s);
    }
  });

  it('round-trips any well-formed string exactly (seeded property test)', () => {
    const rng = new Rng(11);
    const corpus = Array.from({ length: 200 }, () => randomText(rng, 30));
    corpus.push('a red pig', 'a blue cat', '红色的猪 🐷', 'naïve café');
    const bpe = TextBpe.train(corpus, { vocabSize: 600 });
    expect(bpe.mergeCount).toBeGreaterThan(50);
    for (let i = 0; i < 500; i++) {
      const s = randomText(rng, 60);
      const ids = bpe.encode(s);
      expect(bpe.decode(ids)).toBe(s);
      for (const id of ids) expect(id >= 0 && id < bpe.size).toBe(true);
    }
    for (const s of ['', ' ', '🐷🐷', '红色的猪 🐷', 'e\u0301', '\n\n  \t']) expect(bpe.decode(bpe.encode(s))).toBe(s);
  });

  it('compresses its training text and is deterministic', () => {
    const corpus = ['a red pig', 'a red cat', 'a blue pig', 'a blue cat', 'the red pig sleeps'];
    const a = TextBpe.train(corpus, { vocabSize: 280 });
    const b = TextBpe.train(corpus, { vocabSize: 280 });
    expect(Array.from(a.serialize().merges)).toEqual(Array.from(b.serialize().merges));
    const text = corpus.join(' ');
    expect(a.encode(text).length).toBeLessThan(Buffer.byteLength(text) / 2);
  });

  it('serializes and loads again', () => {
    const bpe = TextBpe.train(['one two three two one'], { vocabSize: 270 });
    const data = bpe.serialize();
    expect(data.format).toBe('vtok-text-bpe');
    expect(data.version).toBe(1);
    expect(data.merges).toBeInstanceOf(Int32Array);
    const again = TextBpe.deserialize(data);
    expect(again.encode('two one three')).toEqual(bpe.encode('two one three'));
    expect(TextBpe.deserialize({ ...data, merges: Array.from(data.merges) }).size).toBe(bpe.size);
  });

  it('gives exact errors for bad input', () => {
    const bpe = TextBpe.train(['abc abc'], { vocabSize: 260 });
    expect(() => bpe.encode('a\ud800b')).toThrow(
      new VtokError('INVALID_INPUT', 'Expected well-formed text but found a lone UTF-16 surrogate (0xd800) at index 1; it has no UTF-8 encoding'),
    );
    expect(() => bpe.decode([97, 9999])).toThrow(`Expected a text id between 0 and ${bpe.size - 1} at position 1 but received 9999`);
    expect(() => bpe.decode([1.5])).toThrow(`Expected a text id between 0 and ${bpe.size - 1} at position 0 but received 1.5`);
    expect(() => TextBpe.train(['x'], { vocabSize: 100 })).toThrow('Expected integer between 256 and 4194304 for vocabSize but received 100 of type number');
    expect(() => TextBpe.train(['x'], { vocabSze: 300 } as never)).toThrow('Unknown option "vocabSze" for TextBpe.train; known options are vocabSize, minFrequency');
    expect(() => TextBpe.fromMerges([97, 98, 300, 1])).toThrow('Merge 1 joins (300, 1) but a merge may only join ids below its own id 257');
    expect(() => TextBpe.fromMerges([97, 98, 97, 98])).toThrow('Merge 1 repeats the pair (97, 98) of merge 0');
    expect(() => TextBpe.fromMerges([97])).toThrow('Expected an even number of ids (pairs) for merges but received an array of length 1');
    expect(() => TextBpe.deserialize({ format: 'other' })).toThrow('Expected a serialized text BPE with format "vtok-text-bpe"');
    expect(() => TextBpe.deserialize({ ...bpe.serialize(), version: 2 })).toThrow('Text BPE version 2 is not supported (this build reads version 1)');
    expect(() => TextBpe.deserialize({ ...bpe.serialize(), merges: 'x' })).toThrow(
      'Expected merges of a serialized text BPE to be an integer array but received string',
    );
  });
});
