/**
 * tsx bench/header-agreement.ts: checks that parseImageHeader (src/core/image-header.ts)
 * agrees with sharp's metadata() (format, width, height, depth, orientation and
 * the oriented size) on every image file under data/photos, data/stamps and
 * data/fashion-mnist, and on files generated from a sample of them in other
 * formats (JPEG with each EXIF orientation, WebP lossy/lossless/alpha/EXIF,
 * GIF, 16-bit and grey and palette PNG, PNG with EXIF).
 *
 * Prints the number of files checked, how many the parser answered (the rest
 * it leaves to sharp), and every disagreement; exits 1 on any disagreement.
 * Flags: --fm N (Fashion-MNIST files, default all).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { orientedSize, parseImageHeader } from '../src/core/image-header';

const ROOT = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const fmArg = args.indexOf('--fm');
const FM_LIMIT = fmArg >= 0 ? Number(args[fmArg + 1]) : Infinity;

async function walk(dir: string, out: string[]): Promise<string[]> {
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (/\.(png|jpe?g|webp|gif|tiff?|avif)$/i.test(e.name)) out.push(p);
  }
  return out;
}

interface Tally {
  checked: number;
  answered: number;
  bad: string[];
}

async function check(name: string, bytes: Buffer, t: Tally): Promise<void> {
  t.checked++;
  const h = parseImageHeader(bytes);
  if (!h) return;
  t.answered++;
  const m = await sharp(bytes, { limitInputPixels: false, failOn: 'warning' }).metadata();
  const o = orientedSize(h);
  const ao = m.autoOrient ?? { width: m.width, height: m.height };
  const got = [h.format, h.width, h.height, h.depth, h.orientation, o.width, o.height];
  const want = [m.format, m.width, m.height, m.depth, m.orientation ?? 1, ao.width, ao.height];
  if (got.some((v, i) => v !== want[i])) t.bad.push(`${name}: parser ${JSON.stringify(got)} sharp ${JSON.stringify(want)}`);
}

async function main(): Promise<void> {
  const real: string[] = [];
  await walk(path.join(ROOT, 'data/photos'), real);
  await walk(path.join(ROOT, 'data/stamps'), real);
  const fm: string[] = [];
  for (const sub of ['train', 'test']) await walk(path.join(ROOT, 'data/fashion-mnist', sub), fm);
  fm.sort();
  const files = [...real, ...fm.slice(0, FM_LIMIT)];
  const t: Tally = { checked: 0, answered: 0, bad: [] };
  for (const f of files) await check(f, await fsp.readFile(f), t);
  console.log(`real files: ${t.checked} checked, ${t.answered} answered by the parser, ${t.bad.length} disagreements`);

  // Generated variants of every 25th real file.
  const g: Tally = { checked: 0, answered: 0, bad: [] };
  const sample = real.filter((_, i) => i % 25 === 0);
  for (const f of sample) {
    const src = () => sharp(f);
    const variants: [string, Promise<Buffer>][] = [
      ['jpeg', src().jpeg().toBuffer()],
      ['jpeg progressive', src().jpeg({ progressive: true }).toBuffer()],
      ['jpeg grey', src().greyscale().jpeg().toBuffer()],
      ['jpeg cmyk', src().toColourspace('cmyk').jpeg().toBuffer()],
      ['webp lossy', src().webp().toBuffer()],
      ['webp lossless', src().webp({ lossless: true }).toBuffer()],
      ['webp alpha', src().ensureAlpha(0.5).webp().toBuffer()],
      ['webp exif', src().withMetadata({ orientation: 6 }).webp().toBuffer()],
      ['gif', src().gif().toBuffer()],
      ['png 16-bit', src().toColourspace('rgb16').png().toBuffer()],
      ['png grey 16-bit', src().toColourspace('grey16').png().toBuffer()],
      ['png grey', src().greyscale().png().toBuffer()],
      ['png palette', src().png({ palette: true }).toBuffer()],
      ['png palette 2-bit', src().png({ palette: true, colours: 4 }).toBuffer()],
      ['png interlaced', src().png({ progressive: true }).toBuffer()],
      ['png exif', src().withMetadata({ orientation: 6 }).png().toBuffer()],
      ['tiff', src().tiff().toBuffer()],
    ];
    for (let o = 1; o <= 8; o++) variants.push([`jpeg orientation ${o}`, src().withMetadata({ orientation: o }).jpeg().toBuffer()]);
    for (const [label, p] of variants) await check(`${f} as ${label}`, await p, g);
  }
  console.log(`generated files: ${g.checked} checked (${sample.length} sources), ${g.answered} answered by the parser, ${g.bad.length} disagreements`);
  for (const line of [...t.bad, ...g.bad].slice(0, 50)) console.log(line);
  if (t.bad.length + g.bad.length > 0) process.exit(1);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
