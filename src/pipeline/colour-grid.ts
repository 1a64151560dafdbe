/**
 * The colour-grid tokenizer: a reference ImageTokenizer with no model. Each
 * cell of a g x g grid over the image becomes one code: the cell's mean
 * colour, each channel quantized to L levels, code = (r * L + g) * L + b
 * (K = L^3 codes). Deterministic, exact to reason about and fast, it is what
 * the pipeline tests run on, and a floor to compare a learned tokenizer with.
 * Its detokenizer paints every cell with the centre colour of its levels.
 *
 * Example (imageSize 4, grid 2, levels 2): a 4x4 image whose top-left 2x2
 * cell is all white (1.0) and the rest black (-1.0) encodes to
 *   [7, 0,
 *    0, 0]      (white: level 1 in r, g, b -> (1*2 + 1)*2 + 1 = 7)
 */
import { checkInt, invalidOption, resolveOptions } from '../core/errors';
import type { ImageDetokenizer, ImageTokenizer } from '../core/pipeline-types';

export interface ColourGridOptions {
  /** Side of the (square) images. Default 32. */
  imageSize: number;
  /** Cells per side: the code grid is grid x grid. Must divide imageSize. Default 4. */
  grid: number;
  /** Levels per channel L: K = L^3 codes. Default 8 (512 codes). */
  levels: number;
}

const DEFAULTS: ColourGridOptions = { imageSize: 32, grid: 4, levels: 8 };

function resolve(options: Partial<ColourGridOptions> | undefined): ColourGridOptions {
  const o = resolveOptions('colourGrid', DEFAULTS, options);
  checkInt('imageSize', o.imageSize, 1, 65535);
  checkInt('grid', o.grid, 1, o.imageSize);
  checkInt('levels', o.levels, 2, 40);
  if (o.imageSize % o.grid !== 0) throw invalidOption('grid', `a divisor of imageSize ${o.imageSize}`, o.grid);
  return o;
}

function idOf(o: ColourGridOptions): string {
  return `colour-grid-v1-s${o.imageSize}-g${o.grid}-l${o.levels}`;
}

/** Creates a colour-grid tokenizer. */
export function colourGridTokenizer(options?: Partial<ColourGridOptions>): ImageTokenizer {
  const o = resolve(options);
  const { imageSize: S, grid: G, levels: L } = o;
  const cell = S / G;
  return {
    id: idOf(o),
    imageSize: S,
    gridShape: [G, G],
    codebookSize: L * L * L,
    async encodeBatch(images: Float32Array, batch: number): Promise<Int32Array> {
      checkInt('batch', batch, 0);
      if (images.length !== batch * S * S * 3) throw invalidOption('images', `${batch} x ${S} x ${S} x 3 floats`, images);
      const out = new Int32Array(batch * G * G); // [B, G, G]
      const sum = new Float64Array(3);
      for (let b = 0; b < batch; b++) {
        const base = b * S * S * 3; // images: [B, S, S, 3]
        for (let gy = 0; gy < G; gy++) {
          for (let gx = 0; gx < G; gx++) {
            sum.fill(0);
            for (let y = gy * cell; y < (gy + 1) * cell; y++) {
              let p = base + (y * S + gx * cell) * 3;
              for (let x = 0; x < cell; x++, p += 3) {
                sum[0] += images[p];
                sum[1] += images[p + 1];
                sum[2] += images[p + 2];
              }
            }
            let code = 0;
            for (let c = 0; c < 3; c++) {
              const mean = sum[c] / (cell * cell);
              const level = Math.min(L - 1, Math.max(0, Math.floor(((mean + 1) / 2) * L)));
              code = code * L + level;
            }
            out[(b * G + gy) * G + gx] = code;
          }
        }
      }
      return out;
    },
  };
}

/** Creates the matching detokenizer: each cell painted with the centre colour of its levels. */
export function colourGridDetokenizer(options?: Partial<ColourGridOptions>): ImageDetokenizer {
  const o = resolve(options);
  const { imageSize: S, grid: G, levels: L } = o;
  const cell = S / G;
  const K = L * L * L;
  return {
    id: idOf(o),
    imageSize: S,
    gridShape: [G, G],
    async decodeBatch(codes: Int32Array, batch: number): Promise<Float32Array> {
      checkInt('batch', batch, 0);
      if (codes.length !== batch * G * G) throw invalidOption('codes', `${batch} x ${G} x ${G} codes`, codes);
      const out = new Float32Array(batch * S * S * 3); // [B, S, S, 3]
      for (let b = 0; b < batch; b++) {
        for (let gy = 0; gy < G; gy++) {
          for (let gx = 0; gx < G; gx++) {
            const code = codes[(b * G + gy) * G + gx];
            if (!(code >= 0 && code < K)) throw invalidOption(`codes[${(b * G + gy) * G + gx}]`, `an integer code 0..${K - 1}`, code);
            const rgb = [Math.floor(code / (L * L)), Math.floor(code / L) % L, code % L].map((l) => ((l + 0.5) / L) * 2 - 1);
            for (let y = gy * cell; y < (gy + 1) * cell; y++) {
              let p = (b * S * S + y * S + gx * cell) * 3;
              for (let x = 0; x < cell; x++, p += 3) {
                out[p] = rgb[0];
                out[p + 1] = rgb[1];
                out[p + 2] = rgb[2];
              }
            }
          }
        }
      }
      return out;
    },
  };
}
