// Heat-map jobs across two replicas sharing a real redis-server (--redis-url): replica A runs no
// jobs (--ai-heatmap-workers 0), so a job posted to A runs on B (B's model counts the runs, A's
// none); A answers the job's status, grid and map PNG, and serves the colour-mapped pyramid it
// never built through its slide routes (rebuilt from the grid in Redis), pixel for pixel the
// ramp colour of each cell; a job queued behind another is cancelled through A.

import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rampColour } from '../../src/ai/heatmap-pyramid.js';
import { parseConfig } from '../../src/cli/config.js';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';
import { metric, request, startTestServer, until } from '../support/server.js';
import { modelsDir, rednessModel } from './model-dir.js';

const SVS = 'svs/CMU-1-Small-Region.svs';
const TILE = 8;

let redis: TestRedis;
let a: RunningServer;
let b: RunningServer;
let models: Awaited<ReturnType<typeof modelsDir>>;

interface Job {
  id: string;
  state: string;
  columns: number;
  rows: number;
  background: number;
  done: number;
  worker?: string;
  values?: (number | null)[];
  map?: string;
  overlay?: { slide: string; cellPixels: number; width: number; height: number; tiles: string };
}

beforeAll(async () => {
  models = await modelsDir({ redness: rednessModel(TILE) });
  redis = await startRedis();
  const flags = ['--models-dir', models.dir, '--redis-url', redis.url];
  a = await startTestServer(fixture('wsi'), [...flags, '--ai-heatmap-workers', '0']);
  b = await startTestServer(fixture('wsi'), flags);
}, 60_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
  await redis?.stop();
  await models?.cleanup();
});

const post = (server: RunningServer, body: object) =>
  request(server, `/ai/models/redness/slides/${encodeURIComponent(SVS)}/heatmap`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

const runs = (server: RunningServer) => metric(server, 'medstream_ai_runs_total{model="redness"}');

describe('heat-map jobs across replicas', () => {
  it('runs a job posted to A on B, and A serves its status, map and pyramid', async () => {
    const started = await post(a, { mpp: 16, tileSize: TILE });
    expect(started.status).toBe(202);
    const id = (started.json() as Job).id;
    let job = started.json() as Job;
    await until(async () => {
      job = (await request(a, `/ai/jobs/${id}`)).json() as Job;
      return job.state !== 'queued' && job.state !== 'running';
    }, 30_000);
    expect(job.state).toBe('done');
    // B ran the model; A never did.
    expect(await runs(b)).toBeGreaterThan(0);
    expect((await request(a, '/metrics')).body.toString()).not.toMatch(
      /medstream_ai_runs_total\{model="redness"\} [1-9]/,
    );
    const values = job.values!;
    expect(values).toHaveLength(job.columns * job.rows);
    expect(job.done).toBe(values.filter((v) => v !== null).length);
    expect(job.background).toBe(values.filter((v) => v === null).length);
    expect(job.background).toBeGreaterThan(0);
    // B answers the same record.
    expect(((await request(b, `/ai/jobs/${id}`)).json() as Job).values).toEqual(values);

    // The map PNG, from A.
    const map = await request(a, job.map!);
    expect(map.status).toBe(200);
    const gray = await sharp(map.body).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
    expect([gray.info.width, gray.info.height]).toEqual([job.columns, job.rows]);
    expect([...gray.data]).toEqual(values.map((v) => (v === null ? 0 : Math.round(255 * v))));

    // The pyramid, through A's slide routes: tiles and the full-resolution region.
    const k = job.overlay!.cellPixels;
    const slide = encodeURIComponent(job.overlay!.slide);
    const meta = (await request(a, `/slides/${slide}`)).json() as { width: number; height: number };
    expect([meta.width, meta.height]).toEqual([job.columns * k, job.rows * k]);
    const dzi = await request(a, `/slides/${slide}/dzi`);
    expect(dzi.status).toBe(200);
    const raw = await request(
      a,
      `/slides/${slide}/region?x=0&y=0&width=${meta.width}&height=${meta.height}&level=0&format=raw`,
    );
    expect(raw.status).toBe(200);
    values.forEach((v, i) => {
      const c = i % job.columns;
      const r = Math.floor(i / job.columns);
      const o = ((r * k + (k >> 1)) * meta.width + c * k + (k >> 1)) * 3;
      expect([raw.body[o], raw.body[o + 1], raw.body[o + 2]], `cell ${i}`).toEqual(
        v === null ? [255, 255, 255] : rampColour(v),
      );
    });
    const tileUrl = job.overlay!.tiles.replace('{level}', '0').replace('{x}', '0').replace('{y}', '0');
    const tile = await request(a, tileUrl);
    expect(tile.status).toBe(200);
    expect(tile.headers.get('content-type')).toBe('image/png');
    // Both replicas build the same bytes: the same ETag.
    const tileB = await request(b, tileUrl);
    expect(tileB.headers.get('etag')).toBe(tile.headers.get('etag'));
  });

  it('cancels through A a job queued on B behind another', async () => {
    const first = (await post(a, { mpp: 4, tileSize: TILE, minTissue: 0 })).json() as Job;
    const second = (await post(a, { mpp: 4, tileSize: TILE, minTissue: 0 })).json() as Job;
    const del = await request(a, `/ai/jobs/${second.id}`, { method: 'DELETE' });
    expect([200, 202]).toContain(del.status);
    await until(
      async () => ((await request(b, `/ai/jobs/${second.id}`)).json() as Job).state === 'cancelled',
    );
    expect((await request(b, `/ai/jobs/${second.id}/map.png`)).status).toBe(404);
    // The first one is stopped too (through B), and the unknown answer 404 on both.
    await request(b, `/ai/jobs/${first.id}`, { method: 'DELETE' });
    await until(async () =>
      ['cancelled', 'done'].includes(((await request(a, `/ai/jobs/${first.id}`)).json() as Job).state),
    );
    for (const s of [a, b])
      expect((await request(s, '/ai/jobs/0b9f4a3e-0000-4000-8000-000000000000')).status).toBe(404);
  });

  it('refuses --ai-heatmap-workers 0 without Redis (no replica would run the jobs)', () => {
    expect(() => parseConfig(['/tmp', '--ai-heatmap-workers', '0'], {})).toThrow(/needs --redis-url/);
  });
});
