import * as path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { evalFid } from '../../../eval/fid';
import { evalUsage } from '../../../eval/usage';
import { evalRecon } from '../../../eval/recon';
import { PROBE_BRANCHES, evalProbe, type ProbeBranch } from '../../../eval/probe';
import { VtokError } from '../../core/errors';
import { initBackend, shutdownBackend } from '../../engine/backend';
import { FEATURE_EXTRACTOR_KINDS, loadFeatureExtractor, type FeatureExtractorKind } from '../../io/feature-models';
import { printResult, progress, table, type GlobalArgs } from '../output';
import { withEngine, type EngineArgs } from './engine';

interface FidArgs extends GlobalArgs {
  dirA: string;
  dirB: string;
  extractor: FeatureExtractorKind;
  fidWeights?: string;
  limit?: number;
  backend?: 'tensorflow' | 'wasm' | 'cpu';
  threads?: number;
}

interface ReconArgs extends EngineArgs {
  tokenizer: string;
  data: string;
  out: string;
  batchSize: number;
  limit?: number;
  extractor: FeatureExtractorKind | 'none';
  fidWeights?: string;
  worst: number;
  samples: number;
  fit: 'crop' | 'pad';
  size?: number;
}

interface ProbeArgs extends EngineArgs {
  tokenizer: string;
  train: string;
  test: string;
  branch: ProbeBranch[];
  size?: number;
  fit: 'crop' | 'pad';
  limit?: number;
  testLimit?: number;
  batchSize: number;
  l2: number;
}

interface UsageArgs extends GlobalArgs {
  tokens: string;
}

const fidCommand: CommandModule<object, FidArgs> = {
  command: 'fid <dirA> <dirB>',
  describe: 'Fréchet distance between two image folders ("FID" only with pytorch-fid Inception weights; N is reported)',
  builder: (y) =>
    y
      .option('extractor', { choices: FEATURE_EXTRACTOR_KINDS, default: 'nsfwjs-inception-v3' as FeatureExtractorKind, describe: 'feature network' })
      .option('fid-weights', { type: 'string', describe: 'converted pytorch-fid weights (.safetensors) for --extractor pytorch-fid-inception' })
      .option('limit', { type: 'number', describe: 'use only the first N images of each folder' }) as never,
  handler: async (args) => {
    await initBackend({ backend: args.backend, threads: args.threads, warn: () => undefined });
    const extractor = await loadFeatureExtractor(
      args.extractor === 'pytorch-fid-inception' ? { kind: args.extractor, weights: args.fidWeights ?? '' } : { kind: args.extractor },
    );
    try {
      const r = await evalFid({ dirA: args.dirA, dirB: args.dirB, extractor, limit: args.limit });
      printResult(args, r, () =>
        [`${r.label} = ${r.distance.toFixed(4)}  (N = ${r.nA} vs ${r.nB}, extractor ${r.extractor.name}, ${r.seconds.toFixed(1)} s)`, ...(r.note ? [`note: ${r.note}`] : [])].join('\n'),
      );
    } finally {
      extractor.dispose();
      await shutdownBackend();
    }
  },
};

const usageCommand: CommandModule<object, UsageArgs> = {
  command: 'usage <tokens>',
  describe: 'Codebook usage and perplexity over a whole token folder',
  handler: async (args) => {
    const r = await evalUsage({ tokens: args.tokens });
    printResult(args, r, () =>
      `usage ${(r.usage * 100).toFixed(2)}% (${r.used} of ${r.K} codes), perplexity ${r.perplexity.toFixed(2)}, over ${r.records} images / ${r.total} codes (tokenizer ${r.tokenizer})`,
    );
  },
};

const reconCommand: CommandModule<object, ReconArgs> = {
  command: 'recon',
  describe: 'Reconstruction quality of a tokenizer on an image folder: PSNR, SSIM, codebook usage, Fréchet distance, as report.json + report.html',
  builder: (y) =>
    y
      .usage(
        [
          '$0 eval recon --data DIR --out REPORT [--tokenizer NAME]',
          "Encodes every image of DIR to codes and decodes it back at the tokenizer's own image size (centre crop, as `vtok tokenize` does), then scores each reconstruction against its original, both as 8-bit images.",
          'Metrics: PSNR (R = 255) and SSIM (scikit-image defaults) per image, then the mean; codebook usage and perplexity over all codes of all images; ' +
            "a Fréchet distance between features of originals and reconstructions, named after its extractor (FD[nsfwjs-mobilenet-v2] by default; \"rFID\" only with pytorch-fid's Inception weights). N is always reported.",
          "REPORT receives report.json (every number, every image's scores), report.html (open it in a browser: metrics, original-vs-reconstruction grids, the worst images by PSNR, a code-usage histogram) and the PNGs it shows.",
        ].join('\n\n'),
      )
      .option('tokenizer', { type: 'string', default: 'default', describe: 'Tokenizer bundle: name, id or id prefix in the store' })
      .option('store', { type: 'string', describe: 'User store folder (default VTOK_STORE, else ~/.vtok/store)' })
      .option('data', { type: 'string', demandOption: true, describe: 'Folder of images to reconstruct (files directly in it, sorted by name)' })
      .option('out', { type: 'string', demandOption: true, describe: 'Report folder: new, empty, or an earlier recon report (replaced); anything else is refused' })
      .option('batch-size', { type: 'number', default: 8, describe: 'Images per encode/decode call (lower it for large tokenizers at 256 px: wasm has a 4 GB heap)' })
      .option('limit', { type: 'number', describe: 'Use only the first N images (by name)' })
      .option('extractor', {
        choices: [...FEATURE_EXTRACTOR_KINDS, 'none'] as const,
        default: 'nsfwjs-mobilenet-v2' as const,
        describe: 'Feature network for the Fréchet distance; none skips it',
      })
      .option('fid-weights', { type: 'string', describe: 'Converted pytorch-fid weights (.safetensors) for --extractor pytorch-fid-inception (gives rFID)' })
      .option('worst', { type: 'number', default: 8, describe: 'Show the K images with the lowest PSNR' })
      .option('samples', { type: 'number', default: 8, describe: 'Show the first N images as original-vs-reconstruction grids' })
      .option('fit', { choices: ['crop', 'pad'] as const, default: 'crop' as const, describe: "Centre-crop or pad to the tokenizer's size" })
      .option('size', { type: 'number', describe: "Score SxS images instead of the tokenizer's training size (a multiple of its downsample factor; the model is fully convolutional)" })
      .example('$0 eval recon --data photos/ --out report/', 'the default tokenizer; then open report/report.html')
      .example('$0 eval recon --tokenizer 3fa9c2e1 --data test/ --out r/ --limit 500 --extractor none', 'first 500 images, no Fréchet distance')
      .example('$0 eval recon --data test/ --out r/ --extractor pytorch-fid-inception --fid-weights pt_inception.safetensors', 'rFID with pytorch-fid weights') as never,
  handler: async (args) =>
    withEngine(args, async () => {
      if (args.extractor === 'pytorch-fid-inception' && !args.fidWeights) {
        throw new VtokError(
          'INVALID_OPTION',
          '--extractor pytorch-fid-inception needs --fid-weights FILE: convert pytorch-fid\'s pt_inception-2015-12-05-6726825d.pth with scripts/convert-pytorch-fid.py',
          { subject: 'fid-weights' },
        );
      }
      let bar: ReturnType<typeof progress> | undefined;
      let shown = 0;
      const extractor =
        args.extractor === 'none' ? null : args.extractor === 'pytorch-fid-inception' ? { kind: args.extractor, weights: args.fidWeights ?? '' } : { kind: args.extractor };
      try {
        const r = await evalRecon({
          tokenizer: args.tokenizer,
          store: { store: args.store },
          data: args.data,
          out: args.out,
          batchSize: args.batchSize,
          limit: args.limit,
          extractor,
          worst: args.worst,
          samples: args.samples,
          fit: args.fit,
          size: args.size,
          onProgress: (p) => {
            bar ??= progress(args, 'recon', p.total);
            bar.tick(p.done - shown, Number.isFinite(p.psnr) ? { psnr: p.psnr } : undefined);
            shown = p.done;
          },
        });
        const m = r.metrics;
        printResult(args, r, () =>
          [
            `PSNR ${m.psnr.mean.toFixed(2)} dB  SSIM ${m.ssim.mean.toFixed(4)}  usage ${(m.codebook.usage * 100).toFixed(2)}%  perplexity ${m.codebook.perplexity.toFixed(2)}` +
              (m.frechet ? `  ${m.frechet.label} ${m.frechet.distance.toFixed(4)}` : ''),
            `N = ${r.data.evaluated} images at ${r.tokenizer.imageSize}x${r.tokenizer.imageSize}, tokenizer ${r.tokenizer.name} (${r.tokenizer.id.slice(0, 12)}), ${r.timings.imagesPerSecond.toFixed(2)} images/s`,
            ...(m.frechet?.note ? [`note: ${m.frechet.note}`] : []),
            ...(r.data.skipped.length ? [`skipped ${r.data.skipped.length} unreadable file(s), listed in report.json`] : []),
            `report: ${path.join(args.out, 'report.html')}`,
          ].join('\n'),
        );
      } finally {
        bar?.stop();
      }
    }),
};

const pct = (v: number): string => `${(100 * v).toFixed(2)}%`;

const probeCommand: CommandModule<object, ProbeArgs> = {
  command: 'probe',
  describe: "Linear probe: how well a linear classifier reads labelled images' classes from a tokenizer's pooled semantic or pixel code vectors",
  builder: (y) =>
    y
      .usage(
        [
          '$0 eval probe --tokenizer NAME --train DIR --test DIR [--branch semantic pixel both] [--size S] [--limit N] [--json]',
          "Encodes every image of both folders at SxS, looks up each branch's code vectors (semantic, pixel, or both concatenated), mean-pools them over the code grid, " +
            'standardizes the features with the train statistics and fits a multinomial logistic regression (softmax, L2, full-batch L-BFGS from zeros: deterministic). Reports train and test accuracy, N, feature dimension and chance levels.',
          "Labels: labels.jsonl in each folder, else NAME.txt / NAME.cls / NAME.json sidecars (as `vtok classify train`). Default --size: 8 x the tokenizer's downsample factor (an 8x8 code grid: 64 for downsample 8, 32 for 4). " +
            'All branches given are probed on one encoding of the images.',
        ].join('\n\n'),
      )
      .option('tokenizer', { type: 'string', default: 'default', describe: 'Tokenizer bundle: name, id or id prefix in the store' })
      .option('store', { type: 'string', describe: 'User store folder (default VTOK_STORE, else ~/.vtok/store)' })
      .option('train', { type: 'string', demandOption: true, describe: 'Labelled image folder to fit the probe on' })
      .option('test', { type: 'string', demandOption: true, describe: 'Labelled image folder to score it on' })
      .option('branch', { type: 'string', array: true, choices: PROBE_BRANCHES, default: [...PROBE_BRANCHES], describe: 'Code vectors to probe (one or more)' })
      .option('size', { type: 'number', describe: "Encode SxS images (a multiple of the downsample factor); default 8 x downsample" })
      .option('fit', { choices: ['crop', 'pad'] as const, default: 'crop' as const, describe: 'How images reach SxS (the same for square images)' })
      .option('limit', { type: 'number', describe: 'Use only the first N train images (by name)' })
      .option('test-limit', { type: 'number', describe: 'Use only the first N test images (by name)' })
      .option('batch-size', { type: 'number', default: 32, describe: 'Images per encode call' })
      .option('l2', { type: 'number', default: 1e-3, describe: 'L2 penalty on the probe weights (features are standardized)' })
      .example('$0 eval probe --tokenizer default --train data/fashion-mnist/train --test data/fashion-mnist/test --limit 10000', 'all three branches, 10,000 train images')
      .example('$0 eval probe --tokenizer ablation-pixel --train data/fashion-mnist/train --test data/fashion-mnist/test --branch semantic --json', 'one branch, JSON') as never,
  handler: async (args) =>
    withEngine(args, async () => {
      let bar: ReturnType<typeof progress> | undefined;
      let split = '';
      let shown = 0;
      try {
        const r = await evalProbe({
          tokenizer: args.tokenizer,
          store: { store: args.store },
          train: args.train,
          test: args.test,
          branches: args.branch,
          size: args.size,
          fit: args.fit,
          limit: args.limit,
          testLimit: args.testLimit,
          batchSize: args.batchSize,
          l2: args.l2,
          onProgress: (p) => {
            if (p.split !== split) {
              bar?.stop();
              bar = progress(args, `encode ${p.split}`, p.total);
              split = p.split;
              shown = 0;
            }
            bar?.tick(p.done - shown);
            shown = p.done;
          },
        });
        bar?.stop();
        bar = undefined;
        const { input, tokenizer: t, data } = r;
        printResult(args, r, () =>
          [
            `tokenizer ${t.name} (${t.id.slice(0, 12)}); images at ${input.size}x${input.size}${input.sizeIsDefault ? ` (default: 8 x downsample ${t.downsample})` : ''}, ${input.fit}, ` +
              `${input.grid[0]}x${input.grid[1]} code grid; N = ${data.train.n} train / ${data.test.n} test, ${data.classes.length} classes`,
            table(
              ['branch', 'dim', 'train acc', 'test acc', 'chance', 'converged'],
              r.results.map((x) => [x.branch, x.dim, pct(x.train.accuracy), pct(x.test.accuracy), `${pct(x.chance.uniform)} (majority ${pct(x.chance.majority)})`, x.fit.converged ? 'yes' : `no (${x.fit.iterations} it)`]),
            ),
            `encode ${r.timings.imagesPerSecond.toFixed(1)} images/s; ${r.timings.wallSeconds.toFixed(0)} s in all`,
          ].join('\n'),
        );
      } finally {
        bar?.stop();
      }
    }),
};

/** `vtok eval`: fid, usage, recon and probe. */
export const evalCommand: CommandModule<object, object> = {
  command: 'eval <command>',
  describe: 'Evaluate: Fréchet distance between image folders, codebook usage of token folders, reconstruction reports, linear probes of code vectors',
  builder: (y: Argv) => y.command(fidCommand as never).command(usageCommand as never).command(reconCommand as never).command(probeCommand as never).demandCommand(1) as never,
  handler: () => undefined,
};
