/**
 * `npm run bench:engine`: the compute engine, kernel by kernel and one VQ
 * tokenizer training step, on the same shapes on every backend:
 *   cpu      tfjs's pure-JavaScript backend (slow: its rows run once, and
 *            the conv weight-gradient rows, minutes each there, are skipped)
 *   wasm-1t  vtok's wasm engine on 1 thread
 *   wasm-Nt  vtok's wasm engine on every core (N = cores, at most 8)
 *   torch    PyTorch CPU (bench/torch_engine.py) on 1 and N threads, when a
 *            python3 that imports torch is found (Debian: python3-torch)
 * Times are medians over --reps runs after a warm-up run. GFLOP/s counts
 * 2 flops per multiply-add of the convolutions and matrix products (softmax
 * and elementwise work are not counted). "speed vs X" = X's time / wasm-Nt's
 * time: above 1 means wasm-Nt is faster.
 *
 * Usage: npm run bench:engine -- [--reps 5] [--backends cpu,wasm1,wasmN,torch] [--json bench/out/engine.json] [--markdown]
 *        npm run bench:engine -- --profile   (one wasm training step, time by kernel)
 * Nothing else should be running: the machine's cores are the thing measured.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { initBackend, shutdownBackend } from '../src/engine/backend';
import { WASM_MAX_THREADS } from '../src/engine/wasm-threads';
import { Rng } from '../src/core/random';
import { formatMs, median, summarize, type Timing } from './lib/timing';
import { formatTable } from './lib/table';
import { findPythonWith } from './lib/python';

type BackendKey = 'cpu' | 'wasm1' | 'wasmN' | 'torch';

interface Args {
  reps: number;
  backends: BackendKey[];
  json: string;
  markdown: boolean;
  /** Instead of the table: where one wasm training step spends its time, by kernel. */
  profile: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { reps: 5, backends: ['cpu', 'wasm1', 'wasmN', 'torch'], json: 'bench/out/engine.json', markdown: false, profile: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--reps') a.reps = Number(argv[++i]);
    else if (k === '--backends') a.backends = argv[++i].split(',') as BackendKey[];
    else if (k === '--json') a.json = argv[++i];
    else if (k === '--markdown') a.markdown = true;
    else if (k === '--profile') a.profile = true;
    else throw new Error(`Unknown argument ${k}; see the comment at the top of bench/engine.ts`);
  }
  if (!Number.isInteger(a.reps) || a.reps < 1) throw new Error(`--reps must be a positive integer, got ${a.reps}`);
  return a;
}

// ---------------------------------------------------------------- the rows

type Shape4 = [number, number, number, number];

/** One benchmark row. `spec` is what bench/torch_engine.py needs to build the same work. */
interface Row {
  id: string;
  label: string;
  flops: number;
  /** Run on the cpu backend too (cheap enough there). */
  cpu: boolean;
  spec: Record<string, unknown>;
  /** Makes the inputs on the current backend; returns the work to time and a cleanup. */
  make(rng: Rng): { run(): void; dispose(): void };
}

function randTensor(rng: Rng, shape: number[], scale = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = rng.normal() * scale;
  return tf.tensor(v, shape);
}

function convFlops(x: Shape4, f: Shape4, stride: number): number {
  const [B, H, W] = x;
  const [FH, FW, C, O] = f;
  return 2 * B * Math.ceil(H / stride) * Math.ceil(W / stride) * FH * FW * C * O;
}

function convRows(tag: string, x: Shape4, f: Shape4, stride: number): Row[] {
  const flops = convFlops(x, f, stride);
  const outShape: Shape4 = [x[0], Math.ceil(x[1] / stride), Math.ceil(x[2] / stride), f[3]];
  const shapes = `x ${x.join('x')} * w ${f.join('x')} s${stride}`;
  const spec = { x, f, stride };
  const attrs = { strides: [stride, stride], pad: 'same', dataFormat: 'NHWC', dimRoundingMode: undefined };
  const mk = (kind: 'fwd' | 'dx' | 'dw') => (rng: Rng) => {
    if (kind === 'fwd') {
      const xt = randTensor(rng, x) as tf.Tensor4D;
      const wt = randTensor(rng, f, 0.05) as tf.Tensor4D;
      return { run: () => tf.conv2d(xt, wt, stride, 'same').dispose(), dispose: () => tf.dispose([xt, wt]) };
    }
    // The gradient kernels themselves, as the conv's gradient calls them.
    const name = kind === 'dx' ? 'Conv2DBackpropInput' : 'Conv2DBackpropFilter';
    const ins: tf.NamedTensorMap =
      kind === 'dx' ? { dy: randTensor(rng, outShape), filter: randTensor(rng, f, 0.05) } : { x: randTensor(rng, x), dy: randTensor(rng, outShape) };
    const kattrs = { ...attrs, ...(kind === 'dx' ? { inputShape: x } : { filterShape: f }) } as unknown as tf.NamedAttrMap;
    return {
      run: () => (tf.engine().runKernel(name, ins, kattrs) as tf.Tensor).dispose(),
      dispose: () => tf.dispose(Object.values(ins)),
    };
  };
  return [
    { id: `conv-${tag}-fwd`, label: `conv fwd ${shapes}`, flops, cpu: true, spec: { kind: 'conv_fwd', ...spec }, make: mk('fwd') },
    { id: `conv-${tag}-dx`, label: `conv grad wrt input`, flops, cpu: true, spec: { kind: 'conv_dx', ...spec }, make: mk('dx') },
    { id: `conv-${tag}-dw`, label: `conv grad wrt filter`, flops, cpu: false, spec: { kind: 'conv_dw', ...spec }, make: mk('dw') },
  ];
}

const MATMUL_N = 1024;
const ATT = { batchHeads: 64, t: 256, d: 64 }; // batch 8 x 8 heads, 256 tokens, head size 64

const matmulRow: Row = {
  id: 'matmul',
  label: `matmul ${MATMUL_N}x${MATMUL_N}x${MATMUL_N}`,
  flops: 2 * MATMUL_N ** 3,
  cpu: true,
  spec: { kind: 'matmul', n: MATMUL_N },
  make(rng) {
    const a = randTensor(rng, [MATMUL_N, MATMUL_N]);
    const b = randTensor(rng, [MATMUL_N, MATMUL_N]);
    return { run: () => tf.matMul(a, b).dispose(), dispose: () => tf.dispose([a, b]) };
  },
};

const attentionRow: Row = {
  id: 'attention',
  label: `attention softmax(QK^T)V [${ATT.batchHeads}, ${ATT.t}, ${ATT.d}]`,
  flops: 2 * 2 * ATT.batchHeads * ATT.t * ATT.t * ATT.d,
  cpu: true,
  spec: { kind: 'attention', ...ATT },
  make(rng) {
    const shape = [ATT.batchHeads, ATT.t, ATT.d];
    const [q, k, v] = [randTensor(rng, shape), randTensor(rng, shape), randTensor(rng, shape)];
    const scale = 1 / Math.sqrt(ATT.d);
    return {
      run: () => tf.tidy(() => tf.matMul(tf.softmax(tf.matMul(q, k, false, true).mul(scale)), v)).dispose(),
      dispose: () => tf.dispose([q, k, v]),
    };
  },
};

// ------------------------------------------------- a small VQ tokenizer

/**
 * The shape of vtok's tokenizer (src/tf), small: 3x3 convs, two stride-2
 * downsamplings, GroupNorm + SiLU, a 1x1 projection to the code dimension,
 * nearest-code quantizer with the straight-through estimator, decoder with
 * nearest 2x upsampling (reshape + Tile, as src/tf does), MSE + 0.25
 * commitment loss, Adam. bench/torch_engine.py builds the same model.
 */
const VQ = { batch: 4, size: 64, codeDim: 16, codebook: 512, groups: 8 };
interface VqLayer {
  name: string;
  f: Shape4;
  stride: number;
  /** Input side (square). */
  inSize: number;
}
const VQ_LAYERS: VqLayer[] = [
  { name: 'enc_in', f: [3, 3, 3, 32], stride: 1, inSize: 64 },
  { name: 'enc_down1', f: [3, 3, 32, 64], stride: 2, inSize: 64 },
  { name: 'enc_down2', f: [3, 3, 64, 64], stride: 2, inSize: 32 },
  { name: 'enc_proj', f: [1, 1, 64, VQ.codeDim], stride: 1, inSize: 16 },
  { name: 'dec_in', f: [3, 3, VQ.codeDim, 64], stride: 1, inSize: 16 },
  { name: 'dec_up1', f: [3, 3, 64, 32], stride: 1, inSize: 32 },
  { name: 'dec_up2', f: [3, 3, 32, 32], stride: 1, inSize: 64 },
  { name: 'dec_out', f: [3, 3, 32, 3], stride: 1, inSize: 64 },
];
/** Forward flops: the convs and the distance product; a step is about 3x (backward twice the forward). */
const VQ_FORWARD_FLOPS =
  VQ_LAYERS.reduce((s, l) => s + convFlops([VQ.batch, l.inSize, l.inSize, l.f[2]], l.f, l.stride), 0) +
  2 * VQ.batch * 16 * 16 * VQ.codeDim * VQ.codebook;

type CustomGradFunc = Parameters<typeof tf.customGrad>[0];

const stopGradient = tf.customGrad(((x: tf.Tensor) => ({ value: x.clone(), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) })) as CustomGradFunc) as (
  x: tf.Tensor,
) => tf.Tensor;

/** Nearest codes; gradient straight through to z and summed per code into the codebook. */
const quantize = tf.customGrad(((z: tf.Tensor, codebook: tf.Tensor, save: tf.GradSaveFunc) => {
  const flat = z.reshape([-1, VQ.codeDim]); // [N, D]
  const dist = tf.sum(tf.square(flat), 1, true).sub(tf.matMul(flat, codebook, false, true).mul(2)).add(tf.sum(tf.square(codebook), 1)); // [N, K]
  const idx = tf.argMin(dist, 1); // [N]
  save([idx]);
  return {
    value: tf.gather(codebook, idx).reshape(z.shape),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [dy, tf.unsortedSegmentSum(dy.reshape([-1, VQ.codeDim]), saved[0] as tf.Tensor1D, VQ.codebook)],
  };
}) as CustomGradFunc) as (z: tf.Tensor, codebook: tf.Tensor) => tf.Tensor;

/** GroupNorm without affine parameters. */
function groupNorm(x: tf.Tensor4D): tf.Tensor4D {
  const [B, H, W, C] = x.shape;
  const g = x.reshape([B, H * W, VQ.groups, C / VQ.groups]); // [B, HW, G, C/G]
  const { mean, variance } = tf.moments(g, [1, 3], true);
  return g.sub(mean).mul(tf.rsqrt(variance.add(1e-6))).reshape([B, H, W, C]);
}

/** Nearest 2x upsampling as src/tf/layers.ts does it: reshape + Tile. */
function upsample2x(x: tf.Tensor4D): tf.Tensor4D {
  const [B, h, w, C] = x.shape;
  const cols = tf.tile(x.reshape([B * h, w, 1, C]), [1, 1, 2, 1]); // [B*h, w, 2, C]
  const rows = tf.tile(cols.reshape([B, h, 1, 2 * w * C]), [1, 1, 2, 1]); // [B, h, 2, 2w*C]
  return rows.reshape([B, 2 * h, 2 * w, C]);
}

function vqLoss(v: Record<string, tf.Variable>, images: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const conv = (x: tf.Tensor4D, name: string, stride = 1) => tf.conv2d(x, v[name] as tf.Tensor4D, stride, 'same');
    const act = (x: tf.Tensor4D) => tf.mul(x, tf.sigmoid(x)) as tf.Tensor4D; // SiLU
    let h = act(conv(images, 'enc_in')); // [B, 64, 64, 32]
    h = act(conv(h, 'enc_down1', 2)); // [B, 32, 32, 64]
    h = conv(h, 'enc_down2', 2); // [B, 16, 16, 64]
    const z = conv(act(groupNorm(h)), 'enc_proj'); // [B, 16, 16, D]
    const zq = quantize(z, v.codebook) as tf.Tensor4D; // [B, 16, 16, D]
    const commit = tf.mean(tf.square(z.sub(stopGradient(zq))));
    h = act(groupNorm(conv(zq, 'dec_in'))); // [B, 16, 16, 64]
    h = act(conv(upsample2x(h), 'dec_up1')); // [B, 32, 32, 32]
    h = act(conv(upsample2x(h), 'dec_up2')); // [B, 64, 64, 32]
    const out = conv(h, 'dec_out'); // [B, 64, 64, 3]
    return tf.mean(tf.square(out.sub(images))).add(commit.mul(0.25)) as tf.Scalar;
  });
}

const trainRow: Row = {
  id: 'train-step',
  label: `VQ tokenizer train step (B=${VQ.batch}, ${VQ.size}x${VQ.size}, K=${VQ.codebook}, Adam)`,
  flops: 3 * VQ_FORWARD_FLOPS,
  cpu: true,
  spec: { kind: 'train_step', ...VQ, layers: VQ_LAYERS },
  make(rng) {
    const vars: Record<string, tf.Variable> = {};
    for (const l of VQ_LAYERS) vars[l.name] = tf.variable(randTensor(rng, l.f, Math.sqrt(2 / (l.f[0] * l.f[1] * l.f[2]))));
    vars.codebook = tf.variable(randTensor(rng, [VQ.codebook, VQ.codeDim], 0.5));
    const images = randTensor(rng, [VQ.batch, VQ.size, VQ.size, 3], 0.5) as tf.Tensor4D;
    const opt = tf.train.adam(1e-3);
    const list = Object.values(vars);
    return {
      run: () => (opt.minimize(() => vqLoss(vars, images), true, list) as tf.Scalar).dispose(),
      dispose: () => {
        opt.dispose();
        tf.dispose([images, ...list]);
      },
    };
  },
};

const ROWS: Row[] = [
  ...convRows('s1', [8, 64, 64, 64], [3, 3, 64, 64], 1),
  ...convRows('s2', [8, 64, 64, 64], [3, 3, 64, 128], 2),
  matmulRow,
  attentionRow,
  trainRow,
];

// ------------------------------------------------------------ measuring

type Results = Record<string, Timing | { skipped: string }>;

async function runTfjs(key: 'cpu' | 'wasm1' | 'wasmN', threads: number, reps: number): Promise<{ results: Results; info: string }> {
  const info = await initBackend(key === 'cpu' ? { backend: 'cpu' } : { backend: 'wasm', threads });
  const results: Results = {};
  for (const row of ROWS) {
    if (key === 'cpu' && !row.cpu) {
      results[row.id] = { skipped: 'minutes on cpu' };
      continue;
    }
    const rng = new Rng(1);
    const work = row.make(rng);
    // cpu: one run, no warm-up (its rows take seconds each).
    const warmup = key === 'cpu' ? 0 : 1;
    const n = key === 'cpu' ? 1 : reps;
    for (let i = 0; i < warmup; i++) work.run();
    const samples: number[] = [];
    let before = tf.memory().numTensors;
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      work.run();
      samples.push(performance.now() - t0);
      // (the first run may create lasting state, e.g. Adam's moment slots)
      if (i === 0 && warmup === 0) before = tf.memory().numTensors;
    }
    if (tf.memory().numTensors !== before) throw new Error(`${row.id} leaked ${tf.memory().numTensors - before} tensors on ${key}`);
    work.dispose();
    results[row.id] = summarize(samples);
    process.stderr.write(`  ${key} ${row.id}: ${formatMs(median(samples))}\n`);
  }
  await shutdownBackend();
  return { results, info: `${info.backend}, ${info.threads} thread(s), simd ${info.simd}` };
}

function runTorch(python: string, threads: number, reps: number): { results: Results; info: string } {
  const script = path.join(__dirname, 'torch_engine.py');
  const input = JSON.stringify({ threads, reps, warmup: 1, rows: ROWS.map((r) => ({ id: r.id, ...r.spec })) });
  // torch.set_num_threads does not reach the BLAS library Debian's torch uses for matmul: pin it too.
  const n = String(threads);
  const env = { ...process.env, OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n };
  const r = spawnSync(python, [script], { input, env, encoding: 'utf8', maxBuffer: 1 << 24, timeout: 30 * 60 * 1000 });
  if (r.status !== 0) throw new Error(`${python} ${script} failed: ${r.stderr}`);
  process.stderr.write(r.stderr);
  const out = JSON.parse(r.stdout) as { torch: string; threads: number; results: Record<string, number[]> };
  const results: Results = {};
  for (const [id, samples] of Object.entries(out.results)) results[id] = summarize(samples.map((s) => s * 1000));
  return { results, info: `torch ${out.torch}, ${out.threads} thread(s)` };
}

function cell(res: Results | undefined, id: string): Timing | undefined {
  const v = res?.[id];
  return v && 'median' in v ? v : undefined;
}

/** Where one training step on wasm (all threads) spends its time, by kernel (tf.profile). */
async function profileTrainStep(threads: number): Promise<void> {
  await initBackend({ backend: 'wasm', threads });
  const work = trainRow.make(new Rng(1));
  work.run();
  work.run();
  const t0 = performance.now();
  const prof = await tf.profile(() => work.run());
  const wall = performance.now() - t0;
  const byName = new Map<string, { ms: number; calls: number }>();
  for (const k of prof.kernels) {
    const e = byName.get(k.name) ?? { ms: 0, calls: 0 };
    const ms = await k.kernelTimeMs;
    e.ms += typeof ms === 'number' ? ms : 0;
    e.calls++;
    byName.set(k.name, e);
  }
  const total = [...byName.values()].reduce((a, e) => a + e.ms, 0);
  const rows = [...byName.entries()]
    .sort((a, b) => b[1].ms - a[1].ms)
    .map(([name, e]) => [name, String(e.calls), e.ms.toFixed(1), `${((100 * e.ms) / total).toFixed(1)}%`]);
  process.stdout.write(`one train step on wasm ${threads}t: ${wall.toFixed(0)} ms wall (profiled), ${total.toFixed(0)} ms in kernels\n\n`);
  process.stdout.write(formatTable(['kernel', 'calls', 'ms', 'share'], rows) + '\n');
  // The costliest kernel calls by input shapes.
  const byCall = new Map<string, number>();
  for (const k of prof.kernels) {
    const key = `${k.name} ${k.inputShapes.map((sh) => `[${sh}]`).join(' ')}`;
    const ms = await k.kernelTimeMs;
    byCall.set(key, (byCall.get(key) ?? 0) + (typeof ms === 'number' ? ms : 0));
  }
  const calls = [...byCall.entries()].sort((a, b) => b[1] - a[1]).slice(0, 15);
  process.stdout.write('\n' + formatTable(['kernel and input shapes', 'ms'], calls.map(([k, ms]) => [k, ms.toFixed(1)])) + '\n');
  work.dispose();
  await shutdownBackend();
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const cores = os.availableParallelism();
  const threadsN = Math.min(cores, WASM_MAX_THREADS);
  if (args.profile) return profileTrainStep(threadsN);
  const loadBefore = os.loadavg()[0];
  const columns: { key: string; title: string; results?: Results; info?: string }[] = [];
  const want = new Set(args.backends);

  for (const key of ['cpu', 'wasm1', 'wasmN'] as const) {
    if (!want.has(key)) continue;
    process.stderr.write(`${key}...\n`);
    const threads = key === 'wasm1' ? 1 : threadsN;
    const { results, info } = await runTfjs(key, threads, args.reps);
    columns.push({ key, title: key === 'cpu' ? 'cpu' : `wasm ${threads}t`, results, info });
  }
  let torchNote = 'PyTorch: not run';
  if (want.has('torch')) {
    const py = findPythonWith('torch');
    if (!py) {
      torchNote = 'PyTorch: no python3 here imports torch (Debian: apt-get install python3-torch); torch columns left out';
    } else {
      for (const threads of threadsN > 1 ? [1, threadsN] : [1]) {
        process.stderr.write(`torch ${threads}t...\n`);
        const { results, info } = runTorch(py.python, threads, args.reps);
        columns.push({ key: `torch${threads}`, title: `torch ${threads}t`, results, info });
      }
      torchNote = `PyTorch ${py.version} via ${py.python}`;
    }
  }

  const main = columns.find((c) => c.key === 'wasmN');
  const torchN = columns.find((c) => c.key === `torch${threadsN}`) ?? columns.find((c) => c.key.startsWith('torch'));
  const cpu = columns.find((c) => c.key === 'cpu');
  const header = ['row', 'GFLOP', ...columns.map((c) => `${c.title} ms`), ...columns.map((c) => `${c.title} GFLOP/s`)];
  if (main && torchN) header.push(`speed vs ${torchN.title}`);
  if (main && cpu) header.push('speed vs cpu');
  const rows: string[][] = [];
  for (const row of ROWS) {
    const line = [row.label, (row.flops / 1e9).toFixed(2)];
    for (const c of columns) {
      const t = cell(c.results, row.id);
      line.push(t ? t.median.toFixed(t.median < 10 ? 2 : 1) : c.results?.[row.id] ? 'skip' : '-');
    }
    for (const c of columns) {
      const t = cell(c.results, row.id);
      line.push(t ? (row.flops / 1e6 / t.median).toFixed(1) : '-');
    }
    const m = cell(main?.results, row.id);
    if (main && torchN) {
      const t = cell(torchN.results, row.id);
      line.push(m && t ? (t.median / m.median).toFixed(2) : '-');
    }
    if (main && cpu) {
      const t = cell(cpu.results, row.id);
      line.push(m && t ? `${(t.median / m.median).toFixed(0)}x` : '-');
    }
    rows.push(line);
  }
  const lines = [
    `vtok engine benchmark, ${new Date().toISOString().slice(0, 10)}: ${cores} cores (${os.cpus()[0]?.model ?? '?'}), node ${process.versions.node}, tfjs ${tf.version_core}`,
    ...columns.map((c) => `  ${c.title}: ${c.info}`),
    `  ${torchNote}`,
    `  medians of ${args.reps} runs after 1 warm-up (cpu: 1 run); train step GFLOP is an estimate (3x the forward convs and distance product)`,
    `  1-minute load average: ${loadBefore.toFixed(2)} at start, ${os.loadavg()[0].toFixed(2)} at end (the benchmark itself adds up to ${threadsN})`,
    '',
    formatTable(header, rows, { markdown: args.markdown }),
  ];
  process.stdout.write(lines.join('\n') + '\n');

  const conv = (id: string) => cell(main?.results, id)?.median;
  if (main) {
    const notes: string[] = [];
    for (const tag of ['s1', 's2']) {
      const f = conv(`conv-${tag}-fwd`);
      const dx = conv(`conv-${tag}-dx`);
      const dw = conv(`conv-${tag}-dw`);
      if (f && dx && dw) notes.push(`conv ${tag}: grad wrt input ${(dx / f).toFixed(2)}x the forward's time, wrt filter ${(dw / f).toFixed(2)}x`);
    }
    process.stdout.write('\n' + notes.join('\n') + '\n');
  }
  mkdirSync(path.dirname(args.json), { recursive: true });
  writeFileSync(
    args.json,
    JSON.stringify({ date: new Date().toISOString(), cores, rows: ROWS.map((r) => ({ id: r.id, label: r.label, flops: r.flops })), columns }, null, 2),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
