import type { CommandModule } from 'yargs';
import { initBackend, shutdownBackend } from '../../engine/backend';
import type { BackendInfo } from '../../engine/backend';
import { printResult, type GlobalArgs } from '../output';

interface InfoArgs extends GlobalArgs {
  backend?: 'tensorflow' | 'wasm' | 'cpu';
  threads?: number;
}

/** `vtok info`: the backend in use, its threads and versions, and why a faster one was not used. */
export const infoCommand: CommandModule<object, InfoArgs> = {
  command: 'info',
  describe: 'Show the TensorFlow.js backend vtok uses here, its threads, versions, and why a faster one was not used',
  builder: (y) => y.example('$0 info --json', 'machine-readable').example('$0 info --backend cpu', 'check a specific backend') as never,
  handler: async (args) => {
    const info = await initBackend({ backend: args.backend, threads: args.threads, warn: () => undefined });
    try {
      printResult(args, info, () => formatInfo(info));
    } finally {
      await shutdownBackend();
    }
  },
};

export function formatInfo(info: BackendInfo): string {
  const lines = [
    `backend   ${info.backend}`,
    `threads   ${info.threads}`,
    `simd      ${info.simd}`,
    `tfjs      ${info.tfjsVersion}`,
    ...Object.entries(info.versions).map(([k, v]) => `${k.padEnd(9)} ${v}`),
  ];
  if (info.kernels.length) lines.push(`kernels   vtok registers: ${info.kernels.join(', ')}`);
  for (const r of info.reasons) lines.push(`note      ${r}`);
  return lines.join('\n');
}
