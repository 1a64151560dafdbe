import type { CommandModule } from 'yargs';
import { loadTeacher, type Teacher } from '../../io/teacher';
import { resolveTrainConfig, trainTokenizer } from '../../../training/tokenizer';
import { note, printResult, progress } from '../output';
import { withEngine, type EngineArgs } from './engine';

interface TrainTokenizerArgs extends EngineArgs {
  config: string;
  data: string[];
  run: string;
  name?: string;
  steps?: number;
  stopAfter?: number;
  resume?: boolean;
  initFrom?: string;
  store?: string;
  teacher?: string;
  teacherLayer?: string;
}

const tokenizerCommand: CommandModule<object, TrainTokenizerArgs> = {
  command: 'tokenizer',
  describe: 'Train a semantic-VQ tokenizer on image folders (checkpoints, exact --resume, JSONL log, reconstruction grids)',
  builder: (y) =>
    y
      .option('config', { type: 'string', default: 'default', describe: 'Training config: a name under training/configs (default, fashion-mnist, tiny) or a JSON file' })
      .option('data', { type: 'string', array: true, demandOption: true, describe: 'Image folder(s); random crops of the config\'s imageSize (repeat --data for several)' })
      .option('run', { type: 'string', demandOption: true, describe: 'Run folder: checkpoint.msgpack, log.jsonl, recon-<step>.png' })
      .option('name', { type: 'string', describe: 'Save the final tokenizer into the store under this name (with a training card)' })
      .option('store', { type: 'string', describe: 'Store folder to save into and to look --init-from up in (default VTOK_STORE, else ~/.vtok/store; then the shipped codebooks/)' })
      .option('steps', { type: 'number', describe: 'Total steps (overrides the config; sets the learning-rate schedule)' })
      .option('stop-after', { type: 'number', describe: 'Stop (with a checkpoint) after this step without changing the schedule; continue later with --resume' })
      .option('resume', { type: 'boolean', describe: 'Continue the run in --run exactly where its checkpoint left it' })
      .option('init-from', {
        type: 'string',
        describe:
          'Start a new run from a stored tokenizer (name, id, 8+ digit id prefix, or .vtok file) instead of random weights: its weights and codebooks, ' +
          'no k-means, EMA statistics seeded from the codebooks, fresh Adam with the config\'s warm-up and schedule over --steps. The model config ' +
          '(and --teacher) must match the bundle\'s; the saved tokenizer records it as its parent. Not with --resume (the checkpoint has everything)',
      })
      .option('teacher', { type: 'string', describe: 'Semantic teacher: nsfwjs-mobilenet-v2, or a TF.js model.json (layers or graph model)' })
      .option('teacher-layer', { type: 'string', describe: 'Layer/node of the teacher to distil (needed for a model.json; default block_13_expand_relu for MobileNetV2)' })
      .example('$0 train tokenizer --config tiny --data data/photos/train --run runs/tiny --steps 50', 'a quick look')
      .example('$0 train tokenizer --data data/photos/train --run runs/default --teacher nsfwjs-mobilenet-v2 --name mine', 'the default recipe, saved as "mine"')
      .example('$0 train tokenizer --data data/photos/train --run runs/default --teacher nsfwjs-mobilenet-v2 --resume', 'continue after an interruption')
      .example(
        '$0 train tokenizer --data data/photos/train --run runs/default-more --teacher nsfwjs-mobilenet-v2 --init-from default --steps 1000 --name default-more',
        'train the shipped default further in a new session (no checkpoint needed)',
      ) as never,
  handler: async (args) =>
    withEngine(args, async () => {
      const config = await resolveTrainConfig(args.config);
      let teacher: Teacher | undefined;
      if (args.teacher !== undefined) {
        teacher = await loadTeacher({ source: args.teacher, layer: args.teacherLayer });
        config.model = { ...config.model, teacherDim: teacher.dim };
        note(args, `teacher ${teacher.name} (${teacher.dim}-d)`);
      } else if ((config.model.teacherDim ?? 0) > 0) {
        note(args, `no --teacher: training without semantic distillation (teacherDim set to 0)`);
        config.model = { ...config.model, teacherDim: 0 };
      }
      let bar: ReturnType<typeof progress> | undefined;
      try {
        const result = await trainTokenizer({
          config,
          data: args.data,
          runDir: args.run,
          steps: args.steps,
          stopAfter: args.stopAfter,
          resume: Boolean(args.resume),
          initFrom: args.initFrom,
          initFromStore: { store: args.store },
          teacher,
          save: args.name === undefined ? undefined : { name: args.name, store: { store: args.store } },
          onStep: (r) => {
            bar ??= progress(args, 'train', (args.steps ?? config.steps) - r.step + 1);
            bar.tick(1, { loss: r.loss.toFixed(4), usage: `${(100 * r.usage).toFixed(0)}%`, ppl: r.perplexity.toFixed(0), 'steps/s': r.stepsPerSecond.toFixed(2) });
          },
        });
        bar?.stop();
        const last = result.reports[result.reports.length - 1];
        printResult(args, { id: result.id, steps: result.steps, skippedSteps: result.skippedSteps, wallSeconds: result.wallSeconds, last }, () =>
          [
            `${result.steps} steps (${result.skippedSteps} skipped) in ${result.wallSeconds.toFixed(0)} s; run folder ${args.run}`,
            last === undefined ? '' : `last step: loss ${last.loss.toFixed(4)}, usage ${(100 * last.usage).toFixed(1)}%, perplexity ${last.perplexity.toFixed(1)}`,
            result.id === undefined ? '' : `saved as ${args.name} (${result.id.slice(0, 12)})`,
          ]
            .filter((l) => l !== '')
            .join('\n'),
        );
        result.model.dispose();
      } finally {
        teacher?.dispose();
      }
    }),
};

export const trainCommand: CommandModule = {
  command: 'train',
  describe: 'Train models (tokenizer)',
  builder: (y) => y.command(tokenizerCommand as CommandModule).demandCommand(1, 'Say what to train: vtok train tokenizer --help'),
  handler: () => undefined,
};
