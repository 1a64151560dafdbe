/**
 * Faster paths for elementwise kernels on the wasm backend.
 *
 * Add, Sub, Multiply, RealDiv: tfjs-backend-wasm 4.22 sends same-shape and
 * scalar operands to XNNPACK (about 0.5 ns per element on 2 threads) but
 * broadcasts such as GroupNorm's [B, HW, G, C/G] - [B, 1, G, 1] to a generic
 * loop (12-16 ns per element). vtok's wrapper repeats the small operand along
 * the broadcast axes that follow its last full axis (a tiny Tile: [B, 1, G, 1]
 * -> [B, 1, G, C/G]) and merges adjacent axes ([B, HW, G*C/G] vs
 * [B, 1, G*C/G]), a shape the stock kernel runs at ~2 ns per element; every
 * other case goes to the stock kernel unchanged.
 *
 * Square: stock is a one-thread loop; vtok's is XNNPACK's Multiply(x, x).
 */
import * as tf from '@tensorflow/tfjs';
import { Scratch, type KernelArgs, type WasmBackend } from './wasm-util';
import { tileWasm } from './tile';

/** Merged view of a broadcast: runs of axes where the small operand is full or 1. */
export function planBroadcast(big: number[], small: number[]): { reps: number[]; bigShape: number[]; smallShape: number[] } | undefined {
  const rank = big.length;
  const s = [...new Array<number>(rank - small.length).fill(1), ...small];
  // Last axis where the small operand is full (and not trivially 1).
  let last = -1;
  for (let i = 0; i < rank; i++) if (s[i] === big[i] && big[i] > 1) last = i;
  const reps = s.map((d, i) => (i > last && d === 1 ? big[i] : 1));
  const expanded = s.map((d, i) => d * reps[i]);
  if (reps.every((r) => r === 1) && rank <= 2) return undefined; // nothing to gain
  // Merge adjacent axes with the same status (small full vs small 1).
  const bigShape: number[] = [];
  const smallShape: number[] = [];
  let prev: boolean | undefined;
  for (let i = 0; i < rank; i++) {
    if (big[i] === 1) continue;
    const full = expanded[i] === big[i];
    if (full === prev) {
      bigShape[bigShape.length - 1] *= big[i];
      smallShape[smallShape.length - 1] *= expanded[i];
    } else {
      bigShape.push(big[i]);
      smallShape.push(expanded[i]);
      prev = full;
    }
  }
  if (bigShape.length === 0) return undefined;
  return { reps, bigShape, smallShape };
}

export function binaryWasm(args: KernelArgs, stock: tf.KernelConfig): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const sa = tf.util.sizeFromShape(a.shape);
  const sb = tf.util.sizeFromShape(b.shape);
  const callStock = () => stock.kernelFunc(args) as tf.TensorInfo;
  if (a.dtype !== 'float32' || b.dtype !== 'float32' || sa === sb || sa <= 1 || sb <= 1) return callStock();
  const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const outSize = tf.util.sizeFromShape(outShape);
  const aSmall = sa < outSize;
  const bSmall = sb < outSize;
  if (aSmall === bSmall) return callStock(); // both broadcast (outer product): stock
  const big = aSmall ? b : a;
  const small = aSmall ? a : b;
  if (big.shape.length !== outShape.length) return callStock();
  const plan = planBroadcast(big.shape, small.shape);
  if (!plan) return callStock();
  const smallCount = tf.util.sizeFromShape(plan.smallShape);
  if (smallCount * 4 > outSize) return callStock(); // repeating would write too much
  const s = new Scratch(args.backend as WasmBackend);
  try {
    const aligned = s.reshape(small, [...new Array<number>(outShape.length - small.shape.length).fill(1), ...small.shape]);
    const rep = plan.reps.some((r) => r > 1) ? s.adopt(tileWasm({ inputs: { x: aligned }, backend: args.backend, attrs: { reps: plan.reps } })) : aligned;
    const smallView = s.reshape(rep, plan.smallShape);
    const bigView = s.reshape(big, plan.bigShape);
    const inputs = aSmall ? { a: smallView, b: bigView } : { a: bigView, b: smallView };
    const out = s.run(stock, inputs, args.attrs ?? {});
    return s.keep(s.reshape(out, outShape));
  } finally {
    s.dispose();
  }
}

export function squareWasm(args: KernelArgs, stock: tf.KernelConfig): tf.TensorInfo {
  const { x } = args.inputs as { x: tf.TensorInfo };
  const mul = tf.getKernel('Multiply', 'wasm');
  if (x.dtype !== 'float32' || !mul) return stock.kernelFunc(args) as tf.TensorInfo;
  return mul.kernelFunc({ inputs: { a: x, b: x }, backend: args.backend, attrs: {} }) as tf.TensorInfo;
}
