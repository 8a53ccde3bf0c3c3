// What the `inference` suite's benchmarks share (bench/inference.ts, bench/inference-heatmap.ts):
// their settings from the environment and a `medstream serve` child process with a models folder.

import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ServerProcess } from './tiles.js';

export const FIXTURES = path.resolve(fileURLToPath(new URL('../../shared/fixtures', import.meta.url)));
export const CLIENTS = (process.env.BENCH_AI_CLIENTS ?? '1,8,32').split(',').map(Number);
export const WAIT_MS = Number(process.env.BENCH_AI_WAIT_MS ?? 5);
export const THREADS = Number(process.env.BENCH_AI_THREADS ?? Math.min(os.availableParallelism(), 2));
export const MAX_BATCH = 32;

/** Starts `medstream serve` on `storage` with `modelsDir` (quiet logs); with its port for raw HTTP. */
export async function serve(
  storage: string,
  modelsDir: string,
  threads: number,
): Promise<{ process: ServerProcess; port: number }> {
  const started = await ServerProcess.start(
    storage,
    ['--models-dir', modelsDir, '--ai-threads', String(threads)],
    {},
    'warn',
  );
  return { process: started, port: Number(new URL(started.url).port) };
}
