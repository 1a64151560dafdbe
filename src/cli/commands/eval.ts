import type { Argv, CommandModule } from 'yargs';
import { evalFid } from '../../../eval/fid';
import { evalUsage } from '../../../eval/usage';
import { initBackend, shutdownBackend } from '../../engine/backend';
import { FEATURE_EXTRACTOR_KINDS, loadFeatureExtractor, type FeatureExtractorKind } from '../../io/feature-models';
import { printResult, type GlobalArgs } from '../output';

interface FidArgs extends GlobalArgs {
  dirA: string;
  dirB: string;
  extractor: FeatureExtractorKind;
  fidWeights?: string;
  limit?: number;
  backend?: 'tensorflow' | 'wasm' | 'cpu';
  threads?: number;
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

/** `vtok eval`: fid and usage (recon is not built yet). */
export const evalCommand: CommandModule<object, object> = {
  command: 'eval <command>',
  describe: 'Evaluate: Fréchet distance between image folders, codebook usage of token folders',
  builder: (y: Argv) => y.command(fidCommand as never).command(usageCommand as never).demandCommand(1) as never,
  handler: () => undefined,
};
