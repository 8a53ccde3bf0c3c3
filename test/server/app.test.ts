// The HTTP server built by `startServer` around each real storage backend: health, listing,
// error bodies, metrics.
import { mkdtemp, copyFile, mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/cli/config.js';
import { startServer, type RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { RangeServer } from '../support/range-server.js';
import { S3RVER_CREDENTIALS, startS3Server, type TestS3Server } from '../support/s3-server.js';
import { testServerDefaults } from '../support/server.js';

const SLIDES = ['wsi/openslide/boxes.tiff', 'wsi/openslide/small.svs', 'wsi/cog/cog.tif'];

/** A directory tree: two slides at the top, one in a folder, and a file that is not a slide. */
async function makeTree(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-app-'));
  await mkdir(path.join(dir, 'cases'));
  await copyFile(fixture(SLIDES[0]), path.join(dir, 'boxes.tiff'));
  await copyFile(fixture(SLIDES[1]), path.join(dir, 'small.svs'));
  await copyFile(fixture(SLIDES[2]), path.join(dir, 'cases', 'cog.tif'));
  await writeFile(path.join(dir, 'notes.txt'), 'not a slide');
  return dir;
}

async function get(server: RunningServer, url: string) {
  const res = await fetch(server.url + url);
  return { status: res.status, headers: res.headers, body: (await res.text()) as string };
}

describe.each(['local', 's3', 'http'] as const)('server on %s storage', (kind) => {
  let server: RunningServer;
  let s3: TestS3Server | undefined;
  let cleanup: (() => Promise<void>) | undefined;
  let http: RangeServer | undefined;

  beforeAll(async () => {
    const dir = await makeTree();
    let storage = dir;
    const flags: string[] = [];
    if (kind === 's3') {
      s3 = await startS3Server();
      await s3.createBucket('slides');
      for (const f of ['boxes.tiff', 'small.svs', 'cases/cog.tif', 'notes.txt']) {
        await s3.upload('slides', `lab/${f}`, path.join(dir, f));
      }
      storage = 's3://slides/lab';
      flags.push('--s3-endpoint', s3.endpoint, '--s3-force-path-style', '--s3-region', 'us-east-1');
    } else if (kind === 'http') {
      http = await RangeServer.start({ root: dir, autoindex: 'json' });
      storage = http.url;
    }
    // Credentials come from the standard AWS chain (here: the environment), as in production.
    const env = {
      AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
    };
    Object.assign(process.env, env);
    const defaults = await testServerDefaults(flags);
    cleanup = defaults.cleanup;
    const { config } = parseConfig(
      [storage, '--port', '0', '--host', '127.0.0.1', '--log-level', 'silent', ...defaults.flags],
      {},
    );
    server = await startServer(config);
  });

  afterAll(async () => {
    await server?.close();
    await cleanup?.();
    await s3?.close();
    await http?.close();
  });

  it('answers /health in WSIStreamer shape', async () => {
    const res = await get(server, '/health');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'healthy', version: expect.any(String) });
    expect(res.headers.get('x-request-id')).toMatch(/[0-9a-f-]{36}/);
  });

  it('lists slides and folders, not other files', async () => {
    const res = await get(server, '/slides');
    expect(res.status).toBe(200);
    const body = JSON.parse(res.body);
    expect(body.slides).toEqual(['boxes.tiff', 'small.svs']);
    expect(body.folders).toEqual(['cases/']);
    expect(body.next_cursor).toBeUndefined();
    const inFolder = JSON.parse((await get(server, '/slides?prefix=cases/')).body);
    expect(inFolder.slides).toEqual(['cases/cog.tif']);
  });

  it('paginates with limit and cursor', async () => {
    const first = JSON.parse((await get(server, '/slides?limit=1')).body);
    expect(first.slides).toHaveLength(1);
    expect(first.next_cursor).toEqual(expect.any(String));
    const second = JSON.parse(
      (await get(server, `/slides?limit=1&cursor=${encodeURIComponent(first.next_cursor)}`)).body,
    );
    expect(second.slides.length + second.folders.length).toBeGreaterThan(0);
    expect(second.slides).not.toContain(first.slides[0]);
  });

  it('filters by search', async () => {
    const body = JSON.parse((await get(server, '/slides?search=BOX')).body);
    expect(body.slides).toEqual(['boxes.tiff']);
  });

  it.each([
    ['/slides?limit=-1', 400, 'bad_request'],
    ['/slides?limit=abc', 400, 'bad_request'],
    ['/slides?prefix=../', 400, 'invalid_id'],
    ['/slides?prefix=%2e%2e/', 400, 'invalid_id'],
    ['/no/such/route', 404, 'not_found'],
  ])('%s → %i %s as JSON', async (url, status, error) => {
    const res = await get(server, url);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const body = JSON.parse(res.body);
    expect(body).toMatchObject({ error, status });
    expect(body.message).toEqual(expect.any(String));
    expect(res.body).not.toMatch(/at .*\.ts:\d+/); // no stack trace
  });

  it('exposes storage request counters in /metrics', async () => {
    await get(server, '/slides');
    const res = await get(server, '/metrics');
    expect(res.status).toBe(200);
    const listed = /medstream_storage_requests_total\{kind="list"\} (\d+)/.exec(res.body);
    expect(Number(listed?.[1])).toBeGreaterThan(0);
    expect(res.body).toMatch(
      /medstream_http_request_duration_seconds_count\{route="\/slides",method="GET",status="200"\} \d+/,
    );
    expect(res.body).toContain('medstream_block_cache_hits_total');
  });
});
