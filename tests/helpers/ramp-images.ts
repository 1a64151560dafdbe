import { type StreamImage } from '../../training/data';

/**
 * Three S x S RGB ramps in [-1, 1] for tokenizer training tests: each varies
 * differently (horizontal, vertical, diagonal), so crops and flips give
 * varied batches and a tiny model can overfit them.
 */
export function rampImages(S: number): StreamImage[] {
  return [0, 1, 2].map((k) => {
    const d = new Float32Array(S * S * 3);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const u = x / (S - 1);
        const v = y / (S - 1);
        d.set(k === 0 ? [2 * u - 1, -0.5, 0.5] : k === 1 ? [0.3, 2 * v - 1, -0.8] : [u - v, 0.8 * u, -0.2], (y * S + x) * 3);
      }
    }
    return { data: d, width: S, height: S, source: `ramp${k}` };
  });
}
