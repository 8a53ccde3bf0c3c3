import { afterEach, describe, expect, it } from 'vitest';
import { WorkerPool } from '../../src/codecs/worker-pool.js';
import { Cancelled, DecodeError, UnsupportedFormat } from '../../src/errors.js';

type Request =
  | { op: 'echo'; value: number }
  | { op: 'wait'; ms: number }
  | { op: 'spin' }
  | { op: 'crash' }
  | { op: 'fail' };

const pools: WorkerPool<Request, number>[] = [];
function pool(
  options: { size?: number; maxQueue?: number; taskTimeoutMs?: number } = {},
): WorkerPool<Request, number> {
  const created = new WorkerPool<Request, number>({
    script: new URL('./pool-worker.ts', import.meta.url),
    size: options.size ?? 1,
    maxQueue: options.maxQueue ?? 8,
    taskTimeoutMs: options.taskTimeoutMs ?? 10_000,
    name: 'test-pool',
  });
  pools.push(created);
  return created;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

describe('WorkerPool', () => {
  it('runs tasks on lazily started workers, up to its size', async () => {
    const p = pool({ size: 2 });
    expect(p.workerCount).toBe(0);
    const results = await Promise.all([1, 2, 3, 4, 5].map((value) => p.run({ op: 'echo', value })));
    expect(results).toEqual([2, 4, 6, 8, 10]);
    expect(p.workerCount).toBe(2);
  });

  it('refuses work beyond its queue bound with code overloaded', async () => {
    const p = pool({ size: 1, maxQueue: 1 });
    const running = p.run({ op: 'wait', ms: 200 });
    const queued = p.run({ op: 'echo', value: 1 });
    await expect(p.run({ op: 'echo', value: 2 })).rejects.toMatchObject({
      code: 'overloaded',
      retryable: true,
    });
    expect(await running).toBe(-1);
    expect(await queued).toBe(2);
  });

  it('cancels queued and running tasks when their signal fires', async () => {
    const p = pool({ size: 1 });
    const running = new AbortController();
    const queued = new AbortController();
    const first = p.run({ op: 'wait', ms: 300 }, [], running.signal);
    const second = p.run({ op: 'echo', value: 5 }, [], queued.signal);
    queued.abort();
    running.abort();
    await expect(first).rejects.toThrow(Cancelled);
    await expect(second).rejects.toThrow(Cancelled);
    expect(await p.run({ op: 'echo', value: 3 })).toBe(6); // the worker is still usable
    const aborted = AbortSignal.abort();
    await expect(p.run({ op: 'echo', value: 1 }, [], aborted)).rejects.toThrow(Cancelled);
  });

  it('kills a worker stuck in a loop and replaces it', async () => {
    const p = pool({ size: 1, taskTimeoutMs: 300 });
    const started = Date.now();
    await expect(p.run({ op: 'spin' })).rejects.toThrow(/longer than 300 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await p.run({ op: 'echo', value: 4 })).toBe(8);
  });

  it('replaces a stuck worker whose task was cancelled, so the tasks queued behind it run', async () => {
    const p = pool({ size: 1, taskTimeoutMs: 300 });
    const client = new AbortController();
    const stuck = p.run({ op: 'spin' }, [], client.signal);
    const behind = p.run({ op: 'echo', value: 7 });
    // The client hangs up while the worker is stuck (or still starting): the time limit still holds.
    client.abort();
    await expect(stuck).rejects.toThrow(Cancelled);
    const outcome = await Promise.race([
      behind,
      new Promise<string>((resolve) => setTimeout(() => resolve('still queued after 8 s'), 8_000)),
    ]);
    expect(outcome).toBe(14);
  });

  it('fails only the task of a crashed worker', async () => {
    const p = pool({ size: 1 });
    await expect(p.run({ op: 'crash' })).rejects.toThrow(DecodeError);
    expect(await p.run({ op: 'echo', value: 7 })).toBe(14);
  });

  it('maps error replies to typed errors', async () => {
    await expect(pool().run({ op: 'fail' })).rejects.toThrow(UnsupportedFormat);
  });

  it('rejects pending work on close and refuses new work', async () => {
    const p = pool({ size: 1 });
    const running = expect(p.run({ op: 'wait', ms: 5_000 })).rejects.toThrow(Cancelled);
    const queued = expect(p.run({ op: 'echo', value: 1 })).rejects.toThrow(Cancelled);
    await p.close();
    await running;
    await queued;
    await expect(p.run({ op: 'echo', value: 1 })).rejects.toThrow(/closed/);
  });
});
