/**
 * Image and codebook metrics on typed arrays (no tfjs, no file system),
 * computed the way the reference implementations compute them so numbers can
 * be compared with published ones: docs/EVAL.md.
 */
export { psnr, meanPsnr, mse, quantizeToUint8, type PixelArray, type PsnrOptions, type PsnrSummary } from './psnr';
export { ssim, ssimPerChannel, ssimWindow, SSIM_VARIANTS, type SsimOptions, type SsimVariant } from './ssim';
export { CodeHistogram, codebookStats, type CodebookStats } from './codebook';
export { FeatureStats, featureStats, illConditionedNote, type GaussianStats } from './feature-stats';
export { frechetDistance, FRECHET_METHODS, type FrechetMethod, type FrechetOptions, type FrechetResult } from './frechet';
export { symmetricEigen, pivotedCholesky, congruence, type SymmetricEigen, type PivotedCholesky } from './linalg';
