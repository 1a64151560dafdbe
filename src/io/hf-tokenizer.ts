/**
 * A Hugging Face tokenizer.json as a text tokenizer, through the `tokenizers`
 * npm package (Hugging Face's Rust library, Node bindings).
 *
 * `tokenizers` is an optional dependency: it is required only when a
 * tokenizer.json is loaded, so vtok works without it until then, and then
 * fails with a VtokError that says how to install it.
 *
 * Example:
 *   const hf = await loadHfTokenizer('gpt2/tokenizer.json');
 *   await hf.encode('a red pig');        // [64, 2266, 12967] (no special tokens added)
 *   await hf.decode([64, 2266, 12967]);  // 'a red pig'
 *
 * encode and decode return promises because the binding's are asynchronous
 * (the work runs off the main thread); exportTokens' encodeText accepts that.
 */
import { promises as fsp } from 'node:fs';
import { VtokError } from '../core/errors';
import { tokenizerJsonSize, type HfTokenizerJson } from '../core/export-tokens';

/** The part of the `tokenizers` binding vtok uses (typed here so that vtok compiles without the package). */
interface HfBindingTokenizer {
  encode(text: string, pair: null, options: { addSpecialTokens: boolean }): Promise<{ getIds(): number[] }>;
  decode(ids: number[], skipSpecialTokens: boolean): Promise<string>;
}

interface HfBinding {
  Tokenizer: { fromString(json: string): HfBindingTokenizer };
}

export interface HfAddedTokenInfo {
  id: number;
  content: string;
  /** Special tokens are dropped by decode(ids, { skipSpecialTokens: true }). */
  special: boolean;
}

export interface HfTextTokenizer {
  /** The tokenizer.json it was loaded from. */
  file: string;
  /** Text -> ids, with no special tokens added (no BOS/EOS/CLS from the post-processor). */
  encode(text: string): Promise<number[]>;
  /** Ids -> text; special tokens are kept unless skipSpecialTokens. */
  decode(ids: ArrayLike<number>, options?: { skipSpecialTokens?: boolean }): Promise<string>;
  /**
   * Largest id in the model vocabulary or the added tokens, plus one: the ids
   * are 0..vocabSize-1 (the `textVocab` of vtok's export layout).
   */
  vocabSize: number;
  /** The tokenizer.json's added tokens, in file order. */
  addedTokens: HfAddedTokenInfo[];
}

/** How the package is loaded: Node's require by default (a parameter so that tests can simulate its absence). */
export type ModuleLoader = (id: string) => unknown;

// eslint-disable-next-line @typescript-eslint/no-require-imports
const nodeRequire: ModuleLoader = (id) => require(id);

/**
 * Loads the `tokenizers` package, or throws a VtokError (code
 * FILE_NOT_FOUND, as for the other optional packages) that says to install it.
 */
export function requireTokenizers(load: ModuleLoader = nodeRequire): HfBinding {
  let mod: unknown;
  try {
    mod = load('tokenizers');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'MODULE_NOT_FOUND' && String(e.message).includes("'tokenizers'")) {
      throw new VtokError(
        'FILE_NOT_FOUND',
        'Reading a Hugging Face tokenizer.json needs the optional package `tokenizers`, which is not installed; run `npm install tokenizers`',
        { subject: 'tokenizers', cause: err },
      );
    }
    throw new VtokError('IO', `The package \`tokenizers\` is installed but failed to load: ${String(e.message).split('\n')[0]}`, { subject: 'tokenizers', cause: err });
  }
  const T = (mod as Partial<HfBinding> | null)?.Tokenizer;
  if (!T || typeof T.fromString !== 'function') {
    throw new VtokError('IO', 'The package `tokenizers` loaded but has no Tokenizer.fromString; install a version >= 0.13 (`npm install tokenizers`)', { subject: 'tokenizers' });
  }
  return mod as HfBinding;
}

/**
 * Reads a Hugging Face tokenizer.json (see the top of this file). Errors name
 * the file: FILE_NOT_FOUND when it cannot be read, INVALID_INPUT when it is
 * not JSON or not a tokenizer `tokenizers` can load.
 */
export async function loadHfTokenizer(file: string, options: { load?: ModuleLoader } = {}): Promise<HfTextTokenizer> {
  if (typeof file !== 'string' || file === '') {
    throw new VtokError('INVALID_OPTION', `Expected a tokenizer.json path but received ${JSON.stringify(file)}`, { subject: 'tokenizer.json' });
  }
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw new VtokError('FILE_NOT_FOUND', `Could not read the tokenizer ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  let json: HfTokenizerJson;
  try {
    json = JSON.parse(text) as HfTokenizerJson;
  } catch (err) {
    throw new VtokError('INVALID_INPUT', `The tokenizer ${file} is not valid JSON: ${(err as Error).message}`, { subject: file, cause: err });
  }
  let vocabSize: number;
  try {
    vocabSize = tokenizerJsonSize(json);
  } catch (err) {
    throw new VtokError('INVALID_INPUT', `The tokenizer ${file} is not a Hugging Face tokenizer.json: ${(err as Error).message}`, { subject: file, cause: err });
  }
  const binding = requireTokenizers(options.load);
  let tok: HfBindingTokenizer;
  try {
    tok = binding.Tokenizer.fromString(text);
  } catch (err) {
    throw new VtokError('INVALID_INPUT', `The tokenizers package could not load ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  const addedTokens = (json.added_tokens ?? []).map((t) => ({ id: t.id, content: t.content, special: Boolean(t.special) }));
  return {
    file,
    vocabSize,
    addedTokens,
    encode: async (s) => {
      if (typeof s !== 'string') throw new VtokError('INVALID_INPUT', `Expected a string to encode with ${file} but received a value of type ${typeof s}`, { subject: file });
      return (await tok.encode(s, null, { addSpecialTokens: false })).getIds();
    },
    decode: async (ids, opts = {}) => {
      const list = Array.from(ids);
      for (const id of list) {
        if (!(Number.isInteger(id) && id >= 0 && id < vocabSize)) {
          throw new VtokError('VOCAB', `Expected ids in 0..${vocabSize - 1} to decode with ${file} but received ${String(id)}`, { subject: file });
        }
      }
      return tok.decode(list, Boolean(opts.skipSpecialTokens));
    },
  };
}
