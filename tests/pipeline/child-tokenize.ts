/**
 * A tokenize run in its own process, for the kill -9 tests (resume.test.ts).
 * Usage: node --import tsx child-tokenize.ts <inputs dir> <out dir> <resume 0|1> [kill after N records]
 * Prints "started" once the first batch is under way; with N, kills itself
 * with SIGKILL as soon as N records are done. Each batch waits a few
 * milliseconds so that a kill after a random delay lands inside the run.
 */
import { colourGridTokenizer } from '../../src/pipeline/colour-grid';
import { tokenizeDataset } from '../../src/pipeline/tokenize';
import { CHILD_RUN } from './resume-config';

const [inputs, out, resume, killAfter] = process.argv.slice(2);
const grid = colourGridTokenizer(CHILD_RUN.tokenizer);
const slow = {
  ...grid,
  async encodeBatch(images: Float32Array, batch: number): Promise<Int32Array> {
    await new Promise((r) => setTimeout(r, CHILD_RUN.batchDelayMs));
    return grid.encodeBatch(images, batch);
  },
};
let started = false;
tokenizeDataset({
  ...CHILD_RUN.options,
  inputs: [inputs],
  out,
  tokenizer: slow,
  resume: resume === '1',
  onProgress: (p) => {
    if (!started) {
      started = true;
      process.stdout.write('started\n');
    }
    if (killAfter !== undefined && p.records >= Number(killAfter)) process.kill(process.pid, 'SIGKILL');
  },
}).then(
  () => process.stdout.write('finished\n'),
  (err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exit(1);
  },
);
