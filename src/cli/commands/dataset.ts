import type { CommandModule } from 'yargs';
import { readTokenDir } from '../../io/dataset/shard';
import { loadHfTokenizer } from '../../io/hf-tokenizer';
import { loadTokenizer } from '../../io/tokenizer-bundle';
import { decodeDataset, exportTokens, mergeManifests, modelDetokenizer, modelTokenizer, tokenizeDataset } from '../../pipeline';
import { printResult, progress, type GlobalArgs } from '../output';
import { withEngine, type EngineArgs } from './engine';

interface TokenizeArgs extends EngineArgs {
  inputs: string[];
  out: string;
  tokenizer: string;
  bpe?: boolean;
  labels?: string;
  shard: string;
  resume?: boolean;
  batchSize?: number;
  recordsPerShard: number;
  fit: 'crop' | 'pad';
  concurrency: number;
  workers: number;
  workerNice: number;
}

export const tokenizeCommand: CommandModule<object, TokenizeArgs> = {
  command: 'tokenize <inputs..>',
  describe: 'Turn images (folders, globs, @file lists, tar archives) into token shards, resumably',
  builder: (y) =>
    y
      .positional('inputs', { type: 'string', array: true, describe: 'Folders (recursive), globs, @list files, .tar archives, image files' })
      .option('out', { type: 'string', demandOption: true, describe: 'Output folder (refuses a non-empty folder that is not this run\'s)' })
      .option('tokenizer', { type: 'string', default: 'default', describe: 'Tokenizer bundle: name, id or id prefix in the store' })
      .option('store', { type: 'string', describe: 'User store folder (default VTOK_STORE, else ~/.vtok/store)' })
      .option('bpe', { type: 'boolean', describe: 'Add visual BPE ids (the tokenizer bundle must hold a BPE model)' })
      .option('labels', { type: 'string', describe: 'CSV or JSONL mapping keys to label/caption (sidecar NAME.txt/.json are read anyway)' })
      .option('shard', { type: 'string', default: '0/1', describe: 'This run\'s part i/n of the input (any scheduler can run n copies)' })
      .option('resume', { type: 'boolean', describe: 'Continue an interrupted run in --out' })
      .option('batch-size', {
        type: 'number',
        describe: "Images per model call (default: by the tokenizer's image size, 64 at 32 px, 16 at 128, 4 at 256; wasm has a 4 GB heap)",
      })
      .option('records-per-shard', { type: 'number', default: 1024, describe: 'Inputs per shard file' })
      .option('fit', { choices: ['crop', 'pad'] as const, default: 'crop' as const, describe: 'Centre-crop or pad to the tokenizer\'s size' })
      .option('concurrency', { type: 'number', default: 2, describe: 'Images decoded at once' })
      .option('workers', {
        type: 'number',
        default: 1,
        describe: 'Threads that read and decode images while the model encodes (0: decode between batches on the main thread)',
      })
      .option('worker-nice', {
        type: 'number',
        default: 0,
        describe: 'Nice value of those threads (Linux, 0-19): higher lets the model preempt them; a high value starves them on a busy machine',
      })
      .example('$0 tokenize photos/ --out tokens/', 'every image under photos/ with the default tokenizer')
      .example('$0 tokenize "data/**/*.jpg" --out t/ --shard 3/8', 'part 3 of 8 (then: vtok manifest merge t/)')
      .example('$0 tokenize shards.tar --out t/ --resume', 'continue after a crash') as never,
  handler: async (args) =>
    withEngine(args, async () => {
      const t = await loadTokenizer(args.tokenizer, { store: args.store });
      try {
        if (args.bpe && !t.bpe) throw new Error(`Tokenizer ${t.id.slice(0, 12)} holds no BPE model; train one with vtok bpe train`);
        let bar: ReturnType<typeof progress> | undefined;
        let last = 0;
        const result = await tokenizeDataset({
          inputs: args.inputs,
          out: args.out,
          tokenizer: modelTokenizer(t.model, { id: t.id, imageSize: t.imageSize }),
          bpe: args.bpe ? t.bpe : undefined,
          labels: args.labels,
          shard: args.shard,
          resume: Boolean(args.resume),
          batchSize: args.batchSize,
          recordsPerShard: args.recordsPerShard,
          fit: args.fit,
          concurrency: args.concurrency,
          workers: args.workers,
          workerNice: args.workerNice,
          onProgress: (p) => {
            bar ??= progress(args, 'tokenize', p.total);
            bar.tick(p.done - last, { 'img/s': p.imagesPerSecond, skipped: p.skipped });
            last = p.done;
          },
        });
        bar?.stop();
        printResult(args, result, () =>
          [
            `${result.manifest.counts.records} records, ${result.manifest.counts.errors} skipped (see ${result.manifest.errors})`,
            `${result.manifest.shards.length} shards in ${result.dir}; manifest ${result.manifestFile}`,
            `${result.imagesPerSecond.toFixed(1)} images/s`,
          ].join('\n'),
        );
      } finally {
        t.model.dispose();
      }
    }),
};

interface DecodeArgs extends EngineArgs {
  dir: string;
  out: string;
  tokenizer?: string;
  limit?: number;
  overwrite?: boolean;
}

export const decodeCommand: CommandModule<object, DecodeArgs> = {
  command: 'decode <dir>',
  describe: 'Render token shards back to PNG images (through BPE decode when the records hold only BPE ids)',
  builder: (y) =>
    y
      .positional('dir', { type: 'string', describe: 'Token folder (or its manifest)' })
      .option('out', { type: 'string', demandOption: true, describe: 'Folder for the PNG files' })
      .option('tokenizer', { type: 'string', describe: 'Tokenizer bundle (default: the one whose id the manifest records)' })
      .option('store', { type: 'string', describe: 'User store folder' })
      .option('limit', { type: 'number', describe: 'Decode at most N records' })
      .option('overwrite', { type: 'boolean', describe: 'Replace PNG files already in --out' })
      .example('$0 decode tokens/ --out recon/ --limit 64', 'the first 64 images') as never,
  handler: async (args) =>
    withEngine(args, async () => {
      const { manifest } = await readTokenDir(args.dir);
      const t = await loadTokenizer(args.tokenizer ?? manifest.options.tokenizer.id, { store: args.store });
      try {
        const result = await decodeDataset({
          dir: args.dir,
          out: args.out,
          detokenizer: modelDetokenizer(t.model, { id: t.id, imageSize: t.imageSize }),
          bpe: t.bpe,
          limit: args.limit,
          overwrite: Boolean(args.overwrite),
        });
        printResult(args, result, () => `${result.images} images written to ${args.out}`);
      } finally {
        t.model.dispose();
      }
    }),
};

interface ExportArgs extends GlobalArgs {
  dir: string;
  out: string;
  format: 'jsonl' | 'bin' | 'hf';
  ids: 'auto' | 'codes' | 'bpe';
  template: string;
  baseTokenizer?: string;
  overwrite?: boolean;
}

export const exportCommand: CommandModule<object, ExportArgs> = {
  command: 'export <dir>',
  describe: 'Export token shards for LLM training: JSONL with token strings, a flat binary of ids, or a Hugging Face tokenizer.json',
  builder: (y) =>
    y
      .positional('dir', { type: 'string', describe: 'Token folder (or its manifest)' })
      .option('out', { type: 'string', demandOption: true, describe: 'Folder for the exported files' })
      .option('format', { choices: ['jsonl', 'bin', 'hf'] as const, default: 'jsonl' as const, describe: 'Output format' })
      .option('ids', { choices: ['auto', 'codes', 'bpe'] as const, default: 'auto' as const, describe: 'Visual ids: grid codes or BPE ids' })
      .option('template', { type: 'string', default: '{caption}{image}', describe: 'Document template: {image}, {caption}, {label}, {key}' })
      .option('base-tokenizer', { type: 'string', describe: 'A Hugging Face tokenizer.json: hf extends it with the visual tokens; bin encodes the text with it (needs `npm install tokenizers`)' })
      .option('overwrite', { type: 'boolean', describe: 'Replace files already in --out' })
      .example('$0 export tokens/ --out llm/ --format jsonl', '<|img_start|><|vis_12|>...<|img_end|> lines')
      .example('$0 export tokens/ --out llm/ --format bin', 'tokens.bin (uint16/uint32) + index of document offsets')
      .example('$0 export tokens/ --out llm/ --format bin --base-tokenizer tokenizer.json', 'text ids from tokenizer.json, visual ids after its vocabulary (as --format hf assigns them)') as never,
  handler: async (args) => {
    // bin with a base tokenizer: the text around images is encoded by that tokenizer (needs the `tokenizers` package).
    const base = args.format === 'bin' && args.baseTokenizer !== undefined ? await loadHfTokenizer(args.baseTokenizer) : undefined;
    const result = await exportTokens({
      dir: args.dir,
      out: args.out,
      format: args.format,
      ids: args.ids,
      template: args.template,
      baseTokenizer: args.baseTokenizer,
      encodeText: base?.encode,
      overwrite: Boolean(args.overwrite),
    });
    printResult(args, result, () => `${result.docs} documents (${result.ids} ids) -> ${result.files.join(', ')}`);
  },
};

interface MergeArgs extends GlobalArgs {
  dirs: string[];
  out?: string;
}

export const manifestCommand: CommandModule<object, MergeArgs> = {
  command: 'manifest merge <dirs..>',
  describe: 'Check that the parts of a --shard i/n run cover the input exactly once, and write one manifest',
  builder: (y) =>
    y
      .positional('dirs', { type: 'string', array: true, describe: 'Folders holding the parts\' manifests' })
      .option('out', { type: 'string', describe: 'Where to write manifest.json (default: the first folder)' })
      .example('$0 manifest merge tokens/', 'all parts written into one folder') as never,
  handler: async (args) => {
    const result = await mergeManifests({ dirs: args.dirs, out: args.out });
    printResult(args, result, () => `${result.parts} parts, ${result.manifest.counts.records} records -> ${result.manifestFile}`);
  },
};
