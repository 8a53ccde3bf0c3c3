// DICOMweb access with --auth-enabled: bearer tokens (and ?token=) from `medstream sign
// --dicomweb`, scoped to studies or not, read or write; expired, tampered and missing tokens
// refused; results filtered to the scope; the admin routes keep needing a signed URL.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { parseConfig } from '../../src/cli/config.js';
import { runSign, SIGN_FLAGS } from '../../src/cli/sign.js';
import { issueDicomwebToken } from '../../src/server/dicomweb-auth.js';
import { signUrl } from '../../src/server/auth.js';
import { instanceBytes, instancesOf, STUDIES, writeStudies } from '../support/radiology-studies.js';
import { request, startTestServer } from '../support/server.js';
import { dicomwebClient, value } from './client.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const OLD_SECRET = 'the-previous-secret-still-accepted-9876543210';
const [A, B] = STUDIES;
let dir: string;
let server: RunningServer;

/** A token as `medstream sign --dicomweb` prints it. */
function sign(args: string[]): string {
  const parsed = parseConfig(['--dicomweb', ...args], { MEDSTREAM_AUTH_SECRETS: SECRET }, SIGN_FLAGS);
  let out = '';
  expect(
    runSign(parsed.config, { values: parsed.commandValues, positionals: [], out: (l) => (out = l) }),
  ).toBe(0);
  return out;
}

const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'dw-auth-'));
  await writeStudies(path.join(dir, 'store'));
  server = await startTestServer(path.join(dir, 'store'), [
    '--data-dir',
    path.join(dir, 'data'),
    '--no-index-at-start',
    '--index-interval',
    '0',
    '--auth-enabled',
    '--auth-secret',
    `${SECRET},${OLD_SECRET}`,
  ]);
  const exp = Math.floor(Date.now() / 1000) + 60;
  const signed = signUrl({ path: '/admin/reindex', query: 'wait=true', exp, secret: SECRET });
  const reindex = await request(server, signed.pathAndQuery, { method: 'POST' });
  expect(reindex.status).toBe(200);
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('DICOMweb tokens', () => {
  it('refuses requests without a token, with a tampered one, or an expired one', async () => {
    const none = await request(server, '/dicomweb/studies');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const token = sign([]);
    const tampered = token.slice(0, -1) + (token.endsWith('0') ? '1' : '0');
    expect((await request(server, '/dicomweb/studies', bearer(tampered))).status).toBe(401);
    const expired = issueDicomwebToken(SECRET, { expiresAt: Math.floor(Date.now() / 1000) - 3600 });
    const res = await request(server, '/dicomweb/studies', bearer(expired));
    expect(res.status).toBe(401);
    expect((res.json() as { error: string }).error).toBe('signature_expired');
    expect((await request(server, '/dicomweb/studies', bearer('not-a-token'))).status).toBe(400);
    // A signed URL for another route is no DICOMweb token.
    const exp = Math.floor(Date.now() / 1000) + 60;
    expect(
      (await request(server, signUrl({ path: '/dicomweb/studies', exp, secret: SECRET }).pathAndQuery))
        .status,
    ).toBe(401);
  });

  it('accepts a token for all studies, from the header, the query, and an older secret', async () => {
    const token = sign(['--expires-in', '5m']);
    const client = dicomwebClient(server.url + '/dicomweb', { Authorization: `Bearer ${token}` });
    expect(await client.searchForStudies()).toHaveLength(4);
    expect((await request(server, `/dicomweb/studies?token=${token}`)).status).toBe(200);
    const old = issueDicomwebToken(OLD_SECRET, { expiresAt: Math.floor(Date.now() / 1000) + 60 });
    expect((await request(server, '/dicomweb/studies', bearer(old))).status).toBe(200);
  });

  it('limits a study-scoped token to its studies: filtered searches, 403 elsewhere', async () => {
    const token = sign(['--study', A.uid]);
    const client = dicomwebClient(server.url + '/dicomweb', { Authorization: `Bearer ${token}` });
    const studies = await client.searchForStudies();
    expect(studies.map((s) => value(s, '0020000D'))).toEqual([A.uid]);
    expect(await client.searchForSeries({ queryParams: { Modality: 'MR' } })).toEqual([]);
    expect((await client.searchForInstances()).every((i) => value(i, '0020000D') === A.uid)).toBe(true);
    expect((await request(server, `/dicomweb/studies/${B.uid}/series`, bearer(token))).status).toBe(403);
    expect((await request(server, `/dicomweb/studies/${A.uid}/series`, bearer(token))).status).toBe(200);
  });

  it('needs a write token to store, and a scoped one only stores into its study', async () => {
    const bytes = instanceBytes(A, A.series[0], instancesOf(A)[0]);
    const body = Buffer.concat([
      Buffer.from('--b\r\nContent-Type: application/dicom\r\n\r\n'),
      Buffer.from(bytes),
      Buffer.from('\r\n--b--\r\n'),
    ]);
    const post = (p: string, token: string) =>
      request(server, p, {
        method: 'POST',
        body,
        headers: {
          Authorization: `Bearer ${token}`,
          'Content-Type': 'multipart/related; type="application/dicom"; boundary=b',
        },
      });
    expect((await post('/dicomweb/studies', sign([]))).status).toBe(403);
    expect((await post(`/dicomweb/studies/${B.uid}`, sign(['--write', '--study', A.uid]))).status).toBe(403);
    expect((await post('/dicomweb/studies', sign(['--write', '--study', A.uid]))).status).toBe(403);
    expect((await post(`/dicomweb/studies/${A.uid}`, sign(['--write', '--study', A.uid]))).status).toBe(200);
  });

  it('keeps the admin routes behind signed URLs', async () => {
    expect((await request(server, '/admin/index')).status).toBe(401);
    expect((await request(server, '/admin/index', bearer(sign([])))).status).toBe(401);
    const exp = Math.floor(Date.now() / 1000) + 60;
    const status = await request(server, signUrl({ path: '/admin/index', exp, secret: SECRET }).pathAndQuery);
    expect(status.status).toBe(200);
    expect((status.json() as { counts: { studies: number } }).counts.studies).toBe(4);
  });

  it('refuses bad sign --dicomweb usage', () => {
    const parse = (args: string[]) => parseConfig(args, { MEDSTREAM_AUTH_SECRETS: SECRET }, SIGN_FLAGS);
    const run = (args: string[]) => {
      const parsed = parse(args);
      return () =>
        runSign(parsed.config, { values: parsed.commandValues, positionals: [], out: () => undefined });
    };
    expect(run(['--dicomweb', '--study', 'not-a-uid'])).toThrow(/not a UID/);
    expect(run(['--study', A.uid])).toThrow(/go with --dicomweb/);
    expect(run(['--dicomweb', '--path', '/x'])).toThrow(/--dicomweb takes/);
  });
});
