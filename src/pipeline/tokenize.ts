/**
 * tokenizeDataset: a folder (or glob, file list, tar archives) of images
 * becomes token shards, resumably, with every skipped input accounted for.
 *
 * Data flow (bounded memory whatever the dataset size):
 *   enumerate + sort inputs (keys)            inputs.ts
 *   -> read bytes, sha256, sidecars, decode   read.ts, on `workers` decode threads
 *      (load-workers.ts; the first batch on the main thread while they
 *      boot), `concurrency` at a time (OrderedPrefetch: at most
 *      `concurrency + (queueDepth + 1) * batchSize` images decoded ahead of
 *      the model). On wasm the model holds the main thread while it
 *      encodes a batch, so only other threads decode meanwhile.
 *   -> batches of `batchSize` inputs          tokenizer.encodeBatch ([B,S,S,3] -> [B,h,w])
 *   -> optional visual BPE                    BpeModel.encode
 *   -> shard k = inputs [kR, (k+1)R) of this part, written atomically,
 *      then the journal (progress.json), atomically
 *   -> errors.jsonl, then manifest.json (last: the part is complete).
 *
 * Exactly once, after kill -9 at any moment: shard boundaries depend only on
 * the sorted input list, a shard file is whole or absent (atomic rename), and
 * `resume` keeps the shards that are whole (checked against the journal's
 * sha256, or read and checked record by record when the kill fell between
 * the shard's rename and the journal's), deletes temp files, and redoes the
 * rest. Batches never cross a shard boundary, so a redone shard sees the same
 * batches as the first attempt and its bytes equal an uninterrupted run's.
 *
 * One process per part and output folder: two processes writing the same
 * part of the same folder at once are not detected.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { BpeModel } from '../core/bpe';
import { VtokError, checkInt, checkOneOf, invalidOption, resolveOptions } from '../core/errors';
import { limitConcurrency } from '../core/limit';
import type { ImageTokenizer, SkippedInput, TokenRecord } from '../core/pipeline-types';
import {
  MANIFEST_FORMAT,
  MANIFEST_VERSION,
  PROGRESS_FORMAT,
  PROGRESS_VERSION,
  canonicalJson,
  checkPart,
  emptyReasonCounts,
  errorsFileName,
  idDtype,
  manifestFileName,
  parseShardSpec,
  progressFileName,
  shardCount,
  shardFileName,
  type PartSpec,
  type ProgressJournal,
  type RunOptions,
  type ShardEntry,
  type TokenManifest,
} from '../core/shard-format';
import { writeFileAtomic } from '../io/atomic';
import { enumerateInputs, type DatasetInput, type InputList } from '../io/dataset/inputs';
import { loadLabelMap } from '../io/dataset/labels';
import { prepareOutDir } from '../io/dataset/outdir';
import { LoadWorkers } from '../io/dataset/load-workers';
import { loadInputUnlabelled, withLabels, type LoadContext, type LoadedInput, type LoadResult } from '../io/dataset/read';
import { errorsJsonl, readShard, sha256File, sha256Hex, writeJsonAtomic, writeShard } from '../io/dataset/shard';
import { RangeReader } from '../io/dataset/tar';
import { DEFAULT_MAX_PIXELS, parseColour, type Colour, type FailOn, type ImageFit, type ResizeKernel } from '../io/image';
import { PixelPool } from './pixel-pool';
import { OrderedPrefetch } from './prefetch';

export interface TokenizeProgress {
  /** Inputs of this part finished (tokenized or skipped; shards found complete on resume count too). */
  done: number;
  /** Inputs of this part. */
  total: number;
  /** Records written and inputs skipped so far (resumed shards included). */
  records: number;
  skipped: number;
  shardsDone: number;
  shards: number;
  /** Inputs per second processed by this call (resumed shards not counted). */
  imagesPerSecond: number;
  elapsedSeconds: number;
}

export interface TokenizeOptions {
  /**
   * Input folders (recursive), globs, file lists (`@list`, or a .txt/.lst/.list
   * file), tar archives, or image files; see src/io/dataset/inputs.ts. Required.
   */
  inputs: string[];
  /** Output folder: missing, empty, or holding this run's own files (see resume). Required. */
  out: string;
  /** The image tokenizer. Required. */
  tokenizer: ImageTokenizer | undefined;
  /** A visual BPE model (baseVocab = tokenizer.codebookSize): adds BPE ids to every record. Default undefined: no BPE ids. */
  bpe: BpeModel | undefined;
  /** Store the code grid in records. false stores BPE ids only (decode then goes through BPE); needs `bpe`. Default true. */
  storeCodes: boolean;
  /** A CSV or JSONL file mapping keys to labels and captions (see labels.ts). Default undefined. */
  labels: string | undefined;
  /** Read sidecar files (NAME.txt caption, NAME.cls label, NAME.json). Default true. */
  sidecars: boolean;
  /**
   * This run's part of the input, as `"i/n"` or {index, count} (0-based): sorted
   * input number j goes to part j mod n. Default "0/1" (everything).
   */
  shard: string | PartSpec;
  /** Inputs per shard file (skipped inputs count: shard k always covers the same inputs). Default 1024. */
  recordsPerShard: number;
  /** Images per call to tokenizer.encodeBatch. Default defaultBatchSize(tokenizer.imageSize): 64 at 32 px, 16 at 128, 4 at 256. */
  batchSize: number | undefined;
  /** Inputs read and decoded at the same time (over all decode workers). Default 2 (sharp runs one thread per image; see ENGINE.md). */
  concurrency: number;
  /**
   * Worker threads that read and decode inputs (src/io/dataset/load-workers.ts),
   * so that decoding overlaps with the model, which holds the main thread
   * while it encodes a batch. 0 reads and decodes on the main thread. Default 1.
   */
  workers: number;
  /**
   * Nice value of the decode workers' threads (Linux; 0-19). Default 0. A
   * higher value lets the model's threads preempt the decoder; measured
   * beside the model alone (bench/decode-contention.ts) that helped a little
   * at times, but whole runs of bench:tokenize were not better (2026-12-02:
   * Fashion-MNIST overhead 12.9 % at 19 and 20.8 % at 10 in one run each,
   * against 7.6-12.7 % in four runs at 0), and a high value starves the
   * decoder on a machine busy with other work.
   */
  workerNice: number;
  /** Batches decoded ahead of the model, besides the one being decoded. Default 2. */
  queueDepth: number;
  /** How images reach imageSize x imageSize: 'crop' (centre crop) or 'pad'. Default 'crop'. */
  fit: ImageFit;
  /** Colour under transparency and around padded images. Default '#ffffff'. */
  background: Colour;
  /** Resize kernel. Default 'lanczos3'. */
  kernel: ResizeKernel;
  /** When damaged image data is an error (sharp failOn). Default 'warning'. */
  failOn: FailOn;
  /** Images declaring more pixels are skipped as 'too-large'. Default 268402689 (16383 x 16383). */
  maxPixels: number;
  /** Files with more bytes are skipped as 'too-large' without being read. Default 268435456 (256 MiB). */
  maxFileBytes: number;
  /** Continue an interrupted run in `out` (or check a finished one). Default false: refuse a folder that has output. */
  resume: boolean;
  /** Called after every batch. Default none. */
  onProgress: ((p: TokenizeProgress) => void) | undefined;
}

export const TOKENIZE_DEFAULTS: TokenizeOptions = {
  inputs: [],
  out: '',
  tokenizer: undefined,
  bpe: undefined,
  storeCodes: true,
  labels: undefined,
  sidecars: true,
  shard: '0/1',
  recordsPerShard: 1024,
  batchSize: undefined,
  concurrency: 2,
  workers: 1,
  workerNice: 0,
  queueDepth: 2,
  fit: 'crop',
  background: '#ffffff',
  kernel: 'lanczos3',
  failOn: 'warning',
  maxPixels: DEFAULT_MAX_PIXELS,
  maxFileBytes: 256 * 1024 * 1024,
  resume: false,
  onProgress: undefined,
};

export interface TokenizeResult {
  /** The output folder and this part's manifest file in it. */
  dir: string;
  manifestFile: string;
  manifest: TokenManifest;
  /** Shards written by this call, and shards found complete (resume). */
  written: number;
  resumed: number;
  /** Inputs processed by this call, wall time, and their rate. */
  processed: number;
  seconds: number;
  imagesPerSecond: number;
  /** Most inputs held decoded at once (bounded by concurrency + (queueDepth + 1) * batchSize). */
  peakPrefetched: number;
  /** Inputs loaded by decode workers (the rest were loaded on the main thread, e.g. while the workers started). */
  loadedByWorkers: number;
  /** Pixel buffers created for decoded images waiting for the model (reused; at most the prefetch window plus concurrency). */
  pixelBuffers: number;
}

/** Content id of a BPE model: sha256 of its settings and merge rules. */
export function bpeContentId(bpe: BpeModel): string {
  const m = bpe.merges;
  const arrays = [m.left, m.right, m.dy, m.dx, m.id].map((a) => Array.from(a));
  return sha256Hex(canonicalJson({ settings: bpe.settings, merges: arrays }));
}

function checkTokenizer(t: unknown): ImageTokenizer {
  const k = t as ImageTokenizer;
  if (k === null || typeof k !== 'object' || typeof k.encodeBatch !== 'function') {
    throw invalidOption('tokenizer', 'an ImageTokenizer {id, imageSize, gridShape, codebookSize, encodeBatch}', t);
  }
  if (typeof k.id !== 'string' || k.id === '') throw invalidOption('tokenizer.id', 'a non-empty string', k.id);
  checkInt('tokenizer.imageSize', k.imageSize, 1, 65535);
  checkInt('tokenizer.codebookSize', k.codebookSize, 1, 2 ** 31 - 1);
  if (!Array.isArray(k.gridShape) || k.gridShape.length !== 2) throw invalidOption('tokenizer.gridShape', '[h, w]', k.gridShape);
  checkInt('tokenizer.gridShape[0]', k.gridShape[0], 1, 65535);
  checkInt('tokenizer.gridShape[1]', k.gridShape[1], 1, 65535);
  return k;
}

/** Resolved options plus what is derived from them. */
interface Plan {
  opts: ResolvedOptions;
  tokenizer: ImageTokenizer;
  part: PartSpec;
  runOptions: RunOptions;
  run: string;
  /** This part's inputs, in order. */
  inputs: InputList;
  labels: Map<string, Partial<{ label: string | number | null; caption: string | null }>> | null;
}

/** The options with the batch size settled. */
type ResolvedOptions = TokenizeOptions & { batchSize: number };

/** The options, checked (everything that needs no disk). */
interface Checked {
  opts: ResolvedOptions;
  tokenizer: ImageTokenizer;
  part: PartSpec;
}

function checkOptions(options: Partial<TokenizeOptions>): Checked {
  const given = resolveOptions('tokenizeDataset', TOKENIZE_DEFAULTS, options);
  if (!Array.isArray(given.inputs) || given.inputs.length === 0 || !given.inputs.every((s) => typeof s === 'string' && s !== '')) {
    throw invalidOption('inputs', 'a non-empty array of paths, globs or @lists', given.inputs);
  }
  if (typeof given.out !== 'string' || given.out === '') throw invalidOption('out', 'an output folder path', given.out);
  const tokenizer = checkTokenizer(given.tokenizer);
  const opts: ResolvedOptions = { ...given, batchSize: given.batchSize ?? defaultBatchSize(tokenizer.imageSize) };
  const part = typeof opts.shard === 'string' ? parseShardSpec(opts.shard) : checkPart(opts.shard);
  checkInt('recordsPerShard', opts.recordsPerShard, 1, 1 << 24);
  checkInt('batchSize', opts.batchSize, 1, 4096);
  checkInt('concurrency', opts.concurrency, 1, 256);
  checkInt('workers', opts.workers, 0, 256);
  checkInt('workerNice', opts.workerNice, 0, 19);
  checkInt('queueDepth', opts.queueDepth, 0, 1024);
  checkOneOf('fit', opts.fit, ['crop', 'pad'] as const);
  parseColour('background', opts.background);
  checkOneOf('kernel', opts.kernel, ['nearest', 'linear', 'cubic', 'mitchell', 'lanczos2', 'lanczos3'] as const);
  checkOneOf('failOn', opts.failOn, ['none', 'truncated', 'error', 'warning'] as const);
  checkInt('maxPixels', opts.maxPixels, 1);
  checkInt('maxFileBytes', opts.maxFileBytes, 1);
  if (typeof opts.storeCodes !== 'boolean') throw invalidOption('storeCodes', 'a boolean', opts.storeCodes);
  if (typeof opts.sidecars !== 'boolean') throw invalidOption('sidecars', 'a boolean', opts.sidecars);
  if (typeof opts.resume !== 'boolean') throw invalidOption('resume', 'a boolean', opts.resume);
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') throw invalidOption('onProgress', 'a function', opts.onProgress);
  const bpe = opts.bpe;
  if (bpe !== undefined) {
    if (bpe === null || typeof bpe !== 'object' || typeof bpe.encode !== 'function') throw invalidOption('bpe', 'a BpeModel', bpe);
    if (bpe.baseVocab !== tokenizer.codebookSize) {
      throw new VtokError(
        'INVALID_OPTION',
        `Expected a BPE model over the tokenizer's ${tokenizer.codebookSize} codes for bpe but received a model over ${bpe.baseVocab} base codes`,
        { subject: 'bpe' },
      );
    }
  }
  if (!opts.storeCodes && bpe === undefined) throw invalidOption('storeCodes', 'true when no bpe model is given (records need codes or BPE ids)', opts.storeCodes);
  return { opts, tokenizer, part };
}

async function plan({ opts, tokenizer, part }: Checked): Promise<Plan> {
  const bpe = opts.bpe;
  let labels: Plan['labels'] = null;
  let labelsDigest: string | null = null;
  if (opts.labels !== undefined) {
    if (typeof opts.labels !== 'string' || opts.labels === '') throw invalidOption('labels', 'a CSV or JSONL file path', opts.labels);
    const loaded = await loadLabelMap(opts.labels);
    labels = loaded.map;
    labelsDigest = loaded.sha256;
  }
  const all = await enumerateInputs(opts.inputs, { sidecars: opts.sidecars, exclude: opts.labels ? [opts.labels, opts.out] : [opts.out] });
  const runOptions: RunOptions = {
    tokenizer: { id: tokenizer.id, imageSize: tokenizer.imageSize, gridShape: [tokenizer.gridShape[0], tokenizer.gridShape[1]], codebookSize: tokenizer.codebookSize },
    bpe: bpe ? { id: bpeContentId(bpe), vocabSize: bpe.vocabSize } : null,
    storeCodes: opts.storeCodes,
    fit: opts.fit,
    background: typeof opts.background === 'string' ? opts.background.toLowerCase() : canonicalJson(opts.background),
    kernel: opts.kernel,
    failOn: opts.failOn,
    maxPixels: opts.maxPixels,
    maxFileBytes: opts.maxFileBytes,
    recordsPerShard: opts.recordsPerShard,
    sidecars: opts.sidecars,
    labels: labelsDigest,
    parts: part.count,
    inputs: { count: all.inputs.length, digest: all.digest },
  };
  const inputs = part.count === 1 ? all.inputs : all.inputs.part(part.index, part.count);
  return { opts, tokenizer, part, runOptions, run: sha256Hex(canonicalJson(runOptions)), inputs, labels };
}

/**
 * The batch size tokenizeDataset (and `vtok tokenize`) uses unless told: about 262,144 pixels a
 * batch (16 images at 128 x 128), between 1 and 64 images: 64 at 32 px, 16 at
 * 128, 4 at 256. Larger batches run the model faster per image (Fashion-MNIST
 * at 32: ~300 img/s at 64, ~265 at 4) and spread the pipeline's per-batch
 * costs (its overhead there: 8.8 % at 64, 18.5 % at 4; README), while wasm's
 * 4 GB heap limits large tokenizers at 256 px to small batches.
 */
export function defaultBatchSize(imageSize: number): number {
  checkInt('imageSize', imageSize, 1, 65535);
  return Math.max(1, Math.min(64, Math.floor((16 * 128 * 128) / (imageSize * imageSize))));
}

/**
 * Tokenizes a dataset into token shards in `options.out` (see the top of this file).
 *
 * Example:
 *   const { manifest } = await tokenizeDataset({ inputs: ['photos/'], out: 'tokens/', tokenizer });
 *   manifest.counts  // { inputs: 1632, records: 1630, errors: 2, byReason: { corrupt: 1, 'zero-byte': 1, ... } }
 */
export async function tokenizeDataset(options: Partial<TokenizeOptions>): Promise<TokenizeResult> {
  const t0 = performance.now();
  const checked = checkOptions(options);
  const { opts, tokenizer } = checked;
  const S = tokenizer.imageSize;
  const image: LoadContext['image'] = { size: S, fit: opts.fit, background: opts.background, kernel: opts.kernel, maxPixels: opts.maxPixels, failOn: opts.failOn };
  // Decoded images wait in the queue in reused buffers, so that the decoder's fresh arrays die young (see pixel-pool.ts).
  const pool = new PixelPool(S * S * 3);
  // Started before the inputs are enumerated, so that the threads load their modules meanwhile. With workers, the
  // decoder writes straight into the pooled buffer (and the main thread adds the mapping file's labels).
  const workers =
    opts.workers > 0 ? new LoadWorkers(opts.workers, { image, maxFileBytes: opts.maxFileBytes, concurrency: Math.ceil(opts.concurrency / opts.workers), nice: opts.workerNice }, pool) : null;
  try {
    return await tokenizePlanned(await plan(checked), t0, image, pool, workers);
  } finally {
    workers?.close();
  }
}

async function tokenizePlanned(p: Plan, t0: number, image: LoadContext['image'], pool: PixelPool, workers: LoadWorkers | null): Promise<TokenizeResult> {
  const { opts, tokenizer, part, run, runOptions, inputs } = p;
  const dir = opts.out;
  const manifestFile = path.join(dir, manifestFileName(part));
  const state = await prepareOutDir(dir, run, runOptions, part, opts.resume);
  if (state.manifest) {
    await verifyManifestShards(dir, state.manifest);
    return { dir, manifestFile, manifest: state.manifest, written: 0, resumed: state.manifest.shards.length, processed: 0, seconds: (performance.now() - t0) / 1000, imagesPerSecond: 0, peakPrefetched: 0, loadedByWorkers: 0, pixelBuffers: 0 };
  }

  const R = opts.recordsPerShard;
  const nShards = shardCount(inputs.length, R);
  const slice = (k: number): [number, number] => [k * R, Math.min((k + 1) * R, inputs.length)];
  // Shards done, with their skipped inputs; null for shards kept from an earlier attempt (read from the file at the end).
  const done = new Map<number, { entry: ShardEntry; skipped: SkippedInput[] | null }>();
  const journal: ProgressJournal = { format: PROGRESS_FORMAT, version: PROGRESS_VERSION, run, options: runOptions, part, done: [] };

  // Resume: keep the shards that are whole and belong to this run; redo the rest.
  const journalled = new Map((state.journal?.done ?? []).map((e) => [e.shard, e]));
  for (const [k, name] of state.shards) {
    const file = path.join(dir, name);
    if (k >= nShards) throw new VtokError('INVALID_INPUT', `${file} is shard ${k} but this part has only ${nShards} shards: the folder belongs to another input set`, { subject: file });
    const known = journalled.get(k);
    if (known?.file === name && (await sha256File(file).catch(() => '')) === known.sha256) {
      done.set(k, { entry: known, skipped: null });
      continue;
    }
    const adopted = await adoptShard(file, name, k, slice(k), p);
    if (adopted) done.set(k, adopted);
    else await fsp.rm(file, { force: true });
  }

  const todo: number[] = [];
  for (let k = 0; k < nShards; k++) if (!done.has(k)) todo.push(k);
  const resumed = done.size;
  // The inputs to do, as indices into `inputs` (each one's object is built only when it is loaded).
  const work = new Uint32Array(todo.reduce((n, k) => n + slice(k)[1] - slice(k)[0], 0));
  let at = 0;
  for (const k of todo) {
    const [a, b] = slice(k);
    for (let j = a; j < b; j++) work[at++] = j;
  }

  const [h, w] = tokenizer.gridShape;
  const S = tokenizer.imageSize;
  const perImage = S * S * 3;
  const codeDtype = idDtype(tokenizer.codebookSize);
  const bpeDtype = idDtype(opts.bpe ? opts.bpe.vocabSize : 1);
  const reader = new RangeReader();
  const ctx: LoadContext = { reader, labels: p.labels, image, maxFileBytes: opts.maxFileBytes };
  const B = opts.batchSize;
  const pooled = (r: LoadResult): LoadResult => (r.ok && r.value.pixels.length === perImage ? { ok: true, value: { ...r.value, pixels: pool.copy(r.value.pixels) } } : r);
  // With workers the whole window is sent at once (they queue it, running `concurrency` loads at a time): while the
  // model holds the main thread, nothing new can be sent.
  const window = opts.concurrency + opts.queueDepth * B + B;
  // The first batch is loaded here, `concurrency` at a time, while the workers boot on the other core; the rest goes
  // to the workers from the start (their messages wait for them), so that they decode the next batches while the
  // model encodes this one. Workers that are up already take the first batch too; workers that cannot start leave
  // their inputs here. Either way the mapping file's labels are added here.
  const loadHere = limitConcurrency(opts.concurrency, (input: DatasetInput) => loadInputUnlabelled(input, ctx).then(pooled));
  workers?.setFallback(loadHere);
  const load = (input: DatasetInput, i: number): Promise<LoadResult> =>
    (workers && (i >= B || workers.ready) ? workers.load(input) : loadHere(input)).then((r) => withLabels(r, p.labels));
  const prefetch = new OrderedPrefetch<number, LoadResult>(work, (j, i) => load(inputs.get(j), i), workers ? { concurrency: window, window, chunk: B } : { concurrency: opts.concurrency, window });
  const batchBuf = new Float32Array(B * perImage); // [B, S, S, 3]

  let records = 0;
  let skipped = 0;
  for (const d of done.values()) {
    records += d.entry.records;
    skipped += d.entry.errors;
  }
  const tStart = performance.now();
  let processed = 0;
  const report = (): void => {
    if (!opts.onProgress) return;
    const elapsed = (performance.now() - tStart) / 1000;
    opts.onProgress({
      done: records + skipped,
      total: inputs.length,
      records,
      skipped,
      shardsDone: done.size,
      shards: nShards,
      imagesPerSecond: elapsed > 0 ? processed / elapsed : 0,
      elapsedSeconds: elapsed,
    });
  };
  report();

  try {
    for (const k of todo) {
      const [a, b] = slice(k);
      const shardRecords: TokenRecord[] = [];
      const shardSkipped: SkippedInput[] = [];
      for (let start = a; start < b; start += B) {
        const n = Math.min(B, b - start);
        const good: LoadedInput[] = [];
        for (let i = 0; i < n; i++) {
          const r = await prefetch.next();
          if (r.ok) {
            batchBuf.set(r.value.pixels, good.length * perImage);
            if (r.value.pixels.length === perImage) pool.give(r.value.pixels);
            good.push({ ...r.value, pixels: EMPTY_PIXELS }); // the buffer is back in the pool
          } else {
            shardSkipped.push(r.skipped);
          }
        }
        if (good.length > 0) {
          const images = good.length === B ? batchBuf : batchBuf.subarray(0, good.length * perImage); // [b, S, S, 3]
          const codes = await tokenizer.encodeBatch(images, good.length); // [b, h, w]
          checkCodes(codes, good.length, h, w, tokenizer);
          good.forEach((v, i) => {
            const grid = codes.slice(i * h * w, (i + 1) * h * w); // [h, w]
            shardRecords.push({
              key: v.input.key,
              source: v.input.source,
              sha256: v.sha256,
              width: v.width,
              height: v.height,
              shape: [h, w],
              codes: opts.storeCodes ? grid : null,
              bpe: opts.bpe ? Int32Array.from(opts.bpe.encode(grid, h, w)) : null,
              label: v.fields.label,
              caption: v.fields.caption,
            });
          });
        }
        processed += n;
        records += good.length;
        skipped += n - good.length;
        report();
      }
      const name = shardFileName(part, k);
      const written = await writeShard(path.join(dir, name), {
        run,
        tokenizer: tokenizer.id,
        part: [part.index, part.count],
        shard: k,
        slice: [a, b],
        codeDtype,
        bpeDtype,
        records: shardRecords,
        skipped: shardSkipped,
      });
      const entry: ShardEntry = { file: name, sha256: written.sha256, bytes: written.bytes, part: part.index, shard: k, records: shardRecords.length, errors: shardSkipped.length };
      done.set(k, { entry, skipped: shardSkipped });
      journal.done = [...done.keys()].sort((x, y) => x - y).map((x) => (done.get(x) as { entry: ShardEntry }).entry);
      await writeJsonAtomic(path.join(dir, progressFileName(part)), journal);
      report();
    }
  } finally {
    await reader.close();
  }

  const ordered = [...done.keys()].sort((x, y) => x - y).map((k) => done.get(k) as { entry: ShardEntry; skipped: SkippedInput[] | null });
  const allSkipped: SkippedInput[] = [];
  for (const d of ordered) {
    // A shard kept from an earlier attempt holds its skipped inputs (checked against the journal's sha256 above).
    const skippedHere = d.skipped ?? (d.entry.errors === 0 ? [] : (await readShard(path.join(dir, d.entry.file), d.entry.sha256)).skipped);
    for (const x of skippedHere) allSkipped.push(x);
  }
  const byReason = emptyReasonCounts();
  for (const s of allSkipped) byReason[s.reason]++;
  const errorsName = errorsFileName(part);
  await writeFileAtomic(path.join(dir, errorsName), errorsJsonl(allSkipped));
  const manifest: TokenManifest = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    run,
    options: runOptions,
    part,
    merged: 0,
    counts: {
      inputs: inputs.length,
      records: ordered.reduce((s, d) => s + d.entry.records, 0),
      errors: allSkipped.length,
      byReason,
    },
    shards: ordered.map((d) => d.entry),
    errors: errorsName,
    inputSpecs: [...opts.inputs],
  };
  await writeJsonAtomic(manifestFile, manifest);
  await fsp.rm(path.join(dir, progressFileName(part)), { force: true });
  const seconds = (performance.now() - t0) / 1000;
  const work_s = (performance.now() - tStart) / 1000;
  return {
    dir,
    manifestFile,
    manifest,
    written: todo.length,
    resumed,
    processed,
    seconds,
    imagesPerSecond: work_s > 0 ? processed / work_s : 0,
    peakPrefetched: prefetch.peakHeld,
    loadedByWorkers: workers?.loaded ?? 0,
    pixelBuffers: pool.allocated,
  };
}

const EMPTY_PIXELS = new Float32Array(0);

function checkCodes(codes: unknown, batch: number, h: number, w: number, t: ImageTokenizer): asserts codes is Int32Array {
  if (!(codes instanceof Int32Array) || codes.length !== batch * h * w) {
    throw new VtokError('INVALID_INPUT', `Tokenizer ${t.id} returned ${codes instanceof Int32Array ? `${codes.length} codes` : 'no Int32Array'} for a batch of ${batch} images; expected ${batch} x ${h} x ${w}`);
  }
  const K = t.codebookSize;
  for (let i = 0; i < codes.length; i++) {
    if (!(codes[i] >= 0 && codes[i] < K)) throw new VtokError('INVALID_INPUT', `Tokenizer ${t.id} returned code ${codes[i]} at position ${i}; codes must be in 0..${K - 1}`);
  }
}

/**
 * A shard found on resume that the journal does not list (the kill fell
 * between its rename and the journal's): kept when it is readable, of this
 * run, and holds exactly its slice's inputs. A shard of another run is an
 * error (it is not ours to delete); a damaged one is redone.
 */
async function adoptShard(file: string, name: string, k: number, slice: [number, number], p: Plan): Promise<{ entry: ShardEntry; skipped: SkippedInput[] } | null> {
  let s: Awaited<ReturnType<typeof readShard>>;
  try {
    s = await readShard(file);
  } catch {
    return null;
  }
  if (s.run !== p.run) {
    throw new VtokError('INVALID_OPTION', `Refusing to resume in ${path.dirname(file)}: ${name} belongs to another run (options or inputs differ); choose another folder`, { subject: 'out' });
  }
  const keys = [...s.records.map((r) => r.key), ...s.skipped.map((x) => x.key)].sort();
  const expect: string[] = [];
  for (let j = slice[0]; j < slice[1]; j++) expect.push(p.inputs.key(j));
  expect.sort();
  const same = s.shard === k && s.slice[0] === slice[0] && s.slice[1] === slice[1] && keys.length === expect.length && keys.every((key, i) => key === expect[i]);
  if (!same) return null;
  return {
    entry: { file: name, sha256: s.sha256, bytes: s.bytes, part: p.part.index, shard: k, records: s.records.length, errors: s.skipped.length },
    skipped: s.skipped,
  };
}

/** Checks that every shard a finished manifest lists is there, whole. */
async function verifyManifestShards(dir: string, m: TokenManifest): Promise<void> {
  for (const s of m.shards) {
    const file = path.join(dir, s.file);
    const sha = await sha256File(file).catch(() => null);
    if (sha === null) throw new VtokError('STORE_CORRUPT', `${file} is missing but ${manifestFileName(m.part)} lists it`, { subject: file });
    if (sha !== s.sha256) throw new VtokError('STORE_CORRUPT', `${file} is damaged: its sha256 is ${sha} but the manifest records ${s.sha256}`, { subject: file });
  }
}
