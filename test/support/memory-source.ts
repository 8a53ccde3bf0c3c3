// A ByteSource over bytes in memory for the io/ unit tests: it records every read it receives,
// can be told to fail, to answer short, or to hold reads until the test releases them, and
// notices when a read's signal fires. Tests count calls here instead of timing anything.

import { Cancelled, InvalidRange } from '../../src/errors.js';
import type { ByteSource, ReadOptions } from '../../src/storage/types.js';

export interface MemoryRead {
  offset: number;
  length: number;
  purpose: ReadOptions['purpose'];
  signal: AbortSignal | undefined;
}

export class MemorySource implements ByteSource {
  readonly key: string;
  readonly identity: string;
  readonly calls: MemoryRead[] = [];
  /** Reads whose signal fired while this source was still working on them. */
  aborted = 0;
  private readonly failures: unknown[] = [];
  private shortBy = 0;
  private gate: Promise<void> | undefined;
  private openGate: (() => void) | undefined;
  private readonly callWaiters: { count: number; resolve: () => void }[] = [];

  constructor(
    readonly data: Uint8Array,
    options: { key?: string; identity?: string } = {},
  ) {
    this.key = options.key ?? 'memory/object.bin';
    this.identity = options.identity ?? `${data.byteLength}:v1`;
  }

  /** `size` bytes whose value at offset i is a function of i, so a wrong slice shows. */
  static pattern(size: number, options?: { key?: string; identity?: string; seed?: number }): MemorySource {
    const data = new Uint8Array(size);
    const seed = options?.seed ?? 0;
    for (let i = 0; i < size; i++) data[i] = (i * 31 + (i >>> 8) * 7 + seed) & 0xff;
    return new MemorySource(data, options);
  }

  get size(): number {
    return this.data.byteLength;
  }

  /** The next reads (one per error) fail with these errors. */
  failNext(...errors: unknown[]): void {
    this.failures.push(...errors);
  }

  /** Every read answers `bytes` fewer bytes than asked, until set back to 0. */
  answerShort(bytes: number): void {
    this.shortBy = bytes;
  }

  /** Reads started from now on wait until `release()` (or until their signal fires). */
  hold(): void {
    if (this.gate) return;
    this.gate = new Promise((resolve) => (this.openGate = resolve));
  }

  release(): void {
    this.openGate?.();
    this.gate = undefined;
    this.openGate = undefined;
  }

  /** Resolves once at least `count` reads have been received. */
  waitForCalls(count: number): Promise<void> {
    if (this.calls.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.callWaiters.push({ count, resolve }));
  }

  async read(offset: number, length: number, options: ReadOptions = {}): Promise<Uint8Array> {
    const { signal } = options;
    this.calls.push({ offset, length, purpose: options.purpose, signal });
    for (const waiter of this.callWaiters.filter((w) => this.calls.length >= w.count)) {
      this.callWaiters.splice(this.callWaiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new InvalidRange(`[${offset}, +${length}) outside ${this.size}`);
    }
    if (this.gate) await this.waitOrAbort(this.gate, signal);
    if (signal?.aborted) {
      this.aborted++;
      throw new Cancelled(undefined, { cause: signal.reason });
    }
    if (this.failures.length > 0) throw this.failures.shift();
    return this.data.slice(offset, offset + length - this.shortBy);
  }

  private waitOrAbort(gate: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
    if (!signal) return gate;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.aborted++;
        reject(new Cancelled(undefined, { cause: signal.reason }));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      gate.then(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }
}

/** Fast byte equality for large buffers (a deep `toEqual` walks them element by element). */
export function sameBytes(actual: Uint8Array, expected: Uint8Array): boolean {
  return Buffer.from(actual.buffer, actual.byteOffset, actual.byteLength).equals(expected);
}
