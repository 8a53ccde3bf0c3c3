// The second cache level shared by every replica: Redis (`--redis-url`). It holds two things:
// - encoded images: TileService looks here after a miss in its own in-process cache and stores
//   what it computes;
// - metadata blocks: the BlockCache (io/) looks here before fetching a run of blocks from
//   storage and stores the blocks it fetched, so a replica that has never seen a slide parses
//   it (header, directories, the tile offsets read so far) without a range read.
// The cache is an optimisation, never a dependency: every command has a short timeout
// (`--redis-timeout`), a circuit breaker stops sending commands after repeated failures and
// probes again after a cooldown, and every failure reads as a miss. A tile never fails because
// Redis is down, slow or hung.
//
//   get(key)         -> breaker open? miss | GET medstream:v1:img:<sha256(key)> (timeout) | miss
//   set(key)         -> breaker open? skip | SET ... PX <ttl>, fire and forget
//   getBlocks(o, ix) -> HMGET medstream:v1:meta:<sha256(o)> ix...        (one round trip per run)
//   setBlocks(o, bs) -> one script: HSETNX each block while the hash holds < max, PEXPIRE <ttl>
//
// Image values are a small binary header (version, flags, content type) followed by the body;
// keys are hashes of the TileService cache key or of the block cache's object key, both of
// which include the object's identity, so a replaced slide never meets the old entries (they
// expire by TTL or Redis' maxmemory policy).

import { createHash, randomUUID } from 'node:crypto';
import { Redis, type Result } from 'ioredis';
import type { SharedBlockStore } from '../io/block-cache.js';

/** One cached image, as TileService keeps it in memory. */
export interface SharedImageValue {
  body: Buffer;
  contentType: string;
  passthrough: boolean;
}

export interface SharedCacheStats {
  hits: number;
  misses: number;
  /** Commands that failed or timed out. */
  errors: number;
  /** Commands not sent because the circuit was open. */
  skipped: number;
  sets: number;
  /** Whether the connection to Redis is up now. */
  connected: boolean;
  circuitOpen: boolean;
  /** Times the circuit went from closed to open. */
  circuitOpens: number;
  getCount: number;
  getSumMs: number;
  setCount: number;
  setSumMs: number;
  /** Metadata blocks found in Redis / looked up and not there / offered for storing. */
  blockHits: number;
  blockMisses: number;
  blockSets: number;
  /** Writes sent and neither answered nor given up yet (they are fire and forget). */
  writesInFlight: number;
}

/** What TileService needs of a shared cache; `get` never rejects, `set` never throws. */
export interface SharedImageCache {
  get(key: string, signal?: AbortSignal): Promise<SharedImageValue | undefined>;
  set(key: string, value: SharedImageValue): void;
  stats(): SharedCacheStats;
  close(): Promise<void>;
}

/** The part of a pino logger the cache uses (passed in; no global logger). */
export interface CacheLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface RedisSharedCacheOptions {
  /** `redis://[user:pass@]host:port/db` or `rediss://...`. */
  url: string;
  ttlMs: number;
  /** Per-command timeout. */
  timeoutMs: number;
  /** Consecutive failures that open the circuit. */
  failureThreshold?: number;
  /** Time the circuit stays open before one probe command is let through. */
  cooldownMs?: number;
  /** Values larger than this are not stored. */
  maxValueBytes?: number;
  /** Metadata blocks kept per object version (default 128: 8 MiB of 64 KiB blocks). */
  maxBlocksPerObject?: number;
  logger?: CacheLogger;
  now?: () => number;
}

export const KEY_PREFIX = 'medstream:v1:img:';
export const BLOCKS_KEY_PREFIX = 'medstream:v1:meta:';
const FORMAT_VERSION = 1;
const FLAG_PASSTHROUGH = 1;

/** Redis key of a TileService cache key: a prefix and the key's SHA-256 (base64url). */
export function redisKeyOf(key: string, prefix = KEY_PREFIX): string {
  return prefix + createHash('sha256').update(key).digest('base64url');
}

/**
 * KEYS[1] the object's block hash; ARGV: max fields, TTL ms, then index/bytes pairs. Adds the
 * blocks not there yet while the hash holds fewer than max, and renews the TTL: one round trip,
 * and concurrent replicas cannot push an object past its bound.
 */
const PUT_BLOCKS = `
local n = redis.call('HLEN', KEYS[1])
local max = tonumber(ARGV[1])
for i = 3, #ARGV, 2 do
  if n >= max then break end
  n = n + redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
`;

declare module 'ioredis' {
  interface RedisCommander<Context> {
    medstreamPutBlocks(key: string, ...args: (string | number | Buffer)[]): Result<number, Context>;
  }
}

/** `[version][flags][type length][type utf8][body]`. */
export function encodeValue(value: SharedImageValue): Buffer {
  const type = Buffer.from(value.contentType, 'utf8');
  if (type.length > 255) throw new RangeError('content type too long');
  const header = Buffer.from([FORMAT_VERSION, value.passthrough ? FLAG_PASSTHROUGH : 0, type.length]);
  return Buffer.concat([header, type, value.body]);
}

/** The value, or undefined for anything not written by this version of `encodeValue`. */
export function decodeValue(data: Buffer): SharedImageValue | undefined {
  if (data.length < 3 || data[0] !== FORMAT_VERSION) return undefined;
  const typeEnd = 3 + data[2];
  if (data.length < typeEnd) return undefined;
  return {
    passthrough: (data[1] & FLAG_PASSTHROUGH) !== 0,
    contentType: data.subarray(3, typeEnd).toString('utf8'),
    // A copy: the reply buffer of the connection is not ours to keep.
    body: Buffer.from(data.subarray(typeEnd)),
  };
}

type CircuitState = 'closed' | 'open' | 'half-open';

/**
 * Closed: commands flow, consecutive failures are counted. Open: nothing is sent until the
 * cooldown has passed. Half-open: one probe command; success closes, failure re-opens.
 */
export class CircuitBreaker {
  private state: CircuitState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  opens = 0;

  constructor(
    private readonly threshold: number,
    private readonly cooldownMs: number,
    private readonly now: () => number,
    private readonly onChange: (open: boolean) => void,
  ) {}

  get open(): boolean {
    return this.state !== 'closed';
  }

  /** Whether a command may be sent now (in half-open: only the one probe). */
  allow(): boolean {
    if (this.state === 'closed') return true;
    if (this.state === 'open' && this.now() - this.openedAt >= this.cooldownMs) {
      this.state = 'half-open';
      this.probing = false;
    }
    if (this.state === 'half-open' && !this.probing) {
      this.probing = true;
      return true;
    }
    return false;
  }

  success(): void {
    this.failures = 0;
    if (this.state !== 'closed') {
      this.state = 'closed';
      this.probing = false;
      this.onChange(false);
    }
  }

  failure(): void {
    this.failures++;
    if (this.state === 'half-open') {
      this.state = 'open';
      this.openedAt = this.now();
      this.probing = false;
    } else if (this.state === 'closed' && this.failures >= this.threshold) {
      this.state = 'open';
      this.openedAt = this.now();
      this.opens++;
      this.onChange(true);
    }
  }
}

export class RedisSharedCache implements SharedImageCache, SharedBlockStore {
  private readonly client: Redis;
  private readonly breaker: CircuitBreaker;
  private readonly now: () => number;
  private readonly counters = {
    hits: 0,
    misses: 0,
    errors: 0,
    skipped: 0,
    sets: 0,
    getCount: 0,
    getSumMs: 0,
    setCount: 0,
    setSumMs: 0,
    blockHits: 0,
    blockMisses: 0,
    blockSets: 0,
    writesInFlight: 0,
  };
  private closed = false;

  constructor(private readonly options: RedisSharedCacheOptions) {
    this.now = options.now ?? Date.now;
    const log = options.logger;
    const target = redactUrl(options.url);
    this.breaker = new CircuitBreaker(
      options.failureThreshold ?? 5,
      options.cooldownMs ?? 5000,
      this.now,
      (open) => {
        if (open) log?.warn({ redis: target }, 'redis cache unavailable: circuit open, serving without it');
        else log?.info({ redis: target }, 'redis cache available again: circuit closed');
      },
    );
    this.client = new Redis(options.url, {
      // Fail fast: no queue while disconnected, no retries of a command, no resends.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // A backstop that frees a command Redis never answers; waiting is bounded by `deadline`.
      commandTimeout: Math.max(1000, options.timeoutMs * 10),
      connectTimeout: Math.max(1000, options.timeoutMs),
      // Keep reconnecting in the background (at most every 2 s) so the cache comes back.
      retryStrategy: (times) => Math.min(times * 100, 2000),
      lazyConnect: false,
    });
    // Connection errors surface through the commands and the breaker; without a listener
    // ioredis would print every reconnect failure.
    this.client.on('error', (err: Error) => log?.debug({ err: err.message }, 'redis connection error'));
    // Sent as EVALSHA, loaded by ioredis on the first NOSCRIPT.
    this.client.defineCommand('medstreamPutBlocks', { numberOfKeys: 1, lua: PUT_BLOCKS });
  }

  async get(key: string, signal?: AbortSignal): Promise<SharedImageValue | undefined> {
    if (signal?.aborted) return undefined;
    const started = performance.now();
    // Not raced against `signal`: the timeout bounds the wait, and the breaker must see every
    // probe's outcome.
    const data = await this.read(() => this.client.getBuffer(redisKeyOf(key)));
    if (data === undefined) return undefined;
    this.counters.getCount++;
    this.counters.getSumMs += performance.now() - started;
    const value = data ? decodeValue(data) : undefined;
    if (value) this.counters.hits++;
    else this.counters.misses++;
    return value;
  }

  set(key: string, value: SharedImageValue): void {
    if (value.body.length > (this.options.maxValueBytes ?? 16 * 1024 * 1024)) return;
    const started = performance.now();
    this.write(
      () => this.client.set(redisKeyOf(key), encodeValue(value), 'PX', this.options.ttlMs),
      () => {
        this.counters.sets++;
        this.counters.setCount++;
        this.counters.setSumMs += performance.now() - started;
      },
    );
  }

  async getBlocks(object: string, indices: readonly number[]): Promise<(Uint8Array | undefined)[]> {
    const found =
      indices.length === 0
        ? undefined
        : await this.read(() =>
            this.client.hmgetBuffer(redisKeyOf(object, BLOCKS_KEY_PREFIX), ...indices.map(String)),
          );
    if (found === undefined) return indices.map(() => undefined);
    return found.map((block) => {
      if (block === null) this.counters.blockMisses++;
      else this.counters.blockHits++;
      return block ?? undefined;
    });
  }

  setBlocks(object: string, blocks: ReadonlyArray<readonly [number, Uint8Array]>): void {
    if (blocks.length === 0) return;
    const args: (string | number | Buffer)[] = [this.options.maxBlocksPerObject ?? 128, this.options.ttlMs];
    for (const [index, bytes] of blocks) {
      args.push(String(index), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    }
    this.write(
      () => this.client.medstreamPutBlocks(redisKeyOf(object, BLOCKS_KEY_PREFIX), ...args),
      () => (this.counters.blockSets += blocks.length),
    );
  }

  /** Whether a command may be sent now (not closed, circuit not open); counts the ones skipped. */
  private maySend(): boolean {
    if (this.closed) return false;
    if (this.breaker.allow()) return true;
    this.counters.skipped++;
    return false;
  }

  /** The reply of `send()`, or undefined when it was not sent, failed or timed out. */
  private async read<T>(send: () => Promise<T>): Promise<T | undefined> {
    if (!this.maySend()) return undefined;
    try {
      const reply = await deadline(send(), this.options.timeoutMs);
      this.breaker.success();
      return reply;
    } catch {
      this.counters.errors++;
      this.breaker.failure();
      return undefined;
    }
  }

  /** Sends a write without waiting for it; its outcome feeds the counters and the breaker. */
  private write(send: () => Promise<unknown>, onSuccess: () => void): void {
    if (!this.maySend()) return;
    this.counters.writesInFlight++;
    deadline(send(), this.options.timeoutMs).then(
      () => {
        this.counters.writesInFlight--;
        onSuccess();
        this.breaker.success();
      },
      () => {
        this.counters.writesInFlight--;
        this.counters.errors++;
        this.breaker.failure();
      },
    );
  }

  stats(): SharedCacheStats {
    return {
      ...this.counters,
      connected: this.client.status === 'ready',
      circuitOpen: this.breaker.open,
      circuitOpens: this.breaker.opens,
    };
  }

  /**
   * Waits at most `timeoutMs` for the first connection (so that the first requests after start
   * do not trip the breaker); resolves false, never rejects, when Redis is not there.
   */
  ready(timeoutMs: number): Promise<boolean> {
    if (this.client.status === 'ready') return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.client.off('ready', onReady);
        resolve(ok);
      };
      const onReady = () => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.client.once('ready', onReady);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // QUIT waits for Redis; a dead or hung one must not hold up shutdown.
    this.client.disconnect(false);
  }
}

/**
 * `command`'s outcome, or a rejection once `ms` have passed. The timer does not decide alone: a
 * process whose event loop was busy (a saturated replica) runs expired timers before it reads
 * the sockets, so a reply that arrived in time would lose to its own timeout and the breaker
 * would blame Redis for our lag. When the timer fires, the rejection waits for the next check
 * phase (`setImmediate`), after the poll phase has read whatever replies are there.
 */
export function deadline<T>(command: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(
      () => setImmediate(() => settle(() => reject(new Error(`redis command timed out after ${ms} ms`)))),
      ms,
    );
    command.then(
      (value) => settle(() => resolve(value)),
      (err: unknown) => settle(() => reject(err)),
    );
  });
}

/** What `medstream check` reports about the configured Redis. */
export interface RedisReport {
  version: string;
  /** Bytes; 0 when unbounded. */
  maxmemory: number;
  policy: string;
  /** Half of a SET + GET pair: about one command's round trip. */
  roundTripMs: number;
}

/**
 * Connects once (no reconnects, no queue), writes, reads back and deletes a probe key (so a
 * read-only replica or an ACL without writes shows), and reads `INFO server` and `INFO memory`
 * (which managed services allow where `CONFIG GET` is disabled). Rejects with the connection's
 * or a command's error.
 */
export async function inspectRedis(url: string, timeoutMs: number): Promise<RedisReport> {
  const client = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    retryStrategy: () => null,
    // disconnect() arms a timer that only a socket's 'close' clears; after a refused connection
    // that has already happened, and the default 2 s would hold a one-shot command open.
    disconnectTimeout: 100,
  });
  // The connection's own error (ECONNREFUSED, ENOTFOUND, TLS) says more than connect()'s
  // "Connection is closed".
  let connectionError: Error | undefined;
  client.on('error', (err: Error) => (connectionError ??= err));
  try {
    await client.connect();
    const key = `medstream:v1:check:${randomUUID()}`;
    const started = performance.now();
    await client.set(key, 'ok', 'PX', 60_000);
    const back = await client.get(key);
    const roundTripMs = (performance.now() - started) / 2;
    await client.del(key);
    if (back !== 'ok') throw new Error('a value written to Redis could not be read back');
    const info = new Map<string, string>();
    for (const line of `${await client.info('server')}\n${await client.info('memory')}`.split(/\r?\n/)) {
      const colon = line.indexOf(':');
      if (colon > 0 && !line.startsWith('#')) info.set(line.slice(0, colon), line.slice(colon + 1));
    }
    return {
      version: info.get('redis_version') ?? 'unknown',
      maxmemory: Number(info.get('maxmemory') ?? 0),
      policy: info.get('maxmemory_policy') ?? 'unknown',
      roundTripMs,
    };
  } catch (e) {
    throw connectionError ?? e;
  } finally {
    client.disconnect();
  }
}

/** The URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis';
  }
}
