/** Visual BPE: reversible two-dimensional merges over code grids (and the 1D variant). */
export { BpeModel, BPE_FORMAT, BPE_VERSION } from './model';
export type { BpeMode, BpeDirections, BpePriority, BpeSettings, BpeMerges, BpeModelData, BpeMergeRule } from './model';
export { BpeTrainer, trainBpe } from './train';
export type { CodeGrid, BpeTrainOptions, BpePairState } from './train';
export type { ShapeCell } from './shapes';
