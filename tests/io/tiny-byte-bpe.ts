/**
 * A tiny byte-level BPE tokenizer.json written by hand (GPT-2 style: ids
 * 0..255 are the bytes, spelled with GPT-2's byte-to-character table), with
 * six merges that spell "picture", an `<|endoftext|>` special token (id 262)
 * and a post-processor that appends it (so that "no special tokens added" is
 * visible). Shared by tests/io/hf-tokenizer.test.ts and the CLI test.
 *
 * Worked example: "picture 0" -> pre-tokens "picture", " 0";
 *   p i -> pi (256), c t -> ct (257), pi ct -> pict (258), u r -> ur (259),
 *   ur e -> ure (260), pict ure -> picture (261); " 0" -> bytes 32, 48.
 *   ids [261, 32, 48]; with special tokens [261, 32, 48, 262].
 */
import { byteLevelAlphabet } from '../../src/core/export-tokens';

export const TINY_MERGES: [string, string][] = [
  ['p', 'i'],
  ['c', 't'],
  ['pi', 'ct'],
  ['u', 'r'],
  ['ur', 'e'],
  ['pict', 'ure'],
];

export const END_OF_TEXT = 262;

export function tinyByteBpeJson(): string {
  const chars = byteLevelAlphabet();
  const vocab: Record<string, number> = {};
  chars.forEach((c, b) => (vocab[c] = b));
  TINY_MERGES.forEach(([a, b], i) => (vocab[a + b] = 256 + i));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true };
  const eot = '<|endoftext|>';
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{ id: END_OF_TEXT, content: eot, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: eot, type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: eot, type_id: 1 } }],
      special_tokens: { [eot]: { id: eot, ids: [END_OF_TEXT], tokens: [eot] } },
    },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: TINY_MERGES.map(([a, b]) => `${a} ${b}`),
    },
  });
}
