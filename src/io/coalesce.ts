// Range coalescing for data reads (tiles) of one object. Reads issued in the same turn of the
// event loop are sorted, and neighbours whose gap is at most `gapBytes` are merged into one range
// request of at most `maxRequestBytes`; each caller then gets a view of its own bytes. A region
// of 16 adjacent tiles costs one request instead of 16, while a lone tile costs exactly its own
// bytes: data reads are never inflated to blocks. Identical concurrent reads share one request.
//
//   read(a) read(b) read(c)  --same turn-->  [a.. gap ..b c]  one request  --> a, b, c views
//
// The batch is flushed with setImmediate, not queueMicrotask. The reads of one region or of
// several HTTP requests arrive through promise chains of different depths (a tile offset looked
// up in the block cache, a slide opened from the registry), and from several socket callbacks of
// the same poll phase; a microtask flush would fire after the first chain and send the rest
// alone. setImmediate runs once the microtask queue is empty and the poll phase is done, which
// costs a lone read well under a millisecond against a storage round trip of 10-100 ms.

import { Cancelled, ConfigError, throwIfAborted } from '../errors.js';
import type { ByteSource } from '../storage/types.js';
import { assertLength, assertRange } from './range.js';
import { SharedTask } from './shared-flight.js';

export const DEFAULT_GAP_BYTES = 16 * 1024;
export const DEFAULT_MAX_REQUEST_BYTES = 8 * 1024 * 1024;

export interface RangeCoalescerOptions {
  /** Largest hole between two reads that is still fetched to save a request (default 16 KiB). */
  gapBytes?: number;
  /** Largest merged request (default 8 MiB); a single larger read is still sent alone. */
  maxRequestBytes?: number;
  /** Counters to add to; pass one shared object to sum over every coalescer of a process. */
  stats?: CoalescerStats;
}

/** Counters of one or many coalescers. `bytesFetched - bytesRequested` is the gap bytes wasted. */
export class CoalescerStats {
  /** Reads asked of the coalescer. */
  reads = 0;
  /** Reads answered by a request another identical read had already caused. */
  joined = 0;
  /** Flushes of a non-empty batch. */
  batches = 0;
  /** Range requests sent to storage (one per merged group). */
  requests = 0;
  /** Bytes the distinct reads of the sent groups asked for. */
  bytesRequested = 0;
  /** Bytes received from storage, gaps included. */
  bytesFetched = 0;

  snapshot(): CoalescerStatsSnapshot {
    return {
      reads: this.reads,
      joined: this.joined,
      batches: this.batches,
      requests: this.requests,
      bytesRequested: this.bytesRequested,
      bytesFetched: this.bytesFetched,
    };
  }
}

export type CoalescerStatsSnapshot = Pick<
  CoalescerStats,
  'reads' | 'joined' | 'batches' | 'requests' | 'bytesRequested' | 'bytesFetched'
>;

/** One caller waiting for a range that has not been sent yet. */
interface Waiter {
  signal: AbortSignal | undefined;
  resolve: (bytes: Uint8Array) => void;
  reject: (error: unknown) => void;
  onAbort: (() => void) | undefined;
}

/** One distinct range of the current batch, with every caller that asked for it. */
interface Slot {
  key: string;
  offset: number;
  length: number;
  waiters: Waiter[];
}

/** A sent range: the merged request that carries it, which starts at `start`. */
interface SentSlot {
  task: SharedTask<Uint8Array>;
  start: number;
}

export class RangeCoalescer {
  readonly stats: CoalescerStats;
  private readonly gapBytes: number;
  private readonly maxRequestBytes: number;
  private batch = new Map<string, Slot>();
  private flushScheduled = false;
  private readonly sent = new Map<string, SentSlot>();

  constructor(
    private readonly source: ByteSource,
    options: RangeCoalescerOptions = {},
  ) {
    this.gapBytes = options.gapBytes ?? DEFAULT_GAP_BYTES;
    this.maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
    if (!Number.isSafeInteger(this.gapBytes) || this.gapBytes < 0) {
      throw new ConfigError(`coalescing gap must be an integer >= 0, got ${this.gapBytes}`);
    }
    if (!Number.isSafeInteger(this.maxRequestBytes) || this.maxRequestBytes < 1) {
      throw new ConfigError(`largest coalesced request must be an integer >= 1, got ${this.maxRequestBytes}`);
    }
    this.stats = options.stats ?? new CoalescerStats();
  }

  /**
   * Exactly `length` bytes at `offset`. The answer may be a view into a larger merged buffer:
   * read-only, and a cache that keeps it for long should copy it (`slice()`) so one tile does
   * not pin a whole merged request in memory.
   */
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    try {
      assertRange(this.source, offset, length);
      throwIfAborted(signal);
    } catch (e) {
      return Promise.reject(e);
    }
    if (length === 0) return Promise.resolve(new Uint8Array(0));
    this.stats.reads++;
    const key = `${offset}:${length}`;

    const sent = this.sent.get(key);
    if (sent !== undefined) {
      this.stats.joined++;
      const from = offset - sent.start;
      return sent.task.join(signal).then((bytes) => bytes.subarray(from, from + length));
    }

    let slot = this.batch.get(key);
    if (slot === undefined) {
      slot = { key, offset, length, waiters: [] };
      this.batch.set(key, slot);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flush);
      }
    } else {
      this.stats.joined++;
    }
    const pending = slot;
    return new Promise<Uint8Array>((resolve, reject) => {
      const waiter: Waiter = { signal, resolve, reject, onAbort: undefined };
      if (signal !== undefined) {
        waiter.onAbort = () => {
          pending.waiters.splice(pending.waiters.indexOf(waiter), 1);
          if (pending.waiters.length === 0 && this.batch.get(key) === pending) this.batch.delete(key);
          reject(new Cancelled(undefined, { cause: signal.reason }));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      pending.waiters.push(waiter);
    });
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.batch.size === 0) return;
    const slots = [...this.batch.values()];
    this.batch = new Map();
    this.stats.batches++;
    slots.sort((a, b) => a.offset - b.offset || a.length - b.length);

    let group: Slot[] = [slots[0]];
    let start = slots[0].offset;
    let end = start + slots[0].length;
    for (let i = 1; i < slots.length; i++) {
      const slot = slots[i];
      const slotEnd = slot.offset + slot.length;
      if (slot.offset - end <= this.gapBytes && Math.max(end, slotEnd) - start <= this.maxRequestBytes) {
        group.push(slot);
        end = Math.max(end, slotEnd);
      } else {
        this.send(group, start, end);
        group = [slot];
        start = slot.offset;
        end = slotEnd;
      }
    }
    this.send(group, start, end);
  };

  /** One range request [start, end) answering every slot of the group. */
  private send(group: Slot[], start: number, end: number): void {
    const source = this.source;
    const stats = this.stats;
    const length = end - start;
    stats.requests++;
    for (const slot of group) stats.bytesRequested += slot.length;

    const fetch = async (signal: AbortSignal): Promise<Uint8Array> => {
      const bytes = await source.read(start, length, { signal, purpose: 'data' });
      assertLength(source, start, bytes, length);
      stats.bytesFetched += length;
      return bytes;
    };
    const forget = () => {
      for (const slot of group) if (this.sent.get(slot.key) === sentSlot) this.sent.delete(slot.key);
    };
    const sentSlot: SentSlot = { task: new SharedTask(fetch, forget), start };
    for (const slot of group) {
      this.sent.set(slot.key, sentSlot);
      const from = slot.offset - start;
      const to = from + slot.length;
      for (const waiter of slot.waiters) {
        if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort);
        sentSlot.task
          .join(waiter.signal)
          .then((bytes) => waiter.resolve(bytes.subarray(from, to)), waiter.reject);
      }
    }
  }
}
