/**
 * Finds a Python interpreter that can import a module (e.g. torch for the
 * PyTorch comparison rows). `python3` on PATH first, then Debian's
 * /usr/bin/python3 (where apt's python3-torch installs, which a pyenv or venv
 * python3 on PATH does not see).
 */
import { spawnSync } from 'node:child_process';

const CANDIDATES = ['python3', '/usr/bin/python3', 'python'];

/** The first interpreter that imports `module`, with the module's version, or undefined. */
export function findPythonWith(module: string): { python: string; version: string } | undefined {
  for (const python of CANDIDATES) {
    const r = spawnSync(python, ['-c', `import ${module}; print(getattr(${module}, '__version__', '?'))`], { encoding: 'utf8', timeout: 60000 });
    if (r.status === 0) return { python, version: r.stdout.trim() };
  }
  return undefined;
}
