/**
 * The unified vocabulary: one id space for special, text and visual tokens,
 * so one autoregressive model reads and writes both text and images
 * (Chameleon, Emu3: "one stream"; LlamaGen for the image part).
 *
 * Layout (ids are contiguous, in this order):
 *   [0, S)          special tokens, `<pad>` = 0 always, then `<bos>`, `<eos>`,
 *                   `<boi>`, `<eoi>`, `<gen>`, `<und>`, then any extra specials
 *   [S, S+T)        text ids: text tokenizer id t is S + t
 *   [S+T, S+T+K+M)  visual ids: base code k is S+T+k, visual BPE merge j is S+T+K+j
 *
 * A stream is well formed when every image is `<boi>` visual* `<eoi>`: visual
 * ids only inside an image, nothing but visual ids and `<eoi>` inside one.
 * `<gen>` and `<und>` mark the task of a stream (`<bos> <gen> text <boi> image
 * <eoi> <eos>`, `<bos> <und> <boi> image <eoi> text <eos>`; see ar-streams.ts).
 *
 * Example:
 *   const vocab = Vocab.create({ text: TextBpe.train(captions), visual: { baseCodes: 1024, merges: 256 } });
 *   const ids = vocab.encodeSequence([{ special: '<bos>' }, { text: 'a red pig' }, { image: codes }]);
 *   vocab.decodeSequence(ids);  // [{special:'<bos>'}, {text:'a red pig'}, {image: Int32Array [...]}]
 */

import { VtokError, checkInt, describeValue, invalidOption } from './errors';
import { TextBpe } from './text-bpe';

export const VOCAB_FORMAT = 'vtok-vocab';
export const VOCAB_VERSION = 1;

/** The special tokens every vocabulary has, in id order (`<pad>` is id 0). */
export const BASE_SPECIALS = ['<pad>', '<bos>', '<eos>', '<boi>', '<eoi>', '<gen>', '<und>'] as const;
export type BaseSpecial = (typeof BASE_SPECIALS)[number];

/**
 * A text tokenizer the vocabulary can hold: vtok's byte-level BPE (TextBpe),
 * or an adapter over another tokenizer (for instance a Hugging Face
 * tokenizer.json loaded in src/io). Ids are 0..size-1; decode(encode(s)) must be s.
 */
export interface TextTokenizer {
  /** The factory key under which `serialize()` output is loaded again ('byte-bpe' for TextBpe). */
  readonly kind: string;
  readonly size: number;
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
  serialize(): SerializedTextTokenizer;
}

export interface SerializedTextTokenizer {
  kind: string;
  [key: string]: unknown;
}

/** Loads a serialized text tokenizer of one kind (io registers 'hf-tokenizers', say). */
export type TextTokenizerLoader = (data: SerializedTextTokenizer) => TextTokenizer;

/** The visual part: K base codes of the codebook, then M merged tokens of the visual BPE. */
export interface VisualVocab {
  baseCodes: number;
  merges: number;
}

/** An input segment: text, an image (visual ids 0..K+M-1, wrapped in `<boi>`/`<eoi>`), or a special token by name. */
export type Segment =
  | { text: string }
  /** `open: true` leaves the image unclosed (no `<eoi>`): a prompt that asks the model to draw on. */
  | { image: ArrayLike<number>; open?: boolean }
  | { special: string };

/** A decoded segment. Adjacent text ids decode into one text segment. */
export type DecodedSegment = { text: string } | { image: Int32Array; open?: true } | { special: string };

export interface DecodeOptions {
  /** Accept a stream that ends inside an image (returned with `open: true`). Default false. */
  allowOpenImage?: boolean;
}

/** Which part of the id space an id belongs to. */
export type IdKind = 'special' | 'text' | 'visual';

/** A half-open id range [start, end). */
export interface IdRange {
  start: number;
  end: number;
}

export interface SerializedVocab {
  format: typeof VOCAB_FORMAT;
  version: number;
  specials: string[];
  text: SerializedTextTokenizer;
  visual: VisualVocab;
}

export interface VocabCreateOptions {
  text: TextTokenizer;
  visual: VisualVocab;
  /** Extra special tokens after the base ones (task or class markers), e.g. ['<cls>']. */
  extraSpecials?: readonly string[];
}

const SPECIAL_NAME = /^<[^<>\s]+>$/;

export class Vocab {
  readonly specials: readonly string[];
  readonly text: TextTokenizer;
  readonly visual: Readonly<VisualVocab>;
  /** Id ranges of the three parts. */
  readonly ranges: Readonly<Record<IdKind, IdRange>>;
  /** Total number of ids. */
  readonly size: number;
  readonly pad: number;
  readonly bos: number;
  readonly eos: number;
  readonly boi: number;
  readonly eoi: number;
  readonly gen: number;
  readonly und: number;
  private readonly specialIds: Map<string, number>;

  private constructor(specials: readonly string[], text: TextTokenizer, visual: VisualVocab) {
    this.specials = specials;
    this.text = text;
    this.visual = { baseCodes: visual.baseCodes, merges: visual.merges };
    const s = specials.length;
    const t = text.size;
    const v = visual.baseCodes + visual.merges;
    this.ranges = { special: { start: 0, end: s }, text: { start: s, end: s + t }, visual: { start: s + t, end: s + t + v } };
    this.size = s + t + v;
    this.specialIds = new Map(specials.map((name, i) => [name, i]));
    [this.pad, this.bos, this.eos, this.boi, this.eoi, this.gen, this.und] = BASE_SPECIALS.map((n) => this.specialIds.get(n)!);
  }

  static create(options: VocabCreateOptions): Vocab {
    if (options === null || typeof options !== 'object') throw invalidOption('options', 'an object', options);
    for (const key of Object.keys(options)) {
      if (!['text', 'visual', 'extraSpecials'].includes(key)) {
        throw new VtokError('INVALID_OPTION', `Unknown option ${JSON.stringify(key)} for Vocab.create; known options are text, visual, extraSpecials`, {
          subject: key,
        });
      }
    }
    const { text, visual } = options;
    if (text === null || typeof text !== 'object' || typeof text.encode !== 'function' || typeof text.decode !== 'function') {
      throw invalidOption('text', 'a text tokenizer (encode, decode, size)', text);
    }
    checkInt('text.size', text.size, 1);
    if (visual === null || typeof visual !== 'object') throw invalidOption('visual', 'an object { baseCodes, merges }', visual);
    checkInt('visual.baseCodes', visual.baseCodes, 1);
    checkInt('visual.merges', visual.merges, 0);
    const extra = options.extraSpecials ?? [];
    const specials: string[] = [...BASE_SPECIALS];
    for (const name of extra) {
      if (typeof name !== 'string' || !SPECIAL_NAME.test(name)) {
        throw invalidOption('extraSpecials', 'names like "<name>" (angle brackets, no spaces)', name);
      }
      if (specials.includes(name)) throw invalidOption('extraSpecials', 'names not already special', name);
      specials.push(name);
    }
    return new Vocab(specials, text, visual);
  }

  /** The id of a special token by name; throws VOCAB for an unknown name. */
  specialId(name: string): number {
    const id = this.specialIds.get(name);
    if (id === undefined) {
      throw new VtokError('VOCAB', `Unknown special token ${JSON.stringify(name)}; the specials are ${this.specials.join(' ')}`, {
        subject: name,
      });
    }
    return id;
  }

  /** The part of the id space an id is in; throws VOCAB for an id outside the vocabulary. */
  kindOf(id: number, position = 0): IdKind {
    this.checkId(id, position);
    if (id < this.ranges.special.end) return 'special';
    if (id < this.ranges.text.end) return 'text';
    return 'visual';
  }

  /** A readable name of an id, for messages and debugging: `<boi>`, `text:97`, `visual:12`. */
  describeId(id: number): string {
    const kind = this.kindOf(id);
    if (kind === 'special') return this.specials[id];
    return `${kind}:${id - this.ranges[kind].start}`;
  }

  /** Unified ids of a text. */
  encodeText(text: string): number[] {
    const s = this.ranges.text.start;
    const local = this.text.encode(text);
    const out = new Array<number>(local.length);
    for (let i = 0; i < local.length; i++) {
      const t = local[i];
      if (!Number.isInteger(t) || t < 0 || t >= this.text.size) {
        throw new VtokError('VOCAB', `Text tokenizer ${this.text.kind} returned id ${t} at position ${i}, outside its size ${this.text.size}`, {
          subject: String(t),
        });
      }
      out[i] = s + t;
    }
    return out;
  }

  /** Unified ids of visual ids (0..K+M-1). `where` names the input in error messages. */
  encodeVisual(visual: ArrayLike<number>, where = 'image'): number[] {
    const n = this.visual.baseCodes + this.visual.merges;
    const s = this.ranges.visual.start;
    const out = new Array<number>(visual.length);
    for (let i = 0; i < visual.length; i++) {
      const v = visual[i];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= n) {
        throw new VtokError('VOCAB', `Expected a visual id between 0 and ${n - 1} at index ${i} of ${where} but received ${describeValue(v)}`, {
          subject: String(v),
        });
      }
      out[i] = s + v;
    }
    return out;
  }

  /** Ids of a mixed sequence of segments (see Segment). Structure is not checked here; decodeSequence checks it. */
  encodeSequence(segments: readonly Segment[]): Int32Array {
    if (!Array.isArray(segments)) throw invalidOption('segments', 'an array of segments', segments);
    const out: number[] = [];
    segments.forEach((seg, i) => {
      if (seg !== null && typeof seg === 'object' && 'text' in seg && typeof seg.text === 'string') {
        for (const id of this.encodeText(seg.text)) out.push(id);
      } else if (seg !== null && typeof seg === 'object' && 'image' in seg && seg.image !== null && typeof seg.image === 'object') {
        out.push(this.boi);
        for (const id of this.encodeVisual(seg.image, `segment ${i}`)) out.push(id);
        if (seg.open !== true) out.push(this.eoi);
      } else if (seg !== null && typeof seg === 'object' && 'special' in seg && typeof seg.special === 'string') {
        out.push(this.specialId(seg.special));
      } else {
        throw new VtokError('VOCAB', `Expected segment ${i} to be {text: string}, {image: ids} or {special: name} but received ${describeValue(seg)}`, {
          subject: `segment ${i}`,
        });
      }
    });
    return Int32Array.from(out);
  }

  /**
   * Segments of a well-formed id stream. Throws VOCAB naming the position and
   * the id for an id outside the vocabulary or a malformed stream.
   * decodeSequence(encodeSequence(segs)) equals segs when no two text
   * segments are adjacent and no text segment is empty.
   */
  decodeSequence(ids: ArrayLike<number>, options: DecodeOptions = {}): DecodedSegment[] {
    const out: DecodedSegment[] = [];
    const tStart = this.ranges.text.start;
    const vStart = this.ranges.visual.start;
    let text: number[] = [];
    let image: number[] | null = null;
    let imageAt = -1;
    const flushText = (): void => {
      if (text.length > 0) out.push({ text: this.text.decode(text) });
      text = [];
    };
    for (let p = 0; p < ids.length; p++) {
      const id = ids[p];
      const kind = this.kindOf(id, p);
      if (image !== null) {
        if (kind === 'visual') image.push(id - vStart);
        else if (id === this.eoi) {
          out.push({ image: Int32Array.from(image) });
          image = null;
        } else if (id === this.boi) {
          throw this.malformed(`<boi> (id ${id}) at position ${p} opens an image inside the image opened at position ${imageAt}`, id);
        } else {
          const what = kind === 'text' ? `text id ${id}` : `special ${this.specials[id]} (id ${id})`;
          throw this.malformed(`${what} at position ${p} is inside the image opened at position ${imageAt}; only visual ids and <eoi> may follow <boi>`, id);
        }
        continue;
      }
      if (kind === 'text') {
        text.push(id - tStart);
        continue;
      }
      flushText();
      if (kind === 'visual') {
        throw this.malformed(`visual id ${id} at position ${p} is outside an image (no open <boi> before it)`, id);
      } else if (id === this.boi) {
        image = [];
        imageAt = p;
      } else if (id === this.eoi) {
        throw this.malformed(`<eoi> (id ${id}) at position ${p} closes no image: no open <boi> before it`, id);
      } else {
        out.push({ special: this.specials[id] });
      }
    }
    flushText();
    if (image !== null) {
      if (options.allowOpenImage !== true) {
        throw this.malformed(`the image opened at position ${imageAt} is not closed by <eoi> before the end of the stream (length ${ids.length})`, this.boi);
      }
      out.push({ image: Int32Array.from(image), open: true });
    }
    return out;
  }

  /** A mask over the vocabulary (1 = allowed) of the given parts and special tokens, for constrained sampling. */
  maskOf(parts: readonly IdKind[], specials: readonly string[] = []): Uint8Array {
    const mask = new Uint8Array(this.size);
    for (const part of parts) mask.fill(1, this.ranges[part].start, this.ranges[part].end);
    for (const name of specials) mask[this.specialId(name)] = 1;
    return mask;
  }

  serialize(): SerializedVocab {
    return {
      format: VOCAB_FORMAT,
      version: VOCAB_VERSION,
      specials: [...this.specials],
      text: this.text.serialize(),
      visual: { ...this.visual },
    };
  }

  /**
   * A vocabulary from its serialized form. 'byte-bpe' text tokenizers load
   * here; other kinds need a loader in `textLoaders` (src/io supplies them).
   */
  static deserialize(data: unknown, textLoaders: Readonly<Record<string, TextTokenizerLoader>> = {}): Vocab {
    const d = data as Partial<SerializedVocab> | null;
    if (d === null || typeof d !== 'object' || d.format !== VOCAB_FORMAT) {
      throw new VtokError('STORE_CORRUPT', `Expected a serialized vocabulary with format "${VOCAB_FORMAT}"`, { subject: 'vocab' });
    }
    if (d.version !== VOCAB_VERSION) {
      throw new VtokError('STORE_VERSION', `Vocabulary version ${String(d.version)} is not supported (this build reads version ${VOCAB_VERSION})`, {
        subject: 'vocab',
      });
    }
    const specials = d.specials;
    if (!Array.isArray(specials) || BASE_SPECIALS.some((name, i) => specials[i] !== name)) {
      throw new VtokError('STORE_CORRUPT', `Expected the vocabulary's specials to start with ${BASE_SPECIALS.join(' ')}`, { subject: 'specials' });
    }
    const textData = d.text;
    if (textData === null || typeof textData !== 'object' || typeof textData.kind !== 'string') {
      throw new VtokError('STORE_CORRUPT', 'Expected the vocabulary to hold a serialized text tokenizer with a kind', { subject: 'text' });
    }
    let text: TextTokenizer;
    const loader = textLoaders[textData.kind];
    if (loader !== undefined) text = loader(textData);
    else if (textData.kind === 'byte-bpe') text = TextBpe.deserialize(textData);
    else {
      throw new VtokError(
        'VOCAB',
        `No loader for text tokenizer kind ${JSON.stringify(textData.kind)}; known kinds are byte-bpe${Object.keys(textLoaders)
          .map((k) => ', ' + k)
          .join('')}`,
        { subject: textData.kind },
      );
    }
    if (d.visual === null || typeof d.visual !== 'object') {
      throw new VtokError('STORE_CORRUPT', 'Expected the vocabulary to hold visual sizes { baseCodes, merges }', { subject: 'visual' });
    }
    return Vocab.create({ text, visual: d.visual, extraSpecials: specials.slice(BASE_SPECIALS.length) });
  }

  private checkId(id: number, position: number): void {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= this.size) {
      throw new VtokError('VOCAB', `Expected an id between 0 and ${this.size - 1} at position ${position} but received ${describeValue(id)}`, {
        subject: String(id),
      });
    }
  }

  private malformed(message: string, id: number): VtokError {
    return new VtokError('VOCAB', `Malformed stream: ${message}`, { subject: String(id) });
  }
}
