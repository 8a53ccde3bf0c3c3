// The load generator of the `compare` suite: wrk (Debian package `wrk`), the same for every
// server, on 127.0.0.1, a fixed number of connections for a fixed duration, every connection
// cycling through a URL list (bench/peers/urls.lua).

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { findExecutable } from './procs.js';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('./urls.lua', import.meta.url));

export interface WrkResult {
  requests: number;
  seconds: number;
  bytes: number;
  /** Socket errors, non-2xx/3xx answers and timeouts, summed. */
  errors: number;
  non2xx: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

export async function findWrk(): Promise<string | undefined> {
  return findExecutable('wrk');
}

/** Runs wrk against `base` (`http://127.0.0.1:PORT`) over `urls` (paths). */
export async function wrk(
  binary: string,
  base: string,
  urls: string[],
  options: { connections: number; seconds: number; threads?: number; accept?: string },
): Promise<WrkResult> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-wrk-'));
  try {
    const list = path.join(dir, 'urls.txt');
    await writeFile(list, `${urls.join('\n')}\n`);
    const threads = Math.min(options.threads ?? 2, options.connections);
    const { stdout } = await run(
      binary,
      [
        `-t${threads}`,
        `-c${options.connections}`,
        `-d${options.seconds}s`,
        '--timeout',
        '10s',
        '-s',
        SCRIPT,
        base,
      ],
      { env: { ...process.env, WRK_URLS: list, WRK_ACCEPT: options.accept ?? '' }, maxBuffer: 1 << 20 },
    );
    const line = /WRK_JSON (\{.*\})/.exec(stdout);
    if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
    const r = JSON.parse(line[1]) as Record<string, number>;
    return {
      requests: r.requests,
      seconds: r.duration_us / 1e6,
      bytes: r.bytes,
      errors: r.connect + r.read + r.write + r.status + r.timeout,
      non2xx: r.status,
      p50Ms: r.p50_us / 1000,
      p90Ms: r.p90_us / 1000,
      p99Ms: r.p99_us / 1000,
      maxMs: r.max_us / 1000,
      meanMs: r.mean_us / 1000,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
