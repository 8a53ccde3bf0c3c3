// The `medstream` command as a user runs it: a real child process (`node --import tsx
// src/cli/main.ts ...`), for the CLI tests and the replica tests. `runMedstream(args)` resolves
// when the process exits, or, with `untilStdout`, as soon as its stdout matches (the process is
// then still running and the test stops it).

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface CliRun {
  /** The exit code; null while the process still runs (resolved by `untilStdout`). */
  code: number | null;
  stdout: string;
  stderr: string;
  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export interface CliOptions {
  /** The child's whole environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Resolve once stdout matches, leaving the process running. */
  untilStdout?: RegExp;
  /** Killed, and the promise rejected, if neither exit nor match comes in this time. */
  timeoutMs?: number;
}

export function runMedstream(args: string[], options: CliOptions = {}): Promise<CliRun> {
  const { env = process.env, untilStdout, timeoutMs = 60_000 } = options;
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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
    const run: CliRun = { code: null, stdout: '', stderr: '', stop };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`medstream ${args.join(' ')} did not finish: ${run.stdout} ${run.stderr}`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      run.stdout += d;
      if (untilStdout?.test(run.stdout)) {
        clearTimeout(timer);
        resolve(run);
      }
    });
    child.stderr.on('data', (d: Buffer) => (run.stderr += d));
    void exit.then((code) => {
      clearTimeout(timer);
      run.code = code;
      resolve(run);
    });
  });
}
