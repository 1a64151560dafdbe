/**
 * The small interfaces the dataset pipeline (src/pipeline) is written
 * against, so that it works with any image tokenizer: the shipped model
 * (src/tf through the codebook store), a reference tokenizer without a model
 * (src/pipeline/colour-grid.ts), or a fake in tests.
 *
 * Also the plain types of what the pipeline writes: token records, skipped
 * inputs and their reasons.
 */

/** Turns images into code grids. */
export interface ImageTokenizer {
  /**
   * Content id of the tokenizer (the sha256 of its bundle in the codebook
   * store). Recorded in every shard and manifest, so tokens are never decoded
   * with another codebook.
   */
  readonly id: string;
  /** Side of the square images the tokenizer takes; inputs are resized/cropped to it. */
  readonly imageSize: number;
  /** [h, w] of the code grid one image becomes. */
  readonly gridShape: readonly [number, number];
  /** Number of codes K: every code is in 0..K-1. */
  readonly codebookSize: number;
  /**
   * Encodes a batch of images.
   * images: [B, imageSize, imageSize, 3] float32 in [-1, 1] (NHWC).
   * Resolves to [B, h, w] codes, row-major. Must not depend on which other
   * images share the batch (resume re-encodes whole shards, but batches are
   * formed the same way, so this is only a precaution).
   */
  encodeBatch(images: Float32Array, batch: number): Promise<Int32Array>;
}

/** Turns code grids back into images. */
export interface ImageDetokenizer {
  /** Content id; must equal the id recorded in the token files it decodes. */
  readonly id: string;
  /** Side of the square images it renders. */
  readonly imageSize: number;
  /** [h, w] of the code grids it takes. */
  readonly gridShape: readonly [number, number];
  /**
   * Decodes a batch of code grids.
   * codes: [B, h, w] int32. Resolves to [B, imageSize, imageSize, 3] float32 in [-1, 1].
   */
  decodeBatch(codes: Int32Array, batch: number): Promise<Float32Array>;
}

/** Why an input was skipped (the `reason` field of errors.jsonl). */
export type SkipReason =
  /** The file has 0 bytes. */
  | 'zero-byte'
  /** More bytes than `maxFileBytes`, or more pixels than `maxPixels`. */
  | 'too-large'
  /** Not an image: unknown extension in a folder/glob/tar, or bytes of no supported image format. */
  | 'not-image'
  /** A PNG without its IEND chunk or a JPEG without its end marker: the file was cut short. */
  | 'truncated'
  /** The image format was recognized but its data could not be decoded. */
  | 'corrupt'
  /** The file could not be read (permissions, vanished, I/O error, a link inside a tar). */
  | 'unreadable';

export const SKIP_REASONS: readonly SkipReason[] = ['zero-byte', 'too-large', 'not-image', 'truncated', 'corrupt', 'unreadable'];

/** One tokenized image. */
export interface TokenRecord {
  /** Stable unique key of the input (see src/io/dataset/inputs.ts for how keys are made). */
  key: string;
  /** Where the image came from: a file path, or `archive.tar:member/path` for a tar member. */
  source: string;
  /** sha256 (hex) of the source file's bytes. */
  sha256: string;
  /** Width and height of the source image as displayed (EXIF orientation applied). */
  width: number;
  height: number;
  /** [h, w] of the code grid. */
  shape: [number, number];
  /** The code grid, [h, w] row-major; null when the run stored BPE ids only. */
  codes: Int32Array | null;
  /** Visual BPE ids (raster order of anchors); null when the run did not ask for BPE. */
  bpe: Int32Array | null;
  /** Label from a sidecar (.cls, .json `label`) or the mapping file; null when none. */
  label: string | number | null;
  /** Caption from a sidecar (.txt, .json `caption`/`text`) or the mapping file; null when none. */
  caption: string | null;
}

/** One skipped input (a line of errors.jsonl). */
export interface SkippedInput {
  key: string;
  source: string;
  reason: SkipReason;
  /** VtokError code of the failure (IMAGE_DECODE, IMAGE_TOO_LARGE, IO, ...). */
  code: string;
  /** What went wrong, for people. */
  message: string;
}
