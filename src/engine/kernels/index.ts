/**
 * The kernels vtok registers with TensorFlow.js, per backend, and why.
 *
 * wasm (tfjs-backend-wasm 4.22 registers 157 kernels, cpu 172; of those
 * missing, training needs these three):
 *   Conv2DBackpropFilter  missing: every conv weight gradient
 *   UnsortedSegmentSum    missing: every gather gradient (embeddings, codebooks)
 *   DepthwiseConv2dNativeBackpropInput
 *                         missing: gradients through a MobileNet teacher
 *                         (the tokenizer's perceptual term)
 *   Conv2DBackpropInput   stock is a scalar loop (~2.5 GFLOP/s); conv input
 *                         gradients and conv2dTranspose
 *   BatchMatMul           stock uses XNNPACK only for batch 1 without
 *                         transposes; attention and all matmul gradients
 *   Slice, SplitV, Unpack, StridedSlice
 *                         stock copies the whole input out of the heap first
 *   Tile                  stock indexes element by element (~60 ms for one
 *                         upsampling); vtok's 2x upsampling is two Tiles
 *   Transpose             stock moves rank-5 and last-axis-keeping
 *                         permutations element by element (~100 ms for an
 *                         attention layer's qkv split); row copies instead
 *   Add, Sub, Multiply, RealDiv
 *                         stock broadcasts like GroupNorm's run a generic loop
 *                         (12-16 ns/element); reshaped to XNNPACK-friendly shapes
 *   Square                stock is a one-thread loop; XNNPACK's x * x instead
 *   MaxPoolGrad           stock routes all-negative windows wrongly (bug)
 * cpu:
 *   ResizeNearestNeighborGrad  stock is wrong for batch > 1 (bug)
 *
 * `registerVtokKernels` is idempotent. Replaced kernels keep the stock
 * kernel's setup (which binds its C++ function when a backend starts), so the
 * stock kernel can still be called, e.g. by tests comparing the two.
 */
import * as tf from '@tensorflow/tfjs';
import { batchMatMulWasm, setupBatchMatMulWasm } from './batch-matmul';
import { binaryWasm, squareWasm } from './binary';
import { conv2dBackpropFilterWasm } from './conv2d-backprop-filter';
import { conv2dBackpropInputWasm } from './conv2d-backprop-input';
import { depthwiseConv2dBackpropInputWasm } from './depthwise-conv2d-backprop-input';
import { maxPoolGradWasm } from './max-pool-grad';
import { resizeNearestNeighborGradCpu } from './resize-nearest-grad';
import { sliceWasm, splitVWasm, stridedSliceWasm, unpackWasm } from './slice';
import { tileWasm } from './tile';
import { transposeWasm } from './transpose';
import { unsortedSegmentSumWasm } from './unsorted-segment-sum';
import type { KernelArgs } from './wasm-util';

export type KernelBackendName = 'wasm' | 'cpu' | 'tensorflow';

type VtokKernelFunc = (args: KernelArgs, stock: tf.KernelConfig | undefined) => tf.TensorInfo | tf.TensorInfo[];

interface VtokKernel {
  name: string;
  kernelFunc: VtokKernelFunc;
  setupFunc?: (backend: unknown) => void;
}

const WASM_KERNELS: VtokKernel[] = [
  { name: 'Conv2DBackpropFilter', kernelFunc: (a) => conv2dBackpropFilterWasm(a) },
  { name: 'Conv2DBackpropInput', kernelFunc: (a) => conv2dBackpropInputWasm(a) },
  { name: 'DepthwiseConv2dNativeBackpropInput', kernelFunc: (a) => depthwiseConv2dBackpropInputWasm(a) },
  { name: 'BatchMatMul', kernelFunc: (a) => batchMatMulWasm(a), setupFunc: setupBatchMatMulWasm },
  { name: 'UnsortedSegmentSum', kernelFunc: (a) => unsortedSegmentSumWasm(a) },
  { name: 'Slice', kernelFunc: (a, stock) => sliceWasm(a, required(stock, 'Slice')) },
  { name: 'SplitV', kernelFunc: (a) => splitVWasm(a) },
  { name: 'Unpack', kernelFunc: (a) => unpackWasm(a) },
  { name: 'StridedSlice', kernelFunc: (a, stock) => stridedSliceWasm(a, required(stock, 'StridedSlice')) },
  { name: 'Tile', kernelFunc: (a, stock) => tileWasm(a, required(stock, 'Tile')) },
  { name: 'Transpose', kernelFunc: (a, stock) => transposeWasm(a, required(stock, 'Transpose')) },
  { name: 'MaxPoolGrad', kernelFunc: (a) => maxPoolGradWasm(a) },
  ...['Add', 'Sub', 'Multiply', 'RealDiv'].map((name) => ({ name, kernelFunc: (a: KernelArgs, stock: tf.KernelConfig | undefined) => binaryWasm(a, required(stock, name)) })),
  { name: 'Square', kernelFunc: (a, stock) => squareWasm(a, required(stock, 'Square')) },
];

const CPU_KERNELS: VtokKernel[] = [{ name: 'ResizeNearestNeighborGrad', kernelFunc: (a) => resizeNearestNeighborGradCpu(a) }];

const KERNELS: Record<KernelBackendName, VtokKernel[]> = { wasm: WASM_KERNELS, cpu: CPU_KERNELS, tensorflow: [] };

function required(stock: tf.KernelConfig | undefined, name: string): tf.KernelConfig {
  if (!stock) throw new Error(`the stock wasm ${name} kernel was not registered`);
  return stock;
}

const done = new Set<KernelBackendName>();
const stockKernels = new Map<string, tf.KernelConfig>();

/** Registers vtok's kernels for `backendName` (once) and returns their names. */
export function registerVtokKernels(backendName: KernelBackendName): string[] {
  const kernels = KERNELS[backendName];
  if (!done.has(backendName)) {
    for (const k of kernels) {
      const stock = tf.getKernel(k.name, backendName);
      if (stock) {
        stockKernels.set(`${backendName}/${k.name}`, stock);
        tf.unregisterKernel(k.name, backendName);
      }
      tf.registerKernel({
        kernelName: k.name,
        backendName,
        kernelFunc: ((args: KernelArgs) => k.kernelFunc(args, stock)) as tf.KernelFunc,
        setupFunc: (backend: object) => {
          stock?.setupFunc?.(backend as tf.KernelBackend);
          k.setupFunc?.(backend);
        },
        disposeFunc: stock?.disposeFunc,
      });
    }
    done.add(backendName);
  }
  return kernels.map((k) => k.name);
}

/**
 * The kernel tfjs registered under `name` before vtok replaced it (for tests
 * and benchmarks that compare the two), or undefined if vtok added it.
 */
export function stockKernel(name: string, backendName: KernelBackendName): tf.KernelConfig | undefined {
  return stockKernels.get(`${backendName}/${name}`);
}
