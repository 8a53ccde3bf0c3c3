// Derived frames under the progressive bench's stall conditions, over HTTP on the fixture CT (JPEG
// 2000, 512x512) with a cold cache: a client hanging up mid-encode does not fail other clients
// waiting on the same frame's shared decode; a burst over 6 keep-alive connections (Chromium's
// per-host limit) with slow readers and clients that hang up all completes; a request waiting
// past --derived-timeout gets a typed 503 `overloaded` with Retry-After instead of hanging.

import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { request, startIndexedServer } from '../support/server.js';
import { dicomwebClient, value } from './client.js';

const CT_DIR = fixture('volumes/ct-dicom-j2k');
const SOPS = [
  '1.3.12.2.1107.5.1.4.60064.30000022120808113428000016573',
  '1.3.12.2.1107.5.1.4.60064.30000022120808113428000016574',
];
let dir: string;
let store: string;

interface Answer {
  status: number;
  body: Buffer;
}

/**
 * GET through `agent`; `slow` pauses the body after its first chunk for that many ms (a reader
 * that lets the socket fill up); `abortAfterMs` hangs up that long after sending.
 */
function get(
  url: string,
  agent: http.Agent,
  options: { slow?: number; abortAfterMs?: number } = {},
): Promise<Answer | 'aborted'> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      let paused = false;
      res.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (options.slow && !paused) {
          paused = true;
          res.pause();
          setTimeout(() => res.resume(), options.slow);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', (e) =>
      req.destroyed && options.abortAfterMs !== undefined ? resolve('aborted') : reject(e),
    );
    if (options.abortAfterMs !== undefined)
      setTimeout(() => {
        req.destroy();
        resolve('aborted');
      }, options.abortAfterMs);
  });
}

async function instanceUrls(server: RunningServer): Promise<string[]> {
  const client = dicomwebClient(server.url + '/dicomweb');
  const [study] = await client.searchForStudies({ queryParams: { StudyDate: '20221208' } });
  const studyUid = value(study, '0020000D') as string;
  const [series] = await client.searchForSeries({ studyInstanceUID: studyUid });
  const seriesUid = value(series, '0020000E') as string;
  return SOPS.map((sop) => `${server.url}/dicomweb/studies/${studyUid}/series/${seriesUid}/instances/${sop}`);
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'derived-stall-'));
  store = path.join(dir, 'store');
  await mkdir(path.join(store, 'ct'), { recursive: true });
  for (const sop of SOPS) await copyFile(path.join(CT_DIR, `CT.${sop}`), path.join(store, 'ct', `CT.${sop}`));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('derived frames with clients that hang up or read slowly (cold cache)', () => {
  let server: RunningServer;
  let instances: string[];

  beforeAll(async () => {
    server = await startIndexedServer(store, ['--derived-cache', '0', '--derived-memory', '0']);
    instances = await instanceUrls(server);
  }, 60_000);

  afterAll(async () => {
    await server?.close();
  });

  it('a client hanging up mid-encode does not fail the clients waiting on the same decode', async () => {
    const agent = new http.Agent({ keepAlive: true });
    try {
      // Each frame's first request (HTJ2K) starts the decode; the JPEG-LS and thumbnail encodes of
      // the same frame, asked for just after, join that decode. Then the first client hangs up.
      const first = instances.map((u) => get(`${u}/htj2k/1`, agent, { abortAfterMs: 150 }));
      await new Promise((r) => setTimeout(r, 40));
      const others = instances.flatMap((u) => [
        get(`${u}/jls/1`, agent),
        get(`${u}/htj2kThumbnail/1`, agent),
      ]);
      expect(await Promise.all(first)).toEqual(['aborted', 'aborted']);
      const answers = (await Promise.all(others)) as Answer[];
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
      // And the frame the hung-up client asked for is still served.
      for (const u of instances) expect(((await get(`${u}/htj2k/1`, agent)) as Answer).status).toBe(200);
    } finally {
      agent.destroy();
    }
  }, 60_000);

  it('a burst over 6 connections with slow readers and hang-ups all completes, each frame the same bytes', async () => {
    // Chromium's HTTP/1.1 limit per host; the viewer's 174-frame volume queues behind it.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 6 });
    const hangUps = new http.Agent({ keepAlive: false });
    try {
      const urls = instances.flatMap((u) => ['jlsThumbnail', 'lossy', 'jls'].map((k) => `${u}/${k}/1`));
      const burst: Promise<Answer | 'aborted'>[] = [];
      for (let i = 0; i < 36; i++) {
        const url = urls[i % urls.length];
        // The first request of every frame hangs up; a third of the rest read slowly.
        if (i < urls.length) burst.push(get(url, hangUps, { abortAfterMs: 60 + 10 * i }));
        else burst.push(get(url, agent, { slow: i % 3 === 0 ? 300 : undefined }));
      }
      const answers = await Promise.all(burst);
      const byUrl = new Map<string, Set<string>>();
      answers.forEach((a, i) => {
        if (i < urls.length) return;
        expect(a, urls[i % urls.length]).not.toBe('aborted');
        const { status, body } = a as Answer;
        expect(status, urls[i % urls.length]).toBe(200);
        const seen = byUrl.get(urls[i % urls.length]) ?? new Set<string>();
        seen.add(body.toString('base64'));
        byUrl.set(urls[i % urls.length], seen);
      });
      expect([...byUrl.values()].map((s) => s.size)).toEqual(urls.map(() => 1));
    } finally {
      agent.destroy();
      hangUps.destroy();
    }
  }, 90_000);
});

describe('--derived-timeout', () => {
  it('a request waiting longer for a derived frame gets 503 overloaded with Retry-After, and the server serves on', async () => {
    const server = await startIndexedServer(store, [
      '--derived-cache',
      '0',
      '--derived-memory',
      '0',
      '--derived-timeout',
      '1ms',
    ]);
    try {
      const [u] = await instanceUrls(server);
      const path = u.slice(server.url.length);
      for (let attempt = 0; attempt < 2; attempt++) {
        const res = await request(server, `${path}/htj2k/1`);
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('1');
        expect(res.json()).toMatchObject({ error: 'overloaded' });
        expect(String((res.json() as { message: string }).message)).toMatch(/not ready after 1 ms/);
      }
      // Stored frames do not wait on encodes.
      expect((await request(server, `${path}/frames/1`)).status).toBe(200);
    } finally {
      await server.close();
    }
  }, 60_000);
});
