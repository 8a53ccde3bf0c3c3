// Statistics of the requests storage backends send: totals per kind (read / stat / list) with a
// latency histogram whose fixed buckets map one to one onto a Prometheus histogram, plus
// counters for the most recently used keys so "requests and bytes per slide" can be answered.
// Backends call `onRequest` once per attempt, on the hot path, so recording only bumps numbers
// in preallocated objects. `scope()` gives a child that counts one operation (a benchmark step,
// a test) while still forwarding every event to its parent.

import type { RequestObserver, StorageRequestEvent } from '../storage/types.js';
import { ByteLru } from './lru.js';

/** Upper bounds (`le`, inclusive) of the latency buckets, in milliseconds; +Inf is implied. */
export const LATENCY_BUCKETS_MS: readonly number[] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

export const DEFAULT_MAX_TRACKED_KEYS = 10_000;

export type RequestKind = StorageRequestEvent['kind'];

export interface LatencySnapshot {
  /** Same as `LATENCY_BUCKETS_MS`. */
  boundsMs: readonly number[];
  /**
   * Cumulative counts as Prometheus wants them: `cumulative[i]` requests took at most
   * `boundsMs[i]` ms; the extra last element is the +Inf bucket, equal to `count`.
   */
  cumulative: number[];
  count: number;
  sumMs: number;
}

export interface KindSnapshot {
  /** Attempts sent, retries included. */
  requests: number;
  /** Attempts that failed (outcome other than `ok`). */
  errors: number;
  /** Attempts after the first of an operation (attempt > 1). */
  retries: number;
  bytes: number;
  latency: LatencySnapshot;
}

export interface KeyStatsSnapshot {
  key: string;
  requests: number;
  reads: number;
  errors: number;
  retries: number;
  bytes: number;
  ms: number;
}

export interface ReadStatsSnapshot {
  read: KindSnapshot;
  stat: KindSnapshot;
  list: KindSnapshot;
  write: KindSnapshot;
  /** Keys with counters kept now (at most `maxKeys`). */
  keysTracked: number;
}

export interface ReadStatsOptions {
  /** Keys whose counters are kept, least recently used dropped first; 0 keeps none. */
  maxKeys?: number;
}

class KindTotals {
  requests = 0;
  errors = 0;
  retries = 0;
  bytes = 0;
  sumMs = 0;
  /** Non-cumulative counts per bucket; the last slot is above the largest bound. */
  readonly buckets = new Float64Array(LATENCY_BUCKETS_MS.length + 1);

  record(event: StorageRequestEvent): void {
    this.requests++;
    if (event.outcome !== 'ok') this.errors++;
    if (event.attempt > 1) this.retries++;
    this.bytes += event.bytes;
    this.sumMs += event.ms;
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && event.ms > LATENCY_BUCKETS_MS[i]) i++;
    this.buckets[i]++;
  }

  snapshot(): KindSnapshot {
    const cumulative = new Array<number>(this.buckets.length);
    let running = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      running += this.buckets[i];
      cumulative[i] = running;
    }
    return {
      requests: this.requests,
      errors: this.errors,
      retries: this.retries,
      bytes: this.bytes,
      latency: { boundsMs: LATENCY_BUCKETS_MS, cumulative, count: running, sumMs: this.sumMs },
    };
  }
}

class KeyCounters {
  requests = 0;
  reads = 0;
  errors = 0;
  retries = 0;
  bytes = 0;
  ms = 0;
}

export class ReadStats implements RequestObserver {
  readonly maxKeys: number;
  private totals = {
    read: new KindTotals(),
    stat: new KindTotals(),
    list: new KindTotals(),
    write: new KindTotals(),
  };
  private readonly keys: ByteLru<string, KeyCounters>;

  constructor(
    options: ReadStatsOptions = {},
    private readonly parent?: RequestObserver,
  ) {
    this.maxKeys = options.maxKeys ?? DEFAULT_MAX_TRACKED_KEYS;
    // Every key weighs 1, so the byte-bounded LRU bounds the number of keys.
    this.keys = new ByteLru({ maxBytes: this.maxKeys, sizeOf: () => 1 });
  }

  onRequest(event: StorageRequestEvent): void {
    this.totals[event.kind].record(event);
    if (this.maxKeys > 0) {
      let counters = this.keys.get(event.key);
      if (counters === undefined) {
        counters = new KeyCounters();
        this.keys.set(event.key, counters);
      }
      counters.requests++;
      if (event.kind === 'read') counters.reads++;
      if (event.outcome !== 'ok') counters.errors++;
      if (event.attempt > 1) counters.retries++;
      counters.bytes += event.bytes;
      counters.ms += event.ms;
    }
    this.parent?.onRequest(event);
  }

  /** Counters of one key, or undefined if it was never seen or has been dropped. */
  forKey(key: string): KeyStatsSnapshot | undefined {
    const c = this.keys.peek(key);
    if (c === undefined) return undefined;
    return {
      key,
      requests: c.requests,
      reads: c.reads,
      errors: c.errors,
      retries: c.retries,
      bytes: c.bytes,
      ms: c.ms,
    };
  }

  snapshot(): ReadStatsSnapshot {
    return {
      read: this.totals.read.snapshot(),
      stat: this.totals.stat.snapshot(),
      list: this.totals.list.snapshot(),
      write: this.totals.write.snapshot(),
      keysTracked: this.keys.size,
    };
  }

  /** Zeroes every counter of this object (not of its parent or children). */
  reset(): void {
    this.totals = {
      read: new KindTotals(),
      stat: new KindTotals(),
      list: new KindTotals(),
      write: new KindTotals(),
    };
    this.keys.clear();
  }

  /**
   * A child that counts only the events it is given, and forwards each to this object: hand it
   * to the storage used for one operation to count that operation's requests alone.
   */
  scope(options: ReadStatsOptions = { maxKeys: this.maxKeys }): ReadStats {
    return new ReadStats(options, this);
  }
}
