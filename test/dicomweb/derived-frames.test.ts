// Derived frames without HTTP: every kind of a known signed 12-bit frame decodes back to exactly
// its samples (thumbnails: to their 4x4 block means); encodes are deterministic; concurrent first
// requests encode once; an encoder failure is typed, not cached, and does not poison the pool; the
// disk cache holds its byte bound, survives a restart, and the write-back store and the shared
// Redis cache (a real redis-server) serve a second replica without an encode.

import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredInstance } from '../../src/catalog/catalog.js';
import { parseJ2kCodestream, rpclViolations } from '../../src/codecs/j2k-markers.js';
import { TransferSyntax } from '../../src/dicom/tags.js';
import { DerivedCache } from '../../src/dicomweb/derived-cache.js';
import { DerivedFrames } from '../../src/dicomweb/derived.js';
import { reduce } from '../../src/dicomweb/derived-samples.js';
import { LocalStorage } from '../../src/storage/local.js';
import { RedisSharedCache } from '../../src/tiles/shared-cache.js';
import { startRedis } from '../support/redis-server.js';
import { decodeHtj2k, decodeJls } from '../support/j2k-decode.js';

const W = 64;
const H = 48;
/** Signed 12-bit samples with structure (a ramp, a disc and noise). */
const SAMPLES = Array.from({ length: W * H }, (_, i) => {
  const x = i % W;
  const y = Math.floor(i / W);
  const disc = (x - 30) ** 2 + (y - 20) ** 2 < 150 ? 1500 : 0;
  return Math.max(-2048, Math.min(2047, x * 20 - 1000 + disc + ((i * 7919) % 97)));
});

function nativeBytes(samples: number[]): Uint8Array {
  const out = new Uint8Array(samples.length * 2);
  const view = new DataView(out.buffer);
  samples.forEach((v, i) => view.setUint16(2 * i, v & 0xffff, true));
  return out;
}

function instance(id: string, over: Record<string, number> = {}): StoredInstance {
  const us = (v: number) => ({ vr: 'US', Value: [v] });
  const tags: Record<string, number> = {
    '00280002': 1,
    '00280010': H,
    '00280011': W,
    '00280100': 16,
    '00280101': 12,
    '00280103': 1,
    ...over,
  };
  return {
    key: id,
    objectKey: id,
    sopUid: id,
    seriesUid: '1',
    studyUid: '1',
    version: `1-${id}`,
    size: 1,
    transferSyntax: TransferSyntax.ExplicitVrLittleEndian,
    json: Object.fromEntries(Object.entries(tags).map(([k, v]) => [k, us(v)])),
  } as unknown as StoredInstance;
}

let dir: string;
const closers: Array<() => Promise<void>> = [];
const frames = (cache: DerivedCache) => {
  const d = new DerivedFrames({ cache, workers: 1 });
  closers.push(() => d.close());
  return d;
};
const STORED = nativeBytes(SAMPLES);
const read = async () => STORED;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'derived-'));
});
afterAll(async () => {
  for (const close of closers) await close();
  await rm(dir, { recursive: true, force: true });
});

describe('derived frames', () => {
  it('every kind decodes to the stored samples (thumbnails to their block means), deterministically', async () => {
    const derived = frames(new DerivedCache({ maxBytes: 0 }));
    const ct = instance('a');
    const htj2k = await derived.frame(ct, 1, 'htj2k', read);
    expect(htj2k.transferSyntax).toBe(TransferSyntax.Htj2kLosslessRpcl);
    const cs = parseJ2kCodestream(htj2k.bytes);
    expect(cs.progression).toBe('RPCL');
    expect(cs.tlm).toHaveLength(cs.tileParts.length);
    expect(rpclViolations(cs)).toEqual([]);
    expect([cs.width, cs.height, cs.bitDepth, cs.signed]).toEqual([W, H, 12, true]);
    expect((await decodeHtj2k(htj2k.bytes)).samples).toEqual(SAMPLES);

    const jls = await derived.frame(ct, 1, 'jls', read);
    expect(jls.transferSyntax).toBe(TransferSyntax.JpegLsLossless);
    expect((await decodeJls(jls.bytes, true)).samples).toEqual(SAMPLES);

    const thumb = reduce(SAMPLES, W, H, 4);
    expect([thumb.width, thumb.height]).toEqual([16, 12]);
    for (const kind of ['htj2kThumbnail', 'jlsThumbnail'] as const) {
      const t = await derived.frame(ct, 1, kind, read);
      const decoded = kind === 'jlsThumbnail' ? await decodeJls(t.bytes, true) : await decodeHtj2k(t.bytes);
      expect([decoded.width, decoded.height], kind).toEqual([16, 12]);
      expect(decoded.samples, kind).toEqual([...thumb.samples]);
    }
    // A block mean computed by hand: the top-left 4x4 block.
    let sum = 0;
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) sum += SAMPLES[y * W + x];
    expect(thumb.samples[0]).toBe(Math.round(sum / 16));

    const lossy = await derived.frame(ct, 1, 'lossy', read);
    expect(lossy.transferSyntax).toBe(TransferSyntax.Htj2k);
    expect(parseJ2kCodestream(lossy.bytes).reversible).toBe(false);
    const approx = (await decodeHtj2k(lossy.bytes)).samples;
    const error = approx.reduce((m, v, i) => Math.max(m, Math.abs(v - SAMPLES[i])), 0);
    expect(error).toBeGreaterThan(0);
    expect(error).toBeLessThan(200);

    // Same frame, same bytes: a second encoder (another replica) agrees byte for byte.
    const other = frames(new DerivedCache({ maxBytes: 0 }));
    for (const kind of ['htj2k', 'jls', 'lossy', 'htj2kThumbnail'] as const) {
      const again = await other.make(ct, STORED, kind);
      const first = await derived.frame(ct, 1, kind, read);
      expect(Buffer.from(again).equals(Buffer.from(first.bytes)), kind).toBe(true);
    }
  });

  it('concurrent first requests for one frame encode it once', async () => {
    const derived = frames(new DerivedCache({ maxBytes: 0, memoryBytes: 1 << 20 }));
    let reads = 0;
    const slowRead = async () => {
      reads++;
      await new Promise((r) => setTimeout(r, 20));
      return STORED;
    };
    const results = await Promise.all(
      Array.from({ length: 6 }, () => derived.frame(instance('b'), 1, 'htj2k', slowRead)),
    );
    expect(derived.encodes).toBe(1);
    expect(reads).toBe(1);
    expect(new Set(results.map((r) => Buffer.from(r.bytes).toString('base64'))).size).toBe(1);
    // Served from memory afterwards.
    await derived.frame(instance('b'), 1, 'htj2k', slowRead);
    expect(derived.encodes).toBe(1);
  });

  it('an encoder failure is typed, not cached, and does not poison later encodes', async () => {
    const derived = frames(new DerivedCache({ maxBytes: 1 << 20, dir: path.join(dir, 'fail') }));
    // CharLS refuses 1-bit samples (a C++ exception inside the WASM module).
    const oneBit = instance('c', { '00280100': 8, '00280101': 1, '00280103': 0 });
    const bits = async () => new Uint8Array(W * H).map((_, i) => i & 1);
    for (let attempt = 0; attempt < 2; attempt++) {
      await expect(derived.frame(oneBit, 1, 'jls', bits)).rejects.toMatchObject({
        code: 'unsupported_format',
      });
    }
    expect(derived.encodes).toBe(2); // tried again: the failure was not cached
    const ok = await derived.frame(instance('d'), 1, 'jls', read);
    expect((await decodeJls(ok.bytes, true)).samples).toEqual(SAMPLES);
    // A frame that does not decode (JPEG 2000 that is noise) is a typed error too.
    const noise = { ...instance('e'), transferSyntax: TransferSyntax.Jpeg2000Lossless } as StoredInstance;
    await expect(
      derived.frame(noise, 1, 'htj2k', async () => new Uint8Array(300).fill(7)),
    ).rejects.toMatchObject({
      code: 'decode_error',
    });
    expect(derived.encodes).toBe(3);
  });

  it('the disk cache holds its byte bound, evicts the least recently used and survives a restart', async () => {
    const cacheDir = path.join(dir, 'bound');
    const cache = new DerivedCache({ dir: cacheDir, maxBytes: 10_000 });
    const key = (n: number) => n.toString(16).padStart(40, '0');
    for (let n = 0; n < 8; n++) {
      await cache.set(key(n), new Uint8Array(3000).fill(n));
      if (n >= 1) await cache.get(key(0)); // key 0 stays recently used
      const files = await readdir(cacheDir);
      const sizes = await Promise.all(files.map(async (f) => (await stat(path.join(cacheDir, f))).size));
      expect(sizes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(10_000);
      expect(cache.stats().diskBytes).toBeLessThanOrEqual(10_000);
    }
    expect((await cache.get(key(0)))?.[0]).toBe(0);
    expect(await cache.get(key(1))).toBeUndefined();
    expect((await cache.get(key(7)))?.[0]).toBe(7);
    // A disk that fails (here: the cache directory replaced by a file) costs the entry, not the answer.
    const broken = path.join(dir, 'broken');
    await writeFile(broken, 'not a directory');
    const failing = new DerivedFrames({
      cache: new DerivedCache({ dir: broken, maxBytes: 1 << 20 }),
      workers: 1,
    });
    closers.push(() => failing.close());
    expect((await failing.frame(instance('h'), 1, 'jlsThumbnail', read)).bytes.length).toBeGreaterThan(0);
    // Too big for the bound: served, never written.
    await cache.set(key(99), new Uint8Array(20_000));
    expect((await readdir(cacheDir)).includes(key(99))).toBe(false);
    // A new process adopts what is there, within a smaller bound.
    const restarted = new DerivedCache({ dir: cacheDir, maxBytes: 4000 });
    expect((await restarted.get(key(7)))?.[0]).toBe(7);
    expect(restarted.stats().diskBytes).toBeLessThanOrEqual(4000);
  });

  it('--derived-store: a second replica reads what the first wrote, without encoding', async () => {
    const bucket = path.join(dir, 'bucket');
    await mkdir(bucket);
    const storage = await LocalStorage.create(bucket);
    closers.push(() => storage.close());
    const first = frames(
      new DerivedCache({
        dir: path.join(dir, 'r1'),
        maxBytes: 1 << 20,
        store: { storage, prefix: 'derived/' },
      }),
    );
    const a = await first.frame(instance('f'), 1, 'htj2k', read);
    expect((await readdir(path.join(bucket, 'derived'))).length).toBe(1);
    const second = frames(
      new DerivedCache({
        dir: path.join(dir, 'r2'),
        maxBytes: 1 << 20,
        store: { storage, prefix: 'derived/' },
      }),
    );
    const b = await second.frame(instance('f'), 1, 'htj2k', async () => {
      throw new Error('the stored frame should not be read');
    });
    expect(second.encodes).toBe(0);
    expect(Buffer.from(b.bytes).equals(Buffer.from(a.bytes))).toBe(true);
  });

  it('--redis-url: a second replica finds hot frames in the shared Redis cache', async () => {
    const redis = await startRedis();
    closers.push(() => redis.stop());
    const client = async () => {
      const c = new RedisSharedCache({ url: redis.url, ttlMs: 60_000, timeoutMs: 2000 });
      closers.unshift(() => c.close());
      expect(await c.ready(5000)).toBe(true);
      return c;
    };
    const one = await client();
    const first = frames(new DerivedCache({ maxBytes: 0, shared: one }));
    const a = await first.frame(instance('g'), 1, 'jlsThumbnail', read);
    for (let i = 0; i < 100 && one.stats().writesInFlight + (one.stats().sets === 0 ? 1 : 0) > 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    const second = frames(new DerivedCache({ maxBytes: 0, shared: await client() }));
    const b = await second.frame(instance('g'), 1, 'jlsThumbnail', async () => {
      throw new Error('the stored frame should not be read');
    });
    expect(second.encodes).toBe(0);
    expect(Buffer.from(b.bytes).equals(Buffer.from(a.bytes))).toBe(true);
  });
});
