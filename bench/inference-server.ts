// What the `inference` suite's benchmarks share (bench/inference.ts, bench/inference-heatmap.ts):
// their settings from the environment, a `medstream serve` child process with a models folder,
// and CPU accounting from /proc (the server's tree, and what the rest of the machine used).

import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ServerProcess } from './tiles.js';

export const FIXTURES = path.resolve(fileURLToPath(new URL('../../shared/fixtures', import.meta.url)));
/** BENCH_AI_GOAL=1: only the goal's configuration (conv32 at 32 clients), more and shorter rounds. */
export const GOAL_ONLY = process.env.BENCH_AI_GOAL === '1';
export const CLIENTS = (process.env.BENCH_AI_CLIENTS ?? (GOAL_ONLY ? '32' : '1,8,32')).split(',').map(Number);
/** Rounds and seconds per run: BENCH_ROUNDS / BENCH_DURATION, else 7 x 3 s (goal) or 3 x 6 s. */
export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (GOAL_ONLY ? 7 : 3));
export const DURATION_S = Number(process.env.BENCH_DURATION ?? (GOAL_ONLY ? 3 : 6));
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

/**
 * CPU seconds the whole machine has been busy so far (every core: user, nice, system, irq,
 * softirq, steal; /proc/stat), undefined off Linux. Minus the server's and the bench's own CPU,
 * what other work took from the cores during a run: the noise a run should be read against.
 */
export async function machineBusySeconds(): Promise<number | undefined> {
  const { readFile } = await import('node:fs/promises');
  try {
    const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0];
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return (user + nice + system + irq + softirq + (steal || 0)) / 100;
  } catch {
    return undefined;
  }
}

/** This process's CPU seconds so far (the load generator). */
export function ownCpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/**
 * CPU seconds (user + system) used so far by process `pid` and its descendants (the `tsx`
 * wrapper's node child is the server): Linux /proc only, undefined elsewhere. Unlike requests/s,
 * CPU per request barely moves when other work shares the cores.
 */
export async function treeCpuSeconds(pid: number): Promise<number | undefined> {
  const { readdir, readFile } = await import('node:fs/promises');
  let entries: string[];
  try {
    entries = (await readdir('/proc')).filter((e) => /^\d+$/.test(e));
  } catch {
    return undefined;
  }
  const stats = new Map<number, { ppid: number; ticks: number }>();
  await Promise.all(
    entries.map(async (e) => {
      try {
        const text = await readFile(`/proc/${e}/stat`, 'utf8');
        // Fields after the command (which may hold spaces) start at ") ".
        const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
        stats.set(Number(e), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
      } catch {
        // Gone meanwhile.
      }
    }),
  );
  if (!stats.has(pid)) return undefined;
  let ticks = 0;
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    ticks += stats.get(p)?.ticks ?? 0;
    for (const [child, s] of stats) if (s.ppid === p) todo.push(child);
  }
  // USER_HZ is 100 on Linux.
  return ticks / 100;
}
