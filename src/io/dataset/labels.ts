/**
 * Labels and captions for dataset inputs: from sidecar files next to an image
 * (same base name: `NAME.txt`, `NAME.json`, `NAME.cls`, as WebDataset does
 * inside tars), or from one mapping file (CSV or JSONL) for the whole set.
 *
 * Sidecars:
 *   .txt   the caption: the whole file, UTF-8, leading/trailing whitespace trimmed
 *   .cls   the label: trimmed text; a decimal integer becomes a number
 *   .json  an object; `label` (string or number) and `caption` (or `text`) are used
 * Mapping file (`labels` option): a CSV with a header row, or JSONL (one
 * object a line; the file name ends in .jsonl or .ndjson). The key column is
 * the first of `key`, `path`, `file`, `filename`, `image`; the label column is
 * `label` (or `class`), the caption column `caption` (or `text`). A mapping
 * row matches an input whose key equals it, or whose key without its file
 * extension equals it (`cats/001` matches `cats/001.png`). Where both give a
 * field, the mapping file wins.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { VtokError } from '../../core/errors';

/** A label and a caption; null where there is none. */
export interface TextFields {
  label: string | number | null;
  caption: string | null;
}

/** Extensions of sidecar files. */
export const SIDECAR_EXTS = ['txt', 'json', 'cls'] as const;
export type SidecarExt = (typeof SIDECAR_EXTS)[number];

/**
 * Parses a sidecar's bytes. Throws a VtokError (INVALID_INPUT) for a .json
 * sidecar that is not a JSON object.
 *
 * Example: parseSidecar('json', bytes of '{"label": 3, "text": "a pig"}', 'a.json') -> { label: 3, caption: 'a pig' }
 */
export function parseSidecar(ext: SidecarExt, bytes: Uint8Array, name: string): Partial<TextFields> {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  if (ext === 'txt') {
    const t = text.trim();
    return t === '' ? {} : { caption: t };
  }
  if (ext === 'cls') {
    const t = text.trim();
    if (t === '') return {};
    return { label: /^-?\d+$/.test(t) && Number.isSafeInteger(Number(t)) ? Number(t) : t };
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new VtokError('INVALID_INPUT', `Could not read sidecar ${name}: not valid JSON (${(err as Error).message})`, { subject: name });
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new VtokError('INVALID_INPUT', `Could not read sidecar ${name}: expected a JSON object`, { subject: name });
  }
  return fieldsOf(obj as Record<string, unknown>);
}

function fieldsOf(o: Record<string, unknown>): Partial<TextFields> {
  const out: Partial<TextFields> = {};
  const label = o.label ?? o.class;
  if (typeof label === 'string' || (typeof label === 'number' && Number.isFinite(label))) out.label = label;
  const caption = o.caption ?? o.text;
  if (typeof caption === 'string') out.caption = caption;
  return out;
}

/**
 * Parses CSV text (RFC 4180: quoted fields with "" for a quote, commas and
 * newlines inside quotes, CRLF or LF line ends) into rows of fields.
 *
 * Example: parseCsv('key,caption\na.png,"a ""big"" dog, sleeping"\n')
 *   -> [['key', 'caption'], ['a.png', 'a "big" dog, sleeping']]
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  // A field is `field` plus the characters from `run` on that are not yet added: runs are added as one slice, not
  // character by character (a million-row file built that way took 11 s and ~1 KB of string pieces a row).
  let field = '';
  let quoted = false;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0; // byte-order mark
  let run = i;
  const endField = (end: number): void => {
    row.push(field + text.slice(run, end));
    field = '';
  };
  const endRow = (): void => {
    if (!(row.length === 1 && row[0] === '')) rows.push(row);
    row = [];
  };
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (quoted) {
      if (c === QUOTE) {
        field += text.slice(run, i);
        if (text.charCodeAt(i + 1) === QUOTE) {
          field += '"';
          i++;
        } else {
          quoted = false;
        }
        run = i + 1;
      }
    } else if (c === QUOTE && field === '' && run === i) {
      quoted = true;
      run = i + 1;
    } else if (c === COMMA) {
      endField(i);
      run = i + 1;
    } else if (c === LF || c === CR) {
      endField(i);
      if (c === CR && text.charCodeAt(i + 1) === LF) i++;
      endRow();
      run = i + 1;
    }
  }
  if (quoted) throw new VtokError('INVALID_INPUT', 'Could not parse CSV: a quoted field is not closed before the end of the file');
  if (field !== '' || run < text.length || row.length > 0) {
    endField(text.length);
    endRow();
  }
  return rows;
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;

const KEY_COLUMNS = ['key', 'path', 'file', 'filename', 'image'];
const LABEL_COLUMNS = ['label', 'class'];
const CAPTION_COLUMNS = ['caption', 'text'];

/** A loaded mapping file. */
export interface LabelMap {
  /** key -> fields. */
  map: Map<string, Partial<TextFields>>;
  /** sha256 of the file's bytes (part of a run's identity). */
  sha256: string;
}

/** Loads a CSV or JSONL mapping file (see the top of this file). */
export async function loadLabelMap(file: string): Promise<LabelMap> {
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(file);
  } catch (err) {
    throw new VtokError('FILE_NOT_FOUND', `Could not read the labels file ${file}: ${(err as Error).message}`, { subject: file, cause: err });
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const text = bytes.toString('utf8');
  const map = new Map<string, Partial<TextFields>>();
  const add = (key: string, fields: Partial<TextFields>, line: number): void => {
    const k = key.replace(/\\/g, '/').replace(/^\.\//, '');
    if (map.has(k)) throw new VtokError('INVALID_INPUT', `Labels file ${file} line ${line}: key ${JSON.stringify(k)} appears twice`, { subject: file });
    map.set(k, fields);
  };
  if (/\.(jsonl|ndjson)$/i.test(file)) {
    // Line by line without splitting (a million-line file would stand as a million strings at once).
    for (let at = 0, i = 0; at < text.length; i++) {
      let nl = text.indexOf('\n', at);
      if (nl < 0) nl = text.length;
      const line = text.slice(at, nl > at && text.charCodeAt(nl - 1) === 0x0d ? nl - 1 : nl);
      at = nl + 1;
      if (line.trim() === '') continue;
      let obj: unknown;
      try {
        obj = JSON.parse(line);
      } catch (err) {
        throw new VtokError('INVALID_INPUT', `Labels file ${file} line ${i + 1}: not valid JSON (${(err as Error).message})`, { subject: file });
      }
      const o = obj as Record<string, unknown>;
      const keyField = KEY_COLUMNS.find((c) => typeof o?.[c] === 'string');
      if (!keyField) throw new VtokError('INVALID_INPUT', `Labels file ${file} line ${i + 1}: expected an object with a "key" (or ${KEY_COLUMNS.slice(1).join(', ')}) string`, { subject: file });
      add(o[keyField] as string, fieldsOf(o), i + 1);
    }
    return { map, sha256 };
  }
  const rows = parseCsv(text);
  if (rows.length === 0) return { map, sha256 };
  const header = rows[0].map((h) => h.trim().toLowerCase());
  const keyCol = header.findIndex((h) => KEY_COLUMNS.includes(h));
  const labelCol = header.findIndex((h) => LABEL_COLUMNS.includes(h));
  const captionCol = header.findIndex((h) => CAPTION_COLUMNS.includes(h));
  if (keyCol < 0 || (labelCol < 0 && captionCol < 0)) {
    throw new VtokError(
      'INVALID_INPUT',
      `Labels file ${file}: expected a header row with a key column (${KEY_COLUMNS.join(', ')}) and a label (${LABEL_COLUMNS.join(', ')}) or caption (${CAPTION_COLUMNS.join(', ')}) column but found ${JSON.stringify(rows[0])}`,
      { subject: file },
    );
  }
  for (let r = 1; r < rows.length; r++) {
    const row = rows[r];
    const fields: Partial<TextFields> = {};
    if (labelCol >= 0 && (row[labelCol] ?? '') !== '') fields.label = row[labelCol];
    if (captionCol >= 0 && (row[captionCol] ?? '') !== '') fields.caption = row[captionCol];
    add(row[keyCol] ?? '', fields, r + 1);
  }
  return { map, sha256 };
}

/** The mapping entry of a key: exact, else the key without its file extension. */
export function lookupLabels(map: Map<string, Partial<TextFields>>, key: string): Partial<TextFields> | undefined {
  const exact = map.get(key);
  if (exact) return exact;
  const dot = key.lastIndexOf('.');
  return dot > key.lastIndexOf('/') ? map.get(key.slice(0, dot)) : undefined;
}
