/**
 * Recipe for the shipped default tokenizer (npm run train:default):
 * photos train crops at 128x128 (the model is fully convolutional and encodes
 * 256 too), downsample 8 (16x16 grid at 128), K = 1024, the nsfwjs
 * MobileNetV2 teacher (block_13_expand_relu, 576-d, 14x14 at 224, resized to
 * the code grid), config training/configs/default.json, on wasm with 2
 * threads. Writes the bundle into the shipped store codebooks/ as 'default'
 * with a training card; the run folder (checkpoint, log.jsonl, grids) is
 * runs/default. Resume an interrupted run with --resume.
 *
 *   npx tsx training/recipes/default.ts [--resume] [--init-from REF] [--steps N] [--smoke N] [--threads T]
 *                                       [--data DIR,DIR..] [--run NAME] [--save NAME] [--store DIR] [--config NAME]
 *
 * --init-from REF continues training a stored tokenizer (e.g. `default`, the
 * shipped one: weights and codebooks, fresh Adam with the config's warm-up)
 * for --steps N more steps; resume an interrupted continuation with
 * --resume and the same --steps.
 *
 * --data lists the training folders (default data/photos/train; `npm run data`
 * also makes data/photos-extra/train); --run names the run folder under runs/
 * (default 'default'); --save and --store name the saved tokenizer and its
 * store (default: 'default' in the shipped store codebooks/), so that an
 * experiment can be kept out of codebooks/. --config names another training
 * config (a name under training/configs or a JSON file; default 'default').
 *
 * --smoke N trains N steps into runs/default-smoke, saves nothing, and prints
 * the measured steps/s and the projected time of the full run.
 */

import * as path from 'node:path';
import { initBackend, shutdownBackend } from '../../src/engine/backend';
import { loadTeacher } from '../../src/io/teacher';
import { resolveTrainConfig, trainTokenizer } from '../tokenizer';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const smoke = flag('--smoke') === undefined ? undefined : Number(flag('--smoke'));
  const threads = Number(flag('--threads') ?? 2);
  const initFrom = flag('--init-from');
  const steps = flag('--steps') === undefined ? undefined : Number(flag('--steps'));
  const root = path.join(__dirname, '..', '..');
  const data = (flag('--data') ?? path.join('data', 'photos', 'train')).split(',').map((d) => path.resolve(root, d));
  const runName = flag('--run') ?? 'default';
  const saveName = flag('--save') ?? 'default';
  const saveStore = path.resolve(root, flag('--store') ?? 'codebooks');
  await initBackend({ backend: 'wasm', threads });
  try {
    const config = await resolveTrainConfig(flag('--config') ?? 'default');
    if (steps !== undefined) config.steps = steps;
    const teacher = await loadTeacher({ source: 'nsfwjs-mobilenet-v2' });
    const runDir = path.join(root, 'runs', smoke === undefined ? runName : `${runName}-smoke`);
    const t0 = Date.now();
    const result = await trainTokenizer({
      config,
      data,
      runDir,
      teacher,
      resume: args.includes('--resume'),
      initFrom,
      initFromStore: { store: path.join(root, 'codebooks'), shipped: false }, // 'default' = the shipped bundle, not a user's
      stopAfter: smoke,
      grids: smoke === undefined,
      save: smoke === undefined ? { name: saveName, store: { store: saveStore, shipped: false } } : undefined,
      onStep: (r) => {
        if (r.step % 5 === 0 || r.step <= 3 || r.skipped) {
          process.stdout.write(
            `step ${r.step}/${config.steps} loss ${r.loss.toFixed(4)} recon ${r.recon.toFixed(4)} sem ${r.semantic.toFixed(4)} ` +
              `usage ${(100 * r.usage).toFixed(1)}% ppl ${r.perplexity.toFixed(1)} ${r.stepsPerSecond.toFixed(2)} steps/s\n`,
          );
        }
      },
    });
    const steady = result.reports.slice(Math.min(3, result.reports.length - 1)); // skip the first steps (kernel warm-up, k-means init)
    const rates = steady.map((r) => r.stepsPerSecond).sort((a, b) => a - b);
    const median = rates[Math.floor(rates.length / 2)];
    process.stdout.write(
      `${result.steps} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s (incl. loading); median ${median.toFixed(3)} steps/s; ` +
        `the full ${config.steps} steps would take ~${(config.steps / median / 60).toFixed(0)} min\n`,
    );
    if (result.id !== undefined) process.stdout.write(`saved tokenizer ${saveName} ${result.id} in ${saveStore}\n`);
    result.model.dispose();
    teacher.dispose();
  } finally {
    await shutdownBackend();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
