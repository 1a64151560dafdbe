/**
 * Codebook usage and perplexity of a token folder written by the pipeline,
 * over the whole set (docs/EVAL.md): one CodeHistogram for all records.
 */
import { CodeHistogram, type CodebookStats } from '../src/core/metrics';
import { VtokError } from '../src/core/errors';
import type { TokenRecord } from '../src/core/pipeline-types';
import { iterateShards, readTokenDir } from '../src/io/dataset';

export interface UsageReport extends CodebookStats {
  tokenizer: string;
  /** Records (images) counted. */
  records: number;
  dir: string;
}

/** Counts the code grids of `records` into `hist`; a record without codes (BPE-only run) is an error. */
export function countRecords(hist: CodeHistogram, records: Iterable<Pick<TokenRecord, 'key' | 'codes'>>): number {
  let n = 0;
  for (const r of records) {
    if (r.codes === null) throw new VtokError('INVALID_INPUT', `Expected code grids but record ${r.key} stores BPE ids only`);
    hist.add(r.codes);
    n++;
  }
  return n;
}

/** Usage and perplexity of every code grid in a token folder (or its manifest.json). */
export async function evalUsage(options: { tokens: string }): Promise<UsageReport> {
  const { dir, manifest } = await readTokenDir(options.tokens);
  const hist = new CodeHistogram(manifest.options.tokenizer.codebookSize);
  let records = 0;
  for await (const shard of iterateShards(dir, manifest)) records += countRecords(hist, shard.records);
  if (records === 0) throw new VtokError('INVALID_INPUT', `Expected token records in ${dir} but found none`);
  return { ...hist.stats(), tokenizer: manifest.options.tokenizer.id, records, dir };
}
