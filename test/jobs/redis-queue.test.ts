// The Redis-backed job queue (BullMQ) against a real redis-server: a job submitted by one replica
// runs on another and every replica answers its status and files; identical jobs joined across
// replicas; cancellation of queued and running jobs; a full queue; TTL expiry; and a worker
// process SIGKILLed mid-job: its job is retried by another worker, or failed with a reason once
// it may not be retried, never lost.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MedStreamError, StorageUnavailable } from '../../src/errors.js';
import type { JobRecord } from '../../src/jobs/queue.js';
import { RedisJobQueue, type RedisQueueOptions } from '../../src/jobs/redis-queue.js';
import { startRedis, type TestRedis } from '../support/redis-server.js';
import { until } from '../support/server.js';
import { STEP_QUEUE_SETTINGS, stepHandler, type StepPayload } from './step-handler.js';

type Queue = RedisJobQueue<StepPayload, { name: string }>;
let redis: TestRedis;
const open: Queue[] = [];
const children: ChildProcess[] = [];
let queueNumber = 0;

beforeAll(async () => {
  redis = await startRedis();
});
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  await Promise.all(open.splice(0).map((q) => q.close()));
});
afterAll(async () => {
  await redis?.stop();
});

function replica(
  name: string,
  workerId: string,
  options: Partial<RedisQueueOptions<StepPayload, { name: string }>> = {},
): Queue {
  const q = new RedisJobQueue<StepPayload, { name: string }>({
    url: redis.url,
    name,
    workerId,
    ...STEP_QUEUE_SETTINGS,
    cancelPollMs: 50,
    handler: stepHandler(),
    ...options,
  });
  open.push(q);
  return q;
}

async function settled(q: Queue, id: string, ms = 15_000): Promise<JobRecord<StepPayload, { name: string }>> {
  let job: JobRecord<StepPayload, { name: string }> | undefined;
  await until(async () => {
    job = await q.get(id);
    return job !== undefined && ['done', 'failed', 'cancelled'].includes(job.state);
  }, ms);
  return job!;
}

/** A worker replica in its own process; resolves once it is connected. */
async function childWorker(
  name: string,
  workerId: string,
): Promise<{ child: ChildProcess; started: Promise<string> }> {
  const script = fileURLToPath(new URL('./redis-worker-child.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', script, redis.url, name, workerId], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  let out = '';
  let onStart: (id: string) => void = () => undefined;
  const started = new Promise<string>((resolve) => (onStart = resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('ready\n')) resolve();
      const m = /running (\S+)\n/.exec(out);
      if (m) onStart(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
  return { child, started };
}

describe('RedisJobQueue', () => {
  it('runs a job submitted to replica A on replica B; A answers status and files', async () => {
    const name = `q${++queueNumber}`;
    const a = replica(name, 'A', { concurrency: 0 });
    replica(name, 'B');
    const { job, created } = await a.submit({ name: 'x', steps: 3, stepMs: 10 }, { dedupKey: 'same' });
    expect(created).toBe(true);
    const done = await settled(a, job.id);
    expect(done).toMatchObject({
      state: 'done',
      worker: 'B',
      attempts: 1,
      progress: { done: 3 },
      files: ['out.txt'],
    });
    expect(done.summary).toEqual({ name: 'x' });
    expect(new TextDecoder().decode(await a.file(job.id, 'out.txt'))).toBe('x');
    // Identical job from any replica: the same one.
    const again = await a.submit({ name: 'x', steps: 3, stepMs: 10 }, { dedupKey: 'same' });
    expect(again).toMatchObject({ created: false, job: { id: job.id, state: 'done' } });
    expect((await a.stats()).byState.done).toBeGreaterThanOrEqual(1);
  });

  it('keeps a typed failure, cancels queued and running jobs', async () => {
    const name = `q${++queueNumber}`;
    const a = replica(name, 'A', { concurrency: 0 });
    replica(name, 'B');
    const bad = await a.submit({ name: 'bad', steps: 1, stepMs: 1 });
    expect(await settled(a, bad.job.id)).toMatchObject({
      state: 'failed',
      error: { code: 'bad_request', message: 'this payload is bad' },
    });
    const long = await a.submit({ name: 'long', steps: 200, stepMs: 20 });
    const waiting = await a.submit({ name: 'next', steps: 1, stepMs: 1 });
    await until(async () => (await a.get(long.job.id))?.state === 'running');
    expect((await a.cancel(waiting.job.id))?.state).toBe('cancelled');
    expect((await a.cancel(long.job.id))?.cancelRequested).toBe(true);
    const ended = await settled(a, long.job.id);
    expect(ended.state).toBe('cancelled');
    expect(ended.progress.done).toBeLessThan(200);
    expect((await a.get(waiting.job.id))?.state).toBe('cancelled');
  });

  it('ends a job done when the cancel lands after its last check (its result is committed)', async () => {
    let committing!: () => void;
    const inCommit = new Promise<void>((r) => (committing = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const q = replica(`q${++queueNumber}`, 'commit', {
      handler: async (payload) => {
        // The point of no return (a SEG being stored): the handler no longer looks at its signal.
        committing();
        await released;
        return { summary: { name: payload.name }, files: { 'out.txt': new Uint8Array([7]) } };
      },
    });
    const { job } = await q.submit({ name: 'store', steps: 1, stepMs: 1 });
    await inCommit;
    expect(await q.cancel(job.id)).toMatchObject({ state: 'running', cancelRequested: true });
    // Long enough for the worker's cancel poll (50 ms) to abort the handler's signal.
    await new Promise((r) => setTimeout(r, 200));
    release();
    const ended = await settled(q, job.id);
    expect(ended).toMatchObject({ state: 'done', files: ['out.txt'], summary: { name: 'store' } });
    expect([...((await q.file(job.id, 'out.txt')) ?? [])]).toEqual([7]);
  });

  it('refuses submissions beyond maxQueued (overloaded)', async () => {
    const name = `q${++queueNumber}`;
    const a = replica(name, 'A', { concurrency: 0, maxQueued: 2 });
    await a.submit({ name: '1', steps: 1, stepMs: 1 });
    await a.submit({ name: '2', steps: 1, stepMs: 1 });
    const error = await a.submit({ name: '3', steps: 1, stepMs: 1 }).catch((e: unknown) => e);
    expect((error as MedStreamError).code).toBe('overloaded');
    expect(await a.stats()).toMatchObject({ depth: 2, rejected: 1 });
    // A worker drains it.
    replica(name, 'B');
    await until(async () => (await a.stats()).depth === 0);
  });

  it('forgets a finished job and its files after the TTL', async () => {
    const name = `q${++queueNumber}`;
    const a = replica(name, 'A', { ttlMs: 1000 });
    const { job } = await a.submit({ name: 'x', steps: 1, stepMs: 1 });
    await settled(a, job.id);
    expect(await a.file(job.id, 'out.txt')).toBeDefined();
    await new Promise((r) => setTimeout(r, 1200));
    expect(await a.get(job.id)).toBeUndefined();
    expect(await a.file(job.id, 'out.txt')).toBeUndefined();
  });

  it('retries the job of a worker killed mid-job on another worker', async () => {
    const name = `q${++queueNumber}`;
    const a = replica(name, 'A', { concurrency: 0 });
    const { child, started } = await childWorker(name, 'doomed');
    const { job } = await a.submit({ name: 'x', steps: 40, stepMs: 50 });
    expect(await started).toBe(job.id);
    await until(async () => ((await a.get(job.id))?.progress.done ?? 0) >= 2);
    child.kill('SIGKILL');
    // A second worker finds the stalled job once the dead one's lock expires, and runs it again.
    replica(name, 'rescuer', { handler: stepHandler() });
    const done = await settled(a, job.id, 20_000);
    expect(done).toMatchObject({ state: 'done', worker: 'rescuer', attempts: 2 });
  });

  it('hands a running job back to the queue when its replica shuts down', async () => {
    const name = `q${++queueNumber}`;
    const a = replica(name, 'A', { concurrency: 0 });
    const leaving = replica(name, 'leaving');
    const { job } = await a.submit({ name: 'x', steps: 40, stepMs: 25 });
    await until(async () => ((await a.get(job.id))?.progress.done ?? 0) >= 2);
    await leaving.close();
    expect((await a.get(job.id))?.state).toBe('queued');
    replica(name, 'next');
    expect(await settled(a, job.id)).toMatchObject({ state: 'done', worker: 'next', attempts: 2 });
  });

  it('answers 503 (storage_error) within a bounded time while Redis hangs', async () => {
    const name = `q${++queueNumber}`;
    const a = replica(name, 'A', { concurrency: 0 });
    const { job } = await a.submit({ name: 'x', steps: 1, stepMs: 1 });
    redis.pause();
    try {
      const started = Date.now();
      const error = await a.get(job.id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StorageUnavailable);
      const submit = await a.submit({ name: 'y', steps: 1, stepMs: 1 }).catch((e: unknown) => e);
      expect(submit).toBeInstanceOf(StorageUnavailable);
      expect(Date.now() - started).toBeLessThan(9000);
    } finally {
      redis.resume();
    }
    expect((await a.get(job.id))?.state).toBe('queued');
  });

  it('fails with a reason the job of a killed worker that may not be retried', async () => {
    const name = `q${++queueNumber}`;
    const a = replica(name, 'A', { concurrency: 0 });
    const { child, started } = await childWorker(name, 'doomed');
    const { job } = await a.submit({ name: 'x', steps: 40, stepMs: 50 });
    await started;
    child.kill('SIGKILL');
    replica(name, 'checker', { maxStalls: 0 });
    const failed = await settled(a, job.id, 20_000);
    expect(failed.state).toBe('failed');
    expect(failed.error?.code).toBe('worker_lost');
    expect(failed.error?.message).toMatch(/worker running the job stopped/);
  });
});
