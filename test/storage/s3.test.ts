// S3Storage against a real s3rver (fixtures uploaded here), and through the fault proxy for
// retries, truncation, deadlines and cancellation. Request counts are taken where requests
// really arrive: at the s3rver front (`s3.requestLog`) and at the proxy (`proxy.log`).
import { readFile } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { S3Storage, parseS3Url, type S3StorageOptions } from '../../src/storage/s3.js';
import type { RetryPolicy } from '../../src/storage/retry.js';
import type { StorageRequestEvent } from '../../src/storage/types.js';
import {
  AccessDenied,
  Cancelled,
  ConfigError,
  InvalidId,
  InvalidRange,
  NotFound,
  ObjectChanged,
  StorageUnavailable,
} from '../../src/errors.js';
import { startS3Server, S3RVER_CREDENTIALS, type TestS3Server } from '../support/s3-server.js';
import { startFaultProxy, type Fault, type FaultProxy } from '../support/fault-proxy.js';
import { fixture } from '../support/fixtures.js';

const BUCKET = 'medstream-test';
const SVS_KEY = 'CMU-1-Small-Region.svs';
const SMALL_KEY = 'small.svs';
const MANY = 25;

let s3: TestS3Server;
let svs: Uint8Array;
let small: Uint8Array;
const storages: S3Storage[] = [];

function makeStorage(options: Partial<S3StorageOptions> = {}): S3Storage {
  const storage = new S3Storage({
    bucket: BUCKET,
    prefix: 'slides/',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: S3RVER_CREDENTIALS,
    ...options,
  });
  storages.push(storage);
  return storage;
}

/** Requests that reached s3rver while `run` ran. */
async function serverRequestsDuring(run: () => Promise<unknown>): Promise<number> {
  const before = s3.requestLog.length;
  await run();
  return s3.requestLog.length - before;
}

beforeAll(async () => {
  s3 = await startS3Server();
  await s3.createBucket(BUCKET);
  svs = await readFile(fixture(`wsi/svs/${SVS_KEY}`));
  small = await readFile(fixture(`wsi/openslide/${SMALL_KEY}`));
  await Promise.all([
    s3.upload(BUCKET, `slides/${SVS_KEY}`, svs),
    s3.upload(BUCKET, `slides/${SMALL_KEY}`, fixture(`wsi/openslide/${SMALL_KEY}`)),
    s3.upload(BUCKET, 'slides/sub/boxes.tiff', fixture('wsi/openslide/boxes.tiff')),
    s3.upload(BUCKET, 'slides/sub/deeper/unopenable.tiff', fixture('wsi/openslide/unopenable.tiff')),
    ...Array.from({ length: MANY }, (_, i) =>
      s3.upload(BUCKET, `slides/many/obj-${String(i).padStart(3, '0')}.bin`, new Uint8Array([i])),
    ),
  ]);
});

afterAll(async () => {
  await Promise.all(storages.map((s) => s.close()));
  await s3?.close();
});

describe('parseS3Url', () => {
  it('splits bucket and prefix and normalises the prefix', () => {
    expect(parseS3Url('s3://my-bucket')).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseS3Url('s3://my-bucket/')).toEqual({ bucket: 'my-bucket', prefix: '' });
    expect(parseS3Url('s3://my.bucket/slides')).toEqual({ bucket: 'my.bucket', prefix: 'slides/' });
    expect(parseS3Url('s3://b12/a/b/')).toEqual({ bucket: 'b12', prefix: 'a/b/' });
  });

  it.each([
    's3://',
    's3:///prefix',
    'http://bucket/x',
    's3://Bad_Bucket!',
    's3://ab',
    's3://a..b/x',
    's3://bkt/../x',
    's3://bkt/a//b',
    's3://bkt/x?y=1',
  ])('rejects %s with ConfigError', (url) => {
    expect(() => parseS3Url(url)).toThrow(ConfigError);
  });
});

describe('S3Storage against s3rver', () => {
  it('stats an object: size, unquoted ETag, identity', async () => {
    const stat = await makeStorage().stat(SVS_KEY);
    expect(stat.key).toBe(SVS_KEY);
    expect(stat.size).toBe(svs.length);
    expect(stat.etag).toMatch(/^[0-9a-f]{32}$/);
    expect(stat.identity).toBe(`${svs.length}-${stat.etag}`);
    expect(stat.lastModified).toBeInstanceOf(Date);
  });

  it('reads ranges at the start, middle and last byte, and a whole small file', async () => {
    const storage = makeStorage();
    const source = await storage.open(SVS_KEY);
    expect(source.size).toBe(svs.length);
    const cases: Array<[number, number]> = [
      [0, 16],
      [1_000_000, 65_536],
      [svs.length - 1, 1],
      [svs.length - 300_000, 300_000],
    ];
    for (const [offset, length] of cases) {
      const bytes = await source.read(offset, length);
      expect(bytes.length).toBe(length);
      expect(Buffer.from(bytes).equals(svs.subarray(offset, offset + length))).toBe(true);
    }
    const last = s3.requestLog.at(-1);
    expect(last?.range).toBe(`bytes=${svs.length - 300_000}-${svs.length - 1}`);
    // Reads are bound to the opened version.
    expect(last?.ifMatch).toBe(`"${(await storage.stat(SVS_KEY)).etag}"`);

    const whole = await storage.open(SMALL_KEY);
    expect(Buffer.from(await whole.read(0, small.length)).equals(small)).toBe(true);
  });

  it('lists below its prefix with folders from the delimiter', async () => {
    const storage = makeStorage();
    const root = await storage.list({ delimiter: '/' });
    expect(root.objects.map((o) => o.key).sort()).toEqual([SVS_KEY, SMALL_KEY]);
    expect(root.prefixes.sort()).toEqual(['many/', 'sub/']);
    expect(root.nextCursor).toBeUndefined();
    const svsInfo = root.objects.find((o) => o.key === SVS_KEY);
    expect(svsInfo?.size).toBe(svs.length);
    expect(svsInfo?.etag).toMatch(/^[0-9a-f]{32}$/);

    const sub = await storage.list({ prefix: 'sub/', delimiter: '/' });
    expect(sub.objects.map((o) => o.key)).toEqual(['sub/boxes.tiff']);
    expect(sub.prefixes).toEqual(['sub/deeper/']);

    const flat = await storage.list({ prefix: 'sub/' });
    expect(flat.objects.map((o) => o.key).sort()).toEqual(['sub/boxes.tiff', 'sub/deeper/unopenable.tiff']);
    expect(flat.prefixes).toEqual([]);

    const bucketRoot = await makeStorage({ prefix: '' }).list({ delimiter: '/' });
    expect(bucketRoot.prefixes).toEqual(['slides/']);
  });

  it('pages through more objects than the limit with the cursor', async () => {
    const storage = makeStorage();
    const keys: string[] = [];
    const pageSizes: number[] = [];
    let cursor: string | undefined;
    do {
      const page = await storage.list({ prefix: 'many/', limit: 10, ...(cursor ? { cursor } : {}) });
      pageSizes.push(page.objects.length);
      keys.push(...page.objects.map((o) => o.key));
      cursor = page.nextCursor;
    } while (cursor);
    expect(pageSizes).toEqual([10, 10, 5]);
    expect(keys).toEqual(
      Array.from({ length: MANY }, (_, i) => `many/obj-${String(i).padStart(3, '0')}.bin`),
    );
  });

  it('clamps the page size to 1..1000', async () => {
    const storage = makeStorage();
    await storage.list({ prefix: 'many/', limit: 5000 });
    expect(s3.requestLog.at(-1)?.url).toContain('max-keys=1000');
    const one = await storage.list({ prefix: 'many/', limit: 0 });
    expect(s3.requestLog.at(-1)?.url).toContain('max-keys=1&');
    expect(one.objects).toHaveLength(1);
    expect(one.nextCursor).toBeDefined();
  });

  it('throws NotFound for a missing key and for a missing bucket', async () => {
    const storage = makeStorage();
    await expect(storage.stat('no/such.svs')).rejects.toBeInstanceOf(NotFound);
    await expect(storage.open('no/such.svs')).rejects.toBeInstanceOf(NotFound);

    const noBucket = makeStorage({ bucket: 'no-such-bucket' });
    await expect(noBucket.stat(SVS_KEY)).rejects.toBeInstanceOf(NotFound);
    const listError = await noBucket.list().catch((e: unknown) => e);
    expect(listError).toBeInstanceOf(NotFound);
    expect((listError as Error).message).toContain('bucket "no-such-bucket" does not exist');
  });

  it('throws InvalidRange for reads past the end without asking the store', async () => {
    const source = await makeStorage().open(SMALL_KEY);
    const requests = await serverRequestsDuring(async () => {
      await expect(source.read(small.length - 10, 11)).rejects.toBeInstanceOf(InvalidRange);
      await expect(source.read(small.length, 1)).rejects.toBeInstanceOf(InvalidRange);
      await expect(source.read(-1, 4)).rejects.toBeInstanceOf(InvalidRange);
      await expect(source.read(0, 0)).rejects.toBeInstanceOf(InvalidRange);
    });
    expect(requests).toBe(0);
  });

  it('refuses hostile keys with InvalidId before any request', async () => {
    const storage = makeStorage();
    const requests = await serverRequestsDuring(async () => {
      for (const key of ['../x', '%2e%2e/x', '/etc/passwd', 'a/../../x', 'a\\b', '']) {
        await expect(storage.stat(key)).rejects.toBeInstanceOf(InvalidId);
        await expect(storage.open(key)).rejects.toBeInstanceOf(InvalidId);
      }
      await expect(storage.list({ prefix: '../' })).rejects.toBeInstanceOf(InvalidId);
    });
    expect(requests).toBe(0);
  });

  it('fails reads with ObjectChanged once the object is replaced', async () => {
    const original = new Uint8Array(4096).fill(1);
    await s3.upload(BUCKET, 'slides/replace/a.bin', original);
    const storage = makeStorage();
    const source = await storage.open('replace/a.bin');
    expect(await source.read(100, 10)).toEqual(original.subarray(100, 110));

    await s3.upload(BUCKET, 'slides/replace/a.bin', new Uint8Array(4096).fill(2));
    await expect(source.read(100, 10)).rejects.toBeInstanceOf(ObjectChanged);

    await s3.upload(BUCKET, 'slides/replace/a.bin', new Uint8Array(1000).fill(3));
    await expect(source.read(0, 10)).rejects.toBeInstanceOf(ObjectChanged);
    await expect(source.read(2000, 10)).rejects.toBeInstanceOf(ObjectChanged);

    const reopened = await storage.open('replace/a.bin');
    expect(reopened.identity).not.toBe(source.identity);
    expect(await reopened.read(0, 4)).toEqual(new Uint8Array(4).fill(3));
  });

  it('reports every request to the observer', async () => {
    const events: StorageRequestEvent[] = [];
    const storage = makeStorage({ observer: { onRequest: (e) => events.push(e) } });
    const source = await storage.open(SMALL_KEY);
    await source.read(0, 100);
    await storage.list({ prefix: 'sub/' });
    await storage.stat('missing.svs').catch(() => undefined);
    expect(
      events.map(({ kind, key, bytes, outcome, attempt }) => ({ kind, key, bytes, outcome, attempt })),
    ).toEqual([
      { kind: 'stat', key: SMALL_KEY, bytes: 0, outcome: 'ok', attempt: 1 },
      { kind: 'read', key: SMALL_KEY, bytes: 100, outcome: 'ok', attempt: 1 },
      { kind: 'list', key: 'sub/', bytes: 0, outcome: 'ok', attempt: 1 },
      { kind: 'stat', key: 'missing.svs', bytes: 0, outcome: 'not_found', attempt: 1 },
    ]);
    for (const e of events) expect(e.ms).toBeGreaterThanOrEqual(0);
  });
});

describe('S3Storage through the fault proxy', () => {
  const FAST: RetryPolicy = {
    maxAttempts: 6,
    deadlineMs: 8_000,
    attemptTimeoutMs: 1_000,
    baseDelayMs: 5,
    maxDelayMs: 20,
  };
  const OFFSET = 500_000;
  const LENGTH = 65_536;
  const expected = () => Buffer.from(svs.subarray(OFFSET, OFFSET + LENGTH));
  let proxy: FaultProxy;

  beforeAll(async () => {
    proxy = await startFaultProxy(s3.endpoint);
  });
  afterAll(async () => {
    await proxy?.close();
  });
  beforeEach(() => proxy.reset());
  afterEach(async () => {
    await proxy.idle();
  });

  /** Opens the slide through the proxy, then clears the proxy log so it only holds the read. */
  async function openViaProxy(policy: RetryPolicy = FAST, observer?: S3StorageOptions['observer']) {
    const storage = makeStorage({ endpoint: proxy.url, retry: policy, ...(observer ? { observer } : {}) });
    const source = await storage.open(SVS_KEY);
    proxy.reset();
    return { storage, source };
  }

  it.each<[string, Fault, number]>([
    ['503', { fault: '503' }, 2],
    ['500', { fault: '500' }, 1],
    ['SlowDown', { fault: 'slowdown' }, 3],
    ['connection reset', { fault: 'reset' }, 2],
    ['truncated body', { fault: 'truncate' }, 2],
    ['body cut short at a clean end of stream', { fault: 'truncate', withoutLength: true }, 1],
  ])('retries %s and returns the right bytes', async (_name, fault, times) => {
    const { source } = await openViaProxy();
    proxy.plan(Array.from({ length: times }, () => fault));
    const reached = await serverRequestsDuring(async () => {
      expect(Buffer.from(await source.read(OFFSET, LENGTH)).equals(expected())).toBe(true);
    });
    expect(proxy.requestCount).toBe(times + 1);
    expect(proxy.log.at(-1)?.fault).toBe('pass');
    // Faults answered by the proxy never reach the store; truncated ones did.
    expect(reached).toBe(fault.fault === 'truncate' ? times + 1 : 1);
  });

  it('retries a first byte delayed past the attempt timeout', async () => {
    const { source } = await openViaProxy({ ...FAST, attemptTimeoutMs: 500 });
    proxy.plan([{ fault: 'delay', ms: 5_000 }]);
    const started = Date.now();
    expect(Buffer.from(await source.read(OFFSET, LENGTH)).equals(expected())).toBe(true);
    expect(Date.now() - started).toBeLessThan(4_000);
    await proxy.idle();
    expect(proxy.requestCount).toBe(2);
    expect(proxy.log[0].clientAborted).toBe(true);
    expect(proxy.log[1].clientAborted).toBe(false);
  });

  it('takes a slow body that finishes in time, and retries one that does not', async () => {
    const { source } = await openViaProxy({ ...FAST, attemptTimeoutMs: 800 });
    proxy.plan([{ fault: 'slow-body', intervalMs: 5, chunkBytes: 16_384 }]);
    expect(Buffer.from(await source.read(OFFSET, LENGTH)).equals(expected())).toBe(true);
    expect(proxy.requestCount).toBe(1);

    proxy.reset();
    proxy.plan([{ fault: 'slow-body', intervalMs: 200, chunkBytes: 1024 }]);
    expect(Buffer.from(await source.read(OFFSET, LENGTH)).equals(expected())).toBe(true);
    await proxy.idle();
    expect(proxy.requestCount).toBe(2);
    expect(proxy.log[0].clientAborted).toBe(true);
    expect(proxy.log[0].bodyBytes).toBeLessThan(LENGTH);
  });

  it.each([false, true])(
    'never returns short data from a store that always truncates (without length: %s)',
    async (withoutLength) => {
      const events: StorageRequestEvent[] = [];
      const { source } = await openViaProxy(
        { ...FAST, maxAttempts: 3 },
        { onRequest: (e) => events.push(e) },
      );
      proxy.always({ fault: 'truncate', keepBytes: 1000, withoutLength });
      const error = await source.read(OFFSET, LENGTH).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageUnavailable);
      expect((error as StorageUnavailable).code).toBe('connection_error');
      expect(proxy.requestCount).toBe(3);
      const reads = events.filter((e) => e.kind === 'read');
      expect(reads.map((e) => [e.attempt, e.outcome])).toEqual([
        [1, 'connection_error'],
        [2, 'connection_error'],
        [3, 'connection_error'],
      ]);
    },
  );

  it('reports failed and successful attempts to the observer', async () => {
    const events: StorageRequestEvent[] = [];
    const { source } = await openViaProxy(FAST, { onRequest: (e) => events.push(e) });
    proxy.plan([{ fault: '503' }]);
    await source.read(OFFSET, LENGTH);
    const reads = events.filter((e) => e.kind === 'read');
    expect(reads.map((e) => [e.attempt, e.outcome, e.bytes])).toEqual([
      [1, 'storage_error', 0],
      [2, 'ok', LENGTH],
    ]);
  });

  it.each<[string, Fault]>([
    ['503', { fault: '503' }],
    ['a first byte that never comes', { fault: 'delay', ms: 30_000 }],
  ])('gives up on a store that always answers %s within the deadline', async (_name, fault) => {
    const policy: RetryPolicy = {
      maxAttempts: 100,
      deadlineMs: 1_500,
      attemptTimeoutMs: 500,
      baseDelayMs: 10,
      maxDelayMs: 100,
    };
    const { source } = await openViaProxy(policy);
    proxy.always(fault);
    const started = Date.now();
    const error = await source.read(OFFSET, LENGTH).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(StorageUnavailable);
    expect((error as StorageUnavailable).code).toBe('storage_timeout');
    expect((error as StorageUnavailable).retryable).toBe(false);
    expect(elapsed).toBeGreaterThanOrEqual(1_000);
    expect(elapsed).toBeLessThan(4_000);
    expect(proxy.requestCount).toBeGreaterThanOrEqual(2);
  });

  it.each<[number, new (...args: never[]) => Error]>([
    [403, AccessDenied],
    [404, NotFound],
    [412, ObjectChanged],
  ])('does not retry %i', async (status, type) => {
    const { storage, source } = await openViaProxy();
    proxy.plan([{ fault: 'status', status }]);
    await expect(source.read(OFFSET, LENGTH)).rejects.toBeInstanceOf(type);
    expect(proxy.requestCount).toBe(1);
    if (status === 412) return;
    proxy.reset();
    proxy.plan([{ fault: 'status', status }]);
    await expect(storage.stat(SVS_KEY)).rejects.toBeInstanceOf(type);
    expect(proxy.requestCount).toBe(1);
  });

  it('cancels a read promptly while the response is delayed', async () => {
    const { source } = await openViaProxy({ ...FAST, attemptTimeoutMs: 10_000, deadlineMs: 20_000 });
    proxy.plan([{ fault: 'delay', ms: 5_000 }]);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 200);
    const started = Date.now();
    const reached = await serverRequestsDuring(async () => {
      await expect(source.read(OFFSET, LENGTH, { signal: controller.signal })).rejects.toBeInstanceOf(
        Cancelled,
      );
    });
    expect(Date.now() - started).toBeLessThan(2_000);
    await proxy.idle();
    expect(proxy.requestCount).toBe(1);
    expect(proxy.log[0].clientAborted).toBe(true);
    expect(reached).toBe(0);
  });

  it('stops downloading when a read is cancelled mid-body', async () => {
    const { source } = await openViaProxy({ ...FAST, attemptTimeoutMs: 10_000, deadlineMs: 20_000 });
    proxy.plan([{ fault: 'slow-body', intervalMs: 50, chunkBytes: 1024 }]);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    await expect(source.read(OFFSET, LENGTH, { signal: controller.signal })).rejects.toBeInstanceOf(
      Cancelled,
    );
    await proxy.idle();
    expect(proxy.requestCount).toBe(1);
    expect(proxy.log[0].clientAborted).toBe(true);
    expect(proxy.log[0].bodyBytes).toBeGreaterThan(0);
    expect(proxy.log[0].bodyBytes).toBeLessThan(LENGTH / 2);
  });

  it('rejects at once when the signal has already fired', async () => {
    const { source } = await openViaProxy();
    await expect(source.read(OFFSET, LENGTH, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(
      Cancelled,
    );
    expect(proxy.requestCount).toBe(0);
  });
});
