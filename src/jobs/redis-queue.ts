// The job queue across replicas: BullMQ on Redis hands each job to one worker of any replica
// (locks, stalled-job detection: a worker that dies mid-job loses its lock and the job is retried
// by another, or failed with a reason once it has stalled too often). Every replica answers status
// and results from Redis: the record (JSON, the payload included) under <prefix>:job:<id>, result
// files under <prefix>:job:<id>:file:<name>, both expiring `ttlMs` after the job ends.
// Cancellation sets <prefix>:job:<id>:cancel, which the running worker polls between steps.

import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { Cancelled, MedStreamError, StorageUnavailable } from '../errors.js';
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

export interface RedisQueueOptions<P, S> {
  url: string;
  /** Queue name; replicas with the same name share jobs (default "jobs"). */
  name?: string;
  /** Key prefix (default "medstream"). */
  prefix?: string;
  handler: JobHandler<P, S>;
  /** Jobs this process runs at once; 0 = submit and answer only. */
  concurrency: number;
  maxQueued: number;
  ttlMs: number;
  /** Names this process in `worker`. */
  workerId: string;
  /** A worker's lock; a worker silent this long is taken for dead (default 30 s). */
  lockMs?: number;
  /** How often workers look for jobs whose worker died (default 15 s). */
  stalledCheckMs?: number;
  /** Times a job may lose its worker and be retried before it fails (default 1). */
  maxStalls?: number;
  /** How often a running job looks for a cancellation (default 250 ms). */
  cancelPollMs?: number;
  onInternalError?: (id: string, error: unknown) => void;
}

/** Longest a Redis command may take before the request fails. */
const COMMAND_MS = 2000;
/** Longest close() waits for BullMQ (running jobs end within a slice or two once aborted). */
const CLOSE_MS = 5000;

/** Records of jobs not yet final live this long at most (a queue that never drains). */
const LIVE_MS = 7 * 24 * 3600 * 1000;

/** A running job stopped because this replica is shutting down: BullMQ hands it to another. */
class ShuttingDown extends Error {}

export class RedisJobQueue<P, S> implements JobQueue<P, S> {
  readonly kind = 'redis' as const;
  private readonly redis: Redis;
  private readonly queue: Queue;
  private readonly worker?: Worker;
  private readonly prefix: string;
  private readonly running = new Map<string, AbortController>();
  private rejected = 0;
  private deduplicated = 0;
  private closing = false;

  constructor(private readonly options: RedisQueueOptions<P, S>) {
    this.prefix = `${options.prefix ?? 'medstream'}:${options.name ?? 'jobs'}`;
    // Bounded commands: a Redis that is down or hung fails a request (503), never hangs it.
    this.redis = new Redis(options.url, { maxRetriesPerRequest: 1, commandTimeout: COMMAND_MS });
    this.redis.on('error', () => undefined);
    const bull = { prefix: `${options.prefix ?? 'medstream'}:bull` };
    // Options, not a connection: BullMQ then owns (and closes) its connections.
    const connection = redisOptionsOf(options.url);
    this.queue = new Queue(options.name ?? 'jobs', {
      connection: { ...connection, maxRetriesPerRequest: 1, commandTimeout: COMMAND_MS },
      ...bull,
    });
    this.queue.on('error', () => undefined);
    if (options.concurrency > 0) {
      this.worker = new Worker(options.name ?? 'jobs', (job) => this.process(job), {
        connection,
        ...bull,
        concurrency: options.concurrency,
        lockDuration: options.lockMs ?? 30_000,
        stalledInterval: options.stalledCheckMs ?? 15_000,
        maxStalledCount: options.maxStalls ?? 1,
      });
      // A job that stalled too often (its workers died) is failed by BullMQ: say so in the record.
      // ('failed' also fires for an attempt BullMQ retries: only a job failed for good counts.)
      this.worker.on('failed', (job, error) => {
        if (!job?.id) return;
        const id = job.id;
        void job
          .getState()
          .then((state) => (state === 'failed' ? this.markLost(id, error.message) : undefined))
          .catch(() => undefined);
      });
      this.worker.on('error', () => undefined);
    }
  }

  private key(id: string, suffix = ''): string {
    return `${this.prefix}:job:${id}${suffix}`;
  }

  submit(payload: P, options: SubmitOptions = {}): Promise<Submitted<P, S>> {
    return guarded(() => this.submitNow(payload, options));
  }

  private async submitNow(payload: P, options: SubmitOptions): Promise<Submitted<P, S>> {
    if (this.closing) throw new Cancelled('the job queue is closing');
    const id = randomUUID();
    const dedup = options.dedupKey === undefined ? undefined : `${this.prefix}:dedup:${options.dedupKey}`;
    if (dedup) {
      const taken = await this.redis.set(dedup, id, 'PX', LIVE_MS, 'NX');
      if (taken === null) {
        const other = await this.redis.get(dedup);
        const existing = other ? await this.get(other) : undefined;
        if (existing && existing.state !== 'failed' && existing.state !== 'cancelled') {
          this.deduplicated++;
          return { job: existing, created: false };
        }
        await this.redis.set(dedup, id, 'PX', LIVE_MS);
      }
    }
    const counts = await this.queue.getJobCounts('wait', 'prioritized', 'delayed', 'paused');
    const depth = Object.values(counts).reduce((a, b) => a + b, 0);
    if (depth >= this.options.maxQueued) {
      this.rejected++;
      if (dedup && (await this.redis.get(dedup)) === id) await this.redis.del(dedup);
      throw queueFull(this.options.maxQueued);
    }
    const record: JobRecord<P, S> = {
      id,
      state: 'queued',
      payload,
      progress: {},
      createdAt: Date.now(),
      attempts: 0,
      files: [],
    };
    await this.save(record);
    await this.queue.add(
      'job',
      { id },
      {
        jobId: id,
        // Retries after a shutdown (ShuttingDown); a handler's own failure is final (see process()).
        attempts: 3,
        removeOnComplete: true,
        removeOnFail: { age: Math.ceil(this.options.ttlMs / 1000) },
      },
    );
    return { job: record, created: true };
  }

  get(id: string): Promise<JobRecord<P, S> | undefined> {
    return guarded(() => this.getNow(id));
  }

  private async getNow(id: string): Promise<JobRecord<P, S> | undefined> {
    const record = await this.load(id);
    if (!record || isFinal(record.state)) return record;
    if (await this.redis.exists(this.key(id, ':cancel'))) record.cancelRequested = true;
    // Reconcile with BullMQ: a job whose worker died is queued again, or failed by BullMQ.
    const job = await this.queue.getJob(id);
    const state = job ? await job.getState() : 'missing';
    if (state === 'failed') return (await this.markLost(id, job?.failedReason ?? 'unknown')) ?? record;
    if (state === 'missing') {
      const again = await this.load(id);
      if (again && !isFinal(again.state))
        return (await this.markLost(id, 'it is no longer in the queue')) ?? again;
      return again;
    }
    if (record.state === 'running' && (state === 'waiting' || state === 'prioritized' || state === 'delayed'))
      record.state = 'queued';
    return record;
  }

  file(id: string, name: string): Promise<Uint8Array | undefined> {
    return guarded(() => this.fileNow(id, name));
  }

  private async fileNow(id: string, name: string): Promise<Uint8Array | undefined> {
    const bytes = await this.redis.getBuffer(this.key(id, `:file:${name}`));
    return bytes ?? undefined;
  }

  cancel(id: string): Promise<JobRecord<P, S> | undefined> {
    return guarded(() => this.cancelNow(id));
  }

  private async cancelNow(id: string): Promise<JobRecord<P, S> | undefined> {
    const record = await this.get(id);
    if (!record || isFinal(record.state)) return record;
    if (record.state === 'queued') {
      const job = await this.queue.getJob(id);
      let removed = false;
      try {
        // Fails when a worker holds the job's lock (it started meanwhile).
        await job?.remove();
        removed = job !== undefined;
      } catch {
        removed = false;
      }
      if (removed) return this.finish(record, 'cancelled');
    }
    await this.redis.set(this.key(id, ':cancel'), '1', 'PX', LIVE_MS);
    this.running.get(id)?.abort(new Cancelled('the job was cancelled'));
    return { ...record, cancelRequested: true };
  }

  stats(): Promise<JobStats> {
    return guarded(() => this.statsNow());
  }

  private async statsNow(): Promise<JobStats> {
    const counts = await this.queue.getJobCounts('wait', 'prioritized', 'delayed', 'paused', 'active');
    const byState = emptyCounts();
    byState.queued = counts.wait + counts.prioritized + counts.delayed + counts.paused;
    byState.running = counts.active;
    const finished = await this.redis.hgetall(`${this.prefix}:finished`);
    for (const state of ['done', 'failed', 'cancelled'] as const)
      byState[state] = Number(finished[state] ?? 0);
    return { byState, depth: byState.queued, rejected: this.rejected, deduplicated: this.deduplicated };
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const controller of this.running.values())
      controller.abort(new ShuttingDown('the replica is stopping'));
    // Bounded: with Redis down BullMQ's close would wait for its blocking connection forever.
    const bounded = (work: Promise<unknown>) =>
      Promise.race([work.catch(() => undefined), new Promise((r) => setTimeout(r, CLOSE_MS).unref())]);
    await bounded(this.worker?.close() ?? Promise.resolve());
    await bounded(this.queue.close());
    if (this.worker) await bounded(this.worker.disconnect());
    await bounded(this.queue.disconnect());
    this.redis.disconnect();
  }

  /** BullMQ's processor: runs one job on this replica. */
  private async process(job: Job): Promise<void> {
    const id = job.id!;
    const record = await this.load(id);
    if (!record || isFinal(record.state)) return;
    if (await this.redis.exists(this.key(id, ':cancel'))) {
      await this.finish(record, 'cancelled');
      return;
    }
    const controller = new AbortController();
    this.running.set(id, controller);
    record.state = 'running';
    record.startedAt = Date.now();
    record.attempts++;
    record.worker = this.options.workerId;
    record.error = undefined;
    await this.save(record);
    const poll = setInterval(() => {
      void this.redis.exists(this.key(id, ':cancel')).then(
        (n) => {
          if (n) controller.abort(new Cancelled('the job was cancelled'));
        },
        () => undefined,
      );
    }, this.options.cancelPollMs ?? 250);
    let saving = Promise.resolve();
    try {
      const output = await this.options.handler(record.payload, {
        id,
        attempt: record.attempts,
        signal: controller.signal,
        progress: (values) => {
          record.progress = { ...record.progress, ...values };
          saving = saving.then(() => this.save(record)).catch(() => undefined);
        },
      });
      await saving;
      // A handler that returned has finished (see memory-queue.ts): done, even if a cancel landed
      // after its last check.
      const multi = this.redis.multi();
      for (const [name, bytes] of Object.entries(output.files))
        multi.set(this.key(id, `:file:${name}`), Buffer.from(bytes), 'PX', this.options.ttlMs);
      await multi.exec();
      record.summary = output.summary;
      record.files = Object.keys(output.files);
      await this.finish(record, 'done');
    } catch (e) {
      await saving;
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : e;
      if (reason instanceof ShuttingDown) {
        // Back to the queue: BullMQ retries it (attempts), on another replica if this one is gone.
        record.state = 'queued';
        await this.save(record);
        throw reason;
      }
      if (controller.signal.aborted) await this.finish(record, 'cancelled');
      else {
        record.error = jobErrorOf(e);
        if (record.error.code === 'internal_error') this.options.onInternalError?.(id, e);
        await this.finish(record, 'failed');
      }
    } finally {
      clearInterval(poll);
      this.running.delete(id);
    }
  }

  /** A job BullMQ gave up on (its workers died): failed, with the reason. */
  private async markLost(id: string, why: string): Promise<JobRecord<P, S> | undefined> {
    const record = await this.load(id);
    if (!record || isFinal(record.state)) return record;
    record.error = {
      code: 'worker_lost',
      message: `the worker running the job stopped and it was not retried: ${why}`,
    };
    return this.finish(record, 'failed');
  }

  private async finish(
    record: JobRecord<P, S>,
    state: 'done' | 'failed' | 'cancelled',
  ): Promise<JobRecord<P, S>> {
    record.state = state;
    record.cancelRequested = undefined;
    record.finishedAt = Date.now();
    record.expiresAt = record.finishedAt + this.options.ttlMs;
    await this.save(record);
    await this.redis
      .multi()
      .hincrby(`${this.prefix}:finished`, state, 1)
      .del(this.key(record.id, ':cancel'))
      .exec();
    return record;
  }

  private async save(record: JobRecord<P, S>): Promise<void> {
    const ttl = record.expiresAt === undefined ? LIVE_MS : Math.max(1, record.expiresAt - Date.now());
    await this.redis.set(this.key(record.id), JSON.stringify(record), 'PX', ttl);
  }

  private async load(id: string): Promise<JobRecord<P, S> | undefined> {
    if (!/^[0-9a-f-]{36}$/.test(id)) return undefined;
    const text = await this.redis.get(this.key(id));
    return text === null ? undefined : (JSON.parse(text) as JobRecord<P, S>);
  }
}

/** ioredis options from a redis:// or rediss:// URL (what BullMQ's `connection` takes). */
export function redisOptionsOf(url: string): RedisOptions {
  const u = new URL(url);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 6379,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    tls: u.protocol === 'rediss:' ? {} : undefined,
    // Workers block on Redis: BullMQ needs commands never to give up.
    maxRetriesPerRequest: null,
  };
}

/** Redis failures become a typed 503 (the queue is unavailable), typed errors pass. */
export async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (e instanceof MedStreamError) throw e;
    throw new StorageUnavailable('the job queue (Redis) is unavailable; retry later', { cause: e });
  }
}
