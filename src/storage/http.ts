// Storage backend for slides behind a plain HTTP(S) server (nginx, a CDN, a public bucket URL):
// keys are appended to a base URL, sizes come from HEAD (or a 1-byte range GET where HEAD is
// refused), and every read is one `Range` request bound to the opened version with If-Match
// (strong ETag) or If-Unmodified-Since. A server that ignores Range fails the read with
// `RangeNotSupported` at once, and its body is cancelled, never downloaded.
//
// Listing: HTTP has no standard one. We read the two forms servers commonly offer at a directory
// URL — nginx `autoindex_format json` and HTML index pages ("Index of …" / "Directory listing
// for …") — and otherwise answer `NotImplemented`: slides are then opened by id only. HTML pages
// carry no reliable sizes, so the objects of a page are HEAD'ed (at most 1000, 8 at a time).

import {
  AccessDenied,
  Cancelled,
  ConfigError,
  InvalidRange,
  MedStreamError,
  NotFound,
  NotImplemented,
  ObjectChanged,
  RangeNotSupported,
  StorageUnavailable,
  throwIfAborted,
} from '../errors.js';
import { validateKey } from './keys.js';
import { DEFAULT_RETRY_POLICY, withRetry } from './retry.js';
import type { RetryPolicy } from './retry.js';
import { listTree, mapConcurrent } from './tree-listing.js';
import type { TreeEntry, TreeSource } from './tree-listing.js';
import type {
  ByteSource,
  ListOptions,
  ListPage,
  ObjectStat,
  ReadOptions,
  RequestObserver,
  Storage,
  StorageRequestEvent,
} from './types.js';

export interface HttpStorageOptions {
  /** `http(s)://host/base/`; credentials in the URL are sent as Basic auth. */
  baseUrl: string;
  retry?: RetryPolicy;
  observer?: RequestObserver;
  /** Sent with every request (e.g. `Authorization`). */
  headers?: Record<string, string>;
}

/** Directory levels a listing without delimiter descends, and index pages it reads per call. */
const LIST_MAX_DEPTH = 8;
const LIST_MAX_DIRECTORIES = 200;
const LIST_HEAD_CONCURRENCY = 8;
/** Largest directory listing body read. */
const MAX_LISTING_BYTES = 16 * 1024 * 1024;

/** What one stat learnt, kept by a ByteSource to make its reads conditional. */
interface RemoteVersion extends ObjectStat {
  /** The ETag header as sent (quotes, `W/`), for If-Match. */
  rawEtag?: string;
  rawLastModified?: string;
}

export class HttpStorage implements Storage {
  readonly kind = 'http';
  readonly description: string;
  private readonly base: URL;
  private readonly policy: RetryPolicy;
  private readonly observer: RequestObserver | undefined;
  private readonly headers: Record<string, string>;
  /** Set once the server answers HEAD with 405/501, so later stats go straight to GET. */
  private headRefused = false;

  constructor(options: HttpStorageOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch {
      throw new ConfigError(`invalid HTTP storage URL: ${options.baseUrl}`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new ConfigError(`HTTP storage URL must be http:// or https://, not ${base.protocol}`);
    }
    if (base.search !== '' || base.hash !== '') {
      throw new ConfigError('HTTP storage URL must not have a query or fragment');
    }
    this.headers = { ...options.headers };
    if (base.username !== '' || base.password !== '') {
      // fetch refuses URLs with credentials; send them the way the URL form means them.
      const user = decodeURIComponent(base.username);
      const password = decodeURIComponent(base.password);
      this.headers.Authorization ??= `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
      base.username = '';
      base.password = '';
    }
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.base = base;
    this.description = `HTTP ${base.href}`;
    this.policy = options.retry ?? DEFAULT_RETRY_POLICY;
    this.observer = options.observer;
  }

  /** The URL of `key` (or of a directory key ending in `/`), each segment percent-encoded. */
  urlOf(key: string): URL {
    return new URL(key.split('/').map(encodeURIComponent).join('/'), this.base);
  }

  async stat(key: string, options: { signal?: AbortSignal } = {}): Promise<ObjectStat> {
    const {
      rawEtag: _etag,
      rawLastModified: _lastModified,
      ...stat
    } = await this.statVersion(key, options.signal);
    return stat;
  }

  async open(key: string, options: { signal?: AbortSignal } = {}): Promise<ByteSource> {
    return new HttpByteSource(this, await this.statVersion(key, options.signal));
  }

  async list(options: ListOptions = {}): Promise<ListPage> {
    throwIfAborted(options.signal);
    const page = await listTree(new IndexPageTree(this), options, {
      maxDepth: LIST_MAX_DEPTH,
      maxDirectories: LIST_MAX_DIRECTORIES,
    });
    const objects = await mapConcurrent(page.files, LIST_HEAD_CONCURRENCY, async ({ key, file }) => {
      if (file.size !== undefined) return { key, size: file.size, lastModified: file.lastModified };
      try {
        const { identity: _identity, ...info } = await this.stat(key, { signal: options.signal });
        return info;
      } catch (e) {
        if (e instanceof NotFound || e instanceof AccessDenied) return undefined; // listed but not readable
        throw e;
      }
    });
    const result: ListPage = { objects: objects.filter((o) => o !== undefined), prefixes: page.prefixes };
    if (page.nextCursor !== undefined) result.nextCursor = page.nextCursor;
    return result;
  }

  async close(): Promise<void> {
    // Connections belong to Node's global fetch dispatcher, which closes idle sockets itself.
  }

  /** @internal One request with retries, reported to the observer attempt by attempt. */
  async request<T>(
    kind: StorageRequestEvent['kind'],
    key: string,
    describe: string,
    signal: AbortSignal | undefined,
    attempt: (signal: AbortSignal) => Promise<{ value: T; bytes: number }>,
  ): Promise<T> {
    return withRetry(
      this.policy,
      describe,
      async (attemptSignal, attemptNumber) => {
        const started = performance.now();
        const report = (outcome: string, bytes: number) =>
          this.observer?.onRequest({
            kind,
            key,
            bytes,
            ms: performance.now() - started,
            outcome,
            attempt: attemptNumber,
          });
        try {
          const { value, bytes } = await attempt(attemptSignal);
          report('ok', bytes);
          return value;
        } catch (e) {
          const error = toStorageError(e, describe, attemptSignal);
          report(error.code, 0);
          throw error;
        }
      },
      signal,
    );
  }

  /** @internal `fetch` with this storage's headers and identity encoding (byte offsets must be raw). */
  send(url: URL, init: { method: 'GET' | 'HEAD'; headers?: Record<string, string>; signal: AbortSignal }) {
    return fetch(url, {
      method: init.method,
      headers: { 'Accept-Encoding': 'identity', ...this.headers, ...init.headers },
      signal: init.signal,
      redirect: 'follow',
    });
  }

  private async statVersion(key: string, signal: AbortSignal | undefined): Promise<RemoteVersion> {
    validateKey(key);
    if (key.endsWith('/')) throw new NotFound(`${key} is a folder, not an object`);
    const url = this.urlOf(key);
    return this.request('stat', key, `stat ${key}`, signal, async (attemptSignal) => {
      if (!this.headRefused) {
        const res = await this.send(url, { method: 'HEAD', signal: attemptSignal });
        await discard(res);
        if (res.status === 405 || res.status === 501) {
          this.headRefused = true;
        } else {
          if (!res.ok) throw statusError(res.status, `stat ${key}`);
          const size = contentLength(res);
          if (size !== undefined) return { value: versionOf(key, size, res.headers), bytes: 0 };
        }
      }
      return { value: await this.statByRange(key, url, attemptSignal), bytes: 1 };
    });
  }

  /** Size from `GET Range: bytes=0-0`, for servers that refuse HEAD or omit its Content-Length. */
  private async statByRange(key: string, url: URL, signal: AbortSignal): Promise<RemoteVersion> {
    const res = await this.send(url, { method: 'GET', headers: { Range: 'bytes=0-0' }, signal });
    let size: number | undefined;
    if (res.status === 206) {
      size = parseContentRange(res.headers.get('content-range'))?.total;
      await res.arrayBuffer(); // one byte; reading it keeps the connection reusable
    } else if (res.status === 416) {
      size = parseContentRange(res.headers.get('content-range'))?.total; // `bytes */0`: empty file
      await discard(res);
    } else if (res.ok) {
      size = contentLength(res); // Range ignored: the length is known, the body is not wanted
      await discard(res);
    } else {
      await discard(res);
      throw statusError(res.status, `stat ${key}`);
    }
    if (size === undefined) {
      throw new StorageUnavailable(
        `stat ${key}: the server sent no usable size (no Content-Length on HEAD, no Content-Range on a range GET)`,
        { retryable: false },
      );
    }
    return versionOf(key, size, res.headers);
  }
}

class HttpByteSource implements ByteSource {
  readonly key: string;
  readonly size: number;
  readonly identity: string;
  private readonly url: URL;
  private readonly conditions: Record<string, string> = {};

  constructor(
    private readonly storage: HttpStorage,
    version: RemoteVersion,
  ) {
    this.key = version.key;
    this.size = version.size;
    this.identity = version.identity;
    this.url = storage.urlOf(version.key);
    // If-Match needs a strong validator (RFC 9110 §13.1.1); a weak one would always fail.
    if (version.rawEtag !== undefined && !version.rawEtag.startsWith('W/')) {
      this.conditions['If-Match'] = version.rawEtag;
    } else if (version.rawLastModified !== undefined) {
      this.conditions['If-Unmodified-Since'] = version.rawLastModified;
    }
  }

  async read(offset: number, length: number, options: ReadOptions = {}): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) {
      throw new InvalidRange(`invalid range: offset ${offset}, length ${length}`);
    }
    if (offset + length > this.size) {
      throw new InvalidRange(
        `range [${offset}, ${offset + length}) is outside ${this.key} (${this.size} bytes)`,
      );
    }
    const describe = `read ${this.key} [${offset}, ${offset + length})`;
    const last = offset + length - 1;
    return this.storage.request('read', this.key, describe, options.signal, async (signal) => {
      const res = await this.storage.send(this.url, {
        method: 'GET',
        headers: { Range: `bytes=${offset}-${last}`, ...this.conditions },
        signal,
      });
      if (res.status === 200) {
        await discard(res);
        throw new RangeNotSupported(
          `${describe}: the server ignored Range and began sending the whole object`,
        );
      }
      if (res.status === 412) {
        await discard(res);
        throw new ObjectChanged(`${this.key} was replaced since it was opened (precondition failed)`);
      }
      const range = parseContentRange(res.headers.get('content-range'));
      if (range?.total !== undefined && range.total !== this.size) {
        await discard(res);
        throw new ObjectChanged(`${this.key} is now ${range.total} bytes, was ${this.size} when opened`);
      }
      if (res.status === 416) {
        await discard(res);
        throw new InvalidRange(`${describe}: the server answered 416 Range Not Satisfiable`);
      }
      if (res.status !== 206) {
        await discard(res);
        throw statusError(res.status, describe);
      }
      if (range === undefined || range.first !== offset || range.last !== last) {
        await discard(res);
        throw new StorageUnavailable(
          `${describe}: the server answered with Content-Range ${res.headers.get('content-range') ?? '(none)'}`,
          { retryable: false },
        );
      }
      const bytes = await readBody(res, length, describe);
      return { value: bytes, bytes: bytes.length };
    });
  }
}

/** Index pages as the listing walker sees them: a directory is its key. */
class IndexPageTree implements TreeSource<string, { size?: number; lastModified?: Date }> {
  constructor(private readonly storage: HttpStorage) {}

  async resolveDir(dirKey: string): Promise<string | undefined> {
    return dirKey;
  }

  async readDir(_dir: string, dirKey: string, signal?: AbortSignal) {
    const url = this.storage.urlOf(dirKey);
    const describe = `list ${dirKey === '' ? '/' : dirKey}`;
    const noListing = () =>
      new NotImplemented('this HTTP server offers no directory listing; open slides by id');
    return this.storage.request('list', dirKey, describe, signal, async (attemptSignal) => {
      const res = await this.storage.send(url, {
        method: 'GET',
        headers: { Accept: 'application/json, text/html;q=0.9' },
        signal: attemptSignal,
      });
      if (res.status === 404 || res.status === 403 || res.status === 410 || res.status === 405) {
        await discard(res);
        // At the root this is how servers without listings answer; below it, a missing folder.
        if (dirKey === '') throw noListing();
        return { value: [], bytes: 0 };
      }
      if (!res.ok) {
        await discard(res);
        throw statusError(res.status, describe);
      }
      const body = await readText(res, describe);
      const type = res.headers.get('content-type') ?? '';
      const entries = type.includes('json') ? parseJsonIndex(body, describe) : parseHtmlIndex(body);
      if (entries === undefined) throw noListing();
      return { value: entries, bytes: body.length };
    });
  }
}

type IndexEntry = TreeEntry<string, { size?: number; lastModified?: Date }>;

/** nginx `autoindex_format json`: `[{"name", "type": "file"|"directory"|..., "mtime", "size"}]`. */
function parseJsonIndex(body: string, describe: string): IndexEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (e) {
    throw new StorageUnavailable(`${describe}: unreadable JSON directory listing`, {
      cause: e,
      retryable: false,
    });
  }
  if (!Array.isArray(parsed)) return [];
  const entries: IndexEntry[] = [];
  for (const item of parsed as unknown[]) {
    if (typeof item !== 'object' || item === null) continue;
    const { name, type, size, mtime } = item as Record<string, unknown>;
    if (typeof name !== 'string') continue;
    if (type === 'directory') entries.push({ name, dir: name });
    else if (type === 'file') {
      const date = typeof mtime === 'string' ? new Date(mtime) : undefined;
      entries.push({
        name,
        file: {
          size: typeof size === 'number' && Number.isSafeInteger(size) && size >= 0 ? size : undefined,
          lastModified: date !== undefined && !Number.isNaN(date.getTime()) ? date : undefined,
        },
      });
    }
  }
  return entries;
}

/**
 * Entries of an HTML index page: relative links to one name in this directory (`x`, `x/`,
 * `./x`), percent-decoded. Parent, query-only, absolute and deeper links are not entries.
 * Returns undefined for a page that is not an index (an ordinary index.html).
 */
function parseHtmlIndex(body: string): IndexEntry[] | undefined {
  const title = /<title>([^<]*)<\/title>/i.exec(body)?.[1] ?? '';
  if (!/index of|directory listing for/i.test(title)) return undefined;
  const names = new Map<string, IndexEntry>();
  for (const match of body.matchAll(/<a\s[^>]*?href\s*=\s*(?:"([^"]*)"|'([^']*)')/gi)) {
    let href = decodeHtmlEntities(match[1] ?? match[2]);
    if (href.startsWith('./')) href = href.slice(2);
    if (href === '' || /^[a-z][a-z0-9+.-]*:|^[/?#]/i.test(href) || href.includes('?') || href.includes('#'))
      continue;
    const isDir = href.endsWith('/');
    const raw = isDir ? href.slice(0, -1) : href;
    if (raw === '' || raw.includes('/')) continue;
    let name: string;
    try {
      name = decodeURIComponent(raw);
    } catch {
      continue;
    }
    if (name === '.' || name === '..' || name.includes('/')) continue;
    names.set(name + (isDir ? '/' : ''), isDir ? { name, dir: name } : { name, file: {} });
  }
  return [...names.values()];
}

function decodeHtmlEntities(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|#39|apos);/g, (_, entity: string) => {
    const map: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", apos: "'" };
    return map[entity];
  });
}

function versionOf(key: string, size: number, headers: Headers): RemoteVersion {
  const rawEtag = headers.get('etag') ?? undefined;
  const rawLastModified = headers.get('last-modified') ?? undefined;
  const etag = rawEtag?.replace(/^(W\/)?"(.*)"$/, '$1$2');
  const modified = rawLastModified === undefined ? undefined : new Date(rawLastModified);
  const lastModified = modified !== undefined && !Number.isNaN(modified.getTime()) ? modified : undefined;
  const version: RemoteVersion = {
    key,
    size,
    identity: `${size}-${etag ?? lastModified?.getTime() ?? 'unversioned'}`,
  };
  if (etag !== undefined) version.etag = etag;
  if (lastModified !== undefined) version.lastModified = lastModified;
  if (rawEtag !== undefined) version.rawEtag = rawEtag;
  if (lastModified !== undefined) version.rawLastModified = rawLastModified;
  return version;
}

function contentLength(res: Response): number | undefined {
  const header = res.headers.get('content-length');
  if (header === null || !/^\d+$/.test(header)) return undefined;
  const n = Number(header);
  return Number.isSafeInteger(n) ? n : undefined;
}

// `bytes first-last/total` or `bytes */total` (unsatisfied range); total is undefined for `*`.
function parseContentRange(
  header: string | null,
): { first?: number; last?: number; total?: number } | undefined {
  const match = header === null ? null : /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/i.exec(header.trim());
  if (match === null) return undefined;
  return {
    first: match[1] === undefined ? undefined : Number(match[1]),
    last: match[2] === undefined ? undefined : Number(match[2]),
    total: match[3] === '*' ? undefined : Number(match[3]),
  };
}

/** Exactly `length` body bytes into one preallocated buffer; anything else is an error. */
async function readBody(res: Response, length: number, describe: string): Promise<Uint8Array> {
  const declared = contentLength(res);
  if (declared !== undefined && declared !== length) {
    await discard(res);
    throw new StorageUnavailable(`${describe}: Content-Length ${declared} for a ${length}-byte range`, {
      retryable: false,
    });
  }
  const buffer = new Uint8Array(length);
  let filled = 0;
  if (res.body !== null) {
    const reader = res.body.getReader();
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      if (filled + value.length > length) {
        await reader.cancel().catch(() => undefined);
        throw new StorageUnavailable(`${describe}: the server sent more than ${length} bytes`, {
          retryable: false,
        });
      }
      buffer.set(value, filled);
      filled += value.length;
    }
  }
  if (filled !== length) {
    throw new StorageUnavailable(`${describe}: response ended after ${filled} of ${length} bytes`, {
      code: 'connection_error',
    });
  }
  return buffer;
}

async function readText(res: Response, describe: string): Promise<string> {
  const declared = contentLength(res);
  if (declared !== undefined && declared > MAX_LISTING_BYTES) {
    await discard(res);
    throw new StorageUnavailable(`${describe}: directory listing larger than ${MAX_LISTING_BYTES} bytes`, {
      retryable: false,
    });
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  if (res.body !== null) {
    for await (const chunk of res.body) {
      total += chunk.length;
      if (total > MAX_LISTING_BYTES) {
        throw new StorageUnavailable(
          `${describe}: directory listing larger than ${MAX_LISTING_BYTES} bytes`,
          {
            retryable: false,
          },
        );
      }
      chunks.push(chunk);
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Drops a response body without reading it: cancelling makes undici close the connection. */
async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined);
}

function statusError(status: number, describe: string): MedStreamError {
  const message = `${describe}: HTTP ${status}`;
  if (status === 404 || status === 410) return new NotFound(message);
  if (status === 401 || status === 403) return new AccessDenied(message);
  if (status >= 500 || status === 429 || status === 408) return new StorageUnavailable(message);
  return new StorageUnavailable(message, { retryable: false });
}

/** Maps what fetch and body reads throw to our errors; transport failures are retryable. */
function toStorageError(e: unknown, describe: string, signal: AbortSignal): MedStreamError {
  if (e instanceof MedStreamError) return e;
  if (signal.aborted) {
    // withRetry replaces this with the caller's Cancelled or the attempt's timeout.
    return signal.reason instanceof MedStreamError ? signal.reason : new Cancelled(`${describe}: cancelled`);
  }
  if (isTransportFailure(e)) {
    const cause = e.cause instanceof Error ? e.cause : e;
    const code = errnoCode(cause);
    return new StorageUnavailable(
      `${describe}: connection failed: ${cause.message}${code ? ` (${code})` : ''}`,
      {
        cause: e,
        code: 'connection_error',
      },
    );
  }
  return new StorageUnavailable(`${describe}: ${e instanceof Error ? e.message : String(e)}`, {
    cause: e,
    retryable: false,
  });
}

/**
 * undici reports transport failures as TypeError "fetch failed" (refused, reset before the
 * response) or "terminated" (socket closed mid-body), the socket error as `cause`. Other
 * TypeErrors (a malformed header) are programming errors and not worth retrying.
 */
function isTransportFailure(e: unknown): e is Error {
  if (!(e instanceof Error)) return false;
  if (e instanceof TypeError && (e.message === 'fetch failed' || e.message === 'terminated')) return true;
  const code = errnoCode(e) ?? (e.cause instanceof Error ? errnoCode(e.cause) : undefined);
  return code !== undefined && /^(UND_ERR_|E[A-Z]+$)/.test(code);
}

function errnoCode(e: Error): string | undefined {
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}
