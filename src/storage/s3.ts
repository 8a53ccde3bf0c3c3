// Storage backend for S3 and S3-compatible stores (MinIO, Ceph RGW, Cloudflare R2, GCS interop).
// It only stats, reads byte ranges and lists; retries come from our own `withRetry` (the SDK's
// are turned off) so every backend fails and recovers the same way, and every attempt is
// reported to the RequestObserver.
//
//   S3Storage.open(key) --HeadObject--> S3ByteSource.read(offset, length)
//       --GetObject Range + If-Match--> exactly `length` bytes of that version, or a typed error

import { createReadStream, promises as fsPromises } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type GetObjectCommandOutput,
} from '@aws-sdk/client-s3';
import {
  AccessDenied,
  Cancelled,
  ConfigError,
  InvalidId,
  InvalidRange,
  MedStreamError,
  NotFound,
  ObjectChanged,
  RangeNotSupported,
  StorageUnavailable,
} from '../errors.js';
import { validateKey, validatePrefix } from './keys.js';
import { DEFAULT_RETRY_POLICY, withRetry, type RetryPolicy } from './retry.js';
import type {
  ByteSource,
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStat,
  ReadOptions,
  RequestObserver,
  Storage,
  StorageRequestEvent,
} from './types.js';

/** Static credentials; structurally the SDK's `AwsCredentialIdentity`. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3StorageOptions {
  bucket: string;
  /** Key prefix inside the bucket; normalised to '' or ending in '/'. */
  prefix?: string;
  /** For S3-compatible stores, e.g. `http://127.0.0.1:9000`. */
  endpoint?: string;
  /**
   * When unset: the SDK's region chain (AWS_REGION, the shared config profile), else
   * `us-east-1`; the client follows S3's region redirects, so a bucket elsewhere still works.
   */
  region?: string;
  /** Path-style URLs (`endpoint/bucket/key`), needed by MinIO, Ceph and most local stores. */
  forcePathStyle?: boolean;
  retry?: RetryPolicy;
  observer?: RequestObserver;
  /** Tests only; otherwise the SDK's default provider chain (env, profile, SSO, IMDS, ...). */
  credentials?: S3Credentials;
}

const FALLBACK_REGION = 'us-east-1';
/** Concurrent sockets per store: enough for parallel tile reads without exhausting the origin. */
const MAX_SOCKETS = 64;
const CONNECT_TIMEOUT_MS = 5_000;
const MAX_LIST_KEYS = 1000;

export class S3Storage implements Storage {
  readonly kind = 's3';
  readonly description: string;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly policy: RetryPolicy;
  private readonly observer: RequestObserver | undefined;
  private readonly client: S3Client;

  constructor(options: S3StorageOptions) {
    if (!options.bucket) throw new ConfigError('S3 storage needs a bucket');
    this.bucket = options.bucket;
    this.prefix = normalisePrefix(options.prefix ?? '');
    this.policy = options.retry ?? DEFAULT_RETRY_POLICY;
    this.observer = options.observer;
    this.description = `s3://${this.bucket}/${this.prefix}${options.endpoint ? ` at ${redactedUrl(options.endpoint)}` : ''}`;
    const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS };
    this.client = new S3Client({
      region: options.region || regionFromSdkChainOr(FALLBACK_REGION),
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle ?? false,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      maxAttempts: 1,
      followRegionRedirects: true,
      // Ranged GETs carry no whole-object checksum; validating would only wrap the body stream.
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      requestHandler: {
        httpAgent: new http.Agent(agentOptions),
        httpsAgent: new https.Agent(agentOptions),
        connectionTimeout: Math.min(CONNECT_TIMEOUT_MS, this.policy.attemptTimeoutMs),
        // Idle-socket backstop only: withRetry's attempt timeout (shorter) bounds each request.
        socketTimeout: this.policy.attemptTimeoutMs + 1_000,
      },
    });
  }

  async stat(key: string, options?: { signal?: AbortSignal }): Promise<ObjectStat> {
    validateKey(key);
    const what = `stat ${this.url(key)}`;
    return withRetry(
      this.policy,
      what,
      (signal, attempt) =>
        this.attempt('stat', key, attempt, what, signal, async () => {
          const out = await this.client.send(
            new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }),
            { abortSignal: signal },
          );
          const size = out.ContentLength ?? 0;
          const etag = unquoteEtag(out.ETag);
          const stat: ObjectStat = {
            key,
            size,
            ...(etag === undefined ? {} : { etag }),
            ...(out.LastModified ? { lastModified: out.LastModified } : {}),
            identity: `${size}-${etag ?? out.LastModified?.getTime() ?? 'unknown'}`,
          };
          return { value: stat, bytes: 0 };
        }),
      options?.signal,
    );
  }

  async open(key: string, options?: { signal?: AbortSignal }): Promise<ByteSource> {
    const stat = await this.stat(key, options);
    return new S3ByteSource(this, stat);
  }

  async put(
    key: string,
    file: string,
    options: { signal?: AbortSignal; contentType?: string } = {},
  ): Promise<ObjectStat> {
    validateKey(key);
    const size = (await fsPromises.stat(file)).size;
    const what = `put ${this.url(key)}`;
    await withRetry(
      this.policy,
      what,
      (signal, attempt) =>
        this.attempt('write', key, attempt, what, signal, async () => {
          // A fresh stream per attempt: a PUT is one request, so S3 never shows a partial object.
          await this.client.send(
            new PutObjectCommand({
              Bucket: this.bucket,
              Key: this.prefix + key,
              Body: createReadStream(file),
              ContentLength: size,
              ContentType: options.contentType ?? 'application/octet-stream',
            }),
            { abortSignal: signal },
          );
          return { value: undefined, bytes: size };
        }),
      options.signal,
    );
    return this.stat(key, options);
  }

  async openListed(info: ObjectInfo, options?: { signal?: AbortSignal }): Promise<ByteSource> {
    if (info.etag === undefined) return this.open(info.key, options);
    validateKey(info.key);
    // The same identity `stat` would give: reads still send If-Match, so a replaced object fails.
    return new S3ByteSource(this, { ...info, identity: `${info.size}-${info.etag}` });
  }

  async list(options: ListOptions = {}): Promise<ListPage> {
    const prefix = this.prefix + validatePrefix(options.prefix);
    const limit = Number.isFinite(options.limit)
      ? Math.min(MAX_LIST_KEYS, Math.max(1, Math.floor(options.limit as number)))
      : MAX_LIST_KEYS;
    const what = `list ${this.url(validatePrefix(options.prefix))}`;
    return withRetry(
      this.policy,
      what,
      (signal, attempt) =>
        this.attempt('list', options.prefix ?? '', attempt, what, signal, async () => {
          const out = await this.client.send(
            new ListObjectsV2Command({
              Bucket: this.bucket,
              Prefix: prefix || undefined,
              Delimiter: options.delimiter,
              MaxKeys: limit,
              ContinuationToken: options.cursor,
            }),
            { abortSignal: signal },
          );
          const objects: ObjectInfo[] = [];
          for (const item of out.Contents ?? []) {
            const relative = this.relative(item.Key);
            if (!relative) continue; // the prefix's own "folder marker" object
            const etag = unquoteEtag(item.ETag);
            objects.push({
              key: relative,
              size: item.Size ?? 0,
              ...(etag === undefined ? {} : { etag }),
              ...(item.LastModified ? { lastModified: item.LastModified } : {}),
            });
          }
          const prefixes = (out.CommonPrefixes ?? [])
            .map((p) => this.relative(p.Prefix))
            .filter((p): p is string => !!p);
          const page: ListPage = {
            objects,
            prefixes,
            ...(out.IsTruncated && out.NextContinuationToken
              ? { nextCursor: out.NextContinuationToken }
              : {}),
          };
          return { value: page, bytes: 0 };
        }),
      options.signal,
    );
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** For S3ByteSource (not part of Storage): `[offset, offset + length)` of the version `stat` describes. */
  async readRange(
    stat: ObjectStat,
    rawEtag: string | undefined,
    offset: number,
    length: number,
    options?: ReadOptions,
  ): Promise<Uint8Array> {
    const what = `read ${this.url(stat.key)} [${offset}, ${offset + length})`;
    return withRetry(
      this.policy,
      what,
      (signal, attempt) =>
        this.attempt('read', stat.key, attempt, what, signal, async (received) => {
          let out: GetObjectCommandOutput;
          try {
            out = await this.client.send(
              new GetObjectCommand({
                Bucket: this.bucket,
                Key: this.prefix + stat.key,
                Range: `bytes=${offset}-${offset + length - 1}`,
                IfMatch: rawEtag,
              }),
              { abortSignal: signal },
            );
          } catch (e) {
            // We checked the range against the opened size, so a 416 means the object shrank.
            if (mapS3Error(e, what, this.bucket, signal) instanceof InvalidRange) {
              throw new ObjectChanged(`${what}: object is shorter than when it was opened`, { cause: e });
            }
            throw e;
          }
          const body = out.Body;
          if (!(body instanceof Readable))
            throw new StorageUnavailable(`${what}: response has no body stream`);
          try {
            checkRangeResponse(out, stat, offset, length, what);
          } catch (e) {
            body.destroy();
            throw e;
          }
          const bytes = await readExactly(body, length, signal, received, what);
          return { value: bytes, bytes: bytes.length };
        }),
      options?.signal,
    );
  }

  /** Runs one request attempt, maps its failure to a typed error and reports it. */
  private async attempt<T>(
    kind: StorageRequestEvent['kind'],
    key: string,
    attempt: number,
    what: string,
    signal: AbortSignal,
    run: (received: { bytes: number }) => Promise<{ value: T; bytes: number }>,
  ): Promise<T> {
    const started = performance.now();
    const received = { bytes: 0 };
    const report = (outcome: string, bytes: number) =>
      this.observer?.onRequest({ kind, key, bytes, ms: performance.now() - started, outcome, attempt });
    try {
      const { value, bytes } = await run(received);
      report('ok', bytes);
      return value;
    } catch (e) {
      const error = mapS3Error(e, what, this.bucket, signal);
      report(error.code, received.bytes);
      throw error;
    }
  }

  private url(key: string): string {
    return `s3://${this.bucket}/${this.prefix}${key}`;
  }

  private relative(fullKey: string | undefined): string | undefined {
    if (fullKey === undefined || !fullKey.startsWith(this.prefix)) return undefined;
    return fullKey.slice(this.prefix.length);
  }
}

/** Range reads bound to one version of one object (If-Match on its ETag). */
class S3ByteSource implements ByteSource {
  readonly key: string;
  readonly size: number;
  readonly identity: string;
  private readonly rawEtag: string | undefined;

  constructor(
    private readonly storage: S3Storage,
    private readonly stat: ObjectStat,
  ) {
    this.key = stat.key;
    this.size = stat.size;
    this.identity = stat.identity;
    this.rawEtag = stat.etag === undefined ? undefined : `"${stat.etag}"`;
  }

  read(offset: number, length: number, options?: ReadOptions): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) {
      return Promise.reject(new InvalidRange(`invalid range [${offset}, +${length}) of ${this.key}`));
    }
    if (offset + length > this.size) {
      return Promise.reject(
        new InvalidRange(
          `range [${offset}, ${offset + length}) is past the end of ${this.key} (${this.size} bytes)`,
        ),
      );
    }
    return this.storage.readRange(this.stat, this.rawEtag, offset, length, options);
  }
}

/**
 * Checks that a GetObject answer is the range we asked for, of the version we opened. Stores
 * that ignore If-Match (s3rver does) are caught by the ETag and total-size comparison.
 */
function checkRangeResponse(
  out: GetObjectCommandOutput,
  stat: ObjectStat,
  offset: number,
  length: number,
  what: string,
): void {
  const etag = unquoteEtag(out.ETag);
  if (etag !== undefined && stat.etag !== undefined && etag !== stat.etag) {
    throw new ObjectChanged(`${what}: ETag changed from ${stat.etag} to ${etag}`);
  }
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(out.ContentRange ?? '');
  if (!match) throw new RangeNotSupported(`${what}: store answered without Content-Range`);
  if (match[3] !== '*' && Number(match[3]) !== stat.size) {
    throw new ObjectChanged(`${what}: object size changed from ${stat.size} to ${match[3]}`);
  }
  if (Number(match[1]) !== offset || Number(match[2]) !== offset + length - 1) {
    throw new StorageUnavailable(`${what}: store answered another range (${out.ContentRange})`, {
      retryable: false,
    });
  }
}

/** Reads exactly `length` bytes into one buffer; a short body is a retryable transport fault. */
async function readExactly(
  body: Readable,
  length: number,
  signal: AbortSignal,
  received: { bytes: number },
  what: string,
): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  // Destroying the stream closes the socket, so an abandoned read stops downloading.
  const onAbort = () => body.destroy();
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      if (received.bytes + chunk.length > length) {
        throw new StorageUnavailable(`${what}: body longer than the ${length} bytes asked for`, {
          retryable: false,
        });
      }
      bytes.set(chunk, received.bytes);
      received.bytes += chunk.length;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    if (received.bytes !== length) body.destroy();
  }
  if (received.bytes !== length) {
    throw new StorageUnavailable(`${what}: truncated body (${received.bytes} of ${length} bytes)`, {
      code: 'connection_error',
    });
  }
  return bytes;
}

const RETRYABLE_S3_ERRORS = new Set([
  'SlowDown',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'InternalError',
  'ServiceUnavailable',
  'TooManyRequests',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
]);
const ACCESS_DENIED_ERRORS = new Set([
  'AccessDenied',
  'Forbidden',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
]);
const NOT_FOUND_ERRORS = new Set(['NoSuchKey', 'NotFound']);
const TRANSPORT_ERROR_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** The one place an S3 SDK or transport failure becomes a typed MedStream error. */
export function mapS3Error(
  error: unknown,
  what: string,
  bucket: string,
  signal?: AbortSignal,
): MedStreamError {
  if (error instanceof MedStreamError) return error;
  if (signal?.aborted) {
    // Our own attempt timeout (a MedStreamError) or the caller hanging up.
    const reason: unknown = signal.reason;
    return reason instanceof MedStreamError ? reason : new Cancelled(`${what}: cancelled`, { cause: error });
  }
  const e = (typeof error === 'object' && error !== null ? error : {}) as {
    name?: string;
    code?: string;
    message?: string;
    $metadata?: { httpStatusCode?: number };
  };
  const name = e.name ?? '';
  const status = e.$metadata?.httpStatusCode;
  const options = { cause: error };
  if (name === 'NoSuchBucket') return new NotFound(`${what}: bucket "${bucket}" does not exist`, options);
  if (status === 404 || NOT_FOUND_ERRORS.has(name)) {
    return new NotFound(`${what}: not found (no such key, or no bucket "${bucket}")`, options);
  }
  if (status === 403 || ACCESS_DENIED_ERRORS.has(name))
    return new AccessDenied(`${what}: access denied (${name})`, options);
  if (status === 412 || name === 'PreconditionFailed') {
    return new ObjectChanged(`${what}: object was replaced since it was opened`, options);
  }
  if (status === 416 || name === 'InvalidRange')
    return new InvalidRange(`${what}: range not satisfiable`, options);
  if (
    (status !== undefined && (status >= 500 || status === 429)) ||
    RETRYABLE_S3_ERRORS.has(name) ||
    name.startsWith('Throttl')
  ) {
    return new StorageUnavailable(`${what}: store error ${name || status}`, {
      ...options,
      code: 'storage_error',
    });
  }
  if (
    TRANSPORT_ERROR_CODES.has(e.code ?? '') ||
    name === 'TimeoutError' ||
    name === 'AbortError' ||
    /socket hang up|^aborted$|premature close/i.test(e.message ?? '')
  ) {
    return new StorageUnavailable(`${what}: connection failed: ${e.message ?? name}`, {
      ...options,
      code: 'connection_error',
    });
  }
  return new StorageUnavailable(
    `${what}: S3 error ${name || 'unknown'}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? ''}`,
    {
      ...options,
      retryable: false,
    },
  );
}

/** Parses `s3://bucket[/prefix]` as given on the command line or in MEDSTREAM_STORAGE. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/?#]*)(\/[^?#]*)?$/i.exec(url.trim());
  if (!match) throw new ConfigError(`not an s3://bucket/prefix URL: ${url}`);
  const bucket = match[1];
  if (!bucket) throw new ConfigError(`S3 URL has no bucket: ${url}`);
  // Current S3 naming rules, plus `_` which legacy buckets and some S3-compatible stores allow.
  if (!/^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw new ConfigError(`invalid S3 bucket name "${bucket}" (3-63 characters: a-z 0-9 . - _)`);
  }
  return { bucket, prefix: normalisePrefix((match[2] ?? '').slice(1)) };
}

/** '' or a safe relative prefix ending in '/'. */
function normalisePrefix(prefix: string): string {
  if (prefix === '') return '';
  const withSlash = prefix.endsWith('/') ? prefix : `${prefix}/`;
  try {
    validatePrefix(withSlash);
  } catch (e) {
    if (e instanceof InvalidId) throw new ConfigError(`invalid S3 prefix "${prefix}": ${e.message}`);
    throw e;
  }
  return withSlash;
}

function unquoteEtag(etag: string | undefined): string | undefined {
  if (!etag) return undefined;
  return etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

function redactedUrl(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    url.username = '';
    url.password = '';
    return url.href.replace(/\/$/, '');
  } catch {
    throw new ConfigError(`invalid S3 endpoint URL: ${endpoint}`);
  }
}

/**
 * The SDK's region chain (AWS_REGION, the shared config profile), or `fallback` where it finds
 * none, instead of the SDK's "Region is missing" error. Asked once, on the first request.
 */
function regionFromSdkChainOr(fallback: string): () => Promise<string> {
  let region: Promise<string> | undefined;
  return () =>
    (region ??= (async () => {
      const probe = new S3Client({});
      try {
        return await probe.config.region();
      } catch {
        return fallback;
      } finally {
        probe.destroy();
      }
    })());
}
