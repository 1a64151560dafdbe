/**
 * `npm run data`: prepares the real datasets that vtok trains and evaluates on,
 * reproducibly (fixed seed, sorted inputs), from Debian packages:
 *
 *   photos        random crops of the photographs/wallpapers of `mate-backgrounds`
 *                 and `ukui-wallpapers` (the files of those packages under /usr/share/backgrounds); test crops come
 *                 from held-out images (every 5th file in sorted order), never
 *                 from an image that training sees.
 *   photos-extra  train-only crops of `plasma-workspace-wallpapers`
 *                 (/usr/share/wallpapers, a different folder, so the photos split
 *                 above does not depend on whether it is installed).
 *   photos-heldout test-only crops of the photographs of `lomiri-wallpapers-16.04`
 *                 and `lomiri-wallpapers-20.04` (19 images no tokenizer trains on).
 *   fashion-mnist `dataset-fashion-mnist` IDX files -> PNG + a sidecar .txt with
 *                 the class name, split as published (60,000 train / 10,000 test).
 *   stamps        `tuxpaint-stamps-default` object photos -> PNG + the first line
 *                 of their caption as a sidecar .txt.
 *   stamps-probe  the stamps of the 8 largest categories, labelled by category
 *                 (labels.jsonl), alternate images in train/test: a linear-probe set.
 *
 * Usage: npm run data -- [--out data] [--only photos,photos-extra,photos-heldout,fashion-mnist,stamps,stamps-probe] [--crops 48] [--size 256]
 * Never needed by `npm test`.
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp, existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import sharp from 'sharp';
import { parseIdx } from '../src/core/idx';
import { Rng } from '../src/core/random';

const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

interface Args {
  out: string;
  only: string[];
  crops: number;
  size: number;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { out: 'data', only: ['photos', 'photos-extra', 'photos-heldout', 'fashion-mnist', 'stamps', 'stamps-probe'], crops: 48, size: 256 };
  for (let i = 0; i < argv.length; i++) {
    const [key, value] = [argv[i], argv[i + 1]];
    if (key === '--out') args.out = value;
    else if (key === '--only') args.only = value.split(',');
    else if (key === '--crops') args.crops = Number(value);
    else if (key === '--size') args.size = Number(value);
    else if (key === '--help' || key === '-h') {
      process.stdout.write(readFileSync(__filename, 'utf8').split('*/')[0] + '*/\n');
      process.exit(0);
    } else throw new Error(`Unknown argument ${key}; see --help`);
    i++;
  }
  return args;
}

async function listFiles(dir: string, exts: string[]): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string): Promise<void> {
    for (const entry of await fsp.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) await walk(p);
      else if (exts.includes(path.extname(entry.name).toLowerCase())) out.push(p);
    }
  }
  if (existsSync(dir)) await walk(dir);
  return out.sort();
}

const PHOTO_EXTS = ['.jpg', '.jpeg', '.png', '.webp'];

/**
 * Image files that the Debian packages `pkgs` installed under `dir` (dpkg -L),
 * sorted; without dpkg (another system), every image file under `dir`. Listing
 * by package keeps a split from depending on what else is installed there
 * (the lomiri wallpapers of photos-heldout live in the same folder).
 */
async function packageImages(pkgs: string[], dir: string): Promise<string[]> {
  let listed: string;
  try {
    listed = execFileSync('dpkg', ['-L', ...pkgs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  } catch {
    return listFiles(dir, PHOTO_EXTS);
  }
  const files = listed
    .split('\n')
    .filter((f) => f.startsWith(dir + '/') && PHOTO_EXTS.includes(path.extname(f).toLowerCase()) && existsSync(f));
  return [...new Set(files)].sort();
}

function missing(pkg: string, where: string): never {
  throw new Error(`${where} not found: install the Debian package ${pkg} (apt-get install ${pkg}), or on another system put the files there`);
}

/** Writes nCrops random square crops (random scale 0.25-1 of the short side) of one image as size x size PNGs named NAME-000.png, ... */
async function writeCrops(src: string, dir: string, nCrops: number, size: number, rng: Rng, name = path.basename(src, path.extname(src))): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const meta = await sharp(src).metadata();
  const w = meta.autoOrient?.width ?? meta.width ?? 0;
  const h = meta.autoOrient?.height ?? meta.height ?? 0;
  // Decode once at a working size, then cut crops of random scale from it.
  const work = Math.min(1024 / Math.min(w, h), 1);
  const base = sharp(src).rotate().resize(Math.round(w * work), Math.round(h * work)).removeAlpha().flatten({ background: '#ffffff' });
  const { data, info } = await base.raw().toBuffer({ resolveWithObject: true });
  const stem = name.replace(/[^A-Za-z0-9_-]/g, '_');
  for (let c = 0; c < nCrops; c++) {
    const side = Math.round(Math.min(info.width, info.height) * (0.25 + 0.75 * rng.next()));
    const left = rng.int(info.width - side + 1);
    const top = rng.int(info.height - side + 1);
    await sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels as 3 } })
      .extract({ left, top, width: side, height: side })
      .resize(size, size)
      .png()
      .toFile(path.join(dir, `${stem}-${String(c).padStart(3, '0')}.png`));
  }
}

async function photos(args: Args): Promise<void> {
  const sources = await packageImages(['mate-backgrounds', 'ukui-wallpapers'], '/usr/share/backgrounds');
  if (sources.length === 0) missing('mate-backgrounds ukui-wallpapers', '/usr/share/backgrounds');
  const rng = new Rng(20261124);
  let nTrain = 0;
  let nTest = 0;
  for (const [i, src] of sources.entries()) {
    const split = i % 5 === 4 ? 'test' : 'train';
    const nCrops = split === 'test' ? Math.max(8, Math.floor(args.crops / 3)) : args.crops;
    await writeCrops(src, path.join(args.out, 'photos', split), nCrops, args.size, rng);
    if (split === 'test') nTest += nCrops;
    else nTrain += nCrops;
  }
  process.stdout.write(`photos: ${nTrain} train crops, ${nTest} test crops from ${sources.length} images -> ${path.join(args.out, 'photos')}\n`);
}

/**
 * More training photos for the tokenizer, from a different package and folder
 * (`plasma-workspace-wallpapers`, /usr/share/wallpapers/NAME/contents/images/:
 * the largest file of each wallpaper), so that installing it never changes the
 * photos train/test split above. Train crops only: the held-out test set stays
 * data/photos/test.
 */
async function photosExtra(args: Args): Promise<void> {
  const root = '/usr/share/wallpapers';
  const sources: { file: string; name: string }[] = [];
  const names = existsSync(root) ? (await fsp.readdir(root)).sort() : [];
  for (const name of names) {
    const dir = path.join(root, name, 'contents', 'images');
    if (!existsSync(dir)) continue;
    const area = (f: string): number => {
      const m = /^(\d+)x(\d+)\./.exec(f);
      return m ? Number(m[1]) * Number(m[2]) : 0;
    };
    const files = (await fsp.readdir(dir)).filter((f) => area(f) > 0).sort((a, b) => area(b) - area(a) || (a < b ? -1 : 1));
    if (files.length > 0) sources.push({ file: path.join(dir, files[0]), name });
  }
  if (sources.length === 0) missing('plasma-workspace-wallpapers', root);
  const rng = new Rng(20261201);
  // Every file is called WxH.jpg: crops are named after the wallpaper.
  for (const { file, name } of sources) await writeCrops(file, path.join(args.out, 'photos-extra', 'train'), args.crops, args.size, rng, name);
  process.stdout.write(`photos-extra: ${sources.length * args.crops} train crops from ${sources.length} images -> ${path.join(args.out, 'photos-extra')}\n`);
}

async function fashionMnist(args: Args): Promise<void> {
  const root = '/usr/share/datasets/fashion-mnist';
  if (!existsSync(root)) missing('dataset-fashion-mnist', root);
  for (const [split, prefix] of [['train', 'train'], ['test', 't10k']] as const) {
    const images = parseIdx(gunzipSync(await fsp.readFile(path.join(root, `${prefix}-images-idx3-ubyte.gz`))), `${prefix}-images`);
    const labels = parseIdx(gunzipSync(await fsp.readFile(path.join(root, `${prefix}-labels-idx1-ubyte.gz`))), `${prefix}-labels`);
    const [n, h, w] = images.shape;
    const dir = path.join(args.out, 'fashion-mnist', split);
    await fsp.mkdir(dir, { recursive: true });
    const lines: string[] = [];
    for (let i = 0; i < n; i++) {
      const name = String(i).padStart(5, '0');
      const label = FASHION_CLASSES[labels.data[i]];
      await sharp(Buffer.from(images.data.subarray(i * h * w, (i + 1) * h * w)), { raw: { width: w, height: h, channels: 1 } })
        .png()
        .toFile(path.join(dir, `${name}.png`));
      await fsp.writeFile(path.join(dir, `${name}.txt`), label + '\n');
      lines.push(JSON.stringify({ file: `${name}.png`, label, class: labels.data[i] }));
    }
    await fsp.writeFile(path.join(dir, 'labels.jsonl'), lines.join('\n') + '\n');
    process.stdout.write(`fashion-mnist ${split}: ${n} images -> ${dir}\n`);
  }
}

const STAMPS = '/usr/share/tuxpaint/stamps';

/** The stamps with a caption: each PNG whose NAME.txt has a non-empty first line, with that line; sorted by path. */
async function captionedStamps(): Promise<{ png: string; caption: string }[]> {
  const pngs = await listFiles(STAMPS, ['.png']);
  if (pngs.length === 0) missing('tuxpaint-stamps-default', STAMPS);
  const out: { png: string; caption: string }[] = [];
  for (const png of pngs) {
    const txt = png.replace(/\.png$/i, '.txt');
    if (!existsSync(txt)) continue;
    const caption = (await fsp.readFile(txt, 'utf8')).split('\n')[0].trim();
    if (caption) out.push({ png, caption });
  }
  return out;
}

async function stamps(args: Args): Promise<void> {
  const list = await captionedStamps();
  for (const { png, caption } of list) {
    const dest = path.join(args.out, 'stamps', path.relative(STAMPS, png));
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    await fsp.copyFile(png, dest);
    await fsp.writeFile(dest.replace(/\.png$/i, '.txt'), caption + '\n');
  }
  process.stdout.write(`stamps: ${list.length} captioned images -> ${path.join(args.out, 'stamps')}\n`);
}

/**
 * A labelled object set for linear probes of semantic codes:
 * data/stamps-probe/{train,test}/ with the stamps (flattened names) of every
 * top-level category with at least 30 of them, labelled by that category in
 * labels.jsonl; alternate images of each category (in name order) go to train
 * and test. Objects of the kind an ImageNet teacher knows (animals, food,
 * plants, vehicles, ...), unlike Fashion-MNIST's grey clothing.
 */
async function stampsProbe(args: Args): Promise<void> {
  const byClass = new Map<string, string[]>();
  for (const { png } of await captionedStamps()) {
    const cls = path.relative(STAMPS, png).split(path.sep)[0];
    byClass.set(cls, [...(byClass.get(cls) ?? []), png]);
  }
  const lines: Record<'train' | 'test', string[]> = { train: [], test: [] };
  const kept = [...byClass.entries()].filter(([, files]) => files.length >= 30).sort(([a], [b]) => (a < b ? -1 : 1));
  for (const split of ['train', 'test'] as const) await fsp.mkdir(path.join(args.out, 'stamps-probe', split), { recursive: true });
  for (const [cls, files] of kept) {
    for (const [i, png] of files.entries()) {
      const split = i % 2 === 0 ? 'train' : 'test';
      const name = path.relative(STAMPS, png).split(path.sep).join('_').replace(/[^A-Za-z0-9_.-]/g, '_');
      await fsp.copyFile(png, path.join(args.out, 'stamps-probe', split, name));
      lines[split].push(JSON.stringify({ file: name, label: cls }));
    }
  }
  for (const split of ['train', 'test'] as const) {
    await fsp.writeFile(path.join(args.out, 'stamps-probe', split, 'labels.jsonl'), lines[split].join('\n') + '\n');
  }
  process.stdout.write(
    `stamps-probe: ${lines.train.length} train / ${lines.test.length} test images of ${kept.length} categories (${kept.map(([c]) => c).join(', ')}) -> ${path.join(args.out, 'stamps-probe')}\n`,
  );
}

/**
 * A second held-out photo set, test only, from images no vtok tokenizer trains
 * on: the photographs of `lomiri-wallpapers-16.04` and `lomiri-wallpapers-20.04`
 * (19 images), 8 crops each. More distinct images than data/photos/test (8), so
 * that codebook usage measures the tokenizer rather than the test set's variety.
 */
async function photosHeldout(args: Args): Promise<void> {
  const sources = await packageImages(['lomiri-wallpapers-16.04', 'lomiri-wallpapers-20.04'], '/usr/share/backgrounds');
  if (sources.length === 0) missing('lomiri-wallpapers-16.04 lomiri-wallpapers-20.04', '/usr/share/backgrounds');
  const rng = new Rng(20261202);
  const nCrops = Math.max(8, Math.floor(args.crops / 6));
  for (const src of sources) await writeCrops(src, path.join(args.out, 'photos-heldout', 'test'), nCrops, args.size, rng);
  process.stdout.write(`photos-heldout: ${sources.length * nCrops} test crops from ${sources.length} images -> ${path.join(args.out, 'photos-heldout')}\n`);
}

async function run(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const steps: Record<string, (a: Args) => Promise<void>> = { photos, 'photos-extra': photosExtra, 'photos-heldout': photosHeldout, 'fashion-mnist': fashionMnist, stamps, 'stamps-probe': stampsProbe };
  for (const name of args.only) {
    const step = steps[name];
    if (!step) throw new Error(`Unknown dataset ${JSON.stringify(name)}; known: ${Object.keys(steps).join(', ')}`);
    await step(args);
  }
}

run().catch((err: Error) => {
  process.stderr.write(`data: ${err.message}\n`);
  process.exitCode = 1;
});
