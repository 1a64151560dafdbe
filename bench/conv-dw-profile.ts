/**
 * Where vtok's wasm Conv2DBackpropFilter spends its time, step by step, on the
 * two conv shapes of bench/engine.ts (issue #3), next to the forward conv.
 *
 *   npx tsx bench/conv-dw-profile.ts [--threads 2] [--reps 7] [--shapes bench|train|all]
 *       [--variants 512:all,1024:views,...] [--steps]
 *
 * "bench": the two conv rows of bench:engine; "train": the convs of its
 * tokenizer training step (batch 4). A variant is CHUNK:LAYOUT: CHUNK the
 * thousands (1024s) of dy elements per chunk, or "batch" for one chunk; LAYOUT
 * a TapLayout (views, rows, all). Default: the kernel's own settings.
 * Each variant runs right after a forward conv; the ratio of the two is one
 * sample, so that load from other jobs, which changes over seconds, hits both
 * alike. Printed: median time, median ratio (quartiles), and the fastest time
 * over the fastest forward; --steps adds the time of each step.
 *
 * (The kernels it replaced were profiled here too; their numbers are in the
 * kernel's header comment.)
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../src/engine/backend';
import { Rng } from '../src/core/random';
import { Scratch, type WasmBackend } from '../src/engine/kernels/wasm-util';
import { CHUNK_ELEMENTS, TAP_LAYOUT, conv2dBackpropFilterGemm, type TapLayout } from '../src/engine/kernels/conv2d-backprop-filter';
import { median } from './lib/timing';

type Shape4 = [number, number, number, number];

function args(): { threads: number; reps: number; which: 'bench' | 'train' | 'all'; variants: string[]; steps: boolean } {
  const a = { threads: 2, reps: 7, steps: false, which: 'all' as 'bench' | 'train' | 'all', variants: [`${CHUNK_ELEMENTS / 1024}:${TAP_LAYOUT}`] };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--threads') a.threads = Number(argv[++i]);
    else if (argv[i] === '--reps') a.reps = Number(argv[++i]);
    else if (argv[i] === '--shapes') a.which = argv[++i] as 'bench' | 'train' | 'all';
    else if (argv[i] === '--variants') a.variants = argv[++i].split(',');
    else if (argv[i] === '--steps') a.steps = true;
    else throw new Error(`Unknown argument ${argv[i]}; see the comment at the top of bench/conv-dw-profile.ts`);
  }
  return a;
}

/** First quartile, median, third quartile. */
function quartiles(v: number[]): [number, number, number] {
  const a = [...v].sort((p, q) => p - q);
  const at = (f: number) => a[Math.min(a.length - 1, Math.round(f * (a.length - 1)))];
  return [at(0.25), median(v), at(0.75)];
}

function rand(rng: Rng, shape: number[]): tf.Tensor {
  const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < v.length; i++) v[i] = rng.normal();
  return tf.tensor(v, shape);
}

async function main(): Promise<void> {
  const { threads, reps, which, variants: variantSpecs, steps: showSteps } = args();
  await initBackend({ backend: 'wasm', threads });
  const be = tf.backend() as unknown as WasmBackend;
  const all: { x: Shape4; f: Shape4; stride: number }[] = [
    { x: [8, 64, 64, 64], f: [3, 3, 64, 64], stride: 1 },
    { x: [8, 64, 64, 64], f: [3, 3, 64, 128], stride: 2 },
    // the tokenizer's layers in bench/engine.ts's training step (batch 4)
    { x: [4, 64, 64, 3], f: [3, 3, 3, 32], stride: 1 },
    { x: [4, 64, 64, 32], f: [3, 3, 32, 64], stride: 2 },
    { x: [4, 32, 32, 64], f: [3, 3, 64, 64], stride: 2 },
    { x: [4, 16, 16, 64], f: [1, 1, 64, 16], stride: 1 },
    { x: [4, 16, 16, 16], f: [3, 3, 16, 64], stride: 1 },
    { x: [4, 32, 32, 64], f: [3, 3, 64, 32], stride: 1 },
    { x: [4, 64, 64, 32], f: [3, 3, 32, 32], stride: 1 },
    { x: [4, 64, 64, 32], f: [3, 3, 32, 3], stride: 1 },
  ];
  const shapes = which === 'bench' ? all.slice(0, 2) : which === 'train' ? all.slice(2) : all;
  for (const { x: xs, f: fs, stride } of shapes) {
    const rng = new Rng(1);
    const x = rand(rng, xs) as tf.Tensor4D;
    const w = rand(rng, fs) as tf.Tensor4D;
    const dy = tf.conv2d(x, w, stride, 'same');
    const info = tf.backend_util.computeConv2DInfo(xs, fs, stride, 1, 'same');
    const xi = x as unknown as tf.TensorInfo;
    const dyi = dy as unknown as tf.TensorInfo;
    // The formulations and the forward, interleaved so that load from other jobs hits all alike.
    type Variant = (s: Scratch, mark: (step: string) => void) => void;
    const variants: Record<string, Variant> = {};
    for (const spec of variantSpecs) {
      const [chunk, layout = TAP_LAYOUT] = spec.split(':');
      const elements = chunk === 'batch' ? Infinity : Number(chunk) * 1024;
      variants[chunk === 'batch' ? `one chunk, ${layout}` : `chunks of ${chunk}K dy elements, ${layout}`] = (s, mark) =>
        conv2dBackpropFilterGemm(s, xi, dyi, info, mark, elements, layout as TapLayout);
    }
    // Each variant runs right after a forward conv: its ratio to that forward is one sample
    // (load from other jobs changes over seconds, so adjacent pairs compare like with like).
    const forwardMs: number[] = [];
    const totals: Record<string, number[]> = {};
    const ratios: Record<string, number[]> = {};
    const steps: Record<string, number[]> = {};
    for (let r = 0; r <= reps; r++) {
      const keep = r > 0; // round 0 is the warm-up
      for (const [name, run] of Object.entries(variants)) {
        const t0 = performance.now();
        tf.conv2d(x, w, stride, 'same').dispose();
        const fwd = performance.now() - t0;
        const s = new Scratch(be);
        const split: Record<string, number> = {};
        let t = performance.now();
        const start = t;
        run(s, (step) => {
          const now = performance.now();
          split[step] = (split[step] ?? 0) + now - t;
          t = now;
        });
        s.dispose();
        const total = performance.now() - start;
        if (keep) {
          forwardMs.push(fwd);
          (totals[name] ??= []).push(total);
          (ratios[name] ??= []).push(total / fwd);
          for (const [step, ms] of Object.entries(split)) (steps[`${name}: ${step}`] ??= []).push(ms);
        }
      }
    }
    const lines = Object.keys(totals).map((k) => {
      const q = quartiles(ratios[k]);
      const best = Math.min(...totals[k]);
      return (
        `    ${k}: ${median(totals[k]).toFixed(1)} ms, x forward ${q[1].toFixed(2)} (quartiles ${q[0].toFixed(2)}-${q[2].toFixed(2)}); ` +
        `fastest ${best.toFixed(1)} ms, ${(best / Math.min(...forwardMs)).toFixed(2)}x the fastest forward`
      );
    });
    const stepLines = showSteps ? Object.entries(steps).map(([k, v]) => `    ${k} ${median(v).toFixed(1)} (fastest ${Math.min(...v).toFixed(1)})`) : [];
    process.stdout.write(
      `x ${xs.join('x')} * w ${fs.join('x')} s${stride} (dy ${dy.shape.join('x')}), ${threads}t, ${reps} reps: ` +
        `forward ${median(forwardMs).toFixed(1)} ms (fastest ${Math.min(...forwardMs).toFixed(1)}); medians of time and of the ratio to the forward run just before:\n` +
        `${lines.join('\n')}\n${stepLines.length ? `  steps (medians, ms):\n${stepLines.join('\n')}\n` : ''}`,
    );
    tf.dispose([x, w, dy]);
  }
  await shutdownBackend();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
