// The `medstream` command as a user runs it: a real child process.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Started extends Run {
  /** Sends SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
}

function medstream(args: string[], env: Record<string, string> = {}, untilStdout?: RegExp): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`medstream ${args.join(' ')} did not finish: ${stdout} ${stderr}`));
    }, 20_000);
    const exit = new Promise<number | null>((onExit) => child.on('exit', onExit));
    const stop = () => {
      child.kill('SIGTERM');
      return exit;
    };
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      if (untilStdout?.test(stdout)) {
        // Hand the running process to the test, which stops it.
        clearTimeout(timer);
        resolve({ code: null, stdout, stderr, stop });
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    void exit.then((code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, stop });
    });
  });
}

describe('medstream command', () => {
  it.each([
    [['--port', 'abc'], /medstream: --port: "abc" is not a port number/],
    [['serve', 'ftp://host/x'], /unknown scheme 'ftp:'/],
    [['serve', 's3://'], /names no bucket/],
    [['serve', '/definitely/not/here'], /storage root .* cannot be resolved/],
  ])('refuses %j with exit code 2 and a clear message', async (args, message) => {
    const run = await medstream(args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(message);
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('reads a bad value from the environment and names the variable', async () => {
    const run = await medstream([], { MEDSTREAM_PORT: 'abc' });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/MEDSTREAM_PORT: "abc"/);
  });

  it('prints help naming every option and its variable', async () => {
    const run = await medstream(['--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/--s3-force-path-style\s+MEDSTREAM_S3_FORCE_PATH_STYLE/);
  });

  it('check: lists the bundled samples and reads one', async () => {
    const run = await medstream(['check', '--list-slides', '--test-slide', 'CMU-1-Small-Region.svs']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/CMU-1-Small-Region\.svs\t1938955 bytes/);
    expect(run.stdout).toMatch(/read first 65536 bytes: ok/);
    expect(run.stdout).toMatch(/check: ok/);
  });

  it('check: a missing object fails with exit code 1 and says why', async () => {
    const run = await medstream(['check', '--test-slide', 'missing.svs']);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/open missing\.svs: FAILED — not_found/);
  });

  it('serve: starts on the samples, answers, and exits 0 on SIGTERM', async () => {
    const run = await medstream(['--port', '0', '--host', '127.0.0.1'], {}, /medstream listening/);
    const url = /"url":"([^"]+)"/.exec(run.stdout)?.[1];
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    await expect(run.stop()).resolves.toBe(0);
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  });
});
