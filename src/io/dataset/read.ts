/**
 * Reads one dataset input: its bytes (a file or a tar member), their sha256,
 * its sidecars and mapping-file fields, and its pixels (through readImage in
 * src/io/image.ts). A bad input never throws: it comes back as a
 * SkippedInput with a reason for errors.jsonl.
 */
import { closeSync, openSync, promises as fsp, readFileSync, readSync } from 'node:fs';
import { VtokError } from '../../core/errors';
import type { SkippedInput, SkipReason } from '../../core/pipeline-types';
import { imageReader, type ImageReader, type ImageReadOptions } from '../image';
import type { DatasetInput, Sidecar } from './inputs';
import { lookupLabels, parseSidecar, type TextFields } from './labels';
import { sha256Hex } from './shard';
import type { RangeReader } from './tar';

export interface LoadedInput {
  input: DatasetInput;
  sha256: string;
  /** Size of the source image as displayed (EXIF orientation applied). */
  width: number;
  height: number;
  pixels: Float32Array; // [S, S, 3] in [-1, 1]
  fields: TextFields;
}

export type LoadResult = { ok: true; value: LoadedInput } | { ok: false; skipped: SkippedInput };

export interface LoadContext {
  reader: RangeReader;
  /** Mapping-file fields by key, or null. */
  labels: Map<string, Partial<TextFields>> | null;
  image: Omit<ImageReadOptions, 'name'>;
  maxFileBytes: number;
}

function skip(input: DatasetInput, reason: SkipReason, code: string, message: string): LoadResult {
  return { ok: false, skipped: { key: input.key, source: input.source, reason, code, message } };
}

/**
 * Files no larger than this (as enumerated) are read with one blocking call.
 * fsp.readFile makes four trips through libuv's thread pool (open, fstat,
 * read, close), queued behind sharp's decodes in the same pool, for a file of
 * any size. Reading small files (the image and its sidecar) with readFileSync
 * cut the CPU of tokenizeDataset (colour-grid tokenizer, no model) from about
 * 3.3 to 2.3 ms per Fashion-MNIST image (28 x 28 PNG + .txt) and from about
 * 5.8 to 5.5 ms per 256 x 256 photo (PNG, 1-190 KB), on the 2-core build
 * machine. A read of up to 256 KiB from the page cache blocks the event loop
 * for well under 0.1 ms. The cost: on slow storage (a network file system, a
 * cold disk) the wait is no longer hidden behind the model; larger files keep
 * the asynchronous read.
 */
const SYNC_READ_BYTES = 256 * 1024;

async function readBytes(src: { file: string; offset: number; size: number; member: boolean }, reader: RangeReader): Promise<Buffer> {
  if (src.member) return reader.read(src.file, src.offset, src.size);
  if (src.size <= SYNC_READ_BYTES) return readSmallFile(src.file, src.size);
  return fsp.readFile(src.file);
}

/**
 * A file expected to be `size` bytes (as enumerated), read with open, one
 * read and close (readFileSync also stats it). One byte more is asked for:
 * a file that has grown since is read again whole.
 */
function readSmallFile(file: string, size: number): Buffer {
  const fd = openSync(file, 'r');
  let got: number;
  const buf = Buffer.allocUnsafe(size + 1);
  try {
    got = readSync(fd, buf, 0, size + 1, 0);
  } finally {
    closeSync(fd);
  }
  return got <= size ? buf.subarray(0, got) : readFileSync(file);
}

/**
 * Structural signs that an image file was cut short: a PNG must end with its
 * IEND chunk, a JPEG with the EOI marker (FF D9), a GIF with its trailer (3B),
 * a WebP's RIFF size must cover the file. Used only to name the reason of a
 * decode failure.
 */
export function looksTruncated(b: Uint8Array): boolean {
  const n = b.length;
  const at = (i: number, ...v: number[]): boolean => v.every((x, k) => b[i + k] === x);
  if (n >= 8 && at(0, 0x89, 0x50, 0x4e, 0x47)) {
    return !(n >= 12 && at(n - 8, 0x49, 0x45, 0x4e, 0x44));
  }
  if (n >= 3 && at(0, 0xff, 0xd8, 0xff)) {
    let end = n;
    while (end > 2 && b[end - 1] === 0) end--; // some writers pad with zeros
    return !(b[end - 2] === 0xff && b[end - 1] === 0xd9);
  }
  if (n >= 6 && at(0, 0x47, 0x49, 0x46, 0x38)) return b[n - 1] !== 0x3b;
  if (n >= 12 && at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) {
    const riff = b[4] | (b[5] << 8) | (b[6] << 16) | (b[7] * 0x1000000);
    return riff + 8 > n;
  }
  return false;
}

/** The skip reason of a readImage failure. */
export function reasonOf(err: VtokError, bytes: Uint8Array): SkipReason {
  if (err.code === 'IMAGE_TOO_LARGE') return 'too-large';
  if (err.code === 'FILE_NOT_FOUND' || err.code === 'IO') return 'unreadable';
  if (bytes.length === 0 || /the file is empty/.test(err.message)) return 'zero-byte';
  if (/not an image in a supported format|images are not supported/.test(err.message)) return 'not-image';
  if (looksTruncated(bytes) || /premature end|truncated(?! or corrupt)|unexpected end of/i.test(err.message)) return 'truncated';
  return 'corrupt';
}

async function readSidecars(sidecars: readonly Sidecar[], reader: RangeReader): Promise<Partial<TextFields>> {
  const fields: Partial<TextFields> = {};
  // .json first, then .cls and .txt override its fields: the more specific file wins.
  const order = ['json', 'cls', 'txt'];
  for (const s of [...sidecars].sort((a, b) => order.indexOf(a.ext) - order.indexOf(b.ext))) {
    let bytes: Buffer;
    try {
      bytes = await readBytes(s, reader);
    } catch (err) {
      throw new VtokError('IO', `Could not read sidecar ${s.name}: ${(err as Error).message}`, { subject: s.name, cause: err });
    }
    Object.assign(fields, parseSidecar(s.ext, bytes, s.name));
  }
  return fields;
}

/** Reads, checks and decodes one input. Never throws for a bad input. */
export async function loadInput(input: DatasetInput, ctx: LoadContext): Promise<LoadResult> {
  return withLabels(await loadInputUnlabelled(input, ctx), ctx.labels);
}

/**
 * A loaded input's fields with the mapping file's fields laid over its
 * sidecars' (the mapping file wins). Split from loading so that decode
 * workers (load-workers.ts) need not hold the mapping: the main thread adds it.
 */
export function withLabels(r: LoadResult, labels: LoadContext['labels']): LoadResult {
  if (!r.ok || !labels) return r;
  const over = lookupLabels(labels, r.value.input.key);
  if (!over) return r;
  const f: Partial<TextFields> = { ...r.value.fields, ...over };
  return { ok: true, value: { ...r.value, fields: { label: f.label ?? null, caption: f.caption ?? null } } };
}

/** The image reader of a context's image options, made once (the options are checked once, not per input). */
const READERS = new WeakMap<LoadContext['image'], ImageReader>();
function readerOf(image: LoadContext['image']): ImageReader {
  let read = READERS.get(image);
  if (!read) {
    read = imageReader(image);
    READERS.set(image, read);
  }
  return read;
}

/**
 * loadInput without the mapping file's fields (ctx.labels is not read).
 * With `into` the pixels are written there, and it is the result's
 * `pixels`, when the image options give a square `size` and `into` holds
 * size x size x 3 values (else a new array is returned, as without it).
 */
export async function loadInputUnlabelled(input: DatasetInput, ctx: Omit<LoadContext, 'labels'>, into?: Float32Array): Promise<LoadResult> {
  if (input.problem) return skip(input, input.problem.reason, input.problem.code, input.problem.message);
  if (input.size > ctx.maxFileBytes) {
    return skip(input, 'too-large', 'IMAGE_TOO_LARGE', `Skipped ${input.source}: ${input.size} bytes, more than the limit of ${ctx.maxFileBytes} bytes (option maxFileBytes)`);
  }
  let bytes: Buffer;
  try {
    bytes = await readBytes(input, ctx.reader);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'IO';
    return skip(input, 'unreadable', code, `Could not read ${input.source}: ${(err as Error).message}`);
  }
  if (bytes.length === 0) return skip(input, 'zero-byte', 'IMAGE_DECODE', `Skipped ${input.source}: the file is empty (0 bytes)`);
  if (bytes.length > ctx.maxFileBytes) {
    return skip(input, 'too-large', 'IMAGE_TOO_LARGE', `Skipped ${input.source}: ${bytes.length} bytes, more than the limit of ${ctx.maxFileBytes} bytes (option maxFileBytes)`);
  }
  let fields: Partial<TextFields> = {};
  try {
    fields = await readSidecars(input.sidecars, ctx.reader);
  } catch (err) {
    const e = err as VtokError;
    return skip(input, e.code === 'IO' ? 'unreadable' : 'corrupt', e.code ?? 'IO', e.message);
  }
  const sha256 = sha256Hex(bytes);
  try {
    const size = ctx.image.size;
    const fits = into !== undefined && typeof size === 'number' && into.length === size * size * 3; // then the output is exactly that
    const img = await readerOf(ctx.image)(bytes, input.source, fits ? into : undefined);
    return {
      ok: true,
      value: {
        input,
        sha256,
        width: img.originalWidth,
        height: img.originalHeight,
        pixels: img.data,
        fields: { label: fields.label ?? null, caption: fields.caption ?? null },
      },
    };
  } catch (err) {
    const e = err instanceof VtokError ? err : new VtokError('IMAGE_DECODE', `Could not decode ${input.source}: ${(err as Error).message}`, { cause: err });
    return skip(input, reasonOf(e, bytes), e.code, e.message);
  }
}
