// /metrics counters of derived frames (src/server/derived-metrics.ts) against real servers over
// generated instances: a first request misses every cache layer and encodes once (its seconds
// observed), the next is a memory hit; a second replica (no memory cache, a real redis-server)
// finds the frame in the bucket's derived prefix, then on its disk, and a frame it encoded itself
// in Redis; concurrent first requests encode once (the others joined or hit); an undecodable
// frame counts a decode failure, an encoder refusal an encode failure, each time it is asked.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../src/cli/serve.js';
import { TransferSyntax } from '../../src/dicom/tags.js';
import { instanceVariant, noiseJ2kVariant, oneBitVariant, STUDIES } from '../support/radiology-studies.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';
import { metric, request, startIndexedServer, until } from '../support/server.js';

const [A] = STUDIES;
const SERIES = A.series[0];
const url = (sop: string, kind: string) =>
  `/dicomweb/studies/${A.uid}/series/${SERIES.uid}/instances/${sop}/${kind}/1`;
const OK1 = '1.2.3.9.1';
const OK2 = '1.2.3.9.2';
const NOISE = '1.2.3.9.3';
const ONEBIT = '1.2.3.9.4';

let dir: string;
let redis: TestRedis;
let first: RunningServer;
let second: RunningServer;

const hits = (s: RunningServer, layer: string) =>
  metric(s, `medstream_derived_cache_hits_total{layer="${layer}"}`);
const encodes = (s: RunningServer, kind: string) =>
  metric(s, `medstream_derived_encodes_total{kind="${kind}"}`);

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'derived-metrics-'));
  const store = path.join(dir, 'store');
  const gen = instanceVariant.bind(null, A, SERIES);
  await mkdir(store, { recursive: true });
  // 4x4 native 12-bit frames, different per instance.
  const native = (seed: number) =>
    new Uint8Array(32).map((_, i) => (i % 2 ? (i * seed) & 0x0f : (i * 37 + seed) & 0xff));
  await writeFile(
    path.join(store, 'ok1.dcm'),
    gen(OK1, TransferSyntax.ExplicitVrLittleEndian, { kind: 'native', frames: [native(3)] }),
  );
  await writeFile(
    path.join(store, 'ok2.dcm'),
    gen(OK2, TransferSyntax.ExplicitVrLittleEndian, { kind: 'native', frames: [native(5)] }),
  );
  // "JPEG 2000" that is noise: the stored frame does not decode.
  await writeFile(path.join(store, 'noise.dcm'), noiseJ2kVariant(A, SERIES, NOISE));
  // 8-bit frames of 1 stored bit: CharLS refuses to encode them.
  await writeFile(path.join(store, 'onebit.dcm'), oneBitVariant(A, SERIES, ONEBIT));
  redis = await startRedis();
  // Two replicas over one bucket, sharing its derived/ prefix; the second keeps nothing in memory.
  [first, second] = await Promise.all([
    startIndexedServer(store, ['--derived-store', 'derived/']),
    startIndexedServer(store, [
      '--derived-store',
      'derived/',
      '--derived-memory',
      '0',
      '--redis-url',
      redis.url,
    ]),
  ]);
}, 60_000);

afterAll(async () => {
  await Promise.all([first?.close(), second?.close()]);
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('derived-frame metrics', () => {
  it('a first request misses and encodes once, with its seconds; the next one is a memory hit', async () => {
    for (const layer of ['memory', 'shared', 'disk', 'store']) expect(await hits(first, layer)).toBe(0);
    expect(await metric(first, 'medstream_derived_cache_misses_total')).toBe(0);
    expect(await encodes(first, 'htj2k')).toBe(0);

    expect((await request(first, url(OK1, 'htj2k'))).status).toBe(200);
    expect(await metric(first, 'medstream_derived_cache_misses_total')).toBe(1);
    expect(await encodes(first, 'htj2k')).toBe(1);
    expect(await encodes(first, 'jls')).toBe(0);
    expect(await metric(first, 'medstream_derived_encode_duration_seconds_count{kind="htj2k"}')).toBe(1);
    expect(
      await metric(first, 'medstream_derived_encode_duration_seconds_sum{kind="htj2k"}'),
    ).toBeGreaterThan(0);
    expect(await metric(first, 'medstream_derived_store_writes_total')).toBe(1);
    expect(await metric(first, 'medstream_derived_disk_files')).toBe(1);
    expect(await metric(first, 'medstream_derived_memory_bytes')).toBeGreaterThan(0);

    expect((await request(first, url(OK1, 'htj2k'))).status).toBe(200);
    expect(await hits(first, 'memory')).toBe(1);
    expect(await metric(first, 'medstream_derived_cache_misses_total')).toBe(1);
    expect(await encodes(first, 'htj2k')).toBe(1);
  });

  it('another replica finds it in the bucket, then on its disk, and its own encode in Redis', async () => {
    const a = await request(second, url(OK1, 'htj2k'));
    expect(a.status).toBe(200);
    expect(await hits(second, 'store')).toBe(1);
    expect(await encodes(second, 'htj2k')).toBe(0);
    // No memory cache here: the copy the bucket's answer left on disk answers next.
    expect((await request(second, url(OK1, 'htj2k'))).body).toEqual(a.body);
    expect(await hits(second, 'disk')).toBe(1);
    expect(await hits(second, 'memory')).toBe(0);

    expect((await request(second, url(OK2, 'htj2k'))).status).toBe(200);
    expect(await encodes(second, 'htj2k')).toBe(1);
    // Redis writes are fire and forget: wait for this one to land.
    await until(async () => (await metric(second, 'medstream_redis_writes_in_flight')) === 0);
    expect((await request(second, url(OK2, 'htj2k'))).status).toBe(200);
    expect(await hits(second, 'shared')).toBe(1);
    expect(await encodes(second, 'htj2k')).toBe(1);
  });

  it('concurrent first requests encode once: the others joined it or found its result', async () => {
    const joined = await metric(first, 'medstream_derived_joined_total');
    const memory = await hits(first, 'memory');
    const answers = await Promise.all([1, 2, 3].map(() => request(first, url(OK2, 'lossy'))));
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(await encodes(first, 'lossy')).toBe(1);
    const others =
      (await metric(first, 'medstream_derived_joined_total')) -
      joined +
      (await hits(first, 'memory')) -
      memory;
    expect(others).toBe(2);
  });

  it('counts decode and encode failures each time, per representation', async () => {
    const failures = (kind: string, stage: string) =>
      metric(first, `medstream_derived_failures_total{kind="${kind}",stage="${stage}"}`);
    expect(await failures('htj2k', 'decode')).toBe(0);
    expect((await request(first, url(NOISE, 'htj2k'))).status).toBe(500);
    expect(await failures('htj2k', 'decode')).toBe(1);
    expect(await failures('htj2k', 'encode')).toBe(0);
    for (let attempt = 1; attempt <= 2; attempt++) {
      expect((await request(first, url(ONEBIT, 'jls'))).status).toBe(415);
      expect(await failures('jls', 'encode')).toBe(attempt);
    }
    expect(await failures('jls', 'decode')).toBe(0);
    // The failed encodes were started, not observed as successful ones.
    expect(await encodes(first, 'jls')).toBe(2);
    expect(await metric(first, 'medstream_derived_encode_duration_seconds_count{kind="jls"}')).toBe(0);
  });
});
