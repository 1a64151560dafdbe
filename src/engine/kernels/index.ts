/**
 * Kernels vtok registers with TensorFlow.js, per backend. Filled in by the
 * kernel modules in this folder; `registerVtokKernels` is idempotent.
 */
export type KernelBackendName = 'wasm' | 'cpu' | 'tensorflow';

/** Registers vtok's kernels for `backendName` (once) and returns their names. */
export function registerVtokKernels(backendName: KernelBackendName): string[] {
  void backendName;
  return [];
}
