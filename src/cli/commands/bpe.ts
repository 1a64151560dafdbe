import { promises as fsp } from 'node:fs';
import type { CommandModule } from 'yargs';
import { BpeModel } from '../../core/bpe';
import { VtokError } from '../../core/errors';
import { loadTokenizer } from '../../io/tokenizer-bundle';
import { renderMerges, topMerges, trainBpeFromTokens } from '../../pipeline/bpe';
import { note, printResult, table, type GlobalArgs } from '../output';
import { withEngine, type EngineArgs } from './engine';

interface BpeArgs extends EngineArgs {
  tokens?: string;
  tokenizer: string;
  vocabSize?: number;
  merges?: number;
  mode: '2d' | '1d';
  directions: 'horizontal' | 'vertical' | 'both';
  priority: 'frequency' | 'spatial';
  minFrequency: number;
  maxShapeCells: number;
  name?: string;
  input?: string;
  height?: number;
  width?: number;
  top: number;
  out?: string;
}

/** Reads JSON lines from a file or stdin ('-'). */
async function readJsonLines(input: string | undefined): Promise<unknown[]> {
  const text = input && input !== '-' ? await fsp.readFile(input, 'utf8') : await readStdin();
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l, i) => {
      try {
        return JSON.parse(l) as unknown;
      } catch {
        throw new VtokError('INVALID_INPUT', `Line ${i + 1} of ${input ?? 'stdin'} is not JSON: ${l.slice(0, 60)}`);
      }
    });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function intArray(value: unknown, what: string): number[] {
  if (!Array.isArray(value) || !value.every((v) => Number.isInteger(v))) {
    throw new VtokError('INVALID_INPUT', `Expected an array of integers for ${what}`);
  }
  return value as number[];
}

/** `vtok bpe train | encode | decode | inspect`. */
export const bpeCommand: CommandModule<object, BpeArgs> = {
  command: 'bpe <action>',
  describe: 'Visual BPE: two-dimensional, exactly reversible merges over code grids',
  builder: (y) =>
    y
      .option('tokenizer', { type: 'string', default: 'default', describe: 'Tokenizer bundle (name, id or id prefix)' })
      .option('store', { type: 'string', describe: 'User store folder (default VTOK_STORE, else ~/.vtok/store)' })
      .command({
        command: 'train',
        describe: 'Learn merges from a token folder and store tokenizer + merges as a new bundle',
        builder: (b) =>
          b
            .option('tokens', { type: 'string', demandOption: true, describe: 'Token folder from vtok tokenize (code grids)' })
            .option('vocab-size', { type: 'number', describe: 'Visual vocabulary size after merging (K + merges)' })
            .option('merges', { type: 'number', describe: 'Number of merges (instead of --vocab-size)' })
            .option('mode', { choices: ['2d', '1d'] as const, default: '2d' as const, describe: '2d shapes, or plain BPE on raster order' })
            .option('directions', { choices: ['horizontal', 'vertical', 'both'] as const, default: 'both' as const })
            .option('priority', { choices: ['frequency', 'spatial'] as const, default: 'frequency' as const, describe: 'Pair priority (spatial: weighted by spatial consistency)' })
            .option('min-frequency', { type: 'number', default: 2, describe: 'Stop when the best pair occurs fewer times' })
            .option('max-shape-cells', { type: 'number', default: 4096, describe: 'Largest merged shape, in cells' })
            .option('name', { type: 'string', describe: 'Store name for the new bundle' })
            .example('$0 bpe train --tokens tokens/ --vocab-size 2048 --name default-bpe', 'K=1024 codes + 1024 merges') as never,
        handler: (args: BpeArgs) =>
          withEngine(args, async () => {
            if (!args.tokens) throw new VtokError('INVALID_OPTION', 'bpe train needs --tokens');
            const t = await loadTokenizer(args.tokenizer, { store: args.store });
            try {
              const r = await trainBpeFromTokens({
                dir: args.tokens,
                tokenizer: t,
                name: args.name,
                store: { store: args.store },
                train: {
                  vocabSize: args.vocabSize ?? 0,
                  merges: args.merges ?? 0,
                  mode: args.mode,
                  directions: args.directions,
                  priority: args.priority,
                  minFrequency: args.minFrequency,
                  maxShapeCells: args.maxShapeCells,
                },
              });
              printResult(args, r, () =>
                [
                  `bundle ${r.id}${args.name ? ` (${args.name})` : ''}: tokenizer ${r.parent.slice(0, 12)} + ${r.merges} merges, vocabulary ${r.vocabSize}`,
                  `${r.grids} grids: ${r.tokensPerImage.codes} -> ${r.tokensPerImage.bpe.toFixed(1)} tokens per image (${r.seconds.toFixed(1)} s)`,
                ].join('\n'),
              );
            } finally {
              t.model.dispose();
            }
          }),
      } as CommandModule<object, BpeArgs>)
      .command({
        command: 'encode [input]',
        describe: 'Code grids to BPE ids: JSON lines {"h":16,"w":16,"codes":[...]} in (file or stdin), {"h","w","ids"} out',
        handler: (args: BpeArgs) => mapGrids(args, 'codes', 'ids', (bpe, values, h, w) => bpe.encode(values, h, w)),
      } as CommandModule<object, BpeArgs>)
      .command({
        command: 'decode [input]',
        describe: 'BPE ids back to code grids: JSON lines {"h","w","ids"} in, {"h","w","codes"} out (exact inverse of encode)',
        handler: (args: BpeArgs) => mapGrids(args, 'ids', 'codes', (bpe, values, h, w) => bpe.decode(values, h, w)),
      } as CommandModule<object, BpeArgs>)
      .command({
        command: 'inspect',
        describe: 'The most frequent merged shapes, and (with --out) a PNG of them decoded to image patches',
        builder: (b) =>
          b
            .option('top', { type: 'number', default: 32, describe: 'How many merged tokens' })
            .option('out', { type: 'string', describe: 'PNG file for the decoded shapes' })
            .example('$0 bpe inspect --tokenizer default-bpe --out merges.png', 'look at what the merges mean') as never,
        handler: (args: BpeArgs) =>
          withEngine(args, async () => {
            const t = await loadTokenizer(args.tokenizer, { store: args.store });
            try {
              if (!t.bpe) throw new VtokError('BPE', `Tokenizer ${t.id.slice(0, 12)} holds no BPE model; train one with vtok bpe train`);
              const merges = topMerges(t.bpe, args.top);
              if (args.out) {
                await renderMerges(t, merges, args.out);
                note(args, `wrote ${args.out}`);
              }
              printResult(args, merges, () =>
                table(
                  ['id', 'count', 'cells', 'shape (dy,dx:code)'],
                  merges.map((m) => [m.id, m.count, m.cells.length, m.cells.map((c) => `${c.dy},${c.dx}:${c.code}`).join(' ')]),
                ),
              );
            } finally {
              t.model.dispose();
            }
          }),
      } as CommandModule<object, BpeArgs>)
      .demandCommand(1) as never,
  handler: () => undefined,
};

/** Reads {h, w, <from>} JSON lines, maps each through the tokenizer's BPE model, writes {h, w, <to>} lines. */
async function mapGrids(
  args: BpeArgs,
  from: 'codes' | 'ids',
  to: 'codes' | 'ids',
  fn: (bpe: BpeModel, values: number[], h: number, w: number) => Int32Array,
): Promise<void> {
  const { bpe } = await loadBpe(args);
  for (const line of await readJsonLines(args.input)) {
    const g = line as { h: number; w: number } & Record<string, unknown>;
    const out = fn(bpe, intArray(g[from], from), g.h, g.w);
    process.stdout.write(JSON.stringify({ h: g.h, w: g.w, [to]: Array.from(out) }) + '\n');
  }
}

async function loadBpe(args: BpeArgs & GlobalArgs) {
  // Encoding and decoding ids needs no model: read the bundle only.
  const { openStoreSet } = await import('../../io/store');
  const bundle = await openStoreSet({ store: args.store }).get(args.tokenizer);
  if (bundle.bpe === undefined) throw new VtokError('BPE', `Bundle ${bundle.id.slice(0, 12)} holds no BPE model; train one with vtok bpe train`);
  return { id: bundle.id, bpe: BpeModel.fromJSON(bundle.bpe) };
}
