// The in-process job queue: a bounded FIFO in front of `concurrency` runners, records and result
// files in memory until `ttlMs` after a job ends (and at most `maxFinished` finished jobs), a
// cancellation that removes a queued job at once and aborts a running one through its signal.
// Result files are bounded in bytes too. One process only: replicas share jobs through
// redis-queue.ts instead.

import { randomUUID } from 'node:crypto';
import { Cancelled } from '../errors.js';
import {
  emptyCounts,
  isFinal,
  jobErrorOf,
  queueFull,
  type JobHandler,
  type JobQueue,
  type JobRecord,
  type JobStats,
  type SubmitOptions,
  type Submitted,
} from './queue.js';

export interface MemoryQueueOptions<P, S> {
  handler: JobHandler<P, S>;
  /** Jobs running at once (default 1). */
  concurrency?: number;
  /** Jobs waiting at most; beyond it submissions fail with `overloaded` (default 16). */
  maxQueued?: number;
  /** How long a finished job and its files are kept (default 1 hour). */
  ttlMs?: number;
  /** Finished jobs kept at most, oldest forgotten first (default 1000). */
  maxFinished?: number;
  /** Bytes of result files kept at most, oldest jobs forgotten first; the newest always stays (default 256 MiB). */
  maxFileBytes?: number;
  /** Names this process in `worker` (default "local"). */
  workerId?: string;
  /** Told about handler failures that are not typed errors (for the log). */
  onInternalError?: (id: string, error: unknown) => void;
  /** Clock (tests). */
  now?: () => number;
}

interface Entry<P, S> {
  record: JobRecord<P, S>;
  files?: Record<string, Uint8Array>;
  controller?: AbortController;
  dedupKey?: string;
}

export class MemoryJobQueue<P, S> implements JobQueue<P, S> {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, Entry<P, S>>();
  private readonly byKey = new Map<string, string>();
  private readonly waiting: string[] = [];
  private running = 0;
  private rejected = 0;
  private deduplicated = 0;
  private closed = false;
  private readonly sweeper: NodeJS.Timeout;
  private readonly idle = new Set<() => void>();
  private readonly concurrency: number;
  private readonly maxQueued: number;
  private readonly ttlMs: number;
  private readonly maxFinished: number;
  private readonly now: () => number;

  constructor(private readonly options: MemoryQueueOptions<P, S>) {
    this.concurrency = options.concurrency ?? 1;
    this.maxQueued = options.maxQueued ?? 16;
    this.ttlMs = options.ttlMs ?? 3_600_000;
    this.maxFinished = options.maxFinished ?? 1000;
    this.now = options.now ?? Date.now;
    this.sweeper = setInterval(() => this.sweep(), Math.min(60_000, Math.max(1000, this.ttlMs / 4)));
    this.sweeper.unref();
  }

  async submit(payload: P, options: SubmitOptions = {}): Promise<Submitted<P, S>> {
    if (this.closed) throw new Cancelled('the job queue is closing');
    this.sweep();
    const key = options.dedupKey;
    if (key !== undefined) {
      const existing = this.entries.get(this.byKey.get(key) ?? '');
      if (existing && existing.record.state !== 'failed' && existing.record.state !== 'cancelled') {
        this.deduplicated++;
        return { job: copy(existing.record), created: false };
      }
    }
    if (this.waiting.length >= this.maxQueued) {
      this.rejected++;
      throw queueFull(this.maxQueued);
    }
    const id = randomUUID();
    const record: JobRecord<P, S> = {
      id,
      state: 'queued',
      payload,
      progress: {},
      createdAt: this.now(),
      attempts: 0,
      files: [],
    };
    this.entries.set(id, { record, dedupKey: key });
    if (key !== undefined) this.byKey.set(key, id);
    this.waiting.push(id);
    this.pump();
    return { job: copy(record), created: true };
  }

  async get(id: string): Promise<JobRecord<P, S> | undefined> {
    this.sweep();
    const entry = this.entries.get(id);
    return entry ? copy(entry.record) : undefined;
  }

  async file(id: string, name: string): Promise<Uint8Array | undefined> {
    this.sweep();
    return this.entries.get(id)?.files?.[name];
  }

  async cancel(id: string): Promise<JobRecord<P, S> | undefined> {
    this.sweep();
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    const { record } = entry;
    if (record.state === 'queued') {
      this.waiting.splice(this.waiting.indexOf(id), 1);
      this.finish(entry, 'cancelled');
    } else if (record.state === 'running') {
      record.cancelRequested = true;
      entry.controller?.abort(new Cancelled('the job was cancelled'));
    }
    return copy(record);
  }

  async stats(): Promise<JobStats> {
    this.sweep();
    const byState = emptyCounts();
    for (const { record } of this.entries.values()) byState[record.state]++;
    return { byState, depth: this.waiting.length, rejected: this.rejected, deduplicated: this.deduplicated };
  }

  /** Resolves once no job is running or waiting (tests, shutdown). */
  async drained(): Promise<void> {
    while (this.running > 0 || this.waiting.length > 0) {
      await new Promise<void>((resolve) => this.idle.add(resolve));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const id of this.waiting.splice(0)) {
      const entry = this.entries.get(id);
      if (entry) this.finish(entry, 'cancelled');
    }
    for (const entry of this.entries.values()) {
      if (entry.record.state === 'running') entry.controller?.abort(new Cancelled('the server is stopping'));
    }
    await this.drained();
  }

  private pump(): void {
    while (!this.closed && this.running < this.concurrency && this.waiting.length > 0) {
      const entry = this.entries.get(this.waiting.shift()!);
      if (entry) void this.run(entry);
    }
    if (this.running === 0 && this.waiting.length === 0) {
      for (const wake of this.idle) wake();
      this.idle.clear();
    }
  }

  private async run(entry: Entry<P, S>): Promise<void> {
    const { record } = entry;
    this.running++;
    const controller = new AbortController();
    entry.controller = controller;
    record.state = 'running';
    record.startedAt = this.now();
    record.attempts++;
    record.worker = this.options.workerId ?? 'local';
    try {
      const output = await this.options.handler(record.payload, {
        id: record.id,
        attempt: record.attempts,
        signal: controller.signal,
        progress: (values) => {
          record.progress = { ...record.progress, ...values };
        },
      });
      // A handler that returned has finished: it checks its signal between steps, and a cancel
      // that lands after its last check (while a segmentation's SEG is being stored) is too late;
      // calling the job cancelled would leave its stored result behind a cancelled record.
      record.summary = output.summary;
      entry.files = output.files;
      record.files = Object.keys(output.files);
      this.finish(entry, 'done');
    } catch (e) {
      if (controller.signal.aborted) this.finish(entry, 'cancelled');
      else {
        record.error = jobErrorOf(e);
        if (record.error.code === 'internal_error') this.options.onInternalError?.(record.id, e);
        this.finish(entry, 'failed');
      }
    } finally {
      entry.controller = undefined;
      this.running--;
      this.pump();
    }
  }

  private finish(entry: Entry<P, S>, state: 'done' | 'failed' | 'cancelled'): void {
    const { record } = entry;
    record.state = state;
    record.cancelRequested = undefined;
    record.finishedAt = this.now();
    record.expiresAt = record.finishedAt + this.ttlMs;
    this.sweep();
  }

  /** Forgets expired jobs, and the oldest finished ones beyond `maxFinished`. */
  private sweep(): void {
    const now = this.now();
    const finished: Entry<P, S>[] = [];
    for (const entry of this.entries.values()) {
      if (!isFinal(entry.record.state)) continue;
      if ((entry.record.expiresAt ?? Infinity) <= now) this.forget(entry);
      else finished.push(entry);
    }
    finished.sort((a, b) => (a.record.finishedAt ?? 0) - (b.record.finishedAt ?? 0));
    let bytes = finished.reduce((n, e) => n + fileBytes(e), 0);
    const maxBytes = this.options.maxFileBytes ?? 256 * 1024 * 1024;
    let count = finished.length;
    for (const entry of finished) {
      if (count <= 1 || (count <= this.maxFinished && bytes <= maxBytes)) break;
      this.forget(entry);
      count--;
      bytes -= fileBytes(entry);
    }
  }

  private forget(entry: Entry<P, S>): void {
    this.entries.delete(entry.record.id);
    if (entry.dedupKey !== undefined && this.byKey.get(entry.dedupKey) === entry.record.id)
      this.byKey.delete(entry.dedupKey);
  }
}

function fileBytes(entry: { files?: Record<string, Uint8Array> }): number {
  return Object.values(entry.files ?? {}).reduce((n, f) => n + f.byteLength, 0);
}

function copy<P, S>(record: JobRecord<P, S>): JobRecord<P, S> {
  return { ...record, progress: { ...record.progress }, files: [...record.files] };
}
