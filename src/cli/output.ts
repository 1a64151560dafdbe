import { SingleBar, Presets } from 'cli-progress';
import { VtokError } from '../core/errors';

/** Options every command accepts. */
export interface GlobalArgs {
  json?: boolean;
  quiet?: boolean;
}

/** Prints a result: JSON on stdout with --json, else the human text. */
export function printResult(args: GlobalArgs, value: unknown, human: () => string): void {
  if (args.json) process.stdout.write(JSON.stringify(value, null, 2) + '\n');
  else process.stdout.write(human().replace(/\n?$/, '\n'));
}

/** A message for people on stderr (never mixed into --json output). */
export function note(args: GlobalArgs, message: string): void {
  if (!args.quiet) process.stderr.write(message.replace(/\n?$/, '\n'));
}

/** Renders rows as an aligned text table. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

export interface Progress {
  /** Advances by `n` and updates the shown values (e.g. loss). */
  tick(n?: number, values?: Record<string, string | number>): void;
  stop(): void;
}

/**
 * A progress bar on stderr when it is a terminal; otherwise a plain line every
 * `plainEvery` seconds (logs stay readable), nothing with --quiet or --json.
 */
export function progress(args: GlobalArgs, label: string, total: number, plainEverySeconds = 10): Progress {
  let done = 0;
  let values: Record<string, string | number> = {};
  const format = (v: Record<string, string | number>) =>
    Object.entries(v)
      .map(([k, x]) => `${k} ${typeof x === 'number' ? formatNumber(x) : x}`)
      .join('  ');
  if (args.quiet || args.json) return { tick: () => undefined, stop: () => undefined };
  if (process.stderr.isTTY) {
    const bar = new SingleBar(
      { format: `${label} [{bar}] {value}/{total} {percentage}% eta {eta_formatted}  {extra}`, stream: process.stderr, hideCursor: true },
      Presets.shades_classic,
    );
    bar.start(total, 0, { extra: '' });
    return {
      tick(n = 1, v) {
        done += n;
        if (v) values = { ...values, ...v };
        bar.update(done, { extra: format(values) });
      },
      stop() {
        bar.stop();
      },
    };
  }
  const start = Date.now();
  let last = start;
  return {
    tick(n = 1, v) {
      done += n;
      if (v) values = { ...values, ...v };
      const now = Date.now();
      if (now - last >= plainEverySeconds * 1000 || done === total) {
        last = now;
        process.stderr.write(`${label} ${done}/${total} (${((now - start) / 1000).toFixed(0)} s) ${format(values)}\n`);
      }
    },
    stop() {
      /* plain lines need no cleanup */
    },
  };
}

function formatNumber(x: number): string {
  if (Number.isInteger(x)) return String(x);
  return Math.abs(x) >= 100 ? x.toFixed(1) : x.toPrecision(4);
}

/** Turns any thrown value into one line for the user and an exit code. */
export function reportError(err: unknown): { message: string; exitCode: number } {
  if (err instanceof VtokError) return { message: `vtok: ${err.message} [${err.code}]`, exitCode: 2 };
  if (err instanceof Error) return { message: `vtok: unexpected error: ${err.stack ?? err.message}`, exitCode: 1 };
  return { message: `vtok: unexpected error: ${String(err)}`, exitCode: 1 };
}
