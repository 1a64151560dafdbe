/** Dataset files on disk: inputs (folders, globs, lists, tars), labels, token shards, manifests. */
export { enumerateInputs, keysDigest, IMAGE_EXTS, InputList } from './inputs';
export type { DatasetInput, InputSet, EnumerateOptions, Sidecar } from './inputs';
export { loadLabelMap, lookupLabels, parseCsv, parseSidecar, SIDECAR_EXTS } from './labels';
export type { TextFields, LabelMap } from './labels';
export { listTar, isCompressedTar, RangeReader } from './tar';
export type { TarMember } from './tar';
export { expandGlob, globToRegExp, globRoot, hasGlob, walkFiles, compareKeys } from './glob';
export { loadInput, looksTruncated, reasonOf } from './read';
export type { LoadedInput, LoadResult, LoadContext } from './read';
export { packShard, unpackShard, readShard, writeShard, readManifest, readTokenDir, readErrors, iterateShards, sha256File } from './shard';
export type { ShardContent } from './shard';
export { prepareOutDir, describeRunDifference } from './outdir';
export { AtomicFileWriter } from './stream-write';
