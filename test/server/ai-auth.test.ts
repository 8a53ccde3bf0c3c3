// /ai/ access with --auth-enabled: radiology inference takes a DICOMweb token (`medstream sign
// --dicomweb --study`) and reaches only the token's studies; its results only with a token that
// could read the study, or a URL signed with that `study`; a signed infer URL names its study;
// whole-slide inference and its results keep taking signed URLs (and refuse DICOMweb tokens).

import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { issueDicomwebToken } from '../../src/server/dicomweb-auth.js';
import { signUrl } from '../../src/server/auth.js';
import { modelsDir } from '../ai/model-dir.js';
import { fixture } from '../support/fixtures.js';
import { pointwiseConvSigmoid } from '../support/onnx-writer.js';
import { instancesOf, STUDIES, writeStudies } from '../support/radiology-studies.js';
import { request, startTestServer } from '../support/server.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const A = STUDIES[2];
const B = STUDIES[0];
const SVS = 'svs/CMU-1-Small-Region.svs';

let dir: string;
let server: RunningServer;
let models: Awaited<ReturnType<typeof modelsDir>>;

const now = () => Math.floor(Date.now() / 1000);
const token = (studies?: string[], expiresAt = now() + 300) =>
  issueDicomwebToken(SECRET, { expiresAt, studies });
const signed = (p: string, query?: string) =>
  signUrl({ path: p, query, exp: now() + 300, secret: SECRET }).pathAndQuery;
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

/** The first instance of a study, as an infer body. */
function instanceOf(study: (typeof STUDIES)[number]) {
  const i = instancesOf(study)[0];
  return { study: study.uid, series: i.seriesUid, instance: i.sopUid };
}

function infer(url: string, body: object, headers: Record<string, string> = {}) {
  return request(server, url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

function errorOf(res: { body: Buffer }): { error: string; message: string } {
  return JSON.parse(res.body.toString()) as { error: string; message: string };
}

/** A segmentation of study A's instance made with a token scoped to A: its mask's URL. */
async function maskOfA(): Promise<string> {
  const res = await infer('/ai/models/seg/infer', instanceOf(A), bearer(token([A.uid])));
  expect(res.status).toBe(200);
  const mask = (res.json() as { result: { mask: string } }).result.mask;
  expect(mask).toMatch(/^\/ai\/results\/[0-9a-f-]{36}\.png$/);
  return mask;
}

/** A 4x3x2 int16 NIfTI-1 volume with an sform: the catalog indexes it as a study of its own. */
function niftiVolume(): Buffer {
  const header = Buffer.alloc(352);
  header.writeInt32LE(348, 0);
  [3, 4, 3, 2, 1, 1, 1, 1].forEach((d, i) => header.writeInt16LE(d, 40 + 2 * i));
  header.writeInt16LE(4, 70);
  header.writeInt16LE(16, 72);
  [1, 2, 2, 3, 1, 0, 0, 0].forEach((p, i) => header.writeFloatLE(p, 76 + 4 * i));
  header.writeFloatLE(352, 108);
  header.writeFloatLE(1, 112);
  header.writeInt16LE(1, 254);
  [2, 0, 0, -10, 0, 2, 0, 5, 0, 0, 3, 7].forEach((v, i) => header.writeFloatLE(v, 280 + 4 * i));
  header.write('n+1\0', 344, 'latin1');
  const data = Buffer.alloc(48);
  for (let v = 0; v < 24; v++) data.writeInt16LE(v * 50 - 400, 2 * v);
  return gzipSync(Buffer.concat([header, data]));
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'ai-auth-'));
  const store = path.join(dir, 'store');
  await writeStudies(path.join(store, 'studies'), [A, B]);
  await mkdir(path.join(store, 'svs'));
  await cp(fixture(`wsi/${SVS}`), path.join(store, SVS));
  await mkdir(path.join(store, 'nifti'));
  await writeFile(path.join(store, 'nifti', 'vol.nii.gz'), niftiVolume());
  models = await modelsDir({
    seg: {
      onnx: pointwiseConvSigmoid({ channels: 1, size: 4, weights: [1], bias: -0.5 }),
      json: {
        task: 'segmentation',
        input: { name: 'image', width: 4, height: 4, channels: 1 },
        preprocess: { scaling: { type: 'window', center: 0, width: 200 } },
        labels: ['background', 'dense'],
        output: { name: 'map', activation: 'none' },
      },
    },
  });
  server = await startTestServer(store, [
    '--index-interval',
    '0',
    '--models-dir',
    models.dir,
    '--auth-enabled',
    '--auth-secret',
    SECRET,
  ]);
  const reindex = await request(server, signed('/admin/reindex', 'wait=true'), { method: 'POST' });
  expect(reindex.status).toBe(200);
});

afterAll(async () => {
  await server?.close();
  await models?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('radiology inference with DICOMweb tokens', () => {
  it('needs a credential: none, an expired token or a tampered one is 401', async () => {
    const none = await infer('/ai/models/seg/infer', instanceOf(A));
    expect(none.status).toBe(401);
    expect(errorOf(none).error).toBe('missing_signature');
    const expired = await infer('/ai/models/seg/infer', instanceOf(A), bearer(token([A.uid], now() - 3600)));
    expect(expired.status).toBe(401);
    expect(errorOf(expired).error).toBe('signature_expired');
    const good = token([A.uid]);
    const tampered = good.slice(0, -1) + (good.endsWith('0') ? '1' : '0');
    expect((await infer('/ai/models/seg/infer', instanceOf(A), bearer(tampered))).status).toBe(401);
  });

  it('lets a token scoped to study A infer on A (header or ?token=), and not on B', async () => {
    const a = token([A.uid]);
    expect((await infer('/ai/models/seg/infer', instanceOf(A), bearer(a))).status).toBe(200);
    expect((await infer(`/ai/models/seg/infer?token=${a}`, instanceOf(A))).status).toBe(200);
    const other = await infer('/ai/models/seg/infer', instanceOf(B), bearer(a));
    expect(other.status).toBe(403);
    expect(errorOf(other)).toMatchObject({ error: 'access_denied' });
    expect(errorOf(other).message).toContain(B.uid);
    // A study the catalog does not hold is refused before it is looked up: no existence leak.
    const unknown = await infer('/ai/models/seg/infer', { ...instanceOf(B), study: '1.2.3.4.5' }, bearer(a));
    expect(unknown.status).toBe(403);
    // A token for every study reaches B.
    expect((await infer('/ai/models/seg/infer', instanceOf(B), bearer(token()))).status).toBe(200);
  });

  it('lists the models for a token, but refuses it slides and uploads', async () => {
    expect((await request(server, '/ai/models', { headers: bearer(token([A.uid])) })).status).toBe(200);
    expect((await request(server, '/ai/models')).status).toBe(401);
    const slide = await infer('/ai/models/tissue/infer', { slide: SVS, size: 64 }, bearer(token()));
    expect(slide.status).toBe(403);
    expect(errorOf(slide).error).toBe('access_denied');
    const heatmap = await infer(
      `/ai/models/seg/slides/${encodeURIComponent(SVS)}/heatmap`,
      { mpp: 8, tileSize: 64 },
      bearer(token()),
    );
    expect(heatmap.status).toBe(403);
  });

  it('serves a radiology result only to a token that could read its study', async () => {
    const mask = await maskOfA();
    const ok = await request(server, mask, { headers: bearer(token([A.uid])) });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toBe('image/png');
    expect((await request(server, `${mask}?token=${token()}`)).status).toBe(200);
    const wrong = await request(server, mask, { headers: bearer(token([B.uid])) });
    expect(wrong.status).toBe(403);
    expect(errorOf(wrong).error).toBe('access_denied');
    expect((await request(server, mask)).status).toBe(401);
  });

  it('guards every file of a series result: slices and NIfTI', async () => {
    const all = bearer(token());
    const series = (await request(server, '/dicomweb/series', { headers: all })).json() as Record<
      string,
      { Value: string[] }
    >[];
    const nifti = series.find((s) => ![A.uid, B.uid].includes(s['0020000D'].Value[0]));
    if (!nifti) throw new Error('the NIfTI volume was not indexed');
    const study = nifti['0020000D'].Value[0];
    const body = { study, series: nifti['0020000E'].Value[0] };
    expect((await infer('/ai/models/seg/infer', body, bearer(token([A.uid])))).status).toBe(403);
    const res = await infer('/ai/models/seg/infer', body, bearer(token([study])));
    expect(res.status).toBe(200);
    const result = (res.json() as { result: { nifti: string; slices: { png: string }[] } }).result;
    expect(result.slices).toHaveLength(2);
    for (const url of [result.nifti, result.slices[1].png]) {
      expect((await request(server, url, { headers: bearer(token([study])) })).status, url).toBe(200);
      const wrong = await request(server, url, { headers: bearer(token([A.uid])) });
      expect(wrong.status, url).toBe(403);
      expect(errorOf(wrong).error).toBe('access_denied');
      expect((await request(server, signed(url, `study=${study}`))).status, url).toBe(200);
      expect((await request(server, signed(url))).status, url).toBe(403);
    }
  });
});

describe('radiology inference with signed URLs', () => {
  it('binds a signed infer URL to the study it names', async () => {
    const bare = await infer(signed('/ai/models/seg/infer'), instanceOf(A));
    expect(bare.status).toBe(403);
    expect(errorOf(bare).error).toBe('access_denied');
    expect((await infer(signed('/ai/models/seg/infer', `study=${A.uid}`), instanceOf(A))).status).toBe(200);
    const other = await infer(signed('/ai/models/seg/infer', `study=${A.uid}`), instanceOf(B));
    expect(other.status).toBe(403);
    // The study in the query is signed: changing it breaks the signature.
    const forged = signed('/ai/models/seg/infer', `study=${A.uid}`).replace(A.uid, B.uid);
    expect((await infer(forged, instanceOf(B))).status).toBe(401);
  });

  it("reads a radiology result with a URL signed for the result's study only", async () => {
    const mask = await maskOfA();
    expect((await request(server, signed(mask, `study=${A.uid}`))).status).toBe(200);
    expect((await request(server, signed(mask, `study=${B.uid}`))).status).toBe(403);
    expect((await request(server, signed(mask))).status).toBe(403);
  });

  it('keeps whole-slide inference and its results on signed URLs', async () => {
    const res = await infer(signed('/ai/models/tissue/infer'), { slide: SVS, size: 64 });
    expect(res.status).toBe(200);
    const mask = (res.json() as { result: { mask: string } }).result.mask;
    const png = await request(server, signed(mask));
    expect(png.status).toBe(200);
    expect(png.headers.get('content-type')).toBe('image/png');
    const byToken = await request(server, mask, { headers: bearer(token()) });
    expect(byToken.status).toBe(403);
    expect(errorOf(byToken).error).toBe('access_denied');
    expect((await request(server, mask)).status).toBe(401);
  });
});
