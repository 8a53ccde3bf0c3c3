// The segmentation API's limits on a server with auth on, a small voxel limit and a queue of one:
// study-scoped DICOMweb tokens (another study's token is refused; storing needs a write token), a
// volume over the voxel limit refused before it is queued, a full queue answered 503 with
// Retry-After and nothing left stuck in it.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { signUrl } from '../../src/server/auth.js';
import { issueDicomwebToken } from '../../src/server/dicomweb-auth.js';
import { fixture } from '../support/fixtures.js';
import { writePhantomSeries, type PhantomSeries } from '../support/phantom-series.js';
import { request, startTestServer, until } from '../support/server.js';

const SECRET = 'a-test-secret-of-at-least-32-bytes-for-hmac';
const dir = mkdtempSync(path.join(tmpdir(), 'medstream-seglimits-'));
let server: RunningServer;
let ct: PhantomSeries;

const exp = () => Math.floor(Date.now() / 1000) + 600;
const token = (options: { studies?: string[]; write?: boolean } = {}) =>
  issueDicomwebToken(SECRET, { expiresAt: exp(), write: true, ...options });

const post = (body: unknown, bearer = token()) =>
  request(server, '/segmentations', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
    body: JSON.stringify(body),
  });

beforeAll(async () => {
  ct = await writePhantomSeries(path.join(dir, 'phantom'));
  mkdirSync(path.join(dir, 'nifti'));
  copyFileSync(fixture('volumes/nifti/example_ct_sm.nii.gz'), path.join(dir, 'nifti', 'ct.nii.gz'));
  server = await startTestServer(dir, [
    '--index-interval',
    '0',
    '--auth-enabled',
    '--auth-secret',
    SECRET,
    '--segment-max-voxels',
    '40000',
    '--segment-queue',
    '1',
  ]);
  const signed = signUrl({ path: '/admin/reindex', query: 'wait=true', exp: exp(), secret: SECRET });
  expect((await request(server, signed.pathAndQuery, { method: 'POST' })).status).toBe(200);
}, 60_000);
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('segmentation limits', () => {
  const body = (box = ct.box) => ({ series: ct.seriesUid, slice: ct.keySlice, box, store: false });

  it('needs a DICOMweb token scoped to the study, and a write token to store the SEG', async () => {
    const none = await request(server, '/segmentations', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body()),
    });
    expect(none.status).toBe(401);
    const other = await post(body(), token({ studies: ['1.2.3.4'] }));
    expect(other.status).toBe(403);
    expect((other.json() as { message: string }).message).toMatch(`study ${ct.studyUid}`);
    const readOnly = await post({ ...body(), store: true }, token({ studies: [ct.studyUid], write: false }));
    expect(readOnly.status).toBe(403);
    expect((readOnly.json() as { message: string }).message).toMatch(/write token/);

    const mine = await post(body(), token({ studies: [ct.studyUid], write: false }));
    expect(mine.status).toBe(202);
    const id = (mine.json() as { id: string }).id;
    const job = (t: string) =>
      request(server, `/segmentations/${id}`, { headers: { authorization: `Bearer ${t}` } });
    expect((await job(token({ studies: ['1.2.3.4'] }))).status).toBe(403);
    await until(async () => ((await job(token())).json() as { state: string }).state === 'done', 20_000);
  });

  it('refuses a volume over the voxel limit before queueing it', async () => {
    const res = await post({ volume: 'nifti/ct.nii.gz', slice: 14, box: [45, 27, 104, 85], store: false });
    expect(res.status).toBe(400);
    expect((res.json() as { message: string }).message).toMatch(
      /122x101x30 = 369660 voxels, over the limit of 40000/,
    );
  });

  it('answers 503 with Retry-After when the queue is full, and leaves nothing stuck', async () => {
    const boxes = Array.from({ length: 8 }, (_, n): [number, number, number, number] => [
      ct.box[0] + (n % 3),
      ct.box[1] + (n % 2),
      ct.box[2] - (n % 4),
      ct.box[3],
    ]);
    const answers = await Promise.all(boxes.map((b, n) => post({ ...body(b), window: [-150 - n, 200] })));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);
    for (const a of answers.filter((x) => x.status === 503)) {
      expect(a.headers.get('retry-after')).toMatch(/^\d+$/);
      expect((a.json() as { error: string }).error).toBe('overloaded');
    }
    const accepted = answers.filter((a) => a.status === 202).map((a) => (a.json() as { id: string }).id);
    expect(accepted.length).toBeGreaterThan(0);
    for (const id of accepted) {
      await until(async () => {
        const r = await request(server, `/segmentations/${id}`, {
          headers: { authorization: `Bearer ${token()}` },
        });
        return (r.json() as { state: string }).state === 'done';
      }, 20_000);
    }
    // Room again once the queue has drained.
    expect((await post(body([ct.box[0] + 1, ct.box[1] + 1, ct.box[2], ct.box[3]]))).status).toBe(202);
  });
});
