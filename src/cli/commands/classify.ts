import * as path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { evaluateClassifier, trainClassifier } from '../../../training/classifier';
import { checkOneOf } from '../../core/errors';
import { CLASSIFIER_BUNDLE_FILE, loadClassifier } from '../../io/classifier-bundle';
import { printResult, progress, table } from '../output';
import { withEngine, type EngineArgs } from './engine';

interface TrainArgs extends EngineArgs {
  data: string[];
  out: string;
  steps: number;
  batch: number;
  lr: number;
  seed: number;
  size: number;
  fit: string;
  limit: number;
}

interface EvalArgs extends EngineArgs {
  classifier: string;
  data: string[];
  limit: number;
}

const DATA_HELP = 'Image folder(s); the class of each image from labels.jsonl in the folder, else NAME.txt / NAME.cls / NAME.json sidecars';

const trainCommand: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'Train a small convolutional pixel classifier on labelled images (the judge of `vtok ar eval-generation`)',
  builder: (y) =>
    y
      .usage(
        [
          '$0 classify train --data DIR --out RUN [--steps 2000] [--batch 64] [--lr 0.001] [--size 32 --fit pad]',
          'Reads every image of DIR at --size x --size (--fit pad: letterboxed on black, as the Fashion-MNIST image tokenizer reads them) with its class text (caption, else label), and trains 3 x (conv3x3 + ReLU + max-pool) + 2 dense layers with Adam on seeded shuffled batches.',
          'RUN receives classifier.vtok (the class list and the input geometry inside), log.jsonl (one line a step) and card.json. Use the same --size as the images the AR model decodes to.',
        ].join('\n\n'),
      )
      .option('data', { type: 'string', array: true, demandOption: true, describe: DATA_HELP })
      .option('out', { type: 'string', demandOption: true, describe: 'Run folder: classifier.vtok, log.jsonl, card.json' })
      .option('steps', { type: 'number', default: 2000, describe: 'Optimizer steps' })
      .option('batch', { type: 'number', default: 64, describe: 'Images per step' })
      .option('lr', { type: 'number', default: 0.001, describe: 'Adam learning rate' })
      .option('seed', { type: 'number', default: 0, describe: 'Weight init and data order' })
      .option('size', { type: 'number', default: 32, describe: 'Images are read at this square size' })
      .option('fit', { type: 'string', default: 'pad', choices: ['pad', 'crop'], describe: 'How images reach --size: letterbox on black (pad) or centre crop' })
      .option('limit', { type: 'number', default: 0, describe: 'Only the first N images of each folder (0 = all)' })
      .example('$0 classify train --data data/fashion-mnist/train --out runs/fmnist-classifier', 'the Fashion-MNIST judge at 32x32') as never,
  handler: async (args) =>
    withEngine(args, async () => {
      let bar: ReturnType<typeof progress> | undefined;
      const r = await trainClassifier({
        data: args.data,
        runDir: args.out,
        steps: args.steps,
        batchSize: args.batch,
        lr: args.lr,
        seed: args.seed,
        limit: args.limit,
        input: { size: args.size, fit: checkOneOf('fit', args.fit, ['pad', 'crop']), background: '#000000' },
        onStep: (s) => {
          bar ??= progress(args, 'train', args.steps);
          bar.tick(1, { loss: s.loss.toFixed(4), 'steps/s': s.stepsPerSecond.toFixed(1) });
        },
      });
      bar?.stop();
      const last = r.reports[r.reports.length - 1];
      printResult(
        args,
        { id: r.id, steps: r.reports.length, wallSeconds: r.wallSeconds, params: r.classifier.model.numParams, classes: r.classifier.classes, input: r.classifier.input, last },
        () =>
          [
            `${r.reports.length} steps in ${r.wallSeconds.toFixed(0)} s; ${r.classifier.model.numParams} parameters, ${r.classifier.classes.length} classes; last loss ${last.loss.toFixed(4)}`,
            `classifier ${path.join(args.out, CLASSIFIER_BUNDLE_FILE)} (${r.id.slice(0, 12)})`,
          ].join('\n'),
      );
      r.classifier.model.dispose();
    }),
};

const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'Accuracy of a pixel classifier on a labelled image folder (overall, N, per class)',
  builder: (y) =>
    y
      .usage(
        [
          '$0 classify eval --classifier RUN --data DIR [--limit N]',
          'Reads the images of DIR the way the classifier was trained (size and fit are in its bundle) and counts the images whose predicted class is their caption (else label).',
        ].join('\n\n'),
      )
      .option('classifier', { type: 'string', demandOption: true, describe: 'A `vtok classify train` run folder, a classifier .vtok file, or a store name/id' })
      .option('data', { type: 'string', array: true, demandOption: true, describe: DATA_HELP })
      .option('limit', { type: 'number', default: 0, describe: 'Only the first N images of each folder (0 = all)' })
      .option('store', { type: 'string', describe: 'Store folder (for a store reference in --classifier)' })
      .example('$0 classify eval --classifier runs/fmnist-classifier --data data/fashion-mnist/test', 'accuracy on the 10,000 test images') as never,
  handler: async (args) =>
    withEngine(args, async () => {
      const c = await loadClassifier(args.classifier, { store: args.store });
      try {
        const r = await evaluateClassifier(c, args.data, { limit: args.limit });
        printResult(args, r, () =>
          [
            `accuracy ${(100 * r.accuracy).toFixed(2)}% (${r.correct} of N = ${r.n})${r.unknownTexts > 0 ? `; ${r.unknownTexts} images have a class the classifier never saw` : ''}`,
            table(
              ['class', 'n', 'accuracy'],
              Object.entries(r.perClass).map(([k, v]) => [k, v.n, `${(100 * v.accuracy).toFixed(1)}%`]),
            ),
          ].join('\n'),
        );
      } finally {
        c.model.dispose();
      }
    }),
};

/** `vtok classify`: train, eval. */
export const classifyCommand: CommandModule<object, object> = {
  command: 'classify <command>',
  describe: 'Pixel classifier: train one on labelled images, measure its accuracy (the judge of generated images)',
  builder: (y: Argv) =>
    y
      .command(trainCommand as never)
      .command(evalCommand as never)
      .demandCommand(1, 'Say what to do: vtok classify train|eval --help') as never,
  handler: () => undefined,
};
