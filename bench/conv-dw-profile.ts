/**
 * Where vtok's wasm Conv2DBackpropFilter spends its time, step by step, on the
 * two conv shapes of bench/engine.ts (issue #3), next to the forward conv.
 *
 *   npx tsx bench/conv-dw-profile.ts [--threads 2] [--reps 5] [--shapes bench|train|all]
 *
 * "bench": the two conv rows of bench:engine; "train": the convs of its
 * tokenizer training step (batch 4).
 *
 * (The kernel it replaced, one XNNPACK conv over transposed x and dy, was
 * profiled here too; its numbers are in the kernel's header comment.)
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../src/engine/backend';
import { Rng } from '../src/core/random';
import { Scratch, type WasmBackend } from '../src/engine/kernels/wasm-util';
import { CHUNK_ELEMENTS, conv2dBackpropFilterGemm } from '../src/engine/kernels/conv2d-backprop-filter';
import { median } from './lib/timing';

type Shape4 = [number, number, number, number];

function args(): { threads: number; reps: number; which: 'bench' | 'train' | 'all' } {
  const a = { threads: 2, reps: 5, which: 'all' as 'bench' | 'train' | 'all' };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--threads') a.threads = Number(argv[++i]);
    else if (argv[i] === '--reps') a.reps = Number(argv[++i]);
    else if (argv[i] === '--shapes') a.which = argv[++i] as 'bench' | 'train' | 'all';
    else throw new Error(`Unknown argument ${argv[i]}; see the comment at the top of bench/conv-dw-profile.ts`);
  }
  return a;
}

function rand(rng: Rng, shape: number[]): tf.Tensor {
  const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < v.length; i++) v[i] = rng.normal();
  return tf.tensor(v, shape);
}

async function main(): Promise<void> {
  const { threads, reps, which } = args();
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
    const variants: Record<string, Variant> = {
      [`gemm, chunks of ${CHUNK_ELEMENTS / 2 ** 20}M dy elements (kernel)`]: (s, mark) => conv2dBackpropFilterGemm(s, xi, dyi, info, mark),
      'gemm, chunks of 0.5M': (s, mark) => conv2dBackpropFilterGemm(s, xi, dyi, info, mark, 2 ** 19),
      'gemm, one chunk': (s, mark) => conv2dBackpropFilterGemm(s, xi, dyi, info, mark, Infinity),
    };
    const totals: Record<string, number[]> = { forward: [] };
    const steps: Record<string, number[]> = {};
    for (let r = 0; r <= reps; r++) {
      const keep = r > 0; // round 0 is the warm-up
      const t0 = performance.now();
      tf.conv2d(x, w, stride, 'same').dispose();
      if (keep) totals.forward.push(performance.now() - t0);
      for (const [name, run] of Object.entries(variants)) {
        const s = new Scratch(be);
        let total = 0;
        const split: Record<string, number> = {};
        let t = performance.now();
        run(s, (step) => {
          const now = performance.now();
          total += now - t;
          split[step] = (split[step] ?? 0) + now - t;
          t = now;
        });
        s.dispose();
        if (keep) {
          (totals[name] ??= []).push(total);
          for (const [step, ms] of Object.entries(split)) (steps[`${name}: ${step}`] ??= []).push(ms);
        }
      }
    }
    const fwd = median(totals.forward);
    const fwdMin = Math.min(...totals.forward);
    const fmt = (rec: Record<string, number[]>, ratio: boolean) =>
      Object.entries(rec)
        .map(([k, v]) => {
          const ratios = ratio ? ` (${(median(v) / fwd).toFixed(2)}x; min ${Math.min(...v).toFixed(1)}, ${(Math.min(...v) / fwdMin).toFixed(2)}x)` : '';
          return `    ${k} ${median(v).toFixed(1)}${ratios}`;
        })
        .join('\n');
    process.stdout.write(
      `x ${xs.join('x')} * w ${fs.join('x')} s${stride} (dy ${dy.shape.join('x')}), ${threads}t, medians of ${reps}, ms (x forward's; min over runs, x forward's min):\n` +
        `${fmt(totals, true)}\n  steps:\n${fmt(steps, false)}\n`,
    );
    tf.dispose([x, w, dy]);
  }
  await shutdownBackend();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
