// The result store (ai/results.ts) on its own: two stores on one real redis-server stand for two
// replicas. A volume made in one is read whole from the other (geometry with -0 and the voxels
// identical); results expire after the TTL on both (404, memory-only stores too); a result over
// the shared cap is refused (400), and so is, without Redis, one over the memory for results;
// a Redis that is down is a typed 503. A volume's gzip (the `.raw` route) is made once and kept
// with it while it fits, shared stores wrap the deflate Redis holds.

import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResultStore, type VolumeResult } from '../../src/ai/results.js';
import { RedisResultBackend } from '../../src/ai/shared-results.js';
import { MedStreamError } from '../../src/errors.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';

let redis: TestRedis;
const stores: ResultStore[] = [];

function store(ttlMs = 60_000, maxSharedBytes?: number, url = redis.url): ResultStore {
  const s = new ResultStore({
    maxBytes: 1 << 20,
    ttlMs,
    maxSharedBytes,
    shared: new RedisResultBackend({ url, ttlMs }),
  });
  stores.push(s);
  return s;
}

function volume(n = 4 * 3 * 2): VolumeResult {
  return {
    kind: 'volume',
    task: 'heatmap',
    geometry: {
      dims: [4, 3, n / 12],
      affine: [-0.5, 0, 0, 10, -0, 0.75, 0, -2, 0, 0, 3, 7, 0, 0, 0, 1],
      source: {
        kind: 'dicom',
        instances: Array.from({ length: n / 12 }, (_, k) => ({
          sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
          sopInstanceUid: `1.2.3.${k}`,
          key: `s/${k}.dcm`,
        })),
        frameOfReferenceUid: '1.2.3.9',
        studyInstanceUid: '1.2.3',
        seriesInstanceUid: '1.2.3.1',
        patient: { PatientName: 'A^B' },
      },
    },
    voxels: Uint8Array.from({ length: n }, (_, i) => (i * 37) % 256),
    labels: [],
    model: 'heat',
    instances: ['1.2.3.0', undefined],
  };
}

const code = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: unknown) => (e instanceof MedStreamError ? e.code : String(e)),
  );

beforeAll(async () => {
  redis = await startRedis();
});

afterAll(async () => {
  for (const s of stores) await s.close();
  await redis?.stop();
});

describe('ResultStore shared through Redis', () => {
  it('reads a volume and a plane made by another store, identical', async () => {
    const [a, b] = [store(), store()];
    const made = volume();
    const id = await a.putVolume(made, '1.2.3');
    expect(await b.studyOf(id)).toBe('1.2.3');
    const read = await b.volume(id);
    // Stored with when it was made (a SEG's ContentDate), the same on both.
    expect(read).toEqual({ ...made, created: expect.any(Number) });
    expect(read.created).toBe((await a.volume(id)).created);
    expect(Math.abs(read.created! - Date.now())).toBeLessThan(60_000);
    expect(Object.is(read.geometry.affine[4], -0)).toBe(true);
    expect(await b.slice(id, 1)).toEqual(await a.slice(id, 1));
    const plane = await a.putPlane({ data: new Uint8Array([0, 255, 7, 9]), width: 2, height: 2 });
    expect(await b.studyOf(plane)).toBeUndefined();
    expect((await b.get(plane)).equals(await a.get(plane))).toBe(true);
    expect(await code(b.get('0b9f4a3e-0000-4000-8000-000000000000'))).toBe('not_found');
  });

  it('forgets results after the TTL, on every store', async () => {
    const [a, b] = [store(1000), store(1000)];
    const id = await a.putVolume(volume());
    await b.volume(id); // now in b's memory too
    await new Promise((r) => setTimeout(r, 1100));
    expect(await code(a.volume(id))).toBe('not_found');
    expect(await code(b.volume(id))).toBe('not_found');
    expect(await code(b.studyOf(id))).toBe('not_found');
    const memory = new ResultStore({ maxBytes: 1 << 20, ttlMs: 50 });
    const local = await memory.putPlane({ data: new Uint8Array(4), width: 2, height: 2 });
    await memory.get(local);
    await new Promise((r) => setTimeout(r, 80));
    expect(await code(memory.get(local))).toBe('not_found');
  }, 10_000);

  it('refuses a result over the shared cap', async () => {
    const a = store(60_000, 100);
    // 12 000 voxels of noise deflate to well over 100 bytes.
    const big = volume(12_000);
    let x = 1;
    big.voxels = big.voxels.map(() => ((x = (x * 1103515245 + 12345) >>> 0), x >>> 24));
    const e = await a.putVolume(big).catch((err: unknown) => err as MedStreamError);
    expect(e).toBeInstanceOf(MedStreamError);
    expect((e as MedStreamError).code).toBe('bad_request');
    expect((e as MedStreamError).message).toMatch(/--ai-results-shared-max/);
  });

  it('refuses, without Redis, a volume that would not fit in memory (its links would be 404)', async () => {
    const small = new ResultStore({ maxBytes: 2048, ttlMs: 60_000 });
    expect(() => small.assertFits(4096)).toThrow(/--ai-results/);
    expect(await code(small.putVolume(volume(1200)))).toBe('bad_request');
    expect(await code(small.putVolume(volume(24)))).toBe('resolved');
    // Shared, the same volume is kept in Redis (and read back from there by every replica).
    const shared = new ResultStore({
      maxBytes: 2048,
      ttlMs: 60_000,
      shared: new RedisResultBackend({ url: redis.url, ttlMs: 60_000 }),
    });
    stores.push(shared);
    const id = await shared.putVolume(volume(1200));
    expect((await shared.volume(id)).voxels).toEqual(volume(1200).voxels);
  });

  it('gzips a volume once and keeps it with the result, while both fit', async () => {
    const memory = new ResultStore({ maxBytes: 1 << 20, ttlMs: 60_000 });
    const made = volume(1200);
    const id = await memory.putVolume(made);
    const [first, ...others] = await Promise.all([1, 2, 3].map(() => memory.rawGzip(id)));
    for (const other of others) expect(other).toBe(first);
    expect(await memory.rawGzip(id)).toBe(first);
    expect(first.subarray(0, 3)).toEqual(Buffer.from([0x1f, 0x8b, 8]));
    expect(new Uint8Array(gunzipSync(first))).toEqual(made.voxels);
    expect(
      await code(memory.rawGzip(await memory.putPlane({ data: new Uint8Array(4), width: 2, height: 2 }))),
    ).toBe('not_found');

    // 1200 voxels fit in 2400 bytes, not with their gzip: made for each request, the result kept.
    const tight = new ResultStore({ maxBytes: 2400, ttlMs: 60_000 });
    const noise = volume(1200);
    let x = 7;
    noise.voxels = noise.voxels.map(() => ((x = (x * 1103515245 + 12345) >>> 0), x >>> 24));
    const tightId = await tight.putVolume(noise);
    const [g1, g2] = [await tight.rawGzip(tightId), await tight.rawGzip(tightId)];
    expect(g2).not.toBe(g1);
    expect(g2.equals(g1)).toBe(true);
    expect(new Uint8Array(gunzipSync(g1))).toEqual(noise.voxels);
    expect((await tight.volume(tightId)).voxels).toEqual(noise.voxels);

    // Shared: the gzip wraps the deflate Redis holds, the same bytes on both stores.
    const [a, b] = [store(), store()];
    const sharedId = await a.putVolume(made);
    const fromB = await b.rawGzip(sharedId);
    expect(fromB.equals(await a.rawGzip(sharedId))).toBe(true);
    expect(await b.rawGzip(sharedId)).toBe(fromB);
    expect(new Uint8Array(gunzipSync(fromB))).toEqual(made.voxels);
    expect(fromB.equals(first)).toBe(true);
  });

  it('answers a typed 503 when Redis is down', async () => {
    const down = store(60_000, undefined, 'redis://127.0.0.1:1');
    expect(await code(down.studyOf('0b9f4a3e-0000-4000-8000-000000000000'))).toBe('storage_error');
    expect(await code(down.putVolume(volume()))).toBe('storage_error');
  });
});
