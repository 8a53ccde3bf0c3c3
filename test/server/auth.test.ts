// Signed URLs and viewer tokens on a real server (startServer over a local directory), with
// requests sent exactly as written (node:http, so nothing normalises `%2e%2e` or `%2F`).
import { createHmac } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import {
  canonicalPath,
  canonicalQuery,
  signUrl,
  viewerToken,
  ViewerTokenIssuer,
} from '../../src/server/auth.js';
import { startTestServer } from '../support/server.js';

const SAMPLE = path.resolve(fileURLToPath(new URL('../../samples/CMU-1-Small-Region.svs', import.meta.url)));
const A = 'CMU-1-Small-Region.svs';
const NESTED = 'cases/CMU-1-Small-Region.svs';
const B = 'cases/other.svs';
const SECRET = 'new-secret-0123456789abcdef0123456789abcdef';
const OLD_SECRET = 'old-secret-0123456789abcdef0123456789abcdef';

const now = () => Math.floor(Date.now() / 1000);

interface Answer {
  status: number;
  error?: string;
  body: Buffer;
}

/** GET with the request target exactly as given. */
function get(server: RunningServer, target: string, method = 'GET'): Promise<Answer> {
  const { port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        let error: string | undefined;
        if (String(res.headers['content-type']).startsWith('application/json')) {
          try {
            error = (JSON.parse(body.toString('utf8')) as { error?: string }).error;
          } catch {
            error = undefined;
          }
        }
        resolve({ status: res.statusCode ?? 0, error, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function signed(target: string, options: { exp?: number; secret?: string } = {}): string {
  const [p, q] = target.split('?');
  return signUrl({ path: p, query: q, exp: options.exp ?? now() + 600, secret: options.secret ?? SECRET })
    .pathAndQuery;
}

function withToken(target: string, slide: string, options: { exp?: number; secret?: string } = {}): string {
  const exp = options.exp ?? now() + 600;
  const vt = viewerToken(options.secret ?? SECRET, slide, exp);
  return `${target}${target.includes('?') ? '&' : '?'}vt=${vt}&exp=${exp}`;
}

let root: string;
let server: RunningServer;

beforeAll(async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-auth-'));
  root = path.join(dir, 'root');
  await mkdir(path.join(root, 'cases'), { recursive: true });
  await copyFile(SAMPLE, path.join(root, A));
  await copyFile(SAMPLE, path.join(root, NESTED));
  await copyFile(SAMPLE, path.join(root, B));
  // Beside the root, not in it: a path escape would find it.
  await copyFile(SAMPLE, path.join(dir, 'outside.svs'));
  server = await startTestServer(root, [
    '--auth-enabled',
    '--auth-secret',
    SECRET,
    '--auth-secret',
    OLD_SECRET,
    '--auth-clock-skew',
    '30s',
  ]);
});

afterAll(async () => {
  await server?.close();
  if (root) await rm(path.dirname(root), { recursive: true, force: true });
});

describe('the signing scheme', () => {
  it('is WSIStreamer\'s: hex HMAC-SHA256 of path + "?" + sorted query without sig', () => {
    const exp = 1735689600;
    const expected = createHmac('sha256', SECRET)
      .update(`/tiles/${A}/0/0/0.jpg?exp=${exp}&quality=80`)
      .digest('hex');
    expect(signUrl({ path: `/tiles/${A}/0/0/0.jpg`, query: 'quality=80', exp, secret: SECRET }).sig).toBe(
      expected,
    );
    expect(viewerToken(SECRET, 'cases/a.svs', exp)).toBe(
      createHmac('sha256', SECRET).update(`viewer:cases/a.svs:${exp}`).digest('hex'),
    );
  });

  it('canonicalises paths and queries the same way for signer and verifier', () => {
    expect(canonicalPath('/slides/cases%2fa.svs')).toBe('/slides/cases%2Fa.svs');
    expect(canonicalPath('/slides/a b.svs')).toBe('/slides/a%20b.svs');
    expect(canonicalPath('/iiif/3/a.svs/pct:0,0,50,50/!256,256/0/default.jpg')).toBe(
      '/iiif/3/a.svs/pct:0,0,50,50/!256,256/0/default.jpg',
    );
    expect(canonicalPath('/iiif/3/a.svs/%70ct%3A0%2C0,50,50/max/0/default.jpg')).toBe(
      '/iiif/3/a.svs/pct:0,0,50,50/max/0/default.jpg',
    );
    expect(canonicalQuery('b=2&a=x+y&a=%7e&c')).toBe('a=x%20y&a=~&b=2&c=');
    expect(canonicalQuery('q=%c3%a9&r=é')).toBe('q=%C3%A9&r=%C3%A9');
  });
});

describe('open without a signature', () => {
  it('/health', async () => {
    expect((await get(server, '/health')).status).toBe(200);
  });

  it('/assets/* is not blocked (404 when there is no such asset)', async () => {
    const res = await get(server, '/assets/x.js');
    expect(res.status).not.toBe(401);
    expect([200, 404]).toContain(res.status);
  });
});

describe('errors', () => {
  it.each([
    `/slides/${A}`,
    `/tiles/${A}/0/0/0.jpg`,
    '/slides',
    '/',
    '/version',
    '/metrics',
    '/no/such/route',
    `/view/${A}`,
  ])('missing_signature (401) on %s', async (target) => {
    const res = await get(server, target);
    expect(res.status).toBe(401);
    expect(res.error).toBe('missing_signature');
  });

  it('HEAD is refused like GET', async () => {
    expect((await get(server, `/slides/${A}`, 'HEAD')).status).toBe(401);
  });

  it('missing_expiry (401)', async () => {
    const res = await get(server, `/slides/${A}?sig=${'0'.repeat(64)}`);
    expect([res.status, res.error]).toEqual([401, 'missing_expiry']);
  });

  it.each(['abc', '1.5', '-1', '', '1e9', '0x10'])('invalid_expiry_format (400) for exp=%j', async (exp) => {
    const res = await get(server, `/slides/${A}?exp=${exp}&sig=${'0'.repeat(64)}`);
    expect([res.status, res.error]).toEqual([400, 'invalid_expiry_format']);
  });

  it('invalid_expiry_format (400) for two exp', async () => {
    const res = await get(server, `${signed(`/slides/${A}`)}&exp=${now() + 9}`);
    expect([res.status, res.error]).toEqual([400, 'invalid_expiry_format']);
  });

  it.each(['zz'.repeat(32), 'abc', '0'.repeat(63), '0'.repeat(66), ''])(
    'invalid_signature_format (400) for sig=%j',
    async (sig) => {
      const res = await get(server, `/slides/${A}?exp=${now() + 60}&sig=${sig}`);
      expect([res.status, res.error]).toEqual([400, 'invalid_signature_format']);
    },
  );

  it('invalid_signature_format (400) for two sig', async () => {
    const res = await get(server, `${signed(`/slides/${A}`)}&sig=${'0'.repeat(64)}`);
    expect([res.status, res.error]).toEqual([400, 'invalid_signature_format']);
  });

  it('signature_expired (401) past exp + clock skew; accepted within the skew', async () => {
    const expired = await get(server, signed(`/slides/${A}`, { exp: now() - 120 }));
    expect([expired.status, expired.error]).toEqual([401, 'signature_expired']);
    const withinSkew = await get(server, signed(`/slides/${A}`, { exp: now() - 5 }));
    expect(withinSkew.status).toBe(200);
  });

  it('invalid_signature (401) for a signature of another secret', async () => {
    const res = await get(server, signed(`/slides/${A}`, { secret: 'x'.repeat(40) }));
    expect([res.status, res.error]).toEqual([401, 'invalid_signature']);
  });
});

describe('signed URLs', () => {
  it('serve tiles, metadata, the listing and /metrics', async () => {
    expect((await get(server, signed(`/tiles/${A}/0/0/0.jpg`))).status).toBe(200);
    expect((await get(server, signed(`/tiles/${A}/0/0/0.jpg?quality=90`))).status).toBe(200);
    expect((await get(server, signed(`/slides/${A}`))).status).toBe(200);
    const list = await get(server, signed('/slides?limit=5'));
    expect(list.status).toBe(200);
    expect(JSON.parse(list.body.toString()).slides).toContain(A);
    expect((await get(server, signed('/metrics'))).status).toBe(200);
    expect((await get(server, signed('/version'))).status).toBe(200);
  });

  it('do not depend on the order of the query parameters', async () => {
    const exp = now() + 600;
    const { sig } = signUrl({ path: `/tiles/${A}/0/0/0.jpg`, query: 'quality=90', exp, secret: SECRET });
    const res = await get(server, `/tiles/${A}/0/0/0.jpg?sig=${sig}&quality=90&exp=${exp}`);
    expect(res.status).toBe(200);
  });

  it('sign an id with %2F, in either hex case, and not the same path with a real /', async () => {
    const url = signed(`/slides/cases%2FCMU-1-Small-Region.svs`);
    expect((await get(server, url)).status).toBe(200);
    expect((await get(server, url.replace('%2F', '%2f'))).status).toBe(200);
    const slash = await get(server, url.replace('%2F', '/'));
    expect(slash.status).not.toBe(200);
  });

  it.each([
    ['a tampered path', `/tiles/${A}/0/0/0.jpg`, (u: string) => u.replace('/0/0/0.jpg', '/0/0/1.jpg')],
    [
      'a tampered query parameter',
      `/tiles/${A}/0/0/0.jpg?quality=90`,
      (u: string) => u.replace('quality=90', 'quality=91'),
    ],
    ['an added query parameter', `/tiles/${A}/0/0/0.jpg`, (u: string) => u.replace('?', '?quality=50&')],
    [
      'a dropped query parameter',
      `/tiles/${A}/0/0/0.jpg?quality=90`,
      (u: string) => u.replace('quality=90&', ''),
    ],
    [
      'a tampered exp',
      `/slides/${A}`,
      (u: string) => u.replace(/exp=(\d+)/, (_, e: string) => `exp=${Number(e) + 1}`),
    ],
    [
      'a signature for one slide used on another',
      `/slides/${A}`,
      (u: string) => u.replace(A, 'cases%2Fother.svs'),
    ],
    [
      'a valid URL replayed on another route',
      `/slides/${A}`,
      (u: string) => u.replace(`/slides/${A}`, `/slides/${A}/thumbnail`),
    ],
    [
      'a tile URL replayed on IIIF',
      `/tiles/${A}/0/0/0.jpg`,
      (u: string) => u.replace(`/tiles/${A}/0/0/0.jpg`, `/iiif/3/${A}/info.json`),
    ],
  ])('reject %s (invalid_signature)', async (_what, target, tamper) => {
    const url = signed(target);
    expect((await get(server, url)).status).toBe(200);
    const res = await get(server, tamper(url));
    expect([res.status, res.error]).toEqual([401, 'invalid_signature']);
  });
});

describe('viewer tokens', () => {
  it.each([
    `/slides/${A}`,
    `/tiles/${A}/0/0/0.jpg`,
    `/slides/${A}/thumbnail?max_size=128`,
    `/slides/${A}/associated/label`,
    `/slides/${A}/dzi`,
    `/slides/${A}/dzi_files/8/0_0.jpg`,
    `/iiif/3/${A}/info.json`,
    `/iiif/3/${A}/full/64,/0/default.jpg`,
    `/slides/${A}/region?x=0&y=0&width=64&height=64`,
  ])('open %s of their slide', async (target) => {
    const res = await get(server, withToken(target, A));
    expect(res.status, res.body.toString().slice(0, 200)).toBe(200);
  });

  it('are accepted on /view/{id} of their slide (not refused by auth)', async () => {
    const res = await get(server, withToken(`/view/${A}`, A));
    expect(res.status).not.toBe(401);
  });

  it('work for nested ids (%2F in the path, / in the token)', async () => {
    const res = await get(server, withToken(`/tiles/cases%2FCMU-1-Small-Region.svs/0/0/0.jpg`, NESTED));
    expect(res.status).toBe(200);
  });

  it('a token for slide A fails on slide B', async () => {
    const res = await get(server, withToken(`/tiles/cases%2Fother.svs/0/0/0.jpg`, A));
    expect([res.status, res.error]).toEqual([401, 'invalid_signature']);
    const view = await get(server, withToken(`/view/cases%2Fother.svs`, A));
    expect([view.status, view.error]).toEqual([401, 'invalid_signature']);
  });

  it('are not valid on routes of no slide (listing, metrics)', async () => {
    for (const target of ['/slides', '/metrics', '/']) {
      const res = await get(server, withToken(target, A));
      expect([res.status, res.error]).toEqual([401, 'missing_signature']);
    }
  });

  it('expire, and must be hex', async () => {
    const expired = await get(server, withToken(`/slides/${A}`, A, { exp: now() - 120 }));
    expect([expired.status, expired.error]).toEqual([401, 'signature_expired']);
    const bad = await get(server, `/slides/${A}?vt=nothex&exp=${now() + 60}`);
    expect([bad.status, bad.error]).toEqual([400, 'invalid_signature_format']);
    const noExp = await get(server, `/slides/${A}?vt=${'0'.repeat(64)}`);
    expect([noExp.status, noExp.error]).toEqual([401, 'missing_expiry']);
  });

  it('ViewerTokenIssuer signs with the first secret and the configured lifetime', async () => {
    const issuer = new ViewerTokenIssuer({ secrets: [SECRET, OLD_SECRET], ttlSeconds: 3600 });
    const { vt, exp } = issuer.issue(A);
    expect(exp - now()).toBeGreaterThanOrEqual(3599);
    expect(exp - now()).toBeLessThanOrEqual(3601);
    expect(vt).toBe(viewerToken(SECRET, A, exp));
    expect((await get(server, `/tiles/${A}/0/0/0.jpg?vt=${vt}&exp=${exp}`)).status).toBe(200);
  });
});

describe('key rotation', () => {
  it('an old secret verifies while listed and stops when removed', async () => {
    const oldUrl = signed(`/slides/${A}`, { secret: OLD_SECRET });
    const oldToken = withToken(`/tiles/${A}/0/0/0.jpg`, A, { secret: OLD_SECRET });
    const newUrl = signed(`/slides/${A}`);
    expect((await get(server, oldUrl)).status).toBe(200);
    expect((await get(server, oldToken)).status).toBe(200);
    expect((await get(server, newUrl)).status).toBe(200);

    const rotated = await startTestServer(root, ['--auth-enabled', '--auth-secret', SECRET]);
    try {
      const res = await get(rotated, oldUrl);
      expect([res.status, res.error]).toEqual([401, 'invalid_signature']);
      expect((await get(rotated, oldToken)).error).toBe('invalid_signature');
      expect((await get(rotated, newUrl)).status).toBe(200);
    } finally {
      await rotated.close();
    }
  });

  it('secrets also come comma-separated in one flag', async () => {
    const both = await startTestServer(root, ['--auth-enabled', '--auth-secret', `${SECRET},${OLD_SECRET}`]);
    try {
      expect((await get(both, signed(`/slides/${A}`, { secret: OLD_SECRET }))).status).toBe(200);
    } finally {
      await both.close();
    }
  });
});

describe('path traversal through slide ids never leaves the root', () => {
  const hostile = [
    '/slides/..%2Foutside.svs',
    '/slides/%2e%2e%2Foutside.svs',
    '/slides/%2E%2E%2Foutside.svs',
    '/slides/%252e%252e%252Foutside.svs',
    '/tiles/..%2Foutside.svs/0/0/0.jpg',
    '/slides/cases%2F..%2F..%2Foutside.svs',
    `/slides/${A}%00`,
    '/slides/%00..%2Foutside.svs',
    '/slides/%2Fetc%2Fpasswd',
    '/slides/%2Ftmp%2Foutside.svs',
    '/slides/C%3A%5Cwindows',
    '/iiif/3/..%2Foutside.svs/info.json',
  ];

  it.each(hostile)('with auth, unsigned: 401 for %s', async (target) => {
    const res = await get(server, target);
    expect(res.status).toBe(401);
  });

  it.each(hostile)('with auth, signed: 400 invalid_id (or 404), never the file, for %s', async (target) => {
    const res = await get(server, signed(target));
    expect([400, 404]).toContain(res.status);
    if (res.status === 400) expect(['invalid_id', 'bad_request']).toContain(res.error);
  });

  it('without auth: 400 invalid_id (or 404), never the file', async () => {
    const open = await startTestServer(root);
    try {
      for (const target of hostile) {
        const res = await get(open, target);
        expect([400, 404], target).toContain(res.status);
      }
      expect((await get(open, `/slides/${A}`)).status).toBe(200);
    } finally {
      await open.close();
    }
  });
});
