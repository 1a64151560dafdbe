/** The run the kill -9 tests make, shared by the test and its child process. */
export const CHILD_RUN = {
  tokenizer: { imageSize: 16, grid: 4, levels: 8 },
  options: { recordsPerShard: 4, batchSize: 2, concurrency: 2, queueDepth: 1 },
  batchDelayMs: 4,
};
