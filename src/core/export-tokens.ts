/**
 * Tokens for LLM training code, as plain data: the token strings of an
 * image, documents built from a template, the id layout shared by the three
 * export formats, and Hugging Face `tokenizer.json` files extended with the
 * visual tokens. (Files are written by src/pipeline/export.ts.)
 *
 * One id layout for every format, so that JSONL text, the binary id stream
 * and the exported tokenizer.json always agree:
 *   [0, T)              text ids of the text tokenizer (T = 256 byte ids for the
 *                       fresh byte-level tokenizer; for a given tokenizer.json,
 *                       T = 1 + its largest id)
 *   T                   `<|img_start|>`
 *   T + 1               `<|img_end|>`
 *   T + 2 + v           `<|vis_v|>`, visual id v in 0..V-1 (V = codebook size
 *                       K for code grids, or the BPE vocabulary size)
 * So tokenizing an exported JSONL line with the exported tokenizer.json gives
 * exactly the ids of that document in the binary export.
 *
 * Example (template '{caption}{image}', fresh byte-level tokenizer, a 1 x 2 grid [5, 9]):
 *   text: 'a pig<|img_start|><|vis_5|><|vis_9|><|img_end|>'
 *   ids:  [97, 32, 112, 105, 103, 256, 258 + 5, 258 + 9, 257]
 *   i.e.  [97, 32, 112, 105, 103, 256, 263, 267, 257]
 */
import { VtokError, describeValue, invalidOption } from './errors';

/** The names of the image tokens. */
export interface TokenNames {
  /** Opens an image. Default '<|img_start|>'. */
  imageStart: string;
  /** Closes an image. Default '<|img_end|>'. */
  imageEnd: string;
  /** Name of visual id v: `{id}` is replaced by v. Default '<|vis_{id}|>'. */
  visualToken: string;
}

export const DEFAULT_TOKEN_NAMES: TokenNames = { imageStart: '<|img_start|>', imageEnd: '<|img_end|>', visualToken: '<|vis_{id}|>' };

/** Checks token names: non-empty, the visual pattern holds `{id}` once, no name is a prefix of another kind. */
export function checkTokenNames(n: TokenNames): TokenNames {
  for (const k of ['imageStart', 'imageEnd', 'visualToken'] as const) {
    if (typeof n[k] !== 'string' || n[k] === '' || /\s/.test(n[k])) throw invalidOption(k, 'a non-empty token name without whitespace', n[k]);
  }
  if (n.visualToken.split('{id}').length !== 2) throw invalidOption('visualToken', 'a name with "{id}" exactly once, e.g. "<|vis_{id}|>"', n.visualToken);
  if (n.imageStart === n.imageEnd) throw invalidOption('imageEnd', `a name other than imageStart`, n.imageEnd);
  return n;
}

export function visualTokenName(names: TokenNames, v: number): string {
  return names.visualToken.replace('{id}', String(v));
}

/** The token string of one image: `<|img_start|><|vis_a|><|vis_b|>...<|img_end|>`. */
export function imageTokenString(visual: ArrayLike<number>, names: TokenNames): string {
  const parts: string[] = [names.imageStart];
  for (let i = 0; i < visual.length; i++) parts.push(visualTokenName(names, visual[i]));
  parts.push(names.imageEnd);
  return parts.join('');
}

/** A piece of a document. */
export type DocSegment = { text: string } | { image: true };

/** The fields a template can use. */
export interface TemplateFields {
  key: string;
  label: string | number | null;
  caption: string | null;
}

const PLACEHOLDER = /\{(image|caption|label|key)\}/g;

/**
 * Checks a document template: text with the placeholders {image} (exactly
 * once), {caption} (the caption, or the label when there is no caption, or
 * nothing), {label} and {key}.
 */
export function checkTemplate(template: string): string {
  if (typeof template !== 'string') throw invalidOption('template', 'a string with {image} once', template);
  const images = template.split('{image}').length - 1;
  if (images !== 1) throw invalidOption('template', 'a string with {image} exactly once (and optionally {caption}, {label}, {key})', template);
  const unknown = template.replace(PLACEHOLDER, '').match(/\{[a-z_]+\}/);
  if (unknown) throw invalidOption('template', `placeholders among {image}, {caption}, {label}, {key} only (found ${unknown[0]})`, template);
  return template;
}

/**
 * Fills a template: the text around the image, with empty pieces left out.
 *
 * Example: renderTemplate('{caption}: {image}', { key: 'k', label: 3, caption: null })
 *   -> [{ text: '3: ' }, { image: true }]
 */
export function renderTemplate(template: string, f: TemplateFields): DocSegment[] {
  const out: DocSegment[] = [];
  const [before, after] = template.split('{image}');
  const fill = (t: string): string =>
    t.replace(PLACEHOLDER, (_, name: string) => {
      if (name === 'key') return f.key;
      if (name === 'label') return f.label === null ? '' : String(f.label);
      return f.caption ?? (f.label === null ? '' : String(f.label));
    });
  const a = fill(before);
  const b = fill(after);
  if (a !== '') out.push({ text: a });
  out.push({ image: true });
  if (b !== '') out.push({ text: b });
  return out;
}

/** The id layout of an export (see the top of this file). */
export interface ExportLayout {
  /** Number of text ids T. */
  textVocab: number;
  imageStart: number;
  imageEnd: number;
  /** Id of visual token 0. */
  visualOffset: number;
  /** Number of visual ids V. */
  visualCount: number;
  /** Total ids: T + 2 + V. */
  size: number;
}

export function exportLayout(textVocab: number, visualCount: number): ExportLayout {
  return { textVocab, imageStart: textVocab, imageEnd: textVocab + 1, visualOffset: textVocab + 2, visualCount, size: textVocab + 2 + visualCount };
}

/** The whole text of a document, image as token strings. */
export function documentText(segments: readonly DocSegment[], visual: ArrayLike<number>, names: TokenNames): string {
  return segments.map((s) => ('text' in s ? s.text : imageTokenString(visual, names))).join('');
}

/** The ids of a document; text pieces go through `encodeText` (ids in [0, T)). */
export function documentIds(segments: readonly DocSegment[], visual: ArrayLike<number>, layout: ExportLayout, encodeText: (text: string) => ArrayLike<number>): number[] {
  const out: number[] = [];
  for (const s of segments) {
    if ('text' in s) {
      const ids = encodeText(s.text);
      for (let i = 0; i < ids.length; i++) {
        const t = ids[i];
        if (!(Number.isInteger(t) && t >= 0 && t < layout.textVocab)) {
          throw new VtokError('VOCAB', `The text encoder returned id ${describeValue(t)} for ${JSON.stringify(s.text.slice(0, 40))}; text ids must be in 0..${layout.textVocab - 1}`);
        }
        out.push(t);
      }
    } else {
      out.push(layout.imageStart);
      for (let i = 0; i < visual.length; i++) {
        const v = visual[i];
        if (!(v >= 0 && v < layout.visualCount)) throw new VtokError('VOCAB', `Visual id ${describeValue(v)} is outside 0..${layout.visualCount - 1}`);
        out.push(layout.visualOffset + v);
      }
      out.push(layout.imageEnd);
    }
  }
  return out;
}

const utf8 = new TextEncoder();

/** Text -> ids of the fresh byte-level tokenizer: the UTF-8 bytes. */
export function byteLevelIds(text: string): Uint8Array {
  return utf8.encode(text);
}

/**
 * GPT-2's byte-to-character table of byte-level BPE: printable bytes map to
 * themselves, the others to U+0100 onwards, so every byte has a visible
 * character. Entry b is the character of byte b.
 */
export function byteLevelAlphabet(): string[] {
  const keep: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) keep.push(b);
  for (let b = 0xa1; b <= 0xac; b++) keep.push(b);
  for (let b = 0xae; b <= 0xff; b++) keep.push(b);
  const chars: string[] = new Array(256);
  const kept = new Set(keep);
  let extra = 0;
  for (let b = 0; b < 256; b++) chars[b] = kept.has(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  return chars;
}

/** A Hugging Face tokenizer.json, as parsed JSON (only the fields vtok reads are typed). */
export interface HfTokenizerJson {
  version?: string;
  added_tokens?: HfAddedToken[];
  model: { type?: string; vocab?: Record<string, number> | [string, number][]; [k: string]: unknown };
  [k: string]: unknown;
}

export interface HfAddedToken {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/**
 * A fresh byte-level tokenizer.json: a BPE model with the 256 byte symbols
 * (id = byte value) and no merges, GPT-2's ByteLevel pre-tokenizer and
 * decoder. Every string encodes to its UTF-8 bytes, so text survives exactly.
 */
export function freshTokenizerJson(): HfTokenizerJson {
  const alphabet = byteLevelAlphabet();
  const vocab: Record<string, number> = {};
  alphabet.forEach((c, b) => (vocab[c] = b));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/** 1 + the largest id of a tokenizer.json (model vocabulary and added tokens). */
export function tokenizerJsonSize(tok: HfTokenizerJson): number {
  if (tok === null || typeof tok !== 'object' || tok.model === null || typeof tok.model !== 'object') {
    throw new VtokError('VOCAB', `Expected a Hugging Face tokenizer.json object with a "model" but received ${describeValue(tok)}`);
  }
  let max = -1;
  const vocab = tok.model.vocab;
  if (Array.isArray(vocab)) {
    max = vocab.length - 1; // Unigram: [piece, score] by id
  } else if (vocab && typeof vocab === 'object') {
    for (const id of Object.values(vocab)) if (typeof id === 'number' && id > max) max = id;
  } else {
    throw new VtokError('VOCAB', `tokenizer.json model type ${describeValue(tok.model.type)} has no vocab that vtok can read`);
  }
  for (const t of tok.added_tokens ?? []) if (t.id > max) max = t.id;
  return max + 1;
}

function tokenStrings(tok: HfTokenizerJson): Set<string> {
  const out = new Set<string>();
  const vocab = tok.model.vocab;
  if (Array.isArray(vocab)) for (const [piece] of vocab) out.add(piece);
  else if (vocab) for (const k of Object.keys(vocab)) out.add(k);
  for (const t of tok.added_tokens ?? []) out.add(t.content);
  return out;
}

/**
 * Extends a tokenizer.json with the image tokens as added tokens (ids T,
 * T + 1, T + 2 + v; see the top of this file). Added tokens are matched on
 * the raw text before normalization (`normalized: false`) and marked special
 * (decode with skip_special_tokens=False to see them). The base is not
 * modified; the result is a new object.
 */
export function extendTokenizerJson(base: HfTokenizerJson, visualCount: number, names: TokenNames): { json: HfTokenizerJson; layout: ExportLayout } {
  checkTokenNames(names);
  const T = tokenizerJsonSize(base);
  const layout = exportLayout(T, visualCount);
  const existing = tokenStrings(base);
  const added: HfAddedToken[] = [];
  const add = (id: number, content: string): void => {
    if (existing.has(content)) throw new VtokError('VOCAB', `The base tokenizer already has a token ${JSON.stringify(content)}; choose other image token names`);
    added.push({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  };
  add(layout.imageStart, names.imageStart);
  add(layout.imageEnd, names.imageEnd);
  for (let v = 0; v < visualCount; v++) add(layout.visualOffset + v, visualTokenName(names, v));
  const json: HfTokenizerJson = { ...base, added_tokens: [...(base.added_tokens ?? []), ...added] };
  return { json, layout };
}

/**
 * A RegExp that finds image token names inside text, to refuse captions that
 * would be read back as image tokens.
 */
export function tokenNamePattern(names: TokenNames): RegExp {
  const esc = (s: string): string => s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
  const [pre, post] = names.visualToken.split('{id}');
  return new RegExp(`${esc(names.imageStart)}|${esc(names.imageEnd)}|${esc(pre)}\\d+${esc(post)}`);
}
