/**
 * vtok's public entry. training/, eval/ and users import from here.
 * Layers: core (plain TypeScript) -> tf (TensorFlow.js models) -> engine
 * (backends) -> io (disk, sharp, msgpackr) -> pipeline (datasets).
 */
export * from './core/errors';
export * from './core/random';
export * from './core/tensor-map';
export * from './core/bpe';
export * from './core/metrics';
export * from './core/vocab';
export * from './core/text-bpe';
export * from './core/sampling';
export * from './core/ar-streams';
export * from './core/tokenizer-config';
export * from './engine/backend';
export * from './tf/tokenizer';
export * from './tf/transformer';
export * from './tf/ar-generate';
export * from './tf/ar-loss';
export { FidInceptionV3, seededFidInceptionWeights, fidInceptionWeightShapes } from './tf/inception';
export { scoreLabel } from './tf/features';
export type { FeatureExtractor } from './tf/features';
export * from './io/atomic';
export * from './io/image';
export * from './io/bundle';
export * from './io/store';
export * from './io/store-report';
export { loadFeatureExtractor, readFidInceptionWeights, writeFidInceptionWeights } from './io/feature-models';
export * from './pipeline';
// Three modules name their options `DecodeOptions`; the vocabulary's keeps the plain name.
export type { DecodeOptions } from './core/vocab';
export type { DecodeOptions as BundleDecodeOptions } from './io/bundle';
export type { DecodeOptions as DatasetDecodeOptions } from './pipeline';
