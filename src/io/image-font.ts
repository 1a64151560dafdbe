/**
 * A tiny built-in bitmap font for labels in image grids: printable ASCII
 * (32..126), each glyph 5 pixels wide and 8 tall (7 rows above the baseline,
 * one row of descender), advance 6 pixels, drawn straight into an RGB buffer.
 *
 * Why not an SVG text overlay through sharp: sharp renders SVG text with the
 * fonts that fontconfig finds on the machine. A fresh container or CI image
 * often has none (this build machine had none until a desktop package pulled
 * some in), and where fonts exist the pixels differ from machine to machine.
 * A bitmap font renders the same everywhere, needs no font files, and can be
 * tested pixel for pixel.
 *
 * Glyphs are drawn for this project: eight rows per glyph, `#` is ink.
 */

export const GLYPH_WIDTH = 5;
export const GLYPH_HEIGHT = 8;
/** Horizontal distance from one glyph to the next, in font pixels. */
export const GLYPH_ADVANCE = 6;

// prettier-ignore
const GLYPH_ROWS: Record<string, string> = {
  ' ': '..... ..... ..... ..... ..... ..... ..... .....',
  '!': '..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#.. .....',
  '"': '.#.#. .#.#. ..... ..... ..... ..... ..... .....',
  '#': '.#.#. .#.#. ##### .#.#. ##### .#.#. .#.#. .....',
  '$': '..#.. .#### #.#.. .###. ..#.# ####. ..#.. .....',
  '%': '##... ##..# ...#. ..#.. .#... #..## ...## .....',
  '&': '.##.. #..#. #.#.. .#... #.#.# #..#. .##.# .....',
  "'": '..#.. ..#.. ..... ..... ..... ..... ..... .....',
  '(': '...#. ..#.. .#... .#... .#... ..#.. ...#. .....',
  ')': '.#... ..#.. ...#. ...#. ...#. ..#.. .#... .....',
  '*': '..... ..#.. #.#.# .###. #.#.# ..#.. ..... .....',
  '+': '..... ..#.. ..#.. ##### ..#.. ..#.. ..... .....',
  ',': '..... ..... ..... ..... ..... .##.. ..#.. .#...',
  '-': '..... ..... ..... ##### ..... ..... ..... .....',
  '.': '..... ..... ..... ..... ..... .##.. .##.. .....',
  '/': '..... ....# ...#. ..#.. .#... #.... ..... .....',
  '0': '.###. #...# #..## #.#.# ##..# #...# .###. .....',
  '1': '..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###. .....',
  '2': '.###. #...# ....# ...#. ..#.. .#... ##### .....',
  '3': '##### ...#. ..#.. ...#. ....# #...# .###. .....',
  '4': '...#. ..##. .#.#. #..#. ##### ...#. ...#. .....',
  '5': '##### #.... ####. ....# ....# #...# .###. .....',
  '6': '..##. .#... #.... ####. #...# #...# .###. .....',
  '7': '##### ....# ...#. ..#.. .#... .#... .#... .....',
  '8': '.###. #...# #...# .###. #...# #...# .###. .....',
  '9': '.###. #...# #...# .#### ....# ...#. .##.. .....',
  ':': '..... .##.. .##.. ..... .##.. .##.. ..... .....',
  ';': '..... .##.. .##.. ..... .##.. ..#.. .#... .....',
  '<': '...#. ..#.. .#... #.... .#... ..#.. ...#. .....',
  '=': '..... ..... ##### ..... ##### ..... ..... .....',
  '>': '.#... ..#.. ...#. ....# ...#. ..#.. .#... .....',
  '?': '.###. #...# ....# ...#. ..#.. ..... ..#.. .....',
  '@': '.###. #...# ....# .##.# #.#.# #.#.# .###. .....',
  'A': '.###. #...# #...# ##### #...# #...# #...# .....',
  'B': '####. #...# #...# ####. #...# #...# ####. .....',
  'C': '.###. #...# #.... #.... #.... #...# .###. .....',
  'D': '###.. #..#. #...# #...# #...# #..#. ###.. .....',
  'E': '##### #.... #.... ####. #.... #.... ##### .....',
  'F': '##### #.... #.... ####. #.... #.... #.... .....',
  'G': '.###. #...# #.... #.### #...# #...# .#### .....',
  'H': '#...# #...# #...# ##### #...# #...# #...# .....',
  'I': '.###. ..#.. ..#.. ..#.. ..#.. ..#.. .###. .....',
  'J': '..### ...#. ...#. ...#. ...#. #..#. .##.. .....',
  'K': '#...# #..#. #.#.. ##... #.#.. #..#. #...# .....',
  'L': '#.... #.... #.... #.... #.... #.... ##### .....',
  'M': '#...# ##.## #.#.# #.#.# #...# #...# #...# .....',
  'N': '#...# #...# ##..# #.#.# #..## #...# #...# .....',
  'O': '.###. #...# #...# #...# #...# #...# .###. .....',
  'P': '####. #...# #...# ####. #.... #.... #.... .....',
  'Q': '.###. #...# #...# #...# #.#.# #..#. .##.# .....',
  'R': '####. #...# #...# ####. #.#.. #..#. #...# .....',
  'S': '.#### #.... #.... .###. ....# ....# ####. .....',
  'T': '##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. .....',
  'U': '#...# #...# #...# #...# #...# #...# .###. .....',
  'V': '#...# #...# #...# #...# #...# .#.#. ..#.. .....',
  'W': '#...# #...# #...# #.#.# #.#.# #.#.# .#.#. .....',
  'X': '#...# #...# .#.#. ..#.. .#.#. #...# #...# .....',
  'Y': '#...# #...# .#.#. ..#.. ..#.. ..#.. ..#.. .....',
  'Z': '##### ....# ...#. ..#.. .#... #.... ##### .....',
  '[': '.###. .#... .#... .#... .#... .#... .###. .....',
  '\\': '..... #.... .#... ..#.. ...#. ....# ..... .....',
  ']': '.###. ...#. ...#. ...#. ...#. ...#. .###. .....',
  '^': '..#.. .#.#. #...# ..... ..... ..... ..... .....',
  '_': '..... ..... ..... ..... ..... ..... ##### .....',
  '`': '.#... ..#.. ..... ..... ..... ..... ..... .....',
  'a': '..... ..... .###. ....# .#### #...# .#### .....',
  'b': '#.... #.... #.##. ##..# #...# #...# ####. .....',
  'c': '..... ..... .###. #.... #.... #...# .###. .....',
  'd': '....# ....# .##.# #..## #...# #...# .#### .....',
  'e': '..... ..... .###. #...# ##### #.... .###. .....',
  'f': '..##. .#..# .#... ###.. .#... .#... .#... .....',
  'g': '..... ..... .#### #...# #...# .#### ....# .###.',
  'h': '#.... #.... #.##. ##..# #...# #...# #...# .....',
  'i': '..#.. ..... .##.. ..#.. ..#.. ..#.. .###. .....',
  'j': '...#. ..... ..##. ...#. ...#. ...#. #..#. .##..',
  'k': '#.... #.... #..#. #.#.. ##... #.#.. #..#. .....',
  'l': '.##.. ..#.. ..#.. ..#.. ..#.. ..#.. .###. .....',
  'm': '..... ..... ##.#. #.#.# #.#.# #...# #...# .....',
  'n': '..... ..... #.##. ##..# #...# #...# #...# .....',
  'o': '..... ..... .###. #...# #...# #...# .###. .....',
  'p': '..... ..... ####. #...# #...# ####. #.... #....',
  'q': '..... ..... .#### #...# #...# .#### ....# ....#',
  'r': '..... ..... #.##. ##..# #.... #.... #.... .....',
  's': '..... ..... .#### #.... .###. ....# ####. .....',
  't': '.#... .#... ###.. .#... .#... .#..# ..##. .....',
  'u': '..... ..... #...# #...# #...# #..## .##.# .....',
  'v': '..... ..... #...# #...# #...# .#.#. ..#.. .....',
  'w': '..... ..... #...# #...# #.#.# #.#.# .#.#. .....',
  'x': '..... ..... #...# .#.#. ..#.. .#.#. #...# .....',
  'y': '..... ..... #...# #...# #...# .#### ....# .###.',
  'z': '..... ..... ##### ...#. ..#.. .#... ##### .....',
  '{': '...#. ..#.. ..#.. .#... ..#.. ..#.. ...#. .....',
  '|': '..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#.. .....',
  '}': '.#... ..#.. ..#.. ...#. ..#.. ..#.. .#... .....',
  '~': '..... ..... .#... #.#.# ...#. ..... ..... .....',
};

/** Glyph bitmaps by character code: GLYPH_HEIGHT rows of GLYPH_WIDTH bits, 1 = ink. */
const GLYPHS = new Map<number, Uint8Array>();
for (const [ch, rows] of Object.entries(GLYPH_ROWS)) {
  const bits = new Uint8Array(GLYPH_WIDTH * GLYPH_HEIGHT);
  rows.split(' ').forEach((row, y) => {
    for (let x = 0; x < GLYPH_WIDTH; x++) bits[y * GLYPH_WIDTH + x] = row[x] === '#' ? 1 : 0;
  });
  GLYPHS.set(ch.charCodeAt(0), bits);
}
const REPLACEMENT = GLYPHS.get('?'.charCodeAt(0)) as Uint8Array;

/** The characters the font draws; any other character is drawn as `?`. */
export function fontCharacters(): string {
  return Object.keys(GLYPH_ROWS).join('');
}

/** The bitmap of one character ([GLYPH_HEIGHT, GLYPH_WIDTH], 1 = ink); `?` for characters outside printable ASCII. */
export function glyphBitmap(ch: string): Uint8Array {
  return GLYPHS.get(ch.charCodeAt(0)) ?? REPLACEMENT;
}

/** Width in image pixels of `text` drawn at `scale` (no trailing gap after the last glyph). */
export function measureText(text: string, scale: number): number {
  const n = [...text].length;
  return n === 0 ? 0 : ((n - 1) * GLYPH_ADVANCE + GLYPH_WIDTH) * scale;
}

/**
 * Cuts `text` so that it fits in `maxWidth` pixels at `scale`, ending it with
 * `..` when something was cut. Returns '' when not even one glyph fits.
 */
export function fitText(text: string, maxWidth: number, scale: number): string {
  const chars = [...text];
  if (measureText(text, scale) <= maxWidth) return text;
  for (let keep = chars.length - 1; keep >= 0; keep--) {
    const candidate = chars.slice(0, keep).join('') + '..';
    if (measureText(candidate, scale) <= maxWidth) return candidate;
  }
  return '';
}

/**
 * Draws `text` into an interleaved 8-bit image (`channels` values per pixel,
 * row-major) with its top-left corner at (x, y); each font pixel becomes a
 * scale x scale block in `colour` (one value per channel). Pixels outside the
 * image are skipped.
 */
export function drawText(
  image: Uint8Array,
  imageWidth: number,
  imageHeight: number,
  channels: number,
  text: string,
  x: number,
  y: number,
  scale: number,
  colour: ArrayLike<number>,
): void {
  let penX = x;
  for (const ch of text) {
    const bits = glyphBitmap(ch);
    for (let gy = 0; gy < GLYPH_HEIGHT; gy++) {
      for (let gx = 0; gx < GLYPH_WIDTH; gx++) {
        if (bits[gy * GLYPH_WIDTH + gx] === 0) continue;
        for (let sy = 0; sy < scale; sy++) {
          const py = y + gy * scale + sy;
          if (py < 0 || py >= imageHeight) continue;
          for (let sx = 0; sx < scale; sx++) {
            const px = penX + gx * scale + sx;
            if (px < 0 || px >= imageWidth) continue;
            const o = (py * imageWidth + px) * channels;
            for (let c = 0; c < channels; c++) image[o + c] = colour[c];
          }
        }
      }
    }
    penX += GLYPH_ADVANCE * scale;
  }
}
