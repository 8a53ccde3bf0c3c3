// HttpStorage against a real node:http range server on 127.0.0.1: stat (HEAD and its fallback),
// byte ranges compared with the file, status mapping, retries on 5xx / resets / slow and
// truncated answers, version binding (If-Match, If-Unmodified-Since), cancellation, a server that
// ignores Range, and listing from autoindex pages.

import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MedStreamError, StorageUnavailable } from '../../src/errors.js';
import { HttpStorage } from '../../src/storage/http.js';
import type { RetryPolicy } from '../../src/storage/retry.js';
import type { StorageRequestEvent } from '../../src/storage/types.js';
import { fixture } from '../support/fixtures.js';
import { RangeServer } from '../support/range-server.js';

const SLIDE = fixture('wsi/svs/CMU-1-Small-Region.svs');
const BIG_SIZE = 64 * 1024 * 1024;
const FAST: RetryPolicy = {
  maxAttempts: 4,
  deadlineMs: 5000,
  attemptTimeoutMs: 2000,
  baseDelayMs: 5,
  maxDelayMs: 20,
};

let dir: string;
let server: RangeServer;
let slideBytes: Buffer;
let events: StorageRequestEvent[] = [];

function storageWith(retry: RetryPolicy = FAST): HttpStorage {
  return new HttpStorage({ baseUrl: server.url, retry, observer: { onRequest: (e) => events.push(e) } });
}

async function errorOf(promise: Promise<unknown>): Promise<MedStreamError> {
  try {
    await promise;
  } catch (e) {
    if (e instanceof MedStreamError) return e;
    throw e;
  }
  throw new Error('expected a MedStreamError, but the operation succeeded');
}

async function eventually(check: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!check() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  expect(check()).toBe(true);
}

async function put(relative: string, content: string | Buffer = relative) {
  const full = path.join(dir, relative);
  await fs.mkdir(path.dirname(full), { recursive: true });
  await fs.writeFile(full, content);
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'medstream-http-'));
  slideBytes = await fs.readFile(SLIDE);
  await fs.copyFile(SLIDE, path.join(dir, 'slide.svs'));
  await fs.copyFile(SLIDE, path.join(dir, 'with space #1.svs'));
  await fs.writeFile(path.join(dir, 'big.bin'), '');
  await fs.truncate(path.join(dir, 'big.bin'), BIG_SIZE); // sparse: cheap to make and to serve
  for (const name of ['lst/a/b/c.bin', 'lst/a/b-c.txt', 'lst/a/b.txt', 'lst/top.txt', 'lst/.hidden']) {
    await put(name);
  }
  await put('lst/dir2/x.txt');
  await put('lst/dir2/sp ace é.txt');
  server = await RangeServer.start({ root: dir });
});

afterAll(async () => {
  await server?.close();
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  server.resetCounters();
  server.ignoreRange = false;
  server.noHead = false;
  server.autoindex = false;
  server.validators = 'strong';
  events = [];
});

describe('HttpStorage stat and reads', () => {
  it('stats with HEAD', async () => {
    const stat = await storageWith().stat('slide.svs');
    expect(stat.size).toBe(slideBytes.length);
    expect(stat.etag).toMatch(/^[0-9a-f]+-[0-9a-f]+$/);
    expect(stat.identity).toBe(`${slideBytes.length}-${stat.etag}`);
    expect(stat.lastModified).toBeInstanceOf(Date);
    expect(server.requests.map((r) => [r.method, r.status])).toEqual([['HEAD', 200]]);
  });

  it('falls back to a 1-byte range GET when HEAD is refused, and remembers it', async () => {
    server.noHead = true;
    const storage = storageWith();
    const stat = await storage.stat('slide.svs');
    expect(stat.size).toBe(slideBytes.length);
    expect(stat.etag).toBeDefined();
    expect(server.requests.map((r) => [r.method, r.range, r.status])).toEqual([
      ['HEAD', undefined, 405],
      ['GET', 'bytes=0-0', 206],
    ]);
    await storage.stat('slide.svs');
    expect(server.requests.slice(2).map((r) => r.method)).toEqual(['GET']);
    expect((await storage.stat('slide.svs')).identity).toBe(stat.identity);
  });

  it('reads the first, middle and last bytes exactly as the file has them', async () => {
    const source = await storageWith().open('slide.svs');
    expect(source.size).toBe(slideBytes.length);
    const middle = Math.floor(slideBytes.length / 2);
    for (const [offset, length] of [
      [0, 1],
      [0, 16384],
      [middle, 300_000],
      [slideBytes.length - 1, 1],
    ]) {
      const bytes = await source.read(offset, length);
      expect(Buffer.from(bytes).equals(slideBytes.subarray(offset, offset + length))).toBe(true);
    }
    const gets = server.requestsOf('GET');
    expect(gets.map((r) => r.range)).toContain(`bytes=${middle}-${middle + 299_999}`);
    expect(gets.every((r) => r.status === 206)).toBe(true);
    const reads = events.filter((e) => e.kind === 'read');
    expect(reads.map((e) => e.bytes)).toEqual([1, 16384, 300_000, 1]);
  });

  it('percent-encodes each key segment', async () => {
    const source = await storageWith().open('with space #1.svs');
    expect(Buffer.from(await source.read(100, 50)).equals(slideBytes.subarray(100, 150))).toBe(true);
    expect(server.requests[0].path).toBe('/with%20space%20%231.svs');
  });

  it('refuses a server that ignores Range without downloading the object', async () => {
    const source = await storageWith().open('big.bin');
    server.ignoreRange = true;
    const e = await errorOf(source.read(1000, 100));
    expect(e.code).toBe('range_not_supported');
    expect(server.requestsOf('GET')).toHaveLength(1); // not retried
    await eventually(() => server.clientAborted >= 1);
    expect(server.bytesSent).toBeLessThan(BIG_SIZE / 4);
  });

  it('maps 416 to InvalidRange, and checks ranges before sending anything', async () => {
    const source = await storageWith().open('slide.svs');
    server.failNext(1, 416);
    expect((await errorOf(source.read(0, 10))).code).toBe('invalid_range');
    expect(server.requestsOf('GET')).toHaveLength(1);
    expect((await errorOf(source.read(slideBytes.length - 5, 10))).code).toBe('invalid_range');
    expect((await errorOf(source.read(-1, 10))).code).toBe('invalid_range');
    expect(server.requestsOf('GET')).toHaveLength(1);
  });

  it('maps 404 to NotFound, 403 to AccessDenied and other 4xx to a non-retryable failure, each in one request', async () => {
    const storage = storageWith();
    expect((await errorOf(storage.stat('missing.svs'))).code).toBe('not_found');
    expect(server.requests).toHaveLength(1);
    server.resetCounters();
    server.failNext(1, 403);
    expect((await errorOf(storage.stat('slide.svs'))).code).toBe('access_denied');
    server.failNext(1, 400);
    const bad = await errorOf(storage.stat('slide.svs'));
    expect(bad).toBeInstanceOf(StorageUnavailable);
    expect(bad.retryable).toBe(false);
    expect(server.requests).toHaveLength(2);
    expect((await errorOf(storage.stat('../etc/passwd'))).code).toBe('invalid_id');
    expect(server.requests).toHaveLength(2);
  });

  it('retries 503 twice then succeeds, reporting each attempt', async () => {
    const source = await storageWith().open('slide.svs');
    events = [];
    server.failNext(2, 503);
    const bytes = await source.read(4096, 4096);
    expect(Buffer.from(bytes).equals(slideBytes.subarray(4096, 8192))).toBe(true);
    expect(server.requestsOf('GET').map((r) => r.status)).toEqual([503, 503, 206]);
    expect(events.map((e) => [e.attempt, e.outcome])).toEqual([
      [1, 'storage_error'],
      [2, 'storage_error'],
      [3, 'ok'],
    ]);
  });

  it('retries 429 and connection resets', async () => {
    const source = await storageWith().open('slide.svs');
    server.failNext(1, 429);
    server.failNext(1, 'reset');
    const bytes = await source.read(0, 1000);
    expect(Buffer.from(bytes).equals(slideBytes.subarray(0, 1000))).toBe(true);
    expect(server.requestsOf('GET')).toHaveLength(3);
    expect(events.filter((e) => e.kind === 'read').map((e) => e.outcome)).toEqual([
      'storage_error',
      'connection_error',
      'ok',
    ]);
  });

  it('retries a refused connection and reports connection_error', async () => {
    const closed = await RangeServer.start({ root: dir });
    const url = closed.url;
    await closed.close();
    const storage = new HttpStorage({ baseUrl: url, retry: { ...FAST, maxAttempts: 2 } });
    const e = await errorOf(storage.stat('slide.svs'));
    expect(e.code).toBe('connection_error');
    expect(e.message).toMatch(/ECONNREFUSED/);
  });

  it('abandons an attempt slower than attemptTimeoutMs and retries it', async () => {
    const source = await storageWith({ ...FAST, attemptTimeoutMs: 300 }).open('slide.svs');
    server.failNext(1, 'delay:5000');
    const bytes = await source.read(10, 10);
    expect(Buffer.from(bytes).equals(slideBytes.subarray(10, 20))).toBe(true);
    expect(server.requestsOf('GET')).toHaveLength(2);
    await eventually(() => server.clientAborted >= 1);
  });

  it('gives up with storage_timeout when every attempt is too slow', async () => {
    const source = await storageWith({ ...FAST, maxAttempts: 3, attemptTimeoutMs: 200 }).open('slide.svs');
    server.failNext(10, 'delay:5000');
    const started = Date.now();
    const e = await errorOf(source.read(0, 10));
    expect(e.code).toBe('storage_timeout');
    expect(Date.now() - started).toBeLessThan(4000);
    expect(server.requestsOf('GET')).toHaveLength(3);
  });

  it('gives up on a permanently failing server within the deadline', async () => {
    const policy = {
      maxAttempts: 1000,
      deadlineMs: 800,
      attemptTimeoutMs: 500,
      baseDelayMs: 10,
      maxDelayMs: 50,
    };
    const source = await storageWith(policy).open('slide.svs');
    server.failNext(10_000, 503);
    const started = Date.now();
    const e = await errorOf(source.read(0, 10));
    expect(e).toBeInstanceOf(StorageUnavailable);
    expect(e.retryable).toBe(false);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(server.requestsOf('GET').length).toBeGreaterThan(2);
  });

  it('never returns short data from a truncated body', async () => {
    const source = await storageWith().open('slide.svs');
    server.failNext(1, 'truncate'); // clean chunked end, half the bytes
    server.failNext(1, 'cut'); // Content-Length promised, socket destroyed halfway
    const bytes = await source.read(1000, 200_000);
    expect(bytes.length).toBe(200_000);
    expect(Buffer.from(bytes).equals(slideBytes.subarray(1000, 201_000))).toBe(true);
    expect(server.requestsOf('GET')).toHaveLength(3);

    server.resetCounters();
    server.failNext(100, 'truncate');
    const e = await errorOf(source.read(1000, 200_000));
    expect(e.code).toBe('connection_error');
    expect(server.requestsOf('GET')).toHaveLength(FAST.maxAttempts);
  });

  it('fails reads of a replaced object with ObjectChanged (If-Match on the strong ETag)', async () => {
    await put('mutable.bin', Buffer.alloc(1000, 1));
    const storage = storageWith();
    const source = await storage.open('mutable.bin');
    expect((await source.read(0, 10))[0]).toBe(1);
    await put('mutable.bin', Buffer.alloc(1000, 2));
    const later = new Date(Date.now() + 10_000);
    await fs.utimes(path.join(dir, 'mutable.bin'), later, later);
    expect((await errorOf(source.read(0, 10))).code).toBe('object_changed');
    expect(server.requestsOf('GET').at(-1)).toMatchObject({ status: 412 });
    const reopened = await storage.open('mutable.bin');
    expect(reopened.identity).not.toBe(source.identity);
    expect((await reopened.read(0, 10))[0]).toBe(2);
  });

  it('binds reads with If-Unmodified-Since when there is no strong ETag, and checks the size', async () => {
    for (const validators of ['none', 'weak'] as const) {
      server.validators = validators;
      const file = path.join(dir, `dated-${validators}.bin`);
      await fs.writeFile(file, Buffer.alloc(1000, 1));
      const earlier = new Date(Date.now() - 60_000);
      await fs.utimes(file, earlier, earlier);
      const storage = storageWith();
      const source = await storage.open(`dated-${validators}.bin`);
      expect((await source.read(0, 10))[0]).toBe(1);
      await fs.writeFile(file, Buffer.alloc(1000, 2));
      expect((await errorOf(source.read(0, 10))).code).toBe('object_changed');
      expect(server.requestsOf('GET').at(-1)).toMatchObject({ status: 412 });

      // Rewritten with the old mtime put back: Last-Modified cannot tell, Content-Range's size can.
      const fresh = await storage.open(`dated-${validators}.bin`);
      const before = await fs.stat(file);
      await fs.writeFile(file, Buffer.alloc(2000, 3));
      await fs.utimes(file, before.atime, before.mtime);
      expect((await errorOf(fresh.read(0, 10))).code).toBe('object_changed');
    }
  });

  it('answers Cancelled promptly when the caller aborts a slow read, and hangs up on the server', async () => {
    const source = await storageWith({ ...FAST, attemptTimeoutMs: 30_000, deadlineMs: 30_000 }).open(
      'slide.svs',
    );
    server.failNext(1, 'delay:10000');
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    const e = await errorOf(source.read(0, 10, { signal: controller.signal }));
    expect(e.code).toBe('cancelled');
    expect(Date.now() - started).toBeLessThan(2000);
    await eventually(() => server.clientAborted >= 1);
    expect(server.requestsOf('GET')).toHaveLength(1);
  });

  it('builds its description without credentials and refuses non-HTTP URLs', () => {
    const storage = new HttpStorage({ baseUrl: 'https://user:pw@example.invalid/slides' });
    expect(storage.description).toBe('HTTP https://example.invalid/slides/');
    expect(storage.urlOf('a b/c#d.svs').href).toBe('https://example.invalid/slides/a%20b/c%23d.svs');
    expect(() => new HttpStorage({ baseUrl: 'ftp://example.invalid/' })).toThrow(/http/);
  });
});

describe('HttpStorage list', () => {
  it('answers NotImplemented when the server offers no listing', async () => {
    const e = await errorOf(storageWith().list());
    expect(e.code).toBe('not_implemented');
    expect(e.message).toMatch(/open slides by id/);
  });

  for (const format of ['json', 'html'] as const) {
    describe(`from ${format} autoindex`, () => {
      beforeEach(() => {
        server.autoindex = format;
      });

      it('lists a prefix recursively in byte order with sizes', async () => {
        const page = await storageWith().list({ prefix: 'lst/' });
        expect(page.objects.map((o) => o.key)).toEqual([
          'lst/a/b-c.txt',
          'lst/a/b.txt',
          'lst/a/b/c.bin',
          'lst/dir2/sp ace é.txt',
          'lst/dir2/x.txt',
          'lst/top.txt',
        ]);
        for (const object of page.objects) expect(object.size).toBe(Buffer.byteLength(object.key));
        expect(page.prefixes).toEqual([]);
        expect(page.nextCursor).toBeUndefined();
      });

      it('folds folders with delimiter "/" and narrows by a partial name', async () => {
        const storage = storageWith();
        const top = await storage.list({ prefix: 'lst/', delimiter: '/' });
        expect(top.prefixes).toEqual(['lst/a/', 'lst/dir2/']);
        expect(top.objects.map((o) => o.key)).toEqual(['lst/top.txt']);
        const partial = await storage.list({ prefix: 'lst/a/b', delimiter: '/' });
        expect(partial.objects.map((o) => o.key)).toEqual(['lst/a/b-c.txt', 'lst/a/b.txt']);
        expect(partial.prefixes).toEqual(['lst/a/b/']);
        // Only the directory the prefix points into was fetched.
        expect(server.requestsOf('GET').map((r) => r.path)).toEqual(['/lst/', '/lst/a/']);
      });

      it('pages with cursors and returns nothing for a missing folder', async () => {
        const storage = storageWith();
        const keys: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = await storage.list({ prefix: 'lst/', limit: 2, cursor });
          keys.push(...page.objects.map((o) => o.key));
          cursor = page.nextCursor;
          pages++;
        } while (cursor !== undefined && pages < 10);
        expect(pages).toBe(3);
        expect(keys).toHaveLength(6);
        expect(await storage.list({ prefix: 'nope/' })).toEqual({ objects: [], prefixes: [] });
      });
    });
  }
});
