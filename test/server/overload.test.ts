// Bounded decoding: JPEG 2000 decodes run in a worker pool with a bounded queue; when it is full
// the server answers 503 `overloaded` with Retry-After instead of queueing without bound, and
// serves again as soon as the backlog drains. /metrics shows decode times per codec and each
// pool's workers and queue.
import { copyFile, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { fixture } from '../support/fixtures.js';
import { request, startTestServer } from '../support/server.js';

let server: RunningServer;

beforeAll(async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'medstream-overload-'));
  await copyFile(fixture('wsi/svs/tcga-cr-7395-01a-01-ts1.svs'), path.join(dir, 'tcga.svs'));
  server = await startTestServer(dir, ['--decode-workers', '1', '--decode-queue', '1', '--cache-tiles', '0']);
});

afterAll(async () => {
  await server?.close();
});

describe('a full decode queue', () => {
  it('answers 503 overloaded with Retry-After, then serves again', async () => {
    // 16 distinct JPEG 2000 tiles at once: one decodes, one waits, the rest find the queue full.
    const answers = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        request(server, `/tiles/tcga.svs/0/${i % 8}/${Math.floor(i / 8)}.jpg`),
      ),
    );
    const refused = answers.filter((a) => a.status === 503);
    expect(refused.length).toBeGreaterThan(0);
    expect(answers.filter((a) => a.status === 200).length).toBeGreaterThanOrEqual(2);
    expect(answers.every((a) => a.status === 200 || a.status === 503)).toBe(true);
    for (const r of refused) {
      expect(r.headers.get('retry-after')).toBe('1');
      expect(r.json()).toMatchObject({ error: 'overloaded', status: 503 });
    }
    const later = await request(server, '/tiles/tcga.svs/0/3/3.jpg');
    expect(later.status).toBe(200);
  });

  it('exposes decode times per codec and the pool in /metrics', async () => {
    const text = (await request(server, '/metrics')).body.toString();
    const count = /medstream_decode_duration_seconds_count\{codec="jpeg2000"\} (\d+)/.exec(text);
    expect(Number(count?.[1])).toBeGreaterThanOrEqual(3);
    expect(text).toMatch(/medstream_decode_duration_seconds_bucket\{codec="jpeg2000",le="0\.1"\} \d+/);
    expect(text).toMatch(/medstream_decode_pool_workers\{pool="medstream-jp2k"\} 1/);
    expect(text).toMatch(/medstream_decode_queue_depth\{pool="medstream-jp2k"\} 0/);
  });
});
