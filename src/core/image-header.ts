/**
 * Image headers read in plain TypeScript: format, size, bit depth and EXIF
 * orientation of a PNG, JPEG, WebP or GIF file, from its first bytes, without
 * asking a decoder to open the file.
 *
 * readImage (src/io/image.ts) used to call sharp's metadata(), which has
 * libvips open and parse every file once more before decoding it: about
 * 0.1-0.3 ms of CPU per file, as much as a tenth of a 28 x 28 PNG's whole
 * decode. This parser answers the common cases and returns `undefined` for
 * anything it is not sure about (another format, a truncated or odd file, a
 * huge size, an orientation stored where it does not look): the caller then
 * asks sharp, so that every error keeps sharp's wording.
 *
 * What "sure" means, per format (checked against sharp's metadata() on every
 * file of data/photos, data/stamps and Fashion-MNIST, and on generated files):
 * - PNG: valid signature; IHDR first, 13 bytes, CRC correct, a valid bit depth
 *   and colour type; the chunk list walks cleanly to IEND at the end of the
 *   file, with an IDAT (and a PLTE for palette images); no eXIf chunk and no
 *   "Raw profile type ..." text chunk (libvips could find an orientation there).
 * - JPEG: SOI, segments that walk cleanly to SOS, exactly one SOF with 8-bit
 *   precision and a non-zero size, at most one Exif APP1 whose orientation (if
 *   any) is a well-formed SHORT in 1..8; the file ends with EOI.
 * - WebP: RIFF/WEBP whose RIFF size fits the file, a first chunk VP8, VP8L or
 *   VP8X; VP8X without the EXIF or animation flags.
 * - GIF: GIF87a/GIF89a, and a first frame that lies inside the logical screen.
 * - Sides up to 16383 (larger ones go to the decoder, which owns the limits).
 */

/** What readImage needs to know before decoding, as sharp's metadata() reports it. */
export interface ImageHeader {
  format: 'png' | 'jpeg' | 'webp' | 'gif';
  /** Stored width and height (before EXIF orientation). */
  width: number;
  height: number;
  /** Sample format as libvips names it: 'ushort' for 16-bit PNGs, else 'uchar'. */
  depth: 'uchar' | 'ushort';
  /** EXIF orientation, 1 (as stored; also when the file has none) to 8 (5-8 swap width and height). */
  orientation: number;
}

/** Largest side this parser answers for. */
const MAX_SIDE = 16383;

/**
 * The header of a PNG, JPEG, WebP or GIF file, or undefined when the file is
 * another format or anything about it is unusual (then ask the decoder).
 *
 * Example:
 *   parseImageHeader(bytesOfA28x28Png)
 *   // { format: 'png', width: 28, height: 28, depth: 'uchar', orientation: 1 }
 */
export function parseImageHeader(b: Uint8Array): ImageHeader | undefined {
  let h: ImageHeader | undefined;
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) h = parsePng(b);
  else if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) h = parseJpeg(b);
  else if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') h = parseWebp(b);
  else if (b.length >= 6 && (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a')) h = parseGif(b);
  if (!h || h.width < 1 || h.height < 1 || h.width > MAX_SIDE || h.height > MAX_SIDE) return undefined;
  return h;
}

/** Width and height as displayed: orientations 5-8 turn the image a quarter. */
export function orientedSize(h: Pick<ImageHeader, 'width' | 'height' | 'orientation'>): { width: number; height: number } {
  return h.orientation >= 5 ? { width: h.height, height: h.width } : { width: h.width, height: h.height };
}

function ascii(b: Uint8Array, at: number, n: number): string {
  let s = '';
  for (let i = 0; i < n && at + i < b.length; i++) s += String.fromCharCode(b[at + i]);
  return s;
}

function u32be(b: Uint8Array, i: number): number {
  return b[i] * 0x1000000 + ((b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]);
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (PNG's, ISO 3309) of b[from, to). */
export function crc32(b: Uint8Array, from = 0, to = b.length): number {
  let c = 0xffffffff;
  for (let i = from; i < to; i++) c = CRC_TABLE[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Valid PNG bit depths by colour type (PNG spec, table 11.1). */
const PNG_DEPTHS: Record<number, readonly number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };

function parsePng(b: Uint8Array): ImageHeader | undefined {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (b.length < 33 || !sig.every((v, i) => b[i] === v)) return undefined;
  if (u32be(b, 8) !== 13 || ascii(b, 12, 4) !== 'IHDR' || crc32(b, 12, 29) !== u32be(b, 29)) return undefined;
  const width = u32be(b, 16);
  const height = u32be(b, 20);
  const bitDepth = b[24];
  const colourType = b[25];
  if (!PNG_DEPTHS[colourType]?.includes(bitDepth) || b[26] !== 0 || b[27] !== 0 || b[28] > 1) return undefined;
  // Walk the chunks to IEND: a clean walk means the file is not cut short and holds no orientation.
  let p = 33;
  let idat = false;
  let plte = false;
  for (;;) {
    if (p + 12 > b.length) return undefined;
    const len = u32be(b, p);
    const type = ascii(b, p + 4, 4);
    if (len > 0x7fffffff || p + 12 + len > b.length) return undefined;
    if (type === 'IEND') {
      if (len !== 0 || p + 12 !== b.length) return undefined;
      break;
    }
    if (type === 'IHDR' || type === 'eXIf') return undefined;
    if (type === 'IDAT') idat = true;
    if (type === 'PLTE') plte = true;
    if ((type === 'tEXt' || type === 'zTXt' || type === 'iTXt') && /^raw profile/i.test(ascii(b, p + 8, Math.min(len, 16)))) return undefined;
    p += 12 + len;
  }
  if (!idat || (colourType === 3 && !plte)) return undefined;
  return { format: 'png', width, height, depth: bitDepth === 16 ? 'ushort' : 'uchar', orientation: 1 };
}

/** SOFn markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC). */
function isSof(m: number): boolean {
  return m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
}

function parseJpeg(b: Uint8Array): ImageHeader | undefined {
  // The file must end with EOI (some writers pad with zeros): a cut file goes to the decoder.
  let end = b.length;
  while (end > 2 && b[end - 1] === 0) end--;
  if (!(b[end - 2] === 0xff && b[end - 1] === 0xd9)) return undefined;
  let p = 2;
  let sof: { width: number; height: number; precision: number } | undefined;
  let orientation = 1;
  let exifCount = 0;
  for (;;) {
    if (p + 4 > b.length || b[p] !== 0xff) return undefined;
    while (b[p + 1] === 0xff && p + 5 <= b.length) p++; // fill bytes
    const marker = b[p + 1];
    if (marker === 0xda) break; // SOS: the entropy-coded data starts
    if (marker === 0xd8 || marker === 0xd9 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) return undefined;
    const len = (b[p + 2] << 8) | b[p + 3];
    if (len < 2 || p + 2 + len > b.length) return undefined;
    const seg = p + 4; // segment data, len - 2 bytes
    if (isSof(marker)) {
      if (sof || len < 8) return undefined;
      sof = { precision: b[seg], height: (b[seg + 1] << 8) | b[seg + 2], width: (b[seg + 3] << 8) | b[seg + 4] };
    } else if (marker === 0xe1 && len >= 8 && ascii(b, seg, 6) === 'Exif\0\0') {
      if (++exifCount > 1) return undefined;
      const o = exifOrientation(b.subarray(seg + 6, p + 2 + len));
      if (o === undefined) return undefined;
      orientation = o;
    }
    p += 2 + len;
  }
  if (!sof || sof.precision !== 8 || sof.width === 0 || sof.height === 0) return undefined;
  return { format: 'jpeg', width: sof.width, height: sof.height, depth: 'uchar', orientation };
}

/**
 * The orientation in a TIFF-structured EXIF block (IFD0 tag 0x0112): 1 when
 * absent, undefined when the block or the tag is malformed.
 */
export function exifOrientation(t: Uint8Array): number | undefined {
  if (t.length < 8) return undefined;
  const le = t[0] === 0x49 && t[1] === 0x49;
  if (!le && !(t[0] === 0x4d && t[1] === 0x4d)) return undefined;
  const u16 = (i: number): number => (le ? t[i] | (t[i + 1] << 8) : (t[i] << 8) | t[i + 1]);
  const u32 = (i: number): number => (le ? u16(i) + u16(i + 2) * 0x10000 : u16(i) * 0x10000 + u16(i + 2));
  if (u16(2) !== 42) return undefined;
  const ifd = u32(4);
  if (ifd < 8 || ifd + 2 > t.length) return undefined;
  const n = u16(ifd);
  if (ifd + 2 + 12 * n > t.length) return undefined;
  let orientation = 1;
  let seen = false;
  for (let k = 0; k < n; k++) {
    const e = ifd + 2 + 12 * k;
    if (u16(e) !== 0x0112) continue;
    if (seen || u16(e + 2) !== 3 || u32(e + 4) !== 1) return undefined; // one SHORT
    seen = true;
    orientation = u16(e + 8);
    if (orientation < 1 || orientation > 8) return undefined;
  }
  return orientation;
}

function parseWebp(b: Uint8Array): ImageHeader | undefined {
  const riff = b[4] | (b[5] << 8) | (b[6] << 16) | (b[7] * 0x1000000);
  if (riff < 4 || riff + 8 > b.length || b.length < 30) return undefined;
  const chunk = ascii(b, 12, 4);
  const d = 20; // first chunk's data
  let width: number;
  let height: number;
  if (chunk === 'VP8 ') {
    if (!(b[d + 3] === 0x9d && b[d + 4] === 0x01 && b[d + 5] === 0x2a) || (b[d] & 1) !== 0) return undefined; // key frame start code
    width = (b[d + 6] | (b[d + 7] << 8)) & 0x3fff;
    height = (b[d + 8] | (b[d + 9] << 8)) & 0x3fff;
  } else if (chunk === 'VP8L') {
    if (b[d] !== 0x2f) return undefined;
    const bits = b[d + 1] | (b[d + 2] << 8) | (b[d + 3] << 16) | (b[d + 4] * 0x1000000);
    if (bits >>> 29 !== 0) return undefined; // version 0
    width = (bits & 0x3fff) + 1;
    height = ((bits >>> 14) & 0x3fff) + 1;
  } else if (chunk === 'VP8X') {
    const flags = b[d];
    if (flags & (0x08 | 0x02)) return undefined; // EXIF (orientation) or animation: ask the decoder
    width = (b[d + 4] | (b[d + 5] << 8) | (b[d + 6] << 16)) + 1;
    height = (b[d + 7] | (b[d + 8] << 8) | (b[d + 9] << 16)) + 1;
  } else {
    return undefined;
  }
  return { format: 'webp', width, height, depth: 'uchar', orientation: 1 };
}

function parseGif(b: Uint8Array): ImageHeader | undefined {
  if (b.length < 13) return undefined;
  const width = b[6] | (b[7] << 8);
  const height = b[8] | (b[9] << 8);
  let p = 13 + (b[10] & 0x80 ? 3 << ((b[10] & 7) + 1) : 0);
  // Find the first image descriptor: it must lie inside the logical screen.
  while (p < b.length && b[p] === 0x21) {
    p += 2;
    for (;;) {
      if (p >= b.length) return undefined;
      const n = b[p];
      p += 1 + n;
      if (n === 0) break;
    }
  }
  if (p + 10 > b.length || b[p] !== 0x2c) return undefined;
  const left = b[p + 1] | (b[p + 2] << 8);
  const top = b[p + 3] | (b[p + 4] << 8);
  const w = b[p + 5] | (b[p + 6] << 8);
  const h = b[p + 7] | (b[p + 8] << 8);
  if (w === 0 || h === 0 || left + w > width || top + h > height) return undefined;
  if (b[b.length - 1] !== 0x3b) return undefined; // no trailer: cut short, ask the decoder
  return { format: 'gif', width, height, depth: 'uchar', orientation: 1 };
}
