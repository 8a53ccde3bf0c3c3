// The `medstream` command as a user runs it: a real child process.
import { describe, expect, it } from 'vitest';
import { runMedstream } from '../support/cli.js';

const medstream = (args: string[], env: Record<string, string> = {}, untilStdout?: RegExp) =>
  runMedstream(args, { env: { ...process.env, ...env }, untilStdout, timeoutMs: 20_000 });

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
