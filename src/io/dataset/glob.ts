/**
 * Shell-style glob patterns, enough for dataset paths:
 *   *        any characters except '/' (not a leading '.')
 *   ?        one character except '/'
 *   [abc]    one of the characters; [a-z] ranges; [!abc] or [^abc] negated
 *   {a,b}    one of the alternatives (may nest, may contain other wildcards)
 *   **       any number of whole path segments (as a segment of its own: a/ ** /b)
 * Files whose names start with '.' match only a pattern segment that starts
 * with '.', as in a shell.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

/** True when a string contains glob syntax. */
export function hasGlob(pattern: string): boolean {
  return /[*?[{]/.test(pattern);
}

/**
 * The folder a pattern's matches all lie under: the leading segments with no
 * glob syntax.
 *
 * Example: globRoot('data/imgs/ ** /*.png') -> 'data/imgs'; globRoot('*.jpg') -> '.'
 */
export function globRoot(pattern: string): string {
  const segments = pattern.replace(/\\/g, '/').split('/');
  const fixed: string[] = [];
  for (const s of segments.slice(0, -1)) {
    if (hasGlob(s)) break;
    fixed.push(s);
  }
  if (fixed.length === 0) return pattern.startsWith('/') ? '/' : '.';
  const root = fixed.join('/');
  return root === '' ? '/' : root;
}

/**
 * Compiles the part of a pattern below its root into a RegExp over
 * '/'-separated relative paths.
 *
 * Example: globToRegExp('**\/*.{jpg,png}') matches 'a/b/c.png' and 'c.jpg' but not 'c.gif'.
 */
export function globToRegExp(relPattern: string): RegExp {
  const segments = relPattern.split('/');
  let re = '';
  segments.forEach((seg, i) => {
    const last = i === segments.length - 1;
    if (seg === '**') {
      // zero or more whole segments, none starting with '.'
      re += last ? '(?:(?!\\.)[^/]*(?:/(?!\\.)[^/]*)*)?' : '(?:(?!\\.)[^/]*/)*';
      return;
    }
    const leadingDot = seg.startsWith('.');
    re += (leadingDot ? '' : '(?!\\.)') + segmentToRegExp(seg) + (last ? '' : '/');
  });
  return new RegExp(`^${re}$`);
}

function escapeChar(c: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c;
}

function segmentToRegExp(seg: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i];
    if (c === '*') {
      out += '[^/]*';
    } else if (c === '?') {
      out += '[^/]';
    } else if (c === '[') {
      const close = seg.indexOf(']', i + 2);
      if (close < 0) {
        out += '\\[';
        continue;
      }
      let body = seg.slice(i + 1, close);
      let neg = false;
      if (body.startsWith('!') || body.startsWith('^')) {
        neg = true;
        body = body.slice(1);
      }
      out += `[${neg ? '^/' : ''}${body.replace(/\\/g, '\\\\').replace(/\]/g, '\\]')}]`;
      i = close;
    } else if (c === '{') {
      depth++;
      out += '(?:';
    } else if (c === '}' && depth > 0) {
      depth--;
      out += ')';
    } else if (c === ',' && depth > 0) {
      out += '|';
    } else if (c === '\\' && i + 1 < seg.length) {
      out += escapeChar(seg[++i]);
    } else {
      out += escapeChar(c);
    }
  }
  while (depth-- > 0) out += ')';
  return out;
}

/**
 * Lists the regular files under `dir`, recursively, as '/'-separated paths
 * relative to `dir`, sorted. Symbolic links to files are followed; links to
 * folders are not (they could loop). `maxDepth` 1 lists only `dir` itself.
 */
export async function walkFiles(dir: string, maxDepth = Infinity): Promise<string[]> {
  const out: string[] = [];
  const visit = async (rel: string, depth: number): Promise<void> => {
    const entries = await fsp.readdir(rel === '' ? dir : path.join(dir, rel), { withFileTypes: true });
    for (const e of entries) {
      const r = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) {
        if (depth + 1 < maxDepth) await visit(r, depth + 1);
      } else if (e.isFile()) {
        out.push(r);
      } else if (e.isSymbolicLink()) {
        const st = await fsp.stat(path.join(dir, r)).catch(() => null);
        if (st?.isFile()) out.push(r);
      }
    }
  };
  await visit('', 0);
  return out.sort(compareKeys);
}

/** The one order used for keys everywhere: JavaScript string order (UTF-16 code units), not locale order. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Expands a glob pattern to the files it matches, relative to its root.
 *
 * Example: expandGlob('data/ ** /*.png') -> { root: 'data', files: ['a/1.png', 'b/2.png'] }
 */
export async function expandGlob(pattern: string): Promise<{ root: string; files: string[] }> {
  const norm = pattern.replace(/\\/g, '/');
  const root = globRoot(norm);
  let rel = norm;
  if (root !== '.' || norm.startsWith('./')) rel = norm.slice(root === '/' ? 1 : root.length + 1);
  const re = globToRegExp(rel);
  const exists = await fsp.stat(root).catch(() => null);
  if (!exists?.isDirectory()) return { root, files: [] };
  const depth = rel.split('/').includes('**') ? Infinity : rel.split('/').length;
  const files = (await walkFiles(root, depth)).filter((f) => re.test(f));
  return { root, files };
}
