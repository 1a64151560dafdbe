import * as path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { evalFid } from '../../../eval/fid';
import { evalUsage } from '../../../eval/usage';
import { evalRecon } from '../../../eval/recon';
import { VtokError } from '../../core/errors';
import { initBackend, shutdownBackend } from '../../engine/backend';
import { FEATURE_EXTRACTOR_KINDS, loadFeatureExtractor, type FeatureExtractorKind } from '../../io/feature-models';
import { printResult, progress, type GlobalArgs } from '../output';
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

/** `vtok eval`: fid, usage and recon. */
export const evalCommand: CommandModule<object, object> = {
  command: 'eval <command>',
  describe: 'Evaluate: Fréchet distance between image folders, codebook usage of token folders, reconstruction reports',
  builder: (y: Argv) => y.command(fidCommand as never).command(usageCommand as never).command(reconCommand as never).demandCommand(1) as never,
  handler: () => undefined,
};
