// `medstream serve --log-async` as a user runs it: the log goes to stdout asynchronously and
// batched, yet every access-log line arrives (answers from the cached-image fast path and from
// Fastify alike, one per response) and the lines still queued are written when SIGTERM stops the
// server. Off by default (synchronous, as before). Also `--access-log-sample N`: one line in N
// responses, counted across both paths.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/cli/config.js';
import { runMedstream } from '../support/cli.js';
import { fixture } from '../support/fixtures.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-log-async-'));
  await copyFile(fixture('wsi/svs/CMU-1-Small-Region.svs'), path.join(dir, 'CMU.svs'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function lines(stdout: string, msg: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

/** `medstream serve` on the copied slide with `flags`, started and listening. */
async function serve(
  flags: string[],
): Promise<{ run: Awaited<ReturnType<typeof runMedstream>>; dataDir: string }> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'medstream-log-data-'));
  const args = [
    'serve',
    dir,
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    '--data-dir',
    dataDir,
    '--no-index-at-start',
  ];
  const run = await runMedstream([...args, ...flags], {
    untilStdout: /medstream listening/,
    timeoutMs: 60_000,
  });
  return { run, dataDir };
}

describe('--log-async', () => {
  it('is off by default and read from the flag and the environment', () => {
    expect(parseConfig([dir], {}).config.logAsync).toBe(false);
    expect(parseConfig([dir, '--log-async'], {}).config.logAsync).toBe(true);
    expect(parseConfig([dir], { MEDSTREAM_LOG_ASYNC: 'true' }).config.logAsync).toBe(true);
  });

  it('writes one access-log line per response, the queued ones on exit', async () => {
    const { run, dataDir } = await serve(['--log-async']);
    try {
      const url = lines(run.stdout, 'medstream listening')[0].url as string;
      const tile = `${url}/tiles/CMU.svs/0/0/0.jpg?case=log`;
      const ids: string[] = [];
      // The first through Fastify, the rest from the fast path; then a 404.
      for (let i = 0; i < 40; i++) {
        const res = await fetch(tile, { headers: { 'x-request-id': `async-${i}` } });
        expect(res.status).toBe(200);
        await res.arrayBuffer();
        ids.push(`async-${i}`);
      }
      expect((await fetch(`${url}/tiles/nothing.svs/0/0/0.jpg`)).status).toBe(404);
      expect(await run.stop()).toBe(0);
      const logged = lines(run.stdout, 'request completed');
      expect(logged.map((l) => l.reqId).slice(0, 40)).toEqual(ids);
      expect(logged.filter((l) => l.fastPath === true).length).toBeGreaterThanOrEqual(30);
      expect(logged).toHaveLength(41);
      expect(logged[40]).toMatchObject({ res: { statusCode: 404 } });
      expect(lines(run.stdout, 'draining requests in flight')).toHaveLength(1);
    } finally {
      await run.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('--access-log-sample 4 writes one line in four responses, fast path and Fastify together', async () => {
    expect(parseConfig([dir], {}).config.accessLogSample).toBe(1);
    expect(() => parseConfig([dir, '--access-log-sample', '0'], {})).toThrow(/access-log-sample/);
    const { run, dataDir } = await serve(['--access-log-sample', '4']);
    try {
      const url = lines(run.stdout, 'medstream listening')[0].url as string;
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${url}/tiles/CMU.svs/0/0/0.jpg?case=sample`, {
          headers: { 'x-request-id': `sample-${i}` },
        });
        expect(res.status).toBe(200);
        expect(res.headers.get('x-request-id')).toBe(`sample-${i}`); // ids do not depend on it
        await res.arrayBuffer();
      }
      expect(await run.stop()).toBe(0);
      const logged = lines(run.stdout, 'request completed');
      expect(logged.map((l) => l.reqId)).toEqual(
        [3, 7, 11, 15, 19, 23, 27, 31, 35, 39].map((i) => `sample-${i}`),
      );
      expect(logged.some((l) => l.fastPath === true)).toBe(true);
    } finally {
      await run.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);
});
