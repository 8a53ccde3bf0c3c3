// What the `inference` suite's benchmarks share (bench/inference.ts, bench/inference-heatmap.ts):
// their settings from the environment and a `medstream serve` child process with a models folder.

import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, untilListening } from './peers/procs.js';

const MAIN = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
export const FIXTURES = path.resolve(fileURLToPath(new URL('../../shared/fixtures', import.meta.url)));
export const CLIENTS = (process.env.BENCH_AI_CLIENTS ?? '1,8,32').split(',').map(Number);
export const WAIT_MS = Number(process.env.BENCH_AI_WAIT_MS ?? 5);
export const THREADS = Number(process.env.BENCH_AI_THREADS ?? Math.min(os.availableParallelism(), 2));
export const MAX_BATCH = 32;

/** Starts `medstream serve` on `storage` with `modelsDir`; resolves with the child and its port. */
export async function serve(
  storage: string,
  modelsDir: string,
  threads: number,
): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      MAIN,
      'serve',
      storage,
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--log-level',
      'warn',
      '--models-dir',
      modelsDir,
      '--ai-threads',
      String(threads),
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  await untilListening(child, port, 'medstream serve');
  return { child, port };
}
