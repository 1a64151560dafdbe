import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../..');
const tsx = path.join(root, 'node_modules/.bin/tsx');

/** Runs the CLI from source as a user would, and returns its exit code and output. */
function vtok(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(tsx, [path.join(root, 'src/cli/main.ts'), ...args], { env: { ...process.env, ...env }, cwd: root }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('vtok CLI', () => {
  it('info --json reports the backend in use and why faster ones were not used', async () => {
    const r = await vtok(['info', '--json'], { VTOK_BACKEND: 'cpu' });
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.backend).toBe('cpu');
    expect(info.threads).toBe(1);
    expect(info.reasons.join('\n')).toContain('VTOK_BACKEND');
  });

  it('info picks wasm with threads when nothing is asked for (tfjs-node cannot install here)', async () => {
    const r = await vtok(['info', '--json']);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    if (info.backend !== 'tensorflow') {
      expect(info.backend).toBe('wasm');
      expect(info.threads).toBeGreaterThanOrEqual(1);
      expect(info.reasons.some((s: string) => s.includes('tfjs-node'))).toBe(true);
    }
  });

  it('store commands work on an empty store and name a missing bundle', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'vtok-cli-'));
    const ls = await vtok(['store', 'ls', '--json', '--store', dir]);
    expect(ls.code).toBe(0);
    expect(JSON.parse(ls.stdout).stores[0].dir).toBe(dir);
    const show = await vtok(['store', 'show', 'nope', '--store', dir]);
    expect(show.code).toBe(2);
    expect(show.stderr).toContain('No bundle "nope"');
    expect(show.stderr).toContain('[STORE_NOT_FOUND]');
  });

  it('rejects an unknown command with help and exit code 2, and suggests a near one', async () => {
    const r = await vtok(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Unknown argument: frobnicate');
    const typo = await vtok(['tokenise']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('Did you mean tokenize?');
  });
});
