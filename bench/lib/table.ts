/**
 * Plain-text and Markdown tables for benchmark output.
 *
 * Example:
 *   console.log(formatTable(['kernel', 'ms'], [['matmul', '12.1']], { align: ['left', 'right'] }));
 */

export interface TableOptions {
  /** Per-column alignment; default: first column left, the rest right. */
  align?: ('left' | 'right')[];
  /** Markdown pipe table instead of aligned text. */
  markdown?: boolean;
}

export function formatTable(header: string[], rows: string[][], options: TableOptions = {}): string {
  const align = options.align ?? header.map((_, i) => (i === 0 ? 'left' : 'right'));
  const cells = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const pad = (s: string, i: number) => (align[i] === 'right' ? s.padStart(widths[i]) : s.padEnd(widths[i]));
  if (options.markdown) {
    const line = (r: string[]) => `| ${r.map((c, i) => pad(c ?? '', i)).join(' | ')} |`;
    const rule = `|${widths.map((w, i) => (align[i] === 'right' ? `${'-'.repeat(w + 1)}:` : `:${'-'.repeat(w + 1)}`)).join('|')}|`;
    return [line(header), rule, ...rows.map(line)].join('\n');
  }
  const line = (r: string[]) => r.map((c, i) => pad(c ?? '', i)).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
