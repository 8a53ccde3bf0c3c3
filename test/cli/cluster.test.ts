// `medstream serve --workers N` (cli/cluster.ts) as a user runs it: a real child process whose
// workers share one port. Tiles are served by more than one worker (told apart by the pid on
// their access-log lines), with request ids, ETag / 304 and metrics; SIGTERM to the primary
// drains a request still in flight (its storage read held by a fault proxy) before every process
// exits 0. Also the access log: one line per response, none with --no-access-log, and under
// concurrent load from both workers (lines written in batches, server/log-sink.ts) every line on
// the shared stdout pipe arrives, whole and once.
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/cli/config.js';
import { workerCount, workerShare } from '../../src/cli/cluster.js';
import { runMedstream } from '../support/cli.js';
import { startFaultProxy, type FaultProxy } from '../support/fault-proxy.js';
import { fixture } from '../support/fixtures.js';
import { RangeServer } from '../support/range-server.js';
import { until } from '../support/server.js';

let dir: string;
let origin: RangeServer;
let proxy: FaultProxy;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-cluster-'));
  await copyFile(fixture('wsi/svs/CMU-1-Small-Region.svs'), path.join(dir, 'CMU.svs'));
  origin = await RangeServer.start({ root: dir });
  proxy = await startFaultProxy(origin.url);
});

afterAll(async () => {
  await proxy?.close();
  await origin?.close();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One GET on a connection of its own (so the cluster's round-robin hands it to the next worker). */
function get(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** The JSON log lines with this message. */
function lines(stdout: string, msg: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('serve --workers', () => {
  it('gives each worker its share of the caches and threads, and the indexing to the first', () => {
    const { config } = parseConfig(['--workers', '4', '--cache-tiles', '512MB', '--decode-workers', '3'], {});
    expect(workerCount(config)).toBe(4);
    expect(workerCount(parseConfig(['--workers', '0'], {}).config)).toBe(os.availableParallelism());
    const first = workerShare(config, { index: 0, count: 4 });
    const third = workerShare(config, { index: 2, count: 4 });
    expect(first.config.cacheTilesBytes).toBe(128 * 1024 * 1024);
    expect(first.config.decodeWorkers).toBe(3); // an explicit count is kept
    expect([first.config.indexAtStart, third.config.indexAtStart]).toEqual([true, false]);
    expect(third.config.indexIntervalMs).toBe(0);
    expect(first.niftiCacheDir).not.toBe(third.niftiCacheDir);
  });

  it('serves tiles from two workers on one port and drains a request in flight on SIGTERM', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'medstream-cluster-data-'));
    const run = await runMedstream(
      [
        'serve',
        `${proxy.url}/`,
        '--workers',
        '2',
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--data-dir',
        dataDir,
        '--no-index-at-start',
        '--cache-tiles',
        '0',
        '--shutdown-timeout',
        '30s',
      ],
      { untilStdout: /medstream cluster listening/, timeoutMs: 60_000 },
    );
    try {
      expect(run.code).toBeNull();
      const [ready] = lines(run.stdout, 'medstream cluster listening');
      const url = ready.url as string;
      const primary = ready.pid as number;
      // Each worker's own line may reach the pipe after the primary's.
      await until(() => lines(run.stdout, 'medstream listening').length === 2);
      const workers = lines(run.stdout, 'medstream listening').map((l) => l.pid as number);
      expect(new Set(workers).size).toBe(2);

      const answers: Answer[] = [];
      for (let i = 0; i < 6; i++) answers.push(await get(`${url}/tiles/CMU.svs/0/${i % 3}/0.jpg`));
      for (const a of answers) {
        expect(a.status).toBe(200);
        expect(a.headers['content-type']).toBe('image/jpeg');
        expect(a.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      }
      // ETag / 304 through whichever worker gets the connection.
      const etag = answers[0].headers.etag!;
      const revalidated = await get(`${url}/tiles/CMU.svs/0/0/0.jpg`, { 'If-None-Match': etag });
      expect(revalidated.status).toBe(304);
      expect(revalidated.headers['x-request-id']).toBeDefined();
      const metrics = await get(`${url}/metrics`);
      expect(metrics.body.toString()).toMatch(
        /medstream_http_request_duration_seconds_count\{route="\/tiles\/:id\/:level\/:x\/:file",method="GET",status="200"\} [1-9]/,
      );

      // One access-log line per response, and both workers answered some.
      await until(() => lines(run.stdout, 'request completed').length >= 8);
      const logged = lines(run.stdout, 'request completed');
      expect(logged).toHaveLength(8);
      expect(run.stdout).not.toContain('incoming request');
      expect(new Set(logged.map((l) => l.pid))).toEqual(new Set(workers));
      expect(logged[0]).toMatchObject({ req: { method: 'GET' }, res: { statusCode: 200 } });

      // A tile request whose storage read is held 1.5 s, then SIGTERM to the primary.
      proxy.always(
        { fault: 'delay', ms: 1500 },
        { match: (r) => r.method === 'GET' && r.range !== undefined },
      );
      const inFlight = get(`${url}/tiles/CMU.svs/0/1/1.png`);
      await until(() => proxy.log.some((r) => r.fault === 'delay'));
      const code = await run.stop();
      const res = await inFlight;
      expect(res.status).toBe(200);
      expect(await sharp(res.body).metadata()).toMatchObject({ format: 'png', width: 240, height: 240 });
      expect(code).toBe(0);
      expect(lines(run.stdout, 'draining requests in flight')).toHaveLength(2);
      expect([primary, ...workers].filter(alive)).toEqual([]);
    } finally {
      proxy.reset();
      await run.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);

  it('--no-access-log writes no line per request', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'medstream-cluster-data-'));
    const run = await runMedstream(
      [
        'serve',
        dir,
        '--host',
        '127.0.0.1',
        '--port',
        '0',
        '--data-dir',
        dataDir,
        '--no-index-at-start',
        '--no-access-log',
      ],
      { untilStdout: /medstream listening/, timeoutMs: 60_000 },
    );
    try {
      const url = lines(run.stdout, 'medstream listening')[0].url as string;
      for (let i = 0; i < 3; i++) expect((await get(`${url}/tiles/CMU.svs/0/0/0.jpg`)).status).toBe(200);
      expect(await run.stop()).toBe(0);
      expect(lines(run.stdout, 'request completed')).toEqual([]);
      expect(run.stdout).not.toContain('incoming request');
      expect(lines(run.stdout, 'draining requests in flight')).toHaveLength(1);
    } finally {
      await run.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('keeps every access-log line whole when both workers log under load into one pipe', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'medstream-cluster-data-'));
    const run = await runMedstream(
      ['serve', dir, '--workers', '2', '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir],
      { untilStdout: /medstream cluster listening/, timeoutMs: 60_000 },
    );
    try {
      const url = lines(run.stdout, 'medstream cluster listening')[0].url as string;
      // 16 keep-alive clients, 50 requests each, over a few tiles: most answered by the fast path
      // of both workers, many per event-loop turn, so their lines leave in batched writes.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
      const ids: string[] = [];
      await Promise.all(
        Array.from({ length: 16 }, async (_, c) => {
          for (let i = 0; i < 50; i++) {
            const id = `load-${c}-${i}-${'p'.repeat(i * 7)}`; // lines of varied lengths
            const status = await new Promise<number>((resolve, reject) =>
              http
                .get(
                  `${url}/tiles/CMU.svs/0/${i % 3}/0.jpg`,
                  { agent, headers: { 'x-request-id': id } },
                  (res) => res.resume().on('end', () => resolve(res.statusCode!)),
                )
                .on('error', reject),
            );
            expect(status).toBe(200);
            ids.push(id);
          }
        }),
      );
      agent.destroy();
      expect(await run.stop()).toBe(0);
      const all = run.stdout.split('\n').filter((l) => l !== '');
      for (const line of all) expect(() => JSON.parse(line), line.slice(0, 200)).not.toThrow();
      const logged = lines(run.stdout, 'request completed');
      expect(logged.map((l) => l.reqId as string).sort()).toEqual(ids.sort());
      expect(new Set(logged.map((l) => l.pid)).size).toBe(2);
      expect(logged.filter((l) => l.fastPath === true).length).toBeGreaterThan(700);
    } finally {
      await run.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
