// Inference results shared by replicas through Redis (--redis-url): each result is one hash,
// <prefix>:ai:result:<id> with `meta` (JSON: what it is, its study) and `data` (a PNG, or a volume's
// voxels deflated), written once and expiring `ttlMs` after. results.ts decides what goes in;
// this file only moves bytes, and turns Redis failures into a typed 503.

import { Redis } from 'ioredis';
import { MedStreamError, StorageUnavailable } from '../errors.js';

/** Where results.ts keeps what every replica must find. */
export interface SharedResultBackend {
  /** Stores a result's description and payload; they expire together. */
  put(id: string, meta: string, data: Buffer): Promise<void>;
  /** The description, or undefined when unknown or expired. */
  meta(id: string): Promise<string | undefined>;
  /** The payload, or undefined when unknown or expired. */
  data(id: string): Promise<Buffer | undefined>;
  close(): Promise<void>;
}

export interface RedisResultOptions {
  url: string;
  /** How long a result lives after it is made. */
  ttlMs: number;
  /** Key prefix (default "medstream"). */
  prefix?: string;
}

/** Longest one command may take: a payload is up to --ai-results-shared-max bytes. */
const COMMAND_MS = 10_000;

export class RedisResultBackend implements SharedResultBackend {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(private readonly options: RedisResultOptions) {
    this.prefix = `${options.prefix ?? 'medstream'}:ai:result:`;
    // Bounded commands: a Redis that is down or hung fails the request (503), never hangs it.
    this.redis = new Redis(options.url, { maxRetriesPerRequest: 1, commandTimeout: COMMAND_MS });
    this.redis.on('error', () => undefined);
  }

  put(id: string, meta: string, data: Buffer): Promise<void> {
    return guarded(async () => {
      const key = this.prefix + id;
      const replies = await this.redis
        .multi()
        .hset(key, { meta, data })
        .pexpire(key, this.options.ttlMs)
        .exec();
      const failed = replies?.find(([err]) => err)?.[0];
      if (failed) throw failed;
    });
  }

  meta(id: string): Promise<string | undefined> {
    return guarded(async () => (await this.redis.hget(this.prefix + id, 'meta')) ?? undefined);
  }

  data(id: string): Promise<Buffer | undefined> {
    return guarded(async () => (await this.redis.hgetBuffer(this.prefix + id, 'data')) ?? undefined);
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** Redis failures become a typed 503; typed errors pass. */
async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (e instanceof MedStreamError) throw e;
    throw new StorageUnavailable('the shared result store (Redis) is unavailable; retry later', { cause: e });
  }
}
