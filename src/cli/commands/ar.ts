import * as path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { resolveArConfig, trainAr } from '../../../training/ar';
import type { BpeModel } from '../../core/bpe';
import { VtokError } from '../../core/errors';
import { loadAr } from '../../io/ar-bundle';
import { readTokenDir } from '../../io/dataset';
import { loadTokenizer } from '../../io/tokenizer-bundle';
import { bpeContentId } from '../../pipeline/tokenize';
import { describeImageFiles, evalArTokens, generateImageFiles } from '../../pipeline/ar';
import { evalGeneration } from '../../../eval/generation';
import { loadClassifier } from '../../io/classifier-bundle';
import { printResult, progress, table } from '../output';
import { withEngine, type EngineArgs } from './engine';

interface TrainArgs extends EngineArgs {
  tokens: string[];
  config: string;
  out: string;
  resume?: boolean;
  steps?: number;
  stopAfter?: number;
  name?: string;
}

interface GenerateArgs extends EngineArgs {
  text: string;
  ar: string;
  n: number;
  out: string;
  temperature: number;
  topK: number;
  topP: number;
  guidance: number;
  seed: number;
}

interface DescribeArgs extends EngineArgs {
  images: string[];
  ar: string;
  top: number;
}

interface EvalArgs extends EngineArgs {
  ar: string;
  tokens: string;
  limit?: number;
}

interface EvalGenerationArgs extends EngineArgs {
  ar: string;
  classifier: string;
  nPerClass: number;
  temperature: number;
  topK: number;
  topP: number;
  guidance: number;
  seed: number;
  batch: number;
  out?: string;
}

const AR_HELP = 'AR model: a training run folder (its ar.vtok), an .vtok file, or a store name/id';

/** The BPE model of a token folder, from the store (the tokenizer bundle it was saved with), checked against the manifest. */
async function bpeOfTokens(dir: string, store: string | undefined): Promise<BpeModel | undefined> {
  const { manifest } = await readTokenDir(dir);
  const want = manifest.options.bpe;
  if (want === null) return undefined;
  const t = await loadTokenizer(manifest.options.tokenizer.id, { store });
  t.model.dispose();
  if (t.bpe === undefined || bpeContentId(t.bpe) !== want.id) {
    throw new VtokError('STORE_MISMATCH', `The BPE model ${want.id.slice(0, 12)} of ${dir} is not the one in tokenizer bundle ${t.id.slice(0, 12)}; set useBpe false in the config`, {
      subject: dir,
    });
  }
  return t.bpe;
}

const trainCommand: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'Train the autoregressive head on `vtok tokenize` output with captions or labels (both directions; checkpoints, exact --resume, log.jsonl)',
  builder: (y) =>
    y
      .usage(
        [
          '$0 ar train --tokens DIR --config NAME --out RUN [--resume]',
          'Reads every record (code grid + caption, else label) of the token folders, trains a small byte-level text BPE on the texts, and builds one vocabulary of specials, text ids and visual ids.',
          'Each step mixes generation streams (<bos> <gen> text <boi> image <eoi> <eos>; the text dropped with probability conditionDrop, for --guidance) and understanding streams (<bos> <und> <boi> image <eoi> text <eos>).',
          'RUN receives checkpoint.msgpack (every checkpointEvery steps), log.jsonl (one line a step) and, at the last step, ar.vtok: the model that `vtok ar generate|describe|eval --ar RUN` use.',
        ].join('\n\n'),
      )
      .option('tokens', { type: 'string', array: true, demandOption: true, describe: 'Token folder(s) from `vtok tokenize` (records need a caption or a label; one tokenizer)' })
      .option('config', { type: 'string', default: 'ar-fashion-mnist', describe: 'AR training config: a name under training/configs (ar-fashion-mnist, ar-tiny) or a JSON file' })
      .option('out', { type: 'string', demandOption: true, describe: 'Run folder: checkpoint.msgpack, log.jsonl, ar.vtok' })
      .option('resume', { type: 'boolean', describe: 'Continue the run in --out exactly where its checkpoint left it (same data, same result as an uninterrupted run)' })
      .option('steps', { type: 'number', describe: 'Total steps (overrides the config; sets the learning-rate schedule)' })
      .option('stop-after', { type: 'number', describe: 'Stop (with a checkpoint) after this step; continue later with --resume' })
      .option('name', { type: 'string', describe: 'Also save the final model into the store under this name' })
      .option('store', { type: 'string', describe: 'Store folder (default VTOK_STORE, else ~/.vtok/store): image tokenizer for BPE, and --name' })
      .example('$0 ar train --tokens tokens/fmnist-train --out runs/ar-fmnist', 'Fashion-MNIST codes with class names as text')
      .example('$0 ar train --tokens tokens/fmnist-train --out runs/ar-fmnist --resume', 'continue after an interruption')
      .example('$0 ar train --tokens t/ --config ar-tiny --out runs/smoke --threads 1', 'a smoke run') as never,
  handler: async (args) =>
    withEngine(args, async () => {
      const config = await resolveArConfig(args.config);
      const bpe = config.useBpe ? await bpeOfTokens(args.tokens[0], args.store) : undefined;
      let bar: ReturnType<typeof progress> | undefined;
      const result = await trainAr({
        tokens: args.tokens,
        config,
        runDir: args.out,
        resume: Boolean(args.resume),
        steps: args.steps,
        stopAfter: args.stopAfter,
        bpe,
        save: args.name === undefined ? undefined : { name: args.name, store: { store: args.store } },
        onStep: (r) => {
          bar ??= progress(args, 'train', Math.min(args.stopAfter ?? Infinity, args.steps ?? config.steps) - r.step + 1);
          bar.tick(1, { loss: r.loss.toFixed(4), lr: r.lr.toExponential(2), 'steps/s': r.stepsPerSecond.toFixed(2) });
        },
      });
      bar?.stop();
      const last = result.reports[result.reports.length - 1];
      printResult(
        args,
        { id: result.id, steps: result.steps, skippedSteps: result.skippedSteps, wallSeconds: result.wallSeconds, params: result.ar.model.numParams, vocabSize: result.ar.vocab.size, classes: result.ar.classes, last },
        () =>
          [
            `${result.steps} steps (${result.skippedSteps} skipped) in ${result.wallSeconds.toFixed(0)} s; ${result.ar.model.numParams} parameters, vocabulary ${result.ar.vocab.size} ids, ${result.ar.classes.length} distinct texts`,
            last === undefined ? '' : `last step: loss ${last.loss.toFixed(4)}`,
            result.id === undefined ? `checkpoint in ${args.out}; continue with --resume` : `model ${path.join(args.out, 'ar.vtok')} (${result.id.slice(0, 12)})${args.name ? `, saved as ${args.name}` : ''}`,
          ]
            .filter((l) => l !== '')
            .join('\n'),
      );
      result.ar.model.dispose();
    }),
};

const generateCommand: CommandModule<object, GenerateArgs> = {
  command: 'generate <text>',
  describe: 'Draw images for a text with the AR head, decoded to PNG through its image tokenizer',
  builder: (y) =>
    y
      .usage(
        [
          '$0 ar generate "TEXT" --ar RUN --out DIR [--n 8] [--temperature 1] [--top-k 0] [--top-p 1] [--guidance 1] [--seed 0]',
          'Samples --n code grids after `<bos> <gen> TEXT <boi>` (only visual ids that fit the grid, then <eoi>), decodes them with the image tokenizer named in the AR model (from the store), and writes DIR/sample-NNN.png and DIR/grid.png.',
          'Greedy: --temperature 0. Classifier-free guidance: --guidance 2..4 (mixes in the unconditional prompt; the model learned it through conditionDrop). The same --seed gives the same images.',
        ].join('\n\n'),
      )
      .positional('text', { type: 'string', describe: 'What to draw: a caption or class name like the training texts ("" for unconditional)' })
      .option('ar', { type: 'string', demandOption: true, describe: AR_HELP })
      .option('n', { type: 'number', default: 8, describe: 'Number of images' })
      .option('out', { type: 'string', demandOption: true, describe: 'Folder for sample-NNN.png and grid.png' })
      .option('temperature', { type: 'number', default: 1, describe: 'Softmax temperature; 0 = greedy' })
      .option('top-k', { type: 'number', default: 0, describe: 'Keep the k most likely ids (0 = off)' })
      .option('top-p', { type: 'number', default: 1, describe: 'Nucleus: keep the most likely ids up to this probability mass (1 = off)' })
      .option('guidance', { type: 'number', default: 1, describe: 'Classifier-free guidance scale (1 = off)' })
      .option('seed', { type: 'number', default: 0, describe: 'Sampler seed' })
      .option('store', { type: 'string', describe: 'Store folder holding the image tokenizer (default VTOK_STORE, else ~/.vtok/store)' })
      .example('$0 ar generate "Sneaker" --ar runs/ar-fmnist --n 16 --guidance 3 --out samples/', '16 sneakers')
      .example('$0 ar generate "Bag" --ar runs/ar-fmnist --temperature 0 --n 1 --out bag/', 'the most likely bag') as never,
  handler: async (args) =>
    withEngine(args, async () => {
      const ar = await loadAr(args.ar, { store: args.store });
      try {
        const r = await generateImageFiles(ar, {
          prompt: args.text === '' ? null : args.text,
          n: args.n,
          temperature: args.temperature,
          topK: args.topK,
          topP: args.topP,
          guidance: args.guidance,
          seed: args.seed,
          out: args.out,
          store: { store: args.store },
        });
        printResult(args, { files: r.files, grid: r.grid, codes: r.codes.map((c) => Array.from(c)) }, () => `${r.files.length} images in ${args.out}; grid ${r.grid}`);
      } finally {
        ar.model.dispose();
      }
    }),
};

const describeCommand: CommandModule<object, DescribeArgs> = {
  command: 'describe <images..>',
  describe: 'Describe images with the AR head: greedy text and class scores over the training texts',
  builder: (y) =>
    y
      .usage(
        [
          '$0 ar describe IMAGE... --ar RUN',
          "Tokenizes each image with the image tokenizer named in the AR model, then prints the greedy text after `<bos> <und> <boi> image <eoi>` and the probability of each training text (a closed set: class names, for instance), most likely first.",
        ].join('\n\n'),
      )
      .positional('images', { type: 'string', array: true, describe: 'Image files' })
      .option('ar', { type: 'string', demandOption: true, describe: AR_HELP })
      .option('top', { type: 'number', default: 3, describe: 'Class scores shown per image' })
      .option('store', { type: 'string', describe: 'Store folder holding the image tokenizer' })
      .example('$0 ar describe shoe.png bag.png --ar runs/ar-fmnist', 'text and top-3 classes per image') as never,
  handler: async (args) =>
    withEngine(args, async () => {
      const ar = await loadAr(args.ar, { store: args.store });
      try {
        const r = await describeImageFiles(ar, args.images, { store: { store: args.store } });
        printResult(args, r, () =>
          r
            .map((d) =>
              [
                `${d.file}: ${JSON.stringify(d.text)}`,
                ...(d.scores === null ? [] : d.scores.ranked.slice(0, args.top).map((c) => `  ${(100 * c.prob).toFixed(1).padStart(5)}%  ${c.text}`)),
              ].join('\n'),
            )
            .join('\n'),
        );
      } finally {
        ar.model.dispose();
      }
    }),
};

const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'Understanding accuracy of the AR head over a labelled token folder (argmax of class scores == label)',
  builder: (y) =>
    y
      .usage(
        [
          '$0 ar eval --ar RUN --tokens TEST_DIR [--limit N]',
          "For each record of TEST_DIR (tokenized with the AR model's image tokenizer), scores every training text after the image and counts it right when the best one is the record's caption (else label). Prints the accuracy, N and the accuracy per class.",
        ].join('\n\n'),
      )
      .option('ar', { type: 'string', demandOption: true, describe: AR_HELP })
      .option('tokens', { type: 'string', demandOption: true, describe: 'Token folder with labels or captions (held-out images)' })
      .option('limit', { type: 'number', describe: 'Only the first N records' })
      .option('store', { type: 'string', describe: 'Store folder (for a store reference in --ar)' })
      .example('$0 ar eval --ar runs/ar-fmnist --tokens tokens/fmnist-test', 'accuracy on the 10,000 test images') as never,
  handler: async (args) =>
    withEngine(args, async () => {
      const ar = await loadAr(args.ar, { store: args.store });
      try {
        const records = (await readTokenDir(args.tokens)).manifest.counts.records;
        let bar: ReturnType<typeof progress> | undefined;
        let shown = 0;
        const r = await evalArTokens(ar, args.tokens, {
          limit: args.limit,
          onProgress: (done) => {
            bar ??= progress(args, 'eval', Math.min(records, args.limit ?? Infinity));
            bar.tick(done - shown);
            shown = done;
          },
        });
        bar?.stop();
        printResult(args, r, () =>
          [
            `accuracy ${(100 * r.accuracy).toFixed(2)}% (${r.correct} of N = ${r.n})${r.unknownTexts > 0 ? `; ${r.unknownTexts} records have a text the model never saw` : ''}`,
            table(
              ['class', 'n', 'accuracy'],
              Object.entries(r.perClass).map(([c, v]) => [c, v.n, `${((100 * v.correct) / v.n).toFixed(1)}%`]),
            ),
          ].join('\n'),
        );
      } finally {
        ar.model.dispose();
      }
    }),
};

const evalGenerationCommand: CommandModule<object, EvalGenerationArgs> = {
  command: 'eval-generation',
  describe: 'Generation accuracy: samples per class prompt, decoded, judged by a separate pixel classifier (vtok classify train)',
  builder: (y) =>
    y
      .usage(
        [
          '$0 ar eval-generation --ar RUN --classifier CLS [--n-per-class 100] [--guidance 1] [--temperature 1] [--top-k 0] [--seed 0] [--out DIR]',
          "For each class text of the AR model, samples --n-per-class code grids, decodes them with the image tokenizer named in the AR model (8-bit, as a PNG would hold them), and counts the samples the classifier assigns to the prompted class. Prints the accuracy overall and per class, with the most frequent wrong class.",
          'The classifier must read the size the tokenizer decodes to (Fashion-MNIST: 32x32, `vtok classify train --size 32 --fit pad`). Class c, chunk k samples with seed SEED + 1009c + k. --out DIR writes DIR/<class>.png: a grid of the samples labelled with the predicted class.',
        ].join('\n\n'),
      )
      .option('ar', { type: 'string', demandOption: true, describe: AR_HELP })
      .option('classifier', { type: 'string', demandOption: true, describe: 'A `vtok classify train` run folder, a classifier .vtok file, or a store name/id' })
      .option('n-per-class', { type: 'number', default: 100, describe: 'Samples per class prompt' })
      .option('temperature', { type: 'number', default: 1, describe: 'Softmax temperature; 0 = greedy' })
      .option('top-k', { type: 'number', default: 0, describe: 'Keep the k most likely ids (0 = off)' })
      .option('top-p', { type: 'number', default: 1, describe: 'Nucleus mass (1 = off)' })
      .option('guidance', { type: 'number', default: 1, describe: 'Classifier-free guidance scale (1 = off)' })
      .option('seed', { type: 'number', default: 0, describe: 'Base sampler seed' })
      .option('batch', { type: 'number', default: 50, describe: 'Images sampled at once' })
      .option('out', { type: 'string', describe: 'Folder for one labelled grid PNG per class' })
      .option('store', { type: 'string', describe: 'Store folder holding the image tokenizer' })
      .example('$0 ar eval-generation --ar runs/ar-fmnist --classifier runs/fmnist-classifier --n-per-class 100 --guidance 3 --out grids/', '1,000 samples on Fashion-MNIST') as never,
  handler: async (args) =>
    withEngine(args, async () => {
      const ar = await loadAr(args.ar, { store: args.store });
      try {
        const cls = await loadClassifier(args.classifier, { store: args.store });
        try {
          let bar: ReturnType<typeof progress> | undefined;
          let shown = 0;
          const r = await evalGeneration(ar, cls, {
            nPerClass: args.nPerClass,
            temperature: args.temperature,
            topK: args.topK,
            topP: args.topP,
            guidance: args.guidance,
            seed: args.seed,
            batch: args.batch,
            out: args.out,
            store: { store: args.store },
            onProgress: (done, total) => {
              bar ??= progress(args, 'generate', total);
              bar.tick(done - shown);
              shown = done;
            },
          });
          bar?.stop();
          const { samples, ...summary } = r;
          printResult(args, { ...summary, ar: ar.id, classifier: cls.id, samples }, () =>
            [
              `generation accuracy ${(100 * r.accuracy).toFixed(2)}% (${r.correct} of N = ${r.n}; guidance ${args.guidance}, temperature ${args.temperature}, top-k ${args.topK}, seed ${args.seed}) in ${r.wallSeconds.toFixed(0)} s`,
              table(
                ['class', 'n', 'accuracy', 'most frequent wrong class'],
                Object.entries(r.perClass).map(([k, v]) => {
                  const wrong = Object.entries(v.predicted).filter(([p]) => p !== k).sort((a, b) => b[1] - a[1])[0];
                  return [k, v.n, `${(100 * v.accuracy).toFixed(1)}%`, wrong === undefined ? '-' : `${wrong[0]} (${wrong[1]})`];
                }),
              ),
              Object.keys(r.grids).length > 0 ? `grids in ${args.out}` : '',
            ]
              .filter((l) => l !== '')
              .join('\n'),
          );
        } finally {
          cls.model.dispose();
        }
      } finally {
        ar.model.dispose();
      }
    }),
};

/** `vtok ar`: train, generate, describe, eval, eval-generation. */
export const arCommand: CommandModule<object, object> = {
  command: 'ar <command>',
  describe: 'Autoregressive head: one model that draws images for a text and describes images (train, generate, describe, eval)',
  builder: (y: Argv) =>
    y
      .command(trainCommand as never)
      .command(generateCommand as never)
      .command(describeCommand as never)
      .command(evalCommand as never)
      .command(evalGenerationCommand as never)
      .demandCommand(1, 'Say what to do: vtok ar train|generate|describe|eval|eval-generation --help') as never,
  handler: () => undefined,
};
