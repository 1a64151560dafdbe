import { VtokError } from '../../src/core/errors';
import { Rng } from '../../src/core/random';
import { TextBpe } from '../../src/core/text-bpe';
import { DecodedSegment, Segment, Vocab } from '../../src/core/vocab';
import { Letters } from '../helpers/letters';

const CAPTIONS = ['a red pig', 'a blue cat', 'a green frog', 'a grey mouse'];

function makeVocab(): Vocab {
  return Vocab.create({ text: TextBpe.train(CAPTIONS, { vocabSize: 270 }), visual: { baseCodes: 16, merges: 4 } });
}


describe('Vocab layout', () => {
  it('puts specials, then text, then visual ids in one space', () => {
    const v = Vocab.create({ text: new Letters(), visual: { baseCodes: 8, merges: 2 } });
    expect(v.specials).toEqual(['<pad>', '<bos>', '<eos>', '<boi>', '<eoi>', '<gen>', '<und>']);
    expect([v.pad, v.bos, v.eos, v.boi, v.eoi, v.gen, v.und]).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(v.ranges).toEqual({ special: { start: 0, end: 7 }, text: { start: 7, end: 33 }, visual: { start: 33, end: 43 } });
    expect(v.size).toBe(43);
    // Hand-worked: "ab" -> text ids 0, 1 -> 7, 8; visual 0, 9 -> 33, 42.
    const ids = v.encodeSequence([{ special: '<bos>' }, { text: 'ab' }, { image: [0, 9] }, { special: '<eos>' }]);
    expect(Array.from(ids)).toEqual([1, 7, 8, 3, 33, 42, 4, 2]);
    expect(v.kindOf(6)).toBe('special');
    expect(v.kindOf(7)).toBe('text');
    expect(v.kindOf(42)).toBe('visual');
    expect([v.describeId(3), v.describeId(8), v.describeId(42)]).toEqual(['<boi>', 'text:1', 'visual:9']);
  });

  it('takes extra specials after the base ones', () => {
    const v = Vocab.create({ text: new Letters(), visual: { baseCodes: 8, merges: 0 }, extraSpecials: ['<cls>', '<sep>'] });
    expect(v.specialId('<cls>')).toBe(7);
    expect(v.specialId('<sep>')).toBe(8);
    expect(v.ranges.text.start).toBe(9);
    expect(Array.from(v.encodeSequence([{ special: '<sep>' }, { text: 'c' }]))).toEqual([8, 11]);
  });

  it('builds masks of id parts for constrained sampling', () => {
    const v = Vocab.create({ text: new Letters(), visual: { baseCodes: 8, merges: 2 } });
    const m = v.maskOf(['visual'], ['<eoi>']);
    expect(m.length).toBe(43);
    expect(Array.from(m).reduce((a, b) => a + b, 0)).toBe(11);
    expect(m[v.eoi]).toBe(1);
    expect(m[32]).toBe(0);
    expect(m[33]).toBe(1);
  });
});

describe('Vocab.encodeSequence / decodeSequence', () => {
  it('round-trips a mixed sequence exactly', () => {
    const v = makeVocab();
    const segs: Segment[] = [
      { special: '<bos>' },
      { special: '<gen>' },
      { text: 'a red pig 🐷 红' },
      { image: [0, 15, 16, 19, 3] },
      { special: '<eos>' },
    ];
    const ids = v.encodeSequence(segs);
    const back = v.decodeSequence(ids);
    expect(back).toEqual([
      { special: '<bos>' },
      { special: '<gen>' },
      { text: 'a red pig 🐷 红' },
      { image: Int32Array.from([0, 15, 16, 19, 3]) },
      { special: '<eos>' },
    ]);
    expect(Array.from(v.encodeSequence(back as Segment[]))).toEqual(Array.from(ids));
  });

  it('round-trips random sequences (seeded property test)', () => {
    const v = makeVocab();
    const rng = new Rng(3);
    const nVisual = 20;
    for (let trial = 0; trial < 300; trial++) {
      const segs: DecodedSegment[] = [];
      const n = rng.int(6);
      for (let i = 0; i < n; i++) {
        const choice = rng.int(3);
        const prevText = segs.length > 0 && 'text' in segs[segs.length - 1];
        if (choice === 0 && !prevText) {
          let s = '';
          const len = 1 + rng.int(12);
          for (let k = 0; k < len; k++) s += String.fromCodePoint([97 + rng.int(26), 0x20, 0x4e00 + rng.int(50), 0x1f400 + rng.int(50)][rng.int(4)]);
          segs.push({ text: s });
        } else if (choice === 1) {
          segs.push({ image: Int32Array.from({ length: rng.int(10) }, () => rng.int(nVisual)) });
        } else {
          segs.push({ special: ['<bos>', '<eos>', '<gen>', '<und>', '<pad>'][rng.int(5)] });
        }
      }
      const ids = v.encodeSequence(segs as Segment[]);
      expect(v.decodeSequence(ids)).toEqual(segs);
    }
  });

  it('keeps an open image for prompts when asked', () => {
    const v = makeVocab();
    const ids = v.encodeSequence([{ text: 'a cat' }, { image: [1, 2], open: true }]);
    expect(ids[ids.length - 1]).toBe(v.ranges.visual.start + 2);
    expect(v.decodeSequence(ids, { allowOpenImage: true })).toEqual([{ text: 'a cat' }, { image: Int32Array.from([1, 2]), open: true }]);
    expect(() => v.decodeSequence(ids)).toThrow(
      `Malformed stream: the image opened at position ${ids.length - 3} is not closed by <eoi> before the end of the stream (length ${ids.length})`,
    );
  });

  it('gives exact VOCAB errors naming the position and the id', () => {
    const v = makeVocab();
    const V = v.size;
    const t = v.ranges.text.start + 97;
    const x = v.ranges.visual.start + 1;
    const err = (f: () => unknown): VtokError => {
      try {
        f();
      } catch (e) {
        return e as VtokError;
      }
      throw new Error('did not throw');
    };
    const e1 = err(() => v.decodeSequence([v.bos, V]));
    expect(e1).toBeInstanceOf(VtokError);
    expect(e1.code).toBe('VOCAB');
    expect(e1.subject).toBe(String(V));
    expect(e1.message).toBe(`Expected an id between 0 and ${V - 1} at position 1 but received ${V} of type number`);
    expect(() => v.decodeSequence([-1])).toThrow(`Expected an id between 0 and ${V - 1} at position 0 but received -1 of type number`);
    expect(() => v.decodeSequence([2.5])).toThrow(`Expected an id between 0 and ${V - 1} at position 0 but received 2.5 of type number`);
    expect(() => v.decodeSequence([v.bos, t, v.eoi])).toThrow(`Malformed stream: <eoi> (id ${v.eoi}) at position 2 closes no image: no open <boi> before it`);
    expect(() => v.decodeSequence([v.boi, x, v.boi])).toThrow(
      `Malformed stream: <boi> (id ${v.boi}) at position 2 opens an image inside the image opened at position 0`,
    );
    expect(() => v.decodeSequence([t, v.boi, x, t])).toThrow(
      `Malformed stream: text id ${t} at position 3 is inside the image opened at position 1; only visual ids and <eoi> may follow <boi>`,
    );
    expect(() => v.decodeSequence([v.boi, v.eos])).toThrow(
      `Malformed stream: special <eos> (id ${v.eos}) at position 1 is inside the image opened at position 0; only visual ids and <eoi> may follow <boi>`,
    );
    expect(() => v.decodeSequence([v.bos, x])).toThrow(`Malformed stream: visual id ${x} at position 1 is outside an image (no open <boi> before it)`);
    expect(() => v.encodeSequence([{ image: [0, 20] }])).toThrow('Expected a visual id between 0 and 19 at index 1 of segment 0 but received 20 of type number');
    expect(() => v.encodeSequence([{ special: '<cls>' }])).toThrow('Unknown special token "<cls>"; the specials are <pad> <bos> <eos> <boi> <eoi> <gen> <und>');
    expect(() => v.encodeSequence([{ txt: 'a' } as never])).toThrow('Expected segment 0 to be {text: string}, {image: ids} or {special: name} but received a value of type object');
  });

  it('rejects bad options', () => {
    const text = new Letters();
    expect(() => Vocab.create({ text, visual: { baseCodes: 0, merges: 0 } })).toThrow('Expected integer between 1 and 9007199254740991 for visual.baseCodes but received 0 of type number');
    expect(() => Vocab.create({ text, visual: { baseCodes: 4, merges: 0 }, extraSpecials: ['cls'] })).toThrow(
      'Expected names like "<name>" (angle brackets, no spaces) for extraSpecials but received "cls" of type string',
    );
    expect(() => Vocab.create({ text, visual: { baseCodes: 4, merges: 0 }, extraSpecials: ['<bos>'] })).toThrow(
      'Expected names not already special for extraSpecials but received "<bos>" of type string',
    );
    expect(() => Vocab.create({ text, visual: { baseCodes: 4, merges: 0 }, special: [] } as never)).toThrow(
      'Unknown option "special" for Vocab.create; known options are text, visual, extraSpecials',
    );
  });
});

describe('Vocab serialization', () => {
  it('round-trips through a plain object with typed arrays', () => {
    const v = Vocab.create({ text: TextBpe.train(CAPTIONS, { vocabSize: 270 }), visual: { baseCodes: 16, merges: 4 }, extraSpecials: ['<cls>'] });
    const data = v.serialize();
    expect(data.format).toBe('vtok-vocab');
    expect(data.version).toBe(1);
    expect(data.text.merges).toBeInstanceOf(Int32Array);
    // Through JSON-free structured clone, as a store or worker would copy it.
    const again = Vocab.deserialize(structuredClone(data));
    expect(again.size).toBe(v.size);
    expect(again.specials).toEqual(v.specials);
    const segs: Segment[] = [{ special: '<cls>' }, { text: 'a grey frog' }, { image: [3, 19] }];
    expect(Array.from(again.encodeSequence(segs))).toEqual(Array.from(v.encodeSequence(segs)));
  });

  it('loads other text tokenizer kinds through a loader, and names a missing one', () => {
    const v = Vocab.create({ text: new Letters(), visual: { baseCodes: 4, merges: 0 } });
    const data = v.serialize();
    expect(() => Vocab.deserialize(data)).toThrow('No loader for text tokenizer kind "letters"; known kinds are byte-bpe');
    const again = Vocab.deserialize(data, { letters: () => new Letters() });
    expect(again.decodeSequence(again.encodeSequence([{ text: 'cab' }]))).toEqual([{ text: 'cab' }]);
    expect(() => Vocab.deserialize({ ...data, format: 'x' })).toThrow('Expected a serialized vocabulary with format "vtok-vocab"');
    expect(() => Vocab.deserialize({ ...data, version: 9 })).toThrow('Vocabulary version 9 is not supported (this build reads version 1)');
    expect(() => Vocab.deserialize({ ...data, specials: ['<pad>'] })).toThrow(
      "Expected the vocabulary's specials to start with <pad> <bos> <eos> <boi> <eoi> <gen> <und>",
    );
  });
});
