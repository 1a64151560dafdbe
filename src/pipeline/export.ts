/**
 * exportTokens: a token folder -> files that LLM training code reads.
 *
 * format 'jsonl' -> OUT/tokens.jsonl: one document a line,
 *   {"key": "cats/001.png", "text": "a cat<|img_start|><|vis_12|>...<|img_end|>"}
 *   (the template decides where the caption/label text goes).
 * format 'bin' -> nanoGPT-style binary, all little-endian:
 *   OUT/tokens.bin   every document's ids back to back, uint16 when the id
 *                    layout has at most 65536 ids, else uint32 (np.memmap(f, '<u2'));
 *   OUT/tokens.idx   uint64 offsets (in tokens, not bytes) of the documents:
 *                    n_docs + 1 entries, document d is ids[idx[d]:idx[d+1]];
 *   OUT/tokens.json  the layout: dtype, ids, docs, tokens, textVocab,
 *                    imageStart, imageEnd, visualOffset, visualCount, the
 *                    tokenizer id and template; and the order of documents
 *                    (that of the manifest).
 * format 'hf' -> OUT/tokenizer.json: a given tokenizer.json (or a fresh
 *   byte-level one) extended with the image tokens as added tokens.
 * All three use one id layout (src/core/export-tokens.ts): the ids of a
 * tokens.bin document equal the ids the exported tokenizer.json gives for
 * the same document's JSONL text.
 *
 * Python, for the bin format:
 *   ids = np.memmap('tokens.bin', dtype='<u2', mode='r'); idx = np.fromfile('tokens.idx', '<u8')
 *   doc = ids[idx[d]:idx[d + 1]]
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { VtokError, checkOneOf, invalidOption, resolveOptions } from '../core/errors';
import {
  DEFAULT_TOKEN_NAMES,
  byteLevelIds,
  checkTemplate,
  checkTokenNames,
  documentIds,
  documentText,
  extendTokenizerJson,
  freshTokenizerJson,
  renderTemplate,
  tokenNamePattern,
  tokenizerJsonSize,
  type ExportLayout,
  type HfTokenizerJson,
  type TokenNames,
} from '../core/export-tokens';
import type { TokenRecord } from '../core/pipeline-types';
import type { TokenManifest } from '../core/shard-format';
import { writeFileAtomic } from '../io/atomic';
import { iterateShards, readTokenDir } from '../io/dataset/shard';
import { AtomicFileWriter } from '../io/dataset/stream-write';

export type ExportFormat = 'jsonl' | 'bin' | 'hf';

export interface ExportOptions {
  /** Token folder (with manifest.json, e.g. after `manifest merge`) or its manifest file. Required. */
  dir: string;
  /** Folder for the exported files (created). Required. */
  out: string;
  /** 'jsonl', 'bin' or 'hf' (see the top of this file). Default 'jsonl'. */
  format: ExportFormat;
  /** Which visual ids: 'codes' (the grid, raster order), 'bpe' (BPE ids), 'auto' (BPE when the records have them). Default 'auto'. */
  ids: 'auto' | 'codes' | 'bpe';
  /** Document template: {image} once; {caption} (caption, else label, else nothing), {label}, {key}. Default '{caption}{image}'. */
  template: string;
  /** Token opening an image. Default '<|img_start|>'. */
  imageStart: string;
  /** Token closing an image. Default '<|img_end|>'. */
  imageEnd: string;
  /** Name of visual id v, `{id}` replaced by v. Default '<|vis_{id}|>'. */
  visualToken: string;
  /** A Hugging Face tokenizer.json to extend (formats 'hf' and 'bin'). Default undefined: a fresh byte-level tokenizer (text ids = UTF-8 bytes). */
  baseTokenizer: string | undefined;
  /**
   * For 'bin' with a baseTokenizer: the base tokenizer's text -> ids, sync
   * or async (with the `tokenizers` package:
   * `async (t) => (await hf.encode(t, null, { addSpecialTokens: false })).getIds()`).
   * Default undefined (needed only then).
   */
  encodeText: ((text: string) => ArrayLike<number> | Promise<ArrayLike<number>>) | undefined;
  /** Replace files already in `out`. Default false: refuse. */
  overwrite: boolean;
}

export const EXPORT_DEFAULTS: ExportOptions = {
  dir: '',
  out: '',
  format: 'jsonl',
  ids: 'auto',
  template: '{caption}{image}',
  imageStart: DEFAULT_TOKEN_NAMES.imageStart,
  imageEnd: DEFAULT_TOKEN_NAMES.imageEnd,
  visualToken: DEFAULT_TOKEN_NAMES.visualToken,
  baseTokenizer: undefined,
  encodeText: undefined,
  overwrite: false,
};

export interface ExportResult {
  /** Files written, relative to out. */
  files: string[];
  docs: number;
  /** Ids written (bin), or 0. */
  tokens: number;
  layout: ExportLayout;
  /** Which ids were exported. */
  ids: 'codes' | 'bpe';
}

/** The fields of tokens.json next to tokens.bin. */
export interface BinMeta extends ExportLayout {
  format: 'vtok-bin';
  version: 1;
  dtype: 'uint16' | 'uint32';
  docs: number;
  tokens: number;
  ids: 'codes' | 'bpe';
  template: string;
  names: TokenNames;
  tokenizer: string;
  run: string;
  /** The text tokenizer: 'byte-level' (UTF-8 bytes) or the base tokenizer.json's path. */
  text: string;
}

function whichIds(m: TokenManifest, ids: ExportOptions['ids']): 'codes' | 'bpe' {
  const hasBpe = m.options.bpe !== null;
  if (ids === 'auto') return hasBpe ? 'bpe' : 'codes';
  if (ids === 'bpe' && !hasBpe) throw invalidOption('ids', '"codes" or "auto": these tokens were made without BPE', ids);
  if (ids === 'codes' && !m.options.storeCodes) throw invalidOption('ids', '"bpe" or "auto": these tokens hold BPE ids only', ids);
  return ids;
}

function visualOf(r: TokenRecord, ids: 'codes' | 'bpe'): Int32Array {
  const v = ids === 'bpe' ? r.bpe : r.codes;
  if (!v) throw new VtokError('STORE_CORRUPT', `Record ${r.key} has no ${ids}`, { subject: r.key });
  return v;
}

async function prepareOut(out: string, files: string[], overwrite: boolean): Promise<void> {
  await fsp.mkdir(out, { recursive: true });
  if (overwrite) return;
  for (const f of files) {
    if (await fsp.stat(path.join(out, f)).catch(() => null)) {
      throw new VtokError('INVALID_OPTION', `Refusing to overwrite ${path.join(out, f)}; pass overwrite to replace it, or choose another folder`, { subject: 'out' });
    }
  }
}

async function loadBase(file: string | undefined): Promise<HfTokenizerJson> {
  if (file === undefined) return freshTokenizerJson();
  if (typeof file !== 'string' || file === '') throw invalidOption('baseTokenizer', 'a tokenizer.json path', file);
  let json: unknown;
  try {
    json = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (err) {
    throw new VtokError('FILE_NOT_FOUND', `Could not read the base tokenizer ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  tokenizerJsonSize(json as HfTokenizerJson); // checks it is a tokenizer.json
  return json as HfTokenizerJson;
}

/**
 * Exports a token folder (see the top of this file).
 *
 * Example:
 *   await exportTokens({ dir: 'tokens/', out: 'export/', format: 'bin' });
 *   // export/tokens.bin, export/tokens.idx, export/tokens.json
 */
export async function exportTokens(options: Partial<ExportOptions>): Promise<ExportResult> {
  const opts = resolveOptions('exportTokens', EXPORT_DEFAULTS, options);
  if (typeof opts.dir !== 'string' || opts.dir === '') throw invalidOption('dir', 'a token folder', opts.dir);
  if (typeof opts.out !== 'string' || opts.out === '') throw invalidOption('out', 'an output folder', opts.out);
  const format = checkOneOf('format', opts.format, ['jsonl', 'bin', 'hf'] as const);
  checkOneOf('ids', opts.ids, ['auto', 'codes', 'bpe'] as const);
  const names = checkTokenNames({ imageStart: opts.imageStart, imageEnd: opts.imageEnd, visualToken: opts.visualToken });
  const template = checkTemplate(opts.template);
  if (opts.encodeText !== undefined && typeof opts.encodeText !== 'function') throw invalidOption('encodeText', 'a function (text) => ids', opts.encodeText);
  const { dir, manifest } = await readTokenDir(opts.dir);
  const ids = whichIds(manifest, opts.ids);
  const visualCount = ids === 'bpe' ? (manifest.options.bpe as { vocabSize: number }).vocabSize : manifest.options.tokenizer.codebookSize;
  const base = await loadBase(opts.baseTokenizer);
  const { json, layout } = extendTokenizerJson(base, visualCount, names);

  if (format === 'hf') {
    await prepareOut(opts.out, ['tokenizer.json'], opts.overwrite);
    await writeFileAtomic(path.join(opts.out, 'tokenizer.json'), JSON.stringify(json));
    return { files: ['tokenizer.json'], docs: 0, tokens: 0, layout, ids };
  }

  const forbidden = tokenNamePattern(names);
  const segmentsOf = (r: TokenRecord): ReturnType<typeof renderTemplate> => {
    const segs = renderTemplate(template, { key: r.key, label: r.label, caption: r.caption });
    for (const s of segs) {
      if ('text' in s && forbidden.test(s.text)) {
        throw new VtokError('INVALID_INPUT', `The text of ${r.key} contains an image token name (${JSON.stringify(s.text.match(forbidden)?.[0])}); it would be read back as an image token`, { subject: r.key });
      }
    }
    return segs;
  };

  if (format === 'jsonl') {
    await prepareOut(opts.out, ['tokens.jsonl'], opts.overwrite);
    const w = await AtomicFileWriter.open(path.join(opts.out, 'tokens.jsonl'));
    let docs = 0;
    try {
      for await (const shard of iterateShards(dir, manifest)) {
        for (const r of shard.records) {
          await w.write(JSON.stringify({ key: r.key, text: documentText(segmentsOf(r), visualOf(r, ids), names) }) + '\n');
          docs++;
        }
      }
      await w.close();
    } catch (err) {
      await w.abort();
      throw err;
    }
    return { files: ['tokens.jsonl'], docs, tokens: 0, layout, ids };
  }

  // format 'bin'
  if (opts.baseTokenizer !== undefined && opts.encodeText === undefined && /\{(caption|label|key)\}/.test(template)) {
    throw invalidOption('encodeText', `the base tokenizer's text encoder (text -> ids) for the bin format with baseTokenizer; the template ${JSON.stringify(template)} has text`, undefined);
  }
  const encodeText = opts.encodeText ?? byteLevelIds;
  const encoded = new Map<string, ArrayLike<number>>();
  const files = ['tokens.bin', 'tokens.idx', 'tokens.json'];
  await prepareOut(opts.out, files, opts.overwrite);
  const dtype = layout.size <= 65536 ? 'uint16' : 'uint32';
  const bin = await AtomicFileWriter.open(path.join(opts.out, 'tokens.bin'));
  const idx = await AtomicFileWriter.open(path.join(opts.out, 'tokens.idx'));
  let docs = 0;
  let tokens = 0;
  try {
    const offset = Buffer.alloc(8);
    offset.writeBigUInt64LE(0n);
    await idx.write(offset);
    for await (const shard of iterateShards(dir, manifest)) {
      for (const r of shard.records) {
        const segs = segmentsOf(r);
        encoded.clear();
        for (const seg of segs) if ('text' in seg && !encoded.has(seg.text)) encoded.set(seg.text, await encodeText(seg.text));
        const doc = documentIds(segs, visualOf(r, ids), layout, (t) => encoded.get(t) as ArrayLike<number>);
        const buf = Buffer.alloc(doc.length * (dtype === 'uint16' ? 2 : 4));
        if (dtype === 'uint16') doc.forEach((v, i) => buf.writeUInt16LE(v, 2 * i));
        else doc.forEach((v, i) => buf.writeUInt32LE(v, 4 * i));
        await bin.write(buf);
        tokens += doc.length;
        docs++;
        offset.writeBigUInt64LE(BigInt(tokens));
        await idx.write(offset);
      }
    }
    const meta: BinMeta = {
      format: 'vtok-bin',
      version: 1,
      dtype,
      ...layout,
      docs,
      tokens,
      ids,
      template,
      names,
      tokenizer: manifest.options.tokenizer.id,
      run: manifest.run,
      text: opts.baseTokenizer === undefined ? 'byte-level' : opts.baseTokenizer,
    };
    await bin.close();
    await idx.close();
    await writeFileAtomic(path.join(opts.out, 'tokens.json'), JSON.stringify(meta, null, 1) + '\n');
  } catch (err) {
    await bin.abort();
    await idx.abort();
    throw err;
  }
  return { files, docs, tokens, layout, ids };
}

/** Reads a bin export back: the ids of every document (for tests and inspection; loads everything). */
export async function readBinExport(out: string): Promise<{ meta: BinMeta; docs: number[][] }> {
  const meta = JSON.parse(await fsp.readFile(path.join(out, 'tokens.json'), 'utf8')) as BinMeta;
  const bin = await fsp.readFile(path.join(out, 'tokens.bin'));
  const idx = await fsp.readFile(path.join(out, 'tokens.idx'));
  const size = meta.dtype === 'uint16' ? 2 : 4;
  if (bin.length !== meta.tokens * size || idx.length !== (meta.docs + 1) * 8) {
    throw new VtokError('STORE_CORRUPT', `${out}: tokens.bin/tokens.idx sizes do not match tokens.json (${meta.tokens} tokens, ${meta.docs} documents)`);
  }
  const docs: number[][] = [];
  for (let d = 0; d < meta.docs; d++) {
    const a = Number(idx.readBigUInt64LE(8 * d));
    const b = Number(idx.readBigUInt64LE(8 * (d + 1)));
    const doc: number[] = [];
    for (let i = a; i < b; i++) doc.push(size === 2 ? bin.readUInt16LE(2 * i) : bin.readUInt32LE(4 * i));
    docs.push(doc);
  }
  return { meta, docs };
}
