/**
 * Timing helpers shared by the benchmarks: medians over repetitions after a
 * warm-up, with the spread, so a table can quote "median (min-max)".
 *
 * Example:
 *   const t = timeIt(() => work(), { reps: 5, warmup: 1 });
 *   console.log(`${formatMs(t.median)} (${formatMs(t.min)}-${formatMs(t.max)})`);
 */

export interface Timing {
  /** Median of the timed repetitions, ms. */
  median: number;
  min: number;
  max: number;
  /** Every timed repetition, ms, in run order. */
  samples: number[];
}

/** Median of a non-empty list (mean of the middle two for even lengths). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError('median of an empty list');
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function summarize(samples: number[]): Timing {
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), samples };
}

export interface TimeItOptions {
  /** Timed repetitions (default 5). */
  reps?: number;
  /** Untimed runs first (default 1). */
  warmup?: number;
  /** Called after each run, untimed (free what the run made). */
  after?: (result: unknown) => void;
}

/** Times a synchronous function: warm-up runs, then `reps` timed runs. */
export function timeIt<T>(fn: () => T, options: TimeItOptions = {}): Timing {
  const { reps = 5, warmup = 1, after } = options;
  for (let i = 0; i < warmup; i++) after?.(fn());
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const r = fn();
    samples.push(performance.now() - t0);
    after?.(r);
  }
  return summarize(samples);
}

/** Same for an async function. */
export async function timeItAsync<T>(fn: () => Promise<T>, options: TimeItOptions = {}): Promise<Timing> {
  const { reps = 5, warmup = 1, after } = options;
  for (let i = 0; i < warmup; i++) after?.(await fn());
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const r = await fn();
    samples.push(performance.now() - t0);
    after?.(r);
  }
  return summarize(samples);
}

/** "12.3 ms", "1.23 s", "0.45 ms": three significant figures. */
export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms >= 1000) return `${(ms / 1000).toPrecision(3)} s`;
  return `${ms.toPrecision(3)} ms`;
}
