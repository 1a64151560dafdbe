/**
 * The dataset pipeline as library functions (the CLI's `vtok tokenize`,
 * `decode`, `export` and `manifest merge` are thin wrappers over these).
 */
export { tokenizeDataset, bpeContentId, defaultBatchSize, TOKENIZE_DEFAULTS } from './tokenize';
export type { TokenizeOptions, TokenizeProgress, TokenizeResult } from './tokenize';
export { decodeDataset, outputNameOf, DECODE_DEFAULTS } from './decode';
export type { DecodeOptions, DecodeProgress, DecodeResult } from './decode';
export { exportTokens, readBinExport, EXPORT_DEFAULTS } from './export';
export type { ExportOptions, ExportFormat, ExportResult, BinMeta } from './export';
export { mergeManifests, MERGE_DEFAULTS } from './merge';
export type { MergeOptions, MergeResult } from './merge';
export { colourGridTokenizer, colourGridDetokenizer } from './colour-grid';
export type { ColourGridOptions } from './colour-grid';
export { OrderedPrefetch } from './prefetch';
export { modelTokenizer, modelDetokenizer, modelContentId } from './model-tokenizer';
export type { ModelTokenizerOptions } from './model-tokenizer';
export type { PrefetchOptions } from './prefetch';
export { parseShardSpec } from '../core/shard-format';
export type { ImageTokenizer, ImageDetokenizer, TokenRecord, SkippedInput, SkipReason } from '../core/pipeline-types';
export type { TokenManifest, RunOptions, ShardEntry, PartSpec } from '../core/shard-format';
export { trainBpeFromTokens, readCodeGrids, topMerges, renderMerges } from './bpe';
export type { TrainBpeFromTokensOptions, TrainBpeFromTokensResult, InspectedMerge } from './bpe';
