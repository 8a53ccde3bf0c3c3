// With several HTTP workers (serve --workers N), routes whose jobs and results live in one
// process answer a typed 409 in every worker instead of a 404 one time in N
// (server/process-local.ts): AI inference results, heat-map jobs and slides and segmentation
// jobs, unless Redis shares them. Slides and DICOMweb are unaffected.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/cli/config.js';
import { startServer, type RunningServer } from '../../src/cli/serve.js';
import { processLocalRefusal } from '../../src/server/process-local.js';
import { fixture } from '../support/fixtures.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';

describe('processLocalRefusal', () => {
  const two = { workers: 2, sharedJobs: false };
  it('refuses per-process AI and segmentation routes only with several workers', () => {
    for (const p of [
      '/ai/jobs/abc',
      '/ai/results/0b9f4a3e-0000-4000-8000-000000000000.png',
      '/ai/models/tissue/slides/a.svs/heatmap',
      '/slides/_derived%2Fai%2Fheatmaps%2Fx.tif/dzi',
      '/iiif/3/_derived%2fai%2fheatmaps%2fx.tif/info.json',
      '/segmentations',
      '/segmentations/abc/mask.nii.gz',
    ]) {
      expect(processLocalRefusal(p, two), p).toMatch(/--workers 1/);
      expect(processLocalRefusal(p, { workers: 1, sharedJobs: false }), p).toBeUndefined();
    }
    expect(processLocalRefusal('/segmentations/abc', { workers: 2, sharedJobs: true })).toBeUndefined();
    // With Redis, heat-map jobs and their pyramids and inference results are shared.
    const shared = { workers: 2, sharedJobs: true };
    for (const p of [
      '/ai/results/abc.png',
      '/ai/results/abc/slices/3.png',
      '/ai/jobs/abc',
      '/ai/jobs/abc/map.png',
      '/ai/models/m/slides/a.svs/heatmap',
      '/slides/_derived%2Fai%2Fheatmaps%2Fx.tif/tile/0/0/0',
    ])
      expect(processLocalRefusal(p, shared), p).toBeUndefined();
    for (const p of ['/ai/models', '/ai/models/tissue/infer', '/slides/a.svs/dzi', '/dicomweb/studies'])
      expect(processLocalRefusal(p, two), p).toBeUndefined();
  });
});

describe('a server started as one of two workers', () => {
  let server: RunningServer;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'medstream-process-local-'));
    const { config } = parseConfig(
      [fixture('wsi/openslide'), '--port', '0', '--host', '127.0.0.1', '--log-level', 'silent'],
      { MEDSTREAM_DATA_DIR: dataDir, MEDSTREAM_INDEX_AT_START: 'false' },
    );
    server = await startServer(config, { workers: 2 });
  });
  afterAll(async () => {
    await server?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('answers 409 with the reason on job routes, and serves everything else', async () => {
    for (const [method, url] of [
      ['GET', '/ai/jobs/0b9f4a3e-0000-4000-8000-000000000000'],
      ['GET', '/ai/results/0b9f4a3e-0000-4000-8000-000000000000.json'],
      ['POST', '/segmentations'],
    ] as const) {
      const res = await fetch(server.url + url, {
        method,
        headers: { 'content-type': 'application/json' },
        body: method === 'POST' ? '{}' : undefined,
      });
      expect(res.status, url).toBe(409);
      const body = (await res.json()) as { error: string; message: string };
      expect(body.error).toBe('conflict');
      expect(body.message).toMatch(/--workers 1/);
    }
    expect((await fetch(server.url + '/health')).status).toBe(200);
    expect((await fetch(server.url + '/ai/models')).status).toBe(200);
  });
});

describe('a server started as one of two workers, with Redis', () => {
  let server: RunningServer;
  let redis: TestRedis;
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'medstream-process-local-redis-'));
    redis = await startRedis();
    const { config } = parseConfig(
      [fixture('wsi/openslide'), '--port', '0', '--host', '127.0.0.1', '--log-level', 'silent'],
      { MEDSTREAM_DATA_DIR: dataDir, MEDSTREAM_INDEX_AT_START: 'false', MEDSTREAM_REDIS_URL: redis.url },
    );
    server = await startServer(config, { workers: 2 });
  });
  afterAll(async () => {
    await server?.close();
    await redis?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('answers inference results from Redis: an unknown one is 404, not 409', async () => {
    const res = await fetch(server.url + '/ai/results/0b9f4a3e-0000-4000-8000-000000000000.json');
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toBe('not_found');
  });
});
