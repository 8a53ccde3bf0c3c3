// Segmentation jobs across two replicas sharing a real redis-server (--redis-url): replica A runs
// no jobs (--segment-workers 0), so a job submitted to A runs on B; A answers its status and
// serves its mask and SEG from Redis; an identical request to B joins A's job; the SEG B stored
// is listed by A's QIDO once A has indexed the storage.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { diceOf } from '../segment/phantom.js';
import { writePhantomSeries, type PhantomSeries } from '../support/phantom-series.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';
import { metric, request, startIndexedServer, until } from '../support/server.js';
import { gunzipSync } from 'node:zlib';

const dir = mkdtempSync(path.join(tmpdir(), 'medstream-segrep-'));
let redis: TestRedis;
let a: RunningServer;
let b: RunningServer;
let ct: PhantomSeries;

const post = (server: RunningServer, body: unknown) =>
  request(server, '/segmentations', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });

beforeAll(async () => {
  ct = await writePhantomSeries(path.join(dir, 'store', 'phantom'));
  redis = await startRedis();
  a = await startIndexedServer(path.join(dir, 'store'), ['--redis-url', redis.url, '--segment-workers', '0']);
  b = await startIndexedServer(path.join(dir, 'store'), ['--redis-url', redis.url]);
}, 60_000);
afterAll(async () => {
  await a?.close();
  await b?.close();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('segmentation jobs across replicas', () => {
  it('runs a job submitted to A on B, and A answers its status and files', async () => {
    const body = { series: ct.seriesUid, slice: ct.keySlice, box: ct.box, label: 'lesion' };
    const res = await post(a, body);
    expect(res.status).toBe(202);
    const id = (res.json() as { id: string }).id;
    let job: { state: string; worker?: string; result?: { stored?: { seriesUid: string } } } = { state: '' };
    await until(async () => {
      job = (await request(a, `/segmentations/${id}`)).json() as typeof job;
      return job.state === 'done' || job.state === 'failed';
    }, 20_000);
    expect(job.state).toBe('done');
    // A runs nothing: B did the work (its metrics count the slices, A's do not).
    expect(await metric(b, 'medstream_segmentation_slice_seconds_count{engine="classical"}')).toBeGreaterThan(
      5,
    );
    const aMetrics = (await request(a, '/metrics')).body.toString();
    expect(aMetrics).not.toMatch(/medstream_segmentation_slice_seconds_count\{engine="classical"\}/);
    expect(job.worker).toBeDefined();

    const mask = await request(a, `/segmentations/${id}/mask.nii.gz`);
    expect(mask.status).toBe(200);
    const nii = gunzipSync(mask.body);
    expect(diceOf(new Uint8Array(nii.subarray(nii.readFloatLE(108))), ct.truth)).toBeGreaterThan(0.85);
    const seg = await request(a, `/segmentations/${id}/seg.dcm`);
    expect(seg.status).toBe(200);
    expect(seg.body.subarray(128, 132).toString()).toBe('DICM');

    // The identical request on B is A's job.
    const same = await post(b, body);
    expect(same.status).toBe(200);
    expect((same.json() as { id: string }).id).toBe(id);

    // B stored the SEG; A lists it once it has indexed the storage.
    expect((await request(a, '/admin/reindex?wait=true', { method: 'POST' })).status).toBe(200);
    const series = (
      await request(a, `/dicomweb/studies/${ct.studyUid}/series?Modality=SEG`)
    ).json() as Record<string, { Value?: unknown[] }>[];
    expect(series.map((s) => s['0020000E']?.Value?.[0])).toContain(job.result!.stored!.seriesUid);
  });

  it('cancels through A a job queued for B', async () => {
    const first = await post(a, { series: ct.seriesUid, slice: 6, box: ct.box, store: false });
    const second = await post(a, { series: ct.seriesUid, slice: 8, box: ct.box, store: false });
    const id = (second.json() as { id: string }).id;
    const del = await request(a, `/segmentations/${id}`, { method: 'DELETE' });
    expect([200, 202]).toContain(del.status);
    await until(async () =>
      ['cancelled', 'done', 'failed'].includes(
        ((await request(b, `/segmentations/${id}`)).json() as { state: string }).state,
      ),
    );
    const state = ((await request(b, `/segmentations/${id}`)).json() as { state: string }).state;
    // Queued: cancelled at once; if B had already started it, it stops between slices or finishes.
    expect(['cancelled', 'done']).toContain(state);
    const firstId = (first.json() as { id: string }).id;
    await until(
      async () =>
        ((await request(b, `/segmentations/${firstId}`)).json() as { state: string }).state === 'done',
    );
    expect(await metric(a, 'medstream_segmentation_queue_depth')).toBe(0);
  });
});
