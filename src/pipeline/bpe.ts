/**
 * Visual BPE over a token folder, as library functions behind `vtok bpe ...`:
 * train merges on the code grids that `tokenizeDataset` wrote and store them
 * in a new tokenizer bundle (the tokenizer's weights plus the merges, with the
 * tokenizer as parent), and show the learned shapes as decoded image patches.
 */
import * as tf from '@tensorflow/tfjs';
import { BpeModel, trainBpe, type BpeTrainOptions, type CodeGrid } from '../core/bpe';
import { checkInt, VtokError } from '../core/errors';
import { iterateShards, readTokenDir } from '../io/dataset/shard';
import type { StoreSetOptions } from '../io/store';
import { saveTokenizer, type LoadedTokenizer } from '../io/tokenizer-bundle';
import { writeImageGrid, type GridImage } from '../io/image';

export interface TrainBpeFromTokensOptions {
  /** Token folder written by tokenizeDataset (records must hold code grids). Required. */
  dir: string;
  /** The tokenizer the tokens were made with (its id must match the manifest's). Required. */
  tokenizer: LoadedTokenizer;
  /** Trainer options (vocabSize or merges, mode, directions, minFrequency, maxShapeCells, priority). baseVocab is the tokenizer's K. */
  train: Partial<Omit<BpeTrainOptions, 'baseVocab'>>;
  /** Store name for the new bundle (tokenizer + merges). Default: none. */
  name?: string;
  store?: StoreSetOptions;
}

export interface TrainBpeFromTokensResult {
  /** Content id of the new tokenizer bundle. */
  id: string;
  parent: string;
  grids: number;
  vocabSize: number;
  merges: number;
  /** Mean tokens per image before (h*w) and after BPE, over the training grids. */
  tokensPerImage: { codes: number; bpe: number };
  seconds: number;
}

/** Reads every code grid of a token folder. */
export async function readCodeGrids(dir: string, expectTokenizer?: string): Promise<{ grids: CodeGrid[]; tokenizer: string }> {
  const { dir: root, manifest } = await readTokenDir(dir);
  const tokenizer = manifest.options.tokenizer.id;
  if (expectTokenizer !== undefined && tokenizer !== expectTokenizer) {
    throw new VtokError(
      'STORE_MISMATCH',
      `The tokens in ${dir} were made by tokenizer ${tokenizer.slice(0, 12)}, not ${expectTokenizer.slice(0, 12)}`,
      { subject: dir },
    );
  }
  const grids: CodeGrid[] = [];
  for await (const shard of iterateShards(root, manifest)) {
    for (const r of shard.records) {
      if (!r.codes) throw new VtokError('INVALID_INPUT', `Record ${r.key} in ${shard.file} holds no code grid (tokenized with BPE ids only)`, { subject: r.key });
      grids.push({ codes: r.codes, h: r.shape[0], w: r.shape[1] });
    }
  }
  if (grids.length === 0) throw new VtokError('INVALID_INPUT', `No records in ${dir}`, { subject: dir });
  return { grids, tokenizer };
}

/** Trains visual BPE on a token folder and stores tokenizer + merges as a new bundle. */
export async function trainBpeFromTokens(options: TrainBpeFromTokensOptions): Promise<TrainBpeFromTokensResult> {
  const t = options.tokenizer;
  const start = Date.now();
  const { grids } = await readCodeGrids(options.dir, t.id);
  const bpe = trainBpe(grids, { ...options.train, baseVocab: t.model.config.codebookSize });
  let cells = 0;
  let tokens = 0;
  for (const g of grids) {
    cells += g.h * g.w;
    tokens += bpe.encode(g.codes, g.h, g.w).length;
  }
  const id = await saveTokenizer(t.model, {
    imageSize: t.imageSize,
    name: options.name,
    label: options.name ?? `${t.bundle.name}+bpe${bpe.vocabSize}`,
    bpe,
    meta: { ...(t.bundle.meta as Record<string, unknown> | undefined), bpe: { trainedOn: options.dir, grids: grids.length, options: options.train } },
    parents: [t.id],
    store: options.store,
  });
  return {
    id,
    parent: t.id,
    grids: grids.length,
    vocabSize: bpe.vocabSize,
    merges: bpe.numMerges,
    tokensPerImage: { codes: cells / grids.length, bpe: tokens / grids.length },
    seconds: (Date.now() - start) / 1000,
  };
}

export interface InspectedMerge {
  id: number;
  /** Cells (dy, dx, base code) relative to the anchor. */
  cells: { dy: number; dx: number; code: number }[];
  /** Merges the rule made when it was chosen during training. */
  count: number;
}

/** The merged tokens with the largest training counts (ties: earlier merges first). */
export function topMerges(bpe: BpeModel, top: number): InspectedMerge[] {
  checkInt('top', top, 1);
  const rules = Array.from({ length: bpe.numMerges }, (_, r) => bpe.rule(r));
  rules.sort((a, b) => b.count - a.count || a.id - b.id);
  return rules.slice(0, top).map((r) => ({
    id: r.id,
    count: r.count,
    cells: bpe.shape(r.id).map((c) => ({ dy: c.dy, dx: c.dx, code: c.code })),
  }));
}

/**
 * Renders merged tokens as image patches through the decoder: each shape is
 * placed in a grid just large enough for it, cells outside the shape repeat
 * the anchor's code, and those cells are greyed out in the picture.
 */
export async function renderMerges(t: LoadedTokenizer, merges: readonly InspectedMerge[], file: string): Promise<void> {
  const f = t.imageSize / t.model.gridShape(t.imageSize, t.imageSize)[0]; // pixels per code cell
  const images: GridImage[] = [];
  for (const m of merges) {
    const minDx = Math.min(...m.cells.map((c) => c.dx));
    const h = Math.max(...m.cells.map((c) => c.dy)) + 1;
    const w = Math.max(...m.cells.map((c) => c.dx)) - minDx + 1;
    const codes = new Int32Array(h * w).fill(m.cells[0].code);
    const inside = new Uint8Array(h * w);
    for (const c of m.cells) {
      codes[c.dy * w + (c.dx - minDx)] = c.code;
      inside[c.dy * w + (c.dx - minDx)] = 1;
    }
    const pixels = tf.tidy(() => t.model.decode(tf.tensor3d(codes, [1, h, w], 'int32')).clipByValue(-1, 1)); // [1, h*f, w*f, 3]
    const data = Float32Array.from(await pixels.data());
    pixels.dispose();
    const W = w * f;
    for (let y = 0; y < h * f; y++) {
      for (let x = 0; x < W; x++) {
        if (inside[Math.floor(y / f) * w + Math.floor(x / f)]) continue;
        for (let ch = 0; ch < 3; ch++) data[(y * W + x) * 3 + ch] = 0.6 * data[(y * W + x) * 3 + ch] + 0.4 * 0.5;
      }
    }
    images.push({ data, width: W, height: h * f, label: `${m.id} x${m.count}` });
  }
  await writeImageGrid(file, images, { columns: Math.min(8, images.length) });
}
