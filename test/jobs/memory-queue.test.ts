// The in-process job queue: FIFO order under bounded concurrency, a full queue refused as
// `overloaded`, identical submissions joined, cancellation of queued and running jobs (the
// handler's signal fires), typed failures kept in the record, and expiry after the TTL.
import { afterEach, describe, expect, it } from 'vitest';
import { BadRequest, MedStreamError, throwIfAborted } from '../../src/errors.js';
import { MemoryJobQueue } from '../../src/jobs/memory-queue.js';
import type { JobContext } from '../../src/jobs/queue.js';

interface Step {
  name: string;
  steps: number;
}

/** A handler that takes `steps` ticks of 5 ms, checking its signal between them. */
function stepper(log: string[], active: { now: number; max: number }) {
  return async (payload: Step, context: JobContext) => {
    active.now++;
    active.max = Math.max(active.max, active.now);
    log.push(`start ${payload.name}`);
    try {
      for (let i = 0; i < payload.steps; i++) {
        throwIfAborted(context.signal);
        await new Promise((r) => setTimeout(r, 5));
        context.progress({ done: i + 1, total: payload.steps });
      }
      if (payload.name === 'bad') throw new BadRequest('this payload is bad');
      if (payload.name === 'crash') throw new Error('secret internal detail');
      return {
        summary: { name: payload.name },
        files: { 'out.txt': new TextEncoder().encode(payload.name) },
      };
    } finally {
      active.now--;
      log.push(`end ${payload.name}`);
    }
  };
}

const queues: MemoryJobQueue<Step, { name: string }>[] = [];
afterEach(async () => {
  await Promise.all(queues.splice(0).map((q) => q.close()));
});

function queue(
  options: { concurrency?: number; maxQueued?: number; ttlMs?: number; now?: () => number } = {},
) {
  const log: string[] = [];
  const active = { now: 0, max: 0 };
  const q = new MemoryJobQueue<Step, { name: string }>({ handler: stepper(log, active), ...options });
  queues.push(q);
  return { q, log, active };
}

describe('MemoryJobQueue', () => {
  it('runs jobs in order, at most `concurrency` at once, with progress and files', async () => {
    const { q, log, active } = queue({ concurrency: 1 });
    const a = await q.submit({ name: 'a', steps: 3 });
    const b = await q.submit({ name: 'b', steps: 2 });
    expect(a.created).toBe(true);
    expect((await q.get(b.job.id))?.state).toBe('queued');
    await q.drained();
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b']);
    expect(active.max).toBe(1);
    const done = await q.get(a.job.id);
    expect(done).toMatchObject({ state: 'done', progress: { done: 3, total: 3 }, attempts: 1 });
    expect(done?.summary).toEqual({ name: 'a' });
    expect(done!.finishedAt! >= done!.startedAt!).toBe(true);
    expect(new TextDecoder().decode(await q.file(a.job.id, 'out.txt'))).toBe('a');
    expect(await q.file(a.job.id, 'other')).toBeUndefined();
  });

  it('runs two at once with concurrency 2', async () => {
    const { q, active } = queue({ concurrency: 2 });
    await Promise.all(['a', 'b', 'c', 'd'].map((name) => q.submit({ name, steps: 3 })));
    await q.drained();
    expect(active.max).toBe(2);
  });

  it('refuses a submission when the queue is full (overloaded), and counts it', async () => {
    const { q } = queue({ concurrency: 1, maxQueued: 2 });
    await q.submit({ name: 'running', steps: 20 });
    await q.submit({ name: 'w1', steps: 1 });
    await q.submit({ name: 'w2', steps: 1 });
    const error = await q.submit({ name: 'w3', steps: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MedStreamError);
    expect((error as MedStreamError).code).toBe('overloaded');
    expect(await q.stats()).toMatchObject({ depth: 2, rejected: 1, byState: { running: 1, queued: 2 } });
    await q.drained();
    expect((await q.stats()).byState).toMatchObject({ done: 3, queued: 0, running: 0 });
  });

  it('answers identical submissions with the same job, and replaces a cancelled one', async () => {
    const { q, log } = queue();
    const first = await q.submit({ name: 'a', steps: 2 }, { dedupKey: 'k' });
    const again = await Promise.all(
      [1, 2, 3].map(() => q.submit({ name: 'a', steps: 2 }, { dedupKey: 'k' })),
    );
    expect(again.every((s) => s.job.id === first.job.id && !s.created)).toBe(true);
    await q.drained();
    const afterDone = await q.submit({ name: 'a', steps: 2 }, { dedupKey: 'k' });
    expect(afterDone).toMatchObject({ created: false, job: { id: first.job.id, state: 'done' } });
    expect(log.filter((l) => l === 'start a')).toHaveLength(1);
    expect((await q.stats()).deduplicated).toBe(4);

    const other = await q.submit({ name: 'b', steps: 50 }, { dedupKey: 'k2' });
    await q.cancel(other.job.id);
    await q.drained();
    const replaced = await q.submit({ name: 'b', steps: 1 }, { dedupKey: 'k2' });
    expect(replaced.created).toBe(true);
    expect(replaced.job.id).not.toBe(other.job.id);
  });

  it('cancels a queued job at once and a running job between steps', async () => {
    const { q, log } = queue({ concurrency: 1 });
    const running = await q.submit({ name: 'long', steps: 400 });
    const waiting = await q.submit({ name: 'next', steps: 1 });
    expect((await q.cancel(waiting.job.id))?.state).toBe('cancelled');
    while ((await q.get(running.job.id))?.progress.done === undefined)
      await new Promise((r) => setTimeout(r, 5));
    const asked = await q.cancel(running.job.id);
    expect(asked).toMatchObject({ state: 'running', cancelRequested: true });
    await q.drained();
    const ended = await q.get(running.job.id);
    expect(ended?.state).toBe('cancelled');
    expect(ended!.progress.done).toBeLessThan(400);
    expect(ended?.files).toEqual([]);
    expect(log).not.toContain('start next');
    // A final job stays as it is.
    expect((await q.cancel(running.job.id))?.state).toBe('cancelled');
    expect(await q.cancel('no-such-job')).toBeUndefined();
  });

  it('ends a job done when the cancel lands after its last check (its result is committed)', async () => {
    let committing!: () => void;
    const inCommit = new Promise<void>((r) => (committing = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const committed: string[] = [];
    const q = new MemoryJobQueue<Step, { name: string }>({
      handler: async (payload, context) => {
        throwIfAborted(context.signal);
        // The point of no return (a SEG being stored): the handler no longer looks at its signal.
        committing();
        await released;
        committed.push(payload.name);
        return { summary: { name: payload.name }, files: { 'out.txt': new Uint8Array([1]) } };
      },
    });
    queues.push(q);
    const job = await q.submit({ name: 'store', steps: 1 });
    await inCommit;
    expect(await q.cancel(job.job.id)).toMatchObject({ state: 'running', cancelRequested: true });
    release();
    await q.drained();
    expect(committed).toEqual(['store']);
    const ended = await q.get(job.job.id);
    expect(ended).toMatchObject({ state: 'done', files: ['out.txt'], summary: { name: 'store' } });
    expect(ended?.cancelRequested).toBeUndefined();
  });

  it('keeps typed failures and hides untyped ones', async () => {
    const internal: unknown[] = [];
    const log: string[] = [];
    const q = new MemoryJobQueue<Step, { name: string }>({
      handler: stepper(log, { now: 0, max: 0 }),
      onInternalError: (_id, e) => internal.push(e),
    });
    queues.push(q);
    const bad = await q.submit({ name: 'bad', steps: 1 });
    const crash = await q.submit({ name: 'crash', steps: 1 });
    await q.drained();
    expect(await q.get(bad.job.id)).toMatchObject({
      state: 'failed',
      error: { code: 'bad_request', message: 'this payload is bad' },
    });
    const crashed = await q.get(crash.job.id);
    expect(crashed?.error?.code).toBe('internal_error');
    expect(JSON.stringify(crashed)).not.toContain('secret');
    expect(internal).toHaveLength(1);
  });

  it('forgets finished jobs and their files after the TTL', async () => {
    let now = 1_000_000;
    const { q } = queue({ ttlMs: 60_000, now: () => now });
    const a = await q.submit({ name: 'a', steps: 1 }, { dedupKey: 'a' });
    await q.drained();
    expect((await q.get(a.job.id))?.expiresAt).toBe(now + 60_000);
    now += 59_000;
    expect(await q.file(a.job.id, 'out.txt')).toBeDefined();
    now += 2000;
    expect(await q.get(a.job.id)).toBeUndefined();
    expect(await q.file(a.job.id, 'out.txt')).toBeUndefined();
    // The identical request runs again once the old result has expired.
    expect((await q.submit({ name: 'a', steps: 1 }, { dedupKey: 'a' })).created).toBe(true);
  });

  it('forgets the oldest finished jobs beyond the bytes of files it may keep', async () => {
    const log: string[] = [];
    const q = new MemoryJobQueue<Step, { name: string }>({
      handler: stepper(log, { now: 0, max: 0 }),
      maxFileBytes: 5,
    });
    queues.push(q);
    const ids: string[] = [];
    for (const name of ['aaa', 'bbb', 'ccc']) {
      ids.push((await q.submit({ name, steps: 1 })).job.id);
      await q.drained();
    }
    // 3 bytes each, 5 kept: only the newest stays.
    expect(await q.get(ids[0])).toBeUndefined();
    expect(await q.get(ids[1])).toBeUndefined();
    expect(new TextDecoder().decode(await q.file(ids[2], 'out.txt'))).toBe('ccc');
  });

  it('cancels what is queued or running when closed', async () => {
    const { q } = queue({ concurrency: 1 });
    const a = await q.submit({ name: 'a', steps: 400 });
    const b = await q.submit({ name: 'b', steps: 1 });
    await new Promise((r) => setTimeout(r, 20));
    await q.close();
    expect((await q.get(a.job.id))?.state).toBe('cancelled');
    expect((await q.get(b.job.id))?.state).toBe('cancelled');
    await expect(q.submit({ name: 'c', steps: 1 })).rejects.toThrow(/closing/);
  });
});
