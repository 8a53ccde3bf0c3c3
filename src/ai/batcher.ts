// Dynamic batching for one model: concurrent requests wait in a bounded queue and go to the
// model's worker together, up to `maxBatch` at a time. A batch leaves when it is full, when its
// oldest request has waited `maxWait`, or at once when no other request for the model is on its
// way (being read, decoded or preprocessed: `arriving()`), so a lone client never pays the wait;
// while the worker is busy requests keep gathering, so under load batches fill without waiting.
// A full queue refuses at once (`overloaded`: 503 + Retry-After); a request whose client went
// away leaves the queue (a running batch cannot be interrupted: its result for it is dropped).
//
//   submit(input) -> queue -> [full | maxWait | none arriving] + worker idle -> one run(N) -> split

import { Cancelled, MedStreamError } from '../errors.js';
import { BucketHistogram } from './histogram.js';

export interface BatchOptions {
  maxBatch: number;
  maxWaitMs: number;
  maxQueue: number;
  /** Leave at once when no other request is on its way (default true); false: always wait. */
  eager?: boolean;
}

/** Runs one batch: `count` inputs of `itemSize` values back to back -> one output per input. */
export type BatchRunner<T> = (data: Float32Array, count: number) => Promise<T[]>;

interface Waiting<T> {
  input: Float32Array;
  enqueued: number;
  resolve: (output: T) => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
  done: boolean;
}

export const LATENCY_BUCKETS_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];
export const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

export interface BatcherStats {
  queued: number;
  running: boolean;
  batches: number;
  /** Submit to result, successful requests. */
  latency: BucketHistogram;
  batchSize: BucketHistogram;
  /** Time of each batch in the worker (hand-over, ONNX Runtime run, reply). */
  runTime: BucketHistogram;
  errors: number;
  rejected: number;
  cancelled: number;
}

export class Batcher<T> {
  private readonly queue: Waiting<T>[] = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly latency = new BucketHistogram(LATENCY_BUCKETS_MS);
  private readonly batchSize = new BucketHistogram(BATCH_BUCKETS);
  private readonly runTime = new BucketHistogram(LATENCY_BUCKETS_MS);
  private batches = 0;
  private errors = 0;
  private rejected = 0;
  private cancelled = 0;

  constructor(
    private readonly name: string,
    readonly options: BatchOptions,
    private readonly runBatch: BatchRunner<T>,
    /** Requests for this model still being prepared (they will be submitted soon). */
    private readonly arriving: () => number = () => 0,
  ) {}

  /** Re-checks whether the waiting batch should leave (call when `arriving()` drops). */
  poke(): void {
    this.schedule();
  }

  /**
   * Throws `overloaded` (and counts it) when the queue plus `preparing` requests not yet queued
   * would exceed `maxQueue`: callers check before reading an image, so decoded images waiting
   * for the model are bounded too, not only queued tensors.
   */
  admit(preparing: number): void {
    if (this.queue.length + preparing < this.options.maxQueue) return;
    this.rejected++;
    throw new MedStreamError(
      'overloaded',
      `model ${this.name}: ${this.queue.length + preparing} requests already queued (max ${this.options.maxQueue})`,
      { retryable: true },
    );
  }

  /** Queues one input; resolves with its output when its batch has run. */
  submit(input: Float32Array, signal?: AbortSignal): Promise<T> {
    try {
      this.admit(0);
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.closed) return Promise.reject(new Cancelled(`model ${this.name} is closed`));
    if (signal?.aborted) {
      this.cancelled++;
      return Promise.reject(new Cancelled(undefined, { cause: signal.reason }));
    }
    return new Promise<T>((resolve, reject) => {
      const item: Waiting<T> = { input, enqueued: performance.now(), resolve, reject, signal, done: false };
      if (signal) {
        item.onAbort = () => {
          const index = this.queue.indexOf(item);
          if (index >= 0) this.queue.splice(index, 1);
          this.cancelled++;
          this.finish(item, new Cancelled(undefined, { cause: signal.reason }));
        };
        signal.addEventListener('abort', item.onAbort, { once: true });
      }
      this.queue.push(item);
      this.schedule();
    });
  }

  stats(): BatcherStats {
    return {
      queued: this.queue.length,
      running: this.running,
      batches: this.batches,
      latency: this.latency,
      batchSize: this.batchSize,
      runTime: this.runTime,
      errors: this.errors,
      rejected: this.rejected,
      cancelled: this.cancelled,
    };
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const item of this.queue.splice(0)) this.finish(item, new Cancelled(`model ${this.name} is closed`));
  }

  private schedule(): void {
    if (this.running || this.queue.length === 0 || this.closed) return;
    const waited = performance.now() - this.queue[0].enqueued;
    if (
      this.queue.length >= this.options.maxBatch ||
      waited >= this.options.maxWaitMs ||
      (this.options.eager !== false && this.arriving() === 0)
    ) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      void this.dispatch();
      return;
    }
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, this.options.maxWaitMs - waited);
    }
  }

  private async dispatch(): Promise<void> {
    const batch = this.queue.splice(0, this.options.maxBatch);
    this.running = true;
    this.batches++;
    this.batchSize.observe(batch.length);
    const size = batch[0].input.length;
    const data = new Float32Array(size * batch.length);
    batch.forEach((item, i) => data.set(item.input, i * size));
    try {
      const started = performance.now();
      const outputs = await this.runBatch(data, batch.length);
      const now = performance.now();
      this.runTime.observe(now - started);
      batch.forEach((item, i) => {
        if (!item.done) this.latency.observe(now - item.enqueued);
        this.finish(item, undefined, outputs[i]);
      });
    } catch (e) {
      this.errors++;
      for (const item of batch) this.finish(item, e);
    } finally {
      this.running = false;
      this.schedule();
    }
  }

  private finish(item: Waiting<T>, error: unknown, output?: T): void {
    if (item.done) return;
    item.done = true;
    if (item.signal && item.onAbort) item.signal.removeEventListener('abort', item.onAbort);
    if (error === undefined) item.resolve(output as T);
    else item.reject(error);
  }
}
