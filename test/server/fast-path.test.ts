// The cached-image fast path (server/fast-path.ts): a repeated image request is answered before
// Fastify from the tile cache with the same body and headers as the full path, 304 on a matching
// If-None-Match, HEAD without a body, counted in the same latency metric (and in its own
// counter, which is how these tests see which path answered). It never serves a replaced slide's
// old tile. With auth on it answers only URLs Fastify's hook verified, and only until they expire.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { signUrl, viewerToken } from '../../src/server/auth.js';
import { fixture } from '../support/fixtures.js';
import { startTestServer } from '../support/server.js';

const SECRET = 'fast-path-secret-0123456789abcdef0123456789';
const CMU = fixture('wsi/svs/CMU-1-Small-Region.svs');
const TCGA = fixture('wsi/svs/tcga-cr-7395-01a-01-ts1.svs');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-fast-path-'));
  await copyFile(CMU, path.join(dir, 'CMU.svs'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Answers from the fast path so far (its counter in /metrics). */
async function fastAnswers(server: RunningServer, query = ''): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics${query}`)).text();
  return Number(/^medstream_http_fast_path_responses_total (\d+)/m.exec(text)?.[1]);
}

async function tileCount(server: RunningServer, status: number, method = 'GET'): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const re = new RegExp(
    `^medstream_http_request_duration_seconds_count\\{route="/tiles/:id/:level/:x/:file",method="${method}",status="${status}"\\} (\\d+)`,
    'm',
  );
  return Number(re.exec(text)?.[1] ?? 0);
}

/** Headers that are the same for every answer of a URL. */
function stable(headers: Headers): Record<string, string> {
  const skip = new Set(['x-request-id', 'x-cache', 'x-tile-cache-hit', 'server-timing', 'date']);
  return Object.fromEntries([...headers.entries()].filter(([k]) => !skip.has(k)));
}

describe('cached-image fast path', () => {
  it('answers a repeated tile with the body and headers of the full path', async () => {
    const server = await startTestServer(dir);
    try {
      for (const url of [
        '/tiles/CMU.svs/0/1/1.jpg',
        '/tiles/CMU.svs/0/1/1.png',
        '/iiif/3/CMU.svs/0,0,240,240/240,/0/default.jpg',
        '/iiif/3/CMU.svs/0,0,480,480/120,/0/gray.png',
      ]) {
        const before = await fastAnswers(server);
        const first = await fetch(server.url + url, { headers: { origin: 'https://viewer.example.org' } });
        expect(first.status).toBe(200);
        expect(first.headers.get('x-cache')).toBe('miss');
        const second = await fetch(server.url + url, {
          headers: { origin: 'https://viewer.example.org', 'x-request-id': 'upstream-id-1' },
        });
        expect(await fastAnswers(server)).toBe(before + 1);
        expect(second.status).toBe(200);
        expect(Buffer.from(await second.arrayBuffer())).toEqual(Buffer.from(await first.arrayBuffer()));
        expect(stable(second.headers)).toEqual(stable(first.headers));
        expect(second.headers.get('x-cache')).toBe('memory');
        expect(second.headers.get('x-tile-cache-hit')).toBe('true');
        expect(second.headers.get('server-timing')).toBe('cache;desc="hit"');
        expect(second.headers.get('x-request-id')).toBe('upstream-id-1'); // an upstream id is kept
        expect(second.headers.get('access-control-allow-origin')).toBe('*');
      }
      const url = '/tiles/CMU.svs/0/1/1.jpg';
      const etag = (await fetch(server.url + url)).headers.get('etag')!;
      const before = await fastAnswers(server);
      const okBefore = await tileCount(server, 200);
      const notModified = await fetch(server.url + url, { headers: { 'if-none-match': `W/"x", ${etag}` } });
      expect(notModified.status).toBe(304);
      expect(notModified.headers.get('etag')).toBe(etag);
      expect(notModified.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
      expect((await notModified.arrayBuffer()).byteLength).toBe(0);
      const head = await fetch(server.url + url, { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.headers.get('content-type')).toBe('image/jpeg');
      expect(Number(head.headers.get('content-length'))).toBeGreaterThan(1000);
      expect((await head.arrayBuffer()).byteLength).toBe(0);
      expect(await fastAnswers(server)).toBe(before + 2);
      // The latency histogram counts fast answers under the route pattern, as Fastify's hook does.
      expect(await tileCount(server, 304)).toBeGreaterThanOrEqual(1);
      expect(await tileCount(server, 200)).toBe(okBefore);
      // A Range request is left to Fastify.
      await fetch(server.url + url, { headers: { range: 'bytes=0-9' } });
      expect(await fastAnswers(server)).toBe(before + 2);
    } finally {
      await server.close();
    }
  });

  it('never answers with the tile of a slide replaced since', async () => {
    const own = await mkdtemp(path.join(os.tmpdir(), 'medstream-fast-path-'));
    await copyFile(CMU, path.join(own, 'X.svs'));
    const server = await startTestServer(own, ['--slide-revalidate', '300ms']);
    try {
      const url = `${server.url}/tiles/X.svs/0/0/0.jpg`;
      const old = await fetch(url);
      const oldBody = Buffer.from(await old.arrayBuffer());
      expect((await fetch(url)).headers.get('x-cache')).toBe('memory');
      await copyFile(TCGA, path.join(own, 'X.svs'));
      await new Promise((r) => setTimeout(r, 400));
      const fresh = await fetch(url);
      expect(fresh.status).toBe(200);
      expect(fresh.headers.get('etag')).not.toBe(old.headers.get('etag'));
      expect(Buffer.from(await fresh.arrayBuffer())).not.toEqual(oldBody);
    } finally {
      await server.close();
      await rm(own, { recursive: true, force: true });
    }
  });

  it('with auth on answers a verified URL until it expires, and nothing unsigned or tampered', async () => {
    const server = await startTestServer(dir, [
      '--auth-enabled',
      '--auth-secret',
      SECRET,
      '--auth-clock-skew',
      '0',
    ]);
    try {
      const metricsQuery = signUrl({
        path: '/metrics',
        exp: Math.floor(Date.now() / 1000) + 600,
        secret: SECRET,
      }).pathAndQuery.replace('/metrics', '');
      const tile = '/tiles/CMU.svs/0/1/1.jpg';
      // Expires 2 s from now: verified once by Fastify, then answered by the fast path.
      const exp = Math.floor(Date.now() / 1000) + 2;
      const signed = signUrl({ path: tile, exp, secret: SECRET }).pathAndQuery;
      const first = await fetch(server.url + signed);
      expect(first.status).toBe(200);
      const body = Buffer.from(await first.arrayBuffer());
      const second = await fetch(server.url + signed);
      expect(second.status).toBe(200);
      expect(Buffer.from(await second.arrayBuffer())).toEqual(body);
      expect(await fastAnswers(server, metricsQuery)).toBe(1);
      // The same tile unsigned, with a changed signature, or under another slide's viewer token:
      // other URLs, never remembered, so Fastify's hook refuses them.
      expect((await fetch(server.url + tile)).status).toBe(401);
      const tampered = signed.replace(/sig=([0-9a-f])/, (_, c: string) => `sig=${c === '0' ? '1' : '0'}`);
      expect((await fetch(server.url + tampered)).status).toBe(401);
      const otherToken = `${tile}?vt=${viewerToken(SECRET, 'other.svs', exp)}&exp=${exp}`;
      expect((await fetch(server.url + otherToken)).status).toBe(401);
      // This slide's viewer token is remembered as its own URL.
      const token = `${tile}?vt=${viewerToken(SECRET, 'CMU.svs', exp)}&exp=${exp}`;
      for (let i = 0; i < 2; i++) expect((await fetch(server.url + token)).status).toBe(200);
      expect(await fastAnswers(server, metricsQuery)).toBe(2);
      // Once exp has passed, the remembered URLs go to Fastify again: 401 signature_expired.
      while (Math.floor(Date.now() / 1000) <= exp) await new Promise((r) => setTimeout(r, 100));
      for (const url of [signed, token]) {
        const expired = await fetch(server.url + url);
        expect(expired.status).toBe(401);
        expect(((await expired.json()) as { error: string }).error).toBe('signature_expired');
      }
      expect(await fastAnswers(server, metricsQuery)).toBe(2);
    } finally {
      await server.close();
    }
  });
});
