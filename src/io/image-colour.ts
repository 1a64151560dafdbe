import { invalidOption } from '../core/errors';

/** An sRGB colour: `"#rrggbb"`, `"#rgb"`, `[r, g, b]` or `{ r, g, b }`, channels 0..255. */
export type Colour = string | readonly [number, number, number] | { r: number; g: number; b: number };

/** Parses a colour option into integer sRGB channels. */
export function parseColour(name: string, value: unknown): { r: number; g: number; b: number } {
  const expected = 'a colour as "#rrggbb", "#rgb", [r, g, b] or {r, g, b} with integers 0-255';
  let rgb: unknown[] | undefined;
  if (typeof value === 'string') {
    const m = /^#([0-9a-f]{3}|[0-9a-f]{6})$/i.exec(value);
    if (!m) throw invalidOption(name, expected, value);
    const hex = m[1].length === 3 ? [...m[1]].map((h) => h + h).join('') : m[1];
    rgb = [0, 2, 4].map((k) => parseInt(hex.slice(k, k + 2), 16));
  } else if (Array.isArray(value)) {
    if (value.length !== 3) throw invalidOption(name, expected, value);
    rgb = value;
  } else if (typeof value === 'object' && value !== null) {
    const v = value as Record<string, unknown>;
    rgb = [v.r, v.g, v.b];
  }
  if (!rgb || !rgb.every((c) => typeof c === 'number' && Number.isInteger(c) && c >= 0 && c <= 255)) {
    throw invalidOption(name, expected, value);
  }
  return { r: rgb[0] as number, g: rgb[1] as number, b: rgb[2] as number };
}

