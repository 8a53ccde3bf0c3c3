// A MedStream server as a user runs it, in its own process: `medstream serve <storage> ...` via
// tsx on 127.0.0.1 with a free port. Resolves once the server logs that it listens (its URL is
// taken from that line); `stop()` sends SIGTERM and waits for the exit. For tests about
// separate replicas, which must share nothing but what they share in production.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface ServerProcess {
  url: string;
  pid: number;
  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export function startServerProcess(
  storage: string,
  flags: string[] = [],
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      MAIN,
      'serve',
      storage,
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--log-level',
      'info',
      ...flags,
    ],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exit = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const stop = async () => {
    if (child.exitCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const code = await exit;
    clearTimeout(timer);
    return code;
  };
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`medstream serve did not start in 30 s:\n${output}`));
    }, 30_000);
    child.stderr.on('data', (d: Buffer) => (output += d));
    // Every line is read (the pipe must not fill up); the first "listening" line carries the URL.
    let started = false;
    child.stdout.on('data', (d: Buffer) => {
      if (started) return;
      output += d;
      const line = output.split('\n').find((l) => l.includes('"medstream listening"'));
      if (!line) return;
      started = true;
      clearTimeout(timer);
      resolve({ url: (JSON.parse(line) as { url: string }).url, pid: child.pid!, stop });
    });
    void exit.then((code) => {
      clearTimeout(timer);
      if (!started) reject(new Error(`medstream serve exited with ${code}:\n${output}`));
    });
  });
}
