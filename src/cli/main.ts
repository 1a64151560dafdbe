import yargs from 'yargs';
import type { CommandModule } from 'yargs';
import { reportError } from './output';
import { infoCommand } from './commands/info';
import { storeCommand } from './commands/store';
import { bpeCommand } from './commands/bpe';
import { evalCommand } from './commands/eval';
import { trainCommand } from './commands/train';
import { arCommand } from './commands/ar';
import { classifyCommand } from './commands/classify';
import { decodeCommand, exportCommand, manifestCommand, tokenizeCommand } from './commands/dataset';

/** Every subcommand; each lives in its own file under commands/ and calls a library function. */
export const commands = [infoCommand, tokenizeCommand, decodeCommand, exportCommand, manifestCommand, bpeCommand, trainCommand, evalCommand, arCommand, classifyCommand, storeCommand] as unknown as CommandModule<object, never>[];

/** Runs the CLI with the given arguments (without `node` and the script). */
export async function main(argv: string[]): Promise<void> {
  const parser = yargs(argv)
    .scriptName('vtok')
    .usage('$0 <command> [options]\n\nDiscrete visual tokenization: images to tokens an LLM can read and write, and back.')
    .option('json', { type: 'boolean', describe: 'Print machine-readable JSON on stdout', global: true })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'No progress or notes on stderr', global: true })
    .option('backend', {
      type: 'string',
      choices: ['tensorflow', 'wasm', 'cpu'],
      describe: 'TensorFlow.js backend (default: the fastest available; env VTOK_BACKEND)',
      global: true,
    })
    .option('threads', { type: 'number', describe: 'Threads for the wasm backend (default: all cores; env VTOK_THREADS)', global: true })
    .command(commands)
    .demandCommand(1, 'Name a command; `vtok --help` lists them.')
    .strict()
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .epilogue('Docs: README.md. Every command is also a library function (see src/index.ts).')
    .fail((msg, err, y) => {
      if (err) throw err;
      process.stderr.write(`${y.help()}\n\nvtok: ${msg}\n`);
      process.exit(2);
    });
  try {
    await parser.parseAsync();
  } catch (err) {
    const { message, exitCode } = reportError(err);
    process.stderr.write(message + '\n');
    process.exitCode = exitCode;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2));
}
