/**
 * ResizeNearestNeighborGrad for the cpu backend, replacing tfjs-backend-cpu
 * 4.22's, which reads dy with the *image's* batch stride (wrong for batch > 1
 * whenever the sizes differ, i.e. always) and ignores halfPixelCenters. A
 * decoder that upsamples with tf.image.resizeNearestNeighbor trains wrongly on
 * cpu without this.
 *
 * The gradient scatters each dy pixel onto the source pixel the forward pass
 * copied it from, with the forward kernel's own source-index rule.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelArgs } from './wasm-util';

/** Source index of output index `i` along an axis, exactly as the forward kernels compute it. */
export function nearestSource(i: number, inSize: number, outSize: number, alignCorners: boolean, halfPixelCenters: boolean): number {
  const effIn = alignCorners && outSize > 1 ? inSize - 1 : inSize;
  const effOut = alignCorners && outSize > 1 ? outSize - 1 : outSize;
  const ratio = effIn / effOut;
  const frac = halfPixelCenters ? ratio * (i + 0.5) : ratio * i;
  let src = Math.min(inSize - 1, alignCorners ? Math.round(frac) : Math.floor(frac));
  if (halfPixelCenters) src = Math.max(0, src);
  return src;
}

/** dx [B, H, W, C] from dy [B, NH, NW, C]. */
export function resizeNearestNeighborGradValues(
  dy: ArrayLike<number>,
  imageShape: readonly number[],
  dyShape: readonly number[],
  alignCorners: boolean,
  halfPixelCenters: boolean,
): Float32Array {
  const [B, H, W, C] = imageShape;
  const [, NH, NW] = dyShape;
  const dx = new Float32Array(B * H * W * C);
  const rows = Array.from({ length: NH }, (_, r) => nearestSource(r, H, NH, alignCorners, halfPixelCenters));
  const cols = Array.from({ length: NW }, (_, c) => nearestSource(c, W, NW, alignCorners, halfPixelCenters));
  let g = 0;
  for (let b = 0; b < B; b++) {
    for (let r = 0; r < NH; r++) {
      const rowBase = (b * H + rows[r]) * W;
      for (let c = 0; c < NW; c++) {
        const base = (rowBase + cols[c]) * C;
        for (let d = 0; d < C; d++) dx[base + d] += dy[g++];
      }
    }
  }
  return dx;
}

interface CpuBackend {
  data: { get(dataId: object): { values: ArrayLike<number> } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

export function resizeNearestNeighborGradCpu({ inputs, backend, attrs }: KernelArgs): tf.TensorInfo {
  const { images, dy } = inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
  const { alignCorners, halfPixelCenters } = attrs as unknown as tf.ResizeNearestNeighborGradAttrs;
  const be = backend as CpuBackend;
  const dx = resizeNearestNeighborGradValues(be.data.get(dy.dataId).values, images.shape, dy.shape, alignCorners, halfPixelCenters);
  return be.makeTensorInfo(images.shape, 'float32', dx);
}
