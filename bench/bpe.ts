/**
 * `npm run bench:bpe`: vtok's visual BPE (2D and 1D) against Hugging Face's
 * BPE trainer (`tokenizers` on npm, Rust) on one corpus of code grids.
 *
 *   train time   same corpus, trained to the same vocabulary size. The npm
 *                binding's Tokenizer.train(files) takes no trainer options
 *                (it uses BpeTrainer::default(): vocab_size 30000,
 *                min_frequency 0), so that comparison is at 30,000 ids, with
 *                vtok at minFrequency 1 so both may use merges seen once.
 *   encode       grids per second over the whole corpus: HF encodeBatch() of
 *                all images (Rust, parallel over all cores) plus getIds();
 *                vtok encode() one grid at a time, on one thread and in one
 *                worker thread per core (bench/lib/bpe-workers.ts), the
 *                same cores HF uses.
 *   tokens/image mean sequence length over the corpus at several vocabulary
 *                sizes. BPE training is sequential, so a vocabulary of V ids
 *                is the prefix of the 30,000-id run that reaches V ids; HF's
 *                model for V is rebuilt from its merge list the same way.
 *
 * HF setup: code c -> the character U+4E00 + c (CJK ideographs, untouched
 * without a normalizer), one image = one line = one word; no normalizer; the
 * only pre-tokenizer splits at the newline between images (the binding reads
 * files by line and would otherwise keep "\n" in every word).
 *
 * Usage: npm run bench:bpe -- [--corpus bench/out/bpe-corpus.bin] [--runs 3] [--vocab 2048,4096,8192,30000]
 * Make the corpus first: npx tsx scripts/bpe-corpus.ts
 */
import { existsSync, writeFileSync, mkdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { BPE, Tokenizer, charDelimiterSplit } from 'tokenizers';
import { BpeModel, BpeTrainer, CodeGrid } from '../src/core/bpe';
import { readGridFile } from './lib/bpe-corpus';
import { BpeEncodePool } from './lib/bpe-workers';

const HF_VOCAB = 30000; // fixed by the binding (BpeTrainer::default())
const CHAR0 = 0x4e00;

interface Args {
  corpus: string;
  runs: number;
  vocab: number[];
  out: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { corpus: 'bench/out/bpe-corpus.bin', runs: 3, vocab: [2048, 4096, 8192, 30000], out: 'bench/out/bpe.json' };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--corpus') a.corpus = v;
    else if (k === '--runs') a.runs = Number(v);
    else if (k === '--vocab') a.vocab = v.split(',').map(Number);
    else if (k === '--out') a.out = v;
    else throw new Error(`Unknown argument ${k}; see the comment at the top of bench/bpe.ts`);
  }
  return a;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The model made by the first merges of `model` that reach a vocabulary of V ids. */
function prefixModel(model: BpeModel, V: number): BpeModel {
  const m = model.merges;
  let size = model.baseVocab;
  let r = 0;
  while (r < m.left.length && size < V) {
    if (m.id[r] === size) size++;
    r++;
  }
  const cut = (x: Int32Array): Int32Array => x.slice(0, r);
  return new BpeModel(model.settings, { left: cut(m.left), right: cut(m.right), dy: cut(m.dy), dx: cut(m.dx), id: cut(m.id), count: cut(m.count) });
}

/** HF tokenizer JSON cut to the first merges that reach V ids (ids: alphabet first, then new tokens in merge order). */
function hfPrefix(json: { model: { vocab: Record<string, number>; merges: [string, string][] } }, V: number): string {
  const j = JSON.parse(JSON.stringify(json));
  const vocab: Record<string, number> = j.model.vocab;
  const merges: [string, string][] = j.model.merges;
  const keep: Record<string, number> = {};
  for (const [t, id] of Object.entries(vocab)) if (id < V) keep[t] = id;
  let r = 0;
  while (r < merges.length && vocab[merges[r][0] + merges[r][1]] < V) r++;
  j.model.vocab = keep;
  j.model.merges = merges.slice(0, r);
  return JSON.stringify(j);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (!existsSync(args.corpus)) throw new Error(`No corpus at ${args.corpus}; make it with: npx tsx scripts/bpe-corpus.ts`);
  const { header, codes } = await readGridFile(args.corpus);
  const n = header.h * header.w;
  const K = header.baseVocab;
  const corpus: CodeGrid[] = Array.from({ length: header.count }, (_, g) => ({ codes: codes.subarray(g * n, (g + 1) * n), h: header.h, w: header.w }));
  const lines: string[] = corpus.map((g) => String.fromCharCode(...Array.from(g.codes, (c) => CHAR0 + c)));
  const dir = path.dirname(args.out);
  mkdirSync(dir, { recursive: true });
  const textFile = path.join(dir, 'bpe-corpus-hf.txt');
  writeFileSync(textFile, lines.join('\n') + '\n');
  const log = (s: string): void => void process.stderr.write(s + '\n');
  const threads = os.cpus().length;
  log(`corpus ${args.corpus}: ${header.count} grids of ${header.h}x${header.w}, K = ${K}\n  codes: ${header.source}`);
  log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}, node ${process.version}, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);

  // ---- train time at HF's vocabulary size, interleaved runs
  const trainMs: Record<'2d' | '1d' | 'hf', number[]> = { '2d': [], '1d': [], hf: [] };
  // CPU time of the whole process (all threads: HF's trainer runs on every core), user + system.
  const trainCpuMs: Record<'2d' | '1d' | 'hf', number[]> = { '2d': [], '1d': [], hf: [] };
  const cpuMs = (c: NodeJS.CpuUsage): number => (c.user + c.system) / 1000;
  let model2d: BpeModel | null = null;
  let model1d: BpeModel | null = null;
  let hfJson = '';
  for (let run = 0; run < args.runs; run++) {
    for (const mode of ['2d', '1d'] as const) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const model = new BpeTrainer(corpus, { baseVocab: K, vocabSize: HF_VOCAB, mode, minFrequency: 1 }).train();
      trainMs[mode].push(performance.now() - t0);
      trainCpuMs[mode].push(cpuMs(process.cpuUsage(c0)));
      if (mode === '2d') model2d = model;
      else model1d = model;
    }
    const tok = new Tokenizer(BPE.empty());
    tok.setPreTokenizer(charDelimiterSplit('\n'));
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    tok.train([textFile]);
    trainMs.hf.push(performance.now() - t0);
    trainCpuMs.hf.push(cpuMs(process.cpuUsage(c0)));
    const saved = path.join(dir, 'bpe-hf-tokenizer.json');
    tok.save(saved);
    hfJson = readFileSync(saved, 'utf8');
    const both = (m: '2d' | '1d' | 'hf'): string => `${trainMs[m][run].toFixed(0)} ms (cpu ${trainCpuMs[m][run].toFixed(0)} ms)`;
    log(`train run ${run + 1}: 2d ${both('2d')}, 1d ${both('1d')}, hf ${both('hf')}`);
  }
  if (!model2d || !model1d) throw new Error('no runs');
  const hfFull = JSON.parse(hfJson);
  const hfAlphabet = Object.keys(hfFull.model.vocab).length - new Set((hfFull.model.merges as [string, string][]).map(([a, b]) => a + b)).size;
  const merges = { '2d': model2d.numMerges, '1d': model1d.numMerges, hf: hfFull.model.merges.length as number };
  log(`merges to ${HF_VOCAB} ids: 2d ${merges['2d']}, 1d ${merges['1d']}, hf ${merges.hf} (hf alphabet ${hfAlphabet})`);

  // ---- encode throughput and tokens per image at each vocabulary size
  const rows: Record<string, number | string>[] = [];
  for (const V of args.vocab) {
    const m2 = prefixModel(model2d, V);
    const m1 = prefixModel(model1d, V);
    const hfString = hfPrefix(hfFull, V);
    const enc: Record<'2d' | '1d' | 'hf' | '2dPar', number[]> = { '2d': [], '1d': [], hf: [], '2dPar': [] };
    const pool = await BpeEncodePool.create(m2, codes, header.count, header.h, header.w, threads);
    const tokens: Record<'2d' | '1d' | 'hf', number> = { '2d': 0, '1d': 0, hf: 0 };
    for (let run = 0; run < args.runs; run++) {
      for (const [mode, model] of [['2d', m2], ['1d', m1]] as const) {
        let total = 0;
        const t0 = performance.now();
        for (const g of corpus) total += model.encode(g.codes, g.h, g.w).length;
        enc[mode].push(performance.now() - t0);
        tokens[mode] = total / corpus.length;
      }
      {
        const t0 = performance.now();
        const total = await pool.encodeAll();
        enc['2dPar'].push(performance.now() - t0);
        if (Math.abs(total / corpus.length - tokens['2d']) > 1e-9) throw new Error('parallel encode disagrees');
      }
      const hf = Tokenizer.fromString(hfString); // fresh: no cache from an earlier run
      const t0 = performance.now();
      const out = await hf.encodeBatch(lines);
      let total = 0;
      for (const e of out) total += e.getIds().length;
      enc.hf.push(performance.now() - t0);
      tokens.hf = total / corpus.length;
      if (run === 0) {
        // Correctness: vtok decodes exactly; HF tokens spell the image.
        for (let g = 0; g < corpus.length; g += 97) {
          for (const model of [m2, m1]) {
            const back = model.decode(model.encode(corpus[g].codes, header.h, header.w), header.h, header.w);
            if (!back.every((v, i) => v === corpus[g].codes[i])) throw new Error(`vtok round trip failed on grid ${g}`);
          }
          if (out[g].getTokens().join('') !== lines[g]) throw new Error(`HF tokens do not spell grid ${g}`);
        }
      }
    }
    await pool.close();
    const gps = (ms: number[]): number => corpus.length / (median(ms) / 1000);
    rows.push({
      vocab: V,
      vtok2dTokens: tokens['2d'],
      vtok1dTokens: tokens['1d'],
      hfTokens: tokens.hf,
      vtok2dGridsPerS: gps(enc['2d']),
      vtok2dParGridsPerS: gps(enc['2dPar']),
      vtok1dGridsPerS: gps(enc['1d']),
      hfGridsPerS: gps(enc.hf),
    });
    log(`vocab ${V}: tokens/image 2d ${tokens['2d'].toFixed(2)} 1d ${tokens['1d'].toFixed(2)} hf ${tokens.hf.toFixed(2)}; grids/s 2d ${gps(enc['2d']).toFixed(0)} 2d x${threads} ${gps(enc['2dPar']).toFixed(0)} 1d ${gps(enc['1d']).toFixed(0)} hf ${gps(enc.hf).toFixed(0)}`);
  }

  // ---- report
  const t = { '2d': median(trainMs['2d']), '1d': median(trainMs['1d']), hf: median(trainMs.hf) };
  const c = { '2d': median(trainCpuMs['2d']), '1d': median(trainCpuMs['1d']), hf: median(trainCpuMs.hf) };
  const f = (x: number, d = 0): string => x.toFixed(d);
  const load = os.loadavg().map((x) => x.toFixed(1)).join(' ');
  let md = `corpus: ${header.count} grids of ${header.h}x${header.w}, K = ${K} (${path.basename(args.corpus)}); medians of ${args.runs} runs; ${threads} cores, load average at the end ${load}\n\n`;
  md += `| train to ${HF_VOCAB} ids | merges | wall time (s) | vs HF | CPU time, all threads (s) | vs HF |\n|---|---|---|---|---|---|\n`;
  md += `| vtok 2D (1 thread) | ${merges['2d']} | ${f(t['2d'] / 1000, 2)} | ${f(t['2d'] / t.hf, 2)}x | ${f(c['2d'] / 1000, 2)} | ${f(c['2d'] / c.hf, 2)}x |\n`;
  md += `| vtok 1D (1 thread) | ${merges['1d']} | ${f(t['1d'] / 1000, 2)} | ${f(t['1d'] / t.hf, 2)}x | ${f(c['1d'] / 1000, 2)} | ${f(c['1d'] / c.hf, 2)}x |\n`;
  md += `| HF tokenizers (Rust; rayon may use all ${threads} cores) | ${merges.hf} | ${f(t.hf / 1000, 2)} | 1x | ${f(c.hf / 1000, 2)} | 1x |\n\n`;
  md += `| vocab | tokens/image 2D | 1D | HF | 2D/HF | encode grids/s: 2D, 1 thread | 2D, ${threads} threads | 1D, 1 thread | HF (Rust, ${threads} threads) | 2D ${threads} threads/HF |\n|---|---|---|---|---|---|---|---|---|---|\n`;
  for (const r of rows) {
    const n2 = r.vtok2dTokens as number;
    const nh = r.hfTokens as number;
    const g2 = r.vtok2dGridsPerS as number;
    const g2p = r.vtok2dParGridsPerS as number;
    const gh = r.hfGridsPerS as number;
    md += `| ${r.vocab} | ${f(n2, 1)} | ${f(r.vtok1dTokens as number, 1)} | ${f(nh, 1)} | ${f(n2 / nh, 3)} | ${f(g2)} | ${f(g2p)} | ${f(r.vtok1dGridsPerS as number)} | ${f(gh)} | ${f(g2p / gh, 2)}x |\n`;
  }
  process.stdout.write(md);
  writeFileSync(args.out, JSON.stringify({ corpus: args.corpus, header, runs: args.runs, trainMs, trainCpuMs, merges, rows, loadavg: os.loadavg() }, null, 2));
  log(`wrote ${args.out}`);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
