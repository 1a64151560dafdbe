/**
 * Checks a report page (vtok eval recon's report.html) the way a person would
 * see it: loads it in headless Chromium and verifies that
 *   - the metrics table (<table id="metrics">) is there, with rows;
 *   - every <img> loaded in the browser (decoded, non-zero size), and its src is
 *     a relative path to an existing file in the report folder that is a PNG
 *     (signature) and decodes (sharp);
 *   - nothing is loaded from elsewhere (no http(s):, protocol-relative or
 *     absolute URLs in src/href).
 *
 * Chromium (Debian package `chromium`; /usr/bin/chromium, or $VTOK_CHROMIUM)
 * loads a copy of the page, made in a temporary folder, with a <base> pointing
 * at the report folder and a small script that records, after the load event,
 * each image's naturalWidth/Height into the DOM that --dump-dom prints. The
 * report folder itself is never written to.
 *
 * Usage:
 *   npx tsx scripts/check-report.ts REPORT_DIR|report.html [--screenshot page.png] [--chromium PATH]
 * Exit 0 when the page is fine, 1 with one line per problem otherwise, 2 on bad usage
 * or when Chromium cannot run.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';

export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

export interface ImageCheck {
  src: string;
  /** What Chromium decoded; 0 x 0 when it could not load or decode it. */
  width: number;
  height: number;
  ok: boolean;
  /** Why not, when not ok. */
  problem: string | undefined;
}

export interface ReportCheck {
  html: string;
  metricsRows: number;
  images: ImageCheck[];
  problems: string[];
}

export interface CheckReportOptions {
  /** Chromium executable. Default $VTOK_CHROMIUM, else /usr/bin/chromium. */
  chromium?: string;
  /** Also save a full-page screenshot here. */
  screenshot?: string;
  /** Seconds Chromium may take. Default 90. */
  timeoutSeconds?: number;
}

const PROBE_ID = 'vtok-report-check';
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** The report page for a folder or a file path. */
export function resolveReportHtml(target: string): string {
  return existsSync(target) && !target.endsWith('.html') ? path.join(target, 'report.html') : target;
}

function run(cmd: string, args: string[], timeoutSeconds: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutSeconds * 1000, maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} failed: ${err.message.split('\n')[0]}${stderr ? `\n${stderr.split('\n').filter((l) => !/dbus|mojo|bus\.cc/.test(l)).slice(-5).join('\n')}` : ''}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** Attribute values of one attribute on the page's tags (a light parse: the report is generated, not arbitrary HTML). */
function attributeValues(html: string, attr: string): string[] {
  const re = new RegExp(`\\s${attr}\\s*=\\s*("([^"]*)"|'([^']*)')`, 'gi');
  const out: string[] = [];
  for (let m = re.exec(html); m; m = re.exec(html)) out.push((m[2] ?? m[3]).replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'"));
  return out;
}

/** Checks that a src/href is a relative path inside the report folder and, for images, an existing decodable PNG. */
async function checkFile(dir: string, ref: string): Promise<string | undefined> {
  if (/^[a-z][a-z0-9+.-]*:/i.test(ref) || ref.startsWith('//') || ref.startsWith('/')) return `${ref} is not a relative path in the report folder (the page must be self-contained)`;
  const file = path.resolve(dir, decodeURIComponent(ref.split(/[?#]/)[0]));
  if (!file.startsWith(path.resolve(dir) + path.sep)) return `${ref} points outside the report folder`;
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(file);
  } catch {
    return `${ref} does not exist (${file})`;
  }
  if (!bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return `${ref} is not a PNG file (no PNG signature)`;
  try {
    const { info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
    if (info.width === 0 || info.height === 0) return `${ref} is an empty PNG`;
  } catch (err) {
    return `${ref} does not decode as a PNG: ${(err as Error).message}`;
  }
  return undefined;
}

/** Loads the page in headless Chromium and checks it; never throws for a bad page (see `problems`). */
export async function checkReport(target: string, options: CheckReportOptions = {}): Promise<ReportCheck> {
  const html = path.resolve(resolveReportHtml(target));
  const dir = path.dirname(html);
  const chromium = options.chromium ?? process.env.VTOK_CHROMIUM ?? DEFAULT_CHROMIUM;
  const timeout = options.timeoutSeconds ?? 90;
  const problems: string[] = [];
  let source: string;
  try {
    source = await fsp.readFile(html, 'utf8');
  } catch (err) {
    return { html, metricsRows: 0, images: [], problems: [`cannot read ${html}: ${(err as Error).message}`] };
  }
  if (!existsSync(chromium)) throw new Error(`Chromium not found at ${chromium}: apt-get install chromium, or set VTOK_CHROMIUM`);

  // Everything the page refers to must be local (images are checked in detail below).
  for (const ref of attributeValues(source, 'href')) {
    if (/^(https?:)?\/\//i.test(ref)) problems.push(`the page links ${ref}: external assets are not allowed`);
  }
  for (const tag of source.match(/<(script|link|iframe|object|embed)\b[^>]*\ssrc\s*=/gi) ?? []) problems.push(`the page loads a resource with ${tag.trim()}...: not allowed`);

  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-check-report-'));
  try {
    const probe = `<script>window.addEventListener('load', () => {
  const r = Array.from(document.images).map((im) => ({ src: im.getAttribute('src'), w: im.naturalWidth, h: im.naturalHeight, complete: im.complete }));
  const pre = document.createElement('pre'); pre.id = '${PROBE_ID}'; pre.textContent = JSON.stringify(r); document.body.appendChild(pre);
});</script>`;
    const base = `<base href="${pathToFileURL(dir + path.sep).href}">`;
    let copy = /<head[^>]*>/i.test(source) ? source.replace(/<head[^>]*>/i, (h) => `${h}${base}`) : base + source;
    copy = /<\/body>/i.test(copy) ? copy.replace(/<\/body>/i, `${probe}</body>`) : copy + probe;
    const probePage = path.join(work, 'page.html');
    await fsp.writeFile(probePage, copy);
    const common = ['--headless', '--disable-gpu', '--no-sandbox', '--no-first-run', '--disable-extensions', `--user-data-dir=${path.join(work, 'profile')}`];
    const { stdout: dom } = await run(chromium, [...common, '--dump-dom', pathToFileURL(probePage).href], timeout);
    if (options.screenshot) {
      await run(chromium, [...common, `--screenshot=${path.resolve(options.screenshot)}`, '--window-size=1200,2000', '--hide-scrollbars', pathToFileURL(html).href], timeout);
    }

    const table = /<table[^>]*\bid="metrics"[^>]*>([\s\S]*?)<\/table>/i.exec(dom);
    const metricsRows = table ? (table[1].match(/<tbody>[\s\S]*<\/tbody>/i)?.[0].match(/<tr\b/gi) ?? []).length : 0;
    if (!table) problems.push('no metrics table (<table id="metrics">) on the page');
    else if (metricsRows === 0) problems.push('the metrics table has no rows');

    const found = new RegExp(`<pre id="${PROBE_ID}">([\\s\\S]*?)</pre>`).exec(dom);
    if (!found) throw new Error(`Chromium did not run the page's load event (no ${PROBE_ID} result in its DOM)`);
    const seen = JSON.parse(found[1].replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')) as { src: string | null; w: number; h: number }[];
    const images: ImageCheck[] = [];
    for (const s of seen) {
      const src = s.src ?? '';
      let problem = src === '' ? 'an <img> without src' : await checkFile(dir, src);
      if (!problem && !(s.w > 0 && s.h > 0)) problem = `${src} did not load or decode in Chromium`;
      images.push({ src, width: s.w, height: s.h, ok: problem === undefined, problem });
      if (problem) problems.push(problem);
    }
    return { html, metricsRows, images, problems };
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

async function cli(argv: string[]): Promise<number> {
  let target: string | undefined;
  const options: CheckReportOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--screenshot' || a === '--chromium') {
      const v = argv[++i];
      if (v === undefined) {
        process.stderr.write(`check-report: ${a} needs a value\n`);
        return 2;
      }
      if (a === '--screenshot') options.screenshot = v;
      else options.chromium = v;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: npx tsx scripts/check-report.ts REPORT_DIR|report.html [--screenshot page.png] [--chromium PATH]\n');
      return 0;
    } else if (target === undefined) target = a;
    else {
      process.stderr.write(`check-report: unexpected argument ${a}\n`);
      return 2;
    }
  }
  if (target === undefined) {
    process.stderr.write('usage: npx tsx scripts/check-report.ts REPORT_DIR|report.html [--screenshot page.png] [--chromium PATH]\n');
    return 2;
  }
  let r: ReportCheck;
  try {
    r = await checkReport(target, options);
  } catch (err) {
    process.stderr.write(`check-report: ${(err as Error).message}\n`);
    return 2;
  }
  if (r.problems.length > 0) {
    process.stderr.write(`check-report: ${r.html} FAILED:\n${r.problems.map((p) => `  - ${p}`).join('\n')}\n`);
    return 1;
  }
  process.stdout.write(`check-report: ${r.html} ok: metrics table with ${r.metricsRows} rows, ${r.images.length} images, all PNGs that load in Chromium\n`);
  return 0;
}

if (require.main === module) {
  void cli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
