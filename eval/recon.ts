/**
 * Reconstruction quality of a tokenizer on an image folder (docs/EVAL.md):
 * every image is encoded to codes and decoded back, then scored.
 *
 *   image --readImage(size S, centre crop)--> x --encode--> codes --decode--> x'
 *   PSNR, SSIM   per image on 8-bit x and x' (x' clipped and rounded: what a PNG holds),
 *                R = 255; SSIM with scikit-image's defaults (7x7 uniform, sample covariance)
 *   usage, perplexity   of one CodeHistogram over every code of every image
 *   Fréchet distance    between extractor features of x and x' (both 8-bit), float64
 *                       statistics; "rFID" only with pytorch-fid's Inception weights,
 *                       otherwise "FD[<extractor>]"; N always reported
 *
 * Image size: every image is read at the tokenizer's own image size S (centre
 * crop, lanczos3), exactly as `vtok tokenize` feeds it, never at its native size:
 * a tokenizer is scored on the inputs it was built for, all batches share one
 * shape, and numbers from folders of mixed sizes stay comparable. Both sides of
 * every score are that S x S crop, quantized to 8 bits.
 *
 * Memory is bounded: images stream through in batches; what is kept is one
 * number pair per image, the code histogram, the float64 feature sums, the
 * first `samples` image pairs and the `worst` image pairs.
 *
 * The report folder gets report.json (every number), report.html (no external
 * assets; PNGs linked relatively, the usage histogram inline SVG) and the PNGs,
 * each written atomically, report.json last.
 *
 * Example:
 *   const r = await evalRecon({ tokenizer: 'default', data: 'photos/', out: 'report/', limit: 500 });
 *   r.metrics.psnr.mean, r.metrics.ssim.mean, r.metrics.codebook.perplexity, r.metrics.frechet?.label
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { VtokError, checkInt, checkOneOf, invalidOption, resolveOptions } from '../src/core/errors';
import { CodeHistogram, FeatureStats, frechetDistance, illConditionedNote, meanPsnr, psnr, quantizeToUint8, ssim, type CodebookStats, type PsnrSummary } from '../src/core/metrics';
import { writeFileAtomic } from '../src/io/atomic';
import { loadFeatureExtractor, type FeatureExtractorSpec } from '../src/io/feature-models';
import { readImageBatch, writeImageGrid, type GridImage, type ImageFit } from '../src/io/image';
import type { StoreSetOptions } from '../src/io/store';
import { loadTokenizer } from '../src/io/tokenizer-bundle';
import { scoreLabel, type FeatureExtractor } from '../src/tf/features';
import type { TokenizerModel } from '../src/tf/tokenizer';
import { listImages } from './fid';
import { renderReconHtml } from './recon-html';

export const RECON_REPORT_FORMAT = 'vtok-recon-report';
export const RECON_REPORT_VERSION = 1;

/** The extractor used when none is named: shipped with the nsfwjs package, small (1280-d), 224 px input. */
export const DEFAULT_RECON_EXTRACTOR: FeatureExtractorSpec = { kind: 'nsfwjs-mobilenet-v2' };

/** PSNR of identical images (+Infinity) is replaced by this in the mean, and the report says so. */
export const PSNR_CAP = 100;

/** A tokenizer already in memory (loadTokenizer's result fits). */
export interface ReconTokenizer {
  model: TokenizerModel;
  /** Side of the square images the tokenizer takes. */
  imageSize: number;
  /** Content id of its bundle; default: 'unsaved model'. */
  id?: string;
  /** Its name or label; default: the id. */
  name?: string;
}

export interface EvalReconOptions {
  /** A bundle name, id or id prefix in the store (loaded and freed here), or a tokenizer in memory (not freed). Required. */
  tokenizer: string | ReconTokenizer | undefined;
  /** Store options for a tokenizer given by name. Default: VTOK_STORE or ~/.vtok/store, then codebooks/. */
  store: StoreSetOptions;
  /** Folder of images (files directly in it, sorted by name). Required. */
  data: string | undefined;
  /** Report folder: missing, empty, or an earlier recon report (replaced). Required. */
  out: string | undefined;
  /** Images per encode/decode call. Default 8. */
  batchSize: number;
  /** Use only the first N images (by name). Default all. */
  limit: number | undefined;
  /**
   * Features for the Fréchet distance: an extractor (not freed here), a spec to
   * load one (freed here), or null for none. Default { kind: 'nsfwjs-mobilenet-v2' }.
   */
  extractor: FeatureExtractor | FeatureExtractorSpec | null | undefined;
  /** The K images with the lowest PSNR, shown in the report. Default 8. */
  worst: number;
  /** The first N images shown as original-vs-reconstruction grids. Default 8. */
  samples: number;
  /** How images reach the tokenizer's size. Default 'crop' (centre crop), as `vtok tokenize`. */
  fit: ImageFit;
  /**
   * Side S of the square images scored, a multiple of the tokenizer's downsample
   * factor (the model is fully convolutional). Default undefined: the tokenizer's
   * own image size.
   */
  size: number | undefined;
  /** Called after each batch. Default none. */
  onProgress: ((p: ReconProgress) => void) | undefined;
}

export interface ReconProgress {
  done: number;
  total: number;
  /** Mean PSNR so far (dB, identical images capped); NaN before any image was scored. */
  psnr: number;
}

const DEFAULTS: EvalReconOptions = {
  tokenizer: undefined,
  store: {},
  data: undefined,
  out: undefined,
  batchSize: 8,
  limit: undefined,
  extractor: undefined,
  worst: 8,
  samples: 8,
  fit: 'crop',
  size: undefined,
  onProgress: undefined,
};

export interface ImageScore {
  /** File name inside the data folder. */
  file: string;
  /** dB; +Infinity (written "Infinity" in report.json) for an exact reconstruction. */
  psnr: number;
  ssim: number;
}

export interface FrechetReport {
  /** 'rFID' only for pytorch-fid's Inception with its own weights, else 'FD[<extractor name>]'. */
  label: string;
  distance: number;
  meanTerm: number;
  covTerm: number;
  /** Images on each side. */
  n: number;
  extractor: { name: string; description: string; dim: number; standard: boolean };
  /** Set when N <= D (ill-conditioned covariance). */
  note: string | undefined;
}

export interface ReconReport {
  format: typeof RECON_REPORT_FORMAT;
  version: number;
  createdAt: string;
  tokenizer: { id: string; name: string; imageSize: number; codebookSize: number; grid: [number, number] };
  data: { dir: string; listed: number; evaluated: number; limit: number | null; skipped: { file: string; code: string; message: string }[] };
  /** How images were brought to the tokenizer's size, and how they were scored. */
  method: { preprocessing: string; psnr: string; ssim: string; usage: string; frechet: string };
  backend: string;
  metrics: {
    psnr: PsnrSummary & { dataRange: 255 };
    ssim: { mean: number; n: number; dataRange: 255; variant: 'skimage' };
    codebook: CodebookStats;
    /** null when no extractor was used, or when fewer than 2 images were scored. */
    frechet: FrechetReport | null;
  };
  /**
   * wallSeconds: the whole call (loading the tokenizer and extractor, writing the report);
   * loopSeconds: reading, encoding, decoding, scoring and features of all images;
   * imagesPerSecond: images / loopSeconds; modelSeconds, featureSeconds: their parts of the loop.
   */
  timings: { wallSeconds: number; loopSeconds: number; modelSeconds: number; featureSeconds: number; imagesPerSecond: number };
  /** The lowest-PSNR images, worst first, with the PNG that shows each. */
  worst: (ImageScore & { rank: number; png: string; width: number; height: number })[];
  /** Grids of original (top row) and reconstruction (bottom row), with their pixel size. */
  samples: { png: string; files: string[]; width: number; height: number }[];
  /** Every image's scores, in file order. */
  images: ImageScore[];
  /** Files of the report, relative to its folder. */
  files: { json: string; html: string; pngs: string[] };
}

/** One image pair kept for display: 8-bit [S, S, 3]. */
interface KeptPair extends ImageScore {
  original: Uint8Array;
  recon: Uint8Array;
}

/** Files a recon report folder may hold (temporary files of atomic writes included). */
const REPORT_FILE = /^(report\.json|report\.html|samples-\d+\.png|worst-\d+\.png)$/;
const TEMP_FILE = /^\..+\.\d+\.[0-9a-f]+\.tmp$/;

/**
 * Makes sure `out` may receive a report: created when missing; an empty folder,
 * an earlier recon report, or what an interrupted one left (only report file
 * names, no foreign report.json) is fine; anything else is refused, untouched.
 * Returns the names of the earlier report's files.
 */
export async function prepareReportDir(out: string): Promise<string[]> {
  const refuse = (why: string): VtokError => new VtokError('INVALID_OPTION', `Refusing to write a report into ${out}: ${why}`, { subject: 'out' });
  let names: string[];
  try {
    const st = await fsp.stat(out);
    if (!st.isDirectory()) throw refuse('it is a file, not a folder');
    names = (await fsp.readdir(out)).sort();
  } catch (err) {
    if (err instanceof VtokError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new VtokError('IO', `Could not read ${out}: ${(err as Error).message}`, { subject: 'out', cause: err });
    await fsp.mkdir(out, { recursive: true }).catch((e) => {
      throw new VtokError('IO', `Could not create ${out}: ${(e as Error).message}`, { subject: 'out', cause: e });
    });
    return [];
  }
  if (names.length === 0) return [];
  const foreign = names.filter((n) => !REPORT_FILE.test(n) && !TEMP_FILE.test(n));
  let format: unknown;
  try {
    format = (JSON.parse(await fsp.readFile(path.join(out, 'report.json'), 'utf8')) as { format?: unknown }).format;
  } catch {
    format = undefined;
  }
  // An interrupted run leaves report files without report.json (it is written last): reusable too.
  if (foreign.length > 0 || (names.includes('report.json') && format !== RECON_REPORT_FORMAT)) {
    const shown = (foreign.length > 0 ? foreign : names).slice(0, 3).join(', ');
    throw refuse(`it is not empty and is not a vtok recon report (it holds ${shown}${names.length > 3 ? ', ...' : ''}); choose an empty or new folder`);
  }
  return names;
}

function resolveTokenizerArg(t: unknown): void {
  if (typeof t === 'string' && t !== '') return;
  if (t !== null && typeof t === 'object' && 'model' in t && 'imageSize' in t) return;
  throw invalidOption('tokenizer', 'a tokenizer name, id or id prefix, or a loaded tokenizer { model, imageSize }', t);
}

/** JSON with +-Infinity written as strings (JSON has no Infinity). */
function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) && !Number.isNaN(v) ? (v > 0 ? 'Infinity' : '-Infinity') : v), 2) + '\n';
}

/** 8-bit [..., 3] -> float [-1, 1], readImage's mapping. */
function toModelRange(u8: Uint8Array): Float32Array {
  const out = new Float32Array(u8.length);
  for (let i = 0; i < u8.length; i++) out[i] = u8[i] / 127.5 - 1;
  return out;
}

/**
 * Encodes and decodes a folder of images, scores the reconstructions and
 * writes the report (report.json, report.html, PNGs) into `out`.
 */
export async function evalRecon(options: Partial<EvalReconOptions>): Promise<ReconReport> {
  const t0 = performance.now();
  const opts = resolveOptions('evalRecon', DEFAULTS, options);
  resolveTokenizerArg(opts.tokenizer);
  if (typeof opts.data !== 'string' || opts.data === '') throw invalidOption('data', 'the path of an image folder', opts.data);
  if (typeof opts.out !== 'string' || opts.out === '') throw invalidOption('out', 'the path of a report folder', opts.out);
  const batchSize = checkInt('batchSize', opts.batchSize, 1, 4096);
  const limit = opts.limit === undefined ? undefined : checkInt('limit', opts.limit, 1);
  const worstK = checkInt('worst', opts.worst, 0, 1000);
  const samplesN = checkInt('samples', opts.samples, 0, 1000);
  const fit = checkOneOf('fit', opts.fit, ['crop', 'pad'] as const);
  if (opts.onProgress !== undefined && typeof opts.onProgress !== 'function') throw invalidOption('onProgress', 'a function', opts.onProgress);
  const dataDir = opts.data;
  const out = opts.out;

  // Check the inputs before loading anything heavy; the out folder before any work.
  const listed = await listImages(dataDir);
  const files = limit === undefined ? listed : listed.slice(0, limit);
  const earlier = await prepareReportDir(out);

  const owned: { dispose(): void }[] = [];
  try {
    let tok: ReconTokenizer;
    if (typeof opts.tokenizer === 'string') {
      const t = await loadTokenizer(opts.tokenizer, opts.store);
      owned.push(t.model);
      tok = { model: t.model, imageSize: t.imageSize, id: t.id, name: t.bundle.name };
    } else {
      tok = opts.tokenizer as ReconTokenizer;
    }
    const S = opts.size === undefined ? checkInt('tokenizer.imageSize', tok.imageSize, 1, 65535) : checkInt('size', opts.size, 1, 65535);
    const model = tok.model;
    const grid = model.gridShape(S, S); // throws, naming S, unless S is a multiple of the downsample factor
    const K = model.config.codebookSize;

    let extractor: FeatureExtractor | null = null;
    const ex = opts.extractor === undefined ? DEFAULT_RECON_EXTRACTOR : opts.extractor;
    if (ex !== null) {
      if (typeof (ex as FeatureExtractor).extract === 'function') {
        extractor = ex as FeatureExtractor;
      } else if (typeof ex === 'object' && typeof (ex as FeatureExtractorSpec).kind === 'string') {
        extractor = await loadFeatureExtractor(ex as FeatureExtractorSpec);
        owned.push(extractor);
      } else {
        throw invalidOption('extractor', 'a FeatureExtractor, a spec such as { kind: "nsfwjs-mobilenet-v2" }, or null', ex);
      }
    }

    const hist = new CodeHistogram(K);
    const statsA = extractor ? new FeatureStats(extractor.dim) : null;
    const statsB = extractor ? new FeatureStats(extractor.dim) : null;
    const scores: ImageScore[] = [];
    const skipped: ReconReport['data']['skipped'] = [];
    const kept: KeptPair[] = [];
    let worst: KeptPair[] = []; // lowest PSNR first, at most worstK
    let modelSeconds = 0;
    let featureSeconds = 0;
    const perImage = S * S * 3;
    const tLoop = performance.now();
    let cappedSum = 0; // running PSNR sum for progress (identical images counted as PSNR_CAP)

    for (let start = 0; start < files.length; start += batchSize) {
      const paths = files.slice(start, start + batchSize);
      const batch = await readImageBatch(paths, { size: S, fit, onError: 'skip' });
      for (const e of batch.errors) skipped.push({ file: path.basename(e.input), code: e.code, message: e.message });
      const B = batch.items.length;
      const done = Math.min(files.length, start + batchSize);
      if (B === 0) {
        opts.onProgress?.({ done, total: files.length, psnr: scores.length ? cappedSum / scores.length : NaN });
        continue;
      }

      const tm = performance.now();
      const codesT = tf.tidy(() => model.encode(tf.tensor4d(batch.data, batch.shape))); // [B, h, w]
      let codes: Int32Array;
      let reconF: Float32Array;
      try {
        codes = Int32Array.from(await codesT.data());
        const reconT = tf.tidy(() => model.decode(codesT)); // [B, S, S, 3] in [-1, 1]
        try {
          reconF = (await reconT.data()) as Float32Array;
        } finally {
          reconT.dispose();
        }
      } finally {
        codesT.dispose();
      }
      modelSeconds += (performance.now() - tm) / 1000;
      hist.add(codes);

      const orig8 = quantizeToUint8(batch.data, [-1, 1]); // [B, S, S, 3]; exact for 8-bit files
      const recon8 = quantizeToUint8(reconF, [-1, 1]);
      for (let i = 0; i < B; i++) {
        const a = orig8.subarray(i * perImage, (i + 1) * perImage);
        const b = recon8.subarray(i * perImage, (i + 1) * perImage);
        const s: ImageScore = { file: path.basename(paths[batch.items[i].index]), psnr: psnr(a, b), ssim: ssim(a, b, { width: S, height: S, channels: 3 }) };
        scores.push(s);
        cappedSum += Math.min(s.psnr, PSNR_CAP);
        if (kept.length < samplesN) kept.push({ ...s, original: a.slice(), recon: b.slice() });
        if (worstK > 0 && (worst.length < worstK || s.psnr < worst[worst.length - 1].psnr)) {
          worst.push({ ...s, original: a.slice(), recon: b.slice() });
          worst.sort((x, y) => (x.psnr < y.psnr ? -1 : x.psnr > y.psnr ? 1 : 0)); // stable: ties keep file order
          worst = worst.slice(0, worstK);
        }
      }

      if (extractor && statsA && statsB) {
        const tf0 = performance.now();
        for (const [stats, u8] of [
          [statsA, orig8],
          [statsB, recon8],
        ] as const) {
          const x = tf.tensor4d(toModelRange(u8), [B, S, S, 3]);
          try {
            stats.add(await extractor.extract(x));
          } finally {
            x.dispose();
          }
        }
        featureSeconds += (performance.now() - tf0) / 1000;
      }
      opts.onProgress?.({ done, total: files.length, psnr: cappedSum / scores.length });
    }
    if (scores.length === 0) {
      throw new VtokError('INVALID_INPUT', `Expected readable images in ${dataDir} but all ${files.length} failed, e.g. ${skipped[0]?.file}: ${skipped[0]?.message}`);
    }

    const loopSeconds = (performance.now() - tLoop) / 1000;

    let frechet: FrechetReport | null = null;
    if (extractor && statsA && statsB && scores.length >= 2) {
      const fd = frechetDistance(statsA.finalize(), statsB.finalize());
      frechet = {
        label: extractor.standard ? 'rFID' : scoreLabel(extractor),
        distance: fd.distance,
        meanTerm: fd.meanTerm,
        covTerm: fd.covTerm,
        n: scores.length,
        extractor: { name: extractor.name, description: extractor.description, dim: extractor.dim, standard: extractor.standard },
        note: scores.length <= extractor.dim ? illConditionedNote(scores.length, extractor.dim) : undefined,
      };
    }

    // PNGs first, then the page, then report.json: a complete report.json means a complete report.
    const samples: ReconReport['samples'] = [];
    for (let g = 0; g * 8 < kept.length; g++) {
      const chunk = kept.slice(g * 8, g * 8 + 8);
      const png = `samples-${String(g + 1).padStart(2, '0')}.png`;
      const cells: GridImage[] = [
        ...chunk.map((p) => ({ data: p.original, width: S, height: S, label: p.file })),
        ...chunk.map((p) => ({ data: p.recon, width: S, height: S, label: `${formatDb(p.psnr)} dB` })),
      ];
      const g2 = await writeImageGrid(path.join(out, png), cells, { columns: chunk.length });
      samples.push({ png, files: chunk.map((p) => p.file), width: g2.width, height: g2.height });
    }
    const worstOut: ReconReport['worst'] = [];
    for (let r = 0; r < worst.length; r++) {
      const p = worst[r];
      const png = `worst-${String(r + 1).padStart(2, '0')}.png`;
      const g2 = await writeImageGrid(
        path.join(out, png),
        [
          { data: p.original, width: S, height: S, label: 'original' },
          { data: p.recon, width: S, height: S, label: 'recon' },
        ],
        { columns: 2 },
      );
      worstOut.push({ rank: r + 1, file: p.file, psnr: p.psnr, ssim: p.ssim, png, width: g2.width, height: g2.height });
    }

    const wallSeconds = (performance.now() - t0) / 1000;
    const pngs = [...samples.map((s) => s.png), ...worstOut.map((w) => w.png)];
    const report: ReconReport = {
      format: RECON_REPORT_FORMAT,
      version: RECON_REPORT_VERSION,
      createdAt: new Date().toISOString(),
      tokenizer: { id: tok.id ?? 'unsaved model', name: tok.name ?? tok.id ?? 'unsaved model', imageSize: S, codebookSize: K, grid },
      data: { dir: path.resolve(dataDir), listed: listed.length, evaluated: scores.length, limit: limit ?? null, skipped },
      method: {
        preprocessing: `each image ${fit === 'crop' ? 'centre-cropped' : 'padded'} to ${S}x${S} (lanczos3), ${S === tok.imageSize ? "the tokenizer's own size" : `not the tokenizer's training size ${tok.imageSize}`}; originals and reconstructions both clipped and rounded to 8 bits before scoring`,
        psnr: `10 log10(255^2 / MSE) per image on 8-bit RGB, mean over images; identical images (+Infinity) capped at ${PSNR_CAP} dB in the mean`,
        ssim: 'scikit-image structural_similarity defaults: 7x7 uniform window, sample covariance, K1 0.01, K2 0.03, data_range 255, per channel then averaged; mean over images',
        usage: 'one histogram of every code of every image: usage = codes used / K, perplexity = exp(entropy)',
        frechet: extractor
          ? `Fréchet distance between ${extractor.name} features of originals and reconstructions (float64 mean and N-1 covariance)` +
            (extractor.standard ? ': rFID (pytorch-fid Inception-v3 weights)' : `; not FID: comparable only with other FD[${extractor.name}] numbers`)
          : 'not computed (no extractor)',
      },
      backend: tf.getBackend(),
      metrics: {
        psnr: { ...meanPsnr(scores.map((s) => s.psnr), { cap: PSNR_CAP }), dataRange: 255 },
        ssim: { mean: scores.reduce((a, s) => a + s.ssim, 0) / scores.length, n: scores.length, dataRange: 255, variant: 'skimage' },
        codebook: hist.stats(),
        frechet,
      },
      timings: { wallSeconds, loopSeconds, modelSeconds, featureSeconds, imagesPerSecond: scores.length / loopSeconds },
      worst: worstOut,
      samples,
      images: scores,
      files: { json: 'report.json', html: 'report.html', pngs },
    };
    await writeFileAtomic(path.join(out, 'report.html'), renderReconHtml(report, hist.counts));
    await writeFileAtomic(path.join(out, 'report.json'), toJson(report));
    // An earlier report's PNGs that this one does not use, and temporary files of an interrupted run.
    for (const name of earlier) {
      if ((name.endsWith('.png') && !pngs.includes(name)) || TEMP_FILE.test(name)) await fsp.rm(path.join(out, name), { force: true });
    }
    return report;
  } finally {
    for (const o of owned) o.dispose();
  }
}

/** PSNR for labels: one decimal, 'inf' for identical images. */
export function formatDb(v: number): string {
  return Number.isFinite(v) ? v.toFixed(1) : 'inf';
}
