/**
 * `vtok store ls | show REF | verify [REF]` as library functions: each returns
 * a plain JSON-able object (what `--json` prints) and has a formatter for
 * people. The CLI command files are thin wrappers over these.
 *
 * Example:
 *   const r = await storeVerify(undefined, 'default');   // user store (VTOK_STORE or ~/.vtok/store) + shipped
 *   console.log(formatStoreVerify(r));
 *   process.exitCode = r.ok ? 0 : 1;
 */

import { bytesPerElement, shapeSize, type TensorDType } from '../core/tensor-map';
import { summarizeTypedArrays } from './bundle';
import { openStoreSet, type StoreEntry, type StoreSet, type StoreSetOptions, type VerifyReport } from './store';

/** Options of the store commands: which stores to search besides `dir`. */
export type StoreCommandOptions = Omit<StoreSetOptions, 'store'>;

export interface StoreDescription {
  dir: string;
  role: 'user' | 'shipped';
  readOnly: boolean;
}

export interface StoreListResult {
  stores: StoreDescription[];
  entries: StoreEntry[];
}

export interface StoreShowResult {
  stores: StoreDescription[];
  id: string;
  store: string;
  file: string;
  names: string[];
  kind: string;
  name: string;
  createdAt: string;
  format: string;
  size: number;
  sections: { header: number; meta: number; head: number; data: number };
  parents: string[];
  config: unknown;
  tensors: { name: string; dtype: TensorDType; shape: number[]; size: number }[];
  /** Number of tensor values, and their bytes. */
  parameters: number;
  tensorBytes: number;
  /** bpe, vocab and meta with typed arrays shown as { $typed, length }. */
  bpe?: unknown;
  vocab?: unknown;
  meta?: unknown;
}

export interface StoreVerifyResult {
  ok: boolean;
  stores: StoreDescription[];
  reports: VerifyReport[];
}

/** `vtok store ls`: every bundle in the user store `dir` (default resolution when undefined) and the shipped store. */
export async function storeList(dir?: string, options: StoreCommandOptions = {}): Promise<StoreListResult> {
  const set = openStoreSet({ ...options, store: dir });
  return { stores: describe(set), entries: await set.list() };
}

/** `vtok store show REF`: one bundle's header, config, tensor table and metadata (its data section is not read). */
export async function storeShow(dir: string | undefined, ref: string, options: StoreCommandOptions = {}): Promise<StoreShowResult> {
  const set = openStoreSet({ ...options, store: dir });
  const info = await set.info(ref);
  const tensors = Object.entries(info.tensors)
    .map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, size: shapeSize(t.shape) }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const result: StoreShowResult = {
    stores: describe(set),
    id: info.id,
    store: info.store,
    file: info.file,
    names: info.names,
    kind: info.kind,
    name: info.name,
    createdAt: info.createdAt,
    format: `${info.format} ${info.version}`,
    size: info.size,
    sections: info.sections,
    parents: info.parents ?? [],
    config: summarizeTypedArrays(info.config),
    tensors,
    parameters: tensors.reduce((s, t) => s + t.size, 0),
    tensorBytes: tensors.reduce((s, t) => s + t.size * bytesPerElement(t.dtype), 0),
  };
  if (info.bpe !== undefined) result.bpe = info.bpe;
  if (info.vocab !== undefined) result.vocab = info.vocab;
  if (info.meta !== undefined) result.meta = info.meta;
  return result;
}

/** `vtok store verify [REF]`: full check (every byte hashed) of one bundle or of every store. `ok` is false on any problem. */
export async function storeVerify(dir?: string, ref?: string, options: StoreCommandOptions = {}): Promise<StoreVerifyResult> {
  const set = openStoreSet({ ...options, store: dir });
  const reports = await set.verify(ref);
  return { ok: reports.every((r) => r.ok), stores: describe(set), reports };
}

function describe(set: StoreSet): StoreDescription[] {
  return set.stores.map((s, i) => ({ dir: s.dir, role: i === 0 ? 'user' : 'shipped', readOnly: s.readOnly }));
}

// ---------------------------------------------------------------------------
// Formatters for people

export function formatStoreList(r: StoreListResult): string {
  const role = new Map(r.stores.map((s) => [s.dir, s.role]));
  const lines = r.stores.map((s) => `${s.role} store: ${s.dir}${s.readOnly ? ' (read-only)' : ''}`);
  if (r.entries.length === 0) return [...lines, 'no bundles'].join('\n');
  const rows = r.entries.map((e) => [
    e.id.slice(0, 12),
    e.names.join(',') || '-',
    e.error ? 'DAMAGED' : (e.kind ?? ''),
    e.error ? e.error.code : (e.name ?? ''),
    formatBytes(e.size),
    e.createdAt ? e.createdAt.slice(0, 16).replace('T', ' ') : '',
    role.get(e.store) ?? e.store,
    e.error ? e.error.message : (e.summary ?? ''),
  ]);
  return [...lines, '', alignRows(['ID', 'NAMES', 'KIND', 'NAME', 'SIZE', 'CREATED', 'STORE', 'CONFIG'], rows)].join('\n');
}

export function formatStoreShow(r: StoreShowResult): string {
  const lines = [
    `id        ${r.id}`,
    `names     ${r.names.join(', ') || '-'}`,
    `kind      ${r.kind}`,
    `name      ${r.name}`,
    `created   ${r.createdAt}`,
    `file      ${r.file} (${formatBytes(r.size)})`,
    `format    ${r.format}`,
  ];
  if (r.parents.length) lines.push(`parents   ${r.parents.join(', ')}`);
  lines.push(`config    ${indentJson(r.config)}`);
  lines.push(`tensors   ${r.tensors.length}, ${r.parameters.toLocaleString('en-US')} values, ${formatBytes(r.tensorBytes)}`);
  if (r.tensors.length) {
    lines.push(
      alignRows(
        ['  NAME', 'DTYPE', 'SHAPE'],
        r.tensors.map((t) => [`  ${t.name}`, t.dtype, `[${t.shape.join(', ')}]`]),
      ),
    );
  }
  if (r.bpe !== undefined) lines.push(`bpe       ${indentJson(r.bpe)}`);
  if (r.vocab !== undefined) lines.push(`vocab     ${indentJson(r.vocab)}`);
  if (r.meta !== undefined) lines.push(`meta      ${indentJson(r.meta)}`);
  return lines.join('\n');
}

export function formatStoreVerify(r: StoreVerifyResult): string {
  const lines: string[] = [];
  for (const rep of r.reports) {
    lines.push(`store ${rep.store}: ${rep.ok ? 'ok' : 'PROBLEMS'} (${rep.entries.length} bundle${rep.entries.length === 1 ? '' : 's'} checked)`);
    for (const e of rep.entries) {
      const names = e.names.length ? ` (${e.names.join(', ')})` : '';
      lines.push(e.ok ? `  ok       ${e.id}${names} ${formatBytes(e.size ?? 0)}` : `  DAMAGED  ${e.id}${names}: ${e.message} [${e.code}]`);
    }
    for (const d of rep.danglingRefs) lines.push(`  MISSING  name ${d.name} points at ${d.id}, which is not in the store`);
    for (const s of rep.strays) lines.push(`  STRAY    ${s} (left by an interrupted write or misnamed; safe to delete once checked)`);
  }
  lines.push(r.ok ? 'all bundles verified' : 'verification FAILED');
  return lines.join('\n');
}

/** 1536 -> "1.5 KB" (powers of 1024, the unit people read file sizes in). */
export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let u = 0;
  let x = n;
  while (x >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${x.toFixed(x >= 100 ? 0 : 1)} ${units[u]}`;
}

/** One line when short, else indented under the label. */
function indentJson(value: unknown): string {
  const flat = JSON.stringify(value);
  return flat.length <= 80 ? flat : JSON.stringify(value, null, 2).replace(/\n/g, '\n          ');
}

function alignRows(header: string[], rows: string[][]): string {
  const cells = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd()).join('\n');
}
