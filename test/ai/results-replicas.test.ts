// Radiology inference results across two replicas: two real `medstream serve` processes sharing a
// real redis-server (--redis-url), each with its own catalog and memory, auth on. A series
// segmentation made on A, a heat map made on B and a one-frame mask made on A are served by both,
// byte for byte: the description, every slice PNG, the NIfTI and the DICOM SEG. The study a
// result remembers travels with it (a token of another study is refused on the other replica
// too); unknown ids are 404 on both. Each file has one ETag on both replicas, and 304 when the
// client holds it.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUrl } from '../../src/server/auth.js';
import { issueDicomwebToken } from '../../src/server/dicomweb-auth.js';
import { pointwiseConvSigmoid } from '../support/onnx-writer.js';
import { writePhantomSeries, type PhantomSeries } from '../support/phantom-series.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';
import { request } from '../support/server.js';
import { startServerProcess, type ServerProcess } from '../support/server-process.js';
import { modelsDir } from './model-dir.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const SIZE = 48;

let dir: string;
let redis: TestRedis;
let a: ServerProcess;
let b: ServerProcess;
let models: Awaited<ReturnType<typeof modelsDir>>;
let ct: PhantomSeries;

const now = () => Math.floor(Date.now() / 1000);
const tokenFor = (studies: string[]) => issueDicomwebToken(SECRET, { expiresAt: now() + 600, studies });
let auth: { Authorization: string };

const get = (server: ServerProcess, url: string, headers: Record<string, string> = auth) =>
  request(server, url, { headers });

function infer(server: ServerProcess, model: string, body: object) {
  return request(server, `/ai/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...auth },
    body: JSON.stringify(body),
  });
}

/** GETs `url` from both replicas: both 200, the same bytes; returns them. */
async function sameFromBoth(url: string): Promise<Buffer> {
  const [fromA, fromB] = [await get(a, url), await get(b, url)];
  expect(fromA.status, `A ${url}`).toBe(200);
  expect(fromB.status, `B ${url}`).toBe(200);
  expect(fromB.body.equals(fromA.body), url).toBe(true);
  return fromA.body;
}

async function startReplica(name: string): Promise<ServerProcess> {
  const server = await startServerProcess(
    path.join(dir, 'store'),
    [
      '--models-dir',
      models.dir,
      '--redis-url',
      redis.url,
      '--index-interval',
      '0',
      '--auth-enabled',
      '--auth-secret',
      SECRET,
    ],
    { ...process.env, MEDSTREAM_DATA_DIR: path.join(dir, name), MEDSTREAM_INDEX_AT_START: 'false' },
  );
  const reindex = signUrl({ path: '/admin/reindex', query: 'wait=true', exp: now() + 300, secret: SECRET });
  const res = await request(server, reindex.pathAndQuery, { method: 'POST' });
  if (res.status !== 200) throw new Error(`indexing failed: ${res.status} ${res.body.toString()}`);
  return server;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ai-results-replicas-'));
  ct = await writePhantomSeries(path.join(dir, 'store', 'ct'));
  auth = { Authorization: `Bearer ${tokenFor([ct.studyUid])}` };
  const input = { name: 'image', width: SIZE, height: SIZE, channels: 1 };
  models = await modelsDir({
    // HU ≥ 0 is foreground: the phantom's soft-tissue ellipsoid in fat.
    seg: {
      onnx: pointwiseConvSigmoid({ channels: 1, size: SIZE, weights: [1], bias: -0.5 }),
      json: {
        task: 'segmentation',
        input,
        preprocess: { scaling: { type: 'window', center: 0, width: 200 } },
        labels: ['background', 'tissue'],
        output: { name: 'map', activation: 'none' },
      },
    },
    heat: {
      onnx: pointwiseConvSigmoid({ channels: 1, size: SIZE, weights: [4], bias: -2 }),
      json: {
        task: 'heatmap',
        input,
        preprocess: { scaling: { type: 'window', center: 0, width: 400 } },
        output: { name: 'map', activation: 'none' },
      },
    },
  });
  redis = await startRedis();
  [a, b] = await Promise.all([startReplica('a'), startReplica('b')]);
}, 120_000);

afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await redis?.stop();
  await models?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface SeriesAnswer {
  fractions?: { label: string; fraction: number }[];
  result: {
    id: string;
    slices: { slice: number; instance: string; png: string }[];
    nifti: string;
    seg?: { class: number; url: string }[];
  };
}

describe('inference results across replicas (Redis)', () => {
  it('serves a series segmentation made on A from B, byte for byte', async () => {
    const res = await infer(a, 'seg', { study: ct.studyUid, series: ct.seriesUid });
    expect(res.status).toBe(200);
    const answer = res.json() as SeriesAnswer;
    const { id, slices, nifti, seg } = answer.result;
    expect(slices).toHaveLength(ct.dims[2]);

    const info = JSON.parse((await sameFromBoth(`/ai/results/${id}.json`)).toString()) as {
      task: string;
      slices: { instance: string }[];
    };
    expect(info.task).toBe('segmentation');
    expect(info.slices.map((s) => s.instance)).toEqual(slices.map((s) => s.instance));
    for (const s of slices) await sameFromBoth(s.png);

    // The NIfTI's voxels are the mask the answer's fractions describe (the phantom's ellipsoid).
    const nii = gunzipSync(await sameFromBoth(nifti));
    const voxels = nii.subarray(nii.readFloatLE(108));
    expect(voxels.length).toBe(ct.dims[0] * ct.dims[1] * ct.dims[2]);
    const inside = voxels.reduce((n, v) => n + v, 0);
    const truth = ct.truth.reduce((n, v) => n + v, 0);
    expect(inside / voxels.length).toBeCloseTo(answer.fractions![1].fraction, 10);
    expect(Math.abs(inside - truth) / truth).toBeLessThan(0.2);
    // The whole volume in one request (the viewer's MPR overlay), gzipped or not: the same voxels.
    expect((await sameFromBoth(`/ai/results/${id}.raw`)).equals(voxels)).toBe(true);
    const plain = await request(b, `/ai/results/${id}.raw`, {
      headers: { ...auth, 'accept-encoding': 'identity' },
    });
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(plain.body.equals(voxels)).toBe(true);
    const gzipped = await request(a, `/ai/results/${id}.raw`, {
      headers: { ...auth, 'accept-encoding': 'gzip' },
    });
    expect(gzipped.headers.get('content-encoding')).toBe('gzip');

    // The SEG's UIDs and ContentDate belong to the result: the same bytes from both replicas
    // and on a second request (storing it twice gives one instance).
    expect(seg).toHaveLength(1);
    const segBytes = await sameFromBoth(seg![0].url);
    expect(segBytes.subarray(128, 132).toString('latin1')).toBe('DICM');
    expect((await get(a, seg![0].url)).body.equals(segBytes)).toBe(true);
  }, 60_000);

  it('tags each result file with one ETag on both replicas, and answers 304 to it', async () => {
    const res = await infer(a, 'seg', { study: ct.studyUid, series: ct.seriesUid });
    const { id, slices, nifti, seg } = (res.json() as SeriesAnswer).result;
    const gz = { ...auth, 'accept-encoding': 'gzip' };
    const plain = { ...auth, 'accept-encoding': 'identity' };
    const cases: [string, Record<string, string>][] = [
      [`/ai/results/${id}.json`, auth],
      [slices[3].png, auth],
      [nifti, auth],
      [seg![0].url, auth],
      [`/ai/results/${id}.raw`, gz],
      [`/ai/results/${id}.raw`, plain],
    ];
    const tags = new Set<string>();
    for (const [url, headers] of cases) {
      const [fromA, fromB] = [await get(a, url, headers), await get(b, url, headers)];
      const etag = fromA.headers.get('etag');
      expect(etag, url).toMatch(/^(W\/)?"[^"]+"$/);
      expect(fromB.headers.get('etag'), url).toBe(etag);
      tags.add(etag!);
      // The client holds it: 304, no body, from the replica that did not make it too.
      const held = await get(b, url, { ...headers, 'if-none-match': etag! });
      expect(held.status, url).toBe(304);
      expect(held.body.length).toBe(0);
      expect((await get(b, url, { ...headers, 'if-none-match': '"other", ' + etag! })).status).toBe(304);
      expect((await get(a, url, { ...headers, 'if-none-match': '"other"' })).status).toBe(200);
    }
    // One tag per representation: the gzipped and the plain voxels differ.
    expect(tags.size).toBe(cases.length);
    const gzTag = (await get(a, `/ai/results/${id}.raw`, gz)).headers.get('etag')!;
    const asPlain = await get(a, `/ai/results/${id}.raw`, { ...plain, 'if-none-match': gzTag });
    expect(asPlain.status).toBe(200);
    expect(asPlain.body.length).toBe(ct.dims[0] * ct.dims[1] * ct.dims[2]);
    // Access is checked before the tag: another study's token gets 403, never 304.
    const other = { Authorization: `Bearer ${tokenFor(['1.2.3.4'])}`, 'if-none-match': gzTag };
    expect((await get(b, `/ai/results/${id}.raw`, { ...other, 'accept-encoding': 'gzip' })).status).toBe(403);
    const unknown = '/ai/results/0b9f4a3e-0000-4000-8000-000000000000.raw';
    expect((await get(a, unknown, { ...gz, 'if-none-match': '*' })).status).toBe(404);
  }, 60_000);

  it('serves a heat map made on B, and a one-frame mask made on A, from the other replica', async () => {
    const heat = await infer(b, 'heat', { study: ct.studyUid, series: ct.seriesUid });
    expect(heat.status).toBe(200);
    const { id, slices } = (heat.json() as SeriesAnswer).result;
    await sameFromBoth(`/ai/results/${id}.json`);
    const middle = await sameFromBoth(slices[ct.keySlice].png);
    expect(middle.subarray(1, 4).toString('latin1')).toBe('PNG');

    const frame = await infer(a, 'seg', {
      study: ct.studyUid,
      series: ct.seriesUid,
      instance: ct.sopUids[ct.keySlice],
    });
    expect(frame.status).toBe(200);
    await sameFromBoth((frame.json() as { result: { mask: string } }).result.mask);
  }, 60_000);

  it('keeps the result to its study on every replica, and answers 404 for an unknown id', async () => {
    const res = await infer(a, 'seg', {
      study: ct.studyUid,
      series: ct.seriesUid,
      instance: ct.sopUids[0],
    });
    const url = (res.json() as { result: { mask: string } }).result.mask;
    const other = { Authorization: `Bearer ${tokenFor(['1.2.3.4'])}` };
    const refused = await get(b, url, other);
    expect(refused.status).toBe(403);
    expect((refused.json() as { error: string }).error).toBe('access_denied');
    expect((await get(b, url, {})).status).toBe(401);
    for (const server of [a, b]) {
      const missing = await get(server, '/ai/results/0b9f4a3e-0000-4000-8000-000000000000.json');
      expect(missing.status).toBe(404);
      expect((missing.json() as { error: string }).error).toBe('not_found');
    }
  }, 30_000);
});
