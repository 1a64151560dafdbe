/**
 * Fréchet distance between two image folders in an extractor's feature space
 * (docs/EVAL.md): images are read in batches, features accumulated in float64
 * by FeatureStats, so a folder never sits in memory at once. The score is
 * named by scoreLabel ('FID' only for pytorch-fid's Inception) and N is always
 * reported.
 */
import { readdir } from 'node:fs/promises';
import { join, extname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { VtokError, checkInt, resolveOptions } from '../src/core/errors';
import { FeatureStats, frechetDistance, illConditionedNote } from '../src/core/metrics';
import { IMAGE_EXTS } from '../src/io/dataset';
import { readImageBatch } from '../src/io/image';
import { scoreLabel, type FeatureExtractor } from '../src/tf/features';

/** Image files directly in `dir` (sorted by name); a clear error when there are none. */
export async function listImages(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new VtokError('FILE_NOT_FOUND', `Expected an image folder but cannot read ${dir}: ${(err as Error).message}`);
  }
  const files = names.filter((n) => IMAGE_EXTS.includes(extname(n).slice(1).toLowerCase())).sort().map((n) => join(dir, n));
  if (files.length === 0) throw new VtokError('INVALID_INPUT', `Expected image files (${IMAGE_EXTS.join(', ')}) in ${dir} but found none`);
  return files;
}

export interface FeatureStatsOptions {
  /** Images read and passed to the extractor at a time. Default 32. */
  batchSize: number;
  /** Use only the first N images (by name). Default all. */
  limit: number | undefined;
}

const STATS_DEFAULTS: FeatureStatsOptions = { batchSize: 32, limit: undefined };

/** Streams the images of `files` through `extractor`, accumulating float64 feature statistics. */
export async function imageFeatureStats(files: readonly string[], extractor: FeatureExtractor, options?: Partial<FeatureStatsOptions>): Promise<FeatureStats> {
  const opts = resolveOptions('imageFeatureStats', STATS_DEFAULTS, options);
  const batchSize = checkInt('batchSize', opts.batchSize, 1);
  const list = opts.limit === undefined ? files : files.slice(0, checkInt('limit', opts.limit, 1));
  const stats = new FeatureStats(extractor.dim);
  for (let start = 0; start < list.length; start += batchSize) {
    const batch = await readImageBatch(list.slice(start, start + batchSize), { size: extractor.inputSize });
    const images = tf.tensor4d(batch.data, batch.shape); // [B, S, S, 3] in [-1, 1]
    try {
      stats.add(await extractor.extract(images));
    } finally {
      images.dispose();
    }
  }
  return stats;
}

export interface EvalFidOptions extends Partial<FeatureStatsOptions> {
  dirA: string;
  dirB: string;
  extractor: FeatureExtractor;
}

export interface FidReport {
  /** 'FID' for the standard extractor, else 'FD[name]'. */
  label: string;
  distance: number;
  meanTerm: number;
  covTerm: number;
  extractor: { name: string; description: string; dim: number; standard: boolean };
  nA: number;
  nB: number;
  dirA: string;
  dirB: string;
  /** Set when N <= D (ill-conditioned covariance). */
  note: string | undefined;
  seconds: number;
}

/** Fréchet distance between the images of two folders; FD(X, X) is exactly 0. */
export async function evalFid(options: EvalFidOptions): Promise<FidReport> {
  const t0 = performance.now();
  const { dirA, dirB, extractor } = options;
  const filesA = await listImages(dirA);
  const filesB = await listImages(dirB);
  const statOpts = { batchSize: options.batchSize, limit: options.limit };
  const a = (await imageFeatureStats(filesA, extractor, statOpts)).finalize();
  const b = (await imageFeatureStats(filesB, extractor, statOpts)).finalize();
  const fd = frechetDistance(a, b);
  const nMin = Math.min(a.n, b.n);
  return {
    label: scoreLabel(extractor),
    distance: fd.distance,
    meanTerm: fd.meanTerm,
    covTerm: fd.covTerm,
    extractor: { name: extractor.name, description: extractor.description, dim: extractor.dim, standard: extractor.standard },
    nA: a.n,
    nB: b.n,
    dirA,
    dirB,
    note: nMin <= extractor.dim ? illConditionedNote(nMin, extractor.dim) : undefined,
    seconds: (performance.now() - t0) / 1000,
  };
}
