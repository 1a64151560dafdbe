/**
 * report.html of a reconstruction report (eval/recon.ts): one self-contained
 * page (inline CSS, no scripts, no fonts or assets from elsewhere) that links
 * the report's PNGs by relative name and draws the code-usage histogram as
 * inline SVG. scripts/check-report.ts loads it in headless Chromium.
 *
 * The metrics table is <table id="metrics">; every image is an <img> whose src
 * is a PNG in the report folder.
 */
import type { ReconReport } from './recon';

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

const db = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)} dB` : '+inf dB');
const fixed = (v: number, d: number): string => (Number.isFinite(v) ? v.toFixed(d) : String(v));

/** CSS pixels for a PNG: small tokenizer sizes are enlarged (pixelated) so the images can be seen. */
function displaySize(width: number, height: number, imageSize: number): { w: number; h: number } {
  const scale = imageSize < 128 ? Math.ceil(128 / imageSize) : 1;
  return { w: width * scale, h: height * scale };
}

function img(src: string, width: number, height: number, imageSize: number, alt: string): string {
  const d = displaySize(width, height, imageSize);
  return `<img src="${escapeHtml(src)}" width="${d.w}" height="${d.h}" alt="${escapeHtml(alt)}">`;
}

/**
 * The code-usage histogram as inline SVG: code counts sorted from most to least
 * used (rank on x), at most 512 bars (each the mean count of its rank range).
 */
export function usageSvg(counts: ArrayLike<number>): string {
  const sorted = Array.from(counts).sort((a, b) => b - a);
  const K = sorted.length;
  const bars = Math.min(512, K);
  const values: number[] = [];
  for (let i = 0; i < bars; i++) {
    const lo = Math.floor((i * K) / bars);
    const hi = Math.max(lo + 1, Math.floor(((i + 1) * K) / bars));
    let s = 0;
    for (let k = lo; k < hi; k++) s += sorted[k];
    values.push(s / (hi - lo));
  }
  const max = Math.max(1, sorted[0] ?? 0);
  const W = 720;
  const H = 200;
  const left = 50;
  const bottom = 30;
  const plotW = W - left - 10;
  const plotH = H - bottom - 10;
  const bw = plotW / bars;
  const used = sorted.filter((c) => c > 0).length;
  const rects = values
    .map((v, i) => {
      const h = (v / max) * plotH;
      return h > 0 ? `<rect x="${(left + i * bw).toFixed(2)}" y="${(10 + plotH - h).toFixed(2)}" width="${Math.max(bw - (bw > 3 ? 1 : 0), 0.5).toFixed(2)}" height="${h.toFixed(2)}"/>` : '';
    })
    .join('');
  const usedX = left + (used / K) * plotW;
  return (
    `<svg id="usage-histogram" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="code counts sorted by frequency">` +
    `<g fill="#3b6ea5">${rects}</g>` +
    `<line x1="${left}" y1="${10 + plotH}" x2="${left + plotW}" y2="${10 + plotH}" stroke="#333"/>` +
    `<line x1="${left}" y1="10" x2="${left}" y2="${10 + plotH}" stroke="#333"/>` +
    `<line x1="${usedX.toFixed(2)}" y1="10" x2="${usedX.toFixed(2)}" y2="${10 + plotH}" stroke="#c0392b" stroke-dasharray="4 3"/>` +
    `<text x="${left - 4}" y="16" text-anchor="end" font-size="11">${max}</text>` +
    `<text x="${left - 4}" y="${10 + plotH}" text-anchor="end" font-size="11">0</text>` +
    `<text x="${left}" y="${H - 8}" font-size="11">most used</text>` +
    `<text x="${left + plotW}" y="${H - 8}" text-anchor="end" font-size="11">least used (rank ${K})</text>` +
    `<text x="${Math.min(usedX + 4, left + plotW - 90).toFixed(2)}" y="24" font-size="11" fill="#c0392b">${used} used</text>` +
    `</svg>`
  );
}

/** The whole page. `counts` is the code histogram (length K). */
export function renderReconHtml(r: ReconReport, counts: ArrayLike<number>): string {
  const m = r.metrics;
  const S = r.tokenizer.imageSize;
  const rows: [string, string, string][] = [
    ['PSNR', db(m.psnr.mean), `mean over ${m.psnr.n} images, 8-bit, R = 255${m.psnr.infinite > 0 ? `; ${m.psnr.infinite} identical image(s) counted as ${m.psnr.cap} dB` : ''}`],
    ['SSIM', fixed(m.ssim.mean, 4), 'mean over images; scikit-image defaults (7x7 uniform window, data_range 255)'],
    ['codebook usage', `${(m.codebook.usage * 100).toFixed(2)}%`, `${m.codebook.used} of ${m.codebook.K} codes used at least once, over ${m.codebook.total} codes`],
    ['perplexity', fixed(m.codebook.perplexity, 2), `exp(entropy) of the code histogram over the whole set (at most ${m.codebook.K})`],
  ];
  if (m.frechet) {
    rows.push([m.frechet.label, fixed(m.frechet.distance, 4), `N = ${m.frechet.n} originals vs reconstructions; extractor ${m.frechet.extractor.name} (${m.frechet.extractor.dim}-d)${m.frechet.extractor.standard ? '' : ', not FID'}`]);
  } else {
    rows.push(['Fréchet distance', 'not computed', r.method.frechet]);
  }
  rows.push(
    ['images', String(r.data.evaluated), `of ${r.data.listed} in the folder${r.data.limit !== null ? ` (limit ${r.data.limit})` : ''}${r.data.skipped.length ? `; ${r.data.skipped.length} unreadable, skipped` : ''}`],
    ['image size', `${S}x${S}`, `code grid ${r.tokenizer.grid[0]}x${r.tokenizer.grid[1]}`],
    ['throughput', `${fixed(r.timings.imagesPerSecond, 2)} images/s`, `read, encode, decode and score; ${r.timings.loopSeconds.toFixed(1)} s (model ${r.timings.modelSeconds.toFixed(1)} s, features ${r.timings.featureSeconds.toFixed(1)} s), ${r.timings.wallSeconds.toFixed(1)} s wall with loading; backend ${r.backend}`],
  );
  const metricsTable =
    `<table id="metrics"><thead><tr><th>metric</th><th>value</th><th>how</th></tr></thead><tbody>` +
    rows.map(([a, b, c]) => `<tr><th scope="row">${escapeHtml(a)}</th><td class="num">${escapeHtml(b)}</td><td>${escapeHtml(c)}</td></tr>`).join('') +
    `</tbody></table>`;

  const notes = [r.method.preprocessing, r.method.psnr, r.method.ssim, r.method.usage, r.method.frechet];
  if (m.frechet) notes.push(`extractor: ${m.frechet.extractor.description}`);
  if (m.frechet?.note) notes.push(m.frechet.note);

  const samples = r.samples.length
    ? r.samples.map((s) => `<figure>${img(s.png, s.width, s.height, S, `originals (top) and reconstructions (bottom): ${s.files.join(', ')}`)}<figcaption>top: original, bottom: reconstruction (PSNR under each)</figcaption></figure>`).join('')
    : '<p>No samples requested.</p>';

  const worst = r.worst.length
    ? `<table id="worst"><thead><tr><th>#</th><th>file</th><th>PSNR</th><th>SSIM</th><th>original | reconstruction</th></tr></thead><tbody>` +
      r.worst
        .map(
          (w) =>
            `<tr><td>${w.rank}</td><td>${escapeHtml(w.file)}</td><td class="num">${escapeHtml(db(w.psnr))}</td><td class="num">${fixed(w.ssim, 4)}</td><td>${img(w.png, w.width, w.height, S, `${w.file}: original and reconstruction`)}</td></tr>`,
        )
        .join('') +
      `</tbody></table>`
    : '<p>No worst images requested.</p>';

  const skipped = r.data.skipped.length
    ? `<h2>Skipped files</h2><ul>${r.data.skipped.map((s) => `<li>${escapeHtml(s.file)}: ${escapeHtml(s.message)} [${escapeHtml(s.code)}]</li>`).join('')}</ul>`
    : '';

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vtok reconstruction report: ${escapeHtml(r.tokenizer.name)}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: middle; }
thead th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
img { image-rendering: pixelated; max-width: 100%; height: auto; }
figure { margin: 1em 0; }
figcaption, .meta { color: #555; font-size: 12px; }
code { font-size: 12px; }
</style>
</head>
<body>
<h1>Reconstruction report</h1>
<p class="meta">tokenizer <b>${escapeHtml(r.tokenizer.name)}</b> <code>${escapeHtml(r.tokenizer.id)}</code>, data <code>${escapeHtml(r.data.dir)}</code>, ${escapeHtml(r.createdAt)}</p>
<h2>Metrics</h2>
${metricsTable}
<h2>How the numbers were computed</h2>
<ul>${notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>
<h2>Originals and reconstructions</h2>
${samples}
<h2>Worst ${r.worst.length} by PSNR</h2>
${worst}
<h2>Code usage</h2>
<p>${m.codebook.used} of ${m.codebook.K} codes used (${(m.codebook.usage * 100).toFixed(2)}%), perplexity ${fixed(m.codebook.perplexity, 2)}. Counts of every code, sorted from most to least used:</p>
${usageSvg(counts)}
${skipped}
</body>
</html>
`;
}
